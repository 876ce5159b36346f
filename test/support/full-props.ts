import { Duration, TimeZone } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { CopyTagsFromSource, InstanceSnapshotScheduleProps, LogLevel, Retention, SnapshotLock } from '../../src';

/** An Outpost ARN for the tests of `outpostArn`, which the full props leave out (see `EveryProp`). */
export const OUTPOST_ARN = 'arn:aws:outposts:eu-central-1:123456789012:outpost/op-0123456789abcdef0';

/** A customer managed key in eu-west-1, the first copy rule's destination. */
export const COPY_KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

/** Every prop set to a non-default value (but `alarms`, left on to be covered), but the four that need constructs of their own. */
export const FULL_PROPS = {
  instanceTags: { Backup: ['nightly', 'always'], Environment: ['prod'] },
  excludeInstanceTags: { Backup: ['never'], Lifecycle: ['decommissioning'] },
  schedule: scheduler.ScheduleExpression.cron({ hour: '2', minute: '30', timeZone: TimeZone.EUROPE_BERLIN }),
  excludeBootVolume: true,
  excludeDataVolumeIds: ['vol-0123456789abcdef0', 'vol-0fedcba9876543210'],
  excludeDataVolumeTags: { Scratch: ['true'], Backup: ['never'] },
  description: 'nightly crash-consistent set',
  snapshotTags: { CostCenter: '42', Team: 'platform' },
  copyTagsFromSource: CopyTagsFromSource.VOLUME,
  dryRun: false,
  enabled: false,
  scheduleName: 'nightly-snapshots',
  timeWindow: scheduler.TimeWindow.flexible(Duration.minutes(30)),
  maxEventAge: Duration.hours(2),
  retryAttempts: 10,
  createSnapshotsPerSecond: 20,
  logLevel: LogLevel.DEBUG,
  alarms: true,
  expectedMinimumInstances: 3,
  heartbeatPeriod: Duration.hours(30),
  dashboard: true,
  retention: Retention.anyOf(Retention.count(7), Retention.calendar({ daily: 14, weekly: 8, monthly: 12 })),
  goneInstanceRetention: Duration.days(30),
  deleteSnapshotsPerSecond: 10,
  lock: SnapshotLock.governance(Duration.days(7)),
  recycleBinRetention: Duration.days(14),
  // One rule with every option, one with the defaults (its copies kept by the schedule's retention).
  copies: [
    {
      region: 'eu-west-1',
      kmsKeyArn: COPY_KEY_ARN,
      copyTags: false,
      retention: Retention.calendar({ daily: 7, monthly: 3 }),
      completionDuration: Duration.hours(2),
    },
    { region: 'us-east-1' },
  ],
  // Another account than the stacks' of the tests (123456789012), with a bus of its own.
  vault: { account: '999988887777', eventBusArn: 'arn:aws:events:eu-central-1:999988887777:event-bus/snapshot-vault' },
  scheduleId: 'backups/nightly-prod',
} satisfies InstanceSnapshotScheduleProps;

/**
 * Every prop, but `location` and `outpostArn`: EC2 takes either an Outpost ARN or a Location, never
 * both, and copies neither Outpost nor Local Zone snapshots to another Region. So the full props keep
 * `copies`; the lifecycle tests cover `location` (test/lifecycle-construct.test.ts), the construct
 * and copies tests `outpostArn`.
 */
export type EveryProp = Required<Omit<InstanceSnapshotScheduleProps, 'location' | 'outpostArn'>>
& Pick<InstanceSnapshotScheduleProps, 'location' | 'outpostArn'>;

/**
 * Every prop of InstanceSnapshotSchedule, shared by the construct, contract and nag tests.
 * `Required<>` makes the type-check fail when a new prop is not covered.
 */
export function fullProps(
  deadLetterQueue: sqs.IQueue,
  scheduleGroup: scheduler.IScheduleGroup,
  logGroup: logs.ILogGroup,
  notificationTopic: sns.ITopic,
): EveryProp {
  return { ...FULL_PROPS, deadLetterQueue, scheduleGroup, logGroup, notificationTopic };
}
