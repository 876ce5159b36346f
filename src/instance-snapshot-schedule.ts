import { Annotations, ArnFormat, Duration, Stack, TimeZone, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { acknowledgeCreateSnapshotsWildcards } from './private/nag-acknowledgements';
import {
  checkDescription,
  checkExcludeDataVolumeIds,
  checkExcludeDataVolumeTags,
  checkInstanceTags,
  checkOutpostArn,
  checkSnapshotTags,
  ContractViolation,
  COPY_TAGS_FROM_VOLUME,
  LIMITS,
  REQUEST_VERSION,
  SCHEDULE_TAG,
  SnapshotRunRequest,
} from './private/request-contract';
import { SnapshotHandlerFunction } from './private/snapshot-handler-function';
import { UnqualifiedLambdaInvoke } from './private/unqualified-lambda-invoke';

/**
 * Which source tags EC2 copies onto the snapshots it creates.
 *
 * @see https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSnapshots.html
 */
export enum CopyTagsFromSource {
  /** Copy each source volume's tags onto that volume's snapshot. */
  VOLUME = 'VOLUME',
}

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
   * Description copied onto every snapshot of a set. At most 255 characters.
   *
   * @default - no description
   */
  readonly description?: string;

  /**
   * Tags to put on every snapshot.
   *
   * Keys at most 127 characters and not starting with `aws:` or `cdk-instance-snapshots:`;
   * values at most 256 characters. The library adds 4 tags of its own (schedule, execution id,
   * instance id, scheduled time), so at most 46 tags here; tags copied from volumes count
   * towards EC2's limit of 50 per snapshot too.
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
   * Where EventBridge Scheduler sends a run it could not deliver to the handler.
   *
   * @default - undelivered runs are dropped after the retries
   */
  readonly deadLetterQueue?: sqs.IQueue;

  /**
   * How long EventBridge Scheduler keeps trying to deliver a run to the handler.
   *
   * Between 1 minute and 24 hours.
   *
   * @default Duration.hours(24)
   */
  readonly maxEventAge?: Duration;

  /**
   * How many times EventBridge Scheduler retries delivering a run to the handler.
   *
   * Between 0 and 185. Failures inside the handler are retried by Lambda's asynchronous
   * invocation (twice), which never duplicates a snapshot set.
   *
   * @default 185
   */
  readonly retryAttempts?: number;
}

/**
 * Takes a crash-consistent snapshot set (EC2 `CreateSnapshots`) of every EC2 instance that carries
 * the given tags, on an EventBridge Scheduler schedule.
 *
 * Creates a schedule with its own role, and one Lambda function per stack that every
 * `InstanceSnapshotSchedule` of the stack shares; each schedule adds its own IAM policy to the
 * function's role.
 */
export class InstanceSnapshotSchedule extends Construct {
  /** The default schedule: every day at 03:00 UTC. */
  public static readonly DEFAULT_SCHEDULE = scheduler.ScheduleExpression.cron({ minute: '0', hour: '3', timeZone: TimeZone.ETC_UTC });

  /** The EventBridge Scheduler schedule. */
  public readonly schedule: scheduler.Schedule;

  /** The role EventBridge Scheduler assumes to invoke the handler. */
  public readonly schedulerRole: iam.IRole;

  /** The Lambda function that takes the snapshot sets (shared by every schedule of the stack). */
  public readonly handler: lambda.IFunction;

  /** The handler's role (shared by every schedule of the stack). */
  public readonly handlerRole: iam.IRole;

  /** The handler's log group (shared by every schedule of the stack): one JSON line per instance and run. */
  public readonly logGroup: logs.ILogGroup;

  /** The IAM policy that lets the handler snapshot this schedule's instances. */
  public readonly handlerPolicy: iam.Policy;

  /**
   * Identifies this schedule's snapshots: the value of their `cdk-instance-snapshots:schedule` tag
   * (this construct's path in the app).
   */
  public readonly scheduleId: string;

  /**
   * @param scope the stack or construct to add the schedule to; the shared handler goes into its stack
   * @param id the construct id: part of the snapshots' `cdk-instance-snapshots:schedule` tag, so keep it stable
   * @param props which instances, when, and the `CreateSnapshots` options
   */
  constructor(scope: Construct, id: string, props: InstanceSnapshotScheduleProps) {
    super(scope, id);
    validateProps(props);

    this.scheduleId = this.node.path;
    if (this.scheduleId.length > LIMITS.maxTagValueLength) {
      throw new Error(`the construct path is the snapshots' "${SCHEDULE_TAG}" tag value and must be at most ${LIMITS.maxTagValueLength} characters, got: ${JSON.stringify(this.scheduleId)} (${this.scheduleId.length})`);
    }
    if (props.dryRun) {
      Annotations.of(this).addWarningV2('cdk-instance-snapshots:dryRun',
        'dryRun is true: runs only check permissions and create no snapshots');
    }

    const shared = SnapshotHandlerFunction.of(this);
    shared.addSchedule();
    this.handler = shared.function;
    this.handlerRole = shared.role;
    this.logGroup = shared.logGroup;
    this.handlerPolicy = new iam.Policy(this, 'HandlerPolicy', {
      roles: [shared.role],
      statements: this.handlerStatements(props),
    });
    acknowledgeCreateSnapshotsWildcards(this.handlerPolicy);

    const request: SnapshotRunRequest = {
      version: REQUEST_VERSION,
      scheduleId: this.scheduleId,
      executionId: scheduler.ContextAttribute.executionId,
      scheduledTime: scheduler.ContextAttribute.scheduledTime,
      instanceTags: props.instanceTags,
      excludeBootVolume: props.excludeBootVolume ?? false,
      excludeDataVolumeIds: props.excludeDataVolumeIds ?? [],
      excludeDataVolumeTags: props.excludeDataVolumeTags ?? {},
      outpostArn: props.outpostArn,
      description: props.description,
      snapshotTags: props.snapshotTags ?? {},
      copyTagsFromSource: props.copyTagsFromSource === CopyTagsFromSource.VOLUME ? COPY_TAGS_FROM_VOLUME : undefined,
      dryRun: props.dryRun ?? false,
    };

    const stack = Stack.of(this);
    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
      description: 'cdk-instance-snapshots: lets EventBridge Scheduler invoke the snapshot handler',
    });

    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      schedule: props.schedule ?? InstanceSnapshotSchedule.DEFAULT_SCHEDULE,
      scheduleName: props.scheduleName,
      scheduleGroup: props.scheduleGroup,
      description: `cdk-instance-snapshots: snapshot sets of instances tagged ${describeTags(props.instanceTags)}`.slice(0, 512),
      enabled: props.enabled ?? true,
      timeWindow: props.timeWindow,
      target: new UnqualifiedLambdaInvoke(this.handler, {
        role: this.schedulerRole,
        input: scheduler.ScheduleTargetInput.fromObject(request),
        deadLetterQueue: props.deadLetterQueue,
        maxEventAge: props.maxEventAge,
        retryAttempts: props.retryAttempts,
      }),
    });
  }

  /** Least privilege for this schedule: its instances (by tag), their volumes, snapshots tagged with its id. */
  private handlerStatements(props: InstanceSnapshotScheduleProps): iam.PolicyStatement[] {
    const stack = Stack.of(this);
    const instanceTagConditions: Record<string, string[]> = {};
    for (const [key, values] of Object.entries(props.instanceTags)) {
      instanceTagConditions[`aws:ResourceTag/${key}`] = values;
    }
    const snapshotArn = stack.formatArn({ service: 'ec2', account: '', resource: 'snapshot', resourceName: '*', arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
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
        conditions: { StringEquals: { [`aws:RequestTag/${SCHEDULE_TAG}`]: this.scheduleId } },
      }),
      new iam.PolicyStatement({
        sid: 'TagSnapshotsOnCreation',
        actions: ['ec2:CreateTags'],
        resources: [snapshotArn],
        conditions: { StringEquals: { 'ec2:CreateAction': 'CreateSnapshots' } },
      }),
    ];
  }
}

function describeTags(tags: { [key: string]: string[] }): string {
  return Object.entries(tags).map(([k, v]) => `${k}=${v.join('|')}`).join(', ');
}

function validateProps(props: InstanceSnapshotScheduleProps): void {
  const unresolved = (s: string) => Token.isUnresolved(s);
  const violations: ContractViolation[] = [];
  if (props.instanceTags === undefined || props.instanceTags === null) {
    violations.push({ prop: 'instanceTags', message: 'instanceTags is required, got: undefined' });
  } else if (!Token.isUnresolved(props.instanceTags)) {
    violations.push(...checkInstanceTags(props.instanceTags, unresolved));
  }
  if (props.excludeDataVolumeIds && !Token.isUnresolved(props.excludeDataVolumeIds)) {
    violations.push(...checkExcludeDataVolumeIds(props.excludeDataVolumeIds, unresolved));
  }
  if (props.excludeDataVolumeTags && !Token.isUnresolved(props.excludeDataVolumeTags)) {
    violations.push(...checkExcludeDataVolumeTags(props.excludeDataVolumeTags, unresolved));
  }
  if (props.snapshotTags && !Token.isUnresolved(props.snapshotTags)) {
    violations.push(...checkSnapshotTags(props.snapshotTags, unresolved));
  }
  if (props.outpostArn !== undefined && !Token.isUnresolved(props.outpostArn)) {
    violations.push(...checkOutpostArn(props.outpostArn));
  }
  if (props.description !== undefined && !Token.isUnresolved(props.description)) {
    violations.push(...checkDescription(props.description));
  }
  if (props.copyTagsFromSource !== undefined && !Object.values(CopyTagsFromSource).includes(props.copyTagsFromSource)) {
    violations.push({ prop: 'copyTagsFromSource', message: `copyTagsFromSource must be a CopyTagsFromSource member, got: ${JSON.stringify(props.copyTagsFromSource)}` });
  }
  if (violations.length > 0) {
    // Every problem at once, one per line, so a user fixes them in one pass.
    throw new Error(violations.map((v) => v.message).join('\n'));
  }
}
