import { Annotations, ArnFormat, Duration, Stack, TimeZone, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventsTargets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rbin from 'aws-cdk-lib/aws-rbin';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { RegionInfo } from 'aws-cdk-lib/region-info';
import { Construct, IConstruct } from 'constructs';
import { CopyTagsFromSource } from './copy-tags-from-source';
import { LogLevel } from './log-level';
import { defaultHeartbeatPeriod, heartbeatPeriods, scheduleInterval } from './private/heartbeat';
import { InlinePolicyRole } from './private/inline-policy-role';
import { libraryMetric } from './private/library-metric';
import { DEFAULT_GONE_INSTANCE_RETENTION, renderCopyRules, renderRetentionSpec, RetentionContext } from './private/lifecycle';
import { acknowledgeWorkerWildcards, acknowledgeWorkflowWildcards, describeActions, WorkerLifecycle } from './private/nag-acknowledgements';
import { warnIfPolicyTooLarge } from './private/policy-size';
import {
  checkCopyRules,
  checkLockSpec,
  checkRetentionSpec,
  checkScheduleId,
  checkVaultShare,
  COPY_TAGS_FROM_VOLUME,
  CopyRuleSpec,
  DEFAULT_CREATE_SNAPSHOTS_PER_SECOND,
  DEFAULT_DELETE_SNAPSHOTS_PER_SECOND,
  METRICS,
  NOTIFICATION_TOPIC_ENV,
  REQUEST_VERSION,
  requestSha256,
  RetentionSpec,
  SCHEDULE_ID_ENV,
  SCHEDULE_TAG,
  ScheduledRunInput,
  show,
  SnapshotLockSpec,
  SnapshotRunRequest,
  VaultShareSpec,
} from './private/request-contract';
import { buildRunDefinition } from './private/run-workflow';
import { SharedResources, WORKER_TIMEOUT } from './private/shared-resources';
import { checkDimensionValue, hasCopies, LOCATION_VALUES, validateProps } from './private/validate-props';
import { WORKER_ARCHITECTURE, WORKER_ASSET_DIR, WORKER_RUNTIME, WORKER_SERVICE_NAME } from './private/worker-code';
import { Retention } from './retention';
import { SnapshotCopyRule } from './snapshot-copy';
import { SnapshotLocation } from './snapshot-location';
import { SnapshotLock } from './snapshot-lock';
import { SnapshotVault } from './snapshot-vault';
import { VaultShare } from './vault-share';

/** The execution statuses of a run that did not succeed (Step Functions' execution status change events). */
const RUN_FAILED_STATUSES = ['FAILED', 'TIMED_OUT', 'ABORTED'] as const;

/** Lambda's application log level for each of the worker's log levels. */
const APPLICATION_LOG_LEVELS: Record<LogLevel, lambda.ApplicationLogLevel> = {
  [LogLevel.DEBUG]: lambda.ApplicationLogLevel.DEBUG,
  [LogLevel.INFO]: lambda.ApplicationLogLevel.INFO,
  [LogLevel.WARN]: lambda.ApplicationLogLevel.WARN,
  [LogLevel.ERROR]: lambda.ApplicationLogLevel.ERROR,
};

/**
 * Properties of an `InstanceSnapshotSchedule`.
 */
export interface InstanceSnapshotScheduleProps {
  /**
   * The instances to snapshot, by tag: tag key -> accepted values.
   *
   * An instance is selected when it carries every key, each with one of that key's values
   * (AND across keys, OR within a key's values). Tag keys and values are case-sensitive.
   * Only instances that are `running` or `stopped` are snapshotted.
   *
   * The same tags limit the handler's IAM permission: `ec2:CreateSnapshots` is allowed only on
   * instances that carry them (`aws:ResourceTag/<key>` conditions).
   *
   * At least one key; each key 1 to 127 characters with at least one value of at most 256
   * characters.
   */
  readonly instanceTags: { [key: string]: string[] };

  /**
   * Instances not to snapshot, by tag: tag key -> values.
   *
   * An instance that `instanceTags` selects is left out when it carries any of these keys with one
   * of that key's values (exact, case-sensitive), for example `{ Backup: ['skip'] }` or
   * `{ Environment: ['sandbox'] }`. Its existing sets are then those of a gone instance
   * (`goneInstanceRetention`). Each key 1 to 127 characters with at least one value of at most 256
   * characters. A key of `instanceTags` whose every accepted value is excluded is an error: nothing
   * could ever be selected.
   *
   * @default - no instance is left out by tag
   */
  readonly excludeInstanceTags?: { [key: string]: string[] };

  /**
   * When to take the snapshot sets: a cron, rate or one-time expression, with a time zone.
   *
   * @see https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html
   * @default - every day at 03:00 UTC (`cron(0 3 * * ? *)`)
   */
  readonly schedule?: scheduler.ScheduleExpression;

  /**
   * Leave the boot (root) volume out of every snapshot set.
   *
   * @default false
   */
  readonly excludeBootVolume?: boolean;

  /**
   * Data volumes to leave out of the snapshot sets, by volume id.
   *
   * At most 40 distinct ids (EC2's limit). A boot volume cannot be excluded this way: when one of
   * these ids is an instance's root volume, the handler excludes that instance's boot volume
   * instead and logs a warning (EC2 would reject the whole request).
   *
   * @default - no data volume is left out
   */
  readonly excludeDataVolumeIds?: string[];

  /**
   * Data volumes to leave out of the snapshot sets, by tag: tag key -> values.
   *
   * A data volume is left out when it carries any of the keys with one of that key's values
   * (exact, case-sensitive). Boot volumes are never excluded by tag: use `excludeBootVolume`.
   * Looked up once per run (`ec2:DescribeVolumes`, paginated); together with
   * `excludeDataVolumeIds`, at most 40 volumes of one instance can be left out (EC2's limit).
   *
   * @default - no data volume is left out by tag
   */
  readonly excludeDataVolumeTags?: { [key: string]: string[] };

  /**
   * Keep the snapshots of instances on this AWS Outpost on the Outpost.
   *
   * Applied only to instances that run on this Outpost; for every other instance it is left out
   * of the request (EC2 rejects an Outpost ARN for an instance in a Region) and their snapshots
   * are stored in the Region.
   *
   * @see https://docs.aws.amazon.com/ebs/latest/userguide/snapshots-outposts.html
   * @default - snapshots are stored in the instance's Region
   */
  readonly outpostArn?: string;

  /**
   * Where the snapshots of instances in Local Zones are stored: `SnapshotLocation.LOCAL` keeps them
   * in the instance's Local Zone, `SnapshotLocation.REGIONAL` in its parent Region (EC2's
   * `Location`).
   *
   * EC2 takes it only for instances in a Local Zone. It does not combine with `outpostArn`.
   *
   * @see https://docs.aws.amazon.com/ebs/latest/userguide/snapshots-localzones.html
   * @default - EC2's default: in the parent Region (the request carries no `Location`)
   */
  readonly location?: SnapshotLocation;

  /**
   * Description copied onto every snapshot of a set. At most 255 characters.
   *
   * @default - no description
   */
  readonly description?: string;

  /**
   * Tags to put on every snapshot.
   *
   * Keys at most 127 characters and not starting with `aws:` or `cdk-instance-snapshots:`;
   * values at most 256 characters. The library adds 4 tags of its own (schedule, execution,
   * instance id, scheduled time), so at most 46 tags here, or 44 with `copies` (each copy also
   * carries its source's id and Region); tags copied from volumes count towards EC2's limit of 50
   * per snapshot too.
   *
   * @default - only the library's own tags
   */
  readonly snapshotTags?: { [key: string]: string };

  /**
   * Copy tags from the source volumes onto their snapshots.
   *
   * @default - no tags are copied
   */
  readonly copyTagsFromSource?: CopyTagsFromSource;

  /**
   * Check permissions only: each run calls `CreateSnapshots` with `DryRun` for every selected
   * instance and reports what it would have done. Nothing is created.
   *
   * @default false
   */
  readonly dryRun?: boolean;

  /**
   * Whether the schedule is enabled.
   *
   * @default true
   */
  readonly enabled?: boolean;

  /**
   * The schedule's name.
   *
   * @default - a name generated by CloudFormation
   */
  readonly scheduleName?: string;

  /**
   * The schedule group the schedule belongs to.
   *
   * @default - the account's default schedule group
   */
  readonly scheduleGroup?: scheduler.IScheduleGroup;

  /**
   * A window after the scheduled time within which EventBridge Scheduler may start the run,
   * to spread load.
   *
   * @default - no flexible window: the run starts at the scheduled time
   */
  readonly timeWindow?: scheduler.TimeWindow;

  /**
   * Where EventBridge Scheduler sends a run it could not start (the workflow's `StartExecution`
   * kept failing until `maxEventAge` or `retryAttempts` ran out).
   *
   * A standard queue (Scheduler takes no FIFO queue). The scheduler role may send to it. The
   * construct puts no alarm on a queue of yours: watch its depth yourself.
   *
   * @see https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html
   * @default - a queue shared by the stack's schedules (SQS-managed encryption, TLS only, messages
   * kept 14 days), with an alarm on its depth that notifies the schedules' `notificationTopic`s
   */
  readonly deadLetterQueue?: sqs.IQueue;

  /**
   * How long EventBridge Scheduler keeps trying to start a run.
   *
   * Between 1 minute and 24 hours.
   *
   * @default Duration.hours(24)
   */
  readonly maxEventAge?: Duration;

  /**
   * How many times EventBridge Scheduler retries starting a run.
   *
   * Between 0 and 185. A repeated start of the same run is harmless: the workflow lets only one
   * execution per scheduled occurrence create snapshot sets.
   *
   * @default 185
   */
  readonly retryAttempts?: number;

  /**
   * The account's `CreateSnapshots` rate in this Region, in calls per second.
   *
   * EC2 refills each account's `CreateSnapshots` token bucket at 5 calls per second per Region
   * (bucket size 100); accounts can have it raised. The worker paces its calls to this rate so
   * that a large fleet is snapshotted at the rate EC2 allows without being throttled. Schedules
   * that run at the same time share EC2's bucket: throttling answers slow them down.
   *
   * @see https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html
   * @default 5
   */
  readonly createSnapshotsPerSecond?: number;

  /**
   * Which snapshot sets to keep, per instance: every set of this schedule that no rule keeps is
   * deleted at the end of each run.
   *
   * `Retention.count(n)`, `Retention.age(duration)`, `Retention.calendar({ daily, weekly, ... })`
   * (counted in the schedule's time zone) or `Retention.anyOf(...)`. Only snapshots tagged with
   * this schedule's `scheduleId` are ever deleted: the worker may delete no other
   * (`ec2:DeleteSnapshot` under an `aws:ResourceTag` condition). A run never deletes the set it has
   * just made, nor the newest completed set of an instance it still selects; sets that back an AMI
   * or are locked (`lock`) are kept until that ends. With retention, the worker has 1,024 MB of
   * memory (it lists every snapshot of the schedule).
   *
   * @default - no retention: sets are never deleted (the construct warns; acknowledge the warning
   * `cdk-instance-snapshots:noRetention` if something else deletes them)
   */
  readonly retention?: Retention;

  /**
   * How long the count and calendar rules of `retention`, and the protection of the newest set,
   * keep holding the sets of an instance that is gone (terminated, untagged or excluded), counted
   * from its newest set's scheduled time. After that, only an age rule keeps its sets.
   *
   * Whole seconds from 1 day to 36,600 days (100 years). Only with `retention` or a copy rule's
   * `retention`; it applies to the copies' retention too.
   *
   * @default Duration.days(90)
   */
  readonly goneInstanceRetention?: Duration;

  /**
   * The account's `DeleteSnapshot` rate in this Region, in calls per second: the worker paces its
   * deletions to it.
   *
   * EC2 refills each account's `DeleteSnapshot` token bucket at 5 calls per second per Region
   * (bucket size 100), shared with every other caller. Above 0 and at most 1,000. Only with
   * `retention`.
   *
   * @see https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html
   * @default 5
   */
  readonly deleteSnapshotsPerSecond?: number;

  /**
   * Lock every snapshot of each new set (`LockSnapshot`), so that nobody can delete it before the
   * lock expires.
   *
   * `SnapshotLock.governance(duration)` can be removed by principals allowed `ec2:UnlockSnapshot`;
   * `SnapshotLock.compliance(duration, coolOffPeriod?)` cannot be removed or shortened after its
   * cool-off, not even by the account's root user (the construct warns). A set that `retention` no
   * longer keeps is deleted by the first run after its lock expires. Existing sets are not locked.
   *
   * @see https://docs.aws.amazon.com/ebs/latest/userguide/ebs-snapshot-lock.html
   * @default - no lock
   */
  readonly lock?: SnapshotLock;

  /**
   * Keep this schedule's deleted snapshots recoverable from the Recycle Bin for this long: the
   * construct creates a tag-level Recycle Bin retention rule (`AWS::Rbin::Rule`) for EBS snapshots
   * tagged with the schedule's `scheduleId`.
   *
   * Applies to every deletion of such a snapshot, by retention or by hand. Snapshots in the Recycle
   * Bin are billed as snapshots. Whole days from 1 to 365 (Recycle Bin's range).
   *
   * @see https://docs.aws.amazon.com/ebs/latest/userguide/recycle-bin.html
   * @default - no Recycle Bin rule: deleted snapshots are gone at once
   */
  readonly recycleBinRetention?: Duration;

  /**
   * Copy every snapshot set to other Regions, for disaster recovery: one rule per destination
   * Region, each with its own encryption key, tags, retention and completion time.
   *
   * Each run copies the sets that are completed and have no copy in a rule's Region yet (EC2
   * `CopySnapshot`, called in the destination Region, one snapshot at a time), and deletes the
   * copies that the rule's retention no longer keeps. Copies carry the schedule's tags and
   * `cdk-instance-snapshots:source-snapshot-id` / `cdk-instance-snapshots:source-region`. EC2 runs
   * at most 20 copies at once per destination Region, so a run waits between checks of its copies
   * (the workflow keeps its 24-hour timeout): sets not copied by the run's end are reported
   * (`CopyFailures`) and copied by the next run. Copies are not locked, and `recycleBinRetention`
   * covers the stack's Region only.
   *
   * At most 3 rules (Data Lifecycle Manager's limit), each for another Region than the stack's.
   * Not with `outpostArn` or `location: SnapshotLocation.LOCAL`: EC2 does not copy Outpost or Local
   * Zone snapshots to another Region. With copies, the worker has 1,024 MB of memory. A source
   * encrypted with a customer managed key needs the worker role (`workerRole`) to be allowed to use
   * that key.
   *
   * @see https://docs.aws.amazon.com/ebs/latest/userguide/ebs-copy-snapshot.html
   * @default - no copies
   */
  readonly copies?: SnapshotCopyRule[];

  /**
   * Share every completed snapshot set with an isolated vault account, which copies it
   * (`SnapshotVault`, deployed in that account and Region).
   *
   * Each run shares the sets of its own occurrence once they are completed (EC2 `ModifySnapshotAttribute`:
   * a `createVolumePermission` for the vault account on each snapshot) and sends one event per set
   * to the vault's event bus with the set's identity (tags are not shared). The vault copies the
   * snapshots into its own account, where this account has no permission at all. Snapshots
   * encrypted with the AWS managed key `aws/ebs` cannot be shared (EC2 refuses): they are reported
   * as share failures (`ShareFailures`), which the instances-failed alarm watches. A customer managed
   * key's policy must let the vault account use the key. A dry run shares nothing.
   *
   * @see https://docs.aws.amazon.com/ebs/latest/userguide/ebs-modifying-snapshot-permissions.html
   * @default - no sharing
   */
  readonly vault?: VaultShare;

  /**
   * The schedule's identity: the value of its snapshots' `cdk-instance-snapshots:schedule` tag, the
   * key of its occurrence locks, its metrics' `Schedule` dimension and the value of its worker's
   * IAM conditions.
   *
   * Keep it stable. Changing it orphans every set made under the old id: retention never looks at
   * them again (delete them by hand, or with a schedule that has the old id) and the worker may no
   * longer delete them. Before moving or renaming the construct or its stack, set `scheduleId` to
   * its current path (`scheduleId` of the deployed construct, e.g. `Backups/Nightly`). Two schedules
   * of one app in the same account and Region cannot have the same id.
   *
   * 1 to 255 characters (a metrics dimension value), no white space at either end.
   *
   * @default - the construct's path in the app, e.g. `Backups/Nightly`
   */
  readonly scheduleId?: string;

  /**
   * Where the schedule's worker and workflow log (JSON lines; the workflow logs every state with
   * its data).
   *
   * @default - a log group shared by every schedule of the stack, kept for 3 months
   */
  readonly logGroup?: logs.ILogGroup;

  /**
   * How much the worker logs (Powertools Logger's level, and Lambda's application log level, which
   * drops lines below it).
   *
   * @default LogLevel.INFO
   */
  readonly logLevel?: LogLevel;

  /**
   * Where the schedule's failures are notified: its alarms (on entering ALARM), each run that ends
   * FAILED, TIMED_OUT or ABORTED, and each snapshot set that failed after `CreateSnapshots` returned.
   *
   * A standard topic (EventBridge publishes to a FIFO topic only with a message group id). For a
   * topic defined in the app, the construct adds to its topic policy that EventBridge and (with
   * `alarms`) the account's CloudWatch alarms may publish, and to its KMS key's policy (a key
   * defined in the app) that they may use the key. An imported topic or key is left alone: allow
   * `events.amazonaws.com` and `cloudwatch.amazonaws.com` yourself. A topic encrypted with the AWS
   * managed key `alias/aws/sns` drops every alarm and EventBridge message without a trace (that
   * key's policy cannot be changed).
   *
   * @see https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
   * @default - a topic shared by the stack's schedules, encrypted with a customer managed KMS key
   * of its own (rotated yearly) whose policy lets CloudWatch alarms and EventBridge use it;
   * subscribe to it through `notificationTopic`
   */
  readonly notificationTopic?: sns.ITopic;

  /**
   * Create the schedule's CloudWatch alarms, each notifying `notificationTopic`: instances that
   * failed or were not attempted, the heartbeat, and (with the stack's shared dead-letter queue)
   * runs that could not be started.
   *
   * With false, the EventBridge rules still notify runs that failed and snapshot sets that failed,
   * and the metrics are still emitted.
   *
   * @default true
   */
  readonly alarms?: boolean;

  /**
   * The fewest instances a run is expected to select: a finished run that selects fewer sets off
   * the heartbeat alarm.
   *
   * Catches a selection that shrank to nothing without an error: a typo in `instanceTags`, the
   * instances retagged or terminated. 0 turns the minimum off; the heartbeat alarm then only
   * watches that runs happen.
   *
   * @default 1
   */
  readonly expectedMinimumInstances?: number;

  /**
   * The longest time without a finished run before the heartbeat alarm fires: the schedule's
   * longest interval plus slack.
   *
   * The heartbeat alarm watches `InstancesSelected` (emitted when a run finishes) and treats no data
   * as breaching: it fires when no run finished within this period (the schedule was disabled or
   * deleted outside CloudFormation, an EventBridge Scheduler or Step Functions outage, a run stuck
   * or its metrics lost) and when a run selected fewer than `expectedMinimumInstances` (a tag typo).
   * Right after a new schedule is deployed it is in ALARM until the first run finishes.
   *
   * Whole minutes, from 1 minute to 7 days: CloudWatch evaluates an alarm over at most 7 days,
   * with periods of at most 1 day (a longer heartbeat is split into up to 7 periods that must all
   * breach). Without a period of yours, a schedule whose interval cannot be derived (a cron that
   * does not run every day, a one-time `at(...)`, a rate over 7 days less the slack), and a
   * schedule with `enabled: false`, get a heartbeat that treats no data as not breaching: it then
   * only catches runs that select too few instances.
   *
   * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
   * @default - the rate of a `rate(...)` schedule, or 1 day for a cron that runs every day, plus
   * 2 hours and the flexible time window
   */
  readonly heartbeatPeriod?: Duration;

  /**
   * Create a CloudWatch dashboard for this schedule: the run metrics, the workflow's executions
   * and the alarms.
   *
   * @default false
   */
  readonly dashboard?: boolean;
}

/**
 * Takes a crash-consistent snapshot set (EC2 `CreateSnapshots`) of every EC2 instance that carries
 * the given tags, on an EventBridge Scheduler schedule.
 *
 * Each scheduled occurrence is one AWS Step Functions execution that creates exactly one snapshot
 * set per selected instance, in bounded worker steps, or ends FAILED naming the instances without
 * one. With `retention`, each run then deletes the schedule's sets that no rule keeps; with `lock`,
 * every new snapshot is locked; with `copies`, every set is copied to other Regions. Every schedule
 * has its own worker function, roles, workflow, notification rules and alarms; a stack's schedules
 * share the occurrence lock table and, unless they bring their own, the log group, the notification
 * topic and the dead-letter queue.
 */
export class InstanceSnapshotSchedule extends Construct {
  /** The default schedule: every day at 03:00 UTC. */
  public static readonly DEFAULT_SCHEDULE = scheduler.ScheduleExpression.cron({ minute: '0', hour: '3', timeZone: TimeZone.ETC_UTC });

  /** The EventBridge Scheduler schedule. */
  public readonly schedule: scheduler.Schedule;

  /** The role EventBridge Scheduler assumes to start the workflow. */
  public readonly schedulerRole: iam.Role;

  /** The Step Functions state machine: one execution per scheduled occurrence. */
  public readonly stateMachine: sfn.StateMachine;

  /** The workflow's role: invokes the worker, reads and writes the lock table, logs and traces. */
  public readonly workflowRole: iam.Role;

  /** The Lambda function that makes the EC2 calls of this schedule's runs. */
  public readonly worker: lambda.Function;

  /**
   * The worker's role: `CreateSnapshots` only on this schedule's instances and snapshots tagged with
   * its id (and, with `copies`, `CopySnapshot` of those snapshots to the rules' Regions). Allow it the
   * use of a customer managed key that encrypts the sources of copies.
   */
  public readonly workerRole: iam.Role;

  /** Where the worker and the workflow log. */
  public readonly logGroup: logs.ILogGroup;

  /** The table of occurrence locks (shared by every schedule of the stack). */
  public readonly lockTable: dynamodb.ITable;

  /** Where the schedule's failures are notified: subscribe to it. */
  public readonly notificationTopic: sns.ITopic;

  /** Where EventBridge Scheduler puts a run it could not start. */
  public readonly deadLetterQueue: sqs.IQueue;

  /** Notifies `notificationTopic` of each run that ends FAILED, TIMED_OUT or ABORTED. */
  public readonly runFailedRule: events.Rule;

  /**
   * Sends EC2's `EBS Multi-Volume Snapshots Completion Status` events with `result: failed` to the
   * worker, which notifies `notificationTopic` of this schedule's failed sets.
   */
  public readonly snapshotSetFailedRule: events.Rule;

  /**
   * Fires when a run had instances that failed or were not attempted (`InstancesFailed +
   * InstancesNotAttempted > 0`), and, with `retention`, `lock` or `copies`, sets it could not delete
   * (`PruneFailures`), lock (`SnapshotLocksFailed`) or copy (`CopyFailures`), or copies past their
   * completion duration (`CopiesOverdue`, with a rule's `completionDuration`).
   *
   * @default - none when `alarms` is false
   */
  public readonly instancesFailedAlarm?: cloudwatch.Alarm;

  /**
   * Fires when no run finished within the heartbeat period, or a run selected fewer than
   * `expectedMinimumInstances`.
   *
   * @default - none when `alarms` is false, or when it could never fire (no minimum and no
   * heartbeat period)
   */
  public readonly heartbeatAlarm?: cloudwatch.Alarm;

  /**
   * Fires when the stack's shared dead-letter queue holds a run that could not be started.
   *
   * @default - none when `alarms` is false or the schedule brings its own `deadLetterQueue`
   */
  public readonly deadLetterQueueAlarm?: cloudwatch.Alarm;

  /**
   * The schedule's dashboard.
   *
   * @default - none unless `dashboard` is true
   */
  public readonly dashboard?: cloudwatch.Dashboard;

  /**
   * Identifies this schedule's snapshots: the value of their `cdk-instance-snapshots:schedule` tag
   * (the `scheduleId` prop, by default this construct's path in the app).
   */
  public readonly scheduleId: string;

  /**
   * The Recycle Bin rule that keeps this schedule's deleted snapshots recoverable.
   *
   * @default - none unless `recycleBinRetention` is set
   */
  public readonly recycleBinRule?: rbin.CfnRule;

  /**
   * @param scope the stack or construct to add the schedule to; the shared lock table goes into its stack
   * @param id the construct id: part of the default `scheduleId` (the snapshots' `cdk-instance-snapshots:schedule` tag)
   * @param props which instances, when, and the `CreateSnapshots` options
   */
  constructor(scope: Construct, id: string, props: InstanceSnapshotScheduleProps) {
    super(scope, id);
    validateProps(this, props);

    this.scheduleId = props.scheduleId ?? this.node.path;
    if (props.scheduleId === undefined) {
      const idProblems = checkScheduleId(this.scheduleId, 'the construct path');
      idProblems.push(...(idProblems.length > 0 ? [] : checkDimensionValue(this.scheduleId, 'the construct path')));
      if (idProblems.length > 0) {
        throw new Error(idProblems[0].message);
      }
    }
    claimScheduleId(this, this.scheduleId);
    if (props.dryRun) {
      Annotations.of(this).addWarningV2('cdk-instance-snapshots:dryRun',
        'dryRun is true: runs only check permissions and create no snapshots');
    }
    const stack = Stack.of(this);
    const scheduleExpression = props.schedule ?? InstanceSnapshotSchedule.DEFAULT_SCHEDULE;
    const retentionContext: RetentionContext = {
      timeZone: scheduleExpression.timeZone?.timezoneName ?? TimeZone.ETC_UTC.timezoneName,
      goneInstanceSeconds: (props.goneInstanceRetention ?? DEFAULT_GONE_INSTANCE_RETENTION).toSeconds(),
    };
    const retention = this.renderRetention(props, retentionContext);
    const copies = hasCopies(props) ? this.renderCopies(props, retentionContext) : undefined;
    const lock = props.lock?._render();
    const vault = this.renderVault(props.vault);
    const lockProblems = lock ? checkLockSpec(lock) : [];
    if (lockProblems.length > 0) throw new Error(lockProblems.map((p) => p.message).join('\n'));
    this.annotateLifecycle(scheduleExpression, retention, lock);
    const shared = SharedResources.of(this);
    this.logGroup = props.logGroup ?? shared.logGroup;
    this.lockTable = shared.lockTable;
    this.notificationTopic = props.notificationTopic ?? shared.notificationTopic;
    this.deadLetterQueue = props.deadLetterQueue ?? shared.deadLetterQueue;
    const alarmsOn = props.alarms ?? true;

    const request: SnapshotRunRequest = {
      version: REQUEST_VERSION,
      scheduleId: this.scheduleId,
      instanceTags: props.instanceTags,
      excludeBootVolume: props.excludeBootVolume ?? false,
      excludeDataVolumeIds: props.excludeDataVolumeIds ?? [],
      excludeDataVolumeTags: props.excludeDataVolumeTags ?? {},
      outpostArn: props.outpostArn,
      description: props.description,
      snapshotTags: props.snapshotTags ?? {},
      copyTagsFromSource: props.copyTagsFromSource === CopyTagsFromSource.VOLUME ? COPY_TAGS_FROM_VOLUME : undefined,
      dryRun: props.dryRun ?? false,
      createSnapshotsPerSecond: props.createSnapshotsPerSecond ?? DEFAULT_CREATE_SNAPSHOTS_PER_SECOND,
      excludeInstanceTags: props.excludeInstanceTags,
      location: props.location !== undefined ? LOCATION_VALUES[props.location] : undefined,
      lock,
      retention,
      deleteSnapshotsPerSecond: retention ? props.deleteSnapshotsPerSecond ?? DEFAULT_DELETE_SNAPSHOTS_PER_SECOND : undefined,
      copies,
      vault,
    };
    // Text, not an object, in the definition: a tag key ending in ".$" stays a tag key.
    const requestJson = stack.toJsonString(request);
    // toJsonString always returns a token: resolved, it is plain text unless props hold tokens.
    const resolvedRequest: unknown = stack.resolve(requestJson);

    const lifecycle: WorkerLifecycle = {
      prunes: retention !== undefined,
      locks: lock !== undefined,
      shares: vault !== undefined,
      ...(copies ? { copyRegions: copies.map((c) => c.region), prunedCopyRegions: copies.filter((c) => c.retention).map((c) => c.region) } : {}),
    };
    const workerRole = new InlinePolicyRole(this, 'WorkerRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `cdk-instance-snapshots: the worker of ${this.scheduleId}`.slice(0, 1000),
      policyName: 'Snapshots',
      statements: [
        ...this.workerStatements(props, lifecycle),
        ...copyKeyStatements(copies ?? []),
        ...(vault ? vaultShareStatements(stack, this.scheduleId, vault) : []),
        ...this.notificationStatements(),
      ],
    });
    this.workerRole = workerRole;
    acknowledgeWorkerWildcards(this.workerRole, lifecycle);

    const logLevel = props.logLevel ?? LogLevel.INFO;
    this.worker = new lambda.Function(this, 'Worker', {
      description: 'cdk-instance-snapshots: the worker of a snapshot schedule (crash-consistent EBS snapshot sets)',
      runtime: WORKER_RUNTIME,
      architecture: WORKER_ARCHITECTURE,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(WORKER_ASSET_DIR),
      role: this.workerRole,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      // Lambda drops JSON lines below its application log level: keep it equal to the worker's.
      applicationLogLevelV2: APPLICATION_LOG_LEVELS[logLevel],
      // A step starts no new instance after 10 minutes and settles the rest within Lambda's limit.
      timeout: WORKER_TIMEOUT,
      // The prune and copy steps hold the listing of the schedule's snapshots (and of their copies).
      memorySize: retention || copies || vault ? 1024 : 512,
      environment: {
        POWERTOOLS_SERVICE_NAME: WORKER_SERVICE_NAME,
        POWERTOOLS_METRICS_NAMESPACE: METRICS.namespace,
        POWERTOOLS_LOG_LEVEL: logLevel,
        [SCHEDULE_ID_ENV]: this.scheduleId,
        [NOTIFICATION_TOPIC_ENV]: this.notificationTopic.topicArn,
        // The worker refuses any request but this schedule's (skipped when props hold tokens).
        ...(typeof resolvedRequest === 'string' ? { REQUEST_SHA256: requestSha256(JSON.parse(resolvedRequest)) } : {}),
      },
    });

    const workflowRole = new InlinePolicyRole(this, 'WorkflowRole', {
      assumedBy: new iam.ServicePrincipal('states.amazonaws.com'),
      policyName: 'RunWorkflow',
    });
    this.workflowRole = workflowRole;
    const states = new Construct(this, 'States');
    this.stateMachine = new sfn.StateMachine(this, 'Workflow', {
      comment: `cdk-instance-snapshots: one execution per scheduled occurrence of ${this.scheduleId}`.slice(0, 1000),
      stateMachineType: sfn.StateMachineType.STANDARD,
      role: this.workflowRole,
      definitionBody: sfn.DefinitionBody.fromChainable(buildRunDefinition(states, {
        worker: this.worker,
        lockTable: this.lockTable,
        requestJson,
        // Sharing waits for sets to complete like copies do: the same wait state.
        copies: copies !== undefined || vault !== undefined,
      })),
      timeout: Duration.hours(24),
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
      tracingEnabled: true,
    });
    acknowledgeWorkflowWildcards(this.workflowRole);

    // EventBridge Scheduler presents the schedule group's ARN as aws:SourceArn when it assumes the role.
    const scheduleGroupArn = props.scheduleGroup?.scheduleGroupArn
      ?? stack.formatArn({ service: 'scheduler', resource: 'schedule-group', resourceName: 'default', arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
    this.schedulerRole = new InlinePolicyRole(this, 'SchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnEquals: { 'aws:SourceArn': scheduleGroupArn },
        },
      }),
      description: 'cdk-instance-snapshots: lets EventBridge Scheduler start the snapshot workflow',
      policyName: 'StartWorkflow',
    });

    const input: ScheduledRunInput = {
      scheduledTime: scheduler.ContextAttribute.scheduledTime,
      schedulerExecutionId: scheduler.ContextAttribute.executionId,
    };
    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      schedule: scheduleExpression,
      scheduleName: props.scheduleName,
      scheduleGroup: props.scheduleGroup,
      description: scheduleDescription(props.instanceTags),
      enabled: props.enabled ?? true,
      timeWindow: props.timeWindow,
      // StartExecution named after the scheduler's execution id: a repeated start of the same
      // attempt while it runs is the same execution; the workflow's lock handles every other repeat.
      target: new targets.Universal({
        service: 'sfn',
        action: 'startExecution',
        role: this.schedulerRole,
        input: scheduler.ScheduleTargetInput.fromObject({
          StateMachineArn: this.stateMachine.stateMachineArn,
          Name: scheduler.ContextAttribute.executionId,
          Input: JSON.stringify(input),
        }),
        policyStatements: [new iam.PolicyStatement({
          actions: ['states:StartExecution'],
          resources: [this.stateMachine.stateMachineArn],
        })],
        deadLetterQueue: this.deadLetterQueue,
        maxEventAge: props.maxEventAge,
        retryAttempts: props.retryAttempts,
      }),
    });

    // Every way a run can fail ends at the topic: the run's end (rule), the sets EC2 failed later
    // (rule -> worker), instances without a set and missing runs (alarms), runs never started (queue alarm).
    this.runFailedRule = new events.Rule(this, 'RunFailedRule', {
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: {
          stateMachineArn: [this.stateMachine.stateMachineArn],
          status: [...RUN_FAILED_STATUSES],
        },
      },
      targets: [new eventsTargets.SnsTopic(this.notificationTopic, {
        message: events.RuleTargetInput.fromText([
          `cdk-instance-snapshots: the run of ${this.scheduleId} ended ${events.EventField.fromPath('$.detail.status')}`,
          `(${events.EventField.fromPath('$.detail.error')}): ${events.EventField.fromPath('$.detail.executionArn')}.`,
          'Its history and run summary log line say why.',
        ].join(' ')),
      })],
    });
    this.snapshotSetFailedRule = new events.Rule(this, 'SnapshotSetFailedRule', {
      eventPattern: {
        source: ['aws.ec2'],
        detailType: ['EBS Multi-Volume Snapshots Completion Status'],
        detail: { event: ['createSnapshots'], result: ['failed'] },
      },
      // The worker itself is the target; the permission below has a short id of its own (the stock
      // LambdaFunction target's repeats both paths, and a stack of 40 schedules counts its bytes).
      targets: [{ bind: () => ({ arn: this.worker.functionArn }) }],
    });
    this.worker.addPermission('InvokedBySnapshotSetFailedRule', {
      principal: new iam.ServicePrincipal('events.amazonaws.com'),
      sourceArn: this.snapshotSetFailedRule.ruleArn,
    });

    if (alarmsOn) {
      shared.allowAlarmsToPublish(this.notificationTopic);
      const notify = new cwActions.SnsAction(this.notificationTopic);
      this.instancesFailedAlarm = this.createInstancesFailedAlarm(notify, lifecycle, copies, vault !== undefined);
      this.heartbeatAlarm = this.createHeartbeatAlarm(props, scheduleExpression, notify);
      if (!props.deadLetterQueue) {
        this.deadLetterQueueAlarm = shared.deadLetterQueueAlarmFor(this.notificationTopic);
      }
    }

    if (props.recycleBinRetention !== undefined) {
      this.recycleBinRule = this.createRecycleBinRule(props.recycleBinRetention);
    }

    if (props.dashboard) {
      this.dashboard = this.createDashboard(retention !== undefined, copies !== undefined, vault !== undefined);
    }

    warnIfPolicyTooLarge(this, 'WorkerRole', [workerRole.document]);
  }

  /**
   * A metric of this schedule's runs, by name (see the README for the names), with the library's
   * namespace and the `Schedule` dimension.
   *
   * A sum over 5 minutes unless `props` say otherwise.
   *
   * @param metricName the metric's name, e.g. `InstancesSelected`
   * @param props period, statistic and the rest
   */
  public metric(metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return libraryMetric(this, this.scheduleId, metricName, props);
  }

  /**
   * Instances a run selected (one data point per finished run).
   *
   * A sum over 5 minutes by default.
   */
  public metricInstancesSelected(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.instancesSelected, props);
  }

  /**
   * Snapshot sets a run created.
   *
   * A sum over 5 minutes by default.
   */
  public metricSnapshotSetsCreated(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.snapshotSetsCreated, props);
  }

  /**
   * Instances that already had a set of the occurrence (a repeated delivery or a resumed run).
   *
   * A sum over 5 minutes by default.
   */
  public metricInstancesAlreadyDone(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.instancesAlreadyDone, props);
  }

  /**
   * Instances a run skipped (terminated or gone between listing and snapshot).
   *
   * A sum over 5 minutes by default.
   */
  public metricInstancesSkipped(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.instancesSkipped, props);
  }

  /**
   * Instances whose `CreateSnapshots` failed in a run.
   *
   * A sum over 5 minutes by default.
   */
  public metricInstancesFailed(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.instancesFailed, props);
  }

  /**
   * Instances a run did not attempt (stopped early: account limits, instances pending or stopping).
   *
   * A sum over 5 minutes by default.
   */
  public metricInstancesNotAttempted(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.instancesNotAttempted, props);
  }

  /**
   * Seconds from a run's first step to its end.
   *
   * The maximum over 5 minutes by default.
   */
  public metricRunDuration(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.runDuration, { statistic: cloudwatch.Stats.MAXIMUM, ...props });
  }

  /**
   * Snapshot sets of this schedule that EC2 reported failed after `CreateSnapshots` returned.
   *
   * A sum over 5 minutes by default.
   */
  public metricSnapshotSetsFailed(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.snapshotSetsFailed, props);
  }

  /**
   * Worker steps that threw (the workflow runs a failed step again, up to its limit).
   *
   * A sum over 5 minutes by default.
   */
  public metricStepFailures(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.stepFailures, props);
  }

  /**
   * Snapshot sets a run deleted because no `retention` rule keeps them any more.
   *
   * A sum over 5 minutes by default.
   */
  public metricSnapshotSetsDeleted(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.snapshotSetsDeleted, props);
  }

  /**
   * Snapshots a run deleted (every snapshot of the deleted sets).
   *
   * A sum over 5 minutes by default.
   */
  public metricSnapshotsDeleted(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.snapshotsDeleted, props);
  }

  /**
   * Snapshot sets that no rule keeps but that are kept because a snapshot of theirs backs an AMI
   * (`InvalidSnapshot.InUse`): deregister the AMI, or they stay.
   *
   * A sum over 5 minutes by default.
   */
  public metricSnapshotSetsInUse(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.snapshotSetsInUse, props);
  }

  /**
   * Snapshot sets that no rule keeps but that a snapshot lock still protects (deleted by the first
   * run after the lock expires).
   *
   * A sum over 5 minutes by default.
   */
  public metricSnapshotSetsLocked(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.snapshotSetsLocked, props);
  }

  /**
   * Snapshot sets whose deletion failed for another reason than an AMI or a lock (the run fails).
   *
   * A sum over 5 minutes by default.
   */
  public metricPruneFailures(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.pruneFailures, props);
  }

  /**
   * New snapshot sets whose snapshots could not all be locked (`lock`): the set exists without its
   * protection.
   *
   * A sum over 5 minutes by default.
   */
  public metricSnapshotLocksFailed(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.snapshotLocksFailed, props);
  }

  /**
   * Snapshots a run copied to other Regions (`copies`), over every destination Region.
   *
   * A sum over 5 minutes by default.
   */
  public metricSnapshotsCopied(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.snapshotsCopied, props);
  }

  /**
   * Snapshot sets a run could not copy to a destination Region (the run fails).
   *
   * A sum over 5 minutes by default.
   */
  public metricCopyFailures(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.copyFailures, props);
  }

  /**
   * Copies still in progress past their rule's `completionDuration` when a run ended (the next run
   * finishes them).
   *
   * A sum over 5 minutes by default.
   */
  public metricCopiesOverdue(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.copiesOverdue, props);
  }

  /**
   * Snapshot sets a run shared with the vault account and announced on its bus (`vault`).
   *
   * A sum over 5 minutes by default.
   */
  public metricSetsShared(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.setsShared, props);
  }

  /**
   * Snapshot sets a run could not share with the vault account or announce on its bus (`vault`):
   * a snapshot encrypted with the AWS managed key, a key or bus policy that refuses, throttling. The
   * next run tries again.
   *
   * A sum over 5 minutes by default.
   */
  public metricShareFailures(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.shareFailures, props);
  }

  /**
   * The vault share rendered for the request (validateProps checked the props): the account, and
   * the bus given or the vault's default bus in that account and the stack's Region. Checked by the
   * contract's own check when both are written out.
   */
  private renderVault(vault: VaultShare | undefined): VaultShareSpec | undefined {
    if (vault === undefined) return undefined;
    const stack = Stack.of(this);
    // A literal partition when the Region is known, so that the request stays plain text (and hashed).
    const partition = Token.isUnresolved(stack.region) ? undefined : RegionInfo.get(stack.region).partition;
    const eventBusArn = vault.eventBusArn ?? stack.formatArn({
      partition,
      service: 'events',
      account: vault.account,
      resource: 'event-bus',
      resourceName: SnapshotVault.DEFAULT_EVENT_BUS_NAME,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
    const spec: VaultShareSpec = { account: vault.account, eventBusArn };
    if (!Token.isUnresolved(spec.account) && !Token.isUnresolved(spec.eventBusArn)) {
      const problems = checkVaultShare(spec);
      if (problems.length > 0) throw new Error(problems.map((p) => p.message).join('\n'));
    }
    return spec;
  }

  /** The retention rules rendered for the request: the rules, the schedule's time zone and the gone-instance period. */
  private renderRetention(props: InstanceSnapshotScheduleProps, context: RetentionContext): RetentionSpec | undefined {
    if (!props.retention) return undefined;
    const spec = renderRetentionSpec(props.retention, context);
    // The factories and validateProps checked every value: this is the worker's own check, run at synth time.
    const problems = checkRetentionSpec(spec);
    if (problems.length > 0) throw new Error(problems.map((p) => p.message).join('\n'));
    return spec;
  }

  /**
   * The copy rules rendered for the request, checked by the contract's own check (validateProps
   * checked the props): their number, distinct Regions, none the stack's own, each key in its rule's
   * Region, and no copies of Outpost or Local Zone snapshots.
   */
  private renderCopies(props: InstanceSnapshotScheduleProps, context: RetentionContext): CopyRuleSpec[] {
    const specs = renderCopyRules(props.copies!, props.retention, context);
    const region = Stack.of(this).region;
    const problems = checkCopyRules(specs, {
      outpostArn: props.outpostArn,
      location: props.location !== undefined ? LOCATION_VALUES[props.location] : undefined,
      region: Token.isUnresolved(region) ? undefined : region,
    }, Token.isUnresolved);
    if (problems.length > 0) throw new Error(problems.map((p) => p.message).join('\n'));
    return specs;
  }

  /** Warns about what cannot be undone or is never cleaned up, and notes how retention and locks meet. */
  private annotateLifecycle(
    expression: scheduler.ScheduleExpression,
    retention: RetentionSpec | undefined,
    lock: SnapshotLockSpec | undefined,
  ): void {
    if (!retention) {
      Annotations.of(this).addWarningV2('cdk-instance-snapshots:noRetention',
        'no retention: snapshot sets are never deleted and their storage is billed for ever; set retention '
        + '(for example Retention.count(14) or Retention.calendar({ daily: 7, weekly: 4 })), or acknowledge this warning if something else deletes them');
    }
    if (lock?.mode === 'compliance') {
      Annotations.of(this).addWarningV2('cdk-instance-snapshots:complianceLock',
        `lock is in compliance mode: every snapshot of a new set is locked for ${lock.durationDays} days, and `
        + `${lock.coolOffHours ? `after a cool-off of ${lock.coolOffHours} hours ` : ''}nobody, not even the account's root user, can remove or shorten `
        + 'the lock or delete the snapshot before it expires; this cannot be undone. Use SnapshotLock.governance() unless records must be kept, '
        + 'or acknowledge this warning');
    }
    if (lock && retention && keptAtLeastSeconds(retention, expression) < lock.durationDays * 86_400) {
      Annotations.of(this).addInfo(`cdk-instance-snapshots: the retention of ${this.scheduleId} may stop keeping sets younger than their `
        + `${lock.durationDays}-day lock: such sets are kept until their lock expires (SnapshotSetsLocked), then deleted by the next run`);
    }
  }

  /** A tag-level Recycle Bin rule for the snapshots of this schedule. */
  private createRecycleBinRule(period: Duration): rbin.CfnRule {
    const days = period.toDays();
    return new rbin.CfnRule(this, 'RecycleBinRule', {
      resourceType: 'EBS_SNAPSHOT',
      resourceTags: [{ resourceTagKey: SCHEDULE_TAG, resourceTagValue: this.scheduleId }],
      retentionPeriod: { retentionPeriodUnit: 'DAYS', retentionPeriodValue: days },
      // Recycle Bin takes at most 255 characters, with no line breaks or tabs.
      description: `cdk-instance-snapshots: deleted snapshots of ${this.scheduleId} stay recoverable for ${days} days`.replace(/\s/g, ' ').slice(0, 255),
    });
  }

  private createInstancesFailedAlarm(
    notify: cloudwatch.IAlarmAction,
    lifecycle: WorkerLifecycle,
    copies: CopyRuleSpec[] | undefined,
    shares: boolean,
  ): cloudwatch.Alarm {
    const period = Duration.hours(1);
    // Only what the schedule can emit (every metric costs template bytes, 40 schedules a stack);
    // a metric a run did not write counts as 0. Copies are overdue only past a rule's completion duration.
    const overdue = copies?.some((c) => c.completionDurationMinutes !== undefined) ?? false;
    const lifecycleMetrics: Record<string, cloudwatch.IMetric> = {
      ...(lifecycle.prunes ? { pruneFailures: this.metricPruneFailures({ period }) } : {}),
      ...(lifecycle.locks ? { locksFailed: this.metricSnapshotLocksFailed({ period }) } : {}),
      ...(copies ? { copyFailures: this.metricCopyFailures({ period }) } : {}),
      ...(overdue ? { copiesOverdue: this.metricCopiesOverdue({ period }) } : {}),
      ...(shares ? { shareFailures: this.metricShareFailures({ period }) } : {}),
    };
    const copyFailures = (copies ? `, could not copy sets to other Regions${overdue ? ' or copy them in time' : ''}` : '')
      + (shares ? ', could not share sets with the vault account' : '');
    const alarm = new cloudwatch.Alarm(this, 'InstancesFailedAlarm', {
      alarmDescription: `cdk-instance-snapshots: a run left instances without a snapshot set${lifecycle.locks ? ', could not lock new sets' : ''}${copyFailures}`
        + `${lifecycle.prunes ? ', or could not delete sets retention no longer keeps' : ''}. Its summary log line names them and why: `
        + 'fix that, then run the occurrence again (README, Operations).',
      metric: new cloudwatch.MathExpression({
        expression: ['failed + notAttempted', ...Object.keys(lifecycleMetrics).map((m) => `FILL(${m}, 0)`)].join(' + '),
        usingMetrics: {
          failed: this.metricInstancesFailed({ period }),
          notAttempted: this.metricInstancesNotAttempted({ period }),
          ...lifecycleMetrics,
        },
        period,
      }),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      threshold: 0,
      evaluationPeriods: 1,
      // Only finished runs emit the metrics: no data is no run (the heartbeat watches for that).
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(notify);
    return alarm;
  }

  private createHeartbeatAlarm(
    props: InstanceSnapshotScheduleProps,
    expression: scheduler.ScheduleExpression,
    notify: cloudwatch.IAlarmAction,
  ): cloudwatch.Alarm | undefined {
    const minimum = props.expectedMinimumInstances ?? 1;
    const heartbeat = props.heartbeatPeriod ?? defaultHeartbeatPeriod(expression, props.timeWindow);
    const watchesRuns = heartbeat !== undefined && (props.enabled ?? true);
    const interval = scheduleInterval(expression);
    if (props.heartbeatPeriod && interval && props.heartbeatPeriod.toSeconds() <= interval.toSeconds()) {
      Annotations.of(this).addWarningV2('cdk-instance-snapshots:heartbeatPeriod',
        `heartbeatPeriod (${props.heartbeatPeriod.toHumanString()}) is not longer than the schedule's interval (${interval.toHumanString()}): `
        + 'the heartbeat alarm fires between runs that are on time; add slack for late and long runs');
    }
    if (!heartbeat && props.heartbeatPeriod === undefined) {
      Annotations.of(this).addInfo(`cdk-instance-snapshots: the heartbeat alarm of ${this.scheduleId} cannot tell a missing run, because the schedule `
        + `${expression.expressionString} has no interval the construct can derive: set heartbeatPeriod to its longest interval plus slack (at most 7 days) to have it`);
    }
    if (!watchesRuns && minimum === 0) {
      return undefined; // nothing to watch: no minimum, and missing data cannot breach
    }
    const { period, evaluationPeriods } = heartbeatPeriods(heartbeat ?? Duration.days(1));
    const window = heartbeat ? heartbeat.toHumanString() : '1 day';
    const alarm = new cloudwatch.Alarm(this, 'HeartbeatAlarm', {
      alarmDescription: `cdk-instance-snapshots: ${watchesRuns ? `no run finished within ${window}, or ` : ''}`
        + `a run selected ${minimum === 1 ? 'no instance' : `fewer than ${minimum} instances`}. Check the schedule, its workflow's executions `
        + 'and instanceTags against the instances\' tags (README, Operations).',
      metric: this.metricInstancesSelected({ period, statistic: cloudwatch.Stats.MINIMUM }),
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      threshold: minimum,
      evaluationPeriods,
      datapointsToAlarm: evaluationPeriods,
      treatMissingData: watchesRuns ? cloudwatch.TreatMissingData.BREACHING : cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(notify);
    return alarm;
  }

  private createDashboard(withRetention: boolean, withCopies: boolean, withVault: boolean): cloudwatch.Dashboard {
    const period = Duration.hours(1);
    const alarms = [this.instancesFailedAlarm, this.heartbeatAlarm, this.deadLetterQueueAlarm].filter((a): a is cloudwatch.Alarm => a !== undefined);
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.days(14),
    });
    dashboard.addWidgets(new cloudwatch.TextWidget({
      markdown: `# cdk-instance-snapshots: ${this.scheduleId}\nOne data point per finished run. Failures are notified to the schedule's topic.`,
      width: 24,
      height: 2,
    }));
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Instances per run',
        width: 12,
        left: [
          this.metricInstancesSelected({ period, label: 'Selected' }),
          this.metricSnapshotSetsCreated({ period, label: 'Sets created' }),
          this.metricInstancesAlreadyDone({ period, label: 'Already done' }),
          this.metricInstancesSkipped({ period, label: 'Skipped' }),
          this.metricInstancesFailed({ period, label: 'Failed' }),
          this.metricInstancesNotAttempted({ period, label: 'Not attempted' }),
        ],
      }),
      new cloudwatch.GraphWidget({
        title: 'Failures',
        width: 12,
        left: [
          this.metricSnapshotSetsFailed({ period, label: 'Sets failed later (EBS events)' }),
          this.metricStepFailures({ period, label: 'Worker steps that threw' }),
          this.stateMachine.metricFailed({ period, label: 'Runs failed' }),
          this.stateMachine.metricTimedOut({ period, label: 'Runs timed out' }),
          this.stateMachine.metricAborted({ period, label: 'Runs aborted' }),
        ],
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Run duration (seconds)',
        width: 12,
        left: [this.metricRunDuration({ period, label: 'Run duration' })],
      }),
      ...(alarms.length > 0 ? [new cloudwatch.AlarmStatusWidget({ title: 'Alarms', width: 12, alarms })] : []),
    );
    if (withRetention) {
      dashboard.addWidgets(new cloudwatch.GraphWidget({
        title: 'Retention (sets per run)',
        width: 24,
        left: [
          this.metricSnapshotSetsDeleted({ period, label: 'Sets deleted' }),
          this.metricSnapshotSetsInUse({ period, label: 'Kept: backs an AMI' }),
          this.metricSnapshotSetsLocked({ period, label: 'Kept: locked' }),
          this.metricPruneFailures({ period, label: 'Deletions failed' }),
          this.metricSnapshotLocksFailed({ period, label: 'Locks failed' }),
        ],
        right: [this.metricSnapshotsDeleted({ period, label: 'Snapshots deleted' })],
      }));
    }
    if (withCopies) {
      dashboard.addWidgets(new cloudwatch.GraphWidget({
        title: 'Copies to other Regions (per run)',
        width: 24,
        left: [
          this.metricCopyFailures({ period, label: 'Sets not copied' }),
          this.metricCopiesOverdue({ period, label: 'Copies overdue' }),
        ],
        right: [this.metricSnapshotsCopied({ period, label: 'Snapshots copied' })],
      }));
    }
    if (withVault) {
      dashboard.addWidgets(new cloudwatch.GraphWidget({
        title: 'Shared with the vault account (sets per run)',
        width: 24,
        left: [
          this.metricSetsShared({ period, label: 'Sets shared' }),
          this.metricShareFailures({ period, label: 'Sets not shared' }),
        ],
      }));
    }
    return dashboard;
  }

  /** The worker notifies the topic of this schedule's failed sets: publish, and the topic's key when the app knows it. */
  private notificationStatements(): iam.PolicyStatement[] {
    const topic = this.notificationTopic;
    return [
      new iam.PolicyStatement({
        sid: 'NotifyFailedSnapshotSets',
        actions: ['sns:Publish'],
        resources: [topic.topicArn],
      }),
      ...(topic.masterKey ? [new iam.PolicyStatement({
        sid: 'EncryptNotifications',
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
        resources: [topic.masterKey.keyArn],
      })] : []),
    ];
  }

  /** Least privilege for this schedule: its instances (by tag), their volumes, snapshots tagged with its id, its log group. */
  private workerStatements(props: InstanceSnapshotScheduleProps, lifecycle: WorkerLifecycle): iam.PolicyStatement[] {
    const stack = Stack.of(this);
    const instanceTagConditions: Record<string, string[]> = {};
    for (const [key, values] of Object.entries(props.instanceTags)) {
      instanceTagConditions[`aws:ResourceTag/${key}`] = values;
    }
    const snapshotsIn = (region?: string) =>
      stack.formatArn({ service: 'ec2', region, account: '', resource: 'snapshot', resourceName: '*', arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
    const snapshotArn = snapshotsIn();
    const taggedWithThisSchedule = { StringEquals: { [`aws:ResourceTag/${SCHEDULE_TAG}`]: this.scheduleId } };
    const requestsThisSchedule = { StringEquals: { [`aws:RequestTag/${SCHEDULE_TAG}`]: this.scheduleId } };
    // One statement per action for every destination Region: each Region's snapshots in its Resource list.
    const copyArns = (lifecycle.copyRegions ?? []).map(snapshotsIn);
    const deletable = [...(lifecycle.prunes ? [snapshotArn] : []), ...(lifecycle.prunedCopyRegions ?? []).map(snapshotsIn)];
    return [
      new iam.PolicyStatement({
        sid: 'CreateSnapshotsOfSelectedInstances',
        actions: ['ec2:CreateSnapshots'],
        resources: [stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*', arnFormat: ArnFormat.SLASH_RESOURCE_NAME })],
        conditions: { StringEquals: instanceTagConditions },
      }),
      new iam.PolicyStatement({
        sid: 'CreateSnapshotsOfTheirVolumes',
        actions: ['ec2:CreateSnapshots'],
        resources: [stack.formatArn({ service: 'ec2', resource: 'volume', resourceName: '*', arnFormat: ArnFormat.SLASH_RESOURCE_NAME })],
      }),
      new iam.PolicyStatement({
        sid: 'CreateSnapshotsTaggedWithThisSchedule',
        actions: ['ec2:CreateSnapshots'],
        resources: [snapshotArn],
        conditions: requestsThisSchedule,
      }),
      new iam.PolicyStatement({
        sid: 'TagSnapshotsOnCreation',
        actions: ['ec2:CreateTags'],
        resources: [snapshotArn],
        conditions: { StringEquals: { 'ec2:CreateAction': 'CreateSnapshots' } },
      }),
      // Only snapshots that carry this schedule's tag: never another schedule's, nor anyone else's;
      // here with retention, and in each destination Region whose copies have a retention.
      ...(deletable.length > 0 ? [new iam.PolicyStatement({
        sid: 'DeleteSnapshotsOfThisSchedule',
        actions: ['ec2:DeleteSnapshot'],
        resources: deletable,
        conditions: taggedWithThisSchedule,
      })] : []),
      ...(lifecycle.locks ? [new iam.PolicyStatement({
        sid: 'LockSnapshotsOfThisSchedule',
        actions: ['ec2:LockSnapshot'],
        resources: [snapshotArn],
        conditions: taggedWithThisSchedule,
      })] : []),
      // CopySnapshot, called in the destination Region, authorizes two snapshots: the source (this
      // schedule's, here) and the new copy there (created with this schedule's tag), and CreateTags
      // on the copy for its tags.
      ...(copyArns.length > 0 ? [
        new iam.PolicyStatement({
          sid: 'CopySnapshotsOfThisSchedule',
          actions: ['ec2:CopySnapshot'],
          resources: [snapshotArn],
          conditions: taggedWithThisSchedule,
        }),
        new iam.PolicyStatement({
          sid: 'CopiesTaggedWithThisSchedule',
          actions: ['ec2:CopySnapshot'],
          resources: copyArns,
          conditions: requestsThisSchedule,
        }),
        new iam.PolicyStatement({
          sid: 'TagCopiesOnCreation',
          actions: ['ec2:CreateTags'],
          resources: copyArns,
          conditions: { StringEquals: { 'ec2:CreateAction': 'CopySnapshot' } },
        }),
      ] : []),
      // DescribeInstances, DescribeSnapshots, DescribeVolumes, DescribeImages and
      // DescribeLockedSnapshots support no resource-level permissions: EC2 offers no resource type
      // for them, so `Resource: '*'` is the only form.
      new iam.PolicyStatement({
        sid: 'DescribeHasNoResourceType',
        // With retention: which snapshots back an AMI (DescribeImages); with retention or a lock:
        // which snapshots are locked and until when (DescribeLockedSnapshots).
        actions: describeActions(lifecycle),
        resources: ['*'],
      }),
      new iam.PolicyStatement({
        sid: 'WriteItsLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn],
      }),
    ];
  }
}

/**
 * The worker encrypts each copy with its rule's key: these keys only, and grants only for AWS
 * resources (EBS holds a grant while it copies). `kms:ReEncrypt*` written out as its two actions.
 */
function copyKeyStatements(copies: CopyRuleSpec[]): iam.PolicyStatement[] {
  const keys = [...new Set(copies.flatMap((c) => (c.kmsKeyArn !== undefined ? [c.kmsKeyArn] : [])))];
  if (keys.length === 0) return [];
  return [
    new iam.PolicyStatement({
      sid: 'EncryptCopiesWithTheirKeys',
      actions: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncryptFrom', 'kms:ReEncryptTo', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:DescribeKey'],
      resources: keys,
    }),
    new iam.PolicyStatement({
      sid: 'LetEbsUseTheCopyKeys',
      actions: ['kms:CreateGrant'],
      resources: keys,
      conditions: { Bool: { 'kms:GrantIsForAWSResource': true } },
    }),
  ];
}

/**
 * Sharing with the vault: `ModifySnapshotAttribute` on this schedule's snapshots only (by their
 * schedule tag), and only to add the vault account (`ec2:Add/userId`); events on the vault's bus only.
 */
function vaultShareStatements(stack: Stack, scheduleId: string, vault: VaultShareSpec): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'ShareSnapshotsWithTheVault',
      actions: ['ec2:ModifySnapshotAttribute'],
      resources: [stack.formatArn({ service: 'ec2', account: '', resource: 'snapshot', resourceName: '*', arnFormat: ArnFormat.SLASH_RESOURCE_NAME })],
      conditions: { StringEquals: { [`aws:ResourceTag/${SCHEDULE_TAG}`]: scheduleId, 'ec2:Add/userId': vault.account } },
    }),
    new iam.PolicyStatement({
      sid: 'AnnounceSharedSetsToTheVault',
      actions: ['events:PutEvents'],
      resources: [vault.eventBusArn],
    }),
  ];
}

/** The schedule ids claimed in each app, by account/Region: value -> the path of the construct that has it. */
const CLAIMED_SCHEDULE_IDS = new WeakMap<IConstruct, Map<string, string>>();

/**
 * Claims a schedule id in its app for its stack's account and Region, or throws naming the
 * construct that has it already. Unresolved accounts or Regions compare by their token text: two
 * environment-agnostic stacks count as the same account and Region (they may be deployed there).
 */
function claimScheduleId(construct: Construct, scheduleId: string): void {
  const stack = Stack.of(construct);
  const where = `${stack.account}/${stack.region}`;
  let claimed = CLAIMED_SCHEDULE_IDS.get(construct.node.root);
  if (!claimed) CLAIMED_SCHEDULE_IDS.set(construct.node.root, claimed = new Map());
  const key = JSON.stringify([scheduleId, where]);
  const holder = claimed.get(key);
  if (holder !== undefined) {
    const place = Token.isUnresolved(where) ? 'the same account and Region' : `account/Region ${where}`;
    throw new Error(`scheduleId must be unique per account and Region: ${holder} and ${construct.node.path} both have it in ${place} `
      + `(their snapshots, locks, metrics and permissions would mix), got: ${show(scheduleId)}`);
  }
  claimed.set(key, construct.node.path);
}

/**
 * The shortest age at which the retention may stop keeping a set, as far as the construct can
 * tell: the age rule, and the count rule times the schedule's interval when it is known. Calendar
 * rules can drop a set as soon as a newer one shares its bucket, so they add nothing here.
 */
function keptAtLeastSeconds(retention: RetentionSpec, expression: scheduler.ScheduleExpression): number {
  const interval = scheduleInterval(expression);
  const byCount = retention.count !== undefined && interval ? retention.count * interval.toSeconds() : 0;
  return Math.max(retention.maxAgeSeconds ?? 0, byCount);
}

/** At most 512 characters, and never a CDK token cut in half. */
function scheduleDescription(tags: { [key: string]: string[] }): string {
  const full = `cdk-instance-snapshots: snapshot sets of instances tagged ${Object.entries(tags).map(([k, v]) => `${k}=${v.join('|')}`).join(', ')}`;
  if (Token.isUnresolved(full)) return 'cdk-instance-snapshots: snapshot sets of tagged instances';
  return full.length <= 512 ? full : `${full.slice(0, 509)}...`;
}
