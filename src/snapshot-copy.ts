import { Duration } from 'aws-cdk-lib';
import { Retention } from './retention';

/**
 * Copies of every snapshot set of a schedule in another Region (EC2 `CopySnapshot`), for disaster
 * recovery.
 *
 * Once a set is completed, the run copies each of its snapshots to the destination Region (EC2 has
 * no set-level copy). Every copy carries the set's identity (the library's
 * `cdk-instance-snapshots:*` tags) and `cdk-instance-snapshots:source-snapshot-id` /
 * `cdk-instance-snapshots:source-region`, so the destination holds whole sets that the schedule's
 * retention can count, and a copy that was already made is found before it is made again.
 * EC2 runs at most 20 copies at once per destination Region and account: sets not copied by the
 * end of a run are reported and copied by the next run.
 *
 * @see https://docs.aws.amazon.com/ebs/latest/userguide/ebs-copy-snapshot.html
 */
export interface SnapshotCopyRule {
  /**
   * The destination Region, for example `eu-west-1`.
   *
   * Another Region than the schedule's own, in the same partition, written out in the app (the
   * worker calls `CopySnapshot` there and the worker role's permissions name it).
   */
  readonly region: string;

  /**
   * The ARN of a KMS key in the destination Region: every copy is encrypted with it, copies of
   * unencrypted snapshots too.
   *
   * A key ARN (`arn:aws:kms:<region>:<account>:key/<id>`), not an alias: the worker role is allowed
   * to use this key only. The key's policy must let the account's IAM policies grant its use (the
   * default key policy does).
   *
   * @see https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption.html
   * @default - copies of encrypted snapshots are encrypted with the destination Region's default
   * EBS key; copies of unencrypted snapshots stay unencrypted, unless the account encrypts EBS by
   * default in the destination Region
   */
  readonly kmsKeyArn?: string;

  /**
   * Copy the source snapshot's other tags onto the copy: the schedule's `snapshotTags` and the
   * tags copied from volumes.
   *
   * The library's own tags and the two source tags are put on every copy whatever this says.
   *
   * @default true
   */
  readonly copyTags?: boolean;

  /**
   * Which copies to keep in the destination Region, per instance, counted like the schedule's own
   * `retention` (in the schedule's time zone, with its `goneInstanceRetention`): every set of copies
   * that no rule keeps is deleted by the next run.
   *
   * @default - the schedule's `retention`. With neither, copies are never deleted, and each run
   * copies the sets of the last 7 days that have no copy yet.
   */
  readonly retention?: Retention;

  /**
   * Make each copy an EBS time-based copy that completes within this duration.
   *
   * 15 minutes to 48 hours, in steps of 15 minutes. A copy still pending after this duration is
   * counted in the `CopiesOverdue` metric, which the instances-failed alarm watches.
   *
   * @see https://docs.aws.amazon.com/ebs/latest/userguide/time-based-copies.html
   * @default - a standard copy: EBS copies as fast as it can, with no completion time promised
   */
  readonly completionDuration?: Duration;
}
