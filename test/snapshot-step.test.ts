/**
 * runSnapshotStep with aws-sdk-client-mock: one bounded step of a run, its requests to EC2, how it
 * counts outcomes, and the cursor it hands to the workflow.
 */
import {
  CreateSnapshotsCommand,
  DescribeInstancesCommand,
  DescribeLockedSnapshotsCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  EC2Client,
  EC2ServiceException,
  Instance,
  LockSnapshotCommand,
  Snapshot,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { CapturedLog, instanceId, LogLine, runRequest } from './support/fault-harness';
import { newCursor, parseCursor, RunCursor } from '../lambda/ledger';
import { DEFAULT_SETTINGS, RunSettings, runSnapshotStep, StepEnvironment } from '../lambda/snapshot-step';
import {
  INSTANCE_ID_TAG,
  parseOccurrence,
  SCHEDULE_TAG,
  SCHEDULED_TIME_TAG,
  SnapshotRunRequest,
} from '../src/private/request-contract';

const ec2Mock = mockClient(EC2Client);

const REQUEST: SnapshotRunRequest = runRequest({ snapshotTags: {} });
const SCHEDULED_TIME = '2026-11-24T02:30:00Z';
const OCCURRENCE = parseOccurrence(REQUEST.scheduleId, { scheduledTime: SCHEDULED_TIME }, 'exec-0001');

/** Small delays everywhere: a step with retries and looks takes milliseconds. */
const SETTINGS: RunSettings = {
  ...DEFAULT_SETTINGS,
  concurrency: 4,
  perVolumeRetryDelayMs: 5,
  throttleBackoffBaseMs: 1,
  throttleBackoffMaxMs: 4,
  settleWindowMs: 20,
  lookIntervalMs: 5,
  reserveMs: 0,
};

/** Instance ids in id order: I[1] < I[2] < ... */
const I = Array.from({ length: 12 }, (_, n) => instanceId(n));

interface InstanceOptions {
  tags?: Record<string, string>;
  volumes?: string[];
  outpostArn?: string;
  state?: string;
  zone?: string;
}

function instance(id: string, options: InstanceOptions = {}): Instance {
  const volumes = options.volumes ?? [`vol-${id.slice(2)}`];
  return {
    InstanceId: id,
    State: { Name: (options.state ?? 'running') as any },
    RootDeviceName: '/dev/xvda',
    Tags: Object.entries(options.tags ?? { Backup: 'nightly' }).map(([Key, Value]) => ({ Key, Value })),
    BlockDeviceMappings: volumes.map((v, i) => ({ DeviceName: i === 0 ? '/dev/xvda' : `/dev/sd${String.fromCharCode(101 + i)}`, Ebs: { VolumeId: v } })),
    OutpostArn: options.outpostArn,
    Placement: { AvailabilityZone: options.zone ?? 'eu-central-1a' },
  };
}

function listing(...instances: Instance[]) {
  ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: instances }] });
}

/** A snapshot of the set of `id` for an occurrence (by default the test's). */
function setSnapshot(id: string, tags: { schedule?: string; scheduledTime?: string } = {}): Snapshot {
  return {
    SnapshotId: `snap-${id.slice(2)}`,
    Tags: [
      { Key: SCHEDULE_TAG, Value: tags.schedule ?? REQUEST.scheduleId },
      { Key: SCHEDULED_TIME_TAG, Value: tags.scheduledTime ?? SCHEDULED_TIME },
      { Key: INSTANCE_ID_TAG, Value: id },
    ],
  };
}

function ec2Error(name: string, status = 400): EC2ServiceException {
  return new EC2ServiceException({ name, $fault: status >= 500 ? 'server' : 'client', message: `${name} happened`, $metadata: { httpStatusCode: status, attempts: 1 } });
}

function environment(overrides: Partial<StepEnvironment> = {}): StepEnvironment & { log: CapturedLog } {
  const client = new EC2Client({ region: 'eu-central-1' });
  return {
    ec2: client, ec2Create: client, log: new CapturedLog(), settings: SETTINGS, createSnapshotsPerSecond: 5, remainingMs: () => 900_000, ...overrides,
  } as StepEnvironment & { log: CapturedLog };
}

/** Runs one step; the cursor goes through JSON and parseCursor, as it does between workflow states. */
async function step(request: SnapshotRunRequest = REQUEST, cursor: RunCursor = newCursor(Date.now()), overrides: Partial<StepEnvironment> = {}) {
  const env = environment(overrides);
  const next = await runSnapshotStep(request, OCCURRENCE, parseCursor(JSON.parse(JSON.stringify(cursor))), env);
  return { cursor: parseCursor(JSON.parse(JSON.stringify(next))), lines: env.log.lines };
}

/** instance id -> outcome, from the log lines of one or more steps. */
function outcomes(lines: LogLine[]): Record<string, unknown> {
  return Object.fromEntries(lines.filter((l) => l.attributes.outcome).map((l) => [l.attributes.instanceId, l.attributes.outcome]));
}

const createdIds = () => ec2Mock.commandCalls(CreateSnapshotsCommand).map((c) => c.args[0].input.InstanceSpecification!.InstanceId);
const ZERO = { selected: 0, created: 0, alreadyDone: 0, dryRunOk: 0, skipped: 0, failed: 0, notAttempted: 0, lockFailed: 0 };

beforeEach(() => {
  ec2Mock.reset();
  ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
  ec2Mock.on(CreateSnapshotsCommand).callsFake((input) => Promise.resolve({
    Snapshots: [{ SnapshotId: `snap-${input.InstanceSpecification.InstanceId.slice(2)}`, VolumeId: 'vol-1' }],
  }));
});

describe('listing', () => {
  test('GIVEN several DescribeInstances pages WHEN a step runs THEN every page is read and every instance gets one call', async () => {
    ec2Mock.on(DescribeInstancesCommand)
      .resolvesOnce({ Reservations: [{ Instances: [instance(I[1]), instance(I[2])] }], NextToken: 'p2' })
      .resolvesOnce({ Reservations: [{ Instances: [instance(I[3])] }, { Instances: [instance(I[4])] }], NextToken: 'p3' })
      .resolvesOnce({ Reservations: [{ Instances: [instance(I[5])] }] });

    const { cursor } = await step();

    expect(ec2Mock.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input.NextToken)).toEqual([undefined, 'p2', 'p3']);
    expect(createdIds().sort()).toEqual(I.slice(1, 6));
    expect(cursor.counts).toEqual({ ...ZERO, selected: 5, created: 5 });
    expect(cursor.apiCalls).toEqual({ DescribeInstances: 3, DescribeSnapshots: 1, CreateSnapshots: 5 });
  });

  test('GIVEN tag selection WHEN listing THEN one exact tag: filter per key, the snapshot-worthy and transitional states, and the largest page', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });

    await step({ ...REQUEST, instanceTags: { Backup: ['nightly', 'a*b?'], Env: ['prod'] } });

    expect(ec2Mock).toHaveReceivedCommandWith(DescribeInstancesCommand, {
      Filters: [
        { Name: 'tag:Backup', Values: ['nightly', 'a\\*b\\?'] },
        { Name: 'tag:Env', Values: ['prod'] },
        { Name: 'instance-state-name', Values: ['running', 'stopped', 'pending', 'stopping'] },
      ],
      MaxResults: 1000,
    });
  });

  test('GIVEN an instance that EC2 returned but whose tags do not match exactly WHEN a step runs THEN it is not selected', async () => {
    listing(instance(I[1]), instance(I[2], { tags: { Backup: 'Nightly' } }), instance(I[3], { tags: {} }));

    const { cursor } = await step();

    expect(createdIds()).toEqual([I[1]]);
    expect(cursor.counts.selected).toBe(1);
  });

  test('GIVEN an instance listed on two pages WHEN a step runs THEN it counts once and gets one call', async () => {
    ec2Mock.on(DescribeInstancesCommand)
      .resolvesOnce({ Reservations: [{ Instances: [instance(I[1]), instance(I[2])] }], NextToken: 'p2' })
      .resolvesOnce({ Reservations: [{ Instances: [instance(I[2], { state: 'stopped' })] }] });

    const { cursor } = await step();

    expect(createdIds().sort()).toEqual([I[1], I[2]]);
    expect(cursor.counts.selected).toBe(2);
  });

  test('GIVEN instances listed out of id order WHEN a step runs with concurrency 1 THEN they are called in instance-id order', async () => {
    listing(instance(I[3]), instance(I[1]), instance(I[5]), instance(I[2]), instance(I[4]));

    await step(REQUEST, newCursor(0), { settings: { ...SETTINGS, concurrency: 1 } });

    expect(createdIds()).toEqual(I.slice(1, 6));
  });

  test('GIVEN no instance carries the tags WHEN a step runs THEN the run succeeds with a warning, no call and no failure', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });

    const { cursor, lines } = await step();

    expect(cursor).toEqual(expect.objectContaining({ phase: 'done', result: 'succeeded', counts: ZERO }));
    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotsCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(DescribeSnapshotsCommand);
    expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', message: 'no instance carries the selection tags: nothing to snapshot' }));
  });

  test.each([
    ['pending', 'InstancePending'],
    ['stopping', 'InstanceStopping'],
  ])('GIVEN a %s instance WHEN a step runs THEN it is not attempted with %s, not called, and a retry pass follows', async (state, code) => {
    listing(instance(I[1]), instance(I[2], { state }));

    const { cursor, lines } = await step();

    expect(createdIds()).toEqual([I[1]]);
    expect(cursor).toEqual(expect.objectContaining({ phase: 'wait', pass: 1, failuresByCode: { [code]: 1 } }));
    expect(cursor.counts).toEqual({ ...ZERO, selected: 2, created: 1, notAttempted: 1 });
    expect(cursor.failures).toEqual([{ instanceId: I[2], outcome: 'not-attempted', code, message: expect.stringContaining(`the instance is ${state}`) }]);
    expect(outcomes(lines)).toEqual({ [I[1]]: 'created', [I[2]]: 'not-attempted' });
  });
});

describe('CreateSnapshots requests', () => {
  test('GIVEN every option WHEN a step runs THEN each is mapped into the request with the library\'s tags of the occurrence', async () => {
    const volumes = ['vol-0000000000000000a', 'vol-0000000000000000b', 'vol-0000000000000000c'];
    listing(instance(I[1], { volumes }));

    await step({
      ...REQUEST,
      excludeBootVolume: true,
      excludeDataVolumeIds: ['vol-0000000000000000b', 'vol-0000000000000000f'],
      description: 'nightly set',
      snapshotTags: { CostCenter: '42' },
      copyTagsFromSource: 'volume',
    });

    expect(ec2Mock).toHaveReceivedCommandWith(CreateSnapshotsCommand, {
      InstanceSpecification: { InstanceId: I[1], ExcludeBootVolume: true, ExcludeDataVolumeIds: ['vol-0000000000000000b'] },
      Description: 'nightly set',
      CopyTagsFromSource: 'volume',
      DryRun: false,
      TagSpecifications: [{
        ResourceType: 'snapshot',
        Tags: [
          { Key: 'CostCenter', Value: '42' },
          { Key: 'cdk-instance-snapshots:schedule', Value: 'Stack/Nightly' },
          { Key: 'cdk-instance-snapshots:execution-id', Value: 'exec-0001' },
          { Key: 'cdk-instance-snapshots:instance-id', Value: I[1] },
          { Key: 'cdk-instance-snapshots:scheduled-time', Value: SCHEDULED_TIME },
        ],
      }],
    });
    expect(ec2Mock.commandCalls(CreateSnapshotsCommand)[0].args[0].input.OutpostArn).toBeUndefined();
  });

  test('GIVEN an Outpost ARN WHEN a step runs THEN it is sent only for instances on that Outpost', async () => {
    const outpostArn = 'arn:aws:outposts:eu-central-1:123456789012:outpost/op-0123456789abcdef0';
    listing(instance(I[1], { outpostArn }), instance(I[2]));

    await step({ ...REQUEST, outpostArn });

    const byInstance = Object.fromEntries(ec2Mock.commandCalls(CreateSnapshotsCommand)
      .map((c) => [c.args[0].input.InstanceSpecification!.InstanceId, c.args[0].input.OutpostArn]));
    expect(byInstance).toEqual({ [I[1]]: outpostArn, [I[2]]: undefined });
  });

  test('GIVEN an excluded volume id that is an instance\'s root WHEN a step runs THEN its boot volume is excluded instead, with a warning', async () => {
    listing(instance(I[1], { volumes: ['vol-0000000000000000a', 'vol-0000000000000000b'] }));

    const { lines } = await step({ ...REQUEST, excludeDataVolumeIds: ['vol-0000000000000000a'] });

    expect(ec2Mock).toHaveReceivedCommandWith(CreateSnapshotsCommand, { InstanceSpecification: { InstanceId: I[1], ExcludeBootVolume: true } });
    expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', message: expect.stringContaining(`vol-0000000000000000a, the root volume of ${I[1]}`) }));
  });

  test('GIVEN an instance whose every volume is excluded WHEN a step runs THEN it is skipped with the reason, not called, and the run succeeds', async () => {
    listing(instance(I[1], { volumes: ['vol-0000000000000000a'] }));

    const { cursor, lines } = await step({ ...REQUEST, excludeBootVolume: true });

    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotsCommand);
    expect(cursor.counts).toEqual({ ...ZERO, selected: 1, skipped: 1 });
    expect(cursor.result).toBe('succeeded');
    expect(lines).toContainEqual(expect.objectContaining({ attributes: expect.objectContaining({ instanceId: I[1], outcome: 'skipped', code: 'NoVolumesToSnapshot' }) }));
  });
});

describe('excluding data volumes by tag', () => {
  const [ROOT, DATA, SCRATCH, TMP] = ['vol-0000000000000000a', 'vol-0000000000000000b', 'vol-0000000000000000c', 'vol-0000000000000000d'];
  const tagged = (VolumeId: string, Key: string, Value: string) => ({ VolumeId, Tags: [{ Key, Value }] });

  test('GIVEN volumes carrying any of the tags WHEN a step runs THEN one paginated look-up per key, and they are left out of the request', async () => {
    listing(instance(I[1], { volumes: [ROOT, DATA, SCRATCH, TMP] }));
    ec2Mock.on(DescribeVolumesCommand, { Filters: [{ Name: 'tag:Scratch', Values: ['true'] }] })
      .resolvesOnce({ Volumes: [tagged(SCRATCH, 'Scratch', 'true')], NextToken: 'next' })
      .resolvesOnce({ Volumes: [tagged('vol-0000000000000000f', 'Scratch', 'true')] });
    // EC2's filter is a first pass: a volume whose tag does not match exactly stays in.
    ec2Mock.on(DescribeVolumesCommand, { Filters: [{ Name: 'tag:Backup', Values: ['never'] }] })
      .resolves({ Volumes: [tagged(TMP, 'Backup', 'never'), tagged(DATA, 'Backup', 'Never')] });

    const { cursor } = await step({ ...REQUEST, excludeDataVolumeTags: { Scratch: ['true'], Backup: ['never'] } });

    expect(ec2Mock.commandCalls(DescribeVolumesCommand).map((c) => [c.args[0].input.MaxResults, c.args[0].input.NextToken])).toEqual([
      [500, undefined], [500, 'next'], [500, undefined],
    ]);
    expect(ec2Mock).toHaveReceivedCommandWith(CreateSnapshotsCommand, {
      InstanceSpecification: { InstanceId: I[1], ExcludeBootVolume: false, ExcludeDataVolumeIds: [SCRATCH, TMP] },
    });
    expect(cursor.apiCalls.DescribeVolumes).toBe(3);
  });

  test('GIVEN a tagged root volume WHEN a step runs THEN it is still snapshotted (boot volumes are excluded only by excludeBootVolume)', async () => {
    listing(instance(I[1], { volumes: [ROOT, DATA] }));
    ec2Mock.on(DescribeVolumesCommand).resolves({ Volumes: [tagged(ROOT, 'Scratch', 'true')] });

    await step({ ...REQUEST, excludeDataVolumeTags: { Scratch: ['true'] } });

    const [call] = ec2Mock.commandCalls(CreateSnapshotsCommand);
    expect(call.args[0].input.InstanceSpecification).toEqual({ InstanceId: I[1], ExcludeBootVolume: false });
  });

  test('GIVEN more than 40 attached data volumes excluded WHEN a step runs THEN the instance is reported failed, not called', async () => {
    const volumes = [ROOT, ...Array.from({ length: 41 }, (_, i) => `vol-${(i + 16).toString(16).padStart(17, '0')}`)];
    listing(instance(I[1], { volumes }));
    ec2Mock.on(DescribeVolumesCommand).resolves({ Volumes: volumes.slice(1).map((v) => tagged(v, 'Scratch', 'true')) });

    const { cursor } = await step({ ...REQUEST, excludeDataVolumeTags: { Scratch: ['true'] } });

    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotsCommand);
    expect(cursor.failuresByCode).toEqual({ TooManyExcludedVolumes: 1 });
  });

  test('GIVEN no volume tags WHEN a step runs THEN no DescribeVolumes call is made', async () => {
    listing(instance(I[1]));

    await step();

    expect(ec2Mock).toHaveReceivedCommandTimes(CreateSnapshotsCommand, 1);
    expect(ec2Mock).not.toHaveReceivedCommand(DescribeVolumesCommand);
  });
});

describe('dry run', () => {
  test('GIVEN dryRun WHEN EC2 answers DryRunOperation THEN it counts as success, nothing is looked up or created, and the run succeeds', async () => {
    listing(instance(I[1]), instance(I[2]));
    ec2Mock.on(CreateSnapshotsCommand).rejects(ec2Error('DryRunOperation', 412));

    const { cursor, lines } = await step({ ...REQUEST, dryRun: true });

    expect(ec2Mock).toHaveReceivedCommandWith(CreateSnapshotsCommand, { DryRun: true });
    expect(ec2Mock).not.toHaveReceivedCommand(DescribeSnapshotsCommand);
    expect(cursor.counts).toEqual({ ...ZERO, selected: 2, dryRunOk: 2 });
    expect(cursor.result).toBe('succeeded');
    expect(outcomes(lines)).toEqual({ [I[1]]: 'dry-run-ok', [I[2]]: 'dry-run-ok' });
  });

  test('GIVEN dryRun WHEN EC2 answers UnauthorizedOperation THEN the instance is failed with the code after one call, and no retry pass follows', async () => {
    listing(instance(I[1]));
    ec2Mock.on(CreateSnapshotsCommand).rejects(ec2Error('UnauthorizedOperation', 403));

    const { cursor } = await step({ ...REQUEST, dryRun: true });

    expect(ec2Mock).toHaveReceivedCommandTimes(CreateSnapshotsCommand, 1);
    expect(cursor).toEqual(expect.objectContaining({ phase: 'done', result: 'failed', pass: 1, failuresByCode: { UnauthorizedOperation: 1 } }));
  });
});

describe('failures', () => {
  test('GIVEN an instance terminated between listing and snapshotting WHEN a step runs THEN it is skipped, not failed', async () => {
    listing(instance(I[1]), instance(I[2]));
    ec2Mock.on(CreateSnapshotsCommand, { InstanceSpecification: { InstanceId: I[1] } }).rejects(ec2Error('InvalidInstanceID.NotFound'));

    const { cursor, lines } = await step();

    expect(cursor.counts).toEqual({ ...ZERO, selected: 2, created: 1, skipped: 1 });
    expect(cursor.result).toBe('succeeded');
    expect(lines).toContainEqual(expect.objectContaining({
      level: 'warn', attributes: expect.objectContaining({ instanceId: I[1], outcome: 'skipped', code: 'InvalidInstanceID.NotFound' }),
    }));
  });

  test.each([
    ['ConcurrentSnapshotLimitExceeded', 400],
    ['IncorrectState', 400],
    ['UnauthorizedOperation', 403],
    ['InvalidParameterValue', 400],
  ])('GIVEN %s for one instance WHEN a step runs THEN the others get their sets and it is failed with its code after one call', async (code, status) => {
    listing(instance(I[1]), instance(I[2]), instance(I[3]));
    ec2Mock.on(CreateSnapshotsCommand, { InstanceSpecification: { InstanceId: I[2] } }).rejects(ec2Error(code, status));

    const { cursor, lines } = await step();

    expect(outcomes(lines)).toEqual({ [I[1]]: 'created', [I[2]]: 'failed', [I[3]]: 'created' });
    expect(cursor.failures).toEqual([{ instanceId: I[2], outcome: 'failed', code, message: `${code} happened` }]);
    expect(cursor.failuresByCode).toEqual({ [code]: 1 });
    // Reported, not hammered: one call for the failing instance in this pass.
    expect(createdIds().filter((id) => id === I[2])).toHaveLength(1);
  });

  test('GIVEN an unexpected error (a bug, not EC2) WHEN a step runs THEN it is reported as that instance\'s failure, not swallowed', async () => {
    listing(instance(I[1]));
    ec2Mock.on(CreateSnapshotsCommand).rejects(new TypeError('boom'));

    const { cursor } = await step();

    expect(cursor.failuresByCode).toEqual({ TypeError: 1 });
    expect(cursor.failures[0].message).toBe('boom');
  });

  test('GIVEN the listing fails WHEN a step runs THEN it throws (nothing was attempted; the workflow repeats the step)', async () => {
    ec2Mock.on(DescribeInstancesCommand).rejects(ec2Error('UnauthorizedOperation', 403));

    await expect(step()).rejects.toThrow('UnauthorizedOperation happened');
    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotsCommand);
  });

  test('GIVEN the occurrence look-up fails WHEN a step runs THEN it throws before any CreateSnapshots (it cannot tell what exists)', async () => {
    listing(instance(I[1]), instance(I[2]));
    ec2Mock.on(DescribeSnapshotsCommand).rejects(ec2Error('InternalError', 500));

    await expect(step()).rejects.toThrow('InternalError happened');
    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotsCommand);
  });

  test('GIVEN the look-up of the second batch fails WHEN a step runs THEN it throws and no instance of that batch is called', async () => {
    const ids = Array.from({ length: 150 }, (_, n) => instanceId(1000 + n));
    listing(...ids.map((id) => instance(id)));
    ec2Mock.on(DescribeSnapshotsCommand).resolvesOnce({ Snapshots: [] }).rejects(ec2Error('InternalError', 500));

    await expect(step(REQUEST, newCursor(0), { settings: { ...SETTINGS, concurrency: 8 } })).rejects.toThrow('InternalError happened');
    expect(createdIds().filter((id) => ids.indexOf(id!) >= 100)).toEqual([]);
  });
});

describe('answers that leave open whether a set was made', () => {
  const lookupsFor = (id: string) => ec2Mock.commandCalls(DescribeSnapshotsCommand)
    .filter((c) => c.args[0].input.Filters!.some((f) => f.Name === `tag:${INSTANCE_ID_TAG}` && f.Values!.length === 1 && f.Values![0] === id));

  test('GIVEN CreateSnapshots answers without any snapshot AND no set shows up WHEN a step runs THEN it is not counted created: the step looks, then calls again', async () => {
    listing(instance(I[1]));
    ec2Mock.on(CreateSnapshotsCommand)
      .resolvesOnce({ Snapshots: [] })
      .resolves({ Snapshots: [{ SnapshotId: 'snap-2' }] });

    const { cursor, lines } = await step();

    expect(ec2Mock).toHaveReceivedCommandTimes(CreateSnapshotsCommand, 2);
    expect(lookupsFor(I[1]).length).toBeGreaterThanOrEqual(1);
    expect(cursor.counts).toEqual({ ...ZERO, selected: 1, created: 1 });
    expect(lines.filter((l) => l.attributes.outcome === 'created')).toEqual([
      expect.objectContaining({ attributes: expect.objectContaining({ instanceId: I[1], snapshotIds: ['snap-2'] }) }),
    ]);
  });

  test('GIVEN CreateSnapshots always answers without any snapshot WHEN the attempts run out THEN the instance is failed with EmptyCreateSnapshotsAnswer, never created', async () => {
    listing(instance(I[1]));
    ec2Mock.on(CreateSnapshotsCommand).resolves({});

    const { cursor } = await step(REQUEST, newCursor(0), { settings: { ...SETTINGS, maxAttemptsPerInstance: 3 } });

    expect(ec2Mock).toHaveReceivedCommandTimes(CreateSnapshotsCommand, 3);
    expect(cursor.counts).toEqual({ ...ZERO, selected: 1, failed: 1 });
    expect(cursor.failuresByCode).toEqual({ EmptyCreateSnapshotsAnswer: 1 });
    expect(cursor.failures[0].message).toContain('after 3 attempts and no set found');
  });

  test.each([
    ['an empty answer', () => ({ Snapshots: [] }), 'EmptyCreateSnapshotsAnswer'],
    ['a 500', () => { throw ec2Error('InternalError', 500); }, 'InternalError'],
    ['a timeout', () => { throw Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }); }, 'TimeoutError'],
    ['a reset connection', () => { throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }); }, 'ECONNRESET'],
  ])('GIVEN %s AND the set shows up in DescribeSnapshots WHEN a step runs THEN it is created, found by looking, with no second call', async (_name, answer, code) => {
    listing(instance(I[1]));
    ec2Mock.on(CreateSnapshotsCommand).callsFake(answer);
    // The batch look-up before the call finds nothing; the look after the answer finds the set.
    ec2Mock.on(DescribeSnapshotsCommand).resolvesOnce({ Snapshots: [] }).resolves({ Snapshots: [setSnapshot(I[1])] });

    const { cursor, lines } = await step();

    expect(ec2Mock).toHaveReceivedCommandTimes(CreateSnapshotsCommand, 1);
    expect(cursor.counts).toEqual({ ...ZERO, selected: 1, created: 1 });
    expect(lines).toContainEqual(expect.objectContaining({ message: 'snapshot set created', attributes: expect.objectContaining({ instanceId: I[1], detail: `found after ${code}` }) }));
  });

  test('GIVEN a 500 and no set WHEN a step runs THEN the call is repeated only after the settle window, with looks in between', async () => {
    listing(instance(I[1]));
    const at: number[] = [];
    ec2Mock.on(CreateSnapshotsCommand).callsFake(() => {
      at.push(performance.now());
      if (at.length === 1) throw ec2Error('InternalError', 500);
      return Promise.resolve({ Snapshots: [{ SnapshotId: 'snap-1' }] });
    });

    const { cursor } = await step(REQUEST, newCursor(0), { settings: { ...SETTINGS, settleWindowMs: 60, lookIntervalMs: 10 } });

    expect(at).toHaveLength(2);
    expect(at[1] - at[0]).toBeGreaterThanOrEqual(55);
    expect(lookupsFor(I[1]).length).toBeGreaterThanOrEqual(3);
    expect(cursor.counts.created).toBe(1);
  });

  test('GIVEN SnapshotCreationPerVolumeRateExceeded AND a set of the occurrence shows up WHEN a step runs THEN it is already done (another maker), with no second call', async () => {
    listing(instance(I[1]));
    ec2Mock.on(CreateSnapshotsCommand).rejects(ec2Error('SnapshotCreationPerVolumeRateExceeded'));
    ec2Mock.on(DescribeSnapshotsCommand).resolvesOnce({ Snapshots: [] }).resolves({ Snapshots: [setSnapshot(I[1])] });

    const { cursor, lines } = await step();

    expect(ec2Mock).toHaveReceivedCommandTimes(CreateSnapshotsCommand, 1);
    expect(cursor.counts).toEqual({ ...ZERO, selected: 1, alreadyDone: 1 });
    expect(outcomes(lines)).toEqual({ [I[1]]: 'already-done' });
  });

  test('GIVEN a 500 then SnapshotCreationPerVolumeRateExceeded AND the set shows up WHEN a step runs THEN it is created (the first call may have made it)', async () => {
    listing(instance(I[1]));
    ec2Mock.on(CreateSnapshotsCommand).rejectsOnce(ec2Error('InternalError', 500)).rejects(ec2Error('SnapshotCreationPerVolumeRateExceeded'));
    ec2Mock.on(DescribeSnapshotsCommand).callsFake(() => Promise.resolve({
      Snapshots: ec2Mock.commandCalls(CreateSnapshotsCommand).length >= 2 ? [setSnapshot(I[1])] : [],
    }));

    const { cursor } = await step();

    expect(ec2Mock).toHaveReceivedCommandTimes(CreateSnapshotsCommand, 2);
    expect(cursor.counts).toEqual({ ...ZERO, selected: 1, created: 1 });
  });
});

describe('what the occurrence already has', () => {
  test('GIVEN sets of this occurrence for some instances WHEN a step runs THEN one paginated look-up by schedule, scheduled time and instance ids, and only the others are called', async () => {
    listing(instance(I[1]), instance(I[2]), instance(I[3]));
    ec2Mock.on(DescribeSnapshotsCommand)
      .resolvesOnce({ Snapshots: [setSnapshot(I[1])], NextToken: 'more' })
      .resolvesOnce({ Snapshots: [setSnapshot(I[3])] });

    const { cursor, lines } = await step();

    expect(ec2Mock.commandCalls(DescribeSnapshotsCommand).map((c) => c.args[0].input)).toEqual([
      {
        OwnerIds: ['self'],
        Filters: [
          { Name: 'tag:cdk-instance-snapshots:schedule', Values: ['Stack/Nightly'] },
          { Name: 'tag:cdk-instance-snapshots:scheduled-time', Values: [SCHEDULED_TIME] },
          { Name: 'tag:cdk-instance-snapshots:instance-id', Values: [I[1], I[2], I[3]] },
        ],
        MaxResults: 1000,
        NextToken: undefined,
      },
      expect.objectContaining({ NextToken: 'more' }),
    ]);
    expect(createdIds()).toEqual([I[2]]);
    expect(cursor.counts).toEqual({ ...ZERO, selected: 3, alreadyDone: 2, created: 1 });
    expect(outcomes(lines)).toEqual({ [I[1]]: 'already-done', [I[2]]: 'created', [I[3]]: 'already-done' });
  });

  test.each([
    ['another scheduled time', { scheduledTime: '2026-11-23T02:30:00Z' }],
    ['another schedule', { schedule: 'Stack/Weekly' }],
  ])('GIVEN a snapshot of %s returned by EC2\'s filter WHEN a step runs THEN it does not count: the instance gets a set of this occurrence', async (_name, tags) => {
    listing(instance(I[1]));
    ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [setSnapshot(I[1], tags)] });

    const { cursor } = await step();

    expect(createdIds()).toEqual([I[1]]);
    expect(cursor.counts).toEqual({ ...ZERO, selected: 1, created: 1 });
  });

  test('GIVEN 250 instances WHEN a step runs THEN the look-ups go in batches of at most 100 ids, in id order', async () => {
    const ids = Array.from({ length: 250 }, (_, n) => instanceId(1000 + n));
    listing(...[...ids].reverse().map((id) => instance(id)));

    const { cursor } = await step(REQUEST, newCursor(0), { settings: { ...SETTINGS, concurrency: 20 } });

    const batches = ec2Mock.commandCalls(DescribeSnapshotsCommand).map((c) => c.args[0].input.Filters!.find((f) => f.Name === `tag:${INSTANCE_ID_TAG}`)!.Values);
    expect(batches).toEqual([ids.slice(0, 100), ids.slice(100, 200), ids.slice(200)]);
    expect(cursor.counts).toEqual({ ...ZERO, selected: 250, created: 250 });
  });
});

describe('windows and the cursor', () => {
  /** The step's clock stands still: the listing uses none of the budget, whatever the machine's speed. */
  const frozen = () => 1_000_000;
  /** A window of 3: 100 calls per second for 30 ms. */
  const WINDOW_OF_3 = { createSnapshotsPerSecond: 100, now: frozen, settings: { ...SETTINGS, concurrency: 1, stepBudgetMs: 30 } };

  test.each([
    { name: '100 calls/s for 30 ms', rate: 100, budget: 30, concurrency: 1, size: 3 },
    { name: '5 calls/s for 600 ms', rate: 5, budget: 600, concurrency: 2, size: 3 },
    { name: '5 calls/s for 1 ms and a concurrency of 4 (a window is never smaller)', rate: 5, budget: 1, concurrency: 4, size: 4 },
  ])('GIVEN $name WHEN a step runs over 6 instances THEN its window is the first $size in id order', async ({ rate, budget, concurrency, size }) => {
    listing(...[6, 2, 4, 1, 5, 3].map((k) => instance(I[k])));

    const settings = { ...SETTINGS, concurrency, stepBudgetMs: budget };

    const { cursor } = await step(REQUEST, newCursor(0), { createSnapshotsPerSecond: rate, now: frozen, settings });

    expect(createdIds().sort()).toEqual(I.slice(1, 1 + size));
    expect(cursor).toEqual(expect.objectContaining({ phase: 'snapshot', after: I[size], upto: I[Math.min(6, 2 * size)], steps: 1 }));
    expect(cursor.counts).toEqual({ ...ZERO, selected: size, created: size });
    expect(cursor.summary).toBeUndefined();
  });

  test('GIVEN a first step whose listing took part of the budget WHEN it sizes its window THEN it gets what is left, and the next (streaming) window the whole budget', async () => {
    const clock = { t: 1_000_000 };
    ec2Mock.on(DescribeInstancesCommand).callsFake(() => {
      clock.t += 20;
      return Promise.resolve({ Reservations: [{ Instances: I.slice(1, 11).map((id) => instance(id)) }] });
    });

    const settings = { ...SETTINGS, concurrency: 1, stepBudgetMs: 50 };

    const { cursor } = await step(REQUEST, newCursor(clock.t), { createSnapshotsPerSecond: 100, now: () => clock.t, settings });

    // 100 calls/s for the 30 ms left: 3; the next window, 100 calls/s for 50 ms: 5.
    expect(createdIds()).toEqual(I.slice(1, 4));
    expect(cursor).toEqual(expect.objectContaining({ after: I[3], upto: I[8] }));
  });

  test('GIVEN the cursor of a window WHEN the next steps run THEN each takes the next window and the last ends the run with the counts of all', async () => {
    listing(...I.slice(1, 8).map((id) => instance(id)));
    const first = await step(REQUEST, newCursor(0), WINDOW_OF_3);
    const second = await step(REQUEST, first.cursor, WINDOW_OF_3);
    ec2Mock.resetHistory();

    const third = await step(REQUEST, second.cursor, WINDOW_OF_3);

    expect([first.cursor, second.cursor].map((c) => [c.phase, c.after, c.upto])).toEqual([['snapshot', I[3], I[6]], ['snapshot', I[6], I[7]]]);
    expect(createdIds()).toEqual([I[7]]);
    expect(third.cursor).toEqual(expect.objectContaining({ phase: 'done', result: 'succeeded', steps: 3, after: I[7] }));
    expect(third.cursor.upto).toBeUndefined();
    expect(third.cursor.counts).toEqual({ ...ZERO, selected: 7, created: 7 });
    expect(third.cursor.apiCalls).toEqual({ DescribeInstances: 3, DescribeSnapshots: 3, CreateSnapshots: 7 });
  });

  test.each<[string, number[], number, number | undefined, number[]]>([
    ['after the first instance', [1, 2, 3, 4, 5], 1, undefined, [2, 3, 4, 5]],
    ['after a middle instance', [1, 2, 3, 4, 5], 3, undefined, [4, 5]],
    ['after an instance that is gone', [1, 2, 4, 5], 3, undefined, [4, 5]],
    ['after the last instance', [1, 2, 3, 4, 5], 5, undefined, []],
    ['with a window end', [1, 2, 3, 4, 5], 1, 3, [2, 3]],
    ['with a window end that is gone', [1, 2, 4, 5], 1, 3, [2]],
  ])('GIVEN a cursor %s WHEN a step runs, even with no set found THEN CreateSnapshots is called only inside its window, never for an id <= cursor.after', async (_name, listed, afterK, uptoK, expected) => {
    listing(...[...listed].reverse().map((k) => instance(I[k])));
    const cursor = { ...newCursor(0), after: I[afterK], ...(uptoK !== undefined ? { upto: I[uptoK] } : {}) };

    await step(REQUEST, cursor);

    expect(createdIds().sort()).toEqual(expected.map((k) => I[k]));
  });

  test('GIVEN a window end from the last step WHEN a step runs THEN it starts calling with the first page of the listing, before the last page arrives', async () => {
    const events: string[] = [];
    ec2Mock.on(DescribeInstancesCommand)
      .resolvesOnce({ Reservations: [{ Instances: [instance(I[2]), instance(I[3])] }], NextToken: 'p2' })
      .callsFake(() => new Promise((resolve) => setTimeout(() => {
        events.push('last page');
        resolve({ Reservations: [{ Instances: [instance(I[4]), instance(I[5])] }] });
      }, 50)));
    ec2Mock.on(CreateSnapshotsCommand).callsFake((input) => {
      events.push(`create ${input.InstanceSpecification.InstanceId}`);
      return Promise.resolve({ Snapshots: [{ SnapshotId: 'snap-1' }] });
    });

    const { cursor } = await step(REQUEST, { ...newCursor(0), after: I[1], upto: I[4] });

    expect(events).toEqual([`create ${I[2]}`, `create ${I[3]}`, 'last page', `create ${I[4]}`]);
    expect(cursor).toEqual(expect.objectContaining({ phase: 'snapshot', after: I[4], upto: I[5] }));
  });

  test('GIVEN the invocation runs low on time while a window\'s listing still streams WHEN the step ends THEN every instance of the window and beyond is still accounted for: none is skipped silently', async () => {
    ec2Mock.on(DescribeInstancesCommand)
      .resolvesOnce({ Reservations: [{ Instances: [instance(I[2])] }], NextToken: 'p2' })
      .callsFake(() => new Promise((resolve) => setTimeout(resolve, 80, { Reservations: [{ Instances: [3, 4, 5].map((k) => instance(I[k])) }] })));
    const started = Date.now();

    const { cursor } = await step(REQUEST, { ...newCursor(0), after: I[1], upto: I[4] }, {
      settings: { ...SETTINGS, reserveMs: 1_000 },
      // 20 ms above the reserve at the start: the time runs out before the last page arrives.
      remainingMs: () => 1_020 - (Date.now() - started),
    });

    expect(createdIds()).toEqual([I[2]]);
    expect(cursor.counts).toEqual({ ...ZERO, selected: 3, created: 1, notAttempted: 2 });
    expect(cursor.failuresByCode).toEqual({ StepOutOfTime: 2 });
    expect(cursor).toEqual(expect.objectContaining({ phase: 'snapshot', after: I[4], upto: I[5] }));
  });

  test('GIVEN too little time left in the invocation WHEN a step starts THEN it starts nothing: its window is not attempted (a later pass takes it) and the pass goes on after it', async () => {
    listing(...I.slice(1, 6).map((id) => instance(id)));

    const { cursor } = await step(REQUEST, { ...newCursor(0), after: I[1] }, {
      remainingMs: () => 10_000,
      createSnapshotsPerSecond: 100,
      now: frozen,
      settings: { ...SETTINGS, reserveMs: 30_000, concurrency: 1, stepBudgetMs: 20 },
    });

    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotsCommand);
    expect(cursor).toEqual(expect.objectContaining({ phase: 'snapshot', after: I[3], upto: I[5], steps: 1, failuresByCode: { StepOutOfTime: 2 } }));
    expect(cursor.failures.map((f) => [f.instanceId, f.outcome])).toEqual([[I[2], 'not-attempted'], [I[3], 'not-attempted']]);
  });

  test('GIVEN an instance still throttled when the invocation runs low on time WHEN the step ends THEN it is failed for this pass (unresolved) and a retry pass follows', async () => {
    listing(instance(I[1]), instance(I[2]));
    ec2Mock.on(CreateSnapshotsCommand, { InstanceSpecification: { InstanceId: I[2] } }).rejects(ec2Error('RequestLimitExceeded', 503));
    // Time runs low once I[2] has been tried twice (not after some milliseconds: a loaded machine is slow).
    const remainingMs = () => (createdIds().filter((id) => id === I[2]).length < 2 ? 900_000 : 1_000);

    const { cursor } = await step(REQUEST, newCursor(0), { remainingMs, settings: { ...SETTINGS, reserveMs: 5_000 } });

    expect(createdIds().filter((id) => id === I[2]).length).toBeGreaterThan(1);
    expect(cursor).toEqual(expect.objectContaining({ phase: 'wait', after: I[2], failuresByCode: { RequestLimitExceeded: 1 } }));
    expect(cursor.counts).toEqual({ ...ZERO, selected: 2, created: 1, failed: 1 });
    expect(cursor.failures[0].message).toContain('unresolved when the step ran out of time');
  });
});

describe('passes', () => {
  test('GIVEN a pass that left a failure WHEN it ends THEN the phase is wait (a retry pass follows), not done', async () => {
    listing(instance(I[1]), instance(I[2]), instance(I[3]));
    ec2Mock.on(CreateSnapshotsCommand, { InstanceSpecification: { InstanceId: I[2] } }).rejects(ec2Error('ConcurrentSnapshotLimitExceeded'));

    const { cursor } = await step();

    expect(cursor).toEqual(expect.objectContaining({ phase: 'wait', pass: 1, after: I[3] }));
    expect(cursor.result).toBeUndefined();
  });

  test('GIVEN a cursor in phase wait WHEN the retry pass runs THEN it retries only what has no set, and counts only what it does', async () => {
    listing(instance(I[1]), instance(I[2]), instance(I[3]));
    ec2Mock.on(CreateSnapshotsCommand, { InstanceSpecification: { InstanceId: I[2] } }).rejects(ec2Error('ConcurrentSnapshotLimitExceeded'));
    const first = await step();
    ec2Mock.resetHistory();
    // The first pass's sets are visible now, and the concurrent snapshots of I[2] have completed.
    ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [setSnapshot(I[1]), setSnapshot(I[3])] });
    ec2Mock.on(CreateSnapshotsCommand, { InstanceSpecification: { InstanceId: I[2] } }).resolves({ Snapshots: [{ SnapshotId: 'snap-2' }] });

    const { cursor, lines } = await step(REQUEST, first.cursor);

    expect(createdIds()).toEqual([I[2]]);
    expect(outcomes(lines)).toEqual({ [I[2]]: 'created' });
    expect(cursor).toEqual(expect.objectContaining({ phase: 'done', result: 'succeeded', pass: 2, steps: 2, failuresByCode: {}, failures: [] }));
    expect(cursor.counts).toEqual({ ...ZERO, selected: 3, created: 3 });
    expect(cursor.summary).toEqual(expect.objectContaining({ passes: 2, steps: 2, counts: cursor.counts }));
  });

  test('GIVEN an instance failing in every pass WHEN maxPasses is reached THEN the run is done and failed, with the summary as text', async () => {
    listing(instance(I[1]), instance(I[2]));
    ec2Mock.on(CreateSnapshotsCommand, { InstanceSpecification: { InstanceId: I[1] } }).rejects(ec2Error('IncorrectState'));
    let cursor = newCursor(Date.now() - 5_000);
    const phases: string[] = [];
    for (let k = 0; k < 5 && cursor.phase !== 'done'; k++) {
      cursor = (await step(REQUEST, cursor, { settings: { ...SETTINGS, maxPasses: 3 } })).cursor;
      phases.push(cursor.phase);
      // The set made in the first pass is visible from then on.
      ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [setSnapshot(I[2])] });
    }

    expect(phases).toEqual(['wait', 'wait', 'done']);
    expect(createdIds()).toEqual([I[1], I[2], I[1], I[1]]);
    expect(cursor.result).toBe('failed');
    expect(cursor.summary).toEqual({
      scheduleId: 'Stack/Nightly',
      scheduledTime: SCHEDULED_TIME,
      executionName: 'exec-0001',
      result: 'failed',
      counts: { ...ZERO, selected: 2, created: 1, failed: 1 },
      failuresByCode: { IncorrectState: 1 },
      failures: [{ instanceId: I[1], outcome: 'failed', code: 'IncorrectState', message: 'IncorrectState happened' }],
      passes: 3,
      steps: 3,
      apiCalls: { DescribeInstances: 3, DescribeSnapshots: 3, CreateSnapshots: 4 },
      durationMs: expect.any(Number),
    });
    expect(cursor.summary!.durationMs).toBeGreaterThanOrEqual(5_000);
    expect(JSON.parse(cursor.summaryText!)).toEqual(cursor.summary);
  });
});

describe('account snapshot quota', () => {
  test.each(['PendingSnapshotLimitExceeded', 'SnapshotLimitExceeded'])(
    'GIVEN %s on the 3rd call WHEN a step runs THEN nothing new starts, the rest is not attempted with the code, and the run ends failed without a retry pass',
    async (code) => {
      listing(...I.slice(1, 7).map((id) => instance(id)));
      ec2Mock.on(CreateSnapshotsCommand).resolvesOnce({ Snapshots: [{ SnapshotId: 'snap-1' }] }).resolvesOnce({ Snapshots: [{ SnapshotId: 'snap-2' }] }).rejects(ec2Error(code));

      const { cursor, lines } = await step(REQUEST, newCursor(0), { settings: { ...SETTINGS, concurrency: 1 } });

      expect(createdIds()).toEqual(I.slice(1, 4));
      expect(cursor).toEqual(expect.objectContaining({ phase: 'done', result: 'failed', pass: 1, halted: code, after: I[6], failuresByCode: { [code]: 4 } }));
      expect(cursor.counts).toEqual({ ...ZERO, selected: 6, created: 2, failed: 1, notAttempted: 3 });
      expect(cursor.failures.filter((f) => f.outcome === 'not-attempted').map((f) => f.instanceId)).toEqual(I.slice(4, 7));
      expect(lines).toContainEqual(expect.objectContaining({ level: 'error', message: expect.stringContaining('quota'), attributes: { code } }));
    },
  );

  test('GIVEN the quota is hit in a later step WHEN that step runs THEN the whole rest of the selection is not attempted', async () => {
    listing(...I.slice(1, 7).map((id) => instance(id)));
    ec2Mock.on(CreateSnapshotsCommand).rejects(ec2Error('SnapshotLimitExceeded'));
    const cursor = { ...newCursor(0), after: I[2], counts: { ...ZERO, selected: 2, created: 2 } };

    const { cursor: next } = await step(REQUEST, cursor, { settings: { ...SETTINGS, concurrency: 1 } });

    expect(createdIds()).toEqual([I[3]]);
    expect(next.counts).toEqual({ ...ZERO, selected: 6, created: 2, failed: 1, notAttempted: 3 });
    expect(next.phase).toBe('done');
  });
});

describe('snapshot locks on new sets', () => {
  const LOCKED: SnapshotRunRequest = { ...REQUEST, lock: { mode: 'compliance', durationDays: 30, coolOffHours: 24 } };
  const lockedIds = () => ec2Mock.commandCalls(LockSnapshotCommand).map((c) => c.args[0].input.SnapshotId).sort();

  beforeEach(() => {
    ec2Mock.on(CreateSnapshotsCommand).callsFake((input) => Promise.resolve({
      Snapshots: ['a', 'b'].map((v) => ({ SnapshotId: `snap-${input.InstanceSpecification.InstanceId.slice(2)}${v}`, VolumeId: `vol-${v}` })),
    }));
    ec2Mock.on(LockSnapshotCommand).resolves({});
    ec2Mock.on(DescribeLockedSnapshotsCommand).resolves({ Snapshots: [] });
  });

  test('GIVEN a lock WHEN a set is created THEN every snapshot of it is locked with the mode, days and cool-off, without a look-up first', async () => {
    listing(instance(I[1]));

    const { cursor } = await step(LOCKED);

    expect(ec2Mock.commandCalls(LockSnapshotCommand).map((c) => c.args[0].input)).toEqual([
      { SnapshotId: `snap-${I[1].slice(2)}a`, LockMode: 'compliance', LockDuration: 30, CoolOffPeriod: 24 },
      { SnapshotId: `snap-${I[1].slice(2)}b`, LockMode: 'compliance', LockDuration: 30, CoolOffPeriod: 24 },
    ]);
    expect(ec2Mock).not.toHaveReceivedCommand(DescribeLockedSnapshotsCommand);
    expect(cursor.counts).toEqual({ ...ZERO, selected: 1, created: 1 });
  });

  test('GIVEN no lock WHEN a set is created THEN nothing is locked', async () => {
    listing(instance(I[1]));

    await step(REQUEST);

    expect(ec2Mock).not.toHaveReceivedCommand(LockSnapshotCommand);
  });

  test('GIVEN LockSnapshot fails WHEN a set is created THEN the instance is failed with the lock\'s code, and a retry pass follows', async () => {
    listing(instance(I[1]), instance(I[2]));
    ec2Mock.on(LockSnapshotCommand, { SnapshotId: `snap-${I[2].slice(2)}b` }).rejects(ec2Error('UnauthorizedOperation'));

    const { cursor, lines } = await step(LOCKED);

    expect(cursor.counts).toEqual({ ...ZERO, selected: 2, created: 1, failed: 1, lockFailed: 1 });
    expect(cursor.failuresByCode).toEqual({ 'LockSnapshot.UnauthorizedOperation': 1 });
    expect(cursor.phase).toBe('wait');
    expect(outcomes(lines)[I[2]]).toBe('failed');
  });

  test('GIVEN a set of the occurrence that exists unlocked (a step failed after creating it) WHEN found THEN its unlocked snapshots are locked', async () => {
    listing(instance(I[1]));
    ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [setSnapshot(I[1]), { ...setSnapshot(I[1]), SnapshotId: 'snap-0000000000000000b' }] });
    ec2Mock.on(DescribeLockedSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: 'snap-0000000000000000b', LockState: 'compliance-cooloff' }] });

    const { cursor } = await step(LOCKED);

    expect(createdIds()).toEqual([]);
    expect(ec2Mock).toHaveReceivedCommandWith(DescribeLockedSnapshotsCommand, { SnapshotIds: [`snap-${I[1].slice(2)}`, 'snap-0000000000000000b'] });
    expect(lockedIds()).toEqual([`snap-${I[1].slice(2)}`]);
    expect(cursor.counts).toEqual({ ...ZERO, selected: 1, alreadyDone: 1 });
  });

  test('GIVEN a dry run with a lock THEN nothing is locked', async () => {
    listing(instance(I[1]));
    ec2Mock.on(CreateSnapshotsCommand).rejects(ec2Error('DryRunOperation', 412));

    await step({ ...LOCKED, dryRun: true });

    expect(ec2Mock).not.toHaveReceivedCommand(LockSnapshotCommand);
  });
});

describe('exclusion by instance tag and Local Zones', () => {
  test('GIVEN excludeInstanceTags WHEN an instance carries one of the excluded values THEN it is not selected; other values are', async () => {
    listing(
      instance(I[1], { tags: { Backup: 'nightly', Tier: 'scratch' } }),
      instance(I[2], { tags: { Backup: 'nightly', Tier: 'db' } }),
      instance(I[3], { tags: { Backup: 'nightly' } }),
      instance(I[4], { tags: { Backup: 'nightly', Keep: 'no' } }),
    );

    const { cursor } = await step({ ...REQUEST, excludeInstanceTags: { Tier: ['scratch', 'tmp'], Keep: ['no'] } });

    expect(createdIds().sort()).toEqual([I[2], I[3]]);
    expect(cursor.counts).toEqual({ ...ZERO, selected: 2, created: 2 });
  });

  test('GIVEN location local WHEN sets are created THEN CreateSnapshots carries Location for Local Zone instances only', async () => {
    listing(instance(I[1], { zone: 'us-west-2-lax-1a' }), instance(I[2], { zone: 'us-west-2b' }), instance(I[3], { zone: 'us-east-1-bos-1a' }));

    await step({ ...REQUEST, location: 'local' });

    const calls = ec2Mock.commandCalls(CreateSnapshotsCommand).map((c) => c.args[0].input);
    expect(Object.fromEntries(calls.map((c) => [c.InstanceSpecification!.InstanceId, c.Location]))).toEqual({
      [I[1]]: 'local', [I[2]]: undefined, [I[3]]: 'local',
    });
  });

  test('GIVEN no location THEN CreateSnapshots has none (EC2\'s default, regional)', async () => {
    listing(instance(I[1]));

    await step(REQUEST);

    expect(ec2Mock.commandCalls(CreateSnapshotsCommand)[0].args[0].input).not.toHaveProperty('Location');
  });
});
