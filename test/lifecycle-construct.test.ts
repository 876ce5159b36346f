/**
 * The construct side of snapshot lifecycle: retention rules, snapshot locks, the Recycle Bin rule,
 * instance exclusion by tag, Location, the DeleteSnapshot rate and the schedule's identity. What is
 * checked here is what the construct synthesizes (the request the worker gets, IAM, resources,
 * annotations); the worker's decisions are tested on the worker side.
 */
import { App, CfnParameter, Annotations as CoreAnnotations, Duration, Stack, StackProps, TimeZone } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import {
  CalendarRetentionProps,
  InstanceSnapshotSchedule,
  InstanceSnapshotScheduleProps,
  Retention,
  SnapshotLocation,
  SnapshotLock,
} from '../src';
import { parseRunRequest, REQUEST_VERSION, requestSha256 } from '../src/private/request-contract';

const ACCOUNT = '123456789012';
const REGION = 'eu-central-1';
const PARTITION = { Ref: 'AWS::Partition' };
const DEFAULT_PROPS: InstanceSnapshotScheduleProps = { instanceTags: { Backup: ['nightly'] } };
const SCHEDULE_TAG = 'cdk-instance-snapshots:schedule';
const SNAPSHOT_ARN = { 'Fn::Join': ['', ['arn:', PARTITION, `:ec2:${REGION}::snapshot/*`]] };
const NINETY_DAYS = 90 * 86_400;

function newStack(stackProps: StackProps = { env: { account: ACCOUNT, region: REGION } }, app = new App(), id = 'TestStack'): Stack {
  return new Stack(app, id, stackProps);
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
  const definition = JSON.parse(asText(resource(template, 'AWS::StepFunctions::StateMachine', 'NightlyWorkflow').properties.DefinitionString));
  const texts = Object.values<any>(definition.States).map((s) => s.Parameters?.request).filter((r) => r !== undefined);
  expect(texts.length).toBeGreaterThanOrEqual(2);
  expect(new Set(texts).size).toBe(1);
  return JSON.parse(texts[0]);
}

function workerStatements(template: Template): any[] {
  return resource(template, 'AWS::IAM::Role', 'NightlyWorkerRole').properties.Policies[0].PolicyDocument.Statement;
}

/** Every statement of every role and policy in the template that grants the action. */
function statementsGranting(template: Template, action: string): any[] {
  const documents = [
    ...Object.values(template.findResources('AWS::IAM::Role')).flatMap((r) => (r.Properties.Policies ?? []).map((p: any) => p.PolicyDocument)),
    ...Object.values(template.findResources('AWS::IAM::Policy')).map((p) => p.Properties.PolicyDocument),
  ];
  return documents.flatMap((d) => d.Statement).filter((s: any) => [s.Action].flat().includes(action));
}

function warnings(stack: Stack): Array<{ path: string; data: string }> {
  return Annotations.fromStack(stack).findWarning('*', Match.anyValue()).map((w) => ({ path: w.id, data: String(w.entry.data) }));
}

function infos(stack: Stack): string[] {
  return Annotations.fromStack(stack).findInfo('*', Match.anyValue()).map((i) => String(i.entry.data));
}

const tokenNumber = () => new CfnParameter(newStack(), 'N', { type: 'Number' }).valueAsNumber;

describe('Retention', () => {
  test.each<[string, () => Retention, object]>([
    ['count(1)', () => Retention.count(1), { count: 1 }],
    ['count(1000)', () => Retention.count(1000), { count: 1000 }],
    ['age(1 hour)', () => Retention.age(Duration.hours(1)), { maxAgeSeconds: 3_600 }],
    ['age(30 days)', () => Retention.age(Duration.days(30)), { maxAgeSeconds: 30 * 86_400 }],
    ['age(36600 days)', () => Retention.age(Duration.days(36_600)), { maxAgeSeconds: 36_600 * 86_400 }],
    ['age(3601 seconds)', () => Retention.age(Duration.seconds(3_601)), { maxAgeSeconds: 3_601 }],
    ['calendar with every granularity at 1', () => Retention.calendar({ hourly: 1, daily: 1, weekly: 1, monthly: 1, yearly: 1 }),
      { hourly: 1, daily: 1, weekly: 1, monthly: 1, yearly: 1 }],
    ['calendar with every granularity at 10000', () => Retention.calendar({ hourly: 10_000, daily: 10_000, weekly: 10_000, monthly: 10_000, yearly: 10_000 }),
      { hourly: 10_000, daily: 10_000, weekly: 10_000, monthly: 10_000, yearly: 10_000 }],
    ['calendar with daily only', () => Retention.calendar({ daily: 7 }), { daily: 7 }],
  ])('GIVEN Retention.%s WHEN rendered THEN it holds exactly that rule', (_name, make, expected) => {
    expect(make()._render()).toEqual(expected);
  });

  const TOKEN = 'the worker evaluates retention from the rendered request, so tokens are not supported';
  test.each<[string, () => unknown, string]>([
    ['count(0)', () => Retention.count(0), 'retention: Retention.count() takes 1 to 1000 sets, got: 0'],
    ['count(1001)', () => Retention.count(1001), 'retention: Retention.count() takes 1 to 1000 sets, got: 1001'],
    ['count(2.5)', () => Retention.count(2.5), 'retention: Retention.count() takes 1 to 1000 sets, got: 2.5'],
    ['count(NaN)', () => Retention.count(NaN), 'retention: Retention.count() takes 1 to 1000 sets, got: NaN'],
    ['count("5")', () => Retention.count('5' as any), 'retention: Retention.count() takes 1 to 1000 sets, got: "5"'],
    ['count(token)', () => Retention.count(tokenNumber()), `retention: Retention.count() takes a value written out in the app (${TOKEN}), got: an unresolved token`],
    ['age(59 minutes)', () => Retention.age(Duration.minutes(59)),
      'retention: Retention.age() takes whole seconds from 1 hour to 36600 days (100 years), got: 59 minutes'],
    ['age(1 hour 500 ms)', () => Retention.age(Duration.millis(3_600_500)),
      'retention: Retention.age() takes whole seconds from 1 hour to 36600 days (100 years), got: 1 hour 500 millis'],
    ['age(36601 days)', () => Retention.age(Duration.days(36_601)),
      'retention: Retention.age() takes whole seconds from 1 hour to 36600 days (100 years), got: 36601 days'],
    ['age(a number)', () => Retention.age(7 as any), 'retention: Retention.age() takes whole seconds from 1 hour to 36600 days (100 years), got: 7'],
    ['age(token)', () => Retention.age(Duration.days(tokenNumber())), `retention: Retention.age() takes a value written out in the app (${TOKEN}), got: an unresolved token`],
    ['calendar({})', () => Retention.calendar({}), 'retention: Retention.calendar() needs at least one of hourly, daily, weekly, monthly, yearly, got: {}'],
    ['calendar(undefined)', () => Retention.calendar(undefined as any),
      'retention: Retention.calendar() takes an object with hourly, daily, weekly, monthly or yearly, got: undefined'],
    ['calendar({ daily: 0 })', () => Retention.calendar({ daily: 0 }), 'retention: Retention.calendar() takes daily of 1 to 10000, got: 0'],
    ['calendar({ weekly: 10001 })', () => Retention.calendar({ weekly: 10_001 }), 'retention: Retention.calendar() takes weekly of 1 to 10000, got: 10001'],
    ['calendar({ hourly: 1.5 })', () => Retention.calendar({ hourly: 1.5 }), 'retention: Retention.calendar() takes hourly of 1 to 10000, got: 1.5'],
    ['calendar({ yearly: -1 })', () => Retention.calendar({ yearly: -1 }), 'retention: Retention.calendar() takes yearly of 1 to 10000, got: -1'],
    ['calendar({ monthly: token })', () => Retention.calendar({ monthly: tokenNumber() }),
      `retention: Retention.calendar() monthly takes a value written out in the app (${TOKEN}), got: an unresolved token`],
    ['anyOf()', () => Retention.anyOf(), 'retention: Retention.anyOf() needs at least one rule, got: none'],
    ['anyOf(a plain object)', () => Retention.anyOf({ count: 3 } as any),
      'retention: Retention.anyOf() takes rules made with Retention.count(), .age(), .calendar() or .anyOf(), got: {"count":3}'],
  ])('GIVEN Retention.%s WHEN called THEN it throws naming the factory and the value', (_name, call, message) => {
    expect(call).toThrow(new Error(message));
  });

  test.each<[string, Retention[], object]>([
    ['two counts', [Retention.count(3), Retention.count(7)], { count: 7 }],
    ['two ages and a count', [Retention.age(Duration.days(1)), Retention.age(Duration.days(7)), Retention.count(2)], { maxAgeSeconds: 7 * 86_400, count: 2 }],
    ['two calendars', [Retention.calendar({ daily: 7, weekly: 4 }), Retention.calendar({ daily: 14, monthly: 6 })], { daily: 14, weekly: 4, monthly: 6 }],
    ['a nested anyOf', [Retention.anyOf(Retention.count(5), Retention.calendar({ yearly: 3 })), Retention.count(2), Retention.calendar({ yearly: 10 })],
      { count: 5, yearly: 10 }],
    ['one rule', [Retention.age(Duration.hours(6))], { maxAgeSeconds: 6 * 3_600 }],
  ])('GIVEN anyOf of %s WHEN merged THEN each field is the largest given (the union of the rules)', (_name, rules, expected) => {
    expect(Retention.anyOf(...rules)._render()).toEqual(expected);
  });

  test('GIVEN rules WHEN merged with anyOf THEN the rules given are left as they were', () => {
    const count = Retention.count(3);
    Retention.anyOf(count, Retention.count(9));
    expect(count._render()).toEqual({ count: 3 });
  });
});

describe('SnapshotLock', () => {
  test.each<[string, () => SnapshotLock, object]>([
    ['governance(1 day)', () => SnapshotLock.governance(Duration.days(1)), { mode: 'governance', durationDays: 1 }],
    ['governance(36500 days)', () => SnapshotLock.governance(Duration.days(36_500)), { mode: 'governance', durationDays: 36_500 }],
    ['governance(48 hours)', () => SnapshotLock.governance(Duration.hours(48)), { mode: 'governance', durationDays: 2 }],
    ['compliance(30 days)', () => SnapshotLock.compliance(Duration.days(30)), { mode: 'compliance', durationDays: 30 }],
    ['compliance(30 days, 1 hour)', () => SnapshotLock.compliance(Duration.days(30), Duration.hours(1)), { mode: 'compliance', durationDays: 30, coolOffHours: 1 }],
    ['compliance(30 days, 3 days)', () => SnapshotLock.compliance(Duration.days(30), Duration.days(3)), { mode: 'compliance', durationDays: 30, coolOffHours: 72 }],
  ])('GIVEN SnapshotLock.%s WHEN rendered THEN it holds that lock', (_name, make, expected) => {
    expect(make()._render()).toEqual(expected);
  });

  test.each<[string, () => unknown, string]>([
    ['governance(12 hours)', () => SnapshotLock.governance(Duration.hours(12)),
      'lock: SnapshotLock.governance() takes a duration of whole days from 1 to 36500 (EC2\'s range), got: 12 hours'],
    ['governance(36 hours)', () => SnapshotLock.governance(Duration.hours(36)),
      'lock: SnapshotLock.governance() takes a duration of whole days from 1 to 36500 (EC2\'s range), got: 1 day 12 hours'],
    ['governance(36501 days)', () => SnapshotLock.governance(Duration.days(36_501)),
      'lock: SnapshotLock.governance() takes a duration of whole days from 1 to 36500 (EC2\'s range), got: 36501 days'],
    ['compliance(0 days)', () => SnapshotLock.compliance(Duration.days(0)),
      'lock: SnapshotLock.compliance() takes a duration of whole days from 1 to 36500 (EC2\'s range), got: 0 days'],
    ['compliance(30 days, 73 hours)', () => SnapshotLock.compliance(Duration.days(30), Duration.hours(73)),
      'lock: SnapshotLock.compliance() takes a cool-off period of whole hours from 1 to 72 (EC2\'s range), got: 3 days 1 hour'],
    ['compliance(30 days, 90 minutes)', () => SnapshotLock.compliance(Duration.days(30), Duration.minutes(90)),
      'lock: SnapshotLock.compliance() takes a cool-off period of whole hours from 1 to 72 (EC2\'s range), got: 1 hour 30 minutes'],
    ['compliance(30 days, 0 hours)', () => SnapshotLock.compliance(Duration.days(30), Duration.hours(0)),
      'lock: SnapshotLock.compliance() takes a cool-off period of whole hours from 1 to 72 (EC2\'s range), got: 0 hours'],
    ['governance(token)', () => SnapshotLock.governance(Duration.days(tokenNumber())),
      'lock: SnapshotLock.governance() takes a duration written out in the app (the worker locks the snapshots with the values of the rendered request, '
        + 'so tokens are not supported), got: an unresolved token'],
  ])('GIVEN SnapshotLock.%s WHEN called THEN it throws naming the factory and the value', (_name, call, message) => {
    expect(call).toThrow(new Error(message));
  });
});

describe('the rendered request', () => {
  test('GIVEN no lifecycle prop WHEN synthesized THEN the request has no retention, lock, location, exclusion or delete rate', () => {
    const request = definedRequest(synth().template);
    for (const field of ['retention', 'lock', 'location', 'excludeInstanceTags', 'deleteSnapshotsPerSecond']) {
      expect(request).not.toHaveProperty(field);
    }
    expect(request.version).toBe(REQUEST_VERSION);
  });

  test('GIVEN a count retention and the default schedule WHEN synthesized THEN the request keeps the rule in UTC, gone instances 90 days, deletes at 5/s', () => {
    const request = definedRequest(synth({ retention: Retention.count(14) }).template);
    expect(request.retention).toEqual({ count: 14, timeZone: 'Etc/UTC', goneInstanceSeconds: NINETY_DAYS });
    expect(request.deleteSnapshotsPerSecond).toBe(5);
  });

  test.each<[string, scheduler.ScheduleExpression, string]>([
    ['a cron in Berlin', scheduler.ScheduleExpression.cron({ hour: '2', minute: '30', timeZone: TimeZone.EUROPE_BERLIN }), 'Europe/Berlin'],
    ['a cron in New York', scheduler.ScheduleExpression.cron({ weekDay: 'SUN', hour: '4', minute: '0', timeZone: TimeZone.AMERICA_NEW_YORK }), 'America/New_York'],
    ['a cron without a time zone', scheduler.ScheduleExpression.cron({ hour: '3', minute: '0' }), 'Etc/UTC'],
    ['a rate', scheduler.ScheduleExpression.rate(Duration.hours(6)), 'Etc/UTC'],
  ])('GIVEN calendar retention and %s WHEN synthesized THEN buckets are counted in the schedule\'s time zone', (_name, schedule, timeZone) => {
    const request = definedRequest(synth({ schedule, retention: Retention.calendar({ daily: 7, weekly: 4 }) }).template);
    expect(request.retention).toEqual({ daily: 7, weekly: 4, timeZone, goneInstanceSeconds: NINETY_DAYS });
  });

  test('GIVEN anyOf, a gone-instance period and a delete rate WHEN synthesized THEN the request carries the merged rules and both values', () => {
    const request = definedRequest(synth({
      retention: Retention.anyOf(Retention.age(Duration.days(7)), Retention.calendar({ monthly: 12 })),
      goneInstanceRetention: Duration.days(30),
      deleteSnapshotsPerSecond: 2.5,
    }).template);
    expect(request.retention).toEqual({ maxAgeSeconds: 7 * 86_400, monthly: 12, timeZone: 'Etc/UTC', goneInstanceSeconds: 30 * 86_400 });
    expect(request.deleteSnapshotsPerSecond).toBe(2.5);
  });

  test.each<[string, SnapshotLock, object]>([
    ['a governance lock', SnapshotLock.governance(Duration.days(14)), { mode: 'governance', durationDays: 14 }],
    ['a compliance lock with a cool-off', SnapshotLock.compliance(Duration.days(365), Duration.hours(24)), { mode: 'compliance', durationDays: 365, coolOffHours: 24 }],
  ])('GIVEN %s WHEN synthesized THEN the request carries it', (_name, lock, expected) => {
    expect(definedRequest(synth({ lock }).template).lock).toEqual(expected);
  });

  test.each<[SnapshotLocation, string]>([
    [SnapshotLocation.LOCAL, 'local'],
    [SnapshotLocation.REGIONAL, 'regional'],
  ])('GIVEN location %s WHEN synthesized THEN the request carries EC2\'s value %s', (location, value) => {
    expect(definedRequest(synth({ location }).template).location).toBe(value);
  });

  test('GIVEN excludeInstanceTags WHEN synthesized THEN the request carries them as given', () => {
    const excludeInstanceTags = { 'Backup': ['skip'], 'backup:exclude': ['true', 'yes'] };
    expect(definedRequest(synth({ excludeInstanceTags }).template).excludeInstanceTags).toEqual(excludeInstanceTags);
  });

  test('GIVEN every lifecycle prop WHEN the worker parses the request THEN it accepts it unchanged, and REQUEST_SHA256 is its hash', () => {
    const { template } = synth({
      excludeInstanceTags: { Backup: ['skip'] },
      location: SnapshotLocation.LOCAL,
      retention: Retention.anyOf(
        Retention.count(3), Retention.age(Duration.days(2)), Retention.calendar({ hourly: 24, daily: 7, weekly: 5, monthly: 12, yearly: 3 }),
      ),
      goneInstanceRetention: Duration.days(1),
      deleteSnapshotsPerSecond: 1000,
      lock: SnapshotLock.compliance(Duration.days(36_500), Duration.hours(72)),
      scheduleId: 'fleet/nightly',
    });
    const request = definedRequest(template);
    expect(parseRunRequest(request)).toEqual(expect.objectContaining({
      scheduleId: 'fleet/nightly',
      excludeInstanceTags: { Backup: ['skip'] },
      location: 'local',
      retention: { count: 3, maxAgeSeconds: 2 * 86_400, hourly: 24, daily: 7, weekly: 5, monthly: 12, yearly: 3, timeZone: 'Etc/UTC', goneInstanceSeconds: 86_400 },
      deleteSnapshotsPerSecond: 1000,
      lock: { mode: 'compliance', durationDays: 36_500, coolOffHours: 72 },
    }));
    const environment = resource(template, 'AWS::Lambda::Function', 'NightlyWorker').properties.Environment.Variables;
    expect(environment.REQUEST_SHA256).toBe(requestSha256(request));
  });
});

describe('worker permissions', () => {
  const deleteStatement = (scheduleId: string) => ({
    Sid: 'DeleteSnapshotsOfThisSchedule',
    Effect: 'Allow',
    Action: 'ec2:DeleteSnapshot',
    Resource: SNAPSHOT_ARN,
    Condition: { StringEquals: { [`aws:ResourceTag/${SCHEDULE_TAG}`]: scheduleId } },
  });
  const lockStatement = (scheduleId: string) => ({
    Sid: 'LockSnapshotsOfThisSchedule',
    Effect: 'Allow',
    Action: 'ec2:LockSnapshot',
    Resource: SNAPSHOT_ARN,
    Condition: { StringEquals: { [`aws:ResourceTag/${SCHEDULE_TAG}`]: scheduleId } },
  });

  test('GIVEN retention WHEN synthesized THEN DeleteSnapshot is allowed only on snapshots tagged with this schedule\'s id, in the one statement', () => {
    const { template } = synth({ retention: Retention.count(7) });
    expect(statementsGranting(template, 'ec2:DeleteSnapshot')).toEqual([deleteStatement('TestStack/Nightly')]);
  });

  test('GIVEN retention and an explicit scheduleId WHEN synthesized THEN the condition names that id', () => {
    const { template } = synth({ retention: Retention.count(7), scheduleId: 'fleet/nightly' });
    expect(statementsGranting(template, 'ec2:DeleteSnapshot')).toEqual([deleteStatement('fleet/nightly')]);
    expect(statementsGranting(template, 'ec2:CreateSnapshots').find((s) => s.Sid === 'CreateSnapshotsTaggedWithThisSchedule').Condition)
      .toEqual({ StringEquals: { [`aws:RequestTag/${SCHEDULE_TAG}`]: 'fleet/nightly' } });
  });

  test.each<[string, Partial<InstanceSnapshotScheduleProps>]>([
    ['no lifecycle prop', {}],
    ['a lock only', { lock: SnapshotLock.governance(Duration.days(7)) }],
    ['a Recycle Bin rule only', { recycleBinRetention: Duration.days(7) }],
  ])('GIVEN %s WHEN synthesized THEN no role may delete a snapshot', (_name, props) => {
    expect(statementsGranting(synth(props).template, 'ec2:DeleteSnapshot')).toEqual([]);
  });

  test('GIVEN a lock WHEN synthesized THEN LockSnapshot is allowed only on snapshots tagged with this schedule\'s id', () => {
    const { template } = synth({ lock: SnapshotLock.compliance(Duration.days(7)), scheduleId: 'fleet/nightly' });
    expect(statementsGranting(template, 'ec2:LockSnapshot')).toEqual([lockStatement('fleet/nightly')]);
  });

  test.each<[string, Partial<InstanceSnapshotScheduleProps>]>([
    ['no lifecycle prop', {}],
    ['retention only', { retention: Retention.count(7) }],
  ])('GIVEN %s WHEN synthesized THEN no role may lock a snapshot (nor unlock one)', (_name, props) => {
    const { template } = synth(props);
    expect(statementsGranting(template, 'ec2:LockSnapshot')).toEqual([]);
    expect(statementsGranting(template, 'ec2:UnlockSnapshot')).toEqual([]);
  });

  test.each<[string, Partial<InstanceSnapshotScheduleProps>, string[]]>([
    ['no lifecycle prop', {}, []],
    ['retention', { retention: Retention.count(7) }, ['ec2:DescribeImages', 'ec2:DescribeLockedSnapshots']],
    ['a lock', { lock: SnapshotLock.governance(Duration.days(7)) }, ['ec2:DescribeLockedSnapshots']],
    ['retention and a lock', { retention: Retention.count(7), lock: SnapshotLock.governance(Duration.days(7)) }, ['ec2:DescribeImages', 'ec2:DescribeLockedSnapshots']],
  ])('GIVEN %s WHEN synthesized THEN the describe statement (Resource "*") has exactly the calls the worker makes', (_name, props, extra) => {
    const describe = workerStatements(synth(props).template).filter((s) => s.Resource === '*');
    expect(describe).toEqual([{
      Sid: 'DescribeHasNoResourceType',
      Effect: 'Allow',
      Action: ['ec2:DescribeInstances', 'ec2:DescribeSnapshots', 'ec2:DescribeVolumes', ...extra],
      Resource: '*',
    }]);
  });

  test('GIVEN retention and a lock WHEN synthesized THEN the worker role\'s statements come in a fixed order', () => {
    const { template } = synth({ retention: Retention.count(7), lock: SnapshotLock.governance(Duration.days(7)) });
    const sids = workerStatements(template).map((s) => s.Sid);
    expect(sids).toEqual([
      'CreateSnapshotsOfSelectedInstances', 'CreateSnapshotsOfTheirVolumes', 'CreateSnapshotsTaggedWithThisSchedule', 'TagSnapshotsOnCreation',
      'DeleteSnapshotsOfThisSchedule', 'LockSnapshotsOfThisSchedule', 'DescribeHasNoResourceType', 'WriteItsLogs',
      'NotifyFailedSnapshotSets', 'EncryptNotifications',
    ]);
  });
});

describe('Recycle Bin rule', () => {
  test('GIVEN no recycleBinRetention WHEN synthesized THEN there is no rule', () => {
    const { template, construct } = synth({ retention: Retention.count(7) });
    template.resourceCountIs('AWS::Rbin::Rule', 0);
    expect(construct.recycleBinRule).toBeUndefined();
  });

  test('GIVEN recycleBinRetention WHEN synthesized THEN a tag-level rule keeps this schedule\'s deleted snapshots that many days', () => {
    const { template, construct } = synth({ retention: Retention.count(7), recycleBinRetention: Duration.days(14) });
    template.resourceCountIs('AWS::Rbin::Rule', 1);
    expect(resource(template, 'AWS::Rbin::Rule', 'NightlyRecycleBinRule').properties).toEqual({
      ResourceType: 'EBS_SNAPSHOT',
      ResourceTags: [{ ResourceTagKey: SCHEDULE_TAG, ResourceTagValue: 'TestStack/Nightly' }],
      RetentionPeriod: { RetentionPeriodUnit: 'DAYS', RetentionPeriodValue: 14 },
      Description: 'cdk-instance-snapshots: deleted snapshots of TestStack/Nightly stay recoverable for 14 days',
    });
    expect(construct.recycleBinRule?.node.path).toBe('TestStack/Nightly/RecycleBinRule');
  });

  test('GIVEN recycleBinRetention and an explicit scheduleId WHEN synthesized THEN the rule matches that id', () => {
    const { template } = synth({ recycleBinRetention: Duration.days(1), scheduleId: 'fleet/nightly' });
    template.hasResourceProperties('AWS::Rbin::Rule', {
      ResourceTags: [{ ResourceTagKey: SCHEDULE_TAG, ResourceTagValue: 'fleet/nightly' }],
      RetentionPeriod: { RetentionPeriodUnit: 'DAYS', RetentionPeriodValue: 1 },
    });
  });

  test.each<[string, Duration, number]>([
    ['365 days', Duration.days(365), 365],
    ['24 hours', Duration.hours(24), 1],
  ])('GIVEN recycleBinRetention of %s (a limit) WHEN synthesized THEN it renders in whole days', (_name, period, days) => {
    synth({ recycleBinRetention: period }).template.hasResourceProperties('AWS::Rbin::Rule', {
      RetentionPeriod: { RetentionPeriodUnit: 'DAYS', RetentionPeriodValue: days },
    });
  });
});

describe('identity', () => {
  test('GIVEN no scheduleId WHEN synthesized THEN the id is the construct path, everywhere it is used', () => {
    const { template, construct } = synth({ retention: Retention.count(7) });
    expect(construct.scheduleId).toBe('TestStack/Nightly');
    expect(definedRequest(template).scheduleId).toBe('TestStack/Nightly');
    expect(resource(template, 'AWS::Lambda::Function', 'NightlyWorker').properties.Environment.Variables.SCHEDULE_ID).toBe('TestStack/Nightly');
    expect(construct.metricSnapshotSetsDeleted().dimensions).toEqual({ Schedule: 'TestStack/Nightly' });
  });

  test('GIVEN a scheduleId WHEN synthesized THEN the tag value, worker, metrics and conditions use it instead of the path', () => {
    const { template, construct } = synth({ scheduleId: 'Backups/Nightly' });
    expect(construct.scheduleId).toBe('Backups/Nightly');
    expect(definedRequest(template).scheduleId).toBe('Backups/Nightly');
    expect(resource(template, 'AWS::Lambda::Function', 'NightlyWorker').properties.Environment.Variables.SCHEDULE_ID).toBe('Backups/Nightly');
    expect(construct.metricInstancesSelected().dimensions).toEqual({ Schedule: 'Backups/Nightly' });
    expect(JSON.stringify(template.toJSON())).not.toContain('TestStack/Nightly');
  });

  test('GIVEN two stacks of one app in the same account and Region WHEN both schedules have one id THEN the second throws naming both', () => {
    const app = new App();
    const env = { account: ACCOUNT, region: REGION };
    new InstanceSnapshotSchedule(newStack({ env }, app, 'First'), 'Nightly', { ...DEFAULT_PROPS, scheduleId: 'fleet/nightly' });
    expect(() => new InstanceSnapshotSchedule(newStack({ env }, app, 'Second'), 'Backups', { ...DEFAULT_PROPS, scheduleId: 'fleet/nightly' }))
      .toThrow(new Error(`scheduleId must be unique per account and Region: First/Nightly and Second/Backups both have it in account/Region ${ACCOUNT}/${REGION} `
        + '(their snapshots, locks, metrics and permissions would mix), got: "fleet/nightly"'));
  });

  test('GIVEN a schedule whose id is another schedule\'s default path WHEN constructed THEN it throws', () => {
    const app = new App();
    new InstanceSnapshotSchedule(newStack(undefined, app, 'First'), 'Nightly', DEFAULT_PROPS);
    expect(() => new InstanceSnapshotSchedule(newStack(undefined, app, 'Second'), 'Moved', { ...DEFAULT_PROPS, scheduleId: 'First/Nightly' }))
      .toThrow(/^scheduleId must be unique per account and Region: First\/Nightly and Second\/Moved both have it/);
  });

  test('GIVEN two environment-agnostic stacks of one app WHEN both schedules have one id THEN it throws (they may be deployed to one account)', () => {
    const app = new App();
    new InstanceSnapshotSchedule(newStack({}, app, 'First'), 'Nightly', { ...DEFAULT_PROPS, scheduleId: 'fleet/nightly' });
    expect(() => new InstanceSnapshotSchedule(newStack({}, app, 'Second'), 'Nightly', { ...DEFAULT_PROPS, scheduleId: 'fleet/nightly' }))
      .toThrow(/^scheduleId must be unique per account and Region: First\/Nightly and Second\/Nightly both have it in the same account and Region /);
  });

  test('GIVEN one id in two Regions, or in two apps WHEN constructed THEN both are accepted', () => {
    const app = new App();
    new InstanceSnapshotSchedule(newStack({ env: { account: ACCOUNT, region: REGION } }, app, 'Frankfurt'), 'Nightly', { ...DEFAULT_PROPS, scheduleId: 'fleet/nightly' });
    expect(() => new InstanceSnapshotSchedule(newStack({ env: { account: ACCOUNT, region: 'eu-west-1' } }, app, 'Ireland'), 'Nightly',
      { ...DEFAULT_PROPS, scheduleId: 'fleet/nightly' })).not.toThrow();
    expect(() => new InstanceSnapshotSchedule(newStack(undefined, new App(), 'Frankfurt'), 'Nightly',
      { ...DEFAULT_PROPS, scheduleId: 'fleet/nightly' })).not.toThrow();
  });

  test.each<[string, unknown, string]>([
    ['an empty id', '', 'scheduleId must be 1 to 256 characters (it is the snapshots\' "cdk-instance-snapshots:schedule" tag value), got: ""'],
    ['257 characters', 'i'.repeat(257), `scheduleId must be 1 to 256 characters (it is the snapshots' "cdk-instance-snapshots:schedule" tag value), got: "${'i'.repeat(119)}...`],
    ['white space at the end', 'fleet/nightly ', 'scheduleId must not start or end with white space, got: "fleet/nightly "'],
    ['a number', 42, 'scheduleId must be 1 to 256 characters (it is the snapshots\' "cdk-instance-snapshots:schedule" tag value), got: 42'],
  ])('GIVEN a scheduleId with %s WHEN constructed THEN it throws naming the prop', (_name, scheduleId, message) => {
    expect(() => synth({ scheduleId: scheduleId as string })).toThrow(new Error(message));
  });

  test('GIVEN a token as scheduleId WHEN constructed THEN it throws: the id must be known at synth time', () => {
    const stack = newStack();
    const id = new CfnParameter(stack, 'Id').valueAsString;
    expect(() => new InstanceSnapshotSchedule(stack, 'Nightly', { ...DEFAULT_PROPS, scheduleId: id }))
      .toThrow(/^scheduleId must be written out in the app \(it is the snapshots' tag value, IAM conditions and the metrics dimension\), got: "\$\{Token\[/);
  });

  test('GIVEN 255 characters WHEN constructed THEN the id is accepted, and 256 are refused: it is a metrics dimension value', () => {
    expect(synth({ scheduleId: 'i'.repeat(255) }).construct.scheduleId).toHaveLength(255);
    expect(() => synth({ scheduleId: 'i'.repeat(256) }))
      .toThrow(new Error(`scheduleId must be at most 255 characters (it is the value of the metrics' Schedule dimension), got: "${'i'.repeat(119)}... (256)`));
  });

  test('GIVEN a construct path of 256 characters WHEN constructed THEN it fails naming the path and the dimension limit', () => {
    const stack = newStack();
    const id = 'x'.repeat(256 - 'TestStack/'.length);
    expect(() => new InstanceSnapshotSchedule(stack, id, DEFAULT_PROPS))
      .toThrow(new Error(`the construct path must be at most 255 characters (it is the value of the metrics' Schedule dimension), got: "TestStack/${'x'.repeat(109)}... (256)`));
  });
});

describe('warnings and notes', () => {
  const NO_RETENTION = 'no retention: snapshot sets are never deleted and their storage is billed for ever; set retention (for example Retention.count(14) '
    + 'or Retention.calendar({ daily: 7, weekly: 4 })), or acknowledge this warning if something else deletes them [ack: cdk-instance-snapshots:noRetention]';

  test('GIVEN no retention WHEN synthesized THEN the construct warns that sets are never deleted', () => {
    expect(warnings(synth().stack)).toEqual([{ path: '/TestStack/Nightly', data: NO_RETENTION }]);
  });

  test('GIVEN no retention WHEN the user acknowledges the warning THEN it is gone', () => {
    const stack = newStack();
    const construct = new InstanceSnapshotSchedule(stack, 'Nightly', DEFAULT_PROPS);
    CoreAnnotations.of(construct).acknowledgeWarning('cdk-instance-snapshots:noRetention', 'a DLM policy deletes them');
    expect(warnings(stack)).toEqual([]);
  });

  test('GIVEN retention WHEN synthesized THEN there is no warning', () => {
    expect(warnings(synth({ retention: Retention.age(Duration.days(30)) }).stack)).toEqual([]);
  });

  test('GIVEN a compliance lock WHEN synthesized THEN the construct warns that it cannot be undone', () => {
    const { stack } = synth({ retention: Retention.count(7), lock: SnapshotLock.compliance(Duration.days(30), Duration.hours(24)) });
    expect(warnings(stack)).toEqual([{
      path: '/TestStack/Nightly',
      data: 'lock is in compliance mode: every snapshot of a new set is locked for 30 days, and after a cool-off of 24 hours nobody, not even the account\'s '
        + 'root user, can remove or shorten the lock or delete the snapshot before it expires; this cannot be undone. Use SnapshotLock.governance() '
        + 'unless records must be kept, or acknowledge this warning [ack: cdk-instance-snapshots:complianceLock]',
    }]);
  });

  test('GIVEN a compliance lock without cool-off WHEN synthesized THEN the warning says nothing of a cool-off', () => {
    const [warning] = warnings(synth({ retention: Retention.count(7), lock: SnapshotLock.compliance(Duration.days(1)) }).stack);
    expect(warning.data).toMatch(/^lock is in compliance mode: every snapshot of a new set is locked for 1 days, and nobody, not even/);
  });

  test('GIVEN a governance lock WHEN synthesized THEN there is no warning', () => {
    expect(warnings(synth({ retention: Retention.count(7), lock: SnapshotLock.governance(Duration.days(30)) }).stack)).toEqual([]);
  });

  const LOCK_NOTE = /^cdk-instance-snapshots: the retention of TestStack\/Nightly may stop keeping sets younger than their 30-day lock: such sets are kept until their lock expires/;
  test.each<[string, boolean, Retention]>([
    ['an age shorter than the lock', true, Retention.age(Duration.days(7))],
    ['an age as long as the lock', false, Retention.age(Duration.days(30))],
    ['a count of daily sets shorter than the lock', true, Retention.count(3)],
    ['a count of daily sets as long as the lock', false, Retention.count(30)],
    ['a calendar rule (it can drop a set as soon as a newer one shares its bucket)', true, Retention.calendar({ monthly: 12 })],
    ['anyOf with an age as long as the lock', false, Retention.anyOf(Retention.calendar({ daily: 7 }), Retention.age(Duration.days(45)))],
  ])('GIVEN a 30-day lock and %s on a daily schedule WHEN synthesized THEN a note about locked sets: %p', (_name, noted, retention) => {
    const notes = infos(synth({ retention, lock: SnapshotLock.governance(Duration.days(30)) }).stack).filter((i) => LOCK_NOTE.test(i));
    expect(notes).toHaveLength(noted ? 1 : 0);
  });

  test('GIVEN a lock without retention WHEN synthesized THEN there is no note about locked sets', () => {
    expect(infos(synth({ lock: SnapshotLock.governance(Duration.days(30)) }).stack).filter((i) => LOCK_NOTE.test(i))).toEqual([]);
  });
});

describe('validation', () => {
  test.each<[string, Partial<InstanceSnapshotScheduleProps>, string]>([
    ['goneInstanceRetention without retention', { goneInstanceRetention: Duration.days(30) },
      'goneInstanceRetention only applies with retention (without it nothing is deleted): set retention or leave it out, got: 30 days'],
    ['goneInstanceRetention under a day', { retention: Retention.count(7), goneInstanceRetention: Duration.hours(23) },
      'goneInstanceRetention must be whole seconds from 1 day to 36600 days (100 years), got: 23 hours'],
    ['goneInstanceRetention over 100 years', { retention: Retention.count(7), goneInstanceRetention: Duration.days(36_601) },
      'goneInstanceRetention must be whole seconds from 1 day to 36600 days (100 years), got: 36601 days'],
    ['goneInstanceRetention with milliseconds', { retention: Retention.count(7), goneInstanceRetention: Duration.millis(86_400_500) },
      'goneInstanceRetention must be whole seconds from 1 day to 36600 days (100 years), got: 1 day 500 millis'],
    ['deleteSnapshotsPerSecond without retention', { deleteSnapshotsPerSecond: 10 },
      'deleteSnapshotsPerSecond only applies with retention (without it nothing is deleted): set retention or leave it out, got: 10'],
    ['deleteSnapshotsPerSecond 0', { retention: Retention.count(7), deleteSnapshotsPerSecond: 0 },
      'deleteSnapshotsPerSecond must be a number of calls per second above 0 and at most 1000 (EC2\'s default is 5), got: 0'],
    ['deleteSnapshotsPerSecond over 1000', { retention: Retention.count(7), deleteSnapshotsPerSecond: 1001 },
      'deleteSnapshotsPerSecond must be a number of calls per second above 0 and at most 1000 (EC2\'s default is 5), got: 1001'],
    ['recycleBinRetention of 0 days', { recycleBinRetention: Duration.days(0) },
      'recycleBinRetention must be whole days from 1 to 365 (Recycle Bin\'s range for EBS snapshots), got: 0 days'],
    ['recycleBinRetention of 366 days', { recycleBinRetention: Duration.days(366) },
      'recycleBinRetention must be whole days from 1 to 365 (Recycle Bin\'s range for EBS snapshots), got: 366 days'],
    ['recycleBinRetention of 36 hours', { recycleBinRetention: Duration.hours(36) },
      'recycleBinRetention must be whole days from 1 to 365 (Recycle Bin\'s range for EBS snapshots), got: 1 day 12 hours'],
    ['location with outpostArn', { location: SnapshotLocation.LOCAL, outpostArn: 'arn:aws:outposts:eu-central-1:123456789012:outpost/op-0123456789abcdef0' },
      'location is for instances in Local Zones and does not combine with outpostArn, got: location "local" and outpostArn '
        + '"arn:aws:outposts:eu-central-1:123456789012:outpost/op-0123456789abcdef0"'],
    ['location as EC2\'s text', { location: 'local' as SnapshotLocation }, 'location must be a SnapshotLocation member, got: "local"'],
    ['retention as a plain object', { retention: { count: 7 } as any }, 'retention must be made with Retention.count(), .age(), .calendar() or .anyOf(), got: {"count":7}'],
    ['lock as a plain object', { lock: { mode: 'governance' } as any }, 'lock must be made with SnapshotLock.governance() or SnapshotLock.compliance(), got: {"mode":"governance"}'],
    ['excludeInstanceTags null', { excludeInstanceTags: null as any }, 'excludeInstanceTags must be an object of tag key -> list of values, got: null'],
    ['an excluded instance tag with no values', { excludeInstanceTags: { Backup: [] } }, 'excludeInstanceTags["Backup"] must list at least one accepted value, got: []'],
    ['an excluded instance tag key over 127 characters', { excludeInstanceTags: { ['k'.repeat(128)]: ['x'] } },
      `excludeInstanceTags keys must be 1 to 127 characters, got: "${'k'.repeat(119)}... (128)`],
    ['an excluded instance tag value listed twice', { excludeInstanceTags: { Backup: ['skip', 'skip'] } }, 'excludeInstanceTags["Backup"] lists a value twice, got: ["skip","skip"]'],
    ['excludeInstanceTags that exclude every selected value of a key', { instanceTags: { Backup: ['nightly'] }, excludeInstanceTags: { Backup: ['weekly', 'nightly'] } },
      'excludeInstanceTags["Backup"] excludes every value instanceTags accepts for that key, so no instance could ever be selected, '
        + 'got: ["weekly","nightly"] excluding instanceTags["Backup"] ["nightly"]'],
  ])('GIVEN %s WHEN constructed THEN it fails naming the prop and the value', (_name, props, message) => {
    expect(() => synth(props)).toThrow(new Error(message));
  });

  test.each<[string, Partial<InstanceSnapshotScheduleProps>]>([
    ['excluding some of a key\'s selected values', { instanceTags: { Backup: ['nightly', 'weekly'] }, excludeInstanceTags: { Backup: ['weekly'] } }],
    ['excluding by another key', { instanceTags: { Backup: ['nightly'] }, excludeInstanceTags: { Environment: ['sandbox'] } }],
    ['the limits of goneInstanceRetention and the delete rate', { retention: Retention.count(1), goneInstanceRetention: Duration.days(1), deleteSnapshotsPerSecond: 0.1 }],
    ['the upper limits', { retention: Retention.count(1), goneInstanceRetention: Duration.days(36_600), deleteSnapshotsPerSecond: 1000 }],
    ['location REGIONAL without an Outpost', { location: SnapshotLocation.REGIONAL }],
  ])('GIVEN %s WHEN constructed THEN it is accepted', (_name, props) => {
    expect(() => synth(props)).not.toThrow();
  });
});

describe('worker memory', () => {
  test.each<[string, number, Partial<InstanceSnapshotScheduleProps>]>([
    ['no retention', 512, {}],
    ['a lock only', 512, { lock: SnapshotLock.governance(Duration.days(7)) }],
    ['retention (the prune step holds the schedule\'s snapshot listing)', 1024, { retention: Retention.count(7) }],
  ])('GIVEN %s WHEN synthesized THEN the worker has %p MB', (_name, memory, props) => {
    expect(resource(synth(props).template, 'AWS::Lambda::Function', 'NightlyWorker').properties.MemorySize).toBe(memory);
  });
});

describe('alarm and dashboard', () => {
  const alarmOf = (template: Template) => resource(template, 'AWS::CloudWatch::Alarm', 'NightlyInstancesFailedAlarm').properties;
  const metricNames = (alarm: any) => alarm.Metrics.filter((m: any) => m.MetricStat).map((m: any) => `${m.Id}=${m.MetricStat.Metric.MetricName}`);

  test.each<[string, Partial<InstanceSnapshotScheduleProps>, string, string[]]>([
    ['no lifecycle prop', {}, 'failed + notAttempted', []],
    ['retention', { retention: Retention.count(7) }, 'failed + notAttempted + FILL(pruneFailures, 0)', ['pruneFailures=PruneFailures']],
    ['a lock', { lock: SnapshotLock.governance(Duration.days(7)) }, 'failed + notAttempted + FILL(locksFailed, 0)', ['locksFailed=SnapshotLocksFailed']],
    ['retention and a lock', { retention: Retention.count(7), lock: SnapshotLock.governance(Duration.days(7)) },
      'failed + notAttempted + FILL(pruneFailures, 0) + FILL(locksFailed, 0)', ['pruneFailures=PruneFailures', 'locksFailed=SnapshotLocksFailed']],
  ])('GIVEN %s WHEN synthesized THEN the instances-failed alarm counts what the schedule can fail at, missing data as 0', (_name, props, expression, extra) => {
    const alarm = alarmOf(synth(props).template);
    expect(alarm.Metrics[0]).toEqual({ Id: 'expr_1', Expression: expression, ReturnData: true });
    expect(metricNames(alarm)).toEqual(['failed=InstancesFailed', 'notAttempted=InstancesNotAttempted', ...extra]);
  });

  test('GIVEN retention and a lock WHEN synthesized THEN the alarm\'s description names lock and deletion failures', () => {
    expect(alarmOf(synth({ retention: Retention.count(7), lock: SnapshotLock.governance(Duration.days(7)) }).template).AlarmDescription).toBe(
      'cdk-instance-snapshots: a run left instances without a snapshot set, could not lock new sets, or could not delete sets retention no longer keeps. '
      + 'Its summary log line names them and why: fix that, then run the occurrence again (README, Operations).');
  });

  const RETENTION_METRICS = ['SnapshotSetsDeleted', 'SnapshotsDeleted', 'SnapshotSetsInUse', 'SnapshotSetsLocked', 'PruneFailures', 'SnapshotLocksFailed'];
  test('GIVEN a dashboard and retention WHEN synthesized THEN it has a retention widget with the retention metrics', () => {
    const body = JSON.stringify(resource(synth({ dashboard: true, retention: Retention.count(7) }).template, 'AWS::CloudWatch::Dashboard', 'NightlyDashboard')
      .properties.DashboardBody);
    expect(body).toContain('Retention (sets per run)');
    for (const name of RETENTION_METRICS) expect(body).toContain(`\\"${name}\\"`);
  });

  test('GIVEN a dashboard without retention WHEN synthesized THEN it has no retention widget', () => {
    const body = JSON.stringify(resource(synth({ dashboard: true }).template, 'AWS::CloudWatch::Dashboard', 'NightlyDashboard').properties.DashboardBody);
    expect(body).not.toContain('Retention');
    expect(body).not.toContain('SnapshotSetsDeleted');
  });
});

describe('CalendarRetentionProps', () => {
  test('GIVEN props typed as CalendarRetentionProps WHEN passed to Retention.calendar THEN only the given granularities render', () => {
    const props: CalendarRetentionProps = { weekly: 52, yearly: 10 };
    expect(Retention.calendar(props)._render()).toEqual({ weekly: 52, yearly: 10 });
  });
});
