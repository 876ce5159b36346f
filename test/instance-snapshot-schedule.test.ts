import { App, CfnParameter, Annotations as CoreAnnotations, Duration, Stack, StackProps } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { CopyTagsFromSource, InstanceSnapshotSchedule, InstanceSnapshotScheduleProps } from '../src';
import { FULL_PROPS, fullProps } from './support/full-props';
import { parseOccurrence, REQUEST_VERSION, requestSha256 } from '../src/private/request-contract';

const ACCOUNT = '123456789012';
const REGION = 'eu-central-1';
const PARTITION = { Ref: 'AWS::Partition' };
const DEFAULT_PROPS: InstanceSnapshotScheduleProps = { instanceTags: { Backup: ['nightly'] } };

function newStack(stackProps: StackProps = { env: { account: ACCOUNT, region: REGION } }): Stack {
  return new Stack(new App(), 'TestStack', stackProps);
}

function synth(props: Partial<InstanceSnapshotScheduleProps> = {}): { stack: Stack; template: Template; construct: InstanceSnapshotSchedule } {
  const stack = newStack();
  const construct = new InstanceSnapshotSchedule(stack, 'Nightly', { ...DEFAULT_PROPS, ...props });
  return { stack, construct, template: Template.fromStack(stack) };
}

/** A CloudFormation value as text, references written as `<Ref X>` and `<GetAtt X.Y>` unless `refs` gives their text. */
function asText(value: any, refs: Record<string, string> = {}): string {
  if (typeof value === 'string') return value;
  if (value['Fn::Join']) return value['Fn::Join'][1].map((part: any) => asText(part, refs)).join(value['Fn::Join'][0]);
  if (value.Ref) return refs[value.Ref] ?? `<Ref ${value.Ref}>`;
  if (value['Fn::GetAtt']) return `<GetAtt ${value['Fn::GetAtt'].join('.')}>`;
  throw new Error(`cannot write ${JSON.stringify(value)} as text`);
}

/** The one resource of a type whose logical id starts with a prefix. */
function resource(template: Template, type: string, logicalIdPrefix: string): { id: string; properties: any } {
  const found = Object.entries(template.findResources(type)).filter(([id]) => id.startsWith(logicalIdPrefix));
  expect(found.map(([id]) => id)).toHaveLength(1);
  return { id: found[0][0], properties: found[0][1].Properties };
}

function logicalId(template: Template, type: string, logicalIdPrefix: string): string {
  return resource(template, type, logicalIdPrefix).id;
}

/** The schedule's target input, references as text. */
function targetInput(template: Template, prefix = 'Nightly'): any {
  return JSON.parse(asText(resource(template, 'AWS::Scheduler::Schedule', `${prefix}Schedule`).properties.Target.Input));
}

/** The state machine's definition, references as text. */
function definition(template: Template, prefix = 'Nightly', refs: Record<string, string> = {}): any {
  return JSON.parse(asText(resource(template, 'AWS::StepFunctions::StateMachine', `${prefix}Workflow`).properties.DefinitionString, refs));
}

/** The request the definition holds (the same text in both worker tasks), parsed. */
function definedRequest(template: Template, prefix = 'Nightly', refs: Record<string, string> = {}): any {
  const states = definition(template, prefix, refs).States;
  expect(states.SnapshotStep.Parameters.request).toBe(states.Prepare.Parameters.request);
  return JSON.parse(states.Prepare.Parameters.request);
}

/** The statements of a role's one inline policy (every role of the construct has exactly one, and no attached policy). */
function roleStatements(template: Template, logicalIdPrefix: string): any[] {
  const role = resource(template, 'AWS::IAM::Role', logicalIdPrefix);
  expect(role.properties.Policies).toHaveLength(1);
  const attached = Object.values(template.findResources('AWS::IAM::Policy')).filter((p) => JSON.stringify(p.Properties.Roles).includes(role.id));
  expect(attached).toEqual([]);
  return role.properties.Policies[0].PolicyDocument.Statement;
}

function workerRoleStatements(template: Template, prefix = 'Nightly'): any[] {
  return roleStatements(template, `${prefix}WorkerRole`);
}

const arn = (service: string, resourcePart: string, account = ACCOUNT) => ({
  'Fn::Join': ['', ['arn:', PARTITION, `:${service}:${REGION}:${account}:${resourcePart}`]],
});

describe('snapshots of the whole template', () => {
  test('default construct', () => {
    const { template } = synth();
    expect(template.toJSON()).toMatchSnapshot();
  });

  test('fully configured construct', () => {
    const stack = newStack();
    const dlq = new sqs.Queue(stack, 'Dlq', { enforceSSL: true });
    const group = new scheduler.ScheduleGroup(stack, 'Group', { scheduleGroupName: 'backups' });
    const logGroup = new logs.LogGroup(stack, 'Logs', { retention: logs.RetentionDays.ONE_YEAR });
    new InstanceSnapshotSchedule(stack, 'Nightly', fullProps(dlq, group, logGroup, new sns.Topic(stack, 'Alerts')));
    expect(Template.fromStack(stack).toJSON()).toMatchSnapshot();
  });
});

describe('schedule', () => {
  test('GIVEN no schedule WHEN synthesized THEN it runs daily at 03:00 UTC, enabled, at the exact time', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(0 3 * * ? *)',
      ScheduleExpressionTimezone: 'Etc/UTC',
      State: 'ENABLED',
      FlexibleTimeWindow: { Mode: 'OFF' },
      Name: Match.absent(),
      GroupName: Match.absent(),
    });
  });

  test('GIVEN a cron in a time zone WHEN synthesized THEN the expression and time zone render', () => {
    const { template } = synth({ schedule: FULL_PROPS.schedule });
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(30 2 * * ? *)',
      ScheduleExpressionTimezone: 'Europe/Berlin',
    });
  });

  test('GIVEN name, group, window and disabled WHEN synthesized THEN they pass through', () => {
    const stack = newStack();
    const group = new scheduler.ScheduleGroup(stack, 'Group', { scheduleGroupName: 'backups' });
    new InstanceSnapshotSchedule(stack, 'Nightly', { ...FULL_PROPS, scheduleGroup: group });
    Template.fromStack(stack).hasResourceProperties('AWS::Scheduler::Schedule', {
      Name: 'nightly-snapshots',
      GroupName: 'backups',
      State: 'DISABLED',
      FlexibleTimeWindow: { Mode: 'FLEXIBLE', MaximumWindowInMinutes: 30 },
    });
  });

  test('GIVEN the defaults WHEN synthesized THEN the scheduler retries for 24 hours, 185 times, then sends to the stack\'s shared dead-letter queue', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      Target: {
        RetryPolicy: { MaximumEventAgeInSeconds: 86_400, MaximumRetryAttempts: 185 },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [logicalId(template, 'AWS::SQS::Queue', 'InstanceSnapshotScheduleSharedDeadLetterQueue'), 'Arn'] } },
      },
    });
  });

  test('GIVEN a dead-letter queue and retry settings WHEN synthesized THEN they render and the scheduler role may send to the queue', () => {
    const stack = newStack();
    const dlq = new sqs.Queue(stack, 'Dlq');
    new InstanceSnapshotSchedule(stack, 'Nightly', { ...DEFAULT_PROPS, deadLetterQueue: dlq, maxEventAge: Duration.hours(2), retryAttempts: 10 });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      Target: {
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Dlq'), 'Arn'] } },
        RetryPolicy: { MaximumEventAgeInSeconds: 7200, MaximumRetryAttempts: 10 },
      },
    });
    expect(roleStatements(template, 'NightlySchedulerRole')).toContainEqual({
      Effect: 'Allow',
      Action: 'sqs:SendMessage',
      Resource: { 'Fn::GetAtt': [logicalId(template, 'AWS::SQS::Queue', 'Dlq'), 'Arn'] },
    });
    // a queue of the user's gets no queue of ours next to it
    template.resourceCountIs('AWS::SQS::Queue', 1);
  });

  test('GIVEN the schedule WHEN synthesized THEN it calls sfn:startExecution through the universal target, with its own role', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      Target: {
        Arn: { 'Fn::Join': ['', ['arn:', PARTITION, ':scheduler:::aws-sdk:sfn:startExecution']] },
        RoleArn: { 'Fn::GetAtt': [logicalId(template, 'AWS::IAM::Role', 'NightlySchedulerRole'), 'Arn'] },
      },
    });
  });

  test('GIVEN the schedule WHEN synthesized THEN StartExecution starts this schedule\'s workflow, named after the scheduler\'s execution id', () => {
    const { template } = synth();
    expect(targetInput(template)).toEqual({
      StateMachineArn: `<Ref ${logicalId(template, 'AWS::StepFunctions::StateMachine', 'NightlyWorkflow')}>`,
      Name: '<aws.scheduler.execution-id>',
      Input: expect.any(String),
    });
  });

  test('GIVEN the schedule WHEN synthesized THEN the execution input is JSON text with the scheduled time and the execution id', () => {
    const { template } = synth();
    expect(JSON.parse(targetInput(template).Input)).toEqual({
      scheduledTime: '<aws.scheduler.scheduled-time>',
      schedulerExecutionId: '<aws.scheduler.execution-id>',
    });
  });

  test('GIVEN the execution input filled in as the scheduler does WHEN the worker names the occurrence THEN it is accepted', () => {
    const { template } = synth();
    const input = targetInput(template);
    const executionId = 'd32c5kddcf5bb8c3';
    const filled = JSON.parse(input.Input.replace('<aws.scheduler.scheduled-time>', '2026-11-24T02:30:00Z').replace('<aws.scheduler.execution-id>', executionId));
    const name = input.Name.replace('<aws.scheduler.execution-id>', executionId);
    expect(parseOccurrence('TestStack/Nightly', filled, name)).toEqual(expect.objectContaining({
      scheduledTime: '2026-11-24T02:30:00Z',
      executionName: executionId,
      lockKey: 'TestStack/Nightly#2026-11-24T02:30:00Z',
    }));
  });

  test('GIVEN instance tags WHEN synthesized THEN the description names them', () => {
    const { template } = synth({ instanceTags: { Backup: ['nightly', 'always'], Environment: ['prod'] } });
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      Description: 'cdk-instance-snapshots: snapshot sets of instances tagged Backup=nightly|always, Environment=prod',
    });
  });

  test('GIVEN tags longer than the description allows WHEN synthesized THEN it is cut to 512 characters with an ellipsis', () => {
    const values = Array.from({ length: 5 }, (_, i) => `${i}`.padEnd(200, 'v'));
    const { template } = synth({ instanceTags: { Backup: values } });
    const description: string = resource(template, 'AWS::Scheduler::Schedule', 'NightlySchedule').properties.Description;
    expect(description).toHaveLength(512);
    expect(description).toBe(`cdk-instance-snapshots: snapshot sets of instances tagged Backup=${values.join('|')}`.slice(0, 509) + '...');
  });

  test('GIVEN a token among the instance tags WHEN synthesized THEN the description does not name the tags (no token cut in half)', () => {
    const stack = newStack();
    const param = new CfnParameter(stack, 'BackupValue');
    // long enough to be cut if it were written out
    new InstanceSnapshotSchedule(stack, 'Nightly', { instanceTags: { Backup: [param.valueAsString], Tier: ['x'.repeat(256), 'y'.repeat(256)] } });
    Template.fromStack(stack).hasResourceProperties('AWS::Scheduler::Schedule', {
      Description: 'cdk-instance-snapshots: snapshot sets of tagged instances',
    });
  });
});

describe('scheduler role', () => {
  test('GIVEN the default schedule group WHEN synthesized THEN only EventBridge Scheduler of this account and group may assume it', () => {
    const { template } = synth();
    const role = resource(template, 'AWS::IAM::Role', 'NightlySchedulerRole').properties;
    expect(role.AssumeRolePolicyDocument.Statement).toEqual([{
      Effect: 'Allow',
      Action: 'sts:AssumeRole',
      Principal: { Service: 'scheduler.amazonaws.com' },
      Condition: {
        StringEquals: { 'aws:SourceAccount': ACCOUNT },
        ArnEquals: { 'aws:SourceArn': arn('scheduler', 'schedule-group/default') },
      },
    }]);
  });

  test('GIVEN a schedule group WHEN synthesized THEN the trust names that group\'s ARN', () => {
    const stack = newStack();
    const group = new scheduler.ScheduleGroup(stack, 'Group', { scheduleGroupName: 'backups' });
    new InstanceSnapshotSchedule(stack, 'Nightly', { ...DEFAULT_PROPS, scheduleGroup: group });
    const template = Template.fromStack(stack);
    expect(resource(template, 'AWS::IAM::Role', 'NightlySchedulerRole').properties.AssumeRolePolicyDocument.Statement[0].Condition).toEqual({
      StringEquals: { 'aws:SourceAccount': ACCOUNT },
      ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [logicalId(template, 'AWS::Scheduler::ScheduleGroup', 'Group'), 'Arn'] } },
    });
  });

  test('GIVEN an environment-agnostic stack WHEN synthesized THEN the trust uses the deploying account and Region', () => {
    const stack = newStack({});
    new InstanceSnapshotSchedule(stack, 'Nightly', DEFAULT_PROPS);
    const template = Template.fromStack(stack);
    expect(resource(template, 'AWS::IAM::Role', 'NightlySchedulerRole').properties.AssumeRolePolicyDocument.Statement[0].Condition).toEqual({
      StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
      ArnEquals: {
        'aws:SourceArn': {
          'Fn::Join': ['', ['arn:', PARTITION, ':scheduler:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':schedule-group/default']],
        },
      },
    });
  });

  test('GIVEN the scheduler role WHEN synthesized THEN it may start this schedule\'s workflow and send to the dead-letter queue, nothing else, in its inline policy', () => {
    const { template } = synth();
    expect(roleStatements(template, 'NightlySchedulerRole')).toEqual([{
      Effect: 'Allow',
      Action: 'states:StartExecution',
      Resource: { Ref: logicalId(template, 'AWS::StepFunctions::StateMachine', 'NightlyWorkflow') },
    }, {
      Effect: 'Allow',
      Action: 'sqs:SendMessage',
      Resource: { 'Fn::GetAtt': [logicalId(template, 'AWS::SQS::Queue', 'InstanceSnapshotScheduleSharedDeadLetterQueue'), 'Arn'] },
    }]);
    expect(resource(template, 'AWS::IAM::Role', 'NightlySchedulerRole').properties.Policies[0].PolicyName).toBe('StartWorkflow');
  });
});

describe('workflow (state machine)', () => {
  test('GIVEN the construct WHEN synthesized THEN it is a Standard state machine that logs everything to the log group, traced by X-Ray, for at most 24 hours', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      LoggingConfiguration: {
        Level: 'ALL',
        IncludeExecutionData: true,
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [logicalId(template, 'AWS::Logs::LogGroup', 'InstanceSnapshotScheduleSharedLogs'), 'Arn'] } } }],
      },
      TracingConfiguration: { Enabled: true },
    });
    expect(definition(template).TimeoutSeconds).toBe(86_400);
  });

  test('GIVEN the construct WHEN synthesized THEN the run starts with Prepare and ClaimOccurrence, both worker tasks calling this schedule\'s worker', () => {
    const { template } = synth();
    const def = definition(template);
    const worker = `<GetAtt ${logicalId(template, 'AWS::Lambda::Function', 'NightlyWorker')}.Arn>`;
    expect(def.StartAt).toBe('Prepare');
    expect(def.States.Prepare).toEqual(expect.objectContaining({ Type: 'Task', Resource: worker, Next: 'ClaimOccurrence' }));
    expect(def.States.SnapshotStep).toEqual(expect.objectContaining({ Type: 'Task', Resource: worker }));
    expect(def.States.ClaimOccurrence.Parameters.TableName).toBe(`<Ref ${logicalId(template, 'AWS::DynamoDB::Table', 'InstanceSnapshotScheduleSharedOccurrenceLocks')}>`);
  });

  test('GIVEN default props WHEN synthesized THEN the definition holds the request with the defaults and no execution data', () => {
    const { template } = synth();
    expect(definedRequest(template)).toEqual({
      version: REQUEST_VERSION,
      scheduleId: 'TestStack/Nightly',
      instanceTags: { Backup: ['nightly'] },
      excludeBootVolume: false,
      excludeDataVolumeIds: [],
      excludeDataVolumeTags: {},
      snapshotTags: {},
      dryRun: false,
      createSnapshotsPerSecond: 5,
    });
  });

  test('GIVEN every CreateSnapshots option WHEN synthesized THEN each one is in the definition\'s request', () => {
    const { template } = synth(FULL_PROPS);
    expect(definedRequest(template)).toEqual({
      version: REQUEST_VERSION,
      scheduleId: 'backups/nightly-prod',
      instanceTags: { Backup: ['nightly', 'always'], Environment: ['prod'] },
      excludeInstanceTags: { Backup: ['never'], Lifecycle: ['decommissioning'] },
      excludeBootVolume: true,
      excludeDataVolumeIds: ['vol-0123456789abcdef0', 'vol-0fedcba9876543210'],
      excludeDataVolumeTags: { Scratch: ['true'], Backup: ['never'] },
      description: 'nightly crash-consistent set',
      snapshotTags: { CostCenter: '42', Team: 'platform' },
      copyTagsFromSource: 'volume',
      dryRun: false,
      createSnapshotsPerSecond: 20,
      lock: { mode: 'governance', durationDays: 7 },
      retention: { count: 7, daily: 14, weekly: 8, monthly: 12, timeZone: 'Europe/Berlin', goneInstanceSeconds: 30 * 86_400 },
      deleteSnapshotsPerSecond: 10,
      copies: [
        {
          region: 'eu-west-1',
          kmsKeyArn: 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
          copyTags: false,
          retention: { daily: 7, monthly: 3, timeZone: 'Europe/Berlin', goneInstanceSeconds: 30 * 86_400 },
          completionDurationMinutes: 120,
        },
        {
          region: 'us-east-1',
          copyTags: true,
          retention: { count: 7, daily: 14, weekly: 8, monthly: 12, timeZone: 'Europe/Berlin', goneInstanceSeconds: 30 * 86_400 },
        },
      ],
      vault: { account: '999988887777', eventBusArn: 'arn:aws:events:eu-central-1:999988887777:event-bus/snapshot-vault' },
    });
  });

  test.each([1, 2.5, 1000])('GIVEN createSnapshotsPerSecond %p WHEN synthesized THEN the definition\'s request carries it', (rate) => {
    const { template } = synth({ createSnapshotsPerSecond: rate });
    expect(definedRequest(template).createSnapshotsPerSecond).toBe(rate);
  });

  test('GIVEN a tag key ending in ".$" WHEN synthesized THEN it stays a tag key (the request is text, not a path)', () => {
    const { template } = synth({ instanceTags: { 'Backup.$': ['nightly'] } });
    expect(definedRequest(template).instanceTags).toEqual({ 'Backup.$': ['nightly'] });
  });

  test('GIVEN dryRun WHEN synthesized THEN the request asks for a dry run and the construct warns', () => {
    const { template, stack } = synth({ dryRun: true });
    expect(definedRequest(template).dryRun).toBe(true);
    Annotations.fromStack(stack).hasWarning('/TestStack/Nightly', Match.stringLikeRegexp('^dryRun is true: runs only check permissions and create no snapshots'));
  });

  test('GIVEN no dryRun WHEN synthesized THEN there is no dry-run warning', () => {
    const { stack } = synth();
    Annotations.fromStack(stack).hasNoWarning('*', Match.stringLikeRegexp('dryRun'));
  });

  test('GIVEN the workflow role WHEN synthesized THEN it invokes only the worker\'s unqualified ARN and reads and writes only the lock table', () => {
    const { template } = synth();
    const table = logicalId(template, 'AWS::DynamoDB::Table', 'InstanceSnapshotScheduleSharedOccurrenceLocks');
    const tableArn = { 'Fn::Join': ['', ['arn:', PARTITION, `:dynamodb:${REGION}:${ACCOUNT}:table/`, { Ref: table }]] };
    const statements = roleStatements(template, 'NightlyWorkflowRole');
    expect(statements.filter((s) => s.Resource !== '*')).toEqual([
      { Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: { 'Fn::GetAtt': [logicalId(template, 'AWS::Lambda::Function', 'NightlyWorker'), 'Arn'] } },
      { Effect: 'Allow', Action: 'dynamodb:PutItem', Resource: tableArn },
      { Effect: 'Allow', Action: 'dynamodb:GetItem', Resource: tableArn },
    ]);
  });

  test('GIVEN the workflow role WHEN synthesized THEN only X-Ray and log delivery, which take no resource ARN, use Resource "*"', () => {
    const { template } = synth();
    const star = roleStatements(template, 'NightlyWorkflowRole').filter((s) => s.Resource === '*');
    expect(new Set(star.flatMap((s) => [s.Action].flat()).map((a: string) => a.split(':')[0]))).toEqual(new Set(['logs', 'xray']));
  });
});

describe('lock table (shared)', () => {
  test('GIVEN the construct WHEN synthesized THEN the table is keyed by pk, on demand, expires items by expiresAt and has point-in-time recovery', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      BillingMode: 'PAY_PER_REQUEST',
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      ProvisionedThroughput: Match.absent(),
    });
  });

  test('GIVEN the construct WHEN synthesized THEN the table goes with the stack (locks only guard against duplicate deliveries)', () => {
    const { template } = synth();
    template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete' });
  });

  test('GIVEN the construct WHEN synthesized THEN the shared log group keeps 3 months of logs', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
  });
});

describe('worker function', () => {
  test('GIVEN the construct WHEN synthesized THEN the worker runs on Node.js 24, arm64, 15 minutes, 512 MB, JSON logs to the shared log group', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      Timeout: 900,
      MemorySize: 512,
      Role: { 'Fn::GetAtt': [logicalId(template, 'AWS::IAM::Role', 'NightlyWorkerRole'), 'Arn'] },
      LoggingConfig: { LogFormat: 'JSON', LogGroup: { Ref: logicalId(template, 'AWS::Logs::LogGroup', 'InstanceSnapshotScheduleSharedLogs') } },
    });
  });

  test('GIVEN the construct WHEN synthesized THEN REQUEST_SHA256 is the SHA-256 of the request the definition holds', () => {
    const { template } = synth(FULL_PROPS);
    const environment = resource(template, 'AWS::Lambda::Function', 'NightlyWorker').properties.Environment.Variables;
    expect(environment).toEqual({
      POWERTOOLS_SERVICE_NAME: 'cdk-instance-snapshots',
      POWERTOOLS_METRICS_NAMESPACE: 'CdkInstanceSnapshots',
      POWERTOOLS_LOG_LEVEL: 'DEBUG',
      SCHEDULE_ID: 'backups/nightly-prod',
      NOTIFICATION_TOPIC_ARN: { Ref: logicalId(template, 'AWS::SNS::Topic', 'InstanceSnapshotScheduleSharedNotifications') },
      REQUEST_SHA256: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect(environment.REQUEST_SHA256).toBe(requestSha256(definedRequest(template)));
  });

  test('GIVEN two schedules that differ only in createSnapshotsPerSecond WHEN synthesized THEN their workers accept different requests', () => {
    const stack = newStack();
    new InstanceSnapshotSchedule(stack, 'Nightly', { ...DEFAULT_PROPS, createSnapshotsPerSecond: 5 });
    new InstanceSnapshotSchedule(stack, 'Weekly', { ...DEFAULT_PROPS, createSnapshotsPerSecond: 6 });
    const template = Template.fromStack(stack);
    const sha = (prefix: string) => resource(template, 'AWS::Lambda::Function', `${prefix}Worker`).properties.Environment.Variables.REQUEST_SHA256;
    expect(sha('Nightly')).toBe(requestSha256(definedRequest(template, 'Nightly')));
    expect(sha('Weekly')).toBe(requestSha256(definedRequest(template, 'Weekly')));
    expect(sha('Nightly')).not.toBe(sha('Weekly'));
  });

  test('GIVEN a token in the props WHEN synthesized THEN the definition references it and the worker has no REQUEST_SHA256 to check against', () => {
    const stack = newStack();
    const param = new CfnParameter(stack, 'Description');
    new InstanceSnapshotSchedule(stack, 'Nightly', { ...DEFAULT_PROPS, description: param.valueAsString });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: { POWERTOOLS_SERVICE_NAME: 'cdk-instance-snapshots', REQUEST_SHA256: Match.absent() } },
    });
    expect(definedRequest(template).description).toBe('<Ref Description>');
  });
});

describe('worker role', () => {
  test('GIVEN the worker role WHEN synthesized THEN Lambda assumes it and it has no managed policy', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: { Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Principal: { Service: 'lambda.amazonaws.com' } }] },
      ManagedPolicyArns: Match.absent(),
    });
  });

  test('GIVEN the worker WHEN synthesized THEN no other policy is attached to its role', () => {
    const { template } = synth();
    const role = logicalId(template, 'AWS::IAM::Role', 'NightlyWorkerRole');
    const attached = Object.values(template.findResources('AWS::IAM::Policy')).filter((p) => JSON.stringify(p.Properties.Roles).includes(role));
    expect(attached).toEqual([]);
  });

  test('GIVEN instance tags WHEN synthesized THEN CreateSnapshots is allowed only on instances carrying them (AND across keys, OR within values)', () => {
    const { template } = synth({ instanceTags: { Backup: ['nightly', 'always'], Environment: ['prod'] } });
    expect(workerRoleStatements(template)).toContainEqual({
      Sid: 'CreateSnapshotsOfSelectedInstances',
      Effect: 'Allow',
      Action: 'ec2:CreateSnapshots',
      Resource: arn('ec2', 'instance/*'),
      Condition: { StringEquals: { 'aws:ResourceTag/Backup': ['nightly', 'always'], 'aws:ResourceTag/Environment': ['prod'] } },
    });
  });

  test('GIVEN the construct WHEN synthesized THEN volumes, and snapshots (no account in their ARN) tagged with this schedule, are allowed', () => {
    const { template } = synth();
    const statements = workerRoleStatements(template);
    expect(statements).toContainEqual({
      Sid: 'CreateSnapshotsOfTheirVolumes', Effect: 'Allow', Action: 'ec2:CreateSnapshots', Resource: arn('ec2', 'volume/*'),
    });
    expect(statements).toContainEqual({
      Sid: 'CreateSnapshotsTaggedWithThisSchedule',
      Effect: 'Allow',
      Action: 'ec2:CreateSnapshots',
      Resource: arn('ec2', 'snapshot/*', ''),
      Condition: { StringEquals: { 'aws:RequestTag/cdk-instance-snapshots:schedule': 'TestStack/Nightly' } },
    });
  });

  test('GIVEN the construct WHEN synthesized THEN CreateTags is allowed on snapshots only as part of CreateSnapshots', () => {
    const { template } = synth();
    expect(workerRoleStatements(template)).toContainEqual({
      Sid: 'TagSnapshotsOnCreation',
      Effect: 'Allow',
      Action: 'ec2:CreateTags',
      Resource: arn('ec2', 'snapshot/*', ''),
      Condition: { StringEquals: { 'ec2:CreateAction': 'CreateSnapshots' } },
    });
  });

  test('GIVEN the construct WHEN synthesized THEN the worker writes logs only to its log group', () => {
    const { template } = synth();
    expect(workerRoleStatements(template)).toContainEqual({
      Sid: 'WriteItsLogs',
      Effect: 'Allow',
      Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      Resource: { 'Fn::GetAtt': [logicalId(template, 'AWS::Logs::LogGroup', 'InstanceSnapshotScheduleSharedLogs'), 'Arn'] },
    });
  });

  test('GIVEN the construct WHEN synthesized THEN the worker\'s only Resource "*" is the describe calls, and it has nothing but these eight statements', () => {
    const { template } = synth();
    const statements = workerRoleStatements(template);
    expect(statements.map((s) => s.Sid)).toEqual([
      'CreateSnapshotsOfSelectedInstances', 'CreateSnapshotsOfTheirVolumes', 'CreateSnapshotsTaggedWithThisSchedule',
      'TagSnapshotsOnCreation', 'DescribeHasNoResourceType', 'WriteItsLogs', 'NotifyFailedSnapshotSets', 'EncryptNotifications',
    ]);
    expect(statements.filter((s) => JSON.stringify(s.Resource).includes('"*"'))).toEqual([{
      Sid: 'DescribeHasNoResourceType',
      Effect: 'Allow',
      Action: ['ec2:DescribeInstances', 'ec2:DescribeSnapshots', 'ec2:DescribeVolumes'],
      Resource: '*',
    }]);
  });
});

describe('logGroup prop', () => {
  function withLogGroup() {
    const stack = newStack();
    const logGroup = new logs.LogGroup(stack, 'MyLogs');
    const construct = new InstanceSnapshotSchedule(stack, 'Nightly', { ...DEFAULT_PROPS, logGroup });
    const template = Template.fromStack(stack);
    return { construct, logGroup, template, id: logicalId(template, 'AWS::Logs::LogGroup', 'MyLogs') };
  }

  test('GIVEN a log group WHEN synthesized THEN the worker logs to it', () => {
    const { template, id } = withLogGroup();
    template.hasResourceProperties('AWS::Lambda::Function', { LoggingConfig: { LogFormat: 'JSON', LogGroup: { Ref: id } } });
    expect(workerRoleStatements(template).find((s) => s.Sid === 'WriteItsLogs').Resource).toEqual({ 'Fn::GetAtt': [id, 'Arn'] });
  });

  test('GIVEN a log group WHEN synthesized THEN the workflow logs to it', () => {
    const { template, id } = withLogGroup();
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      LoggingConfiguration: { Level: 'ALL', Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [id, 'Arn'] } } }] },
    });
  });

  test('GIVEN every schedule brings a log group WHEN synthesized THEN no shared log group is created', () => {
    const { template, construct, logGroup } = withLogGroup();
    expect(construct.logGroup).toBe(logGroup);
    template.resourceCountIs('AWS::Logs::LogGroup', 1);
  });
});

describe('what a stack\'s schedules share', () => {
  function twoSchedules() {
    const stack = newStack();
    const a = new InstanceSnapshotSchedule(stack, 'Nightly', DEFAULT_PROPS);
    const b = new InstanceSnapshotSchedule(stack, 'Weekly', { instanceTags: { Backup: ['weekly'] } });
    return { stack, a, b, template: Template.fromStack(stack) };
  }

  test('GIVEN two schedules in one stack WHEN synthesized THEN they share exactly one lock table and one log group', () => {
    const { a, b, template } = twoSchedules();
    template.resourceCountIs('AWS::DynamoDB::Table', 1);
    template.resourceCountIs('AWS::Logs::LogGroup', 1);
    expect(a.lockTable).toBe(b.lockTable);
    expect(a.logGroup).toBe(b.logGroup);
    const table = `<Ref ${logicalId(template, 'AWS::DynamoDB::Table', 'InstanceSnapshotScheduleSharedOccurrenceLocks')}>`;
    expect(definition(template, 'Nightly').States.ClaimOccurrence.Parameters.TableName).toBe(table);
    expect(definition(template, 'Weekly').States.ClaimOccurrence.Parameters.TableName).toBe(table);
  });

  test('GIVEN two schedules in one stack WHEN synthesized THEN each has its own worker, roles, state machine and schedule', () => {
    const { a, b, template } = twoSchedules();
    template.resourceCountIs('AWS::Lambda::Function', 2);
    template.resourceCountIs('AWS::StepFunctions::StateMachine', 2);
    template.resourceCountIs('AWS::Scheduler::Schedule', 2);
    template.resourceCountIs('AWS::IAM::Role', 6);
    expect(a.worker).not.toBe(b.worker);
    expect(a.workerRole).not.toBe(b.workerRole);
    expect(a.schedulerRole).not.toBe(b.schedulerRole);
    expect(a.stateMachine).not.toBe(b.stateMachine);
  });

  test('GIVEN two schedules in one stack WHEN synthesized THEN each worker role allows only its own schedule\'s instances and snapshots', () => {
    const { template } = twoSchedules();
    for (const [prefix, value] of [['Nightly', 'nightly'], ['Weekly', 'weekly']]) {
      const statements = workerRoleStatements(template, prefix);
      expect(statements.find((s) => s.Sid === 'CreateSnapshotsOfSelectedInstances').Condition).toEqual({ StringEquals: { 'aws:ResourceTag/Backup': [value] } });
      expect(statements.find((s) => s.Sid === 'CreateSnapshotsTaggedWithThisSchedule').Condition).toEqual({
        StringEquals: { 'aws:RequestTag/cdk-instance-snapshots:schedule': `TestStack/${prefix}` },
      });
    }
    template.hasResourceProperties('AWS::Lambda::Function', { Role: { 'Fn::GetAtt': [logicalId(template, 'AWS::IAM::Role', 'WeeklyWorkerRole'), 'Arn'] } });
  });

  test('GIVEN schedules in two stacks WHEN synthesized THEN each stack has its own lock table and log group', () => {
    const app = new App();
    const a = new InstanceSnapshotSchedule(new Stack(app, 'One'), 'A', DEFAULT_PROPS);
    const b = new InstanceSnapshotSchedule(new Stack(app, 'Two'), 'B', DEFAULT_PROPS);
    expect(a.lockTable).not.toBe(b.lockTable);
    expect(a.logGroup).not.toBe(b.logGroup);
    Template.fromStack(Stack.of(b)).resourceCountIs('AWS::DynamoDB::Table', 1);
  });

  test('GIVEN a foreign construct with the shared id WHEN a schedule is added THEN it fails clearly', () => {
    const stack = newStack();
    new sqs.Queue(stack, 'InstanceSnapshotScheduleShared');
    expect(() => new InstanceSnapshotSchedule(stack, 'Nightly', DEFAULT_PROPS))
      // the class name as aws-cdk-lib's bundle spells it (Queue2)
      .toThrow(/^the construct id "InstanceSnapshotScheduleShared" is reserved by cdk-instance-snapshots in stack TestStack, got: a Queue\d*$/);
  });

  test('GIVEN the construct WHEN synthesized THEN it exposes what it creates', () => {
    const { construct } = synth();
    expect(construct.schedule.node.path).toBe('TestStack/Nightly/Schedule');
    expect(construct.schedulerRole.node.path).toBe('TestStack/Nightly/SchedulerRole');
    expect(construct.stateMachine.node.path).toBe('TestStack/Nightly/Workflow');
    expect(construct.worker.node.path).toBe('TestStack/Nightly/Worker');
    expect(construct.workerRole.node.path).toBe('TestStack/Nightly/WorkerRole');
    expect(construct.workflowRole.node.path).toBe('TestStack/Nightly/WorkflowRole');
    expect(construct.stateMachine.role).toBe(construct.workflowRole);
    expect(construct.runFailedRule.node.path).toBe('TestStack/Nightly/RunFailedRule');
    expect(construct.snapshotSetFailedRule.node.path).toBe('TestStack/Nightly/SnapshotSetFailedRule');
    expect(construct.instancesFailedAlarm?.node.path).toBe('TestStack/Nightly/InstancesFailedAlarm');
    expect(construct.heartbeatAlarm?.node.path).toBe('TestStack/Nightly/HeartbeatAlarm');
    expect(construct.deadLetterQueueAlarm?.node.path).toBe('TestStack/InstanceSnapshotScheduleShared/DeadLetterQueueAlarm');
    expect(construct.notificationTopic.node.path).toBe('TestStack/InstanceSnapshotScheduleShared/Notifications');
    expect(construct.deadLetterQueue.node.path).toBe('TestStack/InstanceSnapshotScheduleShared/DeadLetterQueue');
    expect(construct.worker.role).toBe(construct.workerRole);
    expect(construct.lockTable.node.path).toBe('TestStack/InstanceSnapshotScheduleShared/OccurrenceLocks');
    expect((construct.logGroup as logs.LogGroup).node.path).toBe('TestStack/InstanceSnapshotScheduleShared/Logs');
    expect(construct.scheduleId).toBe('TestStack/Nightly');
  });
});

describe('validation', () => {
  const longKey = 'k'.repeat(128);
  const longValue = 'v'.repeat(257);
  const tooManyTags = Object.fromEntries(Array.from({ length: 47 }, (_, i) => [`t${i}`, 'x']));
  const tooManyVolumes = Array.from({ length: 41 }, (_, i) => `vol-${i.toString(16).padStart(17, '0')}`);
  /** What the messages show of a long string: its JSON cut to 120 characters. */
  const cut = (char: string) => `"${char.repeat(119)}...`;

  test.each<[string, Partial<InstanceSnapshotScheduleProps>, string]>([
    ['instanceTags null', { instanceTags: null as any }, 'instanceTags must be an object of tag key -> list of values (required), got: null'],
    ['instanceTags missing', { instanceTags: undefined as any }, 'instanceTags must be an object of tag key -> list of values (required), got: undefined'],
    ['instanceTags a list', { instanceTags: ['Backup'] as any }, 'instanceTags must be an object of tag key -> list of values (required), got: ["Backup"]'],
    ['empty instanceTags', { instanceTags: {} }, 'instanceTags must name at least one tag key, got: {}'],
    ['a key with no values', { instanceTags: { Backup: [] } }, 'instanceTags["Backup"] must list at least one accepted value, got: []'],
    ['a key with a string for a list', { instanceTags: { Backup: 'nightly' as any } }, 'instanceTags["Backup"] must list at least one accepted value, got: "nightly"'],
    ['a value that is not a string', { instanceTags: { Backup: [7 as any] } }, 'instanceTags["Backup"] values must be strings, got: 7'],
    ['a key over 127 characters', { instanceTags: { [longKey]: ['x'] } }, `instanceTags keys must be 1 to 127 characters, got: ${cut('k')} (128)`],
    ['an empty key', { instanceTags: { '': ['x'] } }, 'instanceTags keys must be 1 to 127 characters, got: "" (0)'],
    ['a value over 256 characters', { instanceTags: { Backup: [longValue] } }, `instanceTags["Backup"] values must be at most 256 characters, got: ${cut('v')} (257)`],
    ['a value listed twice', { instanceTags: { Backup: ['a', 'a'] } }, 'instanceTags["Backup"] lists a value twice, got: ["a","a"]'],
    ['excludeDataVolumeIds not a list', { excludeDataVolumeIds: 'vol-0123456789abcdef0' as any }, 'excludeDataVolumeIds must be a list of volume ids, got: "vol-0123456789abcdef0"'],
    ['41 excluded volumes', { excludeDataVolumeIds: tooManyVolumes }, 'excludeDataVolumeIds may list at most 40 volume ids (EC2\'s limit), got: 41'],
    ['a malformed volume id', { excludeDataVolumeIds: ['vol-xyz'] }, 'excludeDataVolumeIds must hold EBS volume ids like "vol-0123456789abcdef0", got: "vol-xyz"'],
    ['a duplicate volume id', { excludeDataVolumeIds: ['vol-0123456789abcdef0', 'vol-0123456789abcdef0'] }, 'excludeDataVolumeIds lists a volume id twice, got: "vol-0123456789abcdef0"'],
    ['excludeDataVolumeTags null', { excludeDataVolumeTags: null as any }, 'excludeDataVolumeTags must be an object of tag key -> list of values, got: null'],
    ['an excluded volume tag with no values', { excludeDataVolumeTags: { Scratch: [] } }, 'excludeDataVolumeTags["Scratch"] must list at least one accepted value, got: []'],
    ['an excluded volume tag key over 127 characters', { excludeDataVolumeTags: { [longKey]: ['x'] } }, `excludeDataVolumeTags keys must be 1 to 127 characters, got: ${cut('k')} (128)`],
    ['a malformed outpost ARN', { outpostArn: 'arn:aws:ec2:eu-central-1:123456789012:instance/i-1' }, 'outpostArn must be an outpost ARN like "arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0", got: "arn:aws:ec2:eu-central-1:123456789012:instance/i-1"'],
    ['a long malformed outpost ARN', { outpostArn: 'a'.repeat(300) }, `outpostArn must be an outpost ARN like "arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0", got: ${cut('a')}`],
    ['a description over 255 characters', { description: 'd'.repeat(256) }, `description must be at most 255 characters (EC2's limit), got: ${cut('d')} (256)`],
    ['snapshotTags null', { snapshotTags: null as any }, 'snapshotTags must be an object of tag key -> value, got: null'],
    ['a snapshot tag key starting with aws:', { snapshotTags: { 'aws:owner': 'me' } }, 'snapshotTags keys must not start with "aws:" (reserved by AWS), got: "aws:owner"'],
    ['a snapshot tag key starting with AWS:', { snapshotTags: { 'AWS:owner': 'me' } }, 'snapshotTags keys must not start with "aws:" (reserved by AWS), got: "AWS:owner"'],
    ['a snapshot tag key of the library', { snapshotTags: { 'cdk-instance-snapshots:schedule': 'x' } }, 'snapshotTags keys must not start with "cdk-instance-snapshots:" (the library\'s own tags), got: "cdk-instance-snapshots:schedule"'],
    ['a snapshot tag key over 127 characters', { snapshotTags: { [longKey]: 'x' } }, `snapshotTags keys must be 1 to 127 characters, got: ${cut('k')} (128)`],
    ['a snapshot tag value over 256 characters', { snapshotTags: { Team: longValue } }, `snapshotTags values must be at most 256 characters, got: "Team"=${cut('v')} (257)`],
    ['a snapshot tag value that is not a string', { snapshotTags: { Team: 42 as any } }, 'snapshotTags["Team"] must be a string, got: 42'],
    ['more snapshot tags than EC2 allows with ours', { snapshotTags: tooManyTags }, 'snapshotTags may hold at most 46 tags (EC2 allows 50 per snapshot and the library adds 4), got: 47'],
    ['an unknown copyTagsFromSource', { copyTagsFromSource: 'INSTANCE' as CopyTagsFromSource }, 'copyTagsFromSource must be a CopyTagsFromSource member, got: "INSTANCE"'],
    ['dryRun as the string "false"', { dryRun: 'false' as any }, 'dryRun must be true or false, got: "false"'],
    ['enabled as the number 0', { enabled: 0 as any }, 'enabled must be true or false, got: 0'],
    ['excludeBootVolume null', { excludeBootVolume: null as any }, 'excludeBootVolume must be true or false, got: null'],
    ['retryAttempts over 185', { retryAttempts: 186 }, 'retryAttempts must be a whole number from 0 to 185, got: 186'],
    ['negative retryAttempts', { retryAttempts: -1 }, 'retryAttempts must be a whole number from 0 to 185, got: -1'],
    ['fractional retryAttempts', { retryAttempts: 1.5 }, 'retryAttempts must be a whole number from 0 to 185, got: 1.5'],
    ['maxEventAge under a minute', { maxEventAge: Duration.seconds(59) }, 'maxEventAge must be from 1 minute to 24 hours, got: 59 seconds'],
    ['maxEventAge over 24 hours', { maxEventAge: Duration.hours(25) }, 'maxEventAge must be from 1 minute to 24 hours, got: 1 day 1 hour'],
    ['createSnapshotsPerSecond 0', { createSnapshotsPerSecond: 0 }, 'createSnapshotsPerSecond must be a number of calls per second above 0 and at most 1000 (EC2\'s default is 5), got: 0'],
    ['negative createSnapshotsPerSecond', { createSnapshotsPerSecond: -5 }, 'createSnapshotsPerSecond must be a number of calls per second above 0 and at most 1000 (EC2\'s default is 5), got: -5'],
    ['createSnapshotsPerSecond over 1000', { createSnapshotsPerSecond: 1001 }, 'createSnapshotsPerSecond must be a number of calls per second above 0 and at most 1000 (EC2\'s default is 5), got: 1001'],
    ['createSnapshotsPerSecond NaN', { createSnapshotsPerSecond: NaN }, 'createSnapshotsPerSecond must be a number of calls per second above 0 and at most 1000 (EC2\'s default is 5), got: NaN'],
    ['createSnapshotsPerSecond as a string', { createSnapshotsPerSecond: '5' as any }, 'createSnapshotsPerSecond must be a number of calls per second above 0 and at most 1000 (EC2\'s default is 5), got: "5"'],
  ])('GIVEN %s WHEN constructed THEN it fails naming the prop', (_name, props, message) => {
    const stack = newStack();
    expect(() => new InstanceSnapshotSchedule(stack, 'Nightly', { ...DEFAULT_PROPS, ...props }))
      .toThrow(new Error(message));
  });

  test('GIVEN a list token as a key\'s values WHEN constructed THEN it fails naming the prop and the key', () => {
    const stack = newStack();
    const values = new CfnParameter(stack, 'Values', { type: 'CommaDelimitedList' }).valueAsList;
    expect(() => new InstanceSnapshotSchedule(stack, 'Nightly', { instanceTags: { Backup: values } }))
      .toThrow(new Error(`instanceTags["Backup"] must be a list written out in the app (a list token cannot be checked or turned into EC2 filters), got: ${JSON.stringify(values)}`));
  });

  test('GIVEN several problems WHEN constructed THEN every one is reported, one per line', () => {
    const stack = newStack();
    expect(() => new InstanceSnapshotSchedule(stack, 'Nightly', { instanceTags: {}, description: 'd'.repeat(256), excludeDataVolumeIds: ['x'], retryAttempts: 200 }))
      .toThrow(new Error([
        'instanceTags must name at least one tag key, got: {}',
        'excludeDataVolumeIds must hold EBS volume ids like "vol-0123456789abcdef0", got: "x"',
        `description must be at most 255 characters (EC2's limit), got: ${cut('d')} (256)`,
        'retryAttempts must be a whole number from 0 to 185, got: 200',
      ].join('\n')));
  });

  test('GIVEN the limits WHEN constructed THEN they are accepted', () => {
    const stack = newStack();
    const tags = Object.fromEntries(Array.from({ length: 46 }, (_, i) => [`t${i}`, 'x']));
    const volumes = Array.from({ length: 40 }, (_, i) => `vol-${i.toString(16).padStart(17, '0')}`);
    expect(() => new InstanceSnapshotSchedule(stack, 'Nightly', {
      instanceTags: { ['k'.repeat(127)]: ['v'.repeat(256)] },
      snapshotTags: tags,
      excludeDataVolumeIds: volumes,
      description: 'd'.repeat(255),
      retryAttempts: 0,
      maxEventAge: Duration.minutes(1),
      createSnapshotsPerSecond: 1000,
    })).not.toThrow();
    expect(() => new InstanceSnapshotSchedule(stack, 'Daily', { ...DEFAULT_PROPS, retryAttempts: 185, maxEventAge: Duration.hours(24), createSnapshotsPerSecond: 0.1 })).not.toThrow();
  });

  test('GIVEN unresolved tokens WHEN constructed THEN they are not validated and render as references', () => {
    const stack = newStack();
    const text = new CfnParameter(stack, 'Text').valueAsString;
    const count = new CfnParameter(stack, 'Count', { type: 'Number' }).valueAsNumber;
    new InstanceSnapshotSchedule(stack, 'Nightly', {
      instanceTags: { Backup: [text] }, description: text, outpostArn: text, snapshotTags: { Team: text }, createSnapshotsPerSecond: count,
    });
    const template = Template.fromStack(stack);
    // CloudFormation writes the number parameter unquoted: the request stays a number
    expect(definedRequest(template, 'Nightly', { Count: '7' })).toEqual(expect.objectContaining({
      instanceTags: { Backup: ['<Ref Text>'] }, description: '<Ref Text>', outpostArn: '<Ref Text>', snapshotTags: { Team: '<Ref Text>' }, createSnapshotsPerSecond: 7,
    }));
  });

  test('GIVEN a construct path over 256 characters WHEN constructed THEN it fails naming the tag', () => {
    const stack = newStack();
    const id = 'x'.repeat(250);
    expect(() => new InstanceSnapshotSchedule(stack, id, DEFAULT_PROPS))
      .toThrow(new Error(`the construct path must be 1 to 256 characters (it is the snapshots' "cdk-instance-snapshots:schedule" tag value), got: "TestStack/${'x'.repeat(109)}...`));
  });
});

describe('warnings', () => {
  /** The warnings but the one every schedule without retention gets (test/lifecycle-construct.test.ts covers it). */
  function warnings(stack: Stack): Array<{ id: string; data: string }> {
    return Annotations.fromStack(stack).findWarning('*', Match.anyValue()).map((w) => ({ id: w.id, data: String(w.entry.data) }))
      .filter((w) => !w.data.endsWith('[ack: cdk-instance-snapshots:noRetention]'));
  }

  test('GIVEN instance tag keys and values with white space at either end WHEN synthesized THEN a warning per key names them', () => {
    const { stack } = synth({ instanceTags: { ' Backup': ['nightly ', 'weekly'], 'Tier': ['\tdb'] } });
    expect(warnings(stack)).toEqual([
      { id: '/TestStack/Nightly', data: 'instanceTags has keys or values with white space at either end, which EC2 compares exactly: [" Backup","nightly "] [ack: cdk-instance-snapshots:instanceTagsWhitespace]' },
      { id: '/TestStack/Nightly', data: 'instanceTags has keys or values with white space at either end, which EC2 compares exactly: ["\\tdb"] [ack: cdk-instance-snapshots:instanceTagsWhitespace]' },
    ]);
  });

  test('GIVEN excluded volume tags with white space at either end WHEN synthesized THEN a warning names them', () => {
    const { stack } = synth({ excludeDataVolumeTags: { Scratch: ['true '] } });
    expect(warnings(stack)).toEqual([
      { id: '/TestStack/Nightly', data: 'excludeDataVolumeTags has keys or values with white space at either end, which EC2 compares exactly: ["true "] [ack: cdk-instance-snapshots:excludeDataVolumeTagsWhitespace]' },
    ]);
  });

  test('GIVEN white space inside tag keys and values WHEN synthesized THEN there is no warning', () => {
    const { stack } = synth({ instanceTags: { 'Backup Policy': ['every night'] }, excludeDataVolumeTags: { 'Scratch Disk': ['yes please'] } });
    expect(warnings(stack)).toEqual([]);
  });

  test('GIVEN a white-space warning WHEN the user acknowledges it by its id THEN it is gone', () => {
    const stack = newStack();
    const construct = new InstanceSnapshotSchedule(stack, 'Nightly', { instanceTags: { Backup: ['nightly '] } });
    CoreAnnotations.of(construct).acknowledgeWarning('cdk-instance-snapshots:instanceTagsWhitespace');
    expect(warnings(stack)).toEqual([]);
  });
});
