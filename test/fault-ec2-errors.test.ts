/**
 * runSnapshotStep with the real SDK against the EC2 simulator: EC2's error answers, one at a time.
 */
import { CreateSnapshotsCommand } from '@aws-sdk/client-ec2';
import { FaultRule, SimFault } from './support/ec2-simulator';
import { FAST_SETTINGS, FaultHarness, fleet, HarnessEnvironment, ids, runRequest, SCHEDULED_TIME, testOccurrence } from './support/fault-harness';
import { newCursor, parseCursor, RunCursor } from '../lambda/ledger';
import { runSnapshotStep } from '../lambda/snapshot-step';
import { INSTANCE_ID_TAG, SCHEDULED_TIME_TAG } from '../src/private/request-contract';

let h: FaultHarness;
afterEach(async () => h?.stop());

async function start(options: ConstructorParameters<typeof FaultHarness>[0]): Promise<FaultHarness> {
  h = new FaultHarness(options);
  return h.start();
}

/** Runs steps from a new cursor, the way the workflow does (the cursor through JSON), until the run is done. */
async function runToEnd(env: HarnessEnvironment, maxSteps = 10): Promise<RunCursor> {
  let cursor = newCursor(Date.now());
  for (let k = 0; k < maxSteps && cursor.phase !== 'done'; k++) {
    cursor = parseCursor(JSON.parse(JSON.stringify(await runSnapshotStep(runRequest(), testOccurrence(), cursor, env))));
  }
  return cursor;
}

/** One step of the first pass. */
async function firstPass(env: HarnessEnvironment): Promise<RunCursor> {
  return runSnapshotStep(runRequest(), testOccurrence(), newCursor(Date.now()), env);
}

const onInstance = (id: string, call: { action: string; params: Record<string, string> }) =>
  call.action === 'CreateSnapshots' && call.params['InstanceSpecification.InstanceId'] === id;

/** A fault rule that answers `fault` to the first `times` CreateSnapshots calls for instance `id`. */
function firstCallsFor(id: string, times: number, fault: SimFault): FaultRule {
  let seen = 0;
  return (call) => onInstance(id, call) && seen++ < times ? fault : undefined;
}

/** DescribeSnapshots calls that look for one instance's set alone (after an open answer). */
const looksFor = (id: string) => h.sim.calls.filter((c) => c.action === 'DescribeSnapshots'
  && Object.entries(c.params).some(([k, v]) => /^Filter\.\d+\.Value\.1$/.test(k) && v === id)
  && !Object.keys(c.params).some((k) => /^Filter\.\d+\.Value\.2$/.test(k)));

describe('SnapshotCreationPerVolumeRateExceeded', () => {
  test('GIVEN a volume snapshotted by another tool just before the run WHEN a step runs THEN the instance is called again after the per-volume wait, within the step, and gets one set', async () => {
    const instances = fleet(6);
    // EC2's 15 s, scaled to 300 ms: ample for the step to reach the victim while its volumes are still blocked.
    await start({ instances, perVolumeIntervalMs: 300 });
    const env = h.environment({ settings: { ...FAST_SETTINGS, perVolumeRetryDelayMs: 300 } });
    const victim = instances[2].instanceId;
    await env.ec2Create.send(new CreateSnapshotsCommand({ InstanceSpecification: { InstanceId: victim } }));

    const cursor = await firstPass(env);

    const calls = h.createCalls(victim);
    expect(calls.map((c) => c.errorCode ?? c.status)).toEqual([200, 'SnapshotCreationPerVolumeRateExceeded', 200]);
    expect(calls[2].atMs - calls[1].atMs).toBeGreaterThanOrEqual(295);
    expect(cursor).toEqual(expect.objectContaining({ phase: 'done', result: 'succeeded' }));
    expect(cursor.counts).toEqual(expect.objectContaining({ selected: 6, created: 6, alreadyDone: 0, failed: 0, notAttempted: 0 }));
    expect(h.sim.setsByInstance(INSTANCE_ID_TAG).get(victim)).toHaveLength(1);
    expect(h.sim.setsByInstance().get(victim)).toHaveLength(2); // the other tool's set and ours
    expect(env.log.lines).toContainEqual(expect.objectContaining({
      message: 'answer leaves open whether a set was made: looking for it before calling again',
      attributes: expect.objectContaining({ instanceId: victim, code: 'SnapshotCreationPerVolumeRateExceeded', settleMs: 300 }),
    }));
  });

  test('GIVEN the volume keeps being snapshotted WHEN the attempts run out THEN the instance is failed with the code after exactly maxAttemptsPerInstance calls in the pass', async () => {
    const instances = fleet(3);
    await start({ instances });
    const victim = instances[1].instanceId;
    h.sim.addFault((c) => onInstance(victim, c) ? { status: 400, code: 'SnapshotCreationPerVolumeRateExceeded' } : undefined);
    const env = h.environment({ settings: { ...FAST_SETTINGS, settleWindowMs: 20, perVolumeRetryDelayMs: 20, maxAttemptsPerInstance: 3 } });

    const cursor = await firstPass(env);

    expect(h.createCalls(victim)).toHaveLength(3);
    expect(cursor.failuresByCode).toEqual({ SnapshotCreationPerVolumeRateExceeded: 1 });
    expect(cursor.phase).toBe('wait');
    h.expectExactlyOneSetEach(ids(instances).filter((id) => id !== victim));
  });
});

describe('server errors (CreateSnapshots has no client token)', () => {
  test('GIVEN a 500 before EC2 acted WHEN a step runs THEN it looks for the set until the settle window ends, finds none, and calls again once: one set', async () => {
    const instances = fleet(5);
    await start({ instances });
    const victim = instances[0].instanceId;
    h.sim.addFault(firstCallsFor(victim, 1, { status: 500, code: 'InternalError' }));
    const env = h.environment();

    const cursor = await firstPass(env);

    const [failed, retried] = h.createCalls(victim);
    expect([failed.status, retried.status]).toEqual([500, 200]);
    expect(h.createCalls(victim)).toHaveLength(2);
    expect(retried.atMs - failed.atMs).toBeGreaterThanOrEqual(FAST_SETTINGS.settleWindowMs - 5);
    const looks = looksFor(victim);
    expect(looks.length).toBeGreaterThanOrEqual(2);
    for (const look of looks) {
      expect(h.sim.calls.indexOf(look)).toBeGreaterThan(h.sim.calls.indexOf(failed));
      expect(h.sim.calls.indexOf(look)).toBeLessThan(h.sim.calls.indexOf(retried));
    }
    expect(cursor.counts).toEqual(expect.objectContaining({ created: 5, failed: 0 }));
    h.expectExactlyOneSetEach(ids(instances));
  });

  test.each([
    [500, 'InternalError'],
    [503, 'Unavailable'],
  ])('GIVEN a %d %s after EC2 made the set WHEN a step runs THEN it finds the set and does not call again: no duplicate', async (status, code) => {
    const instances = fleet(5);
    await start({ instances });
    const victim = instances[3].instanceId;
    h.sim.addFault(firstCallsFor(victim, 3, { status, code, afterEffect: true }));
    const env = h.environment();

    const cursor = await firstPass(env);

    expect(h.createCalls(victim)).toHaveLength(1);
    expect(cursor.counts).toEqual(expect.objectContaining({ created: 5, alreadyDone: 0, failed: 0 }));
    expect(env.log.lines).toContainEqual(expect.objectContaining({ message: 'snapshot set created', attributes: expect.objectContaining({ instanceId: victim, detail: `found after ${code}` }) }));
    h.expectExactlyOneSetEach(ids(instances));
  });

  test('GIVEN a 500 after EC2 made the set AND DescribeSnapshots lags behind less than the settle window WHEN a step runs THEN the set is found before any second call', async () => {
    const instances = fleet(3);
    await start({ instances, describeSnapshotsLagMs: 60 });
    const victim = instances[1].instanceId;
    h.sim.addFault(firstCallsFor(victim, 1, { status: 500, code: 'InternalError', afterEffect: true }));
    const env = h.environment();

    const cursor = await firstPass(env);

    expect(h.createCalls(victim)).toHaveLength(1);
    expect(looksFor(victim).length).toBeGreaterThanOrEqual(2); // the first looks come before the set shows up
    expect(cursor.counts).toEqual(expect.objectContaining({ created: 3, failed: 0 }));
    h.expectExactlyOneSetEach(ids(instances));
  });

  test('GIVEN a 500 after EC2 made the set AND DescribeSnapshots lags behind more than the settle window WHEN the next call hits the per-volume limit THEN the step looks again before each call: no duplicate', async () => {
    const instances = fleet(3);
    // The set shows up in DescribeSnapshots after 250 ms, later than the settle window (100 ms); the
    // volume may be snapshotted again only after 1 s (EC2: 15 s), which covers the lag.
    await start({ instances, describeSnapshotsLagMs: 250, perVolumeIntervalMs: 1_000 });
    const victim = instances[1].instanceId;
    h.sim.addFault(firstCallsFor(victim, 1, { status: 500, code: 'InternalError', afterEffect: true }));
    const env = h.environment();

    const cursor = await firstPass(env);

    const answers = h.createCalls(victim).map((c) => c.errorCode ?? c.status);
    expect(answers[0]).toBe('InternalError');
    expect(answers.length).toBeGreaterThan(1);
    expect(answers.slice(1).every((a) => a === 'SnapshotCreationPerVolumeRateExceeded')).toBe(true);
    // The set may be the first call's: it counts as made by this run.
    expect(cursor.counts).toEqual(expect.objectContaining({ created: 3, alreadyDone: 0, failed: 0 }));
    h.expectExactlyOneSetEach(ids(instances));
  });

  test('GIVEN 500s on every call for one instance WHEN a step runs THEN it is failed with the code after maxAttemptsPerInstance calls, each preceded by looks', async () => {
    const instances = fleet(3);
    await start({ instances });
    const victim = instances[2].instanceId;
    h.sim.addFault((c) => onInstance(victim, c) ? { status: 500, code: 'InternalError' } : undefined);
    const env = h.environment({ settings: { ...FAST_SETTINGS, settleWindowMs: 30, maxAttemptsPerInstance: 3 } });

    const cursor = await firstPass(env);

    const calls = h.createCalls(victim);
    expect(calls).toHaveLength(3);
    for (let k = 1; k < calls.length; k++) {
      const [before, next] = [h.sim.calls.indexOf(calls[k - 1]), h.sim.calls.indexOf(calls[k])];
      expect(looksFor(victim).some((l) => h.sim.calls.indexOf(l) > before && h.sim.calls.indexOf(l) < next)).toBe(true);
    }
    expect(cursor.failuresByCode).toEqual({ InternalError: 1 });
    expect(cursor.failures).toEqual([expect.objectContaining({ instanceId: victim, outcome: 'failed', code: 'InternalError', message: expect.stringContaining('after 3 attempts and no set found') })]);
    h.expectExactlyOneSetEach(ids(instances).filter((id) => id !== victim));
  });
});

describe('instance gone', () => {
  test('GIVEN an instance terminated after the listing WHEN a step runs THEN it is skipped with InvalidInstanceID.NotFound, called once, and the run succeeds', async () => {
    const instances = fleet(6);
    await start({ instances });
    const victim = instances[4].instanceId;
    // Terminated while the first CreateSnapshots call is being answered: after the listing.
    h.sim.addFault((c) => {
      if (c.action === 'CreateSnapshots' && c.actionIndex === 0) h.sim.terminate(victim);
      return undefined;
    });
    const env = h.environment();

    const cursor = await firstPass(env);

    expect(h.createCalls(victim).map((c) => c.errorCode)).toEqual(['InvalidInstanceID.NotFound']);
    expect(cursor).toEqual(expect.objectContaining({ phase: 'done', result: 'succeeded', failuresByCode: {} }));
    expect(cursor.counts).toEqual(expect.objectContaining({ selected: 6, created: 5, skipped: 1, failed: 0, notAttempted: 0 }));
    expect(env.log.lines).toContainEqual(expect.objectContaining({ level: 'warn', message: 'instance skipped', attributes: expect.objectContaining({ instanceId: victim, code: 'InvalidInstanceID.NotFound' }) }));
    h.expectExactlyOneSetEach(ids(instances).filter((id) => id !== victim));
  });
});

describe('errors reported at once, never repeated in the pass', () => {
  test.each([
    ['ConcurrentSnapshotLimitExceeded', 400],
    ['IncorrectState', 400],
    ['UnauthorizedOperation', 403],
    ['InvalidParameterValue', 400],
    ['TagPolicyViolation', 400],
    ['CustomerKeyHasBeenRevoked', 400],
  ])('GIVEN %s for one instance WHEN a step runs THEN it is failed with that code after one call, the others get their sets, and a retry pass follows', async (code, status) => {
    const instances = fleet(5);
    await start({ instances });
    const victim = instances[1].instanceId;
    h.sim.addFault((c) => onInstance(victim, c) ? { status, code, message: `simulated ${code}` } : undefined);
    const env = h.environment();

    const cursor = await firstPass(env);

    expect(h.createCalls(victim)).toHaveLength(1);
    expect(h.sim.countCalls('DescribeSnapshots')).toBe(1); // only the batch look-up
    expect(cursor).toEqual(expect.objectContaining({ phase: 'wait', pass: 1 }));
    expect(cursor.counts).toEqual(expect.objectContaining({ created: 4, failed: 1, notAttempted: 0 }));
    expect(cursor.failures).toEqual([{ instanceId: victim, outcome: 'failed', code, message: `simulated ${code}` }]);
    h.expectExactlyOneSetEach(ids(instances).filter((id) => id !== victim));
  });

  test('GIVEN an error that clears before the retry pass WHEN the run goes on THEN the retry pass makes the missing set and the run succeeds', async () => {
    const instances = fleet(5);
    await start({ instances });
    const victim = instances[1].instanceId;
    h.sim.addFault(firstCallsFor(victim, 1, { status: 400, code: 'ConcurrentSnapshotLimitExceeded' }));
    const env = h.environment();

    const cursor = await runToEnd(env);

    expect(h.createCalls(victim).map((c) => c.errorCode ?? c.status)).toEqual(['ConcurrentSnapshotLimitExceeded', 200]);
    expect(cursor).toEqual(expect.objectContaining({ phase: 'done', result: 'succeeded', pass: 2, steps: 2 }));
    expect(cursor.counts).toEqual(expect.objectContaining({ selected: 5, created: 5, failed: 0 }));
    h.expectExactlyOneSetEach(ids(instances));
  });

  test('GIVEN an error that never clears WHEN every pass is used THEN the instance was called once per pass and the run fails naming it', async () => {
    const instances = fleet(4);
    await start({ instances });
    const victim = instances[2].instanceId;
    h.sim.addFault((c) => onInstance(victim, c) ? { status: 400, code: 'IncorrectState' } : undefined);
    const env = h.environment({ settings: { ...FAST_SETTINGS, maxPasses: 3 } });

    const cursor = await runToEnd(env);

    expect(h.createCalls(victim)).toHaveLength(3);
    expect(cursor).toEqual(expect.objectContaining({ phase: 'done', result: 'failed', pass: 3 }));
    expect(JSON.parse(cursor.summaryText!)).toEqual(expect.objectContaining({
      scheduledTime: SCHEDULED_TIME, failuresByCode: { IncorrectState: 1 }, failures: [expect.objectContaining({ instanceId: victim })],
    }));
    h.expectExactlyOneSetEach(ids(instances).filter((id) => id !== victim));
  });
});

describe('instances on their way to a snapshot-worthy state', () => {
  test('GIVEN a pending instance WHEN it is running by the retry pass THEN the retry pass makes its set and the run succeeds', async () => {
    const instances = fleet(4);
    const pending = instances[1].instanceId;
    instances[1].state = 'pending';
    await start({ instances });
    const env = h.environment();

    const first = await firstPass(env);
    h.sim.setInstanceState(pending, 'running');
    const last = await runSnapshotStep(runRequest(), testOccurrence(), parseCursor(JSON.parse(JSON.stringify(first))), env);

    expect(first).toEqual(expect.objectContaining({ phase: 'wait', failuresByCode: { InstancePending: 1 } }));
    expect(first.counts).toEqual(expect.objectContaining({ selected: 4, created: 3, notAttempted: 1 }));
    expect(last).toEqual(expect.objectContaining({ phase: 'done', result: 'succeeded', pass: 2 }));
    expect(last.counts).toEqual(expect.objectContaining({ selected: 4, created: 4, notAttempted: 0 }));
    expect(h.createCalls(pending)).toHaveLength(1);
    h.expectExactlyOneSetEach(ids(instances));
  });

  test('GIVEN an instance still stopping in the last pass WHEN the run ends THEN it is never called and the run fails with InstanceStopping', async () => {
    const instances = fleet(3);
    instances[0].state = 'stopping';
    await start({ instances });
    const env = h.environment({ settings: { ...FAST_SETTINGS, maxPasses: 2 } });

    const cursor = await runToEnd(env);

    expect(h.createCalls(instances[0].instanceId)).toEqual([]);
    expect(cursor).toEqual(expect.objectContaining({ phase: 'done', result: 'failed', pass: 2, failuresByCode: { InstanceStopping: 1 } }));
    h.expectExactlyOneSetEach(ids(instances).slice(1));
  });
});

describe('account snapshot quota', () => {
  test.each(['PendingSnapshotLimitExceeded', 'SnapshotLimitExceeded'])(
    'GIVEN %s on the 4th call WHEN a step runs THEN no further CreateSnapshots is made, every remaining instance is not attempted with the code, and no retry pass follows',
    async (code) => {
      const instances = fleet(10);
      await start({ instances });
      h.sim.addFault((c) => c.action === 'CreateSnapshots' && c.actionIndex >= 3 ? { status: 400, code } : undefined);
      const env = h.environment({ settings: { ...FAST_SETTINGS, concurrency: 1 } });

      const cursor = await firstPass(env);

      expect(h.createCalls()).toHaveLength(4);
      expect(cursor).toEqual(expect.objectContaining({ phase: 'done', result: 'failed', halted: code, pass: 1 }));
      expect(cursor.counts).toEqual(expect.objectContaining({ selected: 10, created: 3, failed: 1, notAttempted: 6 }));
      expect(cursor.failuresByCode).toEqual({ [code]: 7 });
      expect(cursor.failures.filter((f) => f.outcome === 'not-attempted').map((f) => f.instanceId)).toEqual(ids(instances).slice(4));
      expect(env.log.lines).toContainEqual(expect.objectContaining({ level: 'error', message: expect.stringContaining('quota'), attributes: { code } }));
      h.expectExactlyOneSetEach(ids(instances).slice(0, 3));
      for (const [, sets] of h.sim.setsByInstance()) expect(sets[0][0].tags[SCHEDULED_TIME_TAG]).toBe(SCHEDULED_TIME);
    },
  );

  test('GIVEN the quota is hit while other calls are in flight WHEN they come back THEN they count, and nothing new starts', async () => {
    const instances = fleet(12);
    // The quota answer comes back after 10 ms, the others after 200 ms: all 4 calls are in flight then.
    await start({ instances, latencyMs: (c) => (c.errorCode === 'PendingSnapshotLimitExceeded' ? 10 : c.action === 'CreateSnapshots' ? 200 : 0) });
    h.sim.addFault((c) => c.action === 'CreateSnapshots' && c.actionIndex === 0 ? { status: 400, code: 'PendingSnapshotLimitExceeded' } : undefined);
    const env = h.environment({ settings: { ...FAST_SETTINGS, concurrency: 4 } });

    const cursor = await firstPass(env);

    // The 3 other calls in flight made their sets; none was started after the quota answer.
    expect(h.createCalls()).toHaveLength(4);
    const c = cursor.counts;
    expect(c.created + c.failed + c.notAttempted).toBe(12);
    expect(c).toEqual(expect.objectContaining({ selected: 12, created: 3, failed: 1, notAttempted: 8 }));
  });
});
