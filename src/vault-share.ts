/**
 * Where a schedule shares its completed snapshot sets: an isolated vault account that copies them
 * (`SnapshotVault`, deployed there).
 *
 * Once a set is completed, the schedule's worker gives the vault account permission to create
 * volumes from each of its snapshots (EC2 `ModifySnapshotAttribute`, `createVolumePermission`) and
 * sends one event per set to the vault's event bus (EventBridge `PutEvents`) with the set's
 * identity: the schedule, the scheduled time, the instance and its snapshots (tags are not shared
 * with another account). The vault's worker copies every snapshot into the vault account.
 *
 * Snapshots encrypted with the AWS managed key `aws/ebs` cannot be shared: EC2 refuses, and they are
 * reported as share failures (`ShareFailures`). A snapshot encrypted with a customer managed key is
 * shared, but the key's policy must let the vault account use the key (`kms:DescribeKey`,
 * `kms:CreateGrant`, `kms:Decrypt`, `kms:ReEncrypt*`), and the vault must name the key in its
 * `sourceKmsKeyArns`.
 *
 * @see https://docs.aws.amazon.com/ebs/latest/userguide/ebs-modifying-snapshot-permissions.html
 */
export interface VaultShare {
  /**
   * The vault's account id: 12 digits, another account than the schedule's own.
   *
   * The worker role may share this schedule's snapshots with this account only
   * (`ec2:Add/userId` condition).
   */
  readonly account: string;

  /**
   * The ARN of the vault's event bus, in the vault account and in the schedule's Region: the worker
   * role may put events on this bus only.
   *
   * @default - the default bus of `SnapshotVault` in the vault account and the stack's Region:
   * `arn:${Partition}:events:${Region}:${account}:event-bus/cdk-instance-snapshots-vault`
   */
  readonly eventBusArn?: string;
}
