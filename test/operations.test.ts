/**
 * Every way a run can fail ends somewhere visible (issue 9): the notification topic and its key, the
 * dead-letter queue and its alarm, the rule on the workflow's failed executions, the rule that hands
 * failed snapshot sets to the worker, the instances-failed and heartbeat alarms, the dashboard and
 * the metric helpers.
 */
import { App, Duration, Stack, TimeZone } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { COMPLETION_EVENT, isFailedSet, isSnapshotsCompletionEvent, parseCompletionEvent } from '../lambda/completion-events';
import { InstanceSnapshotSchedule, InstanceSnapshotScheduleProps, LogLevel } from '../src';
import { METRICS } from '../src/private/request-contract';

const ACCOUNT = '123456789012';
const REGION = 'eu-central-1';
const PARTITION = { Ref: 'AWS::Partition' };
const DEFAULT_PROPS: InstanceSnapshotScheduleProps = { instanceTags: { Backup: ['nightly'] } };
const SHARED = 'InstanceSnapshotScheduleShared';

function newStack(): Stack {
  return new Stack(new App(), 'TestStack', { env: { account: ACCOUNT, region: REGION } });
}

function synth(props: Partial<InstanceSnapshotScheduleProps> = {}) {
  const stack = newStack();
  const construct = new InstanceSnapshotSchedule(stack, 'Nightly', { ...DEFAULT_PROPS, ...props });
  return { stack, construct, template: Template.fromStack(stack) };
}

/** The one resource of a type whose logical id starts with a prefix. */
function resource(template: Template, type: string, logicalIdPrefix: string): { id: string; properties: any } {
  const found = Object.entries(template.findResources(type)).filter(([id]) => id.startsWith(logicalIdPrefix));
  expect(found.map(([id]) => id)).toHaveLength(1);
  return { id: found[0][0], properties: found[0][1].Properties };
}

const id = (template: Template, type: string, prefix: string) => resource(template, type, prefix).id;
const sharedTopic = (template: Template) => id(template, 'AWS::SNS::Topic', `${SHARED}Notifications`);
const sharedKey = (template: Template) => id(template, 'AWS::KMS::Key', `${SHARED}NotificationsKey`);
const sharedQueue = (template: Template) => id(template, 'AWS::SQS::Queue', `${SHARED}DeadLetterQueue`);
const alarm = (template: Template, prefix: string) => resource(template, 'AWS::CloudWatch::Alarm', prefix).properties;
const workerStatements = (template: Template, prefix = 'Nightly'): any[] =>
  resource(template, 'AWS::IAM::Role', `${prefix}WorkerRole`).properties.Policies[0].PolicyDocument.Statement;

const KEY_USE = ['kms:Decrypt', 'kms:GenerateDataKey*'];

/** The warnings' texts, but the one every schedule without retention gets (test/lifecycle-construct.test.ts covers it). */
const warnings = (stack: Stack): unknown[] => Annotations.fromStack(stack).findWarning('*', Match.anyValue()).map((w) => w.entry.data)
  .filter((data) => !String(data).endsWith('[ack: cdk-instance-snapshots:noRetention]'));

describe('notification topic', () => {
  test('GIVEN no topic WHEN synthesized THEN the stack gets one topic, encrypted with a key of its own that rotates, exposed on the construct', () => {
    const { template, construct } = synth();
    template.resourceCountIs('AWS::SNS::Topic', 1);
    template.resourceCountIs('AWS::KMS::Key', 1);
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: { 'Fn::GetAtt': [sharedKey(template), 'Arn'] } });
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    expect(construct.notificationTopic.node.path).toBe(`TestStack/${SHARED}/Notifications`);
  });

  test('GIVEN no topic WHEN synthesized THEN the key policy lets CloudWatch alarms and EventBridge use the key, without conditions EventBridge cannot meet', () => {
    const { template } = synth();
    const statements: any[] = resource(template, 'AWS::KMS::Key', `${SHARED}NotificationsKey`).properties.KeyPolicy.Statement;
    for (const service of ['cloudwatch.amazonaws.com', 'events.amazonaws.com']) {
      expect(statements).toContainEqual(expect.objectContaining({ Effect: 'Allow', Principal: { Service: service }, Action: KEY_USE, Resource: '*' }));
      expect(statements.find((s) => s.Principal?.Service === service).Condition).toBeUndefined();
    }
  });

  test('GIVEN no topic WHEN synthesized THEN the topic refuses publishing without TLS and lets EventBridge and this account\'s alarms publish', () => {
    const { template } = synth();
    const topic = { Ref: sharedTopic(template) };
    const statements: any[] = resource(template, 'AWS::SNS::TopicPolicy', `${SHARED}NotificationsPolicy`).properties.PolicyDocument.Statement;
    expect(statements).toContainEqual(expect.objectContaining({
      Effect: 'Deny', Principal: '*', Action: 'sns:Publish', Resource: topic, Condition: { Bool: { 'aws:SecureTransport': 'false' } },
    }));
    expect(statements).toContainEqual(expect.objectContaining({ Effect: 'Allow', Principal: { Service: 'events.amazonaws.com' }, Action: 'sns:Publish', Resource: topic }));
    expect(statements).toContainEqual(expect.objectContaining({
      Effect: 'Allow',
      Principal: { Service: 'cloudwatch.amazonaws.com' },
      Action: 'sns:Publish',
      Resource: topic,
      Condition: { ArnLike: { 'aws:SourceArn': { 'Fn::Join': ['', ['arn:', PARTITION, `:cloudwatch:${REGION}:${ACCOUNT}:alarm:*`]] } } },
    }));
  });

  test('GIVEN two schedules without a topic WHEN synthesized THEN they share one topic and one key', () => {
    const stack = newStack();
    const a = new InstanceSnapshotSchedule(stack, 'Nightly', DEFAULT_PROPS);
    const b = new InstanceSnapshotSchedule(stack, 'Weekly', DEFAULT_PROPS);
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SNS::Topic', 1);
    template.resourceCountIs('AWS::KMS::Key', 1);
    template.resourceCountIs('AWS::SNS::TopicPolicy', 1);
    expect(a.notificationTopic).toBe(b.notificationTopic);
  });

  describe('a topic of the user\'s, encrypted with a key of the app', () => {
    function withTopic() {
      const stack = newStack();
      const key = new kms.Key(stack, 'AlertsKey', { enableKeyRotation: true });
      const topic = new sns.Topic(stack, 'Alerts', { masterKey: key });
      const construct = new InstanceSnapshotSchedule(stack, 'Nightly', { ...DEFAULT_PROPS, notificationTopic: topic });
      const template = Template.fromStack(stack);
      return { construct, topic, template, topicRef: { Ref: id(template, 'AWS::SNS::Topic', 'Alerts') }, keyId: id(template, 'AWS::KMS::Key', 'AlertsKey') };
    }

    test('WHEN synthesized THEN no topic or key of ours is created and the construct exposes the user\'s', () => {
      const { template, construct, topic } = withTopic();
      template.resourceCountIs('AWS::SNS::Topic', 1);
      template.resourceCountIs('AWS::KMS::Key', 1);
      expect(construct.notificationTopic).toBe(topic);
    });

    test('WHEN synthesized THEN the alarms, the run-failed rule and the worker all notify it', () => {
      const { template, topicRef } = withTopic();
      for (const prefix of ['NightlyInstancesFailedAlarm', 'NightlyHeartbeatAlarm', `${SHARED}DeadLetterQueueAlarm`]) {
        expect(alarm(template, prefix).AlarmActions).toEqual([topicRef]);
      }
      expect(resource(template, 'AWS::Events::Rule', 'NightlyRunFailedRule').properties.Targets[0].Arn).toEqual(topicRef);
      expect(resource(template, 'AWS::Lambda::Function', 'NightlyWorker').properties.Environment.Variables.NOTIFICATION_TOPIC_ARN).toEqual(topicRef);
    });

    test('WHEN synthesized THEN its topic policy lets EventBridge and the account\'s alarms publish, and its key policy lets both use the key', () => {
      const { template, topicRef } = withTopic();
      const topicStatements: any[] = resource(template, 'AWS::SNS::TopicPolicy', 'AlertsPolicy').properties.PolicyDocument.Statement;
      expect(topicStatements.map((s) => [s.Principal.Service, s.Action, s.Resource])).toEqual([
        ['events.amazonaws.com', 'sns:Publish', topicRef],
        ['cloudwatch.amazonaws.com', 'sns:Publish', topicRef],
      ]);
      const keyStatements: any[] = resource(template, 'AWS::KMS::Key', 'AlertsKey').properties.KeyPolicy.Statement;
      for (const service of ['cloudwatch.amazonaws.com', 'events.amazonaws.com']) {
        expect(keyStatements).toContainEqual(expect.objectContaining({ Principal: { Service: service }, Action: KEY_USE }));
      }
    });

    test('WHEN synthesized THEN the worker may publish to it and encrypt with its key, nothing more', () => {
      const { template, topicRef, keyId } = withTopic();
      expect(workerStatements(template).slice(-2)).toEqual([
        { Sid: 'NotifyFailedSnapshotSets', Effect: 'Allow', Action: 'sns:Publish', Resource: topicRef },
        { Sid: 'EncryptNotifications', Effect: 'Allow', Action: ['kms:GenerateDataKey', 'kms:Decrypt'], Resource: { 'Fn::GetAtt': [keyId, 'Arn'] } },
      ]);
    });
  });

  test('GIVEN an imported topic WHEN synthesized THEN its policy is left alone and the worker gets publish on its ARN and no key permission', () => {
    const stack = newStack();
    const arn = `arn:aws:sns:${REGION}:${ACCOUNT}:snapshot-alerts`;
    new InstanceSnapshotSchedule(stack, 'Nightly', { ...DEFAULT_PROPS, notificationTopic: sns.Topic.fromTopicArn(stack, 'Alerts', arn) });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SNS::Topic', 0);
    template.resourceCountIs('AWS::SNS::TopicPolicy', 0);
    template.resourceCountIs('AWS::KMS::Key', 0);
    expect(workerStatements(template).filter((s) => /^(sns|kms):/.test([s.Action].flat()[0]))).toEqual([
      { Sid: 'NotifyFailedSnapshotSets', Effect: 'Allow', Action: 'sns:Publish', Resource: arn },
    ]);
  });
});

describe('dead-letter queue', () => {
  test('GIVEN no queue WHEN synthesized THEN the stack gets one queue with SQS-managed encryption, kept 14 days, exposed on the construct', () => {
    const { template, construct } = synth();
    template.resourceCountIs('AWS::SQS::Queue', 1);
    template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true, MessageRetentionPeriod: 1_209_600 });
    expect(construct.deadLetterQueue.node.path).toBe(`TestStack/${SHARED}/DeadLetterQueue`);
  });

  test('GIVEN no queue WHEN synthesized THEN its policy refuses every request without TLS', () => {
    const { template } = synth();
    const queueArn = { 'Fn::GetAtt': [sharedQueue(template), 'Arn'] };
    expect(resource(template, 'AWS::SQS::QueuePolicy', `${SHARED}DeadLetterQueuePolicy`).properties.PolicyDocument.Statement).toEqual([{
      Effect: 'Deny', Principal: { AWS: '*' }, Action: 'sqs:*', Resource: queueArn, Condition: { Bool: { 'aws:SecureTransport': 'false' } },
    }]);
  });

  test('GIVEN no queue WHEN synthesized THEN an alarm on its depth (more than 0 visible messages) notifies the topic', () => {
    const { template, construct } = synth();
    expect(alarm(template, `${SHARED}DeadLetterQueueAlarm`)).toEqual(expect.objectContaining({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [sharedQueue(template), 'QueueName'] } }],
      Statistic: 'Maximum',
      Period: 300,
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 0,
      EvaluationPeriods: 1,
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: sharedTopic(template) }],
      AlarmDescription: expect.stringMatching(/could not start a snapshot run.*start each missed occurrence by hand/),
    }));
    expect(construct.deadLetterQueueAlarm?.node.path).toBe(`TestStack/${SHARED}/DeadLetterQueueAlarm`);
  });

  test('GIVEN two schedules with different topics WHEN synthesized THEN the one queue alarm notifies both, each once', () => {
    const stack = newStack();
    const topics = ['A', 'B'].map((n) => new sns.Topic(stack, `Topic${n}`));
    new InstanceSnapshotSchedule(stack, 'One', { ...DEFAULT_PROPS, notificationTopic: topics[0] });
    new InstanceSnapshotSchedule(stack, 'Two', { ...DEFAULT_PROPS, notificationTopic: topics[1] });
    new InstanceSnapshotSchedule(stack, 'Three', { ...DEFAULT_PROPS, notificationTopic: topics[0] });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SQS::Queue', 1);
    expect(alarm(template, `${SHARED}DeadLetterQueueAlarm`).AlarmActions).toEqual([
      { Ref: id(template, 'AWS::SNS::Topic', 'TopicA') }, { Ref: id(template, 'AWS::SNS::Topic', 'TopicB') },
    ]);
  });

  test('GIVEN a sixth topic on the shared queue WHEN constructed THEN it fails naming notificationTopic', () => {
    const stack = newStack();
    for (let i = 0; i < 5; i++) {
      new InstanceSnapshotSchedule(stack, `S${i}`, { ...DEFAULT_PROPS, notificationTopic: new sns.Topic(stack, `Topic${i}`) });
    }
    expect(() => new InstanceSnapshotSchedule(stack, 'S5', { ...DEFAULT_PROPS, notificationTopic: new sns.Topic(stack, 'Topic5') }))
      .toThrow(new Error('notificationTopic must be one of the 5 topics the stack\'s shared dead-letter queue alarm already notifies '
        + '(CloudWatch takes 5 actions per alarm state), or the schedule must bring its own deadLetterQueue, got: the topic TestStack/Topic5'));
    // with a queue of its own, a sixth topic is fine
    expect(() => new InstanceSnapshotSchedule(stack, 'S6', {
      ...DEFAULT_PROPS, notificationTopic: new sns.Topic(stack, 'Topic6'), deadLetterQueue: new sqs.Queue(stack, 'OwnQueue'),
    })).not.toThrow();
  });

  test('GIVEN a queue of the user\'s WHEN synthesized THEN no queue and no queue alarm of ours are created', () => {
    const stack = newStack();
    const queue = new sqs.Queue(stack, 'Dlq');
    const construct = new InstanceSnapshotSchedule(stack, 'Nightly', { ...DEFAULT_PROPS, deadLetterQueue: queue });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SQS::Queue', 1);
    expect(Object.keys(template.findResources('AWS::CloudWatch::Alarm')).filter((k) => k.startsWith(SHARED))).toEqual([]);
    expect(construct.deadLetterQueue).toBe(queue);
    expect(construct.deadLetterQueueAlarm).toBeUndefined();
  });
});

describe('rule on failed runs', () => {
  test('GIVEN the construct WHEN synthesized THEN the rule matches FAILED, TIMED_OUT and ABORTED executions of this state machine only', () => {
    const { template } = synth();
    expect(resource(template, 'AWS::Events::Rule', 'NightlyRunFailedRule').properties.EventPattern).toEqual({
      'source': ['aws.states'],
      'detail-type': ['Step Functions Execution Status Change'],
      'detail': {
        stateMachineArn: [{ Ref: id(template, 'AWS::StepFunctions::StateMachine', 'NightlyWorkflow') }],
        status: ['FAILED', 'TIMED_OUT', 'ABORTED'],
      },
    });
  });

  test('GIVEN the construct WHEN synthesized THEN the topic gets a message naming the schedule, the status, the error and the execution', () => {
    const { template } = synth();
    const [target] = resource(template, 'AWS::Events::Rule', 'NightlyRunFailedRule').properties.Targets;
    expect(target.Arn).toEqual({ Ref: sharedTopic(template) });
    expect(target.InputTransformer.InputPathsMap).toEqual({
      'detail-status': '$.detail.status', 'detail-error': '$.detail.error', 'detail-executionArn': '$.detail.executionArn',
    });
    expect(JSON.parse(target.InputTransformer.InputTemplate)).toBe('cdk-instance-snapshots: the run of TestStack/Nightly ended <detail-status> '
      + '(<detail-error>): <detail-executionArn>. Its history and run summary log line say why.');
  });

  test('GIVEN two schedules WHEN synthesized THEN each rule names its own state machine', () => {
    const stack = newStack();
    new InstanceSnapshotSchedule(stack, 'Nightly', DEFAULT_PROPS);
    new InstanceSnapshotSchedule(stack, 'Weekly', DEFAULT_PROPS);
    const template = Template.fromStack(stack);
    for (const prefix of ['Nightly', 'Weekly']) {
      expect(resource(template, 'AWS::Events::Rule', `${prefix}RunFailedRule`).properties.EventPattern.detail.stateMachineArn)
        .toEqual([{ Ref: id(template, 'AWS::StepFunctions::StateMachine', `${prefix}Workflow`) }]);
    }
  });
});

describe('rule on snapshot sets that failed after CreateSnapshots returned', () => {
  test('GIVEN the construct WHEN synthesized THEN the rule matches EC2\'s failed CreateSnapshots completion events and invokes this schedule\'s worker', () => {
    const { template } = synth();
    const rule = resource(template, 'AWS::Events::Rule', 'NightlySnapshotSetFailedRule');
    expect(rule.properties.EventPattern).toEqual({
      'source': ['aws.ec2'],
      'detail-type': ['EBS Multi-Volume Snapshots Completion Status'],
      'detail': { event: ['createSnapshots'], result: ['failed'] },
    });
    const worker = id(template, 'AWS::Lambda::Function', 'NightlyWorker');
    expect(rule.properties.Targets).toEqual([{ Id: 'Target0', Arn: { 'Fn::GetAtt': [worker, 'Arn'] } }]);
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': [worker, 'Arn'] },
      Principal: 'events.amazonaws.com',
      SourceArn: { 'Fn::GetAtt': [rule.id, 'Arn'] },
    });
    template.resourceCountIs('AWS::Lambda::Permission', 1);
  });

  test('GIVEN the synthesized pattern WHEN an event EC2 would send matches it THEN the worker recognizes it as a failed set', () => {
    const { template } = synth();
    const pattern = resource(template, 'AWS::Events::Rule', 'NightlySnapshotSetFailedRule').properties.EventPattern;
    expect(pattern).toEqual({
      'source': [COMPLETION_EVENT.source],
      'detail-type': [COMPLETION_EVENT.detailType],
      'detail': { event: [COMPLETION_EVENT.event], result: [COMPLETION_EVENT.resultFailed] },
    });
    const event = {
      'version': '0',
      'id': '01234567-0123-0123-0123-012345678901',
      'detail-type': pattern['detail-type'][0],
      'source': pattern.source[0],
      'account': ACCOUNT,
      'time': '2026-11-24T02:45:00Z',
      'region': REGION,
      'resources': [`arn:aws:ec2::${REGION}:snapshot/snap-01234567890abcdef`],
      'detail': {
        event: pattern.detail.event[0],
        result: pattern.detail.result[0],
        cause: 'Snapshot snap-01234567890abcdef is in status error',
        snapshots: [{ snapshot_id: `arn:aws:ec2::${REGION}:snapshot/snap-01234567890abcdef`, source: `arn:aws:ec2::${REGION}:volume/vol-01234567890abcdef`, status: 'error' }],
      },
    };
    expect(isSnapshotsCompletionEvent(event)).toBe(true);
    expect(isFailedSet(parseCompletionEvent(event))).toBe(true);
  });
});

describe('instances-failed alarm', () => {
  test('GIVEN the construct WHEN synthesized THEN it fires when InstancesFailed + InstancesNotAttempted of a run is above 0, and notifies the topic', () => {
    const { template, construct } = synth();
    const metric = (name: string) => ({
      Id: name === 'InstancesFailed' ? 'failed' : 'notAttempted',
      MetricStat: {
        Metric: { Namespace: 'CdkInstanceSnapshots', MetricName: name, Dimensions: [{ Name: 'Schedule', Value: 'TestStack/Nightly' }] },
        Period: 3600,
        Stat: 'Sum',
      },
      ReturnData: false,
    });
    expect(alarm(template, 'NightlyInstancesFailedAlarm')).toEqual(expect.objectContaining({
      Metrics: [{ Id: 'expr_1', Expression: 'failed + notAttempted', ReturnData: true }, metric('InstancesFailed'), metric('InstancesNotAttempted')],
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 0,
      EvaluationPeriods: 1,
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: sharedTopic(template) }],
      AlarmDescription: expect.stringMatching(/without a snapshot set.*run the occurrence again \(README, Operations\)/),
    }));
    expect(construct.instancesFailedAlarm?.node.path).toBe('TestStack/Nightly/InstancesFailedAlarm');
  });
});

describe('heartbeat alarm', () => {
  const heartbeat = (template: Template) => alarm(template, 'NightlyHeartbeatAlarm');

  test('GIVEN the default daily schedule WHEN synthesized THEN it fires when no run reported at least 1 selected instance within 26 hours, missing data breaching', () => {
    const { template, construct } = synth();
    expect(heartbeat(template)).toEqual(expect.objectContaining({
      Namespace: 'CdkInstanceSnapshots',
      MetricName: 'InstancesSelected',
      Dimensions: [{ Name: 'Schedule', Value: 'TestStack/Nightly' }],
      Statistic: 'Minimum',
      // 1 day + 2 hours of slack, in 2 periods of 13 hours (CloudWatch's periods are at most 1 day), both breaching
      Period: 46_800,
      EvaluationPeriods: 2,
      DatapointsToAlarm: 2,
      ComparisonOperator: 'LessThanThreshold',
      Threshold: 1,
      TreatMissingData: 'breaching',
      AlarmActions: [{ Ref: sharedTopic(template) }],
      AlarmDescription: expect.stringMatching(/^cdk-instance-snapshots: no run finished within 1 day 2 hours, or a run selected no instance\. /),
    }));
    expect(construct.heartbeatAlarm?.node.path).toBe('TestStack/Nightly/HeartbeatAlarm');
  });

  test.each<[string, scheduler.ScheduleExpression, number, number]>([
    ['rate(10 minutes)', scheduler.ScheduleExpression.rate(Duration.minutes(10)), 7_800, 1],
    ['rate(1 hour)', scheduler.ScheduleExpression.rate(Duration.hours(1)), 10_800, 1],
    ['rate(22 hours)', scheduler.ScheduleExpression.rate(Duration.hours(22)), 86_400, 1],
    ['rate(2 days)', scheduler.ScheduleExpression.rate(Duration.days(2)), 60_000, 3],
    ['rate(5 days)', scheduler.ScheduleExpression.rate(Duration.days(5)), 73_200, 6],
    ['an hourly cron', scheduler.ScheduleExpression.cron({ minute: '15' }), 46_800, 2],
    ['a daily cron in a time zone', scheduler.ScheduleExpression.cron({ minute: '30', hour: '2', timeZone: TimeZone.EUROPE_BERLIN }), 46_800, 2],
  ])('GIVEN %s WHEN synthesized THEN the periods cover the interval plus 2 hours', (_name, schedule, period, evaluationPeriods) => {
    const { template } = synth({ schedule });
    expect(heartbeat(template)).toEqual(expect.objectContaining({
      Period: period, EvaluationPeriods: evaluationPeriods, DatapointsToAlarm: evaluationPeriods, TreatMissingData: 'breaching',
    }));
    expect(period % 60).toBe(0);
    expect(period).toBeLessThanOrEqual(86_400);
    expect(period * evaluationPeriods).toBeLessThanOrEqual(604_800);
  });

  test('GIVEN a flexible time window WHEN synthesized THEN the window is added to the heartbeat', () => {
    const { template } = synth({ timeWindow: scheduler.TimeWindow.flexible(Duration.minutes(30)) });
    // 26.5 hours in 2 periods of 13 h 15 min
    expect(heartbeat(template)).toEqual(expect.objectContaining({ Period: 47_700, EvaluationPeriods: 2 }));
  });

  test.each<[string, Duration, number, number]>([
    ['30 minutes', Duration.minutes(30), 1_800, 1],
    ['1 day', Duration.days(1), 86_400, 1],
    ['30 hours', Duration.hours(30), 54_000, 2],
    ['7 days', Duration.days(7), 86_400, 7],
    ['6 days 23 hours 59 minutes', Duration.minutes(10_079), 86_400, 7],
  ])('GIVEN heartbeatPeriod %s WHEN synthesized THEN it sets the periods', (_name, heartbeatPeriod, period, evaluationPeriods) => {
    const { template } = synth({ heartbeatPeriod });
    expect(heartbeat(template)).toEqual(expect.objectContaining({
      Period: period, EvaluationPeriods: evaluationPeriods, DatapointsToAlarm: evaluationPeriods,
    }));
  });

  test.each<[string, scheduler.ScheduleExpression]>([
    ['a weekly cron', scheduler.ScheduleExpression.cron({ weekDay: 'SUN', hour: '4', minute: '0' })],
    ['a monthly cron', scheduler.ScheduleExpression.cron({ day: '1', hour: '4', minute: '0' })],
    ['a one-time schedule', scheduler.ScheduleExpression.at(new Date(Date.UTC(2030, 0, 1, 3)))],
    ['rate(7 days), over 7 days with the slack', scheduler.ScheduleExpression.rate(Duration.days(7))],
  ])('GIVEN %s and no heartbeatPeriod WHEN synthesized THEN missing data does not breach, and an info says how to get a heartbeat', (_name, schedule) => {
    const { template, stack } = synth({ schedule });
    expect(heartbeat(template)).toEqual(expect.objectContaining({
      TreatMissingData: 'notBreaching', Threshold: 1, AlarmDescription: expect.stringMatching(/^cdk-instance-snapshots: a run selected no instance\. /),
    }));
    Annotations.fromStack(stack).hasInfo('/TestStack/Nightly', Match.stringLikeRegexp('cannot tell a missing run.*set heartbeatPeriod'));
  });

  test('GIVEN a weekly cron and a heartbeatPeriod WHEN synthesized THEN missing data breaches again', () => {
    const { template } = synth({ schedule: scheduler.ScheduleExpression.cron({ weekDay: 'SUN', hour: '4', minute: '0' }), heartbeatPeriod: Duration.days(7) });
    expect(heartbeat(template)).toEqual(expect.objectContaining({ TreatMissingData: 'breaching', Period: 86_400, EvaluationPeriods: 7 }));
  });

  test('GIVEN a heartbeatPeriod no longer than the schedule\'s interval WHEN synthesized THEN the construct warns that it fires between runs', () => {
    const { stack } = synth({ schedule: scheduler.ScheduleExpression.rate(Duration.hours(6)), heartbeatPeriod: Duration.hours(6) });
    expect(warnings(stack)).toEqual([
      'heartbeatPeriod (6 hours) is not longer than the schedule\'s interval (6 hours): the heartbeat alarm fires between runs that are on time; '
        + 'add slack for late and long runs [ack: cdk-instance-snapshots:heartbeatPeriod]',
    ]);
    const longer = synth({ schedule: scheduler.ScheduleExpression.rate(Duration.hours(6)), heartbeatPeriod: Duration.hours(7) });
    expect(warnings(longer.stack)).toEqual([]);
  });

  test('GIVEN a disabled schedule WHEN synthesized THEN missing data does not breach (no run is expected)', () => {
    const { template } = synth({ enabled: false });
    expect(heartbeat(template).TreatMissingData).toBe('notBreaching');
  });

  test('GIVEN expectedMinimumInstances 3 WHEN synthesized THEN the threshold is 3', () => {
    const { template } = synth({ expectedMinimumInstances: 3 });
    expect(heartbeat(template)).toEqual(expect.objectContaining({
      Threshold: 3, AlarmDescription: expect.stringContaining('a run selected fewer than 3 instances'),
    }));
  });

  test('GIVEN expectedMinimumInstances 0 WHEN synthesized THEN the alarm only watches that runs happen', () => {
    const { template } = synth({ expectedMinimumInstances: 0 });
    expect(heartbeat(template)).toEqual(expect.objectContaining({ Threshold: 0, ComparisonOperator: 'LessThanThreshold', TreatMissingData: 'breaching' }));
  });

  test('GIVEN expectedMinimumInstances 0 and a schedule without a heartbeat WHEN synthesized THEN there is no heartbeat alarm (it could never fire)', () => {
    const { template, construct } = synth({ expectedMinimumInstances: 0, enabled: false });
    expect(Object.keys(template.findResources('AWS::CloudWatch::Alarm')).filter((k) => k.startsWith('NightlyHeartbeat'))).toEqual([]);
    expect(construct.heartbeatAlarm).toBeUndefined();
  });
});

describe('alarms: false', () => {
  test('GIVEN alarms false WHEN synthesized THEN there is no alarm, but the rules still notify', () => {
    const { template, construct } = synth({ alarms: false });
    template.resourceCountIs('AWS::CloudWatch::Alarm', 0);
    template.resourceCountIs('AWS::Events::Rule', 2);
    expect([construct.instancesFailedAlarm, construct.heartbeatAlarm, construct.deadLetterQueueAlarm]).toEqual([undefined, undefined, undefined]);
  });

  test('GIVEN alarms false WHEN synthesized THEN the topic policy is not opened to CloudWatch', () => {
    const { template } = synth({ alarms: false });
    const statements: any[] = resource(template, 'AWS::SNS::TopicPolicy', `${SHARED}NotificationsPolicy`).properties.PolicyDocument.Statement;
    expect(statements.filter((s) => s.Principal?.Service === 'cloudwatch.amazonaws.com')).toEqual([]);
  });
});

describe('worker settings for notifications and logs', () => {
  test('GIVEN the construct WHEN synthesized THEN the worker knows its schedule id and topic, and logs at INFO', () => {
    const { template } = synth();
    const worker = resource(template, 'AWS::Lambda::Function', 'NightlyWorker').properties;
    expect(worker.Environment.Variables).toEqual(expect.objectContaining({
      SCHEDULE_ID: 'TestStack/Nightly',
      NOTIFICATION_TOPIC_ARN: { Ref: sharedTopic(template) },
      POWERTOOLS_LOG_LEVEL: 'INFO',
    }));
    expect(worker.LoggingConfig).toEqual(expect.objectContaining({ LogFormat: 'JSON', ApplicationLogLevel: 'INFO' }));
  });

  test.each([LogLevel.DEBUG, LogLevel.WARN, LogLevel.ERROR])('GIVEN logLevel %s WHEN synthesized THEN Powertools and Lambda\'s filter use it', (logLevel) => {
    const { template } = synth({ logLevel });
    const worker = resource(template, 'AWS::Lambda::Function', 'NightlyWorker').properties;
    expect(worker.Environment.Variables.POWERTOOLS_LOG_LEVEL).toBe(logLevel);
    expect(worker.LoggingConfig.ApplicationLogLevel).toBe(logLevel);
  });

  test('GIVEN the default topic WHEN synthesized THEN the worker may publish to it and use its key only', () => {
    const { template } = synth();
    expect(workerStatements(template).slice(-2)).toEqual([
      { Sid: 'NotifyFailedSnapshotSets', Effect: 'Allow', Action: 'sns:Publish', Resource: { Ref: sharedTopic(template) } },
      { Sid: 'EncryptNotifications', Effect: 'Allow', Action: ['kms:GenerateDataKey', 'kms:Decrypt'], Resource: { 'Fn::GetAtt': [sharedKey(template), 'Arn'] } },
    ]);
  });
});

describe('dashboard', () => {
  test('GIVEN no dashboard prop WHEN synthesized THEN there is none', () => {
    const { template, construct } = synth();
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 0);
    expect(construct.dashboard).toBeUndefined();
  });

  test('GIVEN dashboard true WHEN synthesized THEN one dashboard shows the run metrics, the executions and the alarms', () => {
    const { template, construct } = synth({ dashboard: true });
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    const body = JSON.stringify(resource(template, 'AWS::CloudWatch::Dashboard', 'NightlyDashboard').properties.DashboardBody);
    for (const name of [
      'InstancesSelected', 'SnapshotSetsCreated', 'InstancesAlreadyDone', 'InstancesSkipped', 'InstancesFailed', 'InstancesNotAttempted',
      'RunDuration', 'SnapshotSetsFailed', 'StepFailures', 'ExecutionsFailed', 'ExecutionsTimedOut', 'ExecutionsAborted',
    ]) {
      expect(body).toContain(`\\"${name}\\"`);
    }
    for (const prefix of ['NightlyInstancesFailedAlarm', 'NightlyHeartbeatAlarm', `${SHARED}DeadLetterQueueAlarm`]) {
      expect(body).toContain(id(template, 'AWS::CloudWatch::Alarm', prefix));
    }
    expect(construct.dashboard?.node.path).toBe('TestStack/Nightly/Dashboard');
  });
});

describe('metric helpers', () => {
  const helpers: Array<[string, (c: InstanceSnapshotSchedule, p?: cloudwatch.MetricOptions) => cloudwatch.Metric, string, string]> = [
    ['metricInstancesSelected', (c, p) => c.metricInstancesSelected(p), METRICS.instancesSelected, 'Sum'],
    ['metricSnapshotSetsCreated', (c, p) => c.metricSnapshotSetsCreated(p), METRICS.snapshotSetsCreated, 'Sum'],
    ['metricInstancesAlreadyDone', (c, p) => c.metricInstancesAlreadyDone(p), METRICS.instancesAlreadyDone, 'Sum'],
    ['metricInstancesSkipped', (c, p) => c.metricInstancesSkipped(p), METRICS.instancesSkipped, 'Sum'],
    ['metricInstancesFailed', (c, p) => c.metricInstancesFailed(p), METRICS.instancesFailed, 'Sum'],
    ['metricInstancesNotAttempted', (c, p) => c.metricInstancesNotAttempted(p), METRICS.instancesNotAttempted, 'Sum'],
    ['metricRunDuration', (c, p) => c.metricRunDuration(p), METRICS.runDuration, 'Maximum'],
    ['metricSnapshotSetsFailed', (c, p) => c.metricSnapshotSetsFailed(p), METRICS.snapshotSetsFailed, 'Sum'],
    ['metricStepFailures', (c, p) => c.metricStepFailures(p), METRICS.stepFailures, 'Sum'],
    ['metricSnapshotSetsDeleted', (c, p) => c.metricSnapshotSetsDeleted(p), METRICS.snapshotSetsDeleted, 'Sum'],
    ['metricSnapshotsDeleted', (c, p) => c.metricSnapshotsDeleted(p), METRICS.snapshotsDeleted, 'Sum'],
    ['metricSnapshotSetsInUse', (c, p) => c.metricSnapshotSetsInUse(p), METRICS.snapshotSetsInUse, 'Sum'],
    ['metricSnapshotSetsLocked', (c, p) => c.metricSnapshotSetsLocked(p), METRICS.snapshotSetsLocked, 'Sum'],
    ['metricPruneFailures', (c, p) => c.metricPruneFailures(p), METRICS.pruneFailures, 'Sum'],
    ['metricSnapshotLocksFailed', (c, p) => c.metricSnapshotLocksFailed(p), METRICS.snapshotLocksFailed, 'Sum'],
  ];

  test.each(helpers)('GIVEN %s WHEN called THEN it returns the metric in the library\'s namespace with the one Schedule dimension', (_name, helper, metricName, statistic) => {
    const { construct } = synth();
    const metric = helper(construct);
    const { namespace, dimensions } = metric;
    expect({ namespace, metricName: metric.metricName, dimensions, statistic: metric.statistic, period: metric.period.toSeconds() })
      .toEqual({ namespace: 'CdkInstanceSnapshots', metricName, dimensions: { Schedule: 'TestStack/Nightly' }, statistic, period: 300 });
  });

  test.each(helpers)('GIVEN %s with options WHEN called THEN the options win', (_name, helper) => {
    const { construct } = synth();
    const metric = helper(construct, { period: Duration.days(1), statistic: 'p90', label: 'mine' });
    expect({ period: metric.period.toSeconds(), statistic: metric.statistic, label: metric.label }).toEqual({ period: 86_400, statistic: 'p90', label: 'mine' });
  });

  test('GIVEN a metric name WHEN metric() is called THEN it builds that metric of this schedule', () => {
    const { construct } = synth();
    const metric = construct.metric(METRICS.dryRunChecksPassed);
    expect([metric.namespace, metric.metricName, metric.dimensions]).toEqual(['CdkInstanceSnapshots', 'DryRunChecksPassed', { Schedule: 'TestStack/Nightly' }]);
  });

  test('GIVEN a helper WHEN used in an alarm of the user\'s THEN it renders the namespace and dimension', () => {
    const stack = newStack();
    const construct = new InstanceSnapshotSchedule(stack, 'Nightly', DEFAULT_PROPS);
    construct.metricRunDuration({ period: Duration.days(1) }).createAlarm(stack, 'TooSlow', { threshold: 3600, evaluationPeriods: 1 });
    Template.fromStack(stack).hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'CdkInstanceSnapshots', MetricName: 'RunDuration', Dimensions: [{ Name: 'Schedule', Value: 'TestStack/Nightly' }], Statistic: 'Maximum', Period: 86_400,
    });
  });
});

describe('resource budget', () => {
  test('GIVEN the construct WHEN synthesized THEN no role has a separate policy resource: every permission is inline', () => {
    const { template } = synth();
    template.resourceCountIs('AWS::IAM::Policy', 0);
    for (const prefix of ['NightlySchedulerRole', 'NightlyWorkflowRole', 'NightlyWorkerRole']) {
      expect(resource(template, 'AWS::IAM::Role', prefix).properties.Policies).toHaveLength(1);
    }
  });

  test('GIVEN one schedule with every default WHEN synthesized THEN it has 11 resources of its own and the stack 8 shared ones', () => {
    const { template } = synth();
    const types = Object.entries(template.toJSON().Resources).map(([k, r]: [string, any]) => `${k.startsWith(SHARED) ? 'shared' : 'own'} ${r.Type}`).sort();
    expect(types).toEqual([
      'own AWS::CloudWatch::Alarm', 'own AWS::CloudWatch::Alarm', 'own AWS::Events::Rule', 'own AWS::Events::Rule',
      'own AWS::IAM::Role', 'own AWS::IAM::Role', 'own AWS::IAM::Role', 'own AWS::Lambda::Function', 'own AWS::Lambda::Permission',
      'own AWS::Scheduler::Schedule', 'own AWS::StepFunctions::StateMachine',
      'shared AWS::CloudWatch::Alarm', 'shared AWS::DynamoDB::Table', 'shared AWS::KMS::Key', 'shared AWS::Logs::LogGroup',
      'shared AWS::SNS::Topic', 'shared AWS::SNS::TopicPolicy', 'shared AWS::SQS::Queue', 'shared AWS::SQS::QueuePolicy',
    ]);
  });
});

describe('validation of the operations props', () => {
  test.each<[string, Partial<InstanceSnapshotScheduleProps>, string]>([
    ['a negative expectedMinimumInstances', { expectedMinimumInstances: -1 }, 'expectedMinimumInstances must be a whole number of 0 or more (0 turns the minimum off), got: -1'],
    ['a fractional expectedMinimumInstances', { expectedMinimumInstances: 1.5 }, 'expectedMinimumInstances must be a whole number of 0 or more (0 turns the minimum off), got: 1.5'],
    ['expectedMinimumInstances as a string', { expectedMinimumInstances: '1' as any }, 'expectedMinimumInstances must be a whole number of 0 or more (0 turns the minimum off), got: "1"'],
    ['heartbeatPeriod under a minute', { heartbeatPeriod: Duration.seconds(30) }, 'heartbeatPeriod must be whole minutes from 1 minute to 7 days (CloudWatch evaluates an alarm over at most 7 days), got: 30 seconds'],
    ['heartbeatPeriod not in whole minutes', { heartbeatPeriod: Duration.seconds(90) }, 'heartbeatPeriod must be whole minutes from 1 minute to 7 days (CloudWatch evaluates an alarm over at most 7 days), got: 1 minute 30 seconds'],
    ['heartbeatPeriod over 7 days', { heartbeatPeriod: Duration.days(8) }, 'heartbeatPeriod must be whole minutes from 1 minute to 7 days (CloudWatch evaluates an alarm over at most 7 days), got: 8 days'],
    ['an unknown logLevel', { logLevel: 'TRACE' as LogLevel }, 'logLevel must be a LogLevel member, got: "TRACE"'],
    ['alarms as a string', { alarms: 'false' as any }, 'alarms must be true or false, got: "false"'],
    ['dashboard as a number', { dashboard: 1 as any }, 'dashboard must be true or false, got: 1'],
  ])('GIVEN %s WHEN constructed THEN it fails naming the prop', (_name, props, message) => {
    expect(() => new InstanceSnapshotSchedule(newStack(), 'Nightly', { ...DEFAULT_PROPS, ...props })).toThrow(new Error(message));
  });

  test('GIVEN a FIFO topic WHEN constructed THEN it fails naming notificationTopic', () => {
    const stack = newStack();
    const topic = sns.Topic.fromTopicArn(stack, 'Fifo', `arn:aws:sns:${REGION}:${ACCOUNT}:alerts.fifo`);
    expect(() => new InstanceSnapshotSchedule(stack, 'Nightly', { ...DEFAULT_PROPS, notificationTopic: topic }))
      .toThrow(new Error(`notificationTopic must be a standard topic (EventBridge publishes to a FIFO topic only with a message group id), got: "arn:aws:sns:${REGION}:${ACCOUNT}:alerts.fifo"`));
  });

  test('GIVEN a FIFO queue WHEN constructed THEN it fails naming deadLetterQueue', () => {
    const stack = newStack();
    const queue = new sqs.Queue(stack, 'Fifo', { fifo: true });
    expect(() => new InstanceSnapshotSchedule(stack, 'Nightly', { ...DEFAULT_PROPS, deadLetterQueue: queue }))
      .toThrow(new Error('deadLetterQueue must be a standard queue (EventBridge Scheduler takes no FIFO dead-letter queue), got: the queue TestStack/Fifo'));
  });

  test('GIVEN the limits WHEN constructed THEN they are accepted', () => {
    const stack = newStack();
    expect(() => new InstanceSnapshotSchedule(stack, 'A', { ...DEFAULT_PROPS, expectedMinimumInstances: 0, heartbeatPeriod: Duration.minutes(1) })).not.toThrow();
    expect(() => new InstanceSnapshotSchedule(stack, 'B', { ...DEFAULT_PROPS, expectedMinimumInstances: 100_000, heartbeatPeriod: Duration.days(7) })).not.toThrow();
  });

  test('GIVEN a weekly schedule WHEN synthesized THEN the heartbeat note is an info, not a warning (a weekly schedule is no mistake)', () => {
    const { stack } = synth({ schedule: scheduler.ScheduleExpression.cron({ weekDay: 'SUN', hour: '4', minute: '0' }) });
    expect(warnings(stack)).toEqual([]);
  });
});
