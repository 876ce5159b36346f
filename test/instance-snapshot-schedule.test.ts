import { App, CfnParameter, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { CopyTagsFromSource, InstanceSnapshotSchedule, InstanceSnapshotScheduleProps } from '../src';
import { FULL_PROPS } from './support/full-props';

const ACCOUNT = '123456789012';
const REGION = 'eu-central-1';

function newStack(): Stack {
  return new Stack(new App(), 'TestStack', { env: { account: ACCOUNT, region: REGION } });
}

function synth(props: Partial<InstanceSnapshotScheduleProps> = {}): { stack: Stack; template: Template; construct: InstanceSnapshotSchedule } {
  const stack = newStack();
  const construct = new InstanceSnapshotSchedule(stack, 'Nightly', { instanceTags: { Backup: ['nightly'] }, ...props });
  return { stack, construct, template: Template.fromStack(stack) };
}

function targetInput(template: Template): any {
  const schedules = template.findResources('AWS::Scheduler::Schedule');
  const [schedule] = Object.values(schedules);
  return JSON.parse(schedule.Properties.Target.Input);
}

function policyStatements(template: Template, logicalIdPrefix: string): any[] {
  const policies = template.findResources('AWS::IAM::Policy');
  return Object.entries(policies)
    .filter(([id]) => id.startsWith(logicalIdPrefix))
    .flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
}


describe('snapshots of the whole template', () => {
  test('default construct', () => {
    const { template } = synth();
    expect(template.toJSON()).toMatchSnapshot();
  });

  test('fully configured construct', () => {
    const stack = newStack();
    const dlq = new sqs.Queue(stack, 'Dlq', { enforceSSL: true });
    new InstanceSnapshotSchedule(stack, 'Nightly', { ...FULL_PROPS, deadLetterQueue: dlq });
    expect(Template.fromStack(stack).toJSON()).toMatchSnapshot();
  });
});

describe('schedule', () => {
  test('GIVEN no schedule WHEN synthesized THEN runs daily at 03:00 UTC', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(0 3 * * ? *)',
      ScheduleExpressionTimezone: 'Etc/UTC',
      State: 'ENABLED',
      FlexibleTimeWindow: { Mode: 'OFF' },
    });
  });

  test('GIVEN a cron in a time zone WHEN synthesized THEN the expression and time zone render', () => {
    const { template } = synth({ schedule: FULL_PROPS.schedule });
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(30 2 * * ? *)',
      ScheduleExpressionTimezone: 'Europe/Berlin',
    });
  });

  test('GIVEN scheduler knobs WHEN synthesized THEN they pass through', () => {
    const stack = newStack();
    const group = new scheduler.ScheduleGroup(stack, 'Group', { scheduleGroupName: 'backups' });
    const dlq = new sqs.Queue(stack, 'Dlq');
    new InstanceSnapshotSchedule(stack, 'Nightly', { ...FULL_PROPS, scheduleGroup: group, deadLetterQueue: dlq });
    Template.fromStack(stack).hasResourceProperties('AWS::Scheduler::Schedule', {
      Name: 'nightly-snapshots',
      GroupName: 'backups',
      State: 'DISABLED',
      FlexibleTimeWindow: { Mode: 'FLEXIBLE', MaximumWindowInMinutes: 30 },
      Target: {
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Dlq'), 'Arn'] } },
        RetryPolicy: { MaximumEventAgeInSeconds: 7200, MaximumRetryAttempts: 10 },
      },
    });
  });

  test('GIVEN the schedule WHEN synthesized THEN it targets the handler with its own role', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      Target: {
        Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^InstanceSnapshotScheduleHandlerFunction'), 'Arn'] },
        RoleArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^NightlySchedulerRole'), 'Arn'] },
      },
    });
  });

  test('GIVEN the scheduler role WHEN synthesized THEN it may invoke only the unqualified function ARN, for this account only', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [{
          Action: 'sts:AssumeRole',
          Principal: { Service: 'scheduler.amazonaws.com' },
          Condition: { StringEquals: { 'aws:SourceAccount': ACCOUNT } },
        }],
      },
    });
    expect(policyStatements(template, 'NightlySchedulerRole')).toEqual([{
      Effect: 'Allow',
      Action: 'lambda:InvokeFunction',
      Resource: { 'Fn::GetAtt': [expect.stringMatching(/^InstanceSnapshotScheduleHandlerFunction/), 'Arn'] },
    }]);
  });
});

describe('target input (the request contract)', () => {
  test('GIVEN default props WHEN synthesized THEN the input carries the defaults and the context attributes', () => {
    const { template } = synth();
    expect(targetInput(template)).toEqual({
      version: 1,
      scheduleId: 'TestStack/Nightly',
      executionId: '<aws.scheduler.execution-id>',
      scheduledTime: '<aws.scheduler.scheduled-time>',
      instanceTags: { Backup: ['nightly'] },
      excludeBootVolume: false,
      excludeDataVolumeIds: [],
      excludeDataVolumeTags: {},
      snapshotTags: {},
      dryRun: false,
    });
  });

  test('GIVEN every CreateSnapshots option WHEN synthesized THEN each one is in the input', () => {
    const { template } = synth(FULL_PROPS);
    expect(targetInput(template)).toEqual(expect.objectContaining({
      instanceTags: { Backup: ['nightly', 'always'], Environment: ['prod'] },
      excludeBootVolume: true,
      excludeDataVolumeIds: ['vol-0123456789abcdef0', 'vol-0fedcba9876543210'],
      excludeDataVolumeTags: { Scratch: ['true'], Backup: ['never'] },
      outpostArn: FULL_PROPS.outpostArn,
      description: 'nightly crash-consistent set',
      snapshotTags: { CostCenter: '42', Team: 'platform' },
      copyTagsFromSource: 'volume',
      dryRun: false,
    }));
  });

  test('GIVEN dryRun WHEN synthesized THEN the input asks for a dry run and the construct warns', () => {
    const { template, stack } = synth({ dryRun: true });
    expect(targetInput(template).dryRun).toBe(true);
    Annotations.fromStack(stack).hasWarning('/TestStack/Nightly', Match.stringLikeRegexp('dryRun is true'));
  });

  test('GIVEN no dryRun WHEN synthesized THEN there is no warning', () => {
    const { stack } = synth();
    Annotations.fromStack(stack).hasNoWarning('*', Match.anyValue());
  });
});

describe('handler function', () => {
  test('GIVEN the construct WHEN synthesized THEN the function runs on the newest Node.js runtime, arm64, 15 minutes, 512 MB, JSON logs in its own log group', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      Timeout: 900,
      MemorySize: 512,
      LoggingConfig: { LogFormat: 'JSON', LogGroup: { Ref: Match.stringLikeRegexp('^InstanceSnapshotScheduleHandlerLogGroup') } },
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
  });

  test('GIVEN two schedules in one stack WHEN synthesized THEN they share one function and each adds its own policy', () => {
    const stack = newStack();
    const a = new InstanceSnapshotSchedule(stack, 'Nightly', { instanceTags: { Backup: ['nightly'] } });
    const b = new InstanceSnapshotSchedule(stack, 'Weekly', { instanceTags: { Backup: ['weekly'] } });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::Lambda::Function', 1);
    template.resourceCountIs('AWS::Scheduler::Schedule', 2);
    expect(a.handler).toBe(b.handler);
    expect(a.handlerPolicy).not.toBe(b.handlerPolicy);
    const weekly = policyStatements(template, 'WeeklyHandlerPolicy');
    expect(weekly.find((s) => s.Sid === 'CreateSnapshotsOfSelectedInstances').Condition).toEqual({
      StringEquals: { 'aws:ResourceTag/Backup': ['weekly'] },
    });
  });

  test('GIVEN 10 schedules in one stack WHEN synthesized THEN one warning says the shared role\'s inline policies may exceed IAM\'s limit', () => {
    const stack = newStack();
    for (let i = 0; i < 9; i++) new InstanceSnapshotSchedule(stack, `S${i}`, { instanceTags: { Backup: [`b${i}`] } });
    Annotations.fromStack(stack).hasNoWarning('*', Match.anyValue());

    new InstanceSnapshotSchedule(stack, 'S9', { instanceTags: { Backup: ['b9'] } });
    new InstanceSnapshotSchedule(stack, 'S10', { instanceTags: { Backup: ['b10'] } });

    const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('IAM allows 10,240 characters'));
    expect(warnings.map((w) => w.id)).toEqual(['/TestStack/InstanceSnapshotScheduleHandler']);
    expect(warnings[0].entry.data).toMatch(/^10 InstanceSnapshotSchedules share this stack's handler role/);
  });

  test('GIVEN schedules in two stacks WHEN synthesized THEN each stack has its own function', () => {
    const app = new App();
    const s1 = new Stack(app, 'One');
    const s2 = new Stack(app, 'Two');
    const a = new InstanceSnapshotSchedule(s1, 'A', { instanceTags: { Backup: ['x'] } });
    const b = new InstanceSnapshotSchedule(s2, 'B', { instanceTags: { Backup: ['x'] } });
    expect(a.handler).not.toBe(b.handler);
    Template.fromStack(s2).resourceCountIs('AWS::Lambda::Function', 1);
  });

  test('GIVEN a foreign construct with the handler id WHEN a schedule is added THEN it fails clearly', () => {
    const stack = newStack();
    new sqs.Queue(stack, 'InstanceSnapshotScheduleHandler');
    expect(() => new InstanceSnapshotSchedule(stack, 'Nightly', { instanceTags: { Backup: ['x'] } }))
      .toThrow('the construct id "InstanceSnapshotScheduleHandler" is reserved by cdk-instance-snapshots in stack TestStack, got: a Queue');
  });

  test('GIVEN the construct WHEN synthesized THEN it exposes what it creates', () => {
    const { construct } = synth();
    expect(construct.schedule.node.path).toBe('TestStack/Nightly/Schedule');
    expect(construct.schedulerRole.node.path).toBe('TestStack/Nightly/SchedulerRole');
    expect(construct.handler.node.path).toBe('TestStack/InstanceSnapshotScheduleHandler/Function');
    expect(construct.handlerRole.node.path).toBe('TestStack/InstanceSnapshotScheduleHandler/Role');
    expect(construct.logGroup.node.path).toBe('TestStack/InstanceSnapshotScheduleHandler/LogGroup');
    expect(construct.scheduleId).toBe('TestStack/Nightly');
  });
});

describe('IAM: least privilege', () => {
  const arn = (resource: string, account = ACCOUNT) => ({
    'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:ec2:${REGION}:${account}:${resource}`]],
  });

  test('GIVEN instance tags WHEN synthesized THEN CreateSnapshots is allowed only on instances carrying them (AND across keys, OR within values)', () => {
    const { template } = synth({ instanceTags: { Backup: ['nightly', 'always'], Environment: ['prod'] } });
    expect(policyStatements(template, 'NightlyHandlerPolicy')).toContainEqual({
      Sid: 'CreateSnapshotsOfSelectedInstances',
      Effect: 'Allow',
      Action: 'ec2:CreateSnapshots',
      Resource: arn('instance/*'),
      Condition: { StringEquals: { 'aws:ResourceTag/Backup': ['nightly', 'always'], 'aws:ResourceTag/Environment': ['prod'] } },
    });
  });

  test('GIVEN the construct WHEN synthesized THEN volumes and snapshots are allowed, snapshots (no account in their ARN) only tagged with this schedule', () => {
    const { template } = synth();
    const statements = policyStatements(template, 'NightlyHandlerPolicy');
    expect(statements).toContainEqual({
      Sid: 'CreateSnapshotsOfTheirVolumes', Effect: 'Allow', Action: 'ec2:CreateSnapshots', Resource: arn('volume/*'),
    });
    expect(statements).toContainEqual({
      Sid: 'CreateSnapshotsTaggedWithThisSchedule',
      Effect: 'Allow',
      Action: 'ec2:CreateSnapshots',
      Resource: arn('snapshot/*', ''),
      Condition: { StringEquals: { 'aws:RequestTag/cdk-instance-snapshots:schedule': 'TestStack/Nightly' } },
    });
  });

  test('GIVEN the construct WHEN synthesized THEN CreateTags is allowed on snapshots only as part of CreateSnapshots', () => {
    const { template } = synth();
    expect(policyStatements(template, 'NightlyHandlerPolicy')).toContainEqual({
      Sid: 'TagSnapshotsOnCreation',
      Effect: 'Allow',
      Action: 'ec2:CreateTags',
      Resource: arn('snapshot/*', ''),
      Condition: { StringEquals: { 'ec2:CreateAction': 'CreateSnapshots' } },
    });
  });

  test('GIVEN the construct WHEN synthesized THEN only the describe calls use Resource "*"', () => {
    const { template } = synth();
    const all = Object.values(template.findResources('AWS::IAM::Policy')).flatMap((p: any) => p.Properties.PolicyDocument.Statement);
    const star = all.filter((s) => s.Resource === '*' || (Array.isArray(s.Resource) && s.Resource.includes('*')));
    expect(star).toEqual([{
      Sid: 'DescribeHasNoResourceType',
      Effect: 'Allow',
      Action: ['ec2:DescribeInstances', 'ec2:DescribeSnapshots', 'ec2:DescribeVolumes'],
      Resource: '*',
    }]);
  });

  test('GIVEN the handler role WHEN synthesized THEN it has no managed policy and writes logs only to its own log group', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Service: 'lambda.amazonaws.com' } })] },
      ManagedPolicyArns: Match.absent(),
    });
    expect(policyStatements(template, 'InstanceSnapshotScheduleHandlerRoleDefaultPolicy')).toContainEqual({
      Effect: 'Allow',
      Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      Resource: { 'Fn::GetAtt': [expect.stringMatching(/^InstanceSnapshotScheduleHandlerLogGroup/), 'Arn'] },
    });
  });

  test('GIVEN the handler WHEN synthesized THEN it may invoke itself (continuation) and nothing else', () => {
    const { template } = synth();
    expect(policyStatements(template, 'InstanceSnapshotScheduleHandlerContinuationPolicy')).toEqual([{
      Sid: 'InvokeSelfToContinueLongRuns',
      Effect: 'Allow',
      Action: 'lambda:InvokeFunction',
      Resource: { 'Fn::GetAtt': [expect.stringMatching(/^InstanceSnapshotScheduleHandlerFunction/), 'Arn'] },
    }]);
  });
});

describe('validation', () => {
  const longKey = 'k'.repeat(128);
  const longValue = 'v'.repeat(257);
  const tooManyTags = Object.fromEntries(Array.from({ length: 47 }, (_, i) => [`t${i}`, 'x']));
  const tooManyVolumes = Array.from({ length: 41 }, (_, i) => `vol-${i.toString(16).padStart(17, '0')}`);

  test.each<[string, Partial<InstanceSnapshotScheduleProps>, string]>([
    ['empty instanceTags', { instanceTags: {} }, 'instanceTags must name at least one tag key, got: {}'],
    ['a key with no values', { instanceTags: { Backup: [] } }, 'instanceTags["Backup"] must list at least one accepted value, got: []'],
    ['a key over 127 characters', { instanceTags: { [longKey]: ['x'] } }, `instanceTags keys must be 1 to 127 characters, got: "${longKey}" (128)`],
    ['a value over 256 characters', { instanceTags: { Backup: [longValue] } }, `instanceTags["Backup"] values must be at most 256 characters, got: "${longValue}" (257)`],
    ['a value listed twice', { instanceTags: { Backup: ['a', 'a'] } }, 'instanceTags["Backup"] lists a value twice, got: ["a","a"]'],
    ['41 excluded volumes', { excludeDataVolumeIds: tooManyVolumes }, 'excludeDataVolumeIds may list at most 40 volume ids (EC2\'s limit), got: 41'],
    ['a malformed volume id', { excludeDataVolumeIds: ['vol-xyz'] }, 'excludeDataVolumeIds must hold EBS volume ids like "vol-0123456789abcdef0", got: "vol-xyz"'],
    ['a duplicate volume id', { excludeDataVolumeIds: ['vol-0123456789abcdef0', 'vol-0123456789abcdef0'] }, 'excludeDataVolumeIds lists a volume id twice, got: "vol-0123456789abcdef0"'],
    ['an excluded volume tag with no values', { excludeDataVolumeTags: { Scratch: [] } }, 'excludeDataVolumeTags["Scratch"] must list at least one accepted value, got: []'],
    ['an excluded volume tag key over 127 characters', { excludeDataVolumeTags: { [longKey]: ['x'] } }, `excludeDataVolumeTags keys must be 1 to 127 characters, got: "${longKey}" (128)`],
    ['a malformed outpost ARN', { outpostArn: 'arn:aws:ec2:eu-central-1:123456789012:instance/i-1' }, 'outpostArn must be an outpost ARN like "arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0", got: "arn:aws:ec2:eu-central-1:123456789012:instance/i-1"'],
    ['a description over 255 characters', { description: 'd'.repeat(256) }, `description must be at most 255 characters (EC2's limit), got: "${'d'.repeat(256)}" (256)`],
    ['a snapshot tag key starting with aws:', { snapshotTags: { 'aws:owner': 'me' } }, 'snapshotTags keys must not start with "aws:" (reserved by AWS), got: "aws:owner"'],
    ['a snapshot tag key of the library', { snapshotTags: { 'cdk-instance-snapshots:schedule': 'x' } }, 'snapshotTags keys must not start with "cdk-instance-snapshots:" (the library\'s own tags), got: "cdk-instance-snapshots:schedule"'],
    ['a snapshot tag key over 127 characters', { snapshotTags: { [longKey]: 'x' } }, `snapshotTags keys must be 1 to 127 characters, got: "${longKey}" (128)`],
    ['a snapshot tag value over 256 characters', { snapshotTags: { Team: longValue } }, `snapshotTags values must be at most 256 characters, got: "Team"="${longValue}" (257)`],
    ['more snapshot tags than EC2 allows with ours', { snapshotTags: tooManyTags }, 'snapshotTags may hold at most 46 tags (EC2 allows 50 per snapshot and the library adds 4), got: 47'],
    ['an unknown copyTagsFromSource', { copyTagsFromSource: 'INSTANCE' as CopyTagsFromSource }, 'copyTagsFromSource must be a CopyTagsFromSource member, got: "INSTANCE"'],
  ])('%s', (_name, props, message) => {
    const stack = newStack();
    expect(() => new InstanceSnapshotSchedule(stack, 'Nightly', { instanceTags: { Backup: ['nightly'] }, ...props }))
      .toThrow(new Error(message));
  });

  test('GIVEN several problems WHEN constructed THEN every one is reported, one per line', () => {
    const stack = newStack();
    expect(() => new InstanceSnapshotSchedule(stack, 'Nightly', { instanceTags: {}, description: 'd'.repeat(256), excludeDataVolumeIds: ['x'] }))
      .toThrow(/^instanceTags must name at least one tag key, got: \{\}\nexcludeDataVolumeIds must hold .*\ndescription must be at most 255/);
  });

  test('GIVEN 46 snapshot tags and 40 volume ids WHEN constructed THEN the limits are accepted', () => {
    const stack = newStack();
    const tags = Object.fromEntries(Array.from({ length: 46 }, (_, i) => [`t${i}`, 'x']));
    const volumes = Array.from({ length: 40 }, (_, i) => `vol-${i.toString(16).padStart(17, '0')}`);
    expect(() => new InstanceSnapshotSchedule(stack, 'Nightly', { instanceTags: { Backup: ['nightly'] }, snapshotTags: tags, excludeDataVolumeIds: volumes })).not.toThrow();
  });

  test('GIVEN unresolved tokens WHEN constructed THEN they are not validated and render as references', () => {
    const stack = newStack();
    const param = new CfnParameter(stack, 'Description');
    new InstanceSnapshotSchedule(stack, 'Nightly', { instanceTags: { Backup: ['nightly'] }, description: param.valueAsString });
    const input = Template.fromStack(stack).findResources('AWS::Scheduler::Schedule');
    expect(JSON.stringify(Object.values(input)[0].Properties.Target.Input)).toContain('Ref');
  });

  test('GIVEN a construct path over 256 characters WHEN constructed THEN it fails naming the tag', () => {
    const stack = newStack();
    const id = 'x'.repeat(250);
    expect(() => new InstanceSnapshotSchedule(stack, id, { instanceTags: { Backup: ['nightly'] } }))
      .toThrow(`the construct path is the snapshots' "cdk-instance-snapshots:schedule" tag value and must be at most 256 characters, got: "TestStack/${id}" (260)`);
  });
});
