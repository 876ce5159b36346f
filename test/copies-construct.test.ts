/**
 * The construct side of copies to other Regions (`copies`, `SnapshotCopyRule`): the request the
 * worker gets, the validation of the rules, the worker role's permissions, the alarm, the dashboard
 * and the metric helpers. What the worker does with the rules is tested on the worker side.
 */
import { App, CfnParameter, Duration, Stack, StackProps, TimeZone } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import { InstanceSnapshotSchedule, InstanceSnapshotScheduleProps, Retention, SnapshotCopyRule, SnapshotLocation, SnapshotLock } from '../src';
import { OUTPOST_ARN } from './support/full-props';
import { InlinePolicyRole } from '../src/private/inline-policy-role';
import { policySizeUpperBound, ROLE_INLINE_POLICY_LIMIT } from '../src/private/policy-size';
import { parseRunRequest, requestSha256 } from '../src/private/request-contract';

const ACCOUNT = '123456789012';
const REGION = 'eu-central-1';
const PARTITION = { Ref: 'AWS::Partition' };
const DEFAULT_PROPS: InstanceSnapshotScheduleProps = { instanceTags: { Backup: ['nightly'] } };
const SCHEDULE_ID = 'TestStack/Nightly';
const NINETY_DAYS = 90 * 86_400;
const IRELAND_KEY = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const VIRGINIA_KEY = 'arn:aws:kms:us-east-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef';

/** `arn:${Partition}:ec2:<region>::snapshot/*`, as the template holds it. */
const snapshotsIn = (region: string | object) => ({
  'Fn::Join': ['', typeof region === 'string' ? ['arn:', PARTITION, `:ec2:${region}::snapshot/*`] : ['arn:', PARTITION, ':ec2:', region, '::snapshot/*']],
});

function newStack(stackProps: StackProps = { env: { account: ACCOUNT, region: REGION } }): Stack {
  return new Stack(new App(), 'TestStack', stackProps);
}

function synth(props: Partial<InstanceSnapshotScheduleProps> = {}, stack = newStack()) {
  const construct = new InstanceSnapshotSchedule(stack, 'Nightly', { ...DEFAULT_PROPS, ...props });
  return { stack, construct, template: Template.fromStack(stack) };
}

/** The one resource of a type whose logical id starts with a prefix. */
function resource(template: Template, type: string, logicalIdPrefix: string): any {
  const found = Object.entries(template.findResources(type)).filter(([id]) => id.startsWith(logicalIdPrefix));
  expect(found.map(([id]) => id)).toHaveLength(1);
  return found[0][1].Properties;
}

/** A CloudFormation value as text, references written as `<Ref X>` and `<GetAtt X.Y>`. */
function asText(value: any): string {
  if (typeof value === 'string') return value;
  if (value['Fn::Join']) return value['Fn::Join'][1].map(asText).join(value['Fn::Join'][0]);
  if (value.Ref) return `<Ref ${value.Ref}>`;
  if (value['Fn::GetAtt']) return `<GetAtt ${value['Fn::GetAtt'].join('.')}>`;
  throw new Error(`cannot write ${JSON.stringify(value)} as text`);
}

/** The request the worker tasks of the workflow hold (the same text in each), parsed. */
function definedRequest(template: Template): any {
  const definition = JSON.parse(asText(resource(template, 'AWS::StepFunctions::StateMachine', 'NightlyWorkflow').DefinitionString));
  const texts = Object.values<any>(definition.States).map((s) => s.Parameters?.request).filter((r) => r !== undefined);
  expect(texts.length).toBeGreaterThanOrEqual(2);
  expect(new Set(texts).size).toBe(1);
  return JSON.parse(texts[0]);
}

function workerStatements(template: Template): any[] {
  return resource(template, 'AWS::IAM::Role', 'NightlyWorkerRole').Policies[0].PolicyDocument.Statement;
}

function statement(template: Template, sid: string): any {
  const found = workerStatements(template).filter((s) => s.Sid === sid);
  expect(found).toHaveLength(1);
  return found[0];
}

/** Every statement of every role and policy in the template that grants the action. */
function statementsGranting(template: Template, action: string): any[] {
  const documents = [
    ...Object.values(template.findResources('AWS::IAM::Role')).flatMap((r) => (r.Properties.Policies ?? []).map((p: any) => p.PolicyDocument)),
    ...Object.values(template.findResources('AWS::IAM::Policy')).map((p) => p.Properties.PolicyDocument),
  ];
  return documents.flatMap((d) => d.Statement).filter((s: any) => [s.Action].flat().includes(action));
}

/** Three rules with every option, as a user writes them. */
const THREE_RULES: SnapshotCopyRule[] = [
  { region: 'eu-west-1', kmsKeyArn: IRELAND_KEY, retention: Retention.count(3), completionDuration: Duration.minutes(90) },
  { region: 'us-east-1', kmsKeyArn: VIRGINIA_KEY, copyTags: false, completionDuration: Duration.hours(48) },
  { region: 'ap-southeast-2', retention: Retention.calendar({ monthly: 12 }), completionDuration: Duration.minutes(15) },
];

describe('the rendered request', () => {
  test('GIVEN one rule with only a Region and no retention anywhere WHEN synthesized THEN the request copies with tags, keeps copies for ever, and the worker accepts it', () => {
    const request = definedRequest(synth({ copies: [{ region: 'eu-west-1' }] }).template);

    expect(request.copies).toEqual([{ region: 'eu-west-1', copyTags: true }]);
    expect(parseRunRequest(request).copies).toEqual([{ region: 'eu-west-1', copyTags: true }]);
  });

  test('GIVEN one rule and the schedule\'s retention WHEN synthesized THEN the copies are kept by the schedule\'s retention', () => {
    const request = definedRequest(synth({ retention: Retention.count(14), copies: [{ region: 'eu-west-1' }] }).template);

    expect(request.copies).toEqual([{
      region: 'eu-west-1',
      copyTags: true,
      retention: { count: 14, timeZone: 'Etc/UTC', goneInstanceSeconds: NINETY_DAYS },
    }]);
    expect(parseRunRequest(request)).toEqual(expect.objectContaining({ copies: request.copies }));
  });

  test('GIVEN three rules with every option, a schedule in Berlin and a gone-instance period WHEN synthesized THEN each renders exactly, and the worker accepts them', () => {
    const { template } = synth({
      schedule: scheduler.ScheduleExpression.cron({ hour: '2', minute: '30', timeZone: TimeZone.EUROPE_BERLIN }),
      retention: Retention.age(Duration.days(30)),
      goneInstanceRetention: Duration.days(365),
      copies: THREE_RULES,
    });
    const request = definedRequest(template);
    const berlin = { timeZone: 'Europe/Berlin', goneInstanceSeconds: 365 * 86_400 };

    expect(request.copies).toEqual([
      { region: 'eu-west-1', kmsKeyArn: IRELAND_KEY, copyTags: true, retention: { count: 3, ...berlin }, completionDurationMinutes: 90 },
      { region: 'us-east-1', kmsKeyArn: VIRGINIA_KEY, copyTags: false, retention: { maxAgeSeconds: 30 * 86_400, ...berlin }, completionDurationMinutes: 2_880 },
      { region: 'ap-southeast-2', copyTags: true, retention: { monthly: 12, ...berlin }, completionDurationMinutes: 15 },
    ]);
    expect(parseRunRequest(request).copies).toEqual(request.copies);
    const environment = resource(template, 'AWS::Lambda::Function', 'NightlyWorker').Environment.Variables;
    expect(environment.REQUEST_SHA256).toBe(requestSha256(parseRunRequest(request)));
  });

  test('GIVEN a rule with its own retention and none on the schedule WHEN synthesized THEN only that rule\'s copies are deleted', () => {
    const request = definedRequest(synth({ copies: [{ region: 'eu-west-1', retention: Retention.count(7) }, { region: 'us-east-1' }] }).template);

    expect(request.copies).toEqual([
      { region: 'eu-west-1', copyTags: true, retention: { count: 7, timeZone: 'Etc/UTC', goneInstanceSeconds: NINETY_DAYS } },
      { region: 'us-east-1', copyTags: true },
    ]);
    expect(request).not.toHaveProperty('retention');
    expect(request).not.toHaveProperty('deleteSnapshotsPerSecond');
  });

  test.each<[string, Partial<InstanceSnapshotScheduleProps>]>([
    ['no copies', {}],
    ['an empty list of copies', { copies: [] }],
  ])('GIVEN %s WHEN synthesized THEN the request has no copies and the worker role may copy nothing', (_name, props) => {
    const { template } = synth(props);

    expect(definedRequest(template)).not.toHaveProperty('copies');
    expect(statementsGranting(template, 'ec2:CopySnapshot')).toEqual([]);
    expect(resource(template, 'AWS::Lambda::Function', 'NightlyWorker').MemorySize).toBe(512);
  });

  test('GIVEN copies WHEN synthesized THEN the worker has 1,024 MB (the copy step lists the schedule\'s snapshots and their copies)', () => {
    expect(resource(synth({ copies: [{ region: 'eu-west-1' }] }).template, 'AWS::Lambda::Function', 'NightlyWorker').MemorySize).toBe(1024);
  });

  test('GIVEN a key ARN from a parameter WHEN synthesized THEN the request and the KMS statements reference it, and the worker checks no hash', () => {
    const stack = newStack();
    const key = new CfnParameter(stack, 'CopyKey').valueAsString;
    const { template } = synth({ copies: [{ region: 'eu-west-1', kmsKeyArn: key }] }, stack);

    const definition = asText(resource(template, 'AWS::StepFunctions::StateMachine', 'NightlyWorkflow').DefinitionString);
    expect(definition).toContain('\\"kmsKeyArn\\":\\"<Ref CopyKey>\\"');
    expect(statement(template, 'EncryptCopiesWithTheirKeys').Resource).toEqual({ Ref: 'CopyKey' });
    expect(resource(template, 'AWS::Lambda::Function', 'NightlyWorker').Environment.Variables).not.toHaveProperty('REQUEST_SHA256');
  });

  test('GIVEN outpostArn without copies WHEN synthesized THEN the request carries the Outpost (the full props leave it out)', () => {
    expect(definedRequest(synth({ outpostArn: OUTPOST_ARN }).template).outpostArn).toBe(OUTPOST_ARN);
  });
});

describe('validation', () => {
  const tokenRegion = () => new CfnParameter(newStack(), 'Region').valueAsString;
  const tags = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`Tag${i}`, 'v']));
  const MINUTES = 'must be 15 minutes to 48 hours in steps of 15 minutes (EBS time-based copy)';

  test.each<[string, Partial<InstanceSnapshotScheduleProps>, string]>([
    ['4 rules', { copies: [{ region: 'eu-west-1' }, { region: 'eu-west-2' }, { region: 'eu-west-3' }, { region: 'us-east-1' }] },
      'copies may name at most 3 destination Regions (as Data Lifecycle Manager), got: 4'],
    ['a Region named twice', { copies: [{ region: 'eu-west-1' }, { region: 'eu-west-1', copyTags: false }] },
      'copies[1].region names a Region a rule before it names already, got: "eu-west-1"'],
    ['the stack\'s own Region', { copies: [{ region: 'eu-west-1' }, { region: REGION }] },
      'copies[1].region is the schedule\'s own Region: copies go to other Regions, got: "eu-central-1"'],
    ['a Region that is no Region name', { copies: [{ region: 'Ireland' }] }, 'copies[0].region must be a Region name like "eu-west-1", got: "Ireland"'],
    ['no Region (plain JavaScript)', { copies: [{} as SnapshotCopyRule] }, 'copies[0].region must be a Region name like "eu-west-1", got: undefined'],
    ['a Region in another partition', { copies: [{ region: 'cn-north-1' }] },
      'copies[0].region must be in the stack\'s partition "aws" (EC2 copies snapshots within a partition), got: "cn-north-1" in "aws-cn"'],
    ['a key in another Region', { copies: [{ region: 'eu-west-1', kmsKeyArn: VIRGINIA_KEY }] },
      `copies[0].kmsKeyArn must be a key in the rule's Region "eu-west-1" (KMS keys are Regional), got: "${VIRGINIA_KEY}"`],
    ['a key id for a key ARN', { copies: [{ region: 'eu-west-1', kmsKeyArn: '1234abcd-12ab-34cd-56ef-1234567890ab' }] },
      'copies[0].kmsKeyArn must be a KMS key ARN like "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", '
        + 'got: "1234abcd-12ab-34cd-56ef-1234567890ab"'],
    ['an alias ARN', { copies: [{ region: 'eu-west-1', kmsKeyArn: 'arn:aws:kms:eu-west-1:123456789012:alias/backups' }] },
      'copies[0].kmsKeyArn must be the key\'s ARN, not an alias (IAM allows the worker role the use of a key by its key ARN), '
        + 'got: "arn:aws:kms:eu-west-1:123456789012:alias/backups"'],
    ['10 minutes', { copies: [{ region: 'eu-west-1', completionDuration: Duration.minutes(10) }] }, `copies[0].completionDuration ${MINUTES}, got: 10 minutes`],
    ['20 minutes', { copies: [{ region: 'eu-west-1', completionDuration: Duration.minutes(20) }] }, `copies[0].completionDuration ${MINUTES}, got: 20 minutes`],
    ['2890 minutes', { copies: [{ region: 'eu-west-1', completionDuration: Duration.minutes(2_890) }] },
      `copies[0].completionDuration ${MINUTES}, got: 2 days 10 minutes`],
    ['15 minutes and a second', { copies: [{ region: 'eu-west-1', completionDuration: Duration.seconds(901) }] },
      `copies[0].completionDuration ${MINUTES}, got: 15 minutes 1 second`],
    ['a number for a duration', { copies: [{ region: 'eu-west-1', completionDuration: 60 as any }] }, `copies[0].completionDuration ${MINUTES}, got: 60`],
    ['an Outpost', { outpostArn: OUTPOST_ARN, copies: [{ region: 'eu-west-1' }] },
      `copies cannot be made of Outpost snapshots (EC2 does not copy them to another Region), got: outpostArn "${OUTPOST_ARN}"`],
    ['Local Zone snapshots kept in the zone', { location: SnapshotLocation.LOCAL, copies: [{ region: 'eu-west-1' }] },
      'copies cannot be made of Local Zone snapshots (EC2 does not copy them to another Region), got: location "local"'],
    ['45 snapshot tags', { snapshotTags: tags(45), copies: [{ region: 'eu-west-1' }] },
      'snapshotTags may hold at most 44 tags with copies (EC2 allows 50 per snapshot, and each copy carries the library\'s 4 tags and '
        + 'cdk-instance-snapshots:source-snapshot-id and cdk-instance-snapshots:source-region), got: 45'],
    ['47 snapshot tags (over the limit without copies too: one message)', { snapshotTags: tags(47), copies: [{ region: 'eu-west-1' }] },
      'snapshotTags may hold at most 44 tags with copies (EC2 allows 50 per snapshot, and each copy carries the library\'s 4 tags and '
        + 'cdk-instance-snapshots:source-snapshot-id and cdk-instance-snapshots:source-region), got: 47'],
    ['copyTags as a string (plain JavaScript)', { copies: [{ region: 'eu-west-1', copyTags: 'false' as any }] }, 'copies[0].copyTags must be true or false, got: "false"'],
    ['a retention as a plain object', { copies: [{ region: 'eu-west-1', retention: { count: 3 } as any }] },
      'copies[0].retention must be made with Retention.count(), .age(), .calendar() or .anyOf(), got: {"count":3}'],
    ['a misspelt field (plain JavaScript)', { copies: [{ region: 'eu-west-1', kmsKey: IRELAND_KEY } as any] },
      'copies[0] has fields no SnapshotCopyRule has, got: ["kmsKey"]'],
    ['a Region name for a rule', { copies: ['eu-west-1' as any] }, 'copies[0] must be a SnapshotCopyRule like { region: "eu-west-1" }, got: "eu-west-1"'],
    ['a rule for a list', { copies: { region: 'eu-west-1' } as any }, 'copies must be a list of SnapshotCopyRule, got: {"region":"eu-west-1"}'],
    ['goneInstanceRetention without any retention', { goneInstanceRetention: Duration.days(30), copies: [{ region: 'eu-west-1' }] },
      'goneInstanceRetention only applies with retention (without it nothing is deleted): set retention or leave it out, got: 30 days'],
  ])('GIVEN %s WHEN constructed THEN it fails naming the field and the value', (_name, props, message) => {
    expect(() => synth(props)).toThrow(new Error(message));
  });

  test('GIVEN a token as a rule\'s Region WHEN constructed THEN it fails: the worker and IAM need the Region written out', () => {
    expect(() => synth({ copies: [{ region: tokenRegion() }] })).toThrow(
      /^copies\[0\]\.region must be written out in the app \(the worker calls CopySnapshot in that Region and the worker role's permissions name it\), got: "\$\{Token\[/);
  });

  test('GIVEN several bad rules WHEN constructed THEN every problem of the props is reported at once, one per line', () => {
    expect(() => synth({ copies: [{ region: 'eu-west-1', completionDuration: Duration.minutes(10) }, { region: 'us-east-1', kmsKeyArn: 'key' }] }))
      .toThrow(new Error([
        `copies[0].completionDuration ${MINUTES}, got: 10 minutes`,
        'copies[1].kmsKeyArn must be a KMS key ARN like "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", got: "key"',
      ].join('\n')));
  });

  test.each<[string, Partial<InstanceSnapshotScheduleProps>]>([
    ['three rules with every option', { copies: THREE_RULES }],
    ['15 minutes and 48 hours', { copies: [{ region: 'eu-west-1', completionDuration: Duration.minutes(15) }, { region: 'us-east-1', completionDuration: Duration.hours(48) }] }],
    ['44 snapshot tags', { snapshotTags: tags(44), copies: [{ region: 'eu-west-1' }] }],
    ['46 snapshot tags without copies', { snapshotTags: tags(46) }],
    ['location REGIONAL', { location: SnapshotLocation.REGIONAL, copies: [{ region: 'eu-west-1' }] }],
    ['an Outpost without copies', { outpostArn: OUTPOST_ARN, copies: [] }],
    ['goneInstanceRetention with a rule\'s retention only', { goneInstanceRetention: Duration.days(30), copies: [{ region: 'eu-west-1', retention: Retention.count(3) }] }],
  ])('GIVEN %s WHEN constructed THEN it is accepted', (_name, props) => {
    expect(() => synth(props)).not.toThrow();
  });

  test('GIVEN an environment-agnostic stack WHEN constructed THEN any Region can be a destination, and the source is the deploying Region', () => {
    const { template } = synth({ copies: [{ region: REGION }] }, newStack({}));

    expect(statement(template, 'CopySnapshotsOfThisSchedule').Resource).toEqual(snapshotsIn({ Ref: 'AWS::Region' }));
    expect(statement(template, 'CopiesTaggedWithThisSchedule').Resource).toEqual(snapshotsIn(REGION));
  });
});

describe('worker role', () => {
  const taggedWithThisSchedule = { StringEquals: { 'aws:ResourceTag/cdk-instance-snapshots:schedule': SCHEDULE_ID } };

  test('GIVEN one rule WHEN synthesized THEN the worker may copy this schedule\'s snapshots into snapshots tagged with it there, and tag them on creation', () => {
    const { template } = synth({ copies: [{ region: 'eu-west-1' }] });

    expect(statement(template, 'CopySnapshotsOfThisSchedule')).toEqual({
      Sid: 'CopySnapshotsOfThisSchedule',
      Effect: 'Allow',
      Action: 'ec2:CopySnapshot',
      Resource: snapshotsIn(REGION),
      Condition: taggedWithThisSchedule,
    });
    expect(statement(template, 'CopiesTaggedWithThisSchedule')).toEqual({
      Sid: 'CopiesTaggedWithThisSchedule',
      Effect: 'Allow',
      Action: 'ec2:CopySnapshot',
      Resource: snapshotsIn('eu-west-1'),
      Condition: { StringEquals: { 'aws:RequestTag/cdk-instance-snapshots:schedule': SCHEDULE_ID } },
    });
    expect(statement(template, 'TagCopiesOnCreation')).toEqual({
      Sid: 'TagCopiesOnCreation',
      Effect: 'Allow',
      Action: 'ec2:CreateTags',
      Resource: snapshotsIn('eu-west-1'),
      Condition: { StringEquals: { 'ec2:CreateAction': 'CopySnapshot' } },
    });
    expect(statementsGranting(template, 'ec2:CopySnapshot')).toHaveLength(2);
  });

  test('GIVEN three rules WHEN synthesized THEN each action has one statement naming every destination Region', () => {
    const { template } = synth({ copies: THREE_RULES });
    const destinations = ['eu-west-1', 'us-east-1', 'ap-southeast-2'].map(snapshotsIn);

    expect(statement(template, 'CopiesTaggedWithThisSchedule').Resource).toEqual(destinations);
    expect(statement(template, 'TagCopiesOnCreation').Resource).toEqual(destinations);
    expect(statement(template, 'CopySnapshotsOfThisSchedule').Resource).toEqual(snapshotsIn(REGION));
    expect(statementsGranting(template, 'ec2:CopySnapshot')).toHaveLength(2);
    expect(statementsGranting(template, 'ec2:CreateTags')).toHaveLength(2);
  });

  test.each<[string, Partial<InstanceSnapshotScheduleProps>, unknown]>([
    ['no retention anywhere', { copies: [{ region: 'eu-west-1' }, { region: 'us-east-1' }] }, undefined],
    ['a retention on one rule only', { copies: [{ region: 'eu-west-1' }, { region: 'us-east-1', retention: Retention.count(3) }] }, snapshotsIn('us-east-1')],
    ['the schedule\'s retention, inherited by every rule', { retention: Retention.count(7), copies: [{ region: 'eu-west-1' }, { region: 'us-east-1' }] },
      [snapshotsIn(REGION), snapshotsIn('eu-west-1'), snapshotsIn('us-east-1')]],
  ])('GIVEN %s WHEN synthesized THEN DeleteSnapshot names exactly the Regions whose snapshots are pruned, under the schedule tag', (_name, props, resources) => {
    const { template } = synth(props);
    const deletions = statementsGranting(template, 'ec2:DeleteSnapshot');

    if (resources === undefined) {
      expect(deletions).toEqual([]);
    } else {
      expect(deletions).toEqual([{ Sid: 'DeleteSnapshotsOfThisSchedule', Effect: 'Allow', Action: 'ec2:DeleteSnapshot', Resource: resources, Condition: taggedWithThisSchedule }]);
    }
  });

  test.each<[string, Partial<InstanceSnapshotScheduleProps>, string[]]>([
    ['copies without a retention', { copies: [{ region: 'eu-west-1' }] }, []],
    ['copies with a retention and none on the schedule (locked copies are kept)', { copies: [{ region: 'eu-west-1', retention: Retention.count(3) }] },
      ['ec2:DescribeLockedSnapshots']],
  ])('GIVEN %s WHEN synthesized THEN the describe calls are those of the schedule and %p', (_name, props, extra) => {
    const { template } = synth(props);

    expect(statement(template, 'DescribeHasNoResourceType').Action).toEqual(['ec2:DescribeInstances', 'ec2:DescribeSnapshots', 'ec2:DescribeVolumes', ...extra]);
  });

  test('GIVEN copies without a key WHEN synthesized THEN the worker role may use no key but the notification topic\'s', () => {
    const { template } = synth({ copies: [{ region: 'eu-west-1' }] });

    expect(workerStatements(template).filter((s) => [s.Action].flat().some((a: string) => a.startsWith('kms:'))).map((s) => s.Sid))
      .toEqual(['EncryptNotifications']);
    expect(statementsGranting(template, 'kms:CreateGrant')).toEqual([]);
  });

  test('GIVEN keys on two of three rules WHEN synthesized THEN EBS may use those two keys only, and create grants only for AWS resources', () => {
    const { template } = synth({ copies: THREE_RULES });

    expect(statement(template, 'EncryptCopiesWithTheirKeys')).toEqual({
      Sid: 'EncryptCopiesWithTheirKeys',
      Effect: 'Allow',
      Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncryptFrom', 'kms:ReEncryptTo', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:DescribeKey'],
      Resource: [IRELAND_KEY, VIRGINIA_KEY],
    });
    expect(statement(template, 'LetEbsUseTheCopyKeys')).toEqual({
      Sid: 'LetEbsUseTheCopyKeys',
      Effect: 'Allow',
      Action: 'kms:CreateGrant',
      Resource: [IRELAND_KEY, VIRGINIA_KEY],
      Condition: { Bool: { 'kms:GrantIsForAWSResource': true } },
    });
  });

  test('GIVEN three rules with keys, retention, a lock and a 211-character id WHEN synthesized THEN the worker role\'s policy stays far below IAM\'s limit', () => {
    const { stack, construct } = synth({
      retention: Retention.count(7), lock: SnapshotLock.governance(Duration.days(7)), copies: THREE_RULES, scheduleId: `production/${'x'.repeat(200)}`,
    });
    const size = policySizeUpperBound(stack, [(construct.workerRole as InlinePolicyRole).document]);

    // 3,077 characters without copies: the rules add about 2,200 (the id is in two more conditions).
    expect(size).toBeLessThan(6_000);
    expect(ROLE_INLINE_POLICY_LIMIT).toBe(10_240);
    Annotations.fromStack(stack).hasNoWarning('*', Match.stringLikeRegexp('policyTooLarge'));
  });
});

describe('alarm and dashboard', () => {
  const alarmOf = (template: Template) => resource(template, 'AWS::CloudWatch::Alarm', 'NightlyInstancesFailedAlarm');
  const metricNames = (alarm: any) => alarm.Metrics.filter((m: any) => m.MetricStat).map((m: any) => `${m.Id}=${m.MetricStat.Metric.MetricName}`);
  const BASE = ['failed=InstancesFailed', 'notAttempted=InstancesNotAttempted'];

  test.each<[string, Partial<InstanceSnapshotScheduleProps>, string, string[]]>([
    ['no copies', {}, 'failed + notAttempted', []],
    ['standard copies', { copies: [{ region: 'eu-west-1' }] }, 'failed + notAttempted + FILL(copyFailures, 0)', ['copyFailures=CopyFailures']],
    ['a time-based copy', { copies: [{ region: 'eu-west-1' }, { region: 'us-east-1', completionDuration: Duration.hours(4) }] },
      'failed + notAttempted + FILL(copyFailures, 0) + FILL(copiesOverdue, 0)', ['copyFailures=CopyFailures', 'copiesOverdue=CopiesOverdue']],
    ['retention and a time-based copy', { retention: Retention.count(7), copies: [{ region: 'eu-west-1', completionDuration: Duration.hours(4) }] },
      'failed + notAttempted + FILL(pruneFailures, 0) + FILL(copyFailures, 0) + FILL(copiesOverdue, 0)',
      ['pruneFailures=PruneFailures', 'copyFailures=CopyFailures', 'copiesOverdue=CopiesOverdue']],
  ])('GIVEN %s WHEN synthesized THEN the instances-failed alarm counts what the schedule can fail at, missing data as 0', (_name, props, expression, extra) => {
    const alarm = alarmOf(synth(props).template);

    expect(alarm.Metrics[0]).toEqual({ Id: 'expr_1', Expression: expression, ReturnData: true });
    expect(metricNames(alarm)).toEqual([...BASE, ...extra]);
  });

  test.each<[string, Partial<InstanceSnapshotScheduleProps>, string]>([
    ['standard copies', { copies: [{ region: 'eu-west-1' }] }, 'a run left instances without a snapshot set, could not copy sets to other Regions. '],
    ['a time-based copy and retention', { retention: Retention.count(7), copies: [{ region: 'eu-west-1', completionDuration: Duration.hours(4) }] },
      'a run left instances without a snapshot set, could not copy sets to other Regions or copy them in time, or could not delete sets retention no longer keeps. '],
  ])('GIVEN %s WHEN synthesized THEN the alarm\'s description names copies', (_name, props, text) => {
    expect(alarmOf(synth(props).template).AlarmDescription).toBe(`cdk-instance-snapshots: ${text}`
      + 'Its summary log line names them and why: fix that, then run the occurrence again (README, Operations).');
  });

  test('GIVEN a dashboard and copies WHEN synthesized THEN it has a copies widget with the copy metrics', () => {
    const body = JSON.stringify(resource(synth({ dashboard: true, copies: [{ region: 'eu-west-1' }] }).template, 'AWS::CloudWatch::Dashboard', 'NightlyDashboard')
      .DashboardBody);

    expect(body).toContain('Copies to other Regions (per run)');
    for (const name of ['SnapshotsCopied', 'CopyFailures', 'CopiesOverdue']) expect(body).toContain(`\\"${name}\\"`);
  });

  test('GIVEN a dashboard without copies WHEN synthesized THEN it has no copies widget', () => {
    const body = JSON.stringify(resource(synth({ dashboard: true }).template, 'AWS::CloudWatch::Dashboard', 'NightlyDashboard').DashboardBody);

    expect(body).not.toContain('Copies to other Regions');
    expect(body).not.toContain('CopyFailures');
  });
});

describe('metric helpers', () => {
  test.each<[string, (s: InstanceSnapshotSchedule) => any, string]>([
    ['metricSnapshotsCopied', (s) => s.metricSnapshotsCopied(), 'SnapshotsCopied'],
    ['metricCopyFailures', (s) => s.metricCopyFailures(), 'CopyFailures'],
    ['metricCopiesOverdue', (s) => s.metricCopiesOverdue(), 'CopiesOverdue'],
  ])('GIVEN a schedule WHEN %s is called THEN it is the sum over 5 minutes of that metric of this schedule', (_name, call, metricName) => {
    const metric = call(synth({ copies: [{ region: 'eu-west-1' }] }).construct);

    expect(metric.namespace).toBe('CdkInstanceSnapshots');
    expect(metric.metricName).toBe(metricName);
    expect(metric.dimensions).toEqual({ Schedule: SCHEDULE_ID });
    expect(metric.statistic).toBe('Sum');
    expect(metric.period.toMinutes()).toBe(5);
  });

  test('GIVEN options WHEN a helper is called THEN they apply', () => {
    const metric = synth().construct.metricCopiesOverdue({ period: Duration.hours(1), statistic: 'Maximum' });

    expect(metric.period.toHours()).toBe(1);
    expect(metric.statistic).toBe('Maximum');
  });
});

test('GIVEN copies WHEN synthesized THEN no resource is added: only the worker role, the request, the alarm and the dashboard change', () => {
  const without = Object.keys(synth({ retention: Retention.count(7) }).template.toJSON().Resources);
  const withCopies = Object.keys(synth({ retention: Retention.count(7), copies: THREE_RULES }).template.toJSON().Resources);

  expect(withCopies).toEqual(without);
});
