/**
 * The prune step on the real EC2 SDK against the EC2 simulator: DeleteSnapshot's own token bucket
 * and throttling, answers that fail after the effect, AMIs and locks made with EC2's own calls,
 * pending snapshots. Every case asserts which snapshots are left: nothing that retention keeps is
 * ever deleted, every set it does not keep is gone or reported.
 */
import { LockSnapshotCommand } from '@aws-sdk/client-ec2';
import { Ec2SimulatorOptions, SimInstance, SimSnapshotSeed } from './support/ec2-simulator';
import { CapturedLog, FaultHarness, fleet, runRequest } from './support/fault-harness';
import { Ec2ClientsOptions } from '../lambda/clients';
import { newCursor, newPruneProgress, RunCursor } from '../lambda/ledger';
import { PruneEnvironment, runPruneStep } from '../lambda/prune-step';
import { INSTANCE_ID_TAG, parseOccurrence, SCHEDULE_TAG, SCHEDULED_TIME_TAG, SnapshotRunRequest } from '../src/private/request-contract';

const DAY = 86_400_000;
const CURRENT = '2026-11-24T02:30:00Z';
const REQUEST: SnapshotRunRequest = runRequest({ retention: { count: 2, timeZone: 'Etc/UTC', goneInstanceSeconds: 30 * 86_400 } });
const OCCURRENCE = parseOccurrence(REQUEST.scheduleId, { scheduledTime: CURRENT }, 'exec-0001');

const daysAgo = (days: number) => new Date(Date.parse(CURRENT) - days * DAY).toISOString().replace('.000Z', 'Z');

let faults: FaultHarness | undefined;

afterEach(async () => {
  await faults?.stop();
  faults = undefined;
});

/** Sets of every instance for each of `days` (0: the run's own occurrence). */
function seeds(instances: SimInstance[], days: number[], state: 'completed' | 'pending' = 'completed'): SimSnapshotSeed[] {
  return instances.flatMap((i) => days.flatMap((d) => i.volumeIds.map((volumeId) => ({
    volumeId,
    instanceId: i.instanceId,
    startTimeMs: Date.parse(daysAgo(d)) + 1_000,
    state,
    tags: { [SCHEDULE_TAG]: REQUEST.scheduleId, [SCHEDULED_TIME_TAG]: daysAgo(d), [INSTANCE_ID_TAG]: i.instanceId },
  }))));
}

async function setUp(instances: SimInstance[], options: Ec2SimulatorOptions = {}): Promise<FaultHarness> {
  faults = await new FaultHarness({ instances, ...options }).start();
  return faults;
}

/** Runs prune steps until the run ends (at most 20). */
async function prune(harness: FaultHarness, clients: Ec2ClientsOptions = {}, request = REQUEST, overrides: Partial<PruneEnvironment> = {}) {
  let cursor: RunCursor = { ...newCursor(Date.now()), phase: 'prune', prune: newPruneProgress() };
  const log = new CapturedLog();
  for (let n = 0; n < 20 && cursor.phase === 'prune'; n++) {
    // Fast by default: the pace itself is what two of the cases set.
    const { ec2, ec2Delete } = harness.clientsFor({ deleteSnapshotsPerSec: 2_000, ...clients });
    cursor = await runPruneStep(request, OCCURRENCE, JSON.parse(JSON.stringify(cursor)), {
      ec2,
      ec2Delete,
      log,
      stepBudgetMs: 60_000,
      reserveMs: 0,
      concurrency: 8,
      backoffBaseMs: 2,
      backoffMaxMs: 20,
      remainingMs: () => 900_000,
      ...overrides,
    });
  }
  return { cursor, log };
}

/** instance id -> scheduled times of the sets left, oldest first. */
function setsLeft(harness: FaultHarness): Map<string, string[]> {
  const out = new Map<string, Set<string>>();
  for (const s of harness.sim.snapshots) {
    const t = s.tags[SCHEDULED_TIME_TAG];
    if (!out.has(s.instanceId)) out.set(s.instanceId, new Set());
    out.get(s.instanceId)!.add(t);
  }
  return new Map([...out].map(([id, times]) => [id, [...times].sort()]));
}

test('GIVEN EC2\'s DeleteSnapshot bucket smaller than the client\'s pace WHEN pruning THEN throttled calls are retried and exactly the old sets go', async () => {
  const instances = fleet(12, { volumes: 2 });
  const harness = await setUp(instances, { deleteSnapshotBucket: { capacity: 5, refillPerSec: 200 } });
  harness.sim.seedSnapshots(seeds(instances, [3, 2, 1, 0]));

  const { cursor } = await prune(harness, { deleteSnapshotsPerSec: 1000 });

  expect(harness.sim.calls.filter((c) => c.action === 'DeleteSnapshot' && c.errorCode === 'RequestLimitExceeded').length).toBeGreaterThan(0);
  expect(cursor.summary!.prune).toMatchObject({ setsDeleted: 24, snapshotsDeleted: 48, setsFailed: 0 });
  expect(cursor.result).toBe('succeeded');
  for (const i of instances) expect(setsLeft(harness).get(i.instanceId)).toEqual([daysAgo(1), daysAgo(0)]);
});

test('GIVEN the client paces at EC2\'s bucket WHEN pruning THEN no DeleteSnapshot is throttled', async () => {
  const instances = fleet(10, { volumes: 3 });
  const harness = await setUp(instances, { deleteSnapshotBucket: { capacity: 100, refillPerSec: 400 } });
  harness.sim.seedSnapshots(seeds(instances, [4, 3, 1, 0]));

  const { cursor } = await prune(harness, { deleteSnapshotsPerSec: 400 });

  expect(harness.sim.deletions).toHaveLength(10 * 2 * 3);
  expect(harness.sim.calls.filter((c) => c.action === 'DeleteSnapshot' && c.errorCode)).toEqual([]);
  expect(cursor.apiCalls.DeleteSnapshot).toBe(60);
});

test('GIVEN a server error after the delete took effect WHEN the SDK retries THEN InvalidSnapshot.NotFound is success and nothing fails', async () => {
  const instances = fleet(3, { volumes: 2 });
  const harness = await setUp(instances);
  harness.sim.seedSnapshots(seeds(instances, [3, 1, 0]));
  harness.sim.addFault(({ action, actionIndex }) => (action === 'DeleteSnapshot' && actionIndex % 2 === 0
    ? { status: 500, code: 'InternalError', afterEffect: true } : undefined));

  const { cursor } = await prune(harness);

  expect(cursor.summary!.prune).toMatchObject({ setsFailed: 0 });
  expect(cursor.result).toBe('succeeded');
  for (const i of instances) expect(setsLeft(harness).get(i.instanceId)).toEqual([daysAgo(1), daysAgo(0)]);
});

test('GIVEN an AMI made from one old snapshot and a lock on another WHEN pruning THEN both sets stay whole and are reported, the rest go', async () => {
  const instances = fleet(3, { volumes: 2 });
  const harness = await setUp(instances);
  const seeded = harness.sim.seedSnapshots(seeds(instances, [3, 1, 0]));
  const old = (id: string) => seeded.filter((s) => s.instanceId === id && s.tags[SCHEDULED_TIME_TAG] === daysAgo(3));
  harness.sim.registerImage([old(instances[0].instanceId)[1].snapshotId]);
  const { ec2 } = harness.clientsFor();
  await ec2.send(new LockSnapshotCommand({ SnapshotId: old(instances[1].instanceId)[0].snapshotId, LockMode: 'governance', LockDuration: 7 }));

  const { cursor, log } = await prune(harness);

  const left = setsLeft(harness);
  expect(left.get(instances[0].instanceId)).toEqual([daysAgo(3), daysAgo(1), daysAgo(0)]);
  expect(left.get(instances[1].instanceId)).toEqual([daysAgo(3), daysAgo(1), daysAgo(0)]);
  expect(left.get(instances[2].instanceId)).toEqual([daysAgo(1), daysAgo(0)]);
  expect(harness.sim.snapshots.filter((s) => s.instanceId !== instances[2].instanceId)).toHaveLength(2 * 3 * 2);
  expect(cursor.summary!.prune).toMatchObject({ setsDeleted: 1, setsInUse: 1, setsLocked: 1, setsFailed: 0 });
  expect(cursor.result).toBe('succeeded');
  expect(log.lines.filter((l) => l.level === 'warn').map((l) => l.attributes.instanceId)).toEqual([instances[0].instanceId]);
});

test('GIVEN old sets still pending WHEN pruning THEN they are kept; once completed, a later run deletes them', async () => {
  const instances = fleet(2, { volumes: 1 });
  const harness = await setUp(instances);
  const pending = harness.sim.seedSnapshots(seeds(instances, [3], 'pending'));
  harness.sim.seedSnapshots(seeds(instances, [1, 0]));

  const first = await prune(harness);
  expect(harness.sim.deletions).toHaveLength(0);
  expect(first.cursor.summary!.prune).toMatchObject({ setsPending: 2, setsDeleted: 0 });

  for (const s of pending) harness.sim.setSnapshotState(s.snapshotId, 'completed');
  const second = await prune(harness);
  expect(harness.sim.deletedSnapshotIds().sort()).toEqual(pending.map((s) => s.snapshotId).sort());
  expect(second.cursor.summary!.prune).toMatchObject({ setsDeleted: 2 });
});

test('GIVEN a dry run WHEN pruning THEN DeleteSnapshot is never called and the sets are counted', async () => {
  const instances = fleet(4, { volumes: 2 });
  const harness = await setUp(instances);
  harness.sim.seedSnapshots(seeds(instances, [5, 3, 1, 0]));

  const { cursor } = await prune(harness, {}, { ...REQUEST, dryRun: true });

  expect(harness.sim.countCalls('DeleteSnapshot')).toBe(0);
  expect(cursor.summary!.prune).toMatchObject({ setsToDelete: 8, setsDeleted: 0 });
});

test('GIVEN an instance terminated 40 days ago WHEN pruning THEN all its sets go (count and the newest-set protection lapsed); the live ones keep two', async () => {
  const instances = fleet(3, { volumes: 1 });
  const harness = await setUp(instances);
  harness.sim.seedSnapshots(seeds(instances.slice(0, 2), [3, 1, 0]));
  harness.sim.seedSnapshots(seeds(instances.slice(2), [42, 41, 40]));
  harness.sim.terminate(instances[2].instanceId);

  const { cursor } = await prune(harness);

  expect(setsLeft(harness).get(instances[2].instanceId)).toBeUndefined();
  expect(setsLeft(harness).get(instances[0].instanceId)).toEqual([daysAgo(1), daysAgo(0)]);
  expect(cursor.summary!.prune).toMatchObject({ setsDeleted: 2 + 3 });
});

test('GIVEN many live instances WHEN pruning THEN their snapshots are listed by batches of instance ids, never one call per instance', async () => {
  const instances = fleet(250, { volumes: 1 });
  const harness = await setUp(instances);
  harness.sim.seedSnapshots(seeds(instances, [2, 1, 0]));

  const { cursor } = await prune(harness);

  expect(cursor.summary!.prune).toMatchObject({ setsDeleted: 250 });
  // 3 batches of live instances, one listing for the gone ones.
  expect(harness.sim.countCalls('DescribeSnapshots')).toBe(3 + 1);
});
