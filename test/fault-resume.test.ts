/**
 * runSnapshotStep with the real SDK against the EC2 simulator: runs longer than one step, steps
 * repeated from the same cursor after a crash, retry passes and second executions of an occurrence.
 * Identity is the occurrence (schedule + scheduled time): whatever repeats, one set per instance.
 */
import { FAST_SETTINGS, FaultHarness, fleet, ids, runRequest, SCHEDULED_TIME, testOccurrence } from './support/fault-harness';
import { newCursor, parseCursor, RunCursor } from '../lambda/ledger';
import { runSnapshotStep } from '../lambda/snapshot-step';
import { EXECUTION_ID_TAG, INSTANCE_ID_TAG, Occurrence, SCHEDULE_TAG, SCHEDULED_TIME_TAG } from '../src/private/request-contract';

let h: FaultHarness;
afterEach(async () => h?.stop());

async function start(options: ConstructorParameters<typeof FaultHarness>[0]): Promise<FaultHarness> {
  h = new FaultHarness(options);
  return h.start();
}

/** The cursor as the workflow hands it to the next step: through JSON, checked. */
function handOver(cursor: RunCursor): RunCursor {
  return parseCursor(JSON.parse(JSON.stringify(cursor)));
}

type Overrides = Parameters<FaultHarness['environment']>[0];

/** One step with a fresh environment (a cold start), from a copy of `cursor`. */
async function step(cursor: RunCursor, overrides: Overrides = {}, occurrence: Occurrence = testOccurrence()): Promise<RunCursor> {
  return handOver(await runSnapshotStep(runRequest(), occurrence, handOver(cursor), h.environment(overrides)));
}

/** Runs steps until the run is done; returns every cursor and the CreateSnapshots calls of each step. */
async function runToEnd(overrides: () => Overrides, occurrence: Occurrence = testOccurrence()) {
  const cursors: RunCursor[] = [];
  const createdBy: string[][] = [];
  let cursor = newCursor(Date.now());
  while (cursor.phase !== 'done' && cursors.length < 50) {
    const before = h.createOrder().length;
    cursor = await step(cursor, overrides(), occurrence);
    cursors.push(cursor);
    createdBy.push(h.createOrder().slice(before));
  }
  return { cursors, createdBy, last: cursor };
}

const describeSnapshotsCalls = () => h.sim.calls.filter((c) => c.action === 'DescribeSnapshots');

/**
 * Windows of `size` instances: 100 calls per second for size x 10 ms, on a step clock that stands
 * still (the listing uses none of the budget, whatever the machine's speed).
 */
function windowsOf(size: number, concurrency = 1): Overrides {
  return { createSnapshotsPerSecond: 100, now: () => 1_000_000, settings: { ...FAST_SETTINGS, concurrency, stepBudgetMs: size * 10 } };
}

describe('a run longer than one step', () => {
  test('GIVEN a fleet larger than one step\'s window WHEN each step hands its cursor to the next THEN the run completes over several steps, in id order, each instance exactly once', async () => {
    const instances = fleet(25);
    await start({ instances });

    const { cursors, createdBy, last } = await runToEnd(() => windowsOf(4, 3));

    expect(cursors).toHaveLength(7);
    expect(cursors.map((c) => c.phase)).toEqual([...Array(6).fill('snapshot'), 'done']);
    expect(last).toEqual(expect.objectContaining({ result: 'succeeded', pass: 1, steps: 7 }));
    expect(last.counts).toEqual(expect.objectContaining({ selected: 25, created: 25, alreadyDone: 0, failed: 0, notAttempted: 0 }));
    // Each step lists the selection again and looks up its own window.
    expect(h.sim.countCalls('DescribeInstances')).toBe(7);
    expect(describeSnapshotsCalls()).toHaveLength(7);
    expect(last.apiCalls).toEqual({ DescribeInstances: 7, DescribeSnapshots: 7, CreateSnapshots: 25 });
    // Each step takes the next window; its cursor ends at the window and names the next one.
    const selection = ids(instances);
    createdBy.forEach((block, k) => {
      expect([...block].sort()).toEqual(selection.slice(4 * k, 4 * k + 4));
      expect(cursors[k].after).toBe(selection[Math.min(4 * k + 3, 24)]);
      expect(cursors[k].upto).toBe(k < 6 ? selection[Math.min(4 * k + 7, 24)] : undefined);
    });
    h.expectExactlyOneSetEach(selection);
  });

  test('GIVEN the invocation runs low on time after a few calls WHEN the run goes on THEN what the steps did not start is taken by later passes: one set each', async () => {
    const instances = fleet(12);
    await start({ instances });

    const { cursors, last } = await runToEnd(() => {
      const base = h.sim.countCalls('CreateSnapshots');
      return { settings: { ...FAST_SETTINGS, concurrency: 2, reserveMs: 30_000, maxPasses: 6 }, remainingMs: () => (h.sim.countCalls('CreateSnapshots') - base < 4 ? 900_000 : 10_000) };
    });

    expect(cursors[0]).toEqual(expect.objectContaining({ phase: 'wait', pass: 1 }));
    expect(cursors[0].failuresByCode.StepOutOfTime).toBe(cursors[0].counts.notAttempted);
    expect(cursors[0].counts.created + cursors[0].counts.notAttempted).toBe(12);
    expect(last).toEqual(expect.objectContaining({ result: 'succeeded' }));
    expect(last.pass).toBeGreaterThanOrEqual(3);
    expect(last.counts).toEqual(expect.objectContaining({ selected: 12, created: 12, failed: 0, notAttempted: 0 }));
    h.expectExactlyOneSetEach(ids(instances));
  });

  test('GIVEN concurrency 1 THEN the calls follow the id order exactly, across steps', async () => {
    const instances = fleet(10);
    await start({ instances });

    const { cursors } = await runToEnd(() => windowsOf(3));

    expect(cursors).toHaveLength(4);
    expect(h.createOrder()).toEqual(ids(instances));
  });

  test('GIVEN instances added to the selection behind and ahead of the cursor WHEN the next steps run THEN they take the ones after the cursor only', async () => {
    const instances = fleet(6, { from: 10 });
    await start({ instances });
    const first = await step(newCursor(0), windowsOf(3));
    const [early, late] = [fleet(1, { from: 1 })[0], fleet(1, { from: 30 })[0]];
    h.sim.addInstances([early, late]);

    let cursor = first;
    while (cursor.phase !== 'done') cursor = await step(cursor, windowsOf(3));

    expect(h.createCalls(early.instanceId)).toEqual([]);
    expect(h.createCalls(late.instanceId)).toHaveLength(1);
    expect(cursor.counts).toEqual(expect.objectContaining({ selected: 7, created: 7 }));
  });
});

describe('a step repeated from the same cursor (its answer lost)', () => {
  test('GIVEN a step that made sets and crashed WHEN it is repeated from the same cursor once DescribeSnapshots shows them THEN no duplicate: what it did counts as already done', async () => {
    const instances = fleet(8);
    await start({ instances });
    const first = await step(newCursor(0), windowsOf(3));
    const lost = await step(first, windowsOf(3));
    expect(lost.counts).toEqual(expect.objectContaining({ created: 6 }));
    expect(h.createOrder()).toEqual(ids(instances).slice(0, 6));

    // `lost`'s answer never reached the workflow: it repeats the step from `first`.
    const again = await step(first, windowsOf(3));
    const last = await step(again, windowsOf(3));

    expect(again).toEqual(expect.objectContaining({ after: lost.after, upto: lost.upto }));
    expect(again.counts).toEqual(expect.objectContaining({ selected: 6, created: 3, alreadyDone: 3 }));
    expect(h.createOrder()).toEqual(ids(instances));
    expect(last).toEqual(expect.objectContaining({ phase: 'done', result: 'succeeded', steps: 3 }));
    expect(last.counts).toEqual(expect.objectContaining({ selected: 8, created: 5, alreadyDone: 3, failed: 0 }));
    h.expectExactlyOneSetEach(ids(instances));
  });

  test('GIVEN a step repeated while DescribeSnapshots does not show the crashed step\'s sets yet WHEN its calls hit the per-volume limit THEN it looks until they show: no duplicate', async () => {
    const instances = fleet(4);
    // A set shows up in DescribeSnapshots after 150 ms; a volume may be snapshotted again after 2 s.
    await start({ instances, describeSnapshotsLagMs: 150, perVolumeIntervalMs: 2_000 });
    const crashed = await step(newCursor(0), { settings: { ...FAST_SETTINGS, concurrency: 4 } });
    expect(crashed.counts.created).toBe(4);

    // Repeated at once, from the same cursor (no wait before it).
    const again = await step(newCursor(0), { settings: { ...FAST_SETTINGS, concurrency: 4, settleWindowMs: 400 } });

    expect(h.sim.calls.filter((c) => c.action === 'CreateSnapshots' && c.errorCode === 'SnapshotCreationPerVolumeRateExceeded')).toHaveLength(4);
    // Found after the per-volume error only: another maker's sets, as far as this step can tell.
    expect(again.counts).toEqual(expect.objectContaining({ selected: 4, created: 0, alreadyDone: 4, failed: 0 }));
    h.expectExactlyOneSetEach(ids(instances));
  });
});

describe('retry passes', () => {
  test('GIVEN a pass that left 5 of 340 without a set WHEN the retry pass runs THEN batched look-ups (at most 100 ids each) find the others and only the 5 missing sets are made', async () => {
    const instances = fleet(340);
    await start({ instances });
    // From the 336th call on, every CreateSnapshots fails (the role lost its permission for a while).
    h.sim.addFault((c) => c.action === 'CreateSnapshots' && c.actionIndex >= 335 ? { status: 403, code: 'UnauthorizedOperation' } : undefined);
    const clients = { createSnapshotsPerSec: 100_000 };
    const settings = { ...FAST_SETTINGS, concurrency: 20 };

    const first = await step(newCursor(Date.now()), { clients, settings });

    expect(first).toEqual(expect.objectContaining({ phase: 'wait', pass: 1 }));
    expect(first.counts).toEqual(expect.objectContaining({ selected: 340, created: 335, failed: 5 }));
    h.sim.clearFaults();
    const before = h.sim.calls.length;

    const second = await step(first, { clients, settings });

    const since = h.sim.calls.slice(before);
    const lookups = since.filter((c) => c.action === 'DescribeSnapshots');
    expect(lookups).toHaveLength(4);
    for (const lookup of lookups) {
      expect(lookup.params).toEqual(expect.objectContaining({
        'Owner.1': 'self',
        'Filter.1.Name': `tag:${SCHEDULE_TAG}`,
        'Filter.1.Value.1': 'Stack/Nightly',
        'Filter.2.Name': `tag:${SCHEDULED_TIME_TAG}`,
        'Filter.2.Value.1': SCHEDULED_TIME,
        'Filter.3.Name': `tag:${INSTANCE_ID_TAG}`,
      }));
      expect(Object.keys(lookup.params).filter((k) => k.startsWith('Filter.3.Value.')).length).toBeLessThanOrEqual(100);
    }
    const created = since.filter((c) => c.action === 'CreateSnapshots').map((c) => c.params['InstanceSpecification.InstanceId']);
    expect([...created].sort()).toEqual(first.failures.map((f) => f.instanceId).sort());
    expect(second).toEqual(expect.objectContaining({ phase: 'done', result: 'succeeded', pass: 2 }));
    expect(second.counts).toEqual(expect.objectContaining({ selected: 340, created: 340, alreadyDone: 0, failed: 0 }));
    h.expectExactlyOneSetEach(ids(instances));
  });
});

describe('a second execution of the same occurrence', () => {
  test('GIVEN another execution already made the occurrence\'s sets WHEN a new run of the same schedule and scheduled time starts THEN it makes none: identity is the occurrence, not the execution', async () => {
    const instances = fleet(6);
    await start({ instances, perVolumeIntervalMs: 0 });
    await runToEnd(() => ({}));
    const calls = h.sim.countCalls('CreateSnapshots');

    // A second delivery, named differently, with the scheduled time written with milliseconds.
    const { last } = await runToEnd(() => ({}), testOccurrence('2026-11-24T02:30:00.000Z', 'exec-0002'));

    expect(h.sim.countCalls('CreateSnapshots')).toBe(calls);
    expect(last).toEqual(expect.objectContaining({ result: 'succeeded' }));
    expect(last.counts).toEqual(expect.objectContaining({ selected: 6, alreadyDone: 6, created: 0 }));
    expect([...h.sim.setsByInstance(EXECUTION_ID_TAG).values()].every((sets) => sets.length === 1 && sets[0][0].tags[EXECUTION_ID_TAG] === 'exec-0001')).toBe(true);
  });

  test('GIVEN 100 instances with 11 volumes each WHEN a second execution looks the occurrence up THEN it pages through DescribeSnapshots (1,100 snapshots) and finds every set', async () => {
    const instances = fleet(100, { volumes: 11 });
    await start({ instances, perVolumeIntervalMs: 0 });
    const clients = { createSnapshotsPerSec: 100_000 };
    await runToEnd(() => ({ clients, settings: { ...FAST_SETTINGS, concurrency: 20 } }));
    const before = h.sim.calls.length;

    const { last } = await runToEnd(() => ({ clients }), testOccurrence(SCHEDULED_TIME, 'exec-0002'));

    const lookups = h.sim.calls.slice(before).filter((c) => c.action === 'DescribeSnapshots');
    expect(lookups).toHaveLength(2);
    expect(lookups[1].params.NextToken).toBeDefined();
    expect(last.counts).toEqual(expect.objectContaining({ selected: 100, alreadyDone: 100, created: 0 }));
    expect(h.sim.calls.slice(before).filter((c) => c.action === 'CreateSnapshots')).toEqual([]);
  });

  test.each([
    ['another scheduled time (yesterday\'s run)', () => testOccurrence('2026-11-23T02:30:00Z', 'exec-yesterday')],
    ['another schedule at the same time', () => testOccurrence(SCHEDULED_TIME, 'exec-weekly', 'Stack/Weekly')],
  ])('GIVEN sets of %s WHEN this occurrence runs THEN they do not count: every instance gets a set of this occurrence', async (_name, other) => {
    const instances = fleet(6);
    await start({ instances, perVolumeIntervalMs: 0 });
    const otherOccurrence = other();
    await runSnapshotStep(runRequest({ scheduleId: otherOccurrence.lockKey.split('#')[0] }), otherOccurrence, newCursor(0), h.environment());

    const { last } = await runToEnd(() => ({}));

    expect(last.counts).toEqual(expect.objectContaining({ alreadyDone: 0, created: 6 }));
    const sets = h.sim.setsByInstance();
    for (const id of ids(instances)) {
      expect(sets.get(id)!.map((set) => `${set[0].tags[SCHEDULE_TAG]}#${set[0].tags[SCHEDULED_TIME_TAG]}`)).toEqual([otherOccurrence.lockKey, `Stack/Nightly#${SCHEDULED_TIME}`]);
    }
  });
});
