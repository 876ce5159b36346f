import { Duration, TimeZone } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { CopyTagsFromSource, InstanceSnapshotScheduleProps, LogLevel, Retention, SnapshotLock } from '../../src';

/** Every prop set to a non-default value (but `alarms`, left on to be covered), but the four that need constructs of their own. */
export const FULL_PROPS = {
  instanceTags: { Backup: ['nightly', 'always'], Environment: ['prod'] },
  excludeInstanceTags: { Backup: ['never'], Lifecycle: ['decommissioning'] },
  schedule: scheduler.ScheduleExpression.cron({ hour: '2', minute: '30', timeZone: TimeZone.EUROPE_BERLIN }),
  excludeBootVolume: true,
  excludeDataVolumeIds: ['vol-0123456789abcdef0', 'vol-0fedcba9876543210'],
  excludeDataVolumeTags: { Scratch: ['true'], Backup: ['never'] },
  outpostArn: 'arn:aws:outposts:eu-central-1:123456789012:outpost/op-0123456789abcdef0',
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
  scheduleId: 'backups/nightly-prod',
} satisfies InstanceSnapshotScheduleProps;

/**
 * Every prop, but `location`: EC2 takes either an Outpost ARN or a Location, never both, so the
 * full props keep `outpostArn` and the lifecycle tests cover `location` (test/lifecycle-construct.test.ts).
 */
export type EveryProp = Required<Omit<InstanceSnapshotScheduleProps, 'location'>> & Pick<InstanceSnapshotScheduleProps, 'location'>;

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
