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
  /** Sharing with a vault account: `ec2:ModifySnapshotAttribute` (and `events:PutEvents` on its bus). */
  readonly shares?: boolean;
  /** Copies: the destination Regions (`ec2:CopySnapshot` and `ec2:CreateTags` on their snapshots). */
  readonly copyRegions?: readonly string[];
  /**
   * The destination Regions whose copies have a retention: `ec2:DeleteSnapshot` there, and
   * `ec2:DescribeLockedSnapshots` (a locked copy is kept until its lock expires).
   */
  readonly prunedCopyRegions?: readonly string[];
}

/** The worker's describe actions, which take no resource ARN. */
export function describeActions(lifecycle: WorkerLifecycle): string[] {
  const prunesCopies = (lifecycle.prunedCopyRegions ?? []).length > 0;
  return [
    'ec2:DescribeInstances', 'ec2:DescribeSnapshots', 'ec2:DescribeVolumes',
    ...(lifecycle.prunes ? ['ec2:DescribeImages'] : []),
    ...(lifecycle.prunes || lifecycle.locks || prunesCopies ? ['ec2:DescribeLockedSnapshots'] : []),
  ];
}

function describeReason(lifecycle: WorkerLifecycle): string {
  const actions = describeActions(lifecycle);
  return `${actions.slice(0, -1).join(', ')} and ${actions[actions.length - 1]} support no resource-level permissions (EC2 has no resource type for them): `
    + '"*" is the only resource IAM accepts.';
}

function snapshotReason(lifecycle: WorkerLifecycle): string {
  const later = [
    ...(lifecycle.prunes ? ['DeleteSnapshot'] : []),
    ...(lifecycle.locks ? ['LockSnapshot'] : []),
    ...((lifecycle.copyRegions ?? []).length > 0 ? ['CopySnapshot'] : []),
  ];
  return 'Snapshot ids do not exist before CreateSnapshots creates them; the statements are limited by aws:RequestTag (this schedule\'s tag) and ec2:CreateAction conditions'
    + (later.length > 0 ? `, and ${inWords(later)} by aws:ResourceTag (this schedule's tag)` : '')
    + (lifecycle.shares ? `${later.length > 0 ? ';' : ','} ModifySnapshotAttribute by aws:ResourceTag (this schedule's tag) and ec2:Add/userId (the vault account only).` : '.');
}

/** Why the worker may act on every snapshot in a destination Region. */
function copyReason(region: string, pruned: boolean): string {
  return `Copies in ${region} do not exist before CopySnapshot creates them; CopySnapshot and CreateTags there are limited by aws:RequestTag (this schedule's tag) `
    + `and ec2:CreateAction (CopySnapshot) conditions${pruned ? ', and DeleteSnapshot by aws:ResourceTag (this schedule\'s tag)' : ''}.`;
}

/** `a`, `a and b`, `a, b and c`. */
function inWords(items: string[]): string {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
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
  for (const region of lifecycle.copyRegions ?? []) {
    const arn = stack.formatArn({ service: 'ec2', region, account: '', resource: 'snapshot', resourceName: '*', arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagFlatten(stack.resolve(arn))}]`,
      reason: copyReason(region, (lifecycle.prunedCopyRegions ?? []).includes(region)),
    });
  }
}

/** What a vault's worker does besides copying: each adds actions to its role. */
export interface VaultWorkerLifecycle {
  /** Retention: `ec2:DeleteSnapshot`. */
  readonly prunes: boolean;
  /** Locks: `ec2:LockSnapshot`. */
  readonly locks: boolean;
}

/** The vault worker's describe actions, which take no resource ARN. */
export const VAULT_DESCRIBE_ACTIONS = ['ec2:DescribeSnapshots', 'ec2:DescribeLockedSnapshots', 'ec2:DescribeImages'];

/**
 * A vault's worker role: `ec2:Describe*` take no resource ARN; the shared snapshots and their copies
 * have ids unknown at deploy time (`snapshot/*` under conditions).
 */
export function acknowledgeVaultWorkerWildcards(role: iam.Role, lifecycle: VaultWorkerLifecycle): void {
  const stack = Stack.of(role);
  const actions = VAULT_DESCRIBE_ACTIONS;
  Validations.of(role).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason: `${actions.slice(0, -1).join(', ')} and ${actions[actions.length - 1]} support no resource-level permissions (EC2 has no resource type for them): `
      + '"*" is the only resource IAM accepts.',
  });
  const later = [...(lifecycle.prunes ? ['DeleteSnapshot'] : []), ...(lifecycle.locks ? ['LockSnapshot'] : [])];
  const arn = stack.formatArn({ service: 'ec2', account: '', resource: 'snapshot', resourceName: '*', arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
  Validations.of(role).acknowledge({
    id: `AwsSolutions-IAM5[Resource::${nagFlatten(stack.resolve(arn))}]`,
    reason: 'The shared snapshots and their copies have ids unknown at deploy time (snapshot ARNs have no account field); CopySnapshot is limited by '
      + 'aws:RequestTag (the vault\'s tag on every copy) and CreateTags by ec2:CreateAction (CopySnapshot)'
      + (later.length > 0 ? `, and ${inWords(later)} by aws:ResourceTag (the vault's tag).` : '.'),
  });
}

/**
 * A role that EventBridge Scheduler's `LambdaInvoke` target was given: aws-cdk-lib's `grantInvoke`
 * adds the function's versions and aliases (`<arn>:*`) to its unqualified ARN.
 */
export function acknowledgeInvokeWildcard(role: iam.Role, functionArn: string): void {
  const stack = Stack.of(role);
  Validations.of(role).acknowledge({
    id: `AwsSolutions-IAM5[Resource::${nagFlatten(stack.resolve(functionArn))}:*]`,
    reason: 'aws-cdk-lib\'s LambdaInvoke target grants lambda:InvokeFunction on the function\'s versions and aliases too (<arn>:*): '
      + 'the schedule invokes the unqualified function only, and the function has no version or alias.',
  });
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
  const getAtt = (value as { 'Fn::GetAtt'?: [string, string] })?.['Fn::GetAtt'];
  if (getAtt) return `<${getAtt[0]}.${getAtt[1]}>`;
  return JSON.stringify(value);
}
