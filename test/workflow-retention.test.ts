/**
 * Retention through the synthesized workflow: aws-local-stepfunctions runs the definition the
 * construct renders with `retention`, its worker on the real EC2 SDK against the EC2 simulator.
 * Creation, then pruning, in one execution; a killed prune step, a lost answer and a second
 * delivery of the occurrence delete nothing twice and nothing retention keeps.
 *
 * Time is compressed 100 times, as in the fault matrix.
 */
import { LockSnapshotCommand } from '@aws-sdk/client-ec2';
import { Duration } from 'aws-cdk-lib';
import { Retention, SnapshotLock } from '../src';
import { SimInstance, SimSnapshotSeed } from './support/ec2-simulator';
import { FAST_SETTINGS, FaultHarness, fleet } from './support/fault-harness';
import { synthesizeWorkflow, WorkflowHarness, WorkflowHarnessOptions } from './support/workflow-harness';
import { INSTANCE_ID_TAG, SCHEDULE_TAG, SCHEDULED_TIME_TAG } from '../src/private/request-contract';

jest.setTimeout(30_000);

const SCALE = 100;
const TIMING: WorkflowHarnessOptions = {
  settings: { ...FAST_SETTINGS, concurrency: 4, settleWindowMs: 900, lookIntervalMs: 100, perVolumeRetryDelayMs: 160, stepBudgetMs: 60_000 },
  recoveryWaitMs: 120_000 / SCALE,
  retryPassWaitMs: 300_000 / SCALE,
  clients: { createSnapshotsPerSec: 5 * SCALE, createSnapshotsBurst: 100, deleteSnapshotsPerSec: 5 * SCALE },
};
const DAY = 86_400_000;
const SCHEDULED_TIME = '2026-11-24T02:30:00Z';
const daysAgo = (days: number) => new Date(Date.parse(SCHEDULED_TIME) - days * DAY).toISOString().replace('.000Z', 'Z');

let faults: FaultHarness | undefined;
let harness: WorkflowHarness | undefined;

afterEach(async () => {
  harness?.dispose();
  await faults?.stop();
  harness = undefined;
  faults = undefined;
});

async function setUp(instances: SimInstance[], props: Parameters<typeof synthesizeWorkflow>[0]): Promise<WorkflowHarness> {
  faults = await new FaultHarness({ instances, perVolumeIntervalMs: 150 }).start();
  harness = new WorkflowHarness(synthesizeWorkflow(props), faults, TIMING);
  return harness;
}

/** Earlier sets of this schedule for each of `days`. */
function earlier(h: WorkflowHarness, instances: SimInstance[], days: number[]): SimSnapshotSeed[] {
  const scheduleId = h.workflow.construct.scheduleId;
  return instances.flatMap((i) => days.flatMap((d) => i.volumeIds.map((volumeId) => ({
    volumeId,
    instanceId: i.instanceId,
    startTimeMs: Date.parse(daysAgo(d)) + 1_000,
    state: 'completed' as const,
    tags: { [SCHEDULE_TAG]: scheduleId, [SCHEDULED_TIME_TAG]: daysAgo(d), [INSTANCE_ID_TAG]: i.instanceId },
  }))));
}

/** instance id -> scheduled times of its sets, oldest first. */
function setsLeft(h: WorkflowHarness): Map<string, string[]> {
  const out = new Map<string, Set<string>>();
  for (const s of h.faults.sim.snapshots) {
    if (!out.has(s.instanceId)) out.set(s.instanceId, new Set());
    out.get(s.instanceId)!.add(s.tags[SCHEDULED_TIME_TAG]);
  }
  return new Map([...out].map(([id, t]) => [id, [...t].sort()]));
}

const delivery = (id: string) => ({ scheduledTime: SCHEDULED_TIME, schedulerExecutionId: id });

test('GIVEN Retention.count(3) and three earlier sets WHEN the occurrence runs THEN it makes one set and deletes the oldest, in one execution', async () => {
  const instances = fleet(6, { volumes: 2 });
  const h = await setUp(instances, { retention: Retention.count(3) });
  h.faults.sim.seedSnapshots(earlier(h, instances, [3, 2, 1]));
  // A look-alike another schedule made, older than everything: never this schedule's to delete.
  const foreign = h.faults.sim.seedSnapshots([{
    volumeId: instances[0].volumeIds[0],
    instanceId: instances[0].instanceId,
    startTimeMs: 0,
    tags: { [SCHEDULE_TAG]: 'Other/Schedule', [SCHEDULED_TIME_TAG]: daysAgo(30), [INSTANCE_ID_TAG]: instances[0].instanceId },
  }]);

  const result = await h.run(delivery('exec-1'));

  expect(result.error).toBeUndefined();
  expect(result.output).toMatchObject({
    result: 'succeeded',
    counts: { selected: 6, created: 6, failed: 0 },
    prune: { setsDeleted: 6, snapshotsDeleted: 12, setsFailed: 0 },
  });
  for (const i of instances) expect(setsLeft(h).get(i.instanceId)).toEqual(expect.arrayContaining([daysAgo(2), daysAgo(1), SCHEDULED_TIME]));
  expect(h.faults.sim.snapshots.map((s) => s.snapshotId)).toContain(foreign[0].snapshotId);
  expect(h.faults.sim.deletions.every((d) => d.snapshot.tags[SCHEDULED_TIME_TAG] === daysAgo(3))).toBe(true);
  expect(h.published.at(-1)!.values).toMatchObject({ SnapshotSetsDeleted: 6, SnapshotsDeleted: 12, PruneFailures: 0 });
});

test('GIVEN the worker is killed mid-prune and an answer is lost WHEN the workflow repeats the step THEN every old set is deleted once', async () => {
  const instances = fleet(8, { volumes: 1 });
  const h = await setUp(instances, { retention: Retention.count(1) });
  h.faults.sim.seedSnapshots(earlier(h, instances, [3, 2]));
  let pruneSteps = 0;

  const result = await h.run(delivery('exec-1'), {
    // The first prune step is killed after 5 deletions; the next one's answer is lost.
    kill: (index) => {
      if (h.workerCalls[index].input.cursor?.phase !== 'prune') return undefined;
      pruneSteps++;
      return pruneSteps === 1 ? 5 : undefined;
    },
    afterWorker: (call) => {
      if (call.input.cursor?.phase === 'prune' && pruneSteps === 2) {
        const lost = new Error('the answer was lost');
        lost.name = 'Lambda.ServiceException';
        throw lost;
      }
    },
  });

  expect(result.output).toMatchObject({ result: 'succeeded', prune: { setsFailed: 0 } });
  expect(pruneSteps).toBeGreaterThanOrEqual(3);
  expect(h.workerCalls.filter((c) => c.error?.name === 'Sandbox.Timedout')).toHaveLength(1);
  for (const i of instances) expect(setsLeft(h).get(i.instanceId)).toEqual([SCHEDULED_TIME]);
  expect(h.faults.sim.deletions).toHaveLength(16);
  expect(new Set(h.faults.sim.deletions.map((d) => d.snapshotId)).size).toBe(16);
});

test('GIVEN a second delivery of the occurrence after the run WHEN it starts THEN it ends as a duplicate and deletes nothing more', async () => {
  const instances = fleet(4, { volumes: 1 });
  const h = await setUp(instances, { retention: Retention.count(2) });
  h.faults.sim.seedSnapshots(earlier(h, instances, [3, 2, 1]));

  await h.run(delivery('exec-1'));
  const deletedAfterFirst = h.faults.sim.deletions.length;
  const second = await h.run(delivery('exec-2'));

  expect(deletedAfterFirst).toBe(8);
  expect(second.output).toMatchObject({ status: 'duplicate' });
  expect(h.faults.sim.deletions).toHaveLength(8);
});

test('GIVEN a compliance lock WHEN the run creates sets THEN each snapshot is locked; the prune phase keeps locked old sets', async () => {
  const instances = fleet(3, { volumes: 2 });
  const h = await setUp(instances, { retention: Retention.count(1), lock: SnapshotLock.compliance(Duration.days(7), Duration.hours(1)) });
  const seeded = h.faults.sim.seedSnapshots(earlier(h, instances, [2]));
  const { ec2 } = h.faults.clientsFor();
  await ec2.send(new LockSnapshotCommand({ SnapshotId: seeded[0].snapshotId, LockMode: 'governance', LockDuration: 3 }));

  const result = await h.run(delivery('exec-1'));

  expect(result.output).toMatchObject({ result: 'succeeded', counts: { created: 3, lockFailed: 0 }, prune: { setsDeleted: 2, setsLocked: 1 } });
  const created = h.faults.sim.snapshots.filter((s) => s.tags[SCHEDULED_TIME_TAG] === SCHEDULED_TIME);
  expect(created).toHaveLength(6);
  const locks = h.faults.sim.calls.filter((c) => c.action === 'LockSnapshot' && !c.errorCode).map((c) => c.params.SnapshotId);
  expect(locks.sort()).toEqual([seeded[0].snapshotId, ...created.map((s) => s.snapshotId)].sort());
  expect(setsLeft(h).get(instances[0].instanceId)).toEqual([daysAgo(2), SCHEDULED_TIME]);
});
