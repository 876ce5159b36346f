/**
 * Lambda entry: parse -> run -> report. Bundled by esbuild into assets/lambda/snapshot-handler.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { EC2Client } from '@aws-sdk/client-ec2';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { AdaptiveRetryStrategy } from '@smithy/core/retry';
import type { RetryErrorInfo, RetryStrategyV2, RetryToken } from '@smithy/types';
import type { Context } from 'aws-lambda';
import { ContinuationEvent, DEFAULT_SETTINGS, RunFailedError, RunLog, RunSettings, RunTotals, runSnapshots } from './run-snapshots';
import { InvalidRunRequestError, parseRunRequest } from '../src/private/request-contract';

/**
 * The SDK's adaptive strategy (client-side rate limiting that learns from throttling, backoff with
 * jitter), retrying throttling errors only. `CreateSnapshots` has no client token: retrying a
 * server error or a timeout could make a second set, so those come back to the handler, which
 * looks for the set before trying again.
 */
export class ThrottlingOnlyRetryStrategy implements RetryStrategyV2 {
  constructor(private readonly inner: RetryStrategyV2) {}
  acquireInitialRetryToken(scope: string): Promise<RetryToken> {
    return this.inner.acquireInitialRetryToken(scope);
  }
  refreshRetryTokenForRetry(token: RetryToken, errorInfo: RetryErrorInfo): Promise<RetryToken> {
    if (errorInfo.errorType !== 'THROTTLING') {
      return Promise.reject(new Error(`not retrying a ${errorInfo.errorType} error: the call may have created a snapshot set`));
    }
    return this.inner.refreshRetryTokenForRetry(token, errorInfo);
  }
  recordSuccess(token: RetryToken): void {
    this.inner.recordSuccess(token);
  }
}

/** Reads optional tuning from the environment (the benchmark scales time with it). */
export function settingsFromEnv(env: Record<string, string | undefined>): RunSettings {
  const read = (name: string, fallback: number, min: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min) {
      throw new Error(`environment variable ${name} must be a number >= ${min}, got: ${JSON.stringify(raw)}`);
    }
    return value;
  };
  const d = DEFAULT_SETTINGS;
  return {
    concurrency: read('SNAPSHOT_CONCURRENCY', d.concurrency, 1),
    perVolumeRetryDelayMs: read('PER_VOLUME_RETRY_DELAY_MS', d.perVolumeRetryDelayMs, 0),
    throttleBackoffBaseMs: read('THROTTLE_BACKOFF_BASE_MS', d.throttleBackoffBaseMs, 0),
    throttleBackoffMaxMs: read('THROTTLE_BACKOFF_MAX_MS', d.throttleBackoffMaxMs, 0),
    verifyDelayMs: read('VERIFY_DELAY_MS', d.verifyDelayMs, 0),
    maxAttemptsPerInstance: read('MAX_ATTEMPTS_PER_INSTANCE', d.maxAttemptsPerInstance, 1),
    reserveMs: read('TIME_RESERVE_MS', d.reserveMs, 0),
  };
}

/** Metrics of a finished run, one CloudWatch metric each (EMF), by schedule. */
export function runMetrics(totals: RunTotals): Array<[string, number]> {
  const c = totals.counts;
  return [
    ['InstancesSelected', c.selected],
    ['SnapshotSetsCreated', c.created],
    ['InstancesAlreadyDone', c.alreadyDone],
    ['DryRunChecksPassed', c.dryRunOk],
    ['InstancesSkipped', c.skipped],
    ['InstancesFailed', c.failed],
    ['InstancesNotAttempted', c.notAttempted],
  ];
}

const logger = new Logger();
const runLog: RunLog = {
  info: (message, attributes = {}) => logger.info(message, attributes),
  warn: (message, attributes = {}) => logger.warn(message, attributes),
  error: (message, attributes = {}) => logger.error(message, attributes),
};
const metrics = new Metrics();
const requestHandler = { requestTimeout: 20_000, connectionTimeout: 5_000 };
const ec2 = new EC2Client({ retryMode: 'adaptive', maxAttempts: 10, requestHandler });
const ec2Create = new EC2Client({ retryStrategy: new ThrottlingOnlyRetryStrategy(new AdaptiveRetryStrategy(8)), requestHandler });
const lambdaClient = new LambdaClient({});

export async function handler(event: unknown, context: Context): Promise<{ status: string; totals: RunTotals }> {
  logger.resetKeys();
  let request;
  try {
    request = parseRunRequest(event);
  } catch (e) {
    const violations = e instanceof InvalidRunRequestError ? e.violations : undefined;
    logger.error('invalid run request: nothing done', { error: (e as Error).message, violations });
    throw e;
  }
  const continuation = (event as Partial<ContinuationEvent>).continuation;
  logger.appendKeys({ executionId: request.executionId, scheduleId: request.scheduleId, dryRun: request.dryRun });

  try {
    const result = await runSnapshots(request, {
      ec2,
      ec2Create,
      log: runLog,
      settings: settingsFromEnv(process.env),
      remainingMs: () => context.getRemainingTimeInMillis(),
      continueRun: async (next) => {
        await lambdaClient.send(new InvokeCommand({
          FunctionName: context.invokedFunctionArn,
          InvocationType: 'Event',
          Payload: Buffer.from(JSON.stringify(next)),
        }));
      },
    }, continuation);

    const totals = result.totals;
    const summary = {
      ...totals.counts,
      failuresByCode: totals.failuresByCode,
      apiCalls: totals.apiCalls,
      invocations: totals.invocations,
      invocationDurationMs: result.invocationDurationMs,
      durationMs: Date.now() - totals.startedAtMs,
    };
    if (result.status === 'continued') {
      logger.info('invocation summary: the run continues in a new invocation', summary);
      return { status: result.status, totals };
    }
    logger.info('run summary', summary);
    metrics.addDimension('Schedule', request.scheduleId);
    for (const [name, value] of runMetrics(totals)) {
      metrics.addMetric(name, MetricUnit.Count, value);
    }
    metrics.publishStoredMetrics();
    if (totals.counts.failed + totals.counts.notAttempted > 0) {
      // Lambda's failure path (error metric, asynchronous retries) records the run. A retry with
      // the same execution id creates only the sets that are still missing.
      throw new RunFailedError(totals);
    }
    return { status: result.status, totals };
  } catch (e) {
    if (!(e instanceof RunFailedError)) {
      logger.error('run failed before every instance was handled', { errorName: (e as Error).name, error: (e as Error).message });
    }
    throw e;
  }
}
