import { ArnFormat, Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { show, WORKFLOW } from './request-contract';

/** Fixed id of the resources every schedule of a stack shares. Changing it replaces them in users' stacks. */
export const SHARED_CONSTRUCT_ID = 'InstanceSnapshotScheduleShared';

/** CloudWatch takes at most 5 actions per alarm state. */
export const MAX_ALARM_ACTIONS = 5;

/**
 * What every `InstanceSnapshotSchedule` of a stack shares: the occurrence lock table and, for the
 * schedules that do not bring their own, the log group, the notification topic (with its key) and
 * the dead-letter queue (with its alarm). Everything that acts (worker, roles, workflow, rules,
 * alarms on a schedule's runs) is per schedule.
 */
export class SharedResources extends Construct {
  /** The stack's shared resources, created on first use. */
  public static of(scope: Construct): SharedResources {
    const stack = Stack.of(scope);
    const existing = stack.node.tryFindChild(SHARED_CONSTRUCT_ID);
    if (existing instanceof SharedResources) {
      return existing;
    }
    if (existing) {
      throw new Error(`the construct id "${SHARED_CONSTRUCT_ID}" is reserved by cdk-instance-snapshots in stack ${stack.node.path}, got: a ${existing.constructor.name}`);
    }
    return new SharedResources(stack, SHARED_CONSTRUCT_ID);
  }

  /**
   * One item per scheduled occurrence (schedule id and scheduled time): the first execution to
   * write it runs the occurrence, any other ends as a duplicate. Items expire (TTL) after
   * Step Functions has forgotten the executions.
   */
  public readonly lockTable: dynamodb.Table;

  private defaultLogGroup?: logs.LogGroup;
  private defaultTopic?: sns.Topic;
  private defaultQueue?: sqs.Queue;
  private defaultQueueAlarm?: cloudwatch.Alarm;
  private readonly queueAlarmTopics: sns.ITopic[] = [];
  private readonly topicsOpenToAlarms = new Set<sns.ITopic>();

  private constructor(scope: Construct, id: string) {
    super(scope, id);
    this.lockTable = new dynamodb.Table(this, 'OccurrenceLocks', {
      partitionKey: { name: WORKFLOW.lockKeyAttribute, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: WORKFLOW.lockExpiryAttribute,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // Locks only guard against duplicate deliveries; nothing of value is lost with the stack.
      removalPolicy: RemovalPolicy.DESTROY,
    });
  }

  /**
   * Where workers and workflows log unless a schedule brings its own log group. Created on first
   * use, so a stack whose schedules all bring one has no unused (retained) log group.
   */
  public get logGroup(): logs.LogGroup {
    this.defaultLogGroup ??= new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.THREE_MONTHS,
    });
    return this.defaultLogGroup;
  }

  /**
   * Where schedules without a topic of their own notify failures: a standard topic encrypted with
   * a customer managed key of its own. Not the AWS managed key `alias/aws/sns`: its key policy
   * cannot let CloudWatch alarms or EventBridge use it, and their messages would be dropped
   * without a trace. Created on first use.
   */
  public get notificationTopic(): sns.Topic {
    if (!this.defaultTopic) {
      const key = new kms.Key(this, 'NotificationsKey', {
        description: `cdk-instance-snapshots: encrypts the notification topic of the snapshot schedules in ${Stack.of(this).node.path}`.slice(0, 8192),
        enableKeyRotation: true,
        // The key protects notifications in transit only (SNS keeps no messages): it goes with the stack.
        removalPolicy: RemovalPolicy.DESTROY,
        pendingWindow: Duration.days(7),
      });
      this.defaultTopic = new sns.Topic(this, 'Notifications', {
        displayName: 'cdk-instance-snapshots',
        masterKey: key,
        enforceSSL: true,
      });
    }
    return this.defaultTopic;
  }

  /**
   * Where EventBridge Scheduler puts a run it could not start, for schedules without a queue of
   * their own: SQS-managed encryption (Scheduler needs no key permission), TLS only, messages kept
   * 14 days (SQS's longest) so that an operator can read them. Created on first use.
   */
  public get deadLetterQueue(): sqs.Queue {
    if (!this.defaultQueue) {
      this.defaultQueue = new sqs.Queue(this, 'DeadLetterQueue', {
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        retentionPeriod: Duration.days(14),
      });
      Validations.of(this.defaultQueue).acknowledge({
        id: 'AwsSolutions-SQS3',
        reason: 'This queue is the dead-letter queue of EventBridge Scheduler targets (DeadLetterConfig), which cdk-nag does not recognize as one; a dead-letter queue has none of its own.',
      });
    }
    return this.defaultQueue;
  }

  /**
   * The alarm on the shared dead-letter queue's depth, notifying `topic` (each topic once; the
   * alarm notifies every topic of the schedules that use the queue, at most 5).
   */
  public deadLetterQueueAlarmFor(topic: sns.ITopic): cloudwatch.Alarm {
    const queue = this.deadLetterQueue;
    this.defaultQueueAlarm ??= new cloudwatch.Alarm(this, 'DeadLetterQueueAlarm', {
      alarmDescription: [
        `cdk-instance-snapshots (stack ${Stack.of(this).node.path}): EventBridge Scheduler could not start a snapshot run and put it in the dead-letter queue`,
        'after its retries (by default for 24 hours).',
        'Read the queue\'s messages: they name the schedule and the error.',
        'Fix the cause (the workflow or the scheduler role was changed or deleted outside CloudFormation, throttling),',
        'start each missed occurrence by hand (README, Operations), then delete the messages.',
      ].join(' '),
      metric: queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM }),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      threshold: 0,
      evaluationPeriods: 1,
      // SQS stops sending metrics for a queue that stays empty: no data is a quiet queue.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    if (!this.queueAlarmTopics.includes(topic)) {
      if (this.queueAlarmTopics.length >= MAX_ALARM_ACTIONS) {
        throw new Error(`notificationTopic must be one of the ${MAX_ALARM_ACTIONS} topics the stack's shared dead-letter queue alarm already notifies `
          + `(CloudWatch takes ${MAX_ALARM_ACTIONS} actions per alarm state), or the schedule must bring its own deadLetterQueue, got: ${describeTopic(topic)}`);
      }
      this.queueAlarmTopics.push(topic);
      this.defaultQueueAlarm.addAlarmAction(new cwActions.SnsAction(topic));
    }
    return this.defaultQueueAlarm;
  }

  /**
   * Lets CloudWatch alarms of this account publish to `topic`, and use its key when it is encrypted
   * (once per topic). A topic with a policy of its own must allow them: SNS's default policy, which
   * does, is replaced by any topic policy (enforceSSL and EventBridge's grant create one). Topics
   * and keys imported into the app are left alone (their policies are not the app's to change).
   */
  public allowAlarmsToPublish(topic: sns.ITopic): void {
    if (this.topicsOpenToAlarms.has(topic)) return;
    this.topicsOpenToAlarms.add(topic);
    allowAlarmsToPublish(topic);
  }
}

/**
 * Lets this account's CloudWatch alarms publish to `topic`, and use its key when it is encrypted
 * (topics and keys defined in the app only). Once per topic.
 */
export function allowAlarmsToPublish(topic: sns.ITopic): void {
  const cloudWatch = new iam.ServicePrincipal('cloudwatch.amazonaws.com');
  topic.addToResourcePolicy(new iam.PolicyStatement({
    sid: 'CdkInstanceSnapshotsAlarmsPublish',
    principals: [cloudWatch],
    actions: ['sns:Publish'],
    resources: [topic.topicArn],
    conditions: {
      ArnLike: {
        'aws:SourceArn': Stack.of(topic).formatArn({ service: 'cloudwatch', resource: 'alarm', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME }),
      },
    },
  }));
  // No condition: the topic policy above limits which alarms publish, and a key policy is not
  // documented to receive the alarm's source from SNS.
  topic.masterKey?.addToResourcePolicy(new iam.PolicyStatement({
    sid: 'CdkInstanceSnapshotsAlarmsUseKey',
    principals: [cloudWatch],
    actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
    resources: ['*'],
  }));
}

/** A topic as an error message shows it: its ARN, or its construct path when the ARN is a reference. */
export function describeTopic(topic: sns.ITopic): string {
  return Token.isUnresolved(topic.topicArn) ? `the topic ${topic.node.path}` : show(topic.topicArn);
}

/** How long Step Functions waits for one worker step: Lambda's own limit plus a minute. */
export const WORKER_TIMEOUT = Duration.minutes(15);
