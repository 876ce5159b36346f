/**
 * runPruneStep with aws-sdk-client-mock: the run's prune phase. What it lists, which sets it
 * deletes (whole sets, never a locked, pending or in-use one), how it reports each outcome, how it
 * spreads the work over steps, and the cursor it hands back.
 */
import {
  DeleteSnapshotCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeLockedSnapshotsCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  EC2ServiceException,
  Snapshot,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { CapturedLog, instanceId, runRequest } from './support/fault-harness';
import { newCursor, newPruneProgress, parseCursor, RunCursor } from '../lambda/ledger';
import { PruneEnvironment, runPruneStep } from '../lambda/prune-step';
import {
  INSTANCE_ID_TAG,
  parseOccurrence,
  SCHEDULE_TAG,
  SCHEDULED_TIME_TAG,
  SnapshotRunRequest,
} from '../src/private/request-contract';

const ec2Mock = mockClient(EC2Client);

const DAY = 86_400_000;
const NOW = Date.parse('2026-11-24T03:00:00Z');
const REQUEST: SnapshotRunRequest = runRequest({
  retention: { count: 2, timeZone: 'Etc/UTC', goneInstanceSeconds: 30 * 86_400 },
});
const CURRENT = '2026-11-24T02:30:00Z';
const OCCURRENCE = parseOccurrence(REQUEST.scheduleId, { scheduledTime: CURRENT }, 'exec-0001', NOW);

/** Instance ids in id order: I[1] < I[2] < ... */
const I = Array.from({ length: 12 }, (_, n) => instanceId(n));

/** The scheduled time `days` days before the current occurrence. */
const daysAgo = (days: number) => new Date(Date.parse(CURRENT) - days * DAY).toISOString().replace('.000Z', 'Z');

let serial = 0;
/** One snapshot of a set: instance, occurrence `days` days ago, one volume. */
function snap(instance: string, days: number, volume = 'a', options: { state?: string; schedule?: string } = {}): Snapshot {
  serial++;
  return {
    SnapshotId: `snap-${instance.slice(-6)}${String(days).padStart(3, '0')}${volume}${serial}`,
    VolumeId: `vol-${instance.slice(-6)}${volume}`,
    State: (options.state ?? 'completed') as Snapshot['State'],
    StartTime: new Date(Date.parse(CURRENT) - days * DAY + 1_000),
    Tags: [
      { Key: SCHEDULE_TAG, Value: options.schedule ?? REQUEST.scheduleId },
      { Key: SCHEDULED_TIME_TAG, Value: daysAgo(days) },
      { Key: INSTANCE_ID_TAG, Value: instance },
    ],
  };
}

/** Sets of `instance` for each of `days`, two volumes each. */
function sets(instance: string, ...days: number[]): Snapshot[] {
  return days.flatMap((d) => [snap(instance, d, 'a'), snap(instance, d, 'b')]);
}

function live(...ids: string[]) {
  ec2Mock.on(DescribeInstancesCommand).resolves({
    Reservations: [{ Instances: ids.map((id) => ({ InstanceId: id, State: { Name: 'running' as const }, Tags: [{ Key: 'Backup', Value: 'nightly' }] })) }],
  });
}

function listed(...snapshots: Snapshot[]) {
  ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: snapshots });
}

function ec2Error(name: string, message = `${name} happened`, status = 400): EC2ServiceException {
  return new EC2ServiceException({ name, $fault: status >= 500 ? 'server' : 'client', message, $metadata: { httpStatusCode: status, attempts: 1 } });
}

const idsOf = (snapshots: Snapshot[]) => snapshots.map((s) => s.SnapshotId!).sort();
const deletedIds = () => ec2Mock.commandCalls(DeleteSnapshotCommand).map((c) => c.args[0].input.SnapshotId!).sort();

function pruneCursor(overrides: Partial<RunCursor['prune']> = {}): RunCursor {
  return { ...newCursor(NOW - 60_000), phase: 'prune', prune: { ...newPruneProgress(), ...overrides } };
}

function environment(overrides: Partial<PruneEnvironment> = {}): PruneEnvironment & { log: CapturedLog } {
  const client = new EC2Client({ region: 'eu-central-1' });
  return {
    ec2: client,
    ec2Delete: client,
    log: new CapturedLog(),
    stepBudgetMs: 600_000,
    reserveMs: 0,
    concurrency: 4,
    remainingMs: () => 900_000,
    now: () => NOW,
    ...overrides,
  } as PruneEnvironment & { log: CapturedLog };
}

/** Runs one prune step; the cursor goes through JSON and parseCursor, as between workflow states. */
async function step(request = REQUEST, cursor = pruneCursor(), overrides: Partial<PruneEnvironment> = {}) {
  const env = environment(overrides);
  const next = await runPruneStep(request, OCCURRENCE, parseCursor(JSON.parse(JSON.stringify(cursor))), env);
  return { cursor: parseCursor(JSON.parse(JSON.stringify(next))), lines: env.log.lines };
}

beforeEach(() => {
  serial = 0;
  ec2Mock.reset();
  live(I[1], I[2], I[3]);
  ec2Mock.on(DescribeLockedSnapshotsCommand).resolves({ Snapshots: [] });
  ec2Mock.on(DescribeImagesCommand).resolves({ Images: [] });
  ec2Mock.on(DeleteSnapshotCommand).resolves({});
});

describe('what a prune step deletes', () => {
  test('GIVEN count 2 and four sets WHEN the step runs THEN the two oldest sets are deleted whole and the run ends with their counts', async () => {
    const old = [...sets(I[1], 3), ...sets(I[1], 2)];
    listed(...old, ...sets(I[1], 1, 0));

    const { cursor } = await step();

    expect(deletedIds()).toEqual(idsOf(old));
    expect(cursor.phase).toBe('done');
    expect(cursor.result).toBe('succeeded');
    expect(cursor.summary!.prune).toEqual({
      setsDeleted: 2, snapshotsDeleted: 4, setsToDelete: 0, setsInUse: 0, setsLocked: 0, setsPending: 0, setsFailed: 0,
    });
    // One listing of the live instances' snapshots, one of all the schedule's (for gone instances).
    expect(cursor.apiCalls).toMatchObject({ DeleteSnapshot: 4, DescribeSnapshots: 2, DescribeInstances: 1 });
  });

  test('GIVEN the listing WHEN the step asks for it THEN it asks for the account\'s own snapshots with the schedule\'s tag, of the live instances, then of all', async () => {
    const first = sets(I[1], 3);
    const second = sets(I[1], 2);
    ec2Mock.on(DescribeSnapshotsCommand).callsFake((input) => Promise.resolve(input.NextToken === undefined
      ? { Snapshots: first, NextToken: 'p2' }
      : { Snapshots: [...second, ...sets(I[1], 1, 0)] }));

    await step();

    const schedule = { Name: `tag:${SCHEDULE_TAG}`, Values: [REQUEST.scheduleId] };
    const ofLive = { Name: `tag:${INSTANCE_ID_TAG}`, Values: [I[1], I[2], I[3]] };
    expect(ec2Mock.commandCalls(DescribeSnapshotsCommand).map((c) => c.args[0].input)).toEqual([
      { OwnerIds: ['self'], Filters: [schedule, ofLive], MaxResults: 1000, NextToken: undefined },
      { OwnerIds: ['self'], Filters: [schedule, ofLive], MaxResults: 1000, NextToken: 'p2' },
      { OwnerIds: ['self'], Filters: [schedule], MaxResults: 1000, NextToken: undefined },
      { OwnerIds: ['self'], Filters: [schedule], MaxResults: 1000, NextToken: 'p2' },
    ]);
    // Without the second page, the first page's set would have been one of the newest two.
    expect(deletedIds()).toEqual(idsOf([...first, ...second]));
  });

  test('GIVEN a listing that also returns another schedule\'s look-alikes and one without an instance tag THEN only this schedule\'s sets are deleted', async () => {
    const foreign = [snap(I[1], 9, 'a', { schedule: `${REQUEST.scheduleId}-other` }), snap(I[1], 8, 'a', { schedule: REQUEST.scheduleId.toUpperCase() })];
    const untagged: Snapshot = {
      SnapshotId: 'snap-0000000000000untag', VolumeId: 'vol-1', State: 'completed', StartTime: new Date(0), Tags: [{ Key: SCHEDULE_TAG, Value: REQUEST.scheduleId }],
    };
    const old = sets(I[1], 3);
    listed(...foreign, untagged, ...old, ...sets(I[1], 1, 0));

    const { lines } = await step();

    expect(deletedIds()).toEqual(idsOf(old));
    expect(lines.find((l) => l.message === 'prune step finished')?.attributes).toMatchObject({ ignored: 2 });
    expect(lines.find((l) => l.level === 'warn')?.attributes).toEqual({ count: 1 });
  });

  test('GIVEN an instance that is gone beyond the grace period THEN all its sets are deleted; one gone within it keeps its count', async () => {
    live(I[1]);
    const goneLong = sets(I[2], 45, 44, 40);
    const goneRecentlyOld = sets(I[3], 3);
    listed(...sets(I[1], 1, 0), ...goneLong, ...goneRecentlyOld, ...sets(I[3], 2, 1));

    await step();

    expect(deletedIds()).toEqual(idsOf([...goneLong, ...goneRecentlyOld]));
  });
});

describe('what a prune step never deletes', () => {
  test('GIVEN one snapshot of an old set is locked WHEN the step runs THEN no snapshot of that set is deleted, and the lock is reported', async () => {
    const locked = sets(I[1], 3);
    const unlocked = sets(I[1], 2);
    listed(...locked, ...unlocked, ...sets(I[1], 1, 0));
    ec2Mock.on(DescribeLockedSnapshotsCommand).resolves({
      Snapshots: [
        { SnapshotId: locked[1].SnapshotId, LockState: 'governance', LockExpiresOn: new Date(NOW + 5 * DAY) },
        { SnapshotId: unlocked[0].SnapshotId, LockState: 'expired', LockExpiresOn: new Date(NOW - DAY) },
      ],
    });

    const { cursor, lines } = await step();

    expect(ec2Mock).toHaveReceivedCommandWith(DescribeLockedSnapshotsCommand, {
      SnapshotIds: expect.arrayContaining(idsOf([...locked, ...unlocked])),
    });
    expect(deletedIds()).toEqual(idsOf(unlocked));
    expect(cursor.summary!.prune).toMatchObject({ setsDeleted: 1, setsLocked: 1 });
    expect(cursor.result).toBe('succeeded');
    expect(lines.find((l) => l.message === 'snapshot set kept until its lock expires')?.attributes).toMatchObject({
      instanceId: I[1], scheduledTime: daysAgo(3), lockedUntil: new Date(NOW + 5 * DAY).toISOString(),
    });
  });

  test('GIVEN a snapshot of an old set backs an AMI WHEN the step runs THEN the set is kept whole, reported in use, and the run still succeeds', async () => {
    const inUse = sets(I[1], 3);
    listed(...inUse, ...sets(I[1], 1, 0));
    ec2Mock.on(DescribeImagesCommand).resolves({
      Images: [{ ImageId: 'ami-0123456789abcdef0', BlockDeviceMappings: [{ Ebs: { SnapshotId: inUse[1].SnapshotId } }] }],
    });

    const { cursor, lines } = await step();

    expect(ec2Mock).toHaveReceivedCommandWith(DescribeImagesCommand, {
      Owners: ['self'], Filters: [{ Name: 'block-device-mapping.snapshot-id', Values: idsOf(inUse) }], IncludeDeprecated: true, IncludeDisabled: true,
    });
    expect(deletedIds()).toEqual([]);
    expect(cursor.summary!.prune).toMatchObject({ setsDeleted: 0, setsInUse: 1, setsFailed: 0 });
    expect(cursor.result).toBe('succeeded');
    expect(lines.find((l) => l.level === 'warn')?.attributes).toMatchObject({ imageId: 'ami-0123456789abcdef0', instanceId: I[1] });
  });

  test('GIVEN an AMI registered after the look-up WHEN DeleteSnapshot answers InvalidSnapshot.InUse THEN the rest of that set is not deleted', async () => {
    const set = [snap(I[1], 3, 'a'), snap(I[1], 3, 'b'), snap(I[1], 3, 'c')];
    listed(...set, ...sets(I[1], 1, 0));
    ec2Mock.on(DeleteSnapshotCommand, { SnapshotId: set[1].SnapshotId })
      .rejects(ec2Error('InvalidSnapshot.InUse', `The snapshot ${set[1].SnapshotId} is currently in use by ami-0fedcba9876543210`));

    const { cursor } = await step();

    expect(ec2Mock.commandCalls(DeleteSnapshotCommand)).toHaveLength(2);
    expect(deletedIds()).not.toContain(set[2].SnapshotId);
    expect(cursor.summary!.prune).toMatchObject({ setsDeleted: 0, setsInUse: 1, snapshotsDeleted: 0 });
  });

  test('GIVEN an old set still pending WHEN the step runs THEN it is kept and counted pending', async () => {
    const pending = [snap(I[1], 3, 'a', { state: 'pending' }), snap(I[1], 3, 'b')];
    listed(...pending, ...sets(I[1], 1, 0));

    const { cursor } = await step();

    expect(deletedIds()).toEqual([]);
    expect(cursor.summary!.prune).toMatchObject({ setsPending: 1, setsDeleted: 0 });
  });

  test('GIVEN a dry run WHEN the step runs THEN nothing is deleted and the sets the rules would delete are counted', async () => {
    listed(...sets(I[1], 4, 3, 1, 0), ...sets(I[2], 5, 1, 0));

    const { cursor, lines } = await step({ ...REQUEST, dryRun: true });

    expect(ec2Mock).not.toHaveReceivedCommand(DeleteSnapshotCommand);
    expect(cursor.summary!.prune).toMatchObject({ setsToDelete: 3, setsDeleted: 0 });
    expect(lines.filter((l) => l.message === 'dry run: snapshot set would be deleted').map((l) => l.attributes.instanceId)).toEqual([I[1], I[1], I[2]]);
  });
});

describe('how a prune step reports what went wrong', () => {
  test('GIVEN a snapshot deleted already (InvalidSnapshot.NotFound) THEN the set counts as deleted with the snapshots this step deleted', async () => {
    const old = sets(I[1], 3);
    listed(...old, ...sets(I[1], 1, 0));
    ec2Mock.on(DeleteSnapshotCommand, { SnapshotId: old[0].SnapshotId }).rejects(ec2Error('InvalidSnapshot.NotFound'));

    const { cursor } = await step();

    expect(cursor.summary!.prune).toMatchObject({ setsDeleted: 1, snapshotsDeleted: 1, setsFailed: 0 });
    expect(cursor.result).toBe('succeeded');
  });

  test('GIVEN every snapshot of a set deleted already THEN the set is not counted again', async () => {
    const old = sets(I[1], 3);
    listed(...old, ...sets(I[1], 1, 0));
    ec2Mock.on(DeleteSnapshotCommand).rejects(ec2Error('InvalidSnapshot.NotFound'));

    const { cursor } = await step();

    expect(cursor.summary!.prune).toMatchObject({ setsDeleted: 0, snapshotsDeleted: 0, setsFailed: 0 });
  });

  test('GIVEN DeleteSnapshot refused (not allowed) THEN the set is reported by instance and code and the run fails', async () => {
    listed(...sets(I[1], 3), ...sets(I[1], 1, 0), ...sets(I[2], 3, 1, 0));
    ec2Mock.on(DeleteSnapshotCommand).rejects(ec2Error('UnauthorizedOperation', 'You are not authorized to perform this operation.'));

    const { cursor, lines } = await step();

    expect(cursor.result).toBe('failed');
    expect(cursor.summary!.prune).toMatchObject({ setsFailed: 2, setsDeleted: 0 });
    expect(cursor.failuresByCode).toEqual({ UnauthorizedOperation: 2 });
    expect(cursor.failures[0]).toMatchObject({ instanceId: I[1], outcome: 'prune-failed', code: 'UnauthorizedOperation' });
    expect(JSON.parse(cursor.summaryText!).prune.setsFailed).toBe(2);
    expect(lines.filter((l) => l.level === 'error').map((l) => l.attributes.instanceId)).toEqual([I[1], I[2]]);
  });
});

describe('throttling and server errors beyond the SDK\'s retries', () => {
  test('GIVEN DeleteSnapshot throttled, then a server error, then accepted THEN the same snapshot is deleted again and nothing fails', async () => {
    const old = sets(I[1], 3);
    listed(...old, ...sets(I[1], 1, 0));
    ec2Mock.on(DeleteSnapshotCommand, { SnapshotId: old[0].SnapshotId })
      .rejectsOnce(ec2Error('RequestLimitExceeded', 'Request limit exceeded.', 503))
      .rejectsOnce(ec2Error('InternalError', 'An internal error has occurred', 500))
      .resolves({});

    const { cursor } = await step();

    expect(ec2Mock.commandCalls(DeleteSnapshotCommand).map((c) => c.args[0].input.SnapshotId)).toEqual([
      old[0].SnapshotId, old[0].SnapshotId, old[0].SnapshotId, old[1].SnapshotId,
    ]);
    expect(cursor.summary!.prune).toMatchObject({ setsDeleted: 1, snapshotsDeleted: 2, setsFailed: 0 });
  });

  test('GIVEN throttling that lasts past the step\'s time WHEN the step stops THEN the set is left to the next step, neither failed nor passed', async () => {
    let clock = NOW;
    listed(...sets(I[1], 3, 1, 0), ...sets(I[2], 3, 1, 0));
    ec2Mock.on(DeleteSnapshotCommand).callsFake(() => {
      clock += 1_000;
      return Promise.reject(ec2Error('RequestLimitExceeded', 'Request limit exceeded.', 503));
    });

    const { cursor } = await step(REQUEST, pruneCursor(), { now: () => clock, stepBudgetMs: 5_000 });

    expect(cursor.phase).toBe('prune');
    expect(cursor.prune).toMatchObject({ stage: 'live', after: '', setsDeleted: 0, setsFailed: 0 });
    expect(cursor.failures).toEqual([]);
  });
});

describe('steps and cursor', () => {
  test('GIVEN more deletions than one step\'s budget WHEN steps run one after the other THEN each set is deleted once and the run ends', async () => {
    const all = [I[1], I[2], I[3], I[4], I[5]];
    live(...all);
    const snapshots = all.flatMap((id) => sets(id, 3, 2, 1, 0));
    let clock = NOW;
    const deleted = new Set<string>();
    // Listing reflects what is deleted; each delete takes a second of the step's 2.5 s budget.
    ec2Mock.on(DescribeSnapshotsCommand).callsFake(() => Promise.resolve({ Snapshots: snapshots.filter((s) => !deleted.has(s.SnapshotId!)) }));
    ec2Mock.on(DeleteSnapshotCommand).callsFake((input) => {
      clock += 1_000;
      deleted.add(input.SnapshotId);
      return Promise.resolve({});
    });
    const overrides = { now: () => clock, stepBudgetMs: 2_500, concurrency: 1 };

    let cursor = pruneCursor();
    const afters: string[] = [];
    for (let n = 0; n < 20 && cursor.phase === 'prune'; n++) {
      clock += 60_000;
      ({ cursor } = await step(REQUEST, cursor, overrides));
      if (cursor.phase === 'prune' && cursor.prune!.stage === 'live') afters.push(cursor.prune!.after);
    }

    expect(cursor.phase).toBe('done');
    expect(deletedIds()).toEqual([...deleted].sort());
    expect(deleted.size).toBe(5 * 2 * 2);
    expect(ec2Mock.commandCalls(DeleteSnapshotCommand)).toHaveLength(20);
    expect(cursor.summary!.prune).toMatchObject({ setsDeleted: 10, snapshotsDeleted: 20 });
    // Each step hands on the last instance it finished, and the next one starts after it.
    expect(afters.length).toBeGreaterThan(2);
    expect(afters[0]).not.toBe('');
    expect([...new Set(afters)].sort()).toEqual(afters);
  });

  test('GIVEN a cursor past some instances WHEN the step runs THEN their sets are not touched', async () => {
    const third = sets(I[3], 3);
    listed(...sets(I[1], 3, 1, 0), ...sets(I[2], 3, 1, 0), ...third, ...sets(I[3], 1, 0));

    await step(REQUEST, pruneCursor({ after: I[2] }));

    expect(deletedIds()).toEqual(idsOf(third));
  });

  test('GIVEN the invocation is about to run out WHEN a step starts THEN it deletes nothing and hands the same position on', async () => {
    listed(...sets(I[1], 3, 1, 0));

    const { cursor } = await step(REQUEST, pruneCursor(), { remainingMs: () => 1_000, reserveMs: 30_000 });

    expect(deletedIds()).toEqual([]);
    expect(cursor.phase).toBe('prune');
    expect(cursor.prune!.after).toBe('');
  });

  test('GIVEN a forged prune cursor THEN parseCursor rejects it naming the field', () => {
    expect(() => parseCursor({ ...pruneCursor(), prune: { ...newPruneProgress(), after: 'i-nope' } })).toThrow('prune.after must be');
    expect(() => parseCursor({ ...pruneCursor(), prune: { ...newPruneProgress(), setsDeleted: -1 } })).toThrow('prune must hold');
    expect(() => parseCursor({ ...newCursor(0), phase: 'prune' })).toThrow('the prune phase needs prune');
  });
});

describe('look-ups of locks and AMIs that fail', () => {
  test.each([
    ['DescribeLockedSnapshots', DescribeLockedSnapshotsCommand],
    ['DescribeImages', DescribeImagesCommand],
  ] as const)('GIVEN %s fails (an endpoint without it) WHEN pruning THEN the step warns once, deletes, and reports what EC2 refuses', async (_name, command) => {
    const locked = sets(I[1], 3);
    listed(...locked, ...sets(I[1], 1, 0), ...sets(I[2], 3, 1, 0));
    (ec2Mock.on(command as any) as any).rejects(ec2Error('InvalidAction', 'The action is not valid for this web service.'));
    ec2Mock.on(DeleteSnapshotCommand, { SnapshotId: locked[0].SnapshotId }).rejects(ec2Error('SnapshotLocked', 'The snapshot is locked.'));

    const { cursor, lines } = await step();

    expect(ec2Mock.commandCalls(command as any)).toHaveLength(1);
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    expect(cursor.summary!.prune).toMatchObject({ setsDeleted: 1, setsFailed: 1 });
    expect(cursor.failures[0]).toMatchObject({ instanceId: I[1], outcome: 'prune-failed', code: 'SnapshotLocked' });
  });
});
