/**
 * runSnapshots with the real SDK against the EC2 simulator: safe re-runs with the same execution id,
 * and runs longer than one invocation, continued through `continueRun`.
 */
import { ContinuationEvent, MAX_INVOCATIONS, RunResult, runSnapshots } from '../lambda/run-snapshots';
import { FAST_SETTINGS, FaultHarness, fleet, ids, runRequest } from './support/fault-harness';
import { EXECUTION_ID_TAG, INSTANCE_ID_TAG } from '../src/private/request-contract';

let h: FaultHarness;
afterEach(async () => h?.stop());

async function start(options: ConstructorParameters<typeof FaultHarness>[0]): Promise<FaultHarness> {
  h = new FaultHarness(options);
  return h.start();
}

const describeSnapshotsCalls = () => h.sim.calls.filter((c) => c.action === 'DescribeSnapshots');

describe('a second invocation with the same execution id', () => {
  test('GIVEN an invocation that failed after 335 of 340 sets WHEN invoked again THEN one paginated look-up finds them and only the 5 missing sets are made', async () => {
    // 3 volumes each: the 335 sets are 1,005 snapshots, more than one DescribeSnapshots page (1,000).
    const instances = fleet(340, { volumes: 3 });
    await start({ instances });
    // The "crash": from the 336th call on, every CreateSnapshots fails (the role lost its permission).
    h.sim.addFault((c) => c.action === 'CreateSnapshots' && c.actionIndex >= 335 ? { status: 403, code: 'UnauthorizedOperation' } : undefined);
    const clients = { createSnapshotsPerSec: 100_000 };

    const first = await runSnapshots(runRequest(), h.environment({ clients }));

    expect(first.totals.counts).toEqual(expect.objectContaining({ created: 335, failed: 5 }));
    h.sim.clearFaults();
    const before = h.sim.calls.length;

    const second = await runSnapshots(runRequest(), h.environment({ clients }));

    const since = h.sim.calls.slice(before);
    const lookups = since.filter((c) => c.action === 'DescribeSnapshots');
    expect(lookups).toHaveLength(2);
    for (const lookup of lookups) {
      expect(lookup.params).toEqual(expect.objectContaining({ 'Filter.1.Name': `tag:${EXECUTION_ID_TAG}`, 'Filter.1.Value.1': 'exec-0001', 'MaxResults': '1000' }));
      expect(Object.values(lookup.params)).not.toContain(`tag:${INSTANCE_ID_TAG}`);
    }
    expect(lookups[1].params.NextToken).toBeDefined();
    const created = since.filter((c) => c.action === 'CreateSnapshots').map((c) => c.params['InstanceSpecification.InstanceId']);
    const failedFirst = first.totals.failures.map((f) => f.instanceId);
    expect(failedFirst).toHaveLength(5);
    expect([...created].sort()).toEqual([...failedFirst].sort());
    expect(second.totals.counts).toEqual(expect.objectContaining({ selected: 340, alreadyDone: 335, created: 5, failed: 0 }));
    h.expectExactlyOneSetEach(ids(instances));

    // And a third time: nothing left to do, nothing made.
    const calls = h.sim.countCalls('CreateSnapshots');
    const third = await runSnapshots(runRequest(), h.environment({ clients }));
    expect(third.totals.counts).toEqual(expect.objectContaining({ alreadyDone: 340, created: 0 }));
    expect(h.sim.countCalls('CreateSnapshots')).toBe(calls);
  });

  test('GIVEN sets of another execution id (yesterday\'s run) WHEN run THEN they do not count: every instance gets a set of this run', async () => {
    const instances = fleet(6);
    // (No per-volume interval: "yesterday" is a moment ago here.)
    await start({ instances, perVolumeIntervalMs: 0 });
    await runSnapshots(runRequest({ executionId: 'exec-yesterday' }), h.environment());

    const result = await runSnapshots(runRequest(), h.environment());

    expect(result.totals.counts).toEqual(expect.objectContaining({ alreadyDone: 0, created: 6 }));
    const byRun = h.sim.setsByInstance(EXECUTION_ID_TAG);
    for (const id of ids(instances)) {
      expect(byRun.get(id)!.map((set) => set[0].tags[EXECUTION_ID_TAG])).toEqual(['exec-yesterday', 'exec-0001']);
    }
  });
});

describe('continuation across invocations', () => {
  /**
   * Runs a whole run the way Lambda would: each invocation gets a fresh environment (a cold start)
   * whose time runs low once it has made `setsPerInvocation` sets; its continuation event,
   * JSON round-tripped, is the next invocation's input.
   */
  async function runToCompletion(setsPerInvocation: number, concurrency: number) {
    const results: RunResult[] = [];
    const events: ContinuationEvent[] = [];
    const createdBy: string[][] = [];
    let continuation: ContinuationEvent['continuation'] | undefined;
    do {
      let made = 0;
      const env = h.environment({
        settings: { ...FAST_SETTINGS, concurrency, reserveMs: 1_000 },
        remainingMs: () => (made < setsPerInvocation ? 900_000 : 999),
      });
      const log = env.log;
      const originalInfo = log.info.bind(log);
      log.info = (message, attributes) => {
        if (message === 'snapshot set created') made++;
        originalInfo(message, attributes);
      };
      const before = h.createOrder().length;
      const result = await runSnapshots(runRequest(), env, continuation);
      results.push(result);
      createdBy.push(h.createOrder().slice(before));
      expect(env.continuations).toHaveLength(result.status === 'continued' ? 1 : 0);
      continuation = env.continuations[0]?.continuation;
      if (env.continuations[0]) events.push(env.continuations[0]);
    } while (continuation && results.length < 50);
    return { results, events, createdBy };
  }

  test('GIVEN a fleet larger than one invocation\'s budget WHEN continued THEN it completes over several invocations, in listing order, each instance exactly once', async () => {
    const instances = fleet(25);
    await start({ instances });

    const { results, events, createdBy } = await runToCompletion(6, 3);

    expect(results.length).toBeGreaterThanOrEqual(3);
    expect(results.map((r) => r.status)).toEqual([...Array(results.length - 1).fill('continued'), 'completed']);
    const last = results[results.length - 1].totals;
    expect(last.invocations).toBe(results.length);
    expect(last.counts).toEqual(expect.objectContaining({ selected: 25, created: 25, alreadyDone: 0, failed: 0, notAttempted: 0 }));
    // Listed once; one look-up per invocation.
    expect(h.sim.countCalls('DescribeInstances')).toBe(1);
    expect(describeSnapshotsCalls()).toHaveLength(results.length);
    // Each invocation takes the next block of the listing: what it hands over is exactly what it did not start.
    const listing = ids(instances);
    let offset = 0;
    createdBy.forEach((block, k) => {
      expect(block.length).toBeGreaterThan(0);
      expect([...block].sort()).toEqual(listing.slice(offset, offset + block.length));
      offset += block.length;
      if (k < events.length) expect(events[k].continuation.pending.map((p) => p.id)).toEqual(listing.slice(offset));
    });
    expect(offset).toBe(25);
    h.expectExactlyOneSetEach(listing);
  });

  test('GIVEN concurrency 1 THEN the calls follow the listing order exactly, across invocations', async () => {
    const instances = fleet(10);
    await start({ instances });

    const { results } = await runToCompletion(3, 1);

    expect(results.length).toBe(4);
    expect(h.createOrder()).toEqual(ids(instances));
  });

  test('GIVEN the same continuation delivered twice (Lambda\'s at-least-once) WHEN the second runs after the first THEN it makes nothing new', async () => {
    const instances = fleet(8);
    await start({ instances });
    const env = h.environment({ settings: { ...FAST_SETTINGS, concurrency: 1, reserveMs: 1_000 }, remainingMs: () => (h.sim.countCalls('CreateSnapshots') < 3 ? 900_000 : 0) });
    await runSnapshots(runRequest(), env);
    const event = env.continuations[0];

    const once = await runSnapshots(runRequest(), h.environment(), JSON.parse(JSON.stringify(event)).continuation);
    const twice = await runSnapshots(runRequest(), h.environment(), JSON.parse(JSON.stringify(event)).continuation);

    expect(once.totals.counts).toEqual(expect.objectContaining({ created: 8, alreadyDone: 0 }));
    expect(twice.totals.counts).toEqual(expect.objectContaining({ created: 3, alreadyDone: 5 }));
    h.expectExactlyOneSetEach(ids(instances));
  });

  test('GIVEN an invocation that cannot make progress WHEN continued MAX_INVOCATIONS times THEN the rest is reported not attempted instead of continuing forever', async () => {
    const instances = fleet(3);
    await start({ instances });
    let continuation: ContinuationEvent['continuation'] | undefined;
    let result: RunResult;
    let invocations = 0;
    do {
      const env = h.environment({ settings: { ...FAST_SETTINGS, reserveMs: 1_000 }, remainingMs: () => 0 });
      result = await runSnapshots(runRequest(), env, continuation);
      continuation = env.continuations[0]?.continuation;
      invocations++;
    } while (continuation && invocations < 100);

    expect(invocations).toBe(MAX_INVOCATIONS);
    expect(result.status).toBe('completed');
    expect(result.totals.counts).toEqual(expect.objectContaining({ created: 0, notAttempted: 3 }));
    expect(result.totals.failuresByCode).toEqual({ ContinuationLimitReached: 3 });
    expect(h.sim.countCalls('CreateSnapshots')).toBe(0);
  });

  test('GIVEN the continuation cannot start WHEN the time runs low THEN what is left is reported not attempted (ContinuationFailed), nothing lost silently', async () => {
    const instances = fleet(6);
    await start({ instances });
    const env = h.environment({
      settings: { ...FAST_SETTINGS, concurrency: 1, reserveMs: 1_000 },
      remainingMs: () => (h.sim.countCalls('CreateSnapshots') < 2 ? 900_000 : 0),
      continueRun: async () => {
        throw Object.assign(new Error('User is not authorized to perform: lambda:InvokeFunction'), { name: 'AccessDeniedException' });
      },
    });

    const result = await runSnapshots(runRequest(), env);

    expect(result.status).toBe('completed');
    expect(result.totals.counts).toEqual(expect.objectContaining({ created: 2, notAttempted: 4 }));
    expect(result.totals.failuresByCode).toEqual({ ContinuationFailed: 4 });
    expect(result.totals.failures[0].message).toContain('AccessDeniedException');
  });
});
