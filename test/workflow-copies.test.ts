/**
 * Copies to other Regions through the synthesized workflow: aws-local-stepfunctions runs the
 * definition the construct renders with `copies`, its worker on the real EC2 SDK against the EC2
 * simulator, which serves every Region at one endpoint. Whole sets, once completed; never more
 * than EC2's 20 copies in progress per destination; a lost CopySnapshot answer does not make a
 * second copy; each destination keeps its own retention.
 *
 * Time is compressed 100 times, as in the fault matrix.
 */
import { Retention } from '../src';
import { SimInstance, SimSnapshot } from './support/ec2-simulator';
import { FAST_SETTINGS, FaultHarness, fleet } from './support/fault-harness';
import { synthesizeWorkflow, WorkflowHarness, WorkflowHarnessOptions } from './support/workflow-harness';
import { INSTANCE_ID_TAG, SCHEDULE_TAG, SCHEDULED_TIME_TAG, SOURCE_REGION_TAG, SOURCE_SNAPSHOT_TAG } from '../src/private/request-contract';

jest.setTimeout(30_000);

const SCALE = 100;
const TIMING: WorkflowHarnessOptions = {
  settings: { ...FAST_SETTINGS, concurrency: 4, settleWindowMs: 900, lookIntervalMs: 100, perVolumeRetryDelayMs: 160, stepBudgetMs: 60_000 },
  recoveryWaitMs: 120_000 / SCALE,
  retryPassWaitMs: 300_000 / SCALE,
  copyWaitMs: 300_000 / SCALE,
  clients: { createSnapshotsPerSec: 5 * SCALE, createSnapshotsBurst: 100, deleteSnapshotsPerSec: 5 * SCALE },
};
const SOURCE = 'us-east-1';
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

async function setUp(
  instances: SimInstance[],
  props: Parameters<typeof synthesizeWorkflow>[0],
  sim: Record<string, unknown> = {},
): Promise<WorkflowHarness> {
  faults = await new FaultHarness({ instances, perVolumeIntervalMs: 150, region: SOURCE, ...sim }).start();
  harness = new WorkflowHarness(synthesizeWorkflow(props), faults, TIMING);
  return harness;
}

const delivery = (id: string) => ({ scheduledTime: SCHEDULED_TIME, schedulerExecutionId: id });

/** source snapshot id -> its copies in `region`. */
function copiesBySource(h: WorkflowHarness, region: string): Map<string, SimSnapshot[]> {
  const out = new Map<string, SimSnapshot[]>();
  for (const c of h.faults.sim.snapshotsIn(region)) {
    const source = c.tags[SOURCE_SNAPSHOT_TAG];
    if (!source) continue;
    out.set(source, [...(out.get(source) ?? []), c]);
  }
  return out;
}

/** Every snapshot of the run's occurrence in the source Region has exactly one copy in `region`, carrying the set's identity. */
function expectOneCopyEach(h: WorkflowHarness, region: string): void {
  const sources = h.faults.sim.snapshots.filter((s) => s.tags[SCHEDULED_TIME_TAG] === SCHEDULED_TIME);
  const copies = copiesBySource(h, region);
  expect(sources.length).toBeGreaterThan(0);
  expect(sources.filter((s) => copies.get(s.snapshotId)?.length !== 1).map((s) => `${s.snapshotId}: ${copies.get(s.snapshotId)?.length ?? 0}`)).toEqual([]);
  for (const s of sources) {
    const [copy] = copies.get(s.snapshotId)!;
    expect(copy.tags).toMatchObject({
      [SCHEDULE_TAG]: s.tags[SCHEDULE_TAG],
      [SCHEDULED_TIME_TAG]: SCHEDULED_TIME,
      [INSTANCE_ID_TAG]: s.instanceId,
      [SOURCE_REGION_TAG]: SOURCE,
    });
  }
}

test('GIVEN copies to two Regions WHEN the occurrence runs THEN every snapshot of every set has one copy in each, tagged with its set, and the run succeeds', async () => {
  const instances = fleet(6, { volumes: 2 });
  const h = await setUp(instances, { copies: [{ region: 'eu-west-1' }, { region: 'ap-southeast-2' }] });

  const result = await h.run(delivery('exec-1'));

  expect(result.error).toBeUndefined();
  expect(result.output).toMatchObject({
    result: 'succeeded',
    counts: { created: 6 },
    copies: [{ region: 'eu-west-1', copied: 12, failed: 0 }, { region: 'ap-southeast-2', copied: 12, failed: 0 }],
  });
  expectOneCopyEach(h, 'eu-west-1');
  expectOneCopyEach(h, 'ap-southeast-2');
  expect(h.published.at(-1)!.values).toMatchObject({ SnapshotsCopied: 24, CopyFailures: 0 });
});

test('GIVEN sources still pending and copies that take time WHEN the run copies THEN it copies only completed sets, never more than 20 at once, and waits between steps', async () => {
  const instances = fleet(30, { volumes: 1 });
  const h = await setUp(instances, { copies: [{ region: 'eu-west-1' }] }, { snapshotCompletionMs: 400, copyCompletionMs: 300 });

  const result = await h.run(delivery('exec-1'));

  expect(result.output).toMatchObject({ result: 'succeeded', copies: [{ region: 'eu-west-1', copied: 30, failed: 0 }] });
  expectOneCopyEach(h, 'eu-west-1');
  const refused = h.faults.sim.calls.filter((c) => c.action === 'CopySnapshot' && c.errorCode);
  expect(refused.map((c) => c.errorCode)).toEqual([]);
  expect(h.workerCalls.filter((c) => c.input.cursor?.phase === 'copy-wait').length).toBeGreaterThanOrEqual(2);
});

test('GIVEN CopySnapshot answers 500 after it made the copy WHEN the next step plans THEN it finds the copy and does not make a second one', async () => {
  const instances = fleet(5, { volumes: 2 });
  const h = await setUp(instances, { copies: [{ region: 'eu-west-1' }] });
  h.faults.sim.addFault(({ action, actionIndex }) => (action === 'CopySnapshot' && actionIndex % 3 === 0
    ? { status: 500, code: 'InternalError', afterEffect: true } : undefined));

  const result = await h.run(delivery('exec-1'));

  expect(result.output).toMatchObject({ result: 'succeeded' });
  expectOneCopyEach(h, 'eu-west-1');
  expect(h.faults.sim.countCalls('CopySnapshot')).toBe(10);
});

test('GIVEN a copy rule with its own retention and earlier copies WHEN the run copies THEN the destination keeps the newest sets by its own rule', async () => {
  const instances = fleet(3, { volumes: 1 });
  const h = await setUp(instances, { retention: Retention.count(5), copies: [{ region: 'eu-west-1', retention: Retention.count(2) }] });
  const scheduleId = h.workflow.construct.scheduleId;
  for (const i of instances) {
    for (const d of [3, 2, 1]) {
      const [source] = h.faults.sim.seedSnapshots([{
        volumeId: i.volumeIds[0],
        instanceId: i.instanceId,
        startTimeMs: Date.parse(daysAgo(d)) + 1_000,
        state: 'completed',
        tags: { [SCHEDULE_TAG]: scheduleId, [SCHEDULED_TIME_TAG]: daysAgo(d), [INSTANCE_ID_TAG]: i.instanceId },
      }]);
      h.faults.sim.seedSnapshots([{
        region: 'eu-west-1',
        volumeId: i.volumeIds[0],
        instanceId: i.instanceId,
        startTimeMs: Date.parse(daysAgo(d)) + 60_000,
        state: 'completed',
        sourceSnapshotId: source.snapshotId,
        sourceRegion: SOURCE,
        tags: {
          [SCHEDULE_TAG]: scheduleId,
          [SCHEDULED_TIME_TAG]: daysAgo(d),
          [INSTANCE_ID_TAG]: i.instanceId,
          [SOURCE_SNAPSHOT_TAG]: source.snapshotId,
          [SOURCE_REGION_TAG]: SOURCE,
        },
      }]);
    }
  }

  const result = await h.run(delivery('exec-1'));

  expect(result.output).toMatchObject({ result: 'succeeded', copies: [{ region: 'eu-west-1', copied: 3, failed: 0 }] });
  for (const i of instances) {
    const left = h.faults.sim.snapshotsIn('eu-west-1').filter((s) => s.instanceId === i.instanceId).map((s) => s.tags[SCHEDULED_TIME_TAG]).sort();
    expect(left).toEqual([daysAgo(1), SCHEDULED_TIME]);
  }
  // The source keeps its own five.
  expect(h.faults.sim.snapshots.filter((s) => s.instanceId === instances[0].instanceId)).toHaveLength(4);
});

test('GIVEN one snapshot of a set copied already WHEN the run copies THEN only the other one is copied', async () => {
  const instances = fleet(1, { volumes: 2 });
  const h = await setUp(instances, { copies: [{ region: 'eu-west-1' }] });
  let copiedFirst = false;
  const result = await h.run(delivery('exec-1'), {
    afterWorker: (call) => {
      // After the set is made, one of its snapshots gets a copy made by hand with the library's tags.
      if (copiedFirst || call.output?.phase !== 'copy') return;
      copiedFirst = true;
      const source = h.faults.sim.snapshots.find((s) => s.tags[SCHEDULED_TIME_TAG] === SCHEDULED_TIME)!;
      h.faults.sim.seedSnapshots([{
        region: 'eu-west-1',
        volumeId: source.volumeId,
        instanceId: source.instanceId,
        state: 'completed',
        sourceSnapshotId: source.snapshotId,
        sourceRegion: SOURCE,
        tags: { ...source.tags, [SOURCE_SNAPSHOT_TAG]: source.snapshotId, [SOURCE_REGION_TAG]: SOURCE },
      }]);
    },
  });

  expect(result.output).toMatchObject({ result: 'succeeded', copies: [{ copied: 1 }] });
  expectOneCopyEach(h, 'eu-west-1');
});
