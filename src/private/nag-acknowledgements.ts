import { ArnFormat, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';

/**
 * Acknowledges, on our own roles, the wildcards that AWS forces, with the reason a reviewer
 * needs. aws-cdk-lib's `Validations.acknowledge` is read by policy-validation plugins such as
 * cdk-nag 3, so a user's own nag run is clean without them acknowledging anything of ours, and
 * cdk-nag is not a dependency of this library.
 */

/** What the worker does besides creating snapshots: each adds actions to its role (see `workerStatements`). */
export interface WorkerLifecycle {
  /** Retention: `ec2:DeleteSnapshot`, `ec2:DescribeImages`, `ec2:DescribeLockedSnapshots`. */
  readonly prunes: boolean;
  /** Locks: `ec2:LockSnapshot`, `ec2:DescribeLockedSnapshots`. */
  readonly locks: boolean;
}

/** The worker's describe actions, which take no resource ARN. */
export function describeActions(lifecycle: WorkerLifecycle): string[] {
  return [
    'ec2:DescribeInstances', 'ec2:DescribeSnapshots', 'ec2:DescribeVolumes',
    ...(lifecycle.prunes ? ['ec2:DescribeImages'] : []),
    ...(lifecycle.prunes || lifecycle.locks ? ['ec2:DescribeLockedSnapshots'] : []),
  ];
}

function describeReason(lifecycle: WorkerLifecycle): string {
  const actions = describeActions(lifecycle);
  return `${actions.slice(0, -1).join(', ')} and ${actions[actions.length - 1]} support no resource-level permissions (EC2 has no resource type for them): `
    + '"*" is the only resource IAM accepts.';
}

function snapshotReason(lifecycle: WorkerLifecycle): string {
  const later = [...(lifecycle.prunes ? ['DeleteSnapshot'] : []), ...(lifecycle.locks ? ['LockSnapshot'] : [])];
  return 'Snapshot ids do not exist before CreateSnapshots creates them; the statements are limited by aws:RequestTag (this schedule\'s tag) and ec2:CreateAction conditions'
    + (later.length > 0 ? `, and ${later.join(' and ')} by aws:ResourceTag (this schedule's tag).` : '.');
}

/**
 * The worker's role: `ec2:Describe*` take no resource ARN; instance, volume and snapshot ids are
 * unknown at deploy time (`instance/*`, `volume/*`, `snapshot/*` under conditions).
 */
export function acknowledgeWorkerWildcards(role: iam.Role, lifecycle: WorkerLifecycle = { prunes: false, locks: false }): void {
  const stack = Stack.of(role);
  Validations.of(role).acknowledge({ id: 'AwsSolutions-IAM5[Resource::*]', reason: describeReason(lifecycle) });
  const forced: Array<[resource: string, account: string | undefined, reason: string]> = [
    ['instance', undefined, 'Instances are selected by tag at run time, so their ids are unknown at deploy time; the statement is limited by aws:ResourceTag conditions on the selecting tags.'],
    ['volume', undefined, 'CreateSnapshots snapshots the volumes attached to a selected instance, whose ids are unknown at deploy time; the instance statement limits which instances are snapshotted.'],
    ['snapshot', '', snapshotReason(lifecycle)],
  ];
  for (const [resource, account, reason] of forced) {
    const arn = stack.formatArn({ service: 'ec2', account, resource, resourceName: '*', arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
    Validations.of(role).acknowledge({ id: `AwsSolutions-IAM5[Resource::${nagFlatten(stack.resolve(arn))}]`, reason });
  }
}

/**
 * The workflow's role (its inline policy): X-Ray's `PutTraceSegments`/`PutTelemetryRecords`/sampling calls and
 * CloudWatch Logs' log-delivery calls (which Step Functions logging needs) take no resource ARN.
 */
export function acknowledgeWorkflowWildcards(role: iam.Role): void {
  Validations.of(role).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason: 'X-Ray tracing (xray:PutTraceSegments, xray:PutTelemetryRecords, xray:GetSampling*) and Step Functions log delivery (logs:CreateLogDelivery and friends) support no resource-level permissions: "*" is the only resource IAM accepts.',
  });
}

/**
 * A resolved CloudFormation value as cdk-nag writes it in a finding id (its `flattenCfnReference`:
 * `Ref`s as `<Name>`, joins flattened). test/nag.test.ts fails if cdk-nag changes that format.
 */
function nagFlatten(value: unknown): string {
  if (typeof value === 'string') return value.replace(/\$\{/g, '<').replace(/\}/g, '>');
  const v = value as { 'Fn::Join'?: [string, unknown[]]; 'Ref'?: string };
  if (v?.['Fn::Join']) return v['Fn::Join'][1].map(nagFlatten).join(v['Fn::Join'][0]);
  if (v?.Ref) return `<${v.Ref}>`;
  return JSON.stringify(value);
}
