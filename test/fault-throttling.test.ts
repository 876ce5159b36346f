/**
 * runSnapshots with the real SDK against the EC2 simulator's token buckets: throttling is absorbed
 * (never a failure while time remains), and the client-side bucket paces calls at EC2's rate.
 */
import { CREATE_MAX_ATTEMPTS, TokenBucketRateLimiter } from '../lambda/clients';
import { runSnapshots } from '../lambda/run-snapshots';
import { FAST_SETTINGS, FaultHarness, fleet, ids, runRequest } from './support/fault-harness';

let h: FaultHarness;
afterEach(async () => h?.stop());

async function start(options: ConstructorParameters<typeof FaultHarness>[0]): Promise<FaultHarness> {
  h = new FaultHarness(options);
  return h.start();
}

const throttled = (action = 'CreateSnapshots') => h.sim.calls.filter((c) => c.action === action && c.errorCode === 'RequestLimitExceeded').length;

describe('CreateSnapshots token bucket (RequestLimitExceeded)', () => {
  // (The SDK's adaptive limiter, CREATE_SNAPSHOTS_PER_SEC=0, also ends with one set each, but its
  // first throttle, before it has measured a rate, drops it to 0.5 calls/s: seconds here, see bench/.)
  test('GIVEN a bucket smaller than the fleet AND a client-side bucket faster than the account\'s WHEN run THEN throttling is retried, not reported, and every instance gets exactly one set', async () => {
    const instances = fleet(40);
    await start({ instances, createSnapshotsBucket: { capacity: 5, refillPerSec: 100 } });
    const env = h.environment({ clients: { createSnapshotsPerSec: 400, createSnapshotsBurst: 5 } });

    const result = await runSnapshots(runRequest(), env);

    expect(throttled()).toBeGreaterThan(5);
    expect(result.status).toBe('completed');
    expect(result.totals.counts).toEqual(expect.objectContaining({ selected: 40, created: 40, failed: 0, notAttempted: 0 }));
    expect(result.totals.failuresByCode).toEqual({});
    // The summary counts every HTTP request, retries included.
    expect(result.totals.apiCalls).toEqual({ DescribeInstances: 1, DescribeSnapshots: 1, CreateSnapshots: h.sim.countCalls('CreateSnapshots') });
    h.expectExactlyOneSetEach(ids(instances));
  });

  test('GIVEN the client-side bucket at the account\'s rate WHEN run THEN calls are paced: (almost) none is throttled and the run takes the refill time', async () => {
    const instances = fleet(40);
    await start({ instances, createSnapshotsBucket: { capacity: 5, refillPerSec: 100 } });
    const env = h.environment({ clients: { createSnapshotsPerSec: 100, createSnapshotsBurst: 5 } });
    const started = Date.now();

    const result = await runSnapshots(runRequest(), env);

    // The local copy can run a fraction of a token ahead of EC2's at the start (EC2's bucket sits
    // at its cap until the first call arrives); one throttled answer brings them back in step.
    expect(throttled()).toBeLessThanOrEqual(3);
    expect(h.sim.countCalls('CreateSnapshots')).toBe(40 + throttled());
    expect(Date.now() - started).toBeGreaterThanOrEqual(((40 - 5) / 100) * 1000 - 10);
    expect(result.totals.counts.created).toBe(40);
    h.expectExactlyOneSetEach(ids(instances));
  });

  test('GIVEN throttling that outlasts the SDK\'s attempts WHEN run THEN the handler backs off and calls again: one set, no failure', async () => {
    const instances = fleet(4);
    await start({ instances });
    const victim = instances[2].instanceId;
    let seen = 0;
    const times = CREATE_MAX_ATTEMPTS + 2;
    h.sim.addFault((c) => c.action === 'CreateSnapshots' && c.params['InstanceSpecification.InstanceId'] === victim && seen++ < times
      ? { status: 503, code: 'RequestLimitExceeded' } : undefined);
    const env = h.environment({ clients: { createSnapshotsPerSec: 10_000 } });

    const result = await runSnapshots(runRequest(), env);

    // The SDK made CREATE_MAX_ATTEMPTS attempts, then the handler's own retry: 2 more throttled and the one that worked.
    expect(h.createCalls(victim).map((c) => c.errorCode ?? c.status)).toEqual([...Array(times).fill('RequestLimitExceeded'), 200]);
    expect(result.totals.counts).toEqual(expect.objectContaining({ created: 4, failed: 0 }));
    h.expectExactlyOneSetEach(ids(instances));
  });

  test('GIVEN throttling until the time budget runs low WHEN run THEN the throttled instance goes to the continuation, not to the failures', async () => {
    const instances = fleet(5);
    await start({ instances });
    const victim = instances[1].instanceId;
    h.sim.addFault((c) => c.action === 'CreateSnapshots' && c.params['InstanceSpecification.InstanceId'] === victim
      ? { status: 503, code: 'RequestLimitExceeded' } : undefined);
    const started = Date.now();
    const env = h.environment({
      clients: { createSnapshotsPerSec: 10_000 },
      settings: { ...FAST_SETTINGS, reserveMs: 1_000 },
      remainingMs: () => (Date.now() - started < 300 ? 900_000 : 500),
    });

    const first = await runSnapshots(runRequest(), env);

    expect(first.status).toBe('continued');
    expect(first.totals.counts).toEqual(expect.objectContaining({ created: 4, failed: 0, notAttempted: 0 }));
    expect(h.createCalls(victim).length).toBeGreaterThan(CREATE_MAX_ATTEMPTS);
    expect(env.continuations).toHaveLength(1);
    expect(env.continuations[0].continuation.pending).toEqual([{ id: victim }]);

    // The account's other callers calm down; the continuation finishes the run.
    h.sim.clearFaults();
    const next = env.continuations[0];
    const second = await runSnapshots(runRequest(), h.environment(), next.continuation);

    expect(second.status).toBe('completed');
    expect(second.totals.counts).toEqual(expect.objectContaining({ selected: 5, created: 5, failed: 0, notAttempted: 0 }));
    expect(second.totals.invocations).toBe(2);
    h.expectExactlyOneSetEach(ids(instances));
  });
});

describe('Describe token bucket', () => {
  test('GIVEN DescribeSnapshots throttled WHEN run THEN the SDK retries the look-up and the run proceeds', async () => {
    const instances = fleet(6);
    await start({ instances, describeBucket: { capacity: 1, refillPerSec: 50 } });
    const env = h.environment();

    const result = await runSnapshots(runRequest(), env);

    expect(throttled('DescribeSnapshots')).toBeGreaterThan(0);
    expect(result.totals.apiCalls.DescribeSnapshots).toBe(h.sim.countCalls('DescribeSnapshots'));
    expect(result.totals.counts).toEqual(expect.objectContaining({ created: 6, failed: 0 }));
    h.expectExactlyOneSetEach(ids(instances));
  });
});

describe('TokenBucketRateLimiter', () => {
  test('GIVEN more callers than the burst THEN the burst goes at once and the rest is paced at the rate, first come first served', async () => {
    const limiter = new TokenBucketRateLimiter(100, 3);
    const started = performance.now();
    const done: Array<[number, number]> = [];

    await Promise.all(Array.from({ length: 8 }, (_, k) => limiter.getSendToken().then(() => done.push([k, performance.now() - started]))));

    expect(done.map(([k]) => k)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(done[7][1]).toBeGreaterThanOrEqual(49); // 5 tokens beyond the burst at 100/s
    expect(done[7][1] - done[2][1]).toBeGreaterThanOrEqual(45);
  });

  test('GIVEN a throttling answer THEN the local bucket is emptied (the account\'s is), other answers change nothing', async () => {
    const limiter = new TokenBucketRateLimiter(50, 10);
    limiter.updateClientSendingRate({});
    limiter.updateClientSendingRate({ errorType: 'TRANSIENT' });
    let t = performance.now();
    await limiter.getSendToken();
    expect(performance.now() - t).toBeLessThan(15);

    limiter.updateClientSendingRate({ errorType: 'THROTTLING' });
    t = performance.now();
    await limiter.getSendToken();
    expect(performance.now() - t).toBeGreaterThanOrEqual(19); // one token at 50/s
  });

  test('rejects a rate or burst that cannot work', () => {
    expect(() => new TokenBucketRateLimiter(0, 10)).toThrow('a token bucket needs a rate > 0 and a burst >= 1, got: 0/s, burst 10');
    expect(() => new TokenBucketRateLimiter(5, 0)).toThrow('a token bucket needs a rate > 0 and a burst >= 1, got: 5/s, burst 0');
  });
});
