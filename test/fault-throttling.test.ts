/**
 * runSnapshotStep with the real SDK against the EC2 simulator's token buckets: throttling is
 * absorbed (never a failure while time remains), and the client-side bucket paces calls at EC2's
 * rate, also from one step to the next.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { CREDENTIALS, FAST_SETTINGS, FaultHarness, fleet, HarnessEnvironment, ids, NO_WAIT_BACKOFF, REGION, runRequest, testOccurrence } from './support/fault-harness';
import { CREATE_MAX_ATTEMPTS, createEc2Clients, TokenBucketRateLimiter } from '../lambda/clients';
import { newCursor, parseCursor, RunCursor } from '../lambda/ledger';
import { runSnapshotStep } from '../lambda/snapshot-step';
import { makeWorker, PreparedRun } from '../lambda/worker';

let h: FaultHarness;
afterEach(async () => h?.stop());

async function start(options: ConstructorParameters<typeof FaultHarness>[0]): Promise<FaultHarness> {
  h = new FaultHarness(options);
  return h.start();
}

/** One step of a run from `cursor` (through JSON, as the workflow hands it over). */
async function step(env: HarnessEnvironment, cursor: RunCursor = newCursor(Date.now())): Promise<RunCursor> {
  return runSnapshotStep(runRequest(), testOccurrence(), parseCursor(JSON.parse(JSON.stringify(cursor))), env);
}

const throttled = (action = 'CreateSnapshots') => h.sim.calls.filter((c) => c.action === action && c.errorCode === 'RequestLimitExceeded').length;

describe('CreateSnapshots token bucket (RequestLimitExceeded)', () => {
  // (The SDK's adaptive limiter, CREATE_SNAPSHOTS_PER_SEC=0, also ends with one set each, but its
  // first throttle, before it has measured a rate, drops it to 0.5 calls/s: seconds here, see bench/.)
  test('GIVEN a bucket smaller than the fleet AND a client-side bucket faster than the account\'s WHEN run THEN throttling is retried, not reported, and every instance gets exactly one set', async () => {
    const instances = fleet(40);
    // The account refills 20 per second, the client sends at 400: throttled on any machine that
    // makes more than 20 calls a second.
    await start({ instances, createSnapshotsBucket: { capacity: 5, refillPerSec: 20 } });
    const env = h.environment({ clients: { createSnapshotsPerSec: 400, createSnapshotsBurst: 5 } });

    const result = await step(env);

    expect(throttled()).toBeGreaterThan(5);
    expect(result).toEqual(expect.objectContaining({ phase: 'done', result: 'succeeded' }));
    expect(result.counts).toEqual(expect.objectContaining({ selected: 40, created: 40, failed: 0, notAttempted: 0 }));
    expect(result.failuresByCode).toEqual({});
    // The summary counts every HTTP request, retries included.
    expect(result.summary!.apiCalls).toEqual({ DescribeInstances: 1, DescribeSnapshots: 1, CreateSnapshots: h.sim.countCalls('CreateSnapshots') });
    h.expectExactlyOneSetEach(ids(instances));
  });

  test('GIVEN the client-side bucket at the account\'s rate WHEN run THEN calls are paced: (almost) none is throttled and the run takes the refill time', async () => {
    const instances = fleet(40);
    await start({ instances, createSnapshotsBucket: { capacity: 5, refillPerSec: 100 } });
    const env = h.environment({ clients: { createSnapshotsPerSec: 100, createSnapshotsBurst: 5 } });
    const started = Date.now();

    const result = await step(env);

    // The local copy can run a fraction of a token ahead of EC2's at the start (EC2's bucket sits
    // at its cap until the first call arrives); one throttled answer brings them back in step.
    expect(throttled()).toBeLessThanOrEqual(3);
    expect(h.sim.countCalls('CreateSnapshots')).toBe(40 + throttled());
    expect(Date.now() - started).toBeGreaterThanOrEqual(((40 - 5) / 100) * 1000 - 10);
    expect(result.counts.created).toBe(40);
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

    const result = await step(env);

    // The SDK made CREATE_MAX_ATTEMPTS attempts, then the worker's own retry: 2 more throttled and the one that worked.
    expect(h.createCalls(victim).map((c) => c.errorCode ?? c.status)).toEqual([...Array(times).fill('RequestLimitExceeded'), 200]);
    expect(result.counts).toEqual(expect.objectContaining({ created: 4, failed: 0 }));
    h.expectExactlyOneSetEach(ids(instances));
  });

  test('GIVEN throttling until the invocation runs low on time WHEN the step ends THEN the instance is failed for this pass only, and the retry pass makes its set', async () => {
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

    const first = await step(env);

    expect(first).toEqual(expect.objectContaining({ phase: 'wait', pass: 1, after: instances[4].instanceId, failuresByCode: { RequestLimitExceeded: 1 } }));
    expect(first.counts).toEqual(expect.objectContaining({ selected: 5, created: 4, failed: 1, notAttempted: 0 }));
    expect(first.failures).toEqual([expect.objectContaining({ instanceId: victim, message: expect.stringContaining('unresolved when the step ran out of time') })]);
    expect(h.createCalls(victim).length).toBeGreaterThan(CREATE_MAX_ATTEMPTS);

    // The account's other callers calm down; the retry pass finishes the run.
    h.sim.clearFaults();
    const second = await step(h.environment(), first);

    expect(second).toEqual(expect.objectContaining({ phase: 'done', result: 'succeeded', pass: 2, steps: 2 }));
    expect(second.counts).toEqual(expect.objectContaining({ selected: 5, created: 5, failed: 0, notAttempted: 0 }));
    h.expectExactlyOneSetEach(ids(instances));
  });
});

describe('the CreateSnapshots bucket from one step to the next', () => {
  /**
   * Two steps of one run through the worker entry, back to back, a window of 10 instances each
   * (50 calls/s for 200 ms): the first spends the account's bucket with 10 calls at once. `carry` false drops the bucket level from the cursor in between,
   * as if each step started with a full local bucket.
   */
  async function twoSteps(carry: boolean) {
    const instances = fleet(20);
    await start({ instances, createSnapshotsBucket: { capacity: 10, refillPerSec: 50 } });
    const handler = makeWorker({
      settings: { ...FAST_SETTINGS, concurrency: 10, stepBudgetMs: 200 },
      env: { CREATE_SNAPSHOTS_BURST: '10' },
      logger: new Logger({ logLevel: 'SILENT' }),
      metrics: {
        addDimension: () => undefined, addMetric: () => undefined, publishStoredMetrics: () => undefined, clearDefaultDimensions: () => undefined,
      } as unknown as Metrics,
      createClients: (options) => createEc2Clients({
        ...options,
        throttleBackoffBaseMs: 2,
        throttleBackoffMaxMs: 20,
        describeBackoff: NO_WAIT_BACKOFF,
        config: { endpoint: h.sim.endpoint, region: REGION, credentials: CREDENTIALS },
      }),
    });
    const request = JSON.stringify(runRequest({ createSnapshotsPerSecond: 50 }));
    const context = { getRemainingTimeInMillis: () => 900_000 };
    const { occurrence, cursor } = await handler({ action: 'prepare', request, input: { scheduledTime: '2026-11-24T02:30:00Z' }, executionName: 'exec-0001' }, context) as PreparedRun;
    const first = await handler({ action: 'snapshot-step', request, occurrence, cursor }, context) as RunCursor;
    const throttledInFirst = throttled();
    const handed = JSON.parse(JSON.stringify(first));
    if (!carry) delete handed.bucket;
    const second = await handler({ action: 'snapshot-step', request, occurrence, cursor: handed }, context) as RunCursor;
    return { instances, first, second, throttledInFirst, throttledInSecond: throttled() - throttledInFirst };
  }

  test('GIVEN a step that spent the account\'s bucket WHEN the next step starts from the level it handed on THEN its calls are paced: (almost) none is throttled', async () => {
    const { instances, first, second, throttledInFirst, throttledInSecond } = await twoSteps(true);

    expect(first).toEqual(expect.objectContaining({ phase: 'snapshot', after: instances[9].instanceId }));
    // The level is handed on (its value depends on the machine's speed between the last call and
    // the hand-over); the next test shows what happens without it.
    expect(first.bucket).toEqual({ tokens: expect.any(Number), atEpochMs: expect.any(Number) });
    expect(throttledInFirst).toBe(0);
    expect(throttledInSecond).toBeLessThanOrEqual(2);
    expect(second).toEqual(expect.objectContaining({ phase: 'done', result: 'succeeded' }));
    h.expectExactlyOneSetEach(ids(instances));
  });

  test('GIVEN the same two steps WHEN the second starts with a full local bucket instead THEN it bursts into the empty account bucket and is throttled (what the carried level avoids)', async () => {
    const { instances, second, throttledInSecond } = await twoSteps(false);

    expect(throttledInSecond).toBeGreaterThanOrEqual(5);
    expect(second.result).toBe('succeeded');
    h.expectExactlyOneSetEach(ids(instances));
  });
});

describe('Describe token bucket', () => {
  test('GIVEN DescribeSnapshots throttled WHEN run THEN the SDK retries the look-up and the run proceeds', async () => {
    const instances = fleet(6);
    await start({ instances });
    // The first two look-ups are throttled (as an empty describe bucket answers), whatever the machine's speed.
    h.sim.addFault(({ action, actionIndex }) => (action === 'DescribeSnapshots' && actionIndex < 2 ? { status: 503, code: 'RequestLimitExceeded' } : undefined));
    const env = h.environment();

    const result = await step(env);

    expect(throttled('DescribeSnapshots')).toBeGreaterThan(0);
    expect(result.apiCalls.DescribeSnapshots).toBe(h.sim.countCalls('DescribeSnapshots'));
    expect(result.counts).toEqual(expect.objectContaining({ created: 6, failed: 0 }));
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
    expect(limiter.level().tokens).toBeGreaterThan(9);

    limiter.updateClientSendingRate({ errorType: 'THROTTLING' });
    expect(limiter.level().tokens).toBeLessThan(1);
    const t = performance.now();
    await limiter.getSendToken();
    expect(performance.now() - t).toBeGreaterThanOrEqual(19); // one token at 50/s
  });

  test.each<[string, { tokens: number; atEpochMs: number } | undefined, number, number]>([
    ['no earlier level (a cold start)', undefined, 10_000, 100],
    ['a level 400 ms old', { tokens: 2, atEpochMs: 10_000 }, 10_400, 4],
    ['a level with calls still waiting', { tokens: -10, atEpochMs: 10_000 }, 10_000, -10],
    ['a level an hour old', { tokens: 2, atEpochMs: 10_000 }, 3_610_000, 100],
    ['a level from a clock ahead of this one', { tokens: 2, atEpochMs: 10_000 }, 9_000, 2],
  ])('GIVEN %s THEN the bucket starts from it, refilled at the rate for the wall-clock time since, never above the burst', (_name, initial, wallNow, tokens) => {
    const limiter = new TokenBucketRateLimiter(5, 100, () => 0, initial, () => wallNow);

    expect(limiter.level(() => wallNow)).toEqual({ tokens, atEpochMs: wallNow });
  });

  test('GIVEN tokens taken, a caller waiting and a throttling answer THEN level() says what is left, negative while a call waits for its token', async () => {
    const limiter = new TokenBucketRateLimiter(100, 3, () => 0);
    for (let k = 0; k < 3; k++) await limiter.getSendToken();
    expect(limiter.level(() => 1).tokens).toBe(0);

    const waiting = limiter.getSendToken();
    limiter.updateClientSendingRate({ errorType: 'THROTTLING' });

    expect(limiter.level(() => 1).tokens).toBe(-1);
    await waiting;
  });

  test('GIVEN a level below zero from the last step THEN the first call waits for its token', async () => {
    const limiter = new TokenBucketRateLimiter(50, 10, undefined, { tokens: -1, atEpochMs: Date.now() });
    const t = performance.now();

    await limiter.getSendToken();

    expect(performance.now() - t).toBeGreaterThanOrEqual(35); // 2 tokens at 50/s
  });

  test('rejects a rate or burst that cannot work', () => {
    expect(() => new TokenBucketRateLimiter(0, 10)).toThrow('a token bucket needs a rate > 0 and a burst >= 1, got: 0/s, burst 10');
    expect(() => new TokenBucketRateLimiter(5, 0)).toThrow('a token bucket needs a rate > 0 and a burst >= 1, got: 5/s, burst 0');
  });
});
