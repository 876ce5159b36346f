import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { IConstruct } from 'constructs';
import { METRICS } from './request-contract';

/**
 * One of the library's metrics (namespace `CdkInstanceSnapshots`, one dimension `Schedule`) for a
 * schedule or a vault: a sum unless `props` say otherwise, attached to `scope`.
 */
export function libraryMetric(scope: IConstruct, id: string, metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS.namespace,
    metricName,
    dimensionsMap: { [METRICS.scheduleDimension]: id },
    statistic: cloudwatch.Stats.SUM,
    ...props,
  }).attachTo(scope);
}
