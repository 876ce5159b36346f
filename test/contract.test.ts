import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { InstanceSnapshotSchedule, InstanceSnapshotScheduleProps } from '../src';
import { FULL_PROPS } from './support/full-props';
import {
  canonicalScheduledTime,
  checkOccurrence,
  InvalidRunRequestError,
  LOCK_RETENTION_DAYS,
  parseOccurrence,
  parseRunRequest,
  REQUEST_VERSION,
  requestSha256,
  show,
  SnapshotRunRequest,
} from '../src/private/request-contract';

/** A CloudFormation value with its tokens replaced by a fixed text (the contract never holds one). */
function resolved(value: any): string {
  if (typeof value === 'string') return value;
  if (value['Fn::Join']) return value['Fn::Join'][1].map(resolved).join(value['Fn::Join'][0]);
  return 'TOKEN';
}

interface Synthesized {
  /** The `request` text of each worker task of the workflow, by state name. */
  readonly requests: Record<string, string>;
  /** The worker's environment. */
  readonly workerEnvironment: Record<string, string>;
  /** The StartExecution call EventBridge Scheduler would make, with its context attributes filled in. */
  readonly startExecution: { Name: string; Input: string };
}

function synthesize(props: InstanceSnapshotScheduleProps): Synthesized {
  const stack = new Stack(new App(), 'ContractStack');
  new InstanceSnapshotSchedule(stack, 'Schedule', props);
  const template = Template.fromStack(stack);
  const [stateMachine] = Object.values(template.findResources('AWS::StepFunctions::StateMachine'));
  const definition = JSON.parse(resolved(stateMachine.Properties.DefinitionString));
  // The worker tasks pass their parameters as the event (payloadResponseOnly).
  const requests = Object.fromEntries(Object.entries<any>(definition.States)
    .filter(([, state]) => state.Parameters?.request !== undefined)
    .map(([name, state]) => [name, state.Parameters.request]));
  const [worker] = Object.values(template.findResources('AWS::Lambda::Function'));
  const [schedule] = Object.values(template.findResources('AWS::Scheduler::Schedule'));
  const startExecution = JSON.parse(resolved(schedule.Properties.Target.Input)
    .replace(/<aws\.scheduler\.execution-id>/g, 'd32c5kddcf5bb8c3')
    .replace(/<aws\.scheduler\.scheduled-time>/g, '2026-11-24T02:30:00Z'));
  return { requests, workerEnvironment: worker.Properties.Environment.Variables, startExecution };
}

function violations(parse: () => unknown): string[] {
  try {
    parse();
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidRunRequestError);
    return (e as InvalidRunRequestError).violations.map((v) => `${v.prop}: ${v.message}`);
  }
  throw new Error('the value was accepted');
}

describe('what the construct synthesizes is what the worker accepts', () => {
  test('GIVEN default props WHEN the worker parses the request of each worker task THEN it gets the defaults, the same in every task', () => {
    const { requests } = synthesize({ instanceTags: { Backup: ['nightly'] } });

    expect(Object.keys(requests).sort()).toEqual(['Prepare', 'SnapshotStep']);
    for (const text of Object.values(requests)) {
      expect(parseRunRequest(JSON.parse(text))).toEqual({
        version: REQUEST_VERSION,
        scheduleId: 'ContractStack/Schedule',
        instanceTags: { Backup: ['nightly'] },
        excludeBootVolume: false,
        excludeDataVolumeIds: [],
        excludeDataVolumeTags: {},
        outpostArn: undefined,
        description: undefined,
        snapshotTags: {},
        copyTagsFromSource: undefined,
        dryRun: false,
        createSnapshotsPerSecond: 5,
      });
    }
  });

  test('GIVEN every prop WHEN the worker parses the request THEN every option arrives unchanged', () => {
    const { requests } = synthesize({ ...FULL_PROPS, dryRun: true, createSnapshotsPerSecond: 20 });

    expect(parseRunRequest(JSON.parse(requests.SnapshotStep))).toEqual(expect.objectContaining({
      scheduleId: 'backups/nightly-prod',
      excludeInstanceTags: { Backup: ['never'], Lifecycle: ['decommissioning'] },
      lock: { mode: 'governance', durationDays: 7 },
      retention: { count: 7, daily: 14, weekly: 8, monthly: 12, timeZone: 'Europe/Berlin', goneInstanceSeconds: 30 * 86_400 },
      deleteSnapshotsPerSecond: 10,
      instanceTags: { Backup: ['nightly', 'always'], Environment: ['prod'] },
      excludeBootVolume: true,
      excludeDataVolumeIds: ['vol-0123456789abcdef0', 'vol-0fedcba9876543210'],
      excludeDataVolumeTags: { Scratch: ['true'], Backup: ['never'] },
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
      description: 'nightly crash-consistent set',
      snapshotTags: { CostCenter: '42', Team: 'platform' },
      copyTagsFromSource: 'volume',
      dryRun: true,
      createSnapshotsPerSecond: 20,
    }));
  });

  test('GIVEN a synthesized schedule THEN the worker\'s REQUEST_SHA256 is the hash of the request its workflow sends', () => {
    const { requests, workerEnvironment } = synthesize({ ...FULL_PROPS, createSnapshotsPerSecond: 20 });

    expect(workerEnvironment.REQUEST_SHA256).toBe(requestSha256(parseRunRequest(JSON.parse(requests.SnapshotStep))));
  });

  test('GIVEN the scheduler\'s StartExecution with its context attributes filled in WHEN Prepare parses it THEN it names the occurrence', () => {
    const { startExecution } = synthesize({ instanceTags: { Backup: ['nightly'] } });

    expect(parseOccurrence('ContractStack/Schedule', JSON.parse(startExecution.Input), startExecution.Name, 0)).toEqual({
      scheduledTime: '2026-11-24T02:30:00Z',
      executionName: 'd32c5kddcf5bb8c3',
      lockKey: 'ContractStack/Schedule#2026-11-24T02:30:00Z',
      expiresAt: String(Date.parse('2026-11-24T02:30:00Z') / 1000 + LOCK_RETENTION_DAYS * 86_400),
    });
  });
});

describe('parseRunRequest rejects requests it cannot honour, naming every field', () => {
  const valid = { version: REQUEST_VERSION, scheduleId: 'S/N', instanceTags: { Backup: ['nightly'] } };

  test('GIVEN the smallest valid request THEN the defaults are filled in', () => {
    expect(parseRunRequest(valid)).toEqual(expect.objectContaining({
      excludeBootVolume: false, excludeDataVolumeIds: [], snapshotTags: {}, dryRun: false,
    }));
    expect(parseRunRequest(valid).createSnapshotsPerSecond).toBeUndefined();
  });

  test.each<[string, unknown, string[]]>([
    ['not an object', 'hello', ['event: the event must be a JSON object, got: "hello"']],
    ['a version 1 request (execution id and scheduled time inside)', { ...valid, version: 1, executionId: 'e', scheduledTime: '2026-11-24T02:30:00Z' }, [
      `request: the request has fields no version ${REQUEST_VERSION} request has, got: ["executionId","scheduledTime"]`, `version: version must be ${REQUEST_VERSION}, got: 1`,
    ]],
    ['a version from the future', { ...valid, version: REQUEST_VERSION + 1 }, [`version: version must be ${REQUEST_VERSION}, got: ${REQUEST_VERSION + 1}`]],
    ['no schedule id', { ...valid, scheduleId: undefined }, ['scheduleId: scheduleId must be a non-empty string, got: undefined']],
    ['a schedule id with white space around it', { ...valid, scheduleId: ' S/N' }, ['scheduleId: scheduleId must not start or end with white space, got: " S/N"']],
    ['no instance tags', { ...valid, instanceTags: undefined }, ['instanceTags: instanceTags must be an object of tag key -> values, got: undefined']],
    ['an empty tag value list', { ...valid, instanceTags: { Backup: [] } }, ['instanceTags: instanceTags["Backup"] must list at least one accepted value, got: []']],
    ['a non-boolean dryRun', { ...valid, dryRun: 'yes' }, ['dryRun: dryRun must be a boolean, got: "yes"']],
    ['excluded volume tags that are not a map', { ...valid, excludeDataVolumeTags: ['Scratch'] }, ['excludeDataVolumeTags: excludeDataVolumeTags must be an object of tag key -> values, got: ["Scratch"]']],
    ['a wrong copyTagsFromSource', { ...valid, copyTagsFromSource: 'instance' }, ['copyTagsFromSource: copyTagsFromSource must be "volume", got: "instance"']],
    ['a snapshot tag of the library\'s own', { ...valid, snapshotTags: { 'cdk-instance-snapshots:schedule': 'x' } }, [
      'snapshotTags: snapshotTags keys must not start with "cdk-instance-snapshots:" (the library\'s own tags), got: "cdk-instance-snapshots:schedule"',
    ]],
    ['a bad volume id and a bad outpost', { ...valid, excludeDataVolumeIds: ['v'], outpostArn: 'x' }, [
      'excludeDataVolumeIds: excludeDataVolumeIds must hold EBS volume ids like "vol-0123456789abcdef0", got: "v"',
      'outpostArn: outpostArn must be an outpost ARN like "arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0", got: "x"',
    ]],
    ['a Location EC2 does not know', { ...valid, location: 'zonal' }, [
      'location: location must be one of ["regional","local"] (EC2\'s Location for instances in Local Zones), got: "zonal"',
    ]],
    ['a Location with an Outpost', { ...valid, location: 'local', outpostArn: 'arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0' }, [
      'location: location is for instances in Local Zones and does not combine with outpostArn, got: location "local" and outpostArn '
        + '"arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0"',
    ]],
    ['excluded instance tags without values', { ...valid, excludeInstanceTags: { Tier: [] } }, [
      'excludeInstanceTags: excludeInstanceTags["Tier"] must list at least one accepted value, got: []',
    ]],
    ['a lock of 0 days in a mode EC2 does not have', { ...valid, lock: { mode: 'legal-hold', durationDays: 0 } }, [
      'lock: lock mode must be one of ["governance","compliance"], got: "legal-hold"',
      'lock: lock duration must be a whole number of days from 1 to 36500 (EC2\'s range), got: 0 days',
    ]],
    ['a governance lock with a cool-off', { ...valid, lock: { mode: 'governance', durationDays: 7, coolOffHours: 2 } }, [
      'lock: lock cool-off period is for compliance mode only (EC2 rejects it in governance mode), got: 2 hours with mode "governance"',
    ]],
    ['a compliance lock with 73 hours of cool-off', { ...valid, lock: { mode: 'compliance', durationDays: 7, coolOffHours: 73 } }, [
      'lock: lock cool-off period must be a whole number of hours from 1 to 72 (EC2\'s range), got: 73 hours',
    ]],
    ['a retention without a rule', { ...valid, retention: { timeZone: 'Etc/UTC', goneInstanceSeconds: 86_400 } }, [
      'retention: retention must hold at least one rule (count, age or a calendar rule), got: {"timeZone":"Etc/UTC","goneInstanceSeconds":86400}',
    ]],
    ['a retention of 1001 sets in an unknown zone, gone instances kept an hour', { ...valid, retention: { count: 1001, timeZone: 'Mars/Olympus', goneInstanceSeconds: 3600 } }, [
      'retention: retention count must be a whole number of sets from 1 to 1000, got: 1001',
      'retention: retention time zone must be an IANA time zone such as "Europe/Berlin", got: "Mars/Olympus"',
      'retention: retention for gone instances must be a whole number of seconds from 86400 (1 day) to 100 years, got: 3600 seconds',
    ]],
    ['a calendar rule of 0 days', { ...valid, retention: { daily: 0, timeZone: 'Etc/UTC', goneInstanceSeconds: 86_400 } }, [
      'retention: retention daily must be a whole number from 1 to 10000, got: 0',
    ]],
    ['a DeleteSnapshot rate of 0', { ...valid, deleteSnapshotsPerSecond: 0 }, [
      'deleteSnapshotsPerSecond: deleteSnapshotsPerSecond must be a number of calls per second above 0 and at most 1000 (EC2\'s default is 5), got: 0',
    ]],
    ...[0, -1, 1001, '5'].map((rate): [string, unknown, string[]] => [`a CreateSnapshots rate of ${JSON.stringify(rate)}`, { ...valid, createSnapshotsPerSecond: rate }, [
      `createSnapshotsPerSecond: createSnapshotsPerSecond must be a number of calls per second above 0 and at most 1000 (EC2's default is 5), got: ${JSON.stringify(rate)}`,
    ]]),
  ])('%s', (_name, event, expected) => {
    expect(violations(() => parseRunRequest(event))).toEqual(expected);
  });

  test('GIVEN a 100,000-character value THEN the error shows its start, not the whole value', () => {
    const description = 'x'.repeat(100_000);

    const [message] = violations(() => parseRunRequest({ ...valid, description }));

    expect(message).toContain('description must be at most 255 characters');
    expect(message).toContain('(100000)');
    expect(message.length).toBeLessThan(400);
  });
});

describe('requestSha256', () => {
  const request: SnapshotRunRequest = parseRunRequest({ version: REQUEST_VERSION, scheduleId: 'S/N', instanceTags: { Backup: ['nightly'], Env: ['prod'] }, snapshotTags: { A: '1', B: '2' } });

  test('GIVEN the same request with its keys in another order THEN the hash is the same', () => {
    const reordered = JSON.parse(JSON.stringify({ ...request, snapshotTags: { B: '2', A: '1' }, instanceTags: { Env: ['prod'], Backup: ['nightly'] } }));
    expect(requestSha256(reordered)).toBe(requestSha256(request));
    expect(requestSha256(request)).toMatch(/^[0-9a-f]{64}$/);
  });

  test.each<[string, Partial<SnapshotRunRequest>]>([
    ['another schedule', { scheduleId: 'S/M' }],
    ['a dry run', { dryRun: true }],
    ['another tag value', { instanceTags: { Backup: ['weekly'], Env: ['prod'] } }],
    ['tag values in another order', { instanceTags: { Backup: ['nightly'], Env: ['prod', 'dev'] } }],
    ['a rate', { createSnapshotsPerSecond: 5 }],
  ])('GIVEN %s THEN the hash differs', (_name, change) => {
    expect(requestSha256({ ...request, ...change })).not.toBe(requestSha256(request));
  });
});

describe('canonicalScheduledTime', () => {
  test.each<[string, string | undefined]>([
    ['2026-11-24T02:30:00Z', '2026-11-24T02:30:00Z'],
    ['2026-11-24T02:30:00.000Z', '2026-11-24T02:30:00Z'],
    ['2026-11-24T02:30:00.5Z', '2026-11-24T02:30:00.500Z'],
    ['2026-11-24T02:30:00.123456789Z', '2026-11-24T02:30:00.123Z'],
    ['2028-02-29T00:00:00Z', '2028-02-29T00:00:00Z'],
    ['2026-02-30T00:00:00Z', undefined],
    ['2026-02-29T00:00:00Z', undefined],
    ['2026-11-31T00:00:00Z', undefined],
    ['2026-11-24T24:00:00Z', undefined],
    ['2026-11-24T02:60:00Z', undefined],
    ['2026-11-24T02:30:60Z', undefined],
    ['2026-11-24T02:30:00+01:00', undefined],
    ['2026-11-24T02:30:00', undefined],
    ['2026-11-24 02:30:00Z', undefined],
    ['2026-11-24T02:30Z', undefined],
    ['2026-11-24', undefined],
    ['1795487400', undefined],
    ['', undefined],
    ['<aws.scheduler.scheduled-time>', undefined],
  ])('canonicalScheduledTime(%j) is %j', (value, expected) => {
    expect(canonicalScheduledTime(value)).toBe(expected);
  });
});

describe('parseOccurrence', () => {
  const time = '2026-11-24T02:30:00Z';
  /** Prepare runs 5 s after the scheduled time. */
  const preparedAt = Date.parse('2026-11-24T02:30:05Z');
  const expiresAt = String(preparedAt / 1000 + LOCK_RETENTION_DAYS * 86_400);

  test.each<[string, unknown, string]>([
    ['a scheduled run', { scheduledTime: time, schedulerExecutionId: 'd32c5kddcf5bb8c3' }, 'd32c5kddcf5bb8c3'],
    ['a run started by hand', { scheduledTime: time }, 'manual-rerun-1'],
    ['the same time with milliseconds', { scheduledTime: '2026-11-24T02:30:00.000Z' }, 'other_name-2'],
  ])('GIVEN %s THEN the occurrence is the schedule and the canonical time, with a lock kept beyond the execution history', (_name, input, executionName) => {
    expect(parseOccurrence('Stack/Nightly', input, executionName, preparedAt)).toEqual({
      scheduledTime: time,
      executionName,
      lockKey: `Stack/Nightly#${time}`,
      expiresAt,
    });
  });

  test('GIVEN an old occurrence started by hand today WHEN it is prepared THEN its lock is kept from today, not from the scheduled time', () => {
    const today = Date.parse('2027-06-01T12:00:00Z');
    const old = parseOccurrence('Stack/Nightly', { scheduledTime: '2026-01-01T00:00:00Z' }, 'rerun', today);
    expect(old.expiresAt).toBe(String(today / 1000 + LOCK_RETENTION_DAYS * 86_400));
  });

  test('GIVEN a future occurrence WHEN it is prepared early THEN its lock is kept from the scheduled time', () => {
    const early = parseOccurrence('Stack/Nightly', { scheduledTime: '2027-01-01T00:00:00Z' }, 'early', Date.parse('2026-12-01T00:00:00Z'));
    expect(early.expiresAt).toBe(String(Date.parse('2027-01-01T00:00:00Z') / 1000 + LOCK_RETENTION_DAYS * 86_400));
  });

  const long = 'a'.repeat(300);
  test.each<[string, unknown, unknown, string[]]>([
    ['an input that is not an object', 'x', 'e', ['input: the execution input must be a JSON object like {"scheduledTime":"2026-11-24T02:30:00Z"}, got: "x"']],
    ['an input that is a list', [time], 'e', ['input: the execution input must be a JSON object like {"scheduledTime":"2026-11-24T02:30:00Z"}, got: ["2026-11-24T02:30:00Z"]']],
    ['no scheduled time', {}, 'e', ['scheduledTime: scheduledTime must be a string of 1 to 256 characters, got: undefined']],
    ['a scheduled time that is a number', { scheduledTime: 1795487400 }, 'e', ['scheduledTime: scheduledTime must be a string of 1 to 256 characters, got: 1795487400']],
    ['the literal scheduled-time placeholder', { scheduledTime: '<aws.scheduler.scheduled-time>' }, 'e', [
      'scheduledTime: scheduledTime holds an EventBridge Scheduler placeholder that was not filled in, got: "<aws.scheduler.scheduled-time>"',
    ]],
    ['a day that does not exist', { scheduledTime: '2026-02-30T02:30:00Z' }, 'e', ['scheduledTime: scheduledTime must be a UTC timestamp like "2026-11-24T02:30:00Z", got: "2026-02-30T02:30:00Z"']],
    ['a local time', { scheduledTime: '2026-11-24T03:30:00+01:00' }, 'e', ['scheduledTime: scheduledTime must be a UTC timestamp like "2026-11-24T02:30:00Z", got: "2026-11-24T03:30:00+01:00"']],
    ['the literal execution-id placeholder as the execution name', { scheduledTime: time }, '<aws.scheduler.execution-id>', [
      'executionName: executionName holds an EventBridge Scheduler placeholder that was not filled in, got: "<aws.scheduler.execution-id>"',
    ]],
    ['the literal execution-id placeholder in the input', { scheduledTime: time, schedulerExecutionId: '<aws.scheduler.execution-id>' }, 'e', [
      'schedulerExecutionId: schedulerExecutionId holds an EventBridge Scheduler placeholder that was not filled in, got: "<aws.scheduler.execution-id>"',
    ]],
    ['a 300-character execution id in the input', { scheduledTime: time, schedulerExecutionId: long }, 'e', [
      `schedulerExecutionId: schedulerExecutionId must be a string of 1 to 256 characters, got: ${show(long)}`,
    ]],
    ['a 300-character execution name', { scheduledTime: time }, long, [`executionName: executionName must be a string of 1 to 80 characters, got: ${show(long)}`]],
    ['an execution name Step Functions would not accept', { scheduledTime: time }, 'run 1:a', ['executionName: executionName must be a Step Functions execution name, got: "run 1:a"']],
    ['no execution name', { scheduledTime: time }, undefined, ['executionName: executionName must be a string of 1 to 80 characters, got: undefined']],
    ['unknown input fields', { scheduledTime: time, instanceTags: { Backup: ['all'] }, dryRun: false }, 'e', [
      'input: the execution input takes only scheduledTime and schedulerExecutionId, got: ["instanceTags","dryRun"]',
    ]],
  ])('GIVEN %s THEN it is rejected naming the field', (_name, input, executionName, expected) => {
    expect(violations(() => parseOccurrence('Stack/Nightly', input, executionName))).toEqual(expected);
  });

  test('GIVEN a bad schedule id THEN it is rejected too', () => {
    expect(violations(() => parseOccurrence('', { scheduledTime: time }, 'e'))).toEqual([
      'scheduleId: scheduleId must be 1 to 256 characters (it is the snapshots\' "cdk-instance-snapshots:schedule" tag value), got: ""',
    ]);
  });

  test('GIVEN a 100,000-character execution id THEN the error does not echo it in full', () => {
    const [message] = violations(() => parseOccurrence('Stack/Nightly', { scheduledTime: time, schedulerExecutionId: 'x'.repeat(100_000) }, 'e'));

    expect(message.length).toBeLessThan(400);
    expect(message).toMatch(/x{100}\.\.\.$/);
  });
});

describe('checkOccurrence', () => {
  const occurrence = parseOccurrence('Stack/Nightly', { scheduledTime: '2026-11-24T02:30:00Z' }, 'exec-1');

  test('GIVEN the occurrence Prepare returned, through JSON THEN it is accepted as is', () => {
    expect(checkOccurrence('Stack/Nightly', JSON.parse(JSON.stringify(occurrence)))).toEqual(occurrence);
  });

  test.each<[string, unknown]>([
    ['another lock key', { ...occurrence, lockKey: 'Stack/Nightly#2026-11-25T02:30:00Z' }],
    ['an expiry that is not a time', { ...occurrence, expiresAt: 'never' }],
    ['another scheduled time', { ...occurrence, scheduledTime: '2026-11-25T02:30:00Z' }],
  ])('GIVEN an occurrence with %s THEN it is rejected', (_name, value) => {
    expect(violations(() => checkOccurrence('Stack/Nightly', value))).toEqual([
      `occurrence: the occurrence does not match its scheduled time and schedule, got: ${show(value)}`,
    ]);
  });

  test('GIVEN another schedule\'s occurrence THEN it is rejected', () => {
    expect(violations(() => checkOccurrence('Stack/Weekly', occurrence))).toHaveLength(1);
  });

  test.each<[string, unknown]>([
    ['no occurrence', undefined],
    ['an occurrence without a name', { ...occurrence, executionName: undefined }],
    ['an occurrence with a placeholder time', { ...occurrence, scheduledTime: '<aws.scheduler.scheduled-time>' }],
  ])('GIVEN %s THEN it is rejected', (_name, value) => {
    expect(() => checkOccurrence('Stack/Nightly', value)).toThrow(InvalidRunRequestError);
  });
});

describe('show', () => {
  test.each<[unknown, string]>([
    [undefined, 'undefined'],
    ['a', '"a"'],
    [{ a: [1] }, '{"a":[1]}'],
    ['x'.repeat(100_000), `"${'x'.repeat(119)}...`],
    [{ pending: Array(10_000).fill('i-0123456789abcdef0') }, `${JSON.stringify({ pending: Array(10_000).fill('i-0123456789abcdef0') }).slice(0, 120)}...`],
  ])('show(%#) is %j: at most 120 characters of the value', (value, expected) => {
    expect(show(value)).toBe(expected);
  });
});
