/**
 * The construct side of an isolated vault account: `SnapshotVault` (the bus and its policy, the
 * rule, the worker's request and role, the prune schedule, the alarms, validation) and a schedule's
 * `vault` share (the request, the worker role's permissions, validation, the alarm and the workflow).
 * What the workers do with the requests is tested on the worker side.
 */
import { App, CfnParameter, Duration, Stack, StackProps, TimeZone } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import { InstanceSnapshotSchedule, InstanceSnapshotScheduleProps, Retention, SnapshotLock, SnapshotVault, SnapshotVaultProps } from '../src';
import { parseRunRequest, parseVaultRequest, requestSha256, VAULT_EVENT, VAULT_PRUNE_ACTION, VAULT_REQUEST_ENV } from '../src/private/request-contract';

const VAULT_ACCOUNT = '999988887777';
const SOURCE = '111122223333';
const OTHER_SOURCE = '444455556666';
const REGION = 'eu-central-1';
const PARTITION = { Ref: 'AWS::Partition' };
const SNAPSHOT_ARN = { 'Fn::Join': ['', ['arn:', PARTITION, `:ec2:${REGION}::snapshot/*`]] };
const VAULT_KEY = `arn:aws:kms:${REGION}:${VAULT_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
const SOURCE_KEY = `arn:aws:kms:${REGION}:${SOURCE}:key/abcd1234-12ab-34cd-56ef-1234567890ab`;
const TAG = 'cdk-instance-snapshots:schedule';
const VAULT_ID = 'Vault/Snapshots';
const root = (account: string) => ({ 'Fn::Join': ['', ['arn:', PARTITION, `:iam::${account}:root`]] });

function newStack(stackProps: StackProps = { env: { account: VAULT_ACCOUNT, region: REGION } }, id = 'Vault'): Stack {
  return new Stack(new App(), id, stackProps);
}

function vault(props: Partial<SnapshotVaultProps> = {}, stack = newStack()) {
  const construct = new SnapshotVault(stack, 'Snapshots', { sourceAccounts: [SOURCE], ...props });
  return { stack, construct, template: Template.fromStack(stack) };
}

/** The one resource of a type whose logical id starts with a prefix. */
function resource(template: Template, type: string, logicalIdPrefix: string): any {
  const found = Object.entries(template.findResources(type)).filter(([id]) => id.startsWith(logicalIdPrefix));
  expect(found.map(([id]) => id)).toHaveLength(1);
  return found[0][1].Properties;
}

/** The vault worker's request, as its environment holds it (plain text: no key defined in the app). */
function vaultRequest(template: Template): any {
  const text = resource(template, 'AWS::Lambda::Function', 'SnapshotsWorker').Environment.Variables[VAULT_REQUEST_ENV];
  expect(typeof text).toBe('string');
  return JSON.parse(text);
}

function vaultStatements(template: Template): any[] {
  return resource(template, 'AWS::IAM::Role', 'SnapshotsWorkerRole').Policies[0].PolicyDocument.Statement;
}

function statement(template: Template, sid: string): any {
  const found = vaultStatements(template).filter((s) => s.Sid === sid);
  expect(found).toHaveLength(1);
  return found[0];
}

/** Every statement of every role, policy and resource policy in the template that grants the action. */
function statementsGranting(template: Template, action: string): any[] {
  const documents = [
    ...Object.values(template.findResources('AWS::IAM::Role')).flatMap((r) => (r.Properties.Policies ?? []).map((p: any) => p.PolicyDocument)),
    ...Object.values(template.findResources('AWS::IAM::Policy')).map((p) => p.Properties.PolicyDocument),
  ];
  return documents.flatMap((d) => d.Statement).filter((s: any) => [s.Action].flat().some((a: string) => a === action || (a.endsWith('*') && action.startsWith(a.slice(0, -1)))));
}

function warnings(stack: Stack): string[] {
  return Annotations.fromStack(stack).findWarning('*', Match.anyValue()).map((w) => String(w.entry.data));
}

describe('SnapshotVault: the event bus', () => {
  test('GIVEN two source accounts WHEN synthesized THEN the bus has one policy statement: those accounts may put events, and nothing else', () => {
    const { template } = vault({ sourceAccounts: [SOURCE, OTHER_SOURCE] });

    template.hasResourceProperties('AWS::Events::EventBus', { Name: 'cdk-instance-snapshots-vault' });
    const policies = Object.values(template.findResources('AWS::Events::EventBusPolicy'));
    expect(policies).toHaveLength(1);
    expect(policies[0].Properties.Statement).toEqual({
      Sid: 'cdk-SourceAccountsPutEvents',
      Effect: 'Allow',
      Principal: { AWS: [root(SOURCE), root(OTHER_SOURCE)] },
      Action: 'events:PutEvents',
      Resource: { 'Fn::GetAtt': [expect.stringMatching(/^SnapshotsEventBus/), 'Arn'] },
    });
  });

  test('GIVEN eventBusName WHEN synthesized THEN the bus has that name', () => {
    vault({ eventBusName: 'vault-bus' }).template.hasResourceProperties('AWS::Events::EventBus', { Name: 'vault-bus' });
  });
});

describe('SnapshotVault: the shared-set rule', () => {
  test('GIVEN two source accounts WHEN synthesized THEN the rule on the bus matches the schedules\' event from those accounts only, and invokes the worker with a DLQ and retries', () => {
    const { template } = vault({ sourceAccounts: [SOURCE, OTHER_SOURCE] });
    const rule = resource(template, 'AWS::Events::Rule', 'SnapshotsSharedSetRule');

    expect(rule.EventBusName).toEqual({ Ref: expect.stringMatching(/^SnapshotsEventBus/) });
    expect(rule.EventPattern).toEqual({ 'source': [VAULT_EVENT.source], 'detail-type': [VAULT_EVENT.detailType], 'account': [SOURCE, OTHER_SOURCE] });
    expect(rule.Targets).toEqual([{
      Id: 'Target0',
      Arn: { 'Fn::GetAtt': [expect.stringMatching(/^SnapshotsWorker/), 'Arn'] },
      DeadLetterConfig: { Arn: { 'Fn::GetAtt': [expect.stringMatching(/^SnapshotsDeadLetterQueue/), 'Arn'] } },
      RetryPolicy: { MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 86_400 },
    }]);
  });

  test('GIVEN the vault WHEN synthesized THEN its dead-letter queue is SQS-encrypted, TLS only, and only the rule may send to it by resource policy', () => {
    const { template } = vault();
    template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true, MessageRetentionPeriod: 1_209_600 });
    const statements = resource(template, 'AWS::SQS::QueuePolicy', 'SnapshotsDeadLetterQueuePolicy').PolicyDocument.Statement;
    expect(statements).toEqual([
      expect.objectContaining({ Effect: 'Deny', Action: 'sqs:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      expect.objectContaining({
        Effect: 'Allow',
        Action: 'sqs:SendMessage',
        Principal: { Service: 'events.amazonaws.com' },
        Condition: { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [expect.stringMatching(/^SnapshotsSharedSetRule/), 'Arn'] } } },
      }),
    ]);
  });

  test('GIVEN the vault WHEN synthesized THEN an event the worker fails on is retried twice by Lambda, then kept in the dead-letter queue', () => {
    vault().template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 21_600,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [Match.stringLikeRegexp('^SnapshotsDeadLetterQueue'), 'Arn'] } } },
    });
  });
});

describe('SnapshotVault: the worker', () => {
  test('GIVEN the defaults WHEN synthesized THEN the worker runs the schedule worker\'s code, 1024 MB, 15 minutes, JSON logs to a group of its own kept 3 months', () => {
    const { template } = vault();
    const worker = resource(template, 'AWS::Lambda::Function', 'SnapshotsWorker');

    expect(worker).toEqual(expect.objectContaining({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      MemorySize: 1024,
      Timeout: 900,
      LoggingConfig: { LogFormat: 'JSON', ApplicationLogLevel: 'INFO', LogGroup: { Ref: expect.stringMatching(/^SnapshotsWorkerLogs/) } },
    }));
    expect(worker.Environment.Variables).toEqual(expect.objectContaining({
      POWERTOOLS_SERVICE_NAME: 'cdk-instance-snapshots',
      POWERTOOLS_METRICS_NAMESPACE: 'CdkInstanceSnapshots',
    }));
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
  });

  test('GIVEN the defaults WHEN synthesized THEN the request names the vault and its sources only, and the worker accepts it', () => {
    const request = vaultRequest(vault().template);

    expect(request).toEqual({ version: 1, vaultId: VAULT_ID, sourceAccounts: [SOURCE] });
    expect(parseVaultRequest(request)).toEqual(request);
  });

  test('GIVEN every prop WHEN synthesized THEN each renders into the request (retention in the prune schedule\'s time zone), and the worker accepts it', () => {
    const stack = newStack();
    const { template } = vault({
      sourceAccounts: [SOURCE, OTHER_SOURCE],
      vaultId: 'dr/vault',
      retention: Retention.anyOf(Retention.count(7), Retention.calendar({ monthly: 12 })),
      goneInstanceRetention: Duration.days(365),
      lock: SnapshotLock.governance(Duration.days(30)),
      kmsKey: kms.Key.fromKeyArn(stack, 'VaultKey', VAULT_KEY),
      pruneSchedule: scheduler.ScheduleExpression.cron({ hour: '5', minute: '0', timeZone: TimeZone.EUROPE_BERLIN }),
    }, stack);
    const request = vaultRequest(template);

    expect(request).toEqual({
      version: 1,
      vaultId: 'dr/vault',
      sourceAccounts: [SOURCE, OTHER_SOURCE],
      retention: { count: 7, monthly: 12, timeZone: 'Europe/Berlin', goneInstanceSeconds: 365 * 86_400 },
      lock: { mode: 'governance', durationDays: 30 },
      kmsKeyArn: VAULT_KEY,
    });
    expect(parseVaultRequest(request)).toEqual(request);
  });

  test('GIVEN retention and no prune schedule WHEN synthesized THEN the retention counts in UTC and holds the copies of every instance 90 days', () => {
    expect(vaultRequest(vault({ retention: Retention.count(7) }).template).retention).toEqual({ count: 7, timeZone: 'Etc/UTC', goneInstanceSeconds: 90 * 86_400 });
  });

  test('GIVEN a key defined in the app WHEN synthesized THEN the request holds its ARN by reference', () => {
    const stack = newStack();
    const { template } = vault({ kmsKey: new kms.Key(stack, 'VaultKey') }, stack);
    const text = resource(template, 'AWS::Lambda::Function', 'SnapshotsWorker').Environment.Variables[VAULT_REQUEST_ENV];

    expect(JSON.stringify(text)).toContain('"kmsKeyArn\\":\\""');
    expect(text['Fn::Join'][1]).toContainEqual({ 'Fn::GetAtt': [expect.stringMatching(/^VaultKey/), 'Arn'] });
  });
});

describe('SnapshotVault: the worker role', () => {
  const LOGS = { 'Fn::GetAtt': [expect.stringMatching(/^SnapshotsWorkerLogs/), 'Arn'] };
  const DLQ = { 'Fn::GetAtt': [expect.stringMatching(/^SnapshotsDeadLetterQueue/), 'Arn'] };

  test('GIVEN the defaults WHEN synthesized THEN the role may describe, copy into snapshots tagged with the vault id, tag only while copying, log, and fail events into its queue', () => {
    expect(vaultStatements(vault().template)).toEqual([
      { Sid: 'DescribeHasNoResourceType', Effect: 'Allow', Action: ['ec2:DescribeSnapshots', 'ec2:DescribeLockedSnapshots', 'ec2:DescribeImages'], Resource: '*' },
      {
        Sid: 'CopySharedSnapshotsIntoTheVault',
        Effect: 'Allow',
        Action: 'ec2:CopySnapshot',
        Resource: SNAPSHOT_ARN,
        Condition: { StringEquals: { [`aws:RequestTag/${TAG}`]: VAULT_ID } },
      },
      { Sid: 'TagCopiesOnCreation', Effect: 'Allow', Action: 'ec2:CreateTags', Resource: SNAPSHOT_ARN, Condition: { StringEquals: { 'ec2:CreateAction': 'CopySnapshot' } } },
      { Sid: 'WriteItsLogs', Effect: 'Allow', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: LOGS },
      { Effect: 'Allow', Action: ['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'], Resource: DLQ },
    ]);
  });

  test('GIVEN no retention and no lock WHEN synthesized THEN nothing in the stack may delete or lock a snapshot, or use a key', () => {
    const { template } = vault();
    for (const action of ['ec2:DeleteSnapshot', 'ec2:LockSnapshot', 'kms:CreateGrant', 'kms:Decrypt', 'events:PutEvents']) {
      expect({ action, statements: statementsGranting(template, action) }).toEqual({ action, statements: [] });
    }
  });

  test('GIVEN retention and a lock WHEN synthesized THEN the role may delete and lock only the vault\'s copies', () => {
    const { template } = vault({ vaultId: 'dr/vault', retention: Retention.count(3), lock: SnapshotLock.compliance(Duration.days(30)) });
    const vaultCopies = { StringEquals: { [`aws:ResourceTag/${TAG}`]: 'dr/vault' } };

    expect(statement(template, 'DeleteCopiesOfThisVault')).toEqual({ Sid: 'DeleteCopiesOfThisVault', Effect: 'Allow', Action: 'ec2:DeleteSnapshot', Resource: SNAPSHOT_ARN, Condition: vaultCopies });
    expect(statement(template, 'LockCopiesOfThisVault')).toEqual({ Sid: 'LockCopiesOfThisVault', Effect: 'Allow', Action: 'ec2:LockSnapshot', Resource: SNAPSHOT_ARN, Condition: vaultCopies });
    expect(statementsGranting(template, 'ec2:DeleteSnapshot')).toHaveLength(1);
    expect(statementsGranting(template, 'ec2:LockSnapshot')).toHaveLength(1);
  });

  test.each([
    ['retention', { retention: Retention.count(3) }, 'DeleteCopiesOfThisVault', 'LockCopiesOfThisVault'],
    ['a lock', { lock: SnapshotLock.governance(Duration.days(7)) }, 'LockCopiesOfThisVault', 'DeleteCopiesOfThisVault'],
  ])('GIVEN only %s WHEN synthesized THEN the role has that statement and not the other', (_name, props, present, absent) => {
    const sids = vaultStatements(vault(props).template).map((s) => s.Sid);
    expect(sids).toContain(present);
    expect(sids).not.toContain(absent);
  });

  test('GIVEN the vault key and two source keys WHEN synthesized THEN the role may use these keys only, and create grants for AWS resources only', () => {
    const stack = newStack();
    const other = `arn:aws:kms:${REGION}:${OTHER_SOURCE}:key/mrk-0123456789abcdef0123456789abcdef`;
    const { template } = vault({ kmsKey: kms.Key.fromKeyArn(stack, 'VaultKey', VAULT_KEY), sourceKmsKeyArns: [SOURCE_KEY, other, SOURCE_KEY] }, stack);

    expect(statement(template, 'EncryptCopiesWithTheVaultKey')).toEqual({
      Sid: 'EncryptCopiesWithTheVaultKey',
      Effect: 'Allow',
      Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncryptFrom', 'kms:ReEncryptTo', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:DescribeKey'],
      Resource: VAULT_KEY,
    });
    expect(statement(template, 'ReadSharedSnapshotsWithTheSourceKeys')).toEqual({
      Sid: 'ReadSharedSnapshotsWithTheSourceKeys',
      Effect: 'Allow',
      Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:ReEncryptFrom'],
      Resource: [SOURCE_KEY, other],
    });
    expect(statement(template, 'LetEbsUseTheKeys')).toEqual({
      Sid: 'LetEbsUseTheKeys',
      Effect: 'Allow',
      Action: 'kms:CreateGrant',
      Resource: [VAULT_KEY, SOURCE_KEY, other],
      Condition: { Bool: { 'kms:GrantIsForAWSResource': true } },
    });
    const kmsResources = vaultStatements(template).filter((s) => [s.Action].flat().some((a: string) => a.startsWith('kms:'))).flatMap((s) => [s.Resource].flat());
    expect(new Set(kmsResources)).toEqual(new Set([VAULT_KEY, SOURCE_KEY, other]));
  });

  test('GIVEN only source keys WHEN synthesized THEN no statement encrypts with a vault key', () => {
    const sids = vaultStatements(vault({ sourceKmsKeyArns: [SOURCE_KEY] }).template).map((s) => s.Sid);
    expect(sids).toEqual(expect.arrayContaining(['ReadSharedSnapshotsWithTheSourceKeys', 'LetEbsUseTheKeys']));
    expect(sids).not.toContain('EncryptCopiesWithTheVaultKey');
  });
});

describe('SnapshotVault: the prune schedule', () => {
  test('GIVEN no retention WHEN synthesized THEN there is no schedule, and the construct warns', () => {
    const { stack, construct, template } = vault();

    template.resourceCountIs('AWS::Scheduler::Schedule', 0);
    expect(construct.pruneSchedule).toBeUndefined();
    expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('cdk-instance-snapshots:vaultNoRetention'))).toHaveLength(1);
    expect(warnings(stack).join('\n')).toMatch(/^no retention: the vault never deletes its copies/m);
  });

  test('GIVEN retention WHEN synthesized THEN a daily schedule at 04:00 UTC invokes the worker with the prune action, and nothing warns', () => {
    const { stack, template } = vault({ retention: Retention.count(7) });
    const prune = resource(template, 'AWS::Scheduler::Schedule', 'SnapshotsPruneSchedule');

    expect(prune).toEqual(expect.objectContaining({ ScheduleExpression: 'cron(0 4 * * ? *)', ScheduleExpressionTimezone: 'Etc/UTC' }));
    expect(prune.Target).toEqual(expect.objectContaining({
      Arn: { 'Fn::GetAtt': [expect.stringMatching(/^SnapshotsWorker/), 'Arn'] },
      Input: JSON.stringify({ action: VAULT_PRUNE_ACTION }),
      RoleArn: { 'Fn::GetAtt': [expect.stringMatching(/^SnapshotsPruneSchedulerRole/), 'Arn'] },
    }));
    expect(warnings(stack)).toEqual([]);
  });

  test('GIVEN retention WHEN synthesized THEN only EventBridge Scheduler of this account and its default group may assume the prune role', () => {
    const role = resource(vault({ retention: Retention.count(7) }).template, 'AWS::IAM::Role', 'SnapshotsPruneSchedulerRole');
    expect(role.AssumeRolePolicyDocument.Statement).toEqual([expect.objectContaining({
      Principal: { Service: 'scheduler.amazonaws.com' },
      Condition: {
        StringEquals: { 'aws:SourceAccount': VAULT_ACCOUNT },
        ArnEquals: { 'aws:SourceArn': { 'Fn::Join': ['', ['arn:', PARTITION, `:scheduler:${REGION}:${VAULT_ACCOUNT}:schedule-group/default`]] } },
      },
    })]);
  });

  test('GIVEN a prune schedule of its own WHEN synthesized THEN the schedule has it', () => {
    const expression = scheduler.ScheduleExpression.rate(Duration.hours(12));
    const prune = resource(vault({ retention: Retention.count(7), pruneSchedule: expression }).template, 'AWS::Scheduler::Schedule', 'SnapshotsPruneSchedule');
    expect(prune.ScheduleExpression).toBe('rate(12 hours)');
  });
});

describe('SnapshotVault: alarms and metrics', () => {
  test('GIVEN the defaults WHEN synthesized THEN three alarms notify the vault\'s own encrypted topic', () => {
    const { template, construct } = vault();

    template.resourceCountIs('AWS::CloudWatch::Alarm', 3);
    const topicRef = { Ref: expect.stringMatching(/^SnapshotsNotifications/) };
    expect(resource(template, 'AWS::CloudWatch::Alarm', 'SnapshotsWorkerErrorsAlarm')).toEqual(expect.objectContaining({
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Statistic: 'Sum',
      Period: 3600,
      EvaluationPeriods: 1,
      DatapointsToAlarm: 1,
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 0,
      AlarmActions: [topicRef],
    }));
    expect(resource(template, 'AWS::CloudWatch::Alarm', 'SnapshotsDeadLetterQueueAlarm')).toEqual(expect.objectContaining({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Statistic: 'Maximum',
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 0,
      TreatMissingData: 'notBreaching',
      AlarmActions: [topicRef],
    }));
    expect(resource(template, 'AWS::CloudWatch::Alarm', 'SnapshotsCopyFailuresAlarm')).toEqual(expect.objectContaining({
      Namespace: 'CdkInstanceSnapshots',
      MetricName: 'VaultCopyFailures',
      Dimensions: [{ Name: 'Schedule', Value: VAULT_ID }],
      Statistic: 'Sum',
      Period: 3600,
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 0,
      TreatMissingData: 'notBreaching',
      AlarmActions: [topicRef],
    }));
    expect([construct.workerErrorsAlarm, construct.deadLetterQueueAlarm, construct.copyFailuresAlarm].every((a) => a !== undefined)).toBe(true);
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^SnapshotsNotificationsKey'), 'Arn'] } });
  });

  test('GIVEN the default topic WHEN synthesized THEN its key lets CloudWatch and EventBridge use it, and its policy lets the account\'s alarms publish', () => {
    const { template } = vault();
    const key = resource(template, 'AWS::KMS::Key', 'SnapshotsNotificationsKey');
    const services = key.KeyPolicy.Statement.filter((s: any) => s.Principal.Service).map((s: any) => s.Principal.Service).sort();

    expect(key.EnableKeyRotation).toBe(true);
    expect(services).toEqual(['cloudwatch.amazonaws.com', 'events.amazonaws.com']);
    const topicPolicy = resource(template, 'AWS::SNS::TopicPolicy', 'SnapshotsNotificationsPolicy').PolicyDocument.Statement;
    expect(topicPolicy).toContainEqual(expect.objectContaining({ Sid: 'CdkInstanceSnapshotsAlarmsPublish', Principal: { Service: 'cloudwatch.amazonaws.com' } }));
  });

  test('GIVEN alarms false WHEN synthesized THEN there is no alarm', () => {
    const { template, construct } = vault({ alarms: false });
    template.resourceCountIs('AWS::CloudWatch::Alarm', 0);
    expect(construct.copyFailuresAlarm).toBeUndefined();
  });

  test('GIVEN the vault WHEN its metric helpers are called THEN they name the vault\'s metrics with its id', () => {
    const { construct, stack } = vault({ vaultId: 'dr/vault' });
    const described = [construct.metricSetsCopied(), construct.metricCopyFailures(), construct.metricSnapshotsDeleted()]
      .map((m) => [m.namespace, m.metricName, stack.resolve(m.dimensions), m.statistic]);
    const dimensions = { Schedule: 'dr/vault' };
    expect(described).toEqual([
      ['CdkInstanceSnapshots', 'VaultSetsCopied', dimensions, 'Sum'],
      ['CdkInstanceSnapshots', 'VaultCopyFailures', dimensions, 'Sum'],
      ['CdkInstanceSnapshots', 'VaultSnapshotsDeleted', dimensions, 'Sum'],
    ]);
  });
});

describe('SnapshotVault: validation', () => {
  const tokenAccount = () => {
    const stack = newStack();
    return { stack, account: new CfnParameter(stack, 'Source').valueAsString };
  };

  test.each<[string, Partial<SnapshotVaultProps>, string]>([
    ['a short account', { sourceAccounts: ['12345'] }, 'sourceAccounts[0] must be a 12-digit account id, got: "12345"'],
    ['an account twice', { sourceAccounts: [SOURCE, OTHER_SOURCE, SOURCE] }, `sourceAccounts must list each account once, got: ["${SOURCE}"] more than once`],
    ['the vault\'s own account', { sourceAccounts: [VAULT_ACCOUNT] },
      `sourceAccounts[0] must be another account than the vault's own (the vault copies what other accounts share), got: "${VAULT_ACCOUNT}"`],
    ['no account', { sourceAccounts: [] }, 'sourceAccounts must list 1 to 50 accounts, got: 0'],
    ['51 accounts', { sourceAccounts: Array.from({ length: 51 }, (_, i) => String(100000000000 + i)) }, 'sourceAccounts must list 1 to 50 accounts, got: 51'],
    ['a vaultId with white space', { vaultId: ' vault' }, 'vaultId must not start or end with white space, got: " vault"'],
    ['an empty vaultId', { vaultId: '' }, 'vaultId must be 1 to 256 characters (it is the snapshots\' "cdk-instance-snapshots:schedule" tag value), got: ""'],
    ['pruneSchedule without retention', { pruneSchedule: scheduler.ScheduleExpression.rate(Duration.days(1)) },
      'pruneSchedule only applies with retention (without it nothing is deleted): set retention or leave it out, got: "rate(1 day)"'],
    ['goneInstanceRetention without retention', { goneInstanceRetention: Duration.days(30) },
      'goneInstanceRetention only applies with retention (without it nothing is deleted): set retention or leave it out, got: 30 days'],
    ['a short goneInstanceRetention', { retention: Retention.count(3), goneInstanceRetention: Duration.hours(12) },
      'goneInstanceRetention must be whole seconds from 1 day to 36600 days (100 years), got: 12 hours'],
    ['a source key alias', { sourceKmsKeyArns: [`arn:aws:kms:${REGION}:${SOURCE}:alias/ebs`] },
      `sourceKmsKeyArns[0] must be a KMS key ARN like "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab" (not an alias), got: "arn:aws:kms:${REGION}:${SOURCE}:alias/ebs"`],
    ['a source key in another Region', { sourceKmsKeyArns: [SOURCE_KEY.replace(REGION, 'eu-west-1')] },
      `sourceKmsKeyArns[0] must be a key in the vault's Region "${REGION}" (snapshots are shared within their Region), got: "${SOURCE_KEY.replace(REGION, 'eu-west-1')}"`],
    ['the default bus name', { eventBusName: 'default' },
      'eventBusName must be 1 to 256 letters, digits, ".", "-" or "_", and not "default" (a custom bus of the vault account), got: "default"'],
  ])('GIVEN %s WHEN constructed THEN it throws naming the prop and the value', (_name, props, message) => {
    expect(() => vault(props)).toThrow(new Error(message));
  });

  test('GIVEN a source account that is a token WHEN constructed THEN it throws: the bus policy, the rule and the worker name each account', () => {
    const { stack, account } = tokenAccount();
    expect(() => vault({ sourceAccounts: [account] }, stack)).toThrow(
      /^sourceAccounts\[0\] must be written out in the app \(the bus policy, the rule and the worker name each account\), got: "\$\{Token\[TOKEN\.\d+\]\}"$/);
  });

  test('GIVEN a vaultId that is a token WHEN constructed THEN it throws', () => {
    const stack = newStack();
    const vaultId = new CfnParameter(stack, 'Id').valueAsString;
    expect(() => vault({ vaultId }, stack)).toThrow(/^vaultId must be written out in the app/);
  });

  test('GIVEN several problems WHEN constructed THEN one error lists each', () => {
    expect(() => vault({ sourceAccounts: ['1', '2'], vaultId: ' x' })).toThrow(new Error([
      'sourceAccounts[0] must be a 12-digit account id, got: "1"',
      'sourceAccounts[1] must be a 12-digit account id, got: "2"',
      'vaultId must not start or end with white space, got: " x"',
    ].join('\n')));
  });

  test('GIVEN an environment-agnostic stack WHEN constructed with any account THEN the own-account check is skipped', () => {
    expect(() => vault({ sourceAccounts: [VAULT_ACCOUNT] }, newStack({}))).not.toThrow();
  });

  test('GIVEN a compliance lock WHEN synthesized THEN the construct warns', () => {
    const { stack } = vault({ retention: Retention.count(3), lock: SnapshotLock.compliance(Duration.days(30), Duration.hours(24)) });
    expect(warnings(stack)).toEqual([expect.stringMatching(/^lock is in compliance mode: every copy in the vault is locked for 30 days, and after a cool-off of 24 hours/)]);
  });
});

// ---------------------------------------------------------------------------------------------
// The source side: a schedule's `vault`.

const SOURCE_ENV = { env: { account: SOURCE, region: REGION } };
const DEFAULT_PROPS: InstanceSnapshotScheduleProps = { instanceTags: { Backup: ['nightly'] } };
const DEFAULT_BUS = `arn:aws:events:${REGION}:${VAULT_ACCOUNT}:event-bus/cdk-instance-snapshots-vault`;

function sourceSchedule(props: Partial<InstanceSnapshotScheduleProps> = {}, stackProps: StackProps = SOURCE_ENV) {
  const stack = newStack(stackProps, 'Source');
  const construct = new InstanceSnapshotSchedule(stack, 'Nightly', { ...DEFAULT_PROPS, ...props });
  return { stack, construct, template: Template.fromStack(stack) };
}

/** A CloudFormation value as text, references written as `<Ref X>` and `<GetAtt X.Y>`. */
function asText(value: any): string {
  if (typeof value === 'string') return value;
  if (value['Fn::Join']) return value['Fn::Join'][1].map(asText).join(value['Fn::Join'][0]);
  if (value.Ref) return `<Ref ${value.Ref}>`;
  if (value['Fn::GetAtt']) return `<GetAtt ${value['Fn::GetAtt'].join('.')}>`;
  throw new Error(`cannot write ${JSON.stringify(value)} as text`);
}

/** The state machine's definition, parsed. */
function definition(template: Template): any {
  return JSON.parse(asText(resource(template, 'AWS::StepFunctions::StateMachine', 'NightlyWorkflow').DefinitionString));
}

function definedRequest(template: Template): any {
  const texts = Object.values<any>(definition(template).States).map((s) => s.Parameters?.request).filter((r) => r !== undefined);
  expect(new Set(texts).size).toBe(1);
  return JSON.parse(texts[0]);
}

function scheduleStatements(template: Template): any[] {
  return resource(template, 'AWS::IAM::Role', 'NightlyWorkerRole').Policies[0].PolicyDocument.Statement;
}

describe('InstanceSnapshotSchedule: vault', () => {
  test('GIVEN vault with an account only WHEN synthesized THEN the request names the account and the vault\'s default bus in this Region, and the worker accepts it', () => {
    const { template } = sourceSchedule({ vault: { account: VAULT_ACCOUNT } });
    const request = definedRequest(template);

    expect(request.vault).toEqual({ account: VAULT_ACCOUNT, eventBusArn: DEFAULT_BUS });
    expect(parseRunRequest(request).vault).toEqual(request.vault);
    // Plain text: the worker still checks the request against its hash.
    const env = resource(template, 'AWS::Lambda::Function', 'NightlyWorker').Environment.Variables;
    expect(env.REQUEST_SHA256).toBe(requestSha256(request));
  });

  test('GIVEN vault with a bus of its own WHEN synthesized THEN the request names that bus', () => {
    const bus = `arn:aws:events:${REGION}:${VAULT_ACCOUNT}:event-bus/vault-bus`;
    const request = definedRequest(sourceSchedule({ vault: { account: VAULT_ACCOUNT, eventBusArn: bus } }).template);
    expect(request.vault).toEqual({ account: VAULT_ACCOUNT, eventBusArn: bus });
  });

  test('GIVEN no vault WHEN synthesized THEN the request has none, and nothing may share a snapshot or put events', () => {
    const { template } = sourceSchedule();
    expect(definedRequest(template).vault).toBeUndefined();
    expect(statementsGranting(template, 'ec2:ModifySnapshotAttribute')).toEqual([]);
    expect(statementsGranting(template, 'events:PutEvents')).toEqual([]);
  });

  test('GIVEN vault WHEN synthesized THEN the worker may share only this schedule\'s snapshots, only with the vault account, and put events on the vault\'s bus only', () => {
    const { template } = sourceSchedule({ vault: { account: VAULT_ACCOUNT } });
    const statements = scheduleStatements(template);

    expect(statements.filter((s) => s.Sid === 'ShareSnapshotsWithTheVault')).toEqual([{
      Sid: 'ShareSnapshotsWithTheVault',
      Effect: 'Allow',
      Action: 'ec2:ModifySnapshotAttribute',
      Resource: SNAPSHOT_ARN,
      Condition: { StringEquals: { [`aws:ResourceTag/${TAG}`]: 'Source/Nightly', 'ec2:Add/userId': VAULT_ACCOUNT } },
    }]);
    expect(statementsGranting(template, 'ec2:ModifySnapshotAttribute')).toHaveLength(1);
    expect(statementsGranting(template, 'events:PutEvents')).toEqual([{ Sid: 'AnnounceSharedSetsToTheVault', Effect: 'Allow', Action: 'events:PutEvents', Resource: DEFAULT_BUS }]);
  });

  test('GIVEN vault alone WHEN synthesized THEN the workflow has its copy wait state', () => {
    expect(Object.keys(definition(sourceSchedule({ vault: { account: VAULT_ACCOUNT } }).template).States)).toContain('WaitForCopies');
    expect(Object.keys(definition(sourceSchedule().template).States)).not.toContain('WaitForCopies');
  });

  test('GIVEN vault WHEN synthesized THEN the instances-failed alarm adds the share failures, and only then', () => {
    const expression = (t: Template) => resource(t, 'AWS::CloudWatch::Alarm', 'NightlyInstancesFailedAlarm').Metrics
      .find((m: any) => m.Expression !== undefined).Expression;

    expect(expression(sourceSchedule({ vault: { account: VAULT_ACCOUNT } }).template)).toBe('failed + notAttempted + FILL(shareFailures, 0)');
    expect(expression(sourceSchedule().template)).toBe('failed + notAttempted');
    const withVault = resource(sourceSchedule({ vault: { account: VAULT_ACCOUNT } }).template, 'AWS::CloudWatch::Alarm', 'NightlyInstancesFailedAlarm');
    expect(withVault.Metrics).toContainEqual(expect.objectContaining({
      Id: 'shareFailures',
      MetricStat: expect.objectContaining({ Metric: expect.objectContaining({ MetricName: 'ShareFailures' }) }),
    }));
    expect(withVault.AlarmDescription).toContain('could not share sets with the vault account');
  });

  test('GIVEN a schedule WHEN its share metric helpers are called THEN they name the share metrics', () => {
    const { construct } = sourceSchedule({ vault: { account: VAULT_ACCOUNT } });
    expect([construct.metricSetsShared().metricName, construct.metricShareFailures().metricName]).toEqual(['SnapshotSetsShared', 'ShareFailures']);
  });

  test('GIVEN vault and dryRun WHEN synthesized THEN it is allowed (the worker shares nothing in a dry run)', () => {
    const request = definedRequest(sourceSchedule({ vault: { account: VAULT_ACCOUNT }, dryRun: true }).template);
    expect(request).toEqual(expect.objectContaining({ dryRun: true, vault: expect.anything() }));
  });

  test.each<[string, any, string]>([
    ['a short account', { account: '1234' }, 'vault.account must be a 12-digit account id, got: "1234"'],
    ['no account', {}, 'vault.account must be a 12-digit account id (required), got: undefined'],
    ['the stack\'s own account', { account: SOURCE },
      `vault.account must be another account than the stack's own (a vault in the same account protects nothing), got: "${SOURCE}"`],
    ['a bus that is no event bus ARN', { account: VAULT_ACCOUNT, eventBusArn: 'vault-bus' },
      'vault.eventBusArn must be an event bus ARN like "arn:aws:events:eu-central-1:111122223333:event-bus/cdk-instance-snapshots-vault", got: "vault-bus"'],
    ['a bus of another account', { account: VAULT_ACCOUNT, eventBusArn: `arn:aws:events:${REGION}:${OTHER_SOURCE}:event-bus/b` },
      `vault.eventBusArn must be a bus of the vault account "${VAULT_ACCOUNT}", got: "arn:aws:events:${REGION}:${OTHER_SOURCE}:event-bus/b"`],
    ['a bus in another Region', { account: VAULT_ACCOUNT, eventBusArn: `arn:aws:events:eu-west-1:${VAULT_ACCOUNT}:event-bus/b` },
      `vault.eventBusArn must be a bus in the stack's Region "${REGION}" (snapshots are shared within their Region), got: "arn:aws:events:eu-west-1:${VAULT_ACCOUNT}:event-bus/b"`],
    ['a field no VaultShare has', { account: VAULT_ACCOUNT, region: 'eu-west-1' }, 'vault has fields no VaultShare has, got: ["region"]'],
  ])('GIVEN vault with %s WHEN constructed THEN it throws naming the field and the value', (_name, share, message) => {
    expect(() => sourceSchedule({ vault: share })).toThrow(new Error(message));
  });

  test('GIVEN an environment-agnostic stack WHEN synthesized THEN the default bus is in the deploy-time partition and Region', () => {
    const { template } = sourceSchedule({ vault: { account: VAULT_ACCOUNT } }, {});
    expect(statementsGranting(template, 'events:PutEvents')[0].Resource).toEqual({
      'Fn::Join': ['', ['arn:', PARTITION, ':events:', { Ref: 'AWS::Region' }, `:${VAULT_ACCOUNT}:event-bus/cdk-instance-snapshots-vault`]],
    });
  });
});
