import { Annotations, ArnFormat, Duration, RemovalPolicy, Stack, TimeZone, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventsTargets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as lambdaDestinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { InlinePolicyRole } from './private/inline-policy-role';
import { libraryMetric } from './private/library-metric';
import { DEFAULT_GONE_INSTANCE_RETENTION, isTokenValue, MAX_LIFECYCLE_SECONDS, renderRetentionSpec, showDuration, wholeUnits } from './private/lifecycle';
import { acknowledgeInvokeWildcard, acknowledgeVaultWorkerWildcards, VAULT_DESCRIBE_ACTIONS } from './private/nag-acknowledgements';
import { warnIfPolicyTooLarge } from './private/policy-size';
import {
  checkLockSpec,
  checkRetentionSpec,
  checkScheduleId,
  ContractViolation,
  InvalidRunRequestError,
  LIFECYCLE_LIMITS,
  METRICS,
  parseVaultRequest,
  SCHEDULE_TAG,
  show,
  VAULT_EVENT,
  VAULT_PRUNE_ACTION,
  VAULT_REQUEST_ENV,
  VaultRequest,
} from './private/request-contract';
import { allowAlarmsToPublish, describeTopic } from './private/shared-resources';
import { ACCOUNT_ID, checkDimensionValue } from './private/validate-props';
import { WORKER_ARCHITECTURE, WORKER_ASSET_DIR, WORKER_RUNTIME, WORKER_SERVICE_NAME } from './private/worker-code';
import { Retention } from './retention';
import { SnapshotLock } from './snapshot-lock';

/** EventBridge takes at most this many accounts in one event pattern field, and IAM this many principals in the bus policy, comfortably. */
const MAX_SOURCE_ACCOUNTS = 50;
/** An event bus name that EventBridge accepts for a custom bus (no `/`: that is a partner bus). */
const EVENT_BUS_NAME = /^[.\-_A-Za-z0-9]{1,256}$/;
/** A KMS key ARN (IAM allows the use of a key by its key ARN: an alias ARN would allow nothing). */
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:key\/[A-Za-z0-9-]+$/;
const KMS_KEY_ARN_EXAMPLE = '"arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"';
/** How long the vault's worker may run: Lambda's limit. */
const VAULT_WORKER_TIMEOUT = Duration.minutes(15);

/**
 * Properties of a `SnapshotVault`.
 */
export interface SnapshotVaultProps {
  /**
   * The accounts whose shared snapshot sets the vault copies: the schedules there name this vault
   * in their `vault`.
   *
   * Only these accounts may put events on the vault's bus, only their events reach the worker, and
   * the worker copies only snapshots that these accounts own and shared with the vault account.
   * 1 to 50 distinct 12-digit account ids, written out in the app, none the vault's own account.
   */
  readonly sourceAccounts: string[];

  /**
   * Which copies to keep, per source instance, counted like a schedule's `retention` (in the time
   * zone of `pruneSchedule`): every set of copies that no rule keeps is deleted by the daily prune.
   *
   * Only copies tagged with this vault's `vaultId` are ever deleted (`ec2:DeleteSnapshot` under an
   * `aws:ResourceTag` condition); locked copies are kept until their lock expires.
   *
   * @default - no retention: copies are never deleted (the construct warns; acknowledge the
   * warning `cdk-instance-snapshots:vaultNoRetention` if something else deletes them)
   */
  readonly retention?: Retention;

  /**
   * How long the count and calendar rules of `retention` keep holding the copies of an instance,
   * counted from its newest copy's scheduled time. The vault cannot see the source instances, so
   * every instance counts as gone: after this period, only an age rule keeps its copies.
   *
   * Whole seconds from 1 day to 36,600 days (100 years). Only with `retention`.
   *
   * @default Duration.days(90)
   */
  readonly goneInstanceRetention?: Duration;

  /**
   * Lock every copy (`LockSnapshot`) as soon as it is made: an immutable copy that nobody can delete
   * before the lock expires, in compliance mode not even the vault account's root user.
   *
   * @see https://docs.aws.amazon.com/ebs/latest/userguide/ebs-snapshot-lock.html
   * @default - no lock
   */
  readonly lock?: SnapshotLock;

  /**
   * The vault account's KMS key that encrypts every copy, copies of unencrypted snapshots too.
   *
   * A key (not an alias) in the vault's Region; its policy must let the account's IAM policies grant
   * its use (the default key policy does). The worker role may use this key, and create grants on
   * it for AWS resources only.
   *
   * @see https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption.html
   * @default - EC2's default: copies of encrypted snapshots are encrypted with the vault Region's
   * default EBS key; copies of unencrypted snapshots stay unencrypted, unless the vault account
   * encrypts EBS by default
   */
  readonly kmsKey?: kms.IKey;

  /**
   * The ARNs of customer managed keys of the source accounts that encrypt shared snapshots: the
   * worker role may use them to copy (decrypt, re-encrypt, create grants for AWS resources).
   *
   * Each key's policy (in its own account) must also let the vault account use it. Key ARNs, not
   * aliases, in the vault's Region. Snapshots encrypted with the AWS managed key `aws/ebs` cannot be
   * shared at all.
   *
   * @see https://docs.aws.amazon.com/ebs/latest/userguide/ebs-modifying-snapshot-permissions.html
   * @default - none: only unencrypted shared snapshots, and those whose key policy alone lets the
   * vault account use the key, can be copied
   */
  readonly sourceKmsKeyArns?: string[];

  /**
   * The name of the vault's event bus, where the source schedules announce their shared sets.
   *
   * Keep the default unless the schedules name another bus in their `vault.eventBusArn`.
   *
   * @default 'cdk-instance-snapshots-vault'
   */
  readonly eventBusName?: string;

  /**
   * The vault's identity: the value of every copy's `cdk-instance-snapshots:schedule` tag, its
   * metrics' `Schedule` dimension and the value of its worker's IAM conditions.
   *
   * Keep it stable: changing it orphans every copy made under the old id (the retention never looks
   * at them again, and the worker may no longer delete them). 1 to 255 characters, no white space
   * at either end.
   *
   * @default - the construct's path in the app, e.g. `Vault/Snapshots`
   */
  readonly vaultId?: string;

  /**
   * When the vault applies its `retention`. Only with `retention`.
   *
   * @default - every day at 04:00 UTC (`cron(0 4 * * ? *)`)
   */
  readonly pruneSchedule?: scheduler.ScheduleExpression;

  /**
   * Where the vault's alarms notify.
   *
   * A standard topic. For a topic defined in the app, the construct adds to its topic policy that the
   * account's CloudWatch alarms may publish, and to its key's policy that they may use the key; an
   * imported topic or key is left alone.
   *
   * @default - a topic of its own, encrypted with a customer managed KMS key of its own (rotated
   * yearly) whose policy lets CloudWatch alarms and EventBridge use it
   */
  readonly notificationTopic?: sns.ITopic;

  /**
   * Create the vault's CloudWatch alarms, each notifying `notificationTopic`: worker errors, events
   * in the dead-letter queue, and sets that could not be copied (`VaultCopyFailures`).
   *
   * @default true
   */
  readonly alarms?: boolean;
}

/**
 * An isolated vault account for snapshot sets: copies, into the account it is deployed in, the
 * snapshot sets that `InstanceSnapshotSchedule`s of other accounts share with it (their `vault`).
 *
 * A source schedule shares each completed set with the vault account and sends one event per set
 * to the vault's event bus. The vault's worker checks that the event comes from one of
 * `sourceAccounts` and that each snapshot belongs to that account and is shared, copies every
 * snapshot into the vault account (encrypted with `kmsKey`), tags each copy with the set's identity,
 * its source account, schedule and snapshot id, and locks it with `lock`. With `retention`, a daily
 * schedule deletes the copies no rule keeps. The source accounts get no permission in the vault
 * account beyond putting events on its bus: a compromised source account cannot delete the copies.
 *
 * Deploy it in the same Region as the source schedules (snapshots are shared within a Region).
 */
export class SnapshotVault extends Construct {
  /** The default name of the vault's event bus (and of the bus a schedule's `vault` names by default). */
  public static readonly DEFAULT_EVENT_BUS_NAME = 'cdk-instance-snapshots-vault';

  /** The default prune schedule: every day at 04:00 UTC. */
  public static readonly DEFAULT_PRUNE_SCHEDULE = scheduler.ScheduleExpression.cron({ minute: '0', hour: '4', timeZone: TimeZone.ETC_UTC });

  /** The bus where the source schedules announce their shared sets: only `sourceAccounts` may put events on it. */
  public readonly eventBus: events.EventBus;

  /** Sends the source accounts' shared-set events to the worker. */
  public readonly sharedSetRule: events.Rule;

  /** The Lambda function that copies shared sets into the vault account and applies the retention. */
  public readonly worker: lambda.Function;

  /**
   * The worker's role: copies tagged with the vault's id, deletes and locks only those, and uses only
   * `kmsKey` and `sourceKmsKeyArns`.
   */
  public readonly workerRole: iam.Role;

  /** Where the worker logs (JSON lines, kept 3 months). */
  public readonly logGroup: logs.LogGroup;

  /**
   * Where events end that the vault could not handle: EventBridge could not invoke the worker within
   * 24 hours, or the worker failed on an event three times (Lambda's asynchronous retries).
   */
  public readonly deadLetterQueue: sqs.Queue;

  /** Where the vault's alarms notify: subscribe to it. */
  public readonly notificationTopic: sns.ITopic;

  /** Identifies the vault's copies: the value of their `cdk-instance-snapshots:schedule` tag. */
  public readonly vaultId: string;

  /**
   * Starts the worker's retention pass.
   *
   * @default - none without `retention`
   */
  public readonly pruneSchedule?: scheduler.Schedule;

  /**
   * Fires when the worker failed (Lambda `Errors` > 0 in an hour).
   *
   * @default - none when `alarms` is false
   */
  public readonly workerErrorsAlarm?: cloudwatch.Alarm;

  /**
   * Fires when the dead-letter queue holds an event the vault could not handle.
   *
   * @default - none when `alarms` is false
   */
  public readonly deadLetterQueueAlarm?: cloudwatch.Alarm;

  /**
   * Fires when the worker could not copy a shared set (`VaultCopyFailures` > 0 in an hour).
   *
   * @default - none when `alarms` is false
   */
  public readonly copyFailuresAlarm?: cloudwatch.Alarm;

  /**
   * @param scope the stack (in the vault account and the source schedules' Region) or construct to add the vault to
   * @param id the construct id: part of the default `vaultId` (the copies' `cdk-instance-snapshots:schedule` tag)
   * @param props the source accounts, retention, lock and keys
   */
  constructor(scope: Construct, id: string, props: SnapshotVaultProps) {
    super(scope, id);
    validateVaultProps(this, props);
    const stack = Stack.of(this);
    this.vaultId = props.vaultId ?? this.node.path;
    if (props.vaultId === undefined) {
      const problems = checkScheduleId(this.vaultId, 'the construct path');
      problems.push(...(problems.length > 0 ? [] : checkDimensionValue(this.vaultId, 'the construct path')));
      if (problems.length > 0) throw new Error(problems[0].message);
    }
    const sourceAccounts = [...props.sourceAccounts];
    const pruneExpression = props.pruneSchedule ?? SnapshotVault.DEFAULT_PRUNE_SCHEDULE;
    const retention = props.retention ? renderRetentionSpec(props.retention, {
      timeZone: pruneExpression.timeZone?.timezoneName ?? TimeZone.ETC_UTC.timezoneName,
      goneInstanceSeconds: (props.goneInstanceRetention ?? DEFAULT_GONE_INSTANCE_RETENTION).toSeconds(),
    }) : undefined;
    const lock = props.lock?._render();
    const specProblems = [...(retention ? checkRetentionSpec(retention) : []), ...(lock ? checkLockSpec(lock) : [])];
    if (specProblems.length > 0) throw new Error(specProblems.map((p) => p.message).join('\n'));
    this.annotate(props);

    const request: VaultRequest = {
      version: 1,
      vaultId: this.vaultId,
      sourceAccounts,
      ...(retention ? { retention } : {}),
      ...(lock ? { lock } : {}),
      ...(props.kmsKey ? { kmsKeyArn: props.kmsKey.keyArn } : {}),
    };
    checkRenderedRequest(request);

    this.eventBus = new events.EventBus(this, 'EventBus', { eventBusName: props.eventBusName ?? SnapshotVault.DEFAULT_EVENT_BUS_NAME });
    // The only statement of the bus policy: the source accounts may put events, nobody may do anything else.
    this.eventBus.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'SourceAccountsPutEvents',
      principals: sourceAccounts.map((account) => new iam.AccountPrincipal(account)),
      actions: ['events:PutEvents'],
      resources: [this.eventBus.eventBusArn],
    }));

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    acknowledgeDeadLetterQueue(this.deadLetterQueue);

    this.logGroup = new logs.LogGroup(this, 'WorkerLogs', { retention: logs.RetentionDays.THREE_MONTHS });
    const workerRole = new InlinePolicyRole(this, 'WorkerRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `cdk-instance-snapshots: the worker of the snapshot vault ${this.vaultId}`.slice(0, 1000),
      policyName: 'VaultCopies',
      statements: [
        ...vaultWorkerStatements(stack, this.vaultId, retention !== undefined, lock !== undefined, this.logGroup),
        ...keyStatements(props.kmsKey?.keyArn, props.sourceKmsKeyArns ?? []),
      ],
    });
    this.workerRole = workerRole;
    acknowledgeVaultWorkerWildcards(workerRole, { prunes: retention !== undefined, locks: lock !== undefined });

    this.worker = new lambda.Function(this, 'Worker', {
      description: 'cdk-instance-snapshots: the worker of a snapshot vault (copies the snapshot sets source accounts share)',
      runtime: WORKER_RUNTIME,
      architecture: WORKER_ARCHITECTURE,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(WORKER_ASSET_DIR),
      role: workerRole,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      timeout: VAULT_WORKER_TIMEOUT,
      // The prune pass holds the listing of every copy in the vault.
      memorySize: 1024,
      environment: {
        POWERTOOLS_SERVICE_NAME: WORKER_SERVICE_NAME,
        POWERTOOLS_METRICS_NAMESPACE: METRICS.namespace,
        POWERTOOLS_LOG_LEVEL: 'INFO',
        [VAULT_REQUEST_ENV]: stack.toJsonString(request),
      },
      // EventBridge invokes asynchronously: an event the worker fails on is tried twice more, then
      // kept in the dead-letter queue with the error (Lambda's longest: 2 retries within 6 hours).
      retryAttempts: 2,
      maxEventAge: Duration.hours(6),
      onFailure: new lambdaDestinations.SqsDestination(this.deadLetterQueue),
    });

    this.sharedSetRule = new events.Rule(this, 'SharedSetRule', {
      eventBus: this.eventBus,
      description: `cdk-instance-snapshots: snapshot sets shared with the vault ${this.vaultId}`.slice(0, 512),
      eventPattern: {
        source: [VAULT_EVENT.source],
        detailType: [VAULT_EVENT.detailType],
        account: sourceAccounts,
      },
      // EventBridge keeps trying to invoke the worker (throttling, a function being updated) for
      // 24 hours, then puts the event in the dead-letter queue.
      targets: [new eventsTargets.LambdaFunction(this.worker, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: 8,
        maxEventAge: Duration.hours(24),
      })],
    });

    if (retention) {
      this.pruneSchedule = this.createPruneSchedule(pruneExpression);
    }

    this.notificationTopic = props.notificationTopic ?? this.createTopic();
    if (props.alarms ?? true) {
      allowAlarmsToPublish(this.notificationTopic);
      const notify = new cwActions.SnsAction(this.notificationTopic);
      this.workerErrorsAlarm = this.createWorkerErrorsAlarm(notify);
      this.deadLetterQueueAlarm = this.createDeadLetterQueueAlarm(notify);
      this.copyFailuresAlarm = this.createCopyFailuresAlarm(notify);
    }

    warnIfPolicyTooLarge(this, 'WorkerRole', [workerRole.document], 'fewer sourceKmsKeyArns or a shorter vaultId keep it deployable');
  }

  /**
   * A metric of this vault, by name, with the library's namespace and the `Schedule` dimension
   * (the vault's id).
   *
   * A sum over 5 minutes unless `props` say otherwise.
   *
   * @param metricName the metric's name, e.g. `VaultSetsCopied`
   * @param props period, statistic and the rest
   */
  public metric(metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return libraryMetric(this, this.vaultId, metricName, props);
  }

  /**
   * Shared snapshot sets the vault copied (`VaultSetsCopied`).
   *
   * A sum over 5 minutes by default.
   */
  public metricSetsCopied(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.vaultSetsCopied, props);
  }

  /**
   * Shared snapshot sets the vault could not copy (`VaultCopyFailures`): a snapshot not shared or
   * not owned by the sender, a key the vault may not use, a copy refused.
   *
   * A sum over 5 minutes by default.
   */
  public metricCopyFailures(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.vaultCopyFailures, props);
  }

  /**
   * Copies the vault's retention deleted (`VaultSnapshotsDeleted`).
   *
   * A sum over 5 minutes by default.
   */
  public metricSnapshotsDeleted(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(METRICS.vaultSnapshotsDeleted, props);
  }

  /** Warns about copies kept for ever and about compliance locks. */
  private annotate(props: SnapshotVaultProps): void {
    if (!props.retention) {
      Annotations.of(this).addWarningV2('cdk-instance-snapshots:vaultNoRetention',
        'no retention: the vault never deletes its copies and their storage is billed for ever; set retention '
        + '(for example Retention.calendar({ daily: 7, monthly: 12 })), or acknowledge this warning if something else deletes them');
    }
    const lock = props.lock?._render();
    if (lock?.mode === 'compliance') {
      Annotations.of(this).addWarningV2('cdk-instance-snapshots:complianceLock',
        `lock is in compliance mode: every copy in the vault is locked for ${lock.durationDays} days, and `
        + `${lock.coolOffHours ? `after a cool-off of ${lock.coolOffHours} hours ` : ''}nobody, not even the vault account's root user, can remove or `
        + 'shorten the lock or delete the copy before it expires; this cannot be undone. Acknowledge this warning if that is what you want');
    }
  }

  /** The daily retention pass: EventBridge Scheduler invokes the worker with the prune action. */
  private createPruneSchedule(expression: scheduler.ScheduleExpression): scheduler.Schedule {
    const stack = Stack.of(this);
    const role = new InlinePolicyRole(this, 'PruneSchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnEquals: {
            'aws:SourceArn': stack.formatArn({ service: 'scheduler', resource: 'schedule-group', resourceName: 'default', arnFormat: ArnFormat.SLASH_RESOURCE_NAME }),
          },
        },
      }),
      description: 'cdk-instance-snapshots: lets EventBridge Scheduler start the retention pass of a snapshot vault',
      policyName: 'InvokeWorker',
    });
    acknowledgeInvokeWildcard(role, this.worker.functionArn);
    return new scheduler.Schedule(this, 'PruneSchedule', {
      schedule: expression,
      description: `cdk-instance-snapshots: the retention pass of the snapshot vault ${this.vaultId}`.slice(0, 512),
      target: new schedulerTargets.LambdaInvoke(this.worker, {
        role,
        input: scheduler.ScheduleTargetInput.fromObject({ action: VAULT_PRUNE_ACTION }),
        deadLetterQueue: this.deadLetterQueue,
      }),
    });
  }

  /** A standard topic encrypted with a customer managed key of its own, which CloudWatch alarms and EventBridge may use. */
  private createTopic(): sns.Topic {
    const key = new kms.Key(this, 'NotificationsKey', {
      description: `cdk-instance-snapshots: encrypts the notification topic of the snapshot vault ${this.vaultId}`.slice(0, 8192),
      enableKeyRotation: true,
      // The key protects notifications in transit only (SNS keeps no messages): it goes with the stack.
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'CdkInstanceSnapshotsEventBridgeUseKey',
      principals: [new iam.ServicePrincipal('events.amazonaws.com')],
      actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      resources: ['*'],
    }));
    return new sns.Topic(this, 'Notifications', {
      displayName: 'cdk-instance-snapshots vault',
      masterKey: key,
      enforceSSL: true,
    });
  }

  private createWorkerErrorsAlarm(notify: cloudwatch.IAlarmAction): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, 'WorkerErrorsAlarm', {
      alarmDescription: `cdk-instance-snapshots: the worker of the snapshot vault ${this.vaultId} failed. Its log group says why; `
        + 'an event it failed on three times is in the dead-letter queue (README, An isolated vault account).',
      metric: this.worker.metricErrors({ period: Duration.hours(1), statistic: cloudwatch.Stats.SUM }),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      threshold: 0,
      evaluationPeriods: 1,
      datapointsToAlarm: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(notify);
    return alarm;
  }

  private createDeadLetterQueueAlarm(notify: cloudwatch.IAlarmAction): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, 'DeadLetterQueueAlarm', {
      alarmDescription: `cdk-instance-snapshots: the snapshot vault ${this.vaultId} could not handle an event (a shared set or its retention pass), `
        + 'which is now in its dead-letter queue. Read the message (it names the set and the error), fix the cause, then send the set again '
        + '(README, An isolated vault account) and delete the message.',
      metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM }),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      threshold: 0,
      evaluationPeriods: 1,
      // SQS stops sending metrics for a queue that stays empty: no data is a quiet queue.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(notify);
    return alarm;
  }

  private createCopyFailuresAlarm(notify: cloudwatch.IAlarmAction): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, 'CopyFailuresAlarm', {
      alarmDescription: `cdk-instance-snapshots: the snapshot vault ${this.vaultId} could not copy a shared set. The worker's log names the set, `
        + 'its source account and why (not shared, a key the vault may not use, a copy refused).',
      metric: this.metricCopyFailures({ period: Duration.hours(1) }),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      threshold: 0,
      evaluationPeriods: 1,
      // The worker emits the metric only when it handles a set: no data is nothing to copy.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(notify);
    return alarm;
  }
}

/**
 * The vault's worker: describe (no resource type), copy into snapshots tagged with the vault's id,
 * tag only while copying, delete and lock only the vault's copies, log to its group.
 */
function vaultWorkerStatements(stack: Stack, vaultId: string, prunes: boolean, locks: boolean, logGroup: logs.ILogGroup): iam.PolicyStatement[] {
  const snapshotArn = stack.formatArn({ service: 'ec2', account: '', resource: 'snapshot', resourceName: '*', arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
  const taggedWithThisVault = { StringEquals: { [`aws:ResourceTag/${SCHEDULE_TAG}`]: vaultId } };
  return [
    // DescribeSnapshots, DescribeLockedSnapshots and DescribeImages support no resource-level
    // permissions: `Resource: '*'` is the only form.
    new iam.PolicyStatement({
      sid: 'DescribeHasNoResourceType',
      actions: VAULT_DESCRIBE_ACTIONS,
      resources: ['*'],
    }),
    // CopySnapshot authorizes the shared source and the new copy, both snapshot ARNs without an
    // account: the request must tag the copy with the vault's id.
    new iam.PolicyStatement({
      sid: 'CopySharedSnapshotsIntoTheVault',
      actions: ['ec2:CopySnapshot'],
      resources: [snapshotArn],
      conditions: { StringEquals: { [`aws:RequestTag/${SCHEDULE_TAG}`]: vaultId } },
    }),
    new iam.PolicyStatement({
      sid: 'TagCopiesOnCreation',
      actions: ['ec2:CreateTags'],
      resources: [snapshotArn],
      conditions: { StringEquals: { 'ec2:CreateAction': 'CopySnapshot' } },
    }),
    ...(prunes ? [new iam.PolicyStatement({
      sid: 'DeleteCopiesOfThisVault',
      actions: ['ec2:DeleteSnapshot'],
      resources: [snapshotArn],
      conditions: taggedWithThisVault,
    })] : []),
    ...(locks ? [new iam.PolicyStatement({
      sid: 'LockCopiesOfThisVault',
      actions: ['ec2:LockSnapshot'],
      resources: [snapshotArn],
      conditions: taggedWithThisVault,
    })] : []),
    new iam.PolicyStatement({
      sid: 'WriteItsLogs',
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [logGroup.logGroupArn],
    }),
  ];
}

/**
 * The vault's key encrypts every copy; the source keys are read to copy. These keys only, and
 * grants only for AWS resources (EBS holds a grant while it copies). `kms:ReEncrypt*` written out.
 */
function keyStatements(vaultKeyArn: string | undefined, sourceKeyArns: string[]): iam.PolicyStatement[] {
  const sources = [...new Set(sourceKeyArns)];
  const grantKeys = [...(vaultKeyArn !== undefined ? [vaultKeyArn] : []), ...sources];
  return [
    ...(vaultKeyArn !== undefined ? [new iam.PolicyStatement({
      sid: 'EncryptCopiesWithTheVaultKey',
      actions: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncryptFrom', 'kms:ReEncryptTo', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:DescribeKey'],
      resources: [vaultKeyArn],
    })] : []),
    ...(sources.length > 0 ? [new iam.PolicyStatement({
      sid: 'ReadSharedSnapshotsWithTheSourceKeys',
      actions: ['kms:Decrypt', 'kms:DescribeKey', 'kms:ReEncryptFrom'],
      resources: sources,
    })] : []),
    ...(grantKeys.length > 0 ? [new iam.PolicyStatement({
      sid: 'LetEbsUseTheKeys',
      actions: ['kms:CreateGrant'],
      resources: grantKeys,
      conditions: { Bool: { 'kms:GrantIsForAWSResource': true } },
    })] : []),
  ];
}

/** The dead-letter queue has none of its own, and cdk-nag does not recognize a target's or destination's dead-letter queue as one. */
function acknowledgeDeadLetterQueue(queue: sqs.Queue): void {
  Validations.of(queue).acknowledge({
    id: 'AwsSolutions-SQS3',
    reason: 'This queue is the dead-letter queue of the vault\'s EventBridge rule target, its worker\'s asynchronous invocations (on-failure destination) '
      + 'and its prune schedule, which cdk-nag does not recognize as one; a dead-letter queue has none of its own.',
  });
}

/**
 * The worker's own check of its request, run at synth time. A key defined in the app has a token
 * ARN, which the worker sees resolved: it is checked as a placeholder key ARN.
 */
function checkRenderedRequest(request: VaultRequest): void {
  const placeholder = 'arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000';
  const checkable = request.kmsKeyArn !== undefined && Token.isUnresolved(request.kmsKeyArn) ? { ...request, kmsKeyArn: placeholder } : request;
  try {
    parseVaultRequest(JSON.parse(JSON.stringify(checkable)));
  } catch (e) {
    if (e instanceof InvalidRunRequestError) throw new Error(e.violations.map((v) => v.message).join('\n'));
    throw e;
  }
}

/**
 * Checks every prop at synth time and throws one error listing every problem, each naming the prop
 * and ending with the value it got.
 */
function validateVaultProps(scope: Construct, props: SnapshotVaultProps): void {
  const stack = Stack.of(scope);
  const violations: ContractViolation[] = [
    ...sourceAccountViolations(props.sourceAccounts, stack.account),
    ...keyViolations(props, stack.region),
  ];
  const vaultId: unknown = props.vaultId;
  if (vaultId !== undefined) {
    if (typeof vaultId === 'string' && Token.isUnresolved(vaultId)) {
      violations.push({ prop: 'vaultId', message: `vaultId must be written out in the app (it is the copies' tag value, IAM conditions and the metrics dimension), got: ${show(vaultId)}` });
    } else {
      const problems = checkScheduleId(vaultId as string, 'vaultId');
      violations.push(...(problems.length > 0 ? problems : checkDimensionValue(vaultId as string, 'vaultId')));
    }
  }
  if (props.retention !== undefined && !(props.retention instanceof Retention)) {
    violations.push({ prop: 'retention', message: `retention must be made with Retention.count(), .age(), .calendar() or .anyOf(), got: ${show(props.retention)}` });
  }
  if (props.lock !== undefined && !(props.lock instanceof SnapshotLock)) {
    violations.push({ prop: 'lock', message: `lock must be made with SnapshotLock.governance() or SnapshotLock.compliance(), got: ${show(props.lock)}` });
  }
  if (props.goneInstanceRetention !== undefined) {
    const gone = props.goneInstanceRetention;
    if (props.retention === undefined) {
      violations.push({
        prop: 'goneInstanceRetention',
        message: `goneInstanceRetention only applies with retention (without it nothing is deleted): set retention or leave it out, got: ${showDuration(gone)}`,
      });
    } else if (isTokenValue(gone)) {
      violations.push({ prop: 'goneInstanceRetention', message: 'goneInstanceRetention must be written out in the app (the worker evaluates it from its request), got: an unresolved token' });
    } else if (wholeUnits(gone, 1, LIFECYCLE_LIMITS.minGoneInstanceSeconds, MAX_LIFECYCLE_SECONDS) === undefined) {
      violations.push({ prop: 'goneInstanceRetention', message: `goneInstanceRetention must be whole seconds from 1 day to 36600 days (100 years), got: ${showDuration(gone)}` });
    }
  }
  if (props.pruneSchedule !== undefined && props.retention === undefined) {
    violations.push({
      prop: 'pruneSchedule',
      message: `pruneSchedule only applies with retention (without it nothing is deleted): set retention or leave it out, got: ${show(props.pruneSchedule.expressionString)}`,
    });
  }
  const busName: unknown = props.eventBusName;
  if (busName !== undefined && !(typeof busName === 'string' && Token.isUnresolved(busName))
    && (typeof busName !== 'string' || !EVENT_BUS_NAME.test(busName) || busName === 'default')) {
    violations.push({
      prop: 'eventBusName',
      message: `eventBusName must be 1 to 256 letters, digits, ".", "-" or "_", and not "default" (a custom bus of the vault account), got: ${show(busName)}`,
    });
  }
  if (props.alarms !== undefined && typeof props.alarms !== 'boolean') {
    violations.push({ prop: 'alarms', message: `alarms must be true or false, got: ${show(props.alarms)}` });
  }
  if (props.notificationTopic?.fifo) {
    violations.push({ prop: 'notificationTopic', message: `notificationTopic must be a standard topic (CloudWatch alarms notify standard topics), got: ${describeTopic(props.notificationTopic)}` });
  }
  if (violations.length > 0) throw new Error(violations.map((v) => v.message).join('\n'));
}

function sourceAccountViolations(accounts: unknown, vaultAccount: string): ContractViolation[] {
  const prop = 'sourceAccounts';
  if (!Array.isArray(accounts) || Token.isUnresolved(accounts)) {
    return [{ prop, message: `sourceAccounts must be a list of account ids written out in the app (the bus policy, the rule and the worker name each), got: ${show(accounts)}` }];
  }
  if (accounts.length < 1 || accounts.length > MAX_SOURCE_ACCOUNTS) {
    return [{ prop, message: `sourceAccounts must list 1 to ${MAX_SOURCE_ACCOUNTS} accounts, got: ${accounts.length}` }];
  }
  const out: ContractViolation[] = [];
  accounts.forEach((account: unknown, i) => {
    if (typeof account === 'string' && Token.isUnresolved(account)) {
      out.push({ prop, message: `sourceAccounts[${i}] must be written out in the app (the bus policy, the rule and the worker name each account), got: ${show(account)}` });
    } else if (typeof account !== 'string' || !ACCOUNT_ID.test(account)) {
      out.push({ prop, message: `sourceAccounts[${i}] must be a 12-digit account id, got: ${show(account)}` });
    } else if (!Token.isUnresolved(vaultAccount) && account === vaultAccount) {
      out.push({ prop, message: `sourceAccounts[${i}] must be another account than the vault's own (the vault copies what other accounts share), got: ${show(account)}` });
    }
  });
  const repeated = [...new Set(accounts.filter((a, i) => accounts.indexOf(a) !== i))];
  if (repeated.length > 0) out.push({ prop, message: `sourceAccounts must list each account once, got: ${show(repeated)} more than once` });
  return out;
}

function keyViolations(props: SnapshotVaultProps, region: string): ContractViolation[] {
  const out: ContractViolation[] = [];
  const vaultKey = props.kmsKey?.keyArn;
  if (vaultKey !== undefined && !Token.isUnresolved(vaultKey) && !KMS_KEY_ARN.test(vaultKey)) {
    out.push({ prop: 'kmsKey', message: `kmsKey must be a key, not an alias (IAM allows the worker role the use of a key by its key ARN), got: ${show(vaultKey)}` });
  }
  const sources: unknown = props.sourceKmsKeyArns;
  if (sources === undefined) return out;
  if (!Array.isArray(sources) || Token.isUnresolved(sources)) {
    return [...out, { prop: 'sourceKmsKeyArns', message: `sourceKmsKeyArns must be a list of KMS key ARNs written out in the app, got: ${show(sources)}` }];
  }
  sources.forEach((arn: unknown, i) => {
    const at = `sourceKmsKeyArns[${i}]`;
    if (typeof arn === 'string' && Token.isUnresolved(arn)) return;
    const match = typeof arn === 'string' ? KMS_KEY_ARN.exec(arn) : null;
    if (!match) {
      out.push({ prop: 'sourceKmsKeyArns', message: `${at} must be a KMS key ARN like ${KMS_KEY_ARN_EXAMPLE} (not an alias), got: ${show(arn)}` });
    } else if (!Token.isUnresolved(region) && match[1] !== region) {
      out.push({ prop: 'sourceKmsKeyArns', message: `${at} must be a key in the vault's Region ${show(region)} (snapshots are shared within their Region), got: ${show(arn)}` });
    }
  });
  return out;
}
