import * as path from 'path';
import { Annotations, ArnFormat, Duration, Stack, TimeZone, Token } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { acknowledgeWorkerWildcards, acknowledgeWorkflowWildcards } from './private/nag-acknowledgements';
import { warnIfPolicyTooLarge } from './private/policy-size';
import {
  checkCreateSnapshotsPerSecond,
  checkDescription,
  checkExcludeDataVolumeIds,
  checkExcludeDataVolumeTags,
  checkInstanceTags,
  checkOutpostArn,
  checkScheduleId,
  checkSnapshotTags,
  ContractViolation,
  COPY_TAGS_FROM_VOLUME,
  DEFAULT_CREATE_SNAPSHOTS_PER_SECOND,
  REQUEST_VERSION,
  requestSha256,
  SCHEDULE_TAG,
  ScheduledRunInput,
  show,
  SnapshotRunRequest,
} from './private/request-contract';
import { buildRunDefinition } from './private/run-workflow';
import { SharedResources, WORKER_TIMEOUT } from './private/shared-resources';

/** Where the build puts the esbuild bundle of lambda/worker.ts (the same from src/ and lib/). */
const WORKER_ASSET_DIR = path.join(__dirname, '..', 'assets', 'lambda', 'worker');

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
   * values at most 256 characters. The library adds 4 tags of its own (schedule, execution,
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
   * Where EventBridge Scheduler sends a run it could not start (the workflow's `StartExecution`
   * kept failing).
   *
   * @default - runs that could not be started are dropped after the retries
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
   * Where the schedule's worker and workflow log (JSON lines; the workflow logs every state with
   * its data).
   *
   * @default - a log group shared by every schedule of the stack, kept for 3 months
   */
  readonly logGroup?: logs.ILogGroup;
}

/**
 * Takes a crash-consistent snapshot set (EC2 `CreateSnapshots`) of every EC2 instance that carries
 * the given tags, on an EventBridge Scheduler schedule.
 *
 * Each scheduled occurrence is one AWS Step Functions execution that creates exactly one snapshot
 * set per selected instance, in bounded worker steps, or ends FAILED naming the instances without
 * one. Every schedule has its own worker function, roles and workflow; a stack's schedules share
 * only the occurrence lock table and the default log group.
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

  /** The Lambda function that makes the EC2 calls of this schedule's runs. */
  public readonly worker: lambda.Function;

  /** The worker's role: `CreateSnapshots` only on this schedule's instances and snapshots tagged with its id. */
  public readonly workerRole: iam.Role;

  /** Where the worker and the workflow log. */
  public readonly logGroup: logs.ILogGroup;

  /** The table of occurrence locks (shared by every schedule of the stack). */
  public readonly lockTable: dynamodb.ITable;

  /**
   * Identifies this schedule's snapshots: the value of their `cdk-instance-snapshots:schedule` tag
   * (this construct's path in the app).
   */
  public readonly scheduleId: string;

  /**
   * @param scope the stack or construct to add the schedule to; the shared lock table goes into its stack
   * @param id the construct id: part of the snapshots' `cdk-instance-snapshots:schedule` tag, so keep it stable
   * @param props which instances, when, and the `CreateSnapshots` options
   */
  constructor(scope: Construct, id: string, props: InstanceSnapshotScheduleProps) {
    super(scope, id);
    validateProps(this, props);

    this.scheduleId = this.node.path;
    const idProblems = checkScheduleId(this.scheduleId, 'the construct path');
    if (idProblems.length > 0) {
      throw new Error(idProblems[0].message);
    }
    if (props.dryRun) {
      Annotations.of(this).addWarningV2('cdk-instance-snapshots:dryRun',
        'dryRun is true: runs only check permissions and create no snapshots');
    }
    const stack = Stack.of(this);
    const shared = SharedResources.of(this);
    this.logGroup = props.logGroup ?? shared.logGroup;
    this.lockTable = shared.lockTable;

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
    };
    // Text, not an object, in the definition: a tag key ending in ".$" stays a tag key.
    const requestJson = stack.toJsonString(request);
    // toJsonString always returns a token: resolved, it is plain text unless props hold tokens.
    const resolvedRequest: unknown = stack.resolve(requestJson);

    const workerPolicy = new iam.PolicyDocument({ statements: this.workerStatements(props) });
    this.workerRole = new iam.Role(this, 'WorkerRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `cdk-instance-snapshots worker of ${this.scheduleId}: lists the selected instances and creates their snapshot sets`.slice(0, 1000),
      inlinePolicies: { Snapshots: workerPolicy },
    });
    acknowledgeWorkerWildcards(this.workerRole);
    warnIfPolicyTooLarge(this, 'WorkerRole', [workerPolicy]);

    this.worker = new lambda.Function(this, 'Worker', {
      description: 'cdk-instance-snapshots: one step of a scheduled run (crash-consistent EBS snapshot sets of tagged EC2 instances)',
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(WORKER_ASSET_DIR),
      role: this.workerRole,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      // A step starts no new instance after 10 minutes and settles the rest within Lambda's limit.
      timeout: WORKER_TIMEOUT,
      memorySize: 512,
      environment: {
        POWERTOOLS_SERVICE_NAME: 'cdk-instance-snapshots',
        POWERTOOLS_METRICS_NAMESPACE: 'CdkInstanceSnapshots',
        // The worker refuses any request but this schedule's (skipped when props hold tokens).
        ...(typeof resolvedRequest === 'string' ? { REQUEST_SHA256: requestSha256(JSON.parse(resolvedRequest)) } : {}),
      },
    });

    const states = new Construct(this, 'States');
    this.stateMachine = new sfn.StateMachine(this, 'Workflow', {
      comment: `cdk-instance-snapshots: one execution per scheduled occurrence of ${this.scheduleId}`.slice(0, 1000),
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromChainable(buildRunDefinition(states, {
        worker: this.worker,
        lockTable: this.lockTable,
        requestJson,
      })),
      timeout: Duration.hours(24),
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
      tracingEnabled: true,
    });
    acknowledgeWorkflowWildcards(this.stateMachine);

    // EventBridge Scheduler presents the schedule group's ARN as aws:SourceArn when it assumes the role.
    const scheduleGroupArn = props.scheduleGroup?.scheduleGroupArn
      ?? stack.formatArn({ service: 'scheduler', resource: 'schedule-group', resourceName: 'default', arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnEquals: { 'aws:SourceArn': scheduleGroupArn },
        },
      }),
      description: 'cdk-instance-snapshots: lets EventBridge Scheduler start the snapshot workflow',
    });

    const input: ScheduledRunInput = {
      scheduledTime: scheduler.ContextAttribute.scheduledTime,
      schedulerExecutionId: scheduler.ContextAttribute.executionId,
    };
    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      schedule: props.schedule ?? InstanceSnapshotSchedule.DEFAULT_SCHEDULE,
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
        deadLetterQueue: props.deadLetterQueue,
        maxEventAge: props.maxEventAge,
        retryAttempts: props.retryAttempts,
      }),
    });
  }

  /** Least privilege for this schedule: its instances (by tag), their volumes, snapshots tagged with its id, its log group. */
  private workerStatements(props: InstanceSnapshotScheduleProps): iam.PolicyStatement[] {
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
      // DescribeInstances, DescribeSnapshots and DescribeVolumes support no resource-level
      // permissions: EC2 offers no resource type for them, so `Resource: '*'` is the only form.
      new iam.PolicyStatement({
        sid: 'DescribeHasNoResourceType',
        actions: ['ec2:DescribeInstances', 'ec2:DescribeSnapshots', 'ec2:DescribeVolumes'],
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

/** At most 512 characters, and never a CDK token cut in half. */
function scheduleDescription(tags: { [key: string]: string[] }): string {
  const full = `cdk-instance-snapshots: snapshot sets of instances tagged ${Object.entries(tags).map(([k, v]) => `${k}=${v.join('|')}`).join(', ')}`;
  if (Token.isUnresolved(full)) return 'cdk-instance-snapshots: snapshot sets of tagged instances';
  return full.length <= 512 ? full : `${full.slice(0, 509)}...`;
}

/** Warns about tag keys and values with white space at either end: they almost never match an instance. */
function warnAboutPadding(scope: Construct, prop: string, tags: Record<string, unknown> | undefined): void {
  for (const [key, values] of Object.entries(tags ?? {})) {
    const padded = [key, ...(Array.isArray(values) ? values : [values])]
      .filter((x): x is string => typeof x === 'string' && !Token.isUnresolved(x) && x.trim() !== x);
    if (padded.length > 0) {
      Annotations.of(scope).addWarningV2(`cdk-instance-snapshots:${prop}Whitespace`,
        `${prop} has keys or values with white space at either end, which EC2 compares exactly: ${show(padded)}`);
    }
  }
}

function validateProps(scope: Construct, props: InstanceSnapshotScheduleProps): void {
  const unresolved = (s: string) => Token.isUnresolved(s);
  const violations: ContractViolation[] = [];
  const tagMap = (prop: string, value: unknown, required: boolean): value is { [key: string]: string[] } => {
    if (value === undefined && !required) return false;
    if (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value)) {
      violations.push({ prop, message: `${prop} must be an object of tag key -> list of values${required ? ' (required)' : ''}, got: ${show(value)}` });
      return false;
    }
    for (const [key, values] of Object.entries(value)) {
      if (Token.isUnresolved(values)) {
        violations.push({ prop, message: `${prop}[${show(key)}] must be a list written out in the app (a list token cannot be checked or turned into EC2 filters), got: ${show(values)}` });
        return false;
      }
    }
    return !Token.isUnresolved(value);
  };
  if (tagMap('instanceTags', props.instanceTags, true)) {
    violations.push(...checkInstanceTags(props.instanceTags, unresolved));
    warnAboutPadding(scope, 'instanceTags', props.instanceTags);
  }
  if (props.excludeDataVolumeIds !== undefined && !Token.isUnresolved(props.excludeDataVolumeIds)) {
    if (!Array.isArray(props.excludeDataVolumeIds)) {
      violations.push({ prop: 'excludeDataVolumeIds', message: `excludeDataVolumeIds must be a list of volume ids, got: ${show(props.excludeDataVolumeIds)}` });
    } else {
      violations.push(...checkExcludeDataVolumeIds(props.excludeDataVolumeIds, unresolved));
    }
  }
  if (tagMap('excludeDataVolumeTags', props.excludeDataVolumeTags, false)) {
    violations.push(...checkExcludeDataVolumeTags(props.excludeDataVolumeTags!, unresolved));
    warnAboutPadding(scope, 'excludeDataVolumeTags', props.excludeDataVolumeTags);
  }
  if (props.snapshotTags !== undefined && !Token.isUnresolved(props.snapshotTags)) {
    if (props.snapshotTags === null || typeof props.snapshotTags !== 'object' || Array.isArray(props.snapshotTags)) {
      violations.push({ prop: 'snapshotTags', message: `snapshotTags must be an object of tag key -> value, got: ${show(props.snapshotTags)}` });
    } else {
      violations.push(...checkSnapshotTags(props.snapshotTags, unresolved));
    }
  }
  if (props.outpostArn !== undefined && !Token.isUnresolved(props.outpostArn)) {
    violations.push(...checkOutpostArn(props.outpostArn));
  }
  if (props.description !== undefined && !Token.isUnresolved(props.description)) {
    violations.push(...checkDescription(props.description));
  }
  if (props.copyTagsFromSource !== undefined && !Object.values(CopyTagsFromSource).includes(props.copyTagsFromSource)) {
    violations.push({ prop: 'copyTagsFromSource', message: `copyTagsFromSource must be a CopyTagsFromSource member, got: ${show(props.copyTagsFromSource)}` });
  }
  // Plain JavaScript callers can pass anything: 'false' is a truthy string, not false.
  for (const prop of ['excludeBootVolume', 'dryRun', 'enabled'] as const) {
    const value: unknown = props[prop];
    if (value !== undefined && typeof value !== 'boolean') {
      violations.push({ prop, message: `${prop} must be true or false, got: ${show(value)}` });
    }
  }
  if (props.createSnapshotsPerSecond !== undefined && !Token.isUnresolved(props.createSnapshotsPerSecond)) {
    violations.push(...checkCreateSnapshotsPerSecond(props.createSnapshotsPerSecond));
  }
  if (props.retryAttempts !== undefined && !Token.isUnresolved(props.retryAttempts)
    && (!Number.isInteger(props.retryAttempts) || props.retryAttempts < 0 || props.retryAttempts > 185)) {
    violations.push({ prop: 'retryAttempts', message: `retryAttempts must be a whole number from 0 to 185, got: ${show(props.retryAttempts)}` });
  }
  if (props.maxEventAge !== undefined && !Token.isUnresolved(props.maxEventAge.toSeconds())) {
    const seconds = props.maxEventAge.toSeconds();
    if (seconds < 60 || seconds > 86_400) {
      violations.push({ prop: 'maxEventAge', message: `maxEventAge must be from 1 minute to 24 hours, got: ${props.maxEventAge.toHumanString()}` });
    }
  }
  if (violations.length > 0) {
    // Every problem at once, one per line, so a user fixes them in one pass.
    throw new Error(violations.map((v) => v.message).join('\n'));
  }
}
