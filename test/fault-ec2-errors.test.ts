/**
 * runSnapshots with the real SDK against the EC2 simulator: EC2's error answers, one at a time.
 */
import { CreateSnapshotsCommand } from '@aws-sdk/client-ec2';
import { FaultRule, SimFault } from './support/ec2-simulator';
import { FAST_SETTINGS, FaultHarness, fleet, ids, runRequest } from './support/fault-harness';
import { runSnapshots } from '../lambda/run-snapshots';
import { INSTANCE_ID_TAG } from '../src/private/request-contract';

let h: FaultHarness;
afterEach(async () => h?.stop());

async function start(options: ConstructorParameters<typeof FaultHarness>[0]): Promise<FaultHarness> {
  h = new FaultHarness(options);
  return h.start();
}

const onInstance = (id: string, call: { action: string; params: Record<string, string> }) =>
  call.action === 'CreateSnapshots' && call.params['InstanceSpecification.InstanceId'] === id;

/** A fault rule that answers `fault` to the first `times` CreateSnapshots calls for instance `id`. */
function firstCallsFor(id: string, times: number, fault: SimFault): FaultRule {
  let seen = 0;
  return (call) => onInstance(id, call) && seen++ < times ? fault : undefined;
}

describe('SnapshotCreationPerVolumeRateExceeded', () => {
  test('GIVEN a volume snapshotted just before the run WHEN run THEN the instance is retried after the configured wait, within the run, and gets one set', async () => {
    const instances = fleet(6);
    // EC2's 15 s, scaled to 1 s: ample for the run to reach the victim while its volumes are still blocked.
    await start({ instances, perVolumeIntervalMs: 1_000 });
    const env = h.environment({ settings: { ...FAST_SETTINGS, perVolumeRetryDelayMs: 1_000 } });
    const victim = instances[2].instanceId;
    // Another tool snapshots the victim's volumes a moment before the run.
    await env.ec2Create.send(new CreateSnapshotsCommand({ InstanceSpecification: { InstanceId: victim } }));

    const result = await runSnapshots(runRequest(), env);

    const calls = h.createCalls(victim);
    expect(calls.map((c) => c.errorCode ?? c.status)).toEqual([200, 'SnapshotCreationPerVolumeRateExceeded', 200]);
    expect(calls[2].atMs - calls[1].atMs).toBeGreaterThanOrEqual(995);
    expect(result.totals.counts).toEqual(expect.objectContaining({ selected: 6, created: 6, failed: 0, notAttempted: 0 }));
    expect(h.sim.setsByInstance(INSTANCE_ID_TAG).get(victim)).toHaveLength(1);
    expect(h.sim.setsByInstance().get(victim)).toHaveLength(2); // the other tool's set and ours
    expect(env.log.lines).toContainEqual(expect.objectContaining({ message: expect.stringContaining('retrying the instance later'), attributes: expect.objectContaining({ instanceId: victim, delayMs: 1_000 }) }));
  });

  test('GIVEN the volume keeps being snapshotted WHEN the attempts run out THEN the instance is reported failed with the code, after exactly maxAttemptsPerInstance calls', async () => {
    const instances = fleet(3);
    await start({ instances });
    const victim = instances[1].instanceId;
    h.sim.addFault((c) => onInstance(victim, c) ? { status: 400, code: 'SnapshotCreationPerVolumeRateExceeded' } : undefined);
    const env = h.environment({ settings: { ...FAST_SETTINGS, perVolumeRetryDelayMs: 10, maxAttemptsPerInstance: 3 } });

    const result = await runSnapshots(runRequest(), env);

    expect(h.createCalls(victim)).toHaveLength(3);
    expect(result.totals.failuresByCode).toEqual({ SnapshotCreationPerVolumeRateExceeded: 1 });
    h.expectExactlyOneSetEach(ids(instances).filter((id) => id !== victim));
  });
});

describe('server errors (CreateSnapshots has no client token)', () => {
  test('GIVEN a 500 before EC2 acted WHEN run THEN the handler looks for the set (after the error and again before the retry), finds none, retries once: one set', async () => {
    const instances = fleet(5);
    await start({ instances });
    const victim = instances[0].instanceId;
    h.sim.addFault(firstCallsFor(victim, 1, { status: 500, code: 'InternalError' }));
    const env = h.environment();

    const result = await runSnapshots(runRequest(), env);

    expect(h.createCalls(victim).map((c) => c.status)).toEqual([500, 200]);
    const lookups = h.sim.calls.filter((c) => c.action === 'DescribeSnapshots' && Object.values(c.params).includes(victim));
    expect(lookups).toHaveLength(2);
    const [failed, retried] = h.createCalls(victim);
    for (const lookup of lookups) {
      expect(h.sim.calls.indexOf(lookup)).toBeGreaterThan(h.sim.calls.indexOf(failed));
      expect(h.sim.calls.indexOf(lookup)).toBeLessThan(h.sim.calls.indexOf(retried));
    }
    expect(result.totals.counts).toEqual(expect.objectContaining({ created: 5, failed: 0 }));
    h.expectExactlyOneSetEach(ids(instances));
  });

  test.each([
    [500, 'InternalError'],
    [503, 'Unavailable'],
  ])('GIVEN a %d %s after EC2 made the set WHEN run THEN the handler finds the set and does not call again: no duplicate', async (status, code) => {
    const instances = fleet(5);
    await start({ instances });
    const victim = instances[3].instanceId;
    h.sim.addFault(firstCallsFor(victim, 3, { status, code, afterEffect: true }));
    const env = h.environment();

    const result = await runSnapshots(runRequest(), env);

    expect(h.createCalls(victim)).toHaveLength(1);
    expect(result.totals.counts).toEqual(expect.objectContaining({ created: 5, failed: 0 }));
    expect(env.log.lines).toContainEqual(expect.objectContaining({ message: 'snapshot set created', attributes: expect.objectContaining({ instanceId: victim, detail: `found after ${code}` }) }));
    h.expectExactlyOneSetEach(ids(instances));
  });

  test('GIVEN a 500 after EC2 made the set AND DescribeSnapshots lags behind WHEN the retry hits the per-volume limit THEN the handler looks again before the next call: no duplicate', async () => {
    const instances = fleet(3);
    // The new set shows up in DescribeSnapshots only after 100 ms (the look-up after the 500 comes
    // earlier), the volume may be snapshotted again after 500 ms (EC2: 15 s).
    await start({ instances, describeSnapshotsLagMs: 100, perVolumeIntervalMs: 500 });
    const victim = instances[1].instanceId;
    h.sim.addFault(firstCallsFor(victim, 1, { status: 500, code: 'InternalError', afterEffect: true }));
    const env = h.environment({ settings: { ...FAST_SETTINGS, verifyDelayMs: 5, perVolumeRetryDelayMs: 250 } });

    const result = await runSnapshots(runRequest(), env);

    // Without the second look, the calls would go on until one lands after 500 ms: a second set.
    const answers = h.createCalls(victim).map((c) => c.errorCode ?? c.status);
    expect(answers[0]).toBe('InternalError');
    expect(answers.slice(1).every((a) => a === 'SnapshotCreationPerVolumeRateExceeded')).toBe(true);
    expect(result.totals.counts).toEqual(expect.objectContaining({ created: 3, failed: 0 }));
    h.expectExactlyOneSetEach(ids(instances));
  });

  test('GIVEN 500s on every call for one instance WHEN run THEN it is failed with the code after maxAttemptsPerInstance calls, each preceded by a look', async () => {
    const instances = fleet(3);
    await start({ instances });
    const victim = instances[2].instanceId;
    h.sim.addFault((c) => onInstance(victim, c) ? { status: 500, code: 'InternalError' } : undefined);
    const env = h.environment({ settings: { ...FAST_SETTINGS, maxAttemptsPerInstance: 3 } });

    const result = await runSnapshots(runRequest(), env);

    expect(h.createCalls(victim)).toHaveLength(3);
    expect(result.totals.failuresByCode).toEqual({ InternalError: 1 });
    expect(result.totals.failures).toEqual([expect.objectContaining({ instanceId: victim, outcome: 'failed', code: 'InternalError' })]);
    h.expectExactlyOneSetEach(ids(instances).filter((id) => id !== victim));
  });
});

describe('instance gone', () => {
  test('GIVEN an instance terminated after the listing WHEN run THEN it is skipped with InvalidInstanceID.NotFound, called once, and the run has no failure', async () => {
    const instances = fleet(6);
    await start({ instances });
    const victim = instances[4].instanceId;
    // Terminated while the first CreateSnapshots call is being answered: after the listing.
    h.sim.addFault((c) => {
      if (c.action === 'CreateSnapshots' && c.actionIndex === 0) h.sim.terminate(victim);
      return undefined;
    });
    const env = h.environment();

    const result = await runSnapshots(runRequest(), env);

    expect(h.createCalls(victim).map((c) => c.errorCode)).toEqual(['InvalidInstanceID.NotFound']);
    expect(result.totals.counts).toEqual(expect.objectContaining({ selected: 6, created: 5, skipped: 1, failed: 0, notAttempted: 0 }));
    expect(result.totals.failuresByCode).toEqual({});
    expect(env.log.lines).toContainEqual(expect.objectContaining({ level: 'warn', message: 'instance skipped', attributes: expect.objectContaining({ instanceId: victim, code: 'InvalidInstanceID.NotFound' }) }));
    h.expectExactlyOneSetEach(ids(instances).filter((id) => id !== victim));
  });
});

describe('errors reported at once, never repeated in the run', () => {
  test.each([
    ['ConcurrentSnapshotLimitExceeded', 400],
    ['IncorrectState', 400],
    ['UnauthorizedOperation', 403],
    ['InvalidParameterValue', 400],
    ['TagPolicyViolation', 400],
    ['CustomerKeyHasBeenRevoked', 400],
  ])('GIVEN %s for one instance WHEN run THEN it is failed with that code after one call, and the others get their sets', async (code, status) => {
    const instances = fleet(5);
    await start({ instances });
    const victim = instances[1].instanceId;
    h.sim.addFault((c) => onInstance(victim, c) ? { status, code, message: `simulated ${code}` } : undefined);
    const env = h.environment();

    const result = await runSnapshots(runRequest(), env);

    expect(h.createCalls(victim)).toHaveLength(1);
    expect(h.sim.calls.filter((c) => c.action === 'DescribeSnapshots')).toHaveLength(1); // only the run's look-up
    expect(result.totals.counts).toEqual(expect.objectContaining({ created: 4, failed: 1, notAttempted: 0 }));
    expect(result.totals.failures).toEqual([{ instanceId: victim, outcome: 'failed', code, message: `simulated ${code}` }]);
    h.expectExactlyOneSetEach(ids(instances).filter((id) => id !== victim));
  });
});

describe('account snapshot quota', () => {
  test.each(['PendingSnapshotLimitExceeded', 'SnapshotLimitExceeded'])(
    'GIVEN %s on the 4th call WHEN run THEN no further CreateSnapshots is made and every remaining instance is reported not attempted with the code',
    async (code) => {
      const instances = fleet(10);
      await start({ instances });
      h.sim.addFault((c) => c.action === 'CreateSnapshots' && c.actionIndex >= 3 ? { status: 400, code } : undefined);
      const env = h.environment({ settings: { ...FAST_SETTINGS, concurrency: 1 } });

      const result = await runSnapshots(runRequest(), env);

      expect(h.createCalls()).toHaveLength(4);
      expect(result.status).toBe('completed');
      expect(result.totals.counts).toEqual(expect.objectContaining({ selected: 10, created: 3, failed: 1, notAttempted: 6 }));
      expect(result.totals.failuresByCode).toEqual({ [code]: 7 });
      expect(result.totals.failures.filter((f) => f.outcome === 'not-attempted').map((f) => f.instanceId)).toEqual(ids(instances).slice(4));
      expect(env.continuations).toEqual([]);
      expect(env.log.lines).toContainEqual(expect.objectContaining({ level: 'error', message: expect.stringContaining('quota'), attributes: { code } }));
      h.expectExactlyOneSetEach(ids(instances).slice(0, 3));
    },
  );

  test('GIVEN the quota is hit while other calls are in flight WHEN they come back THEN they count, and nothing new starts', async () => {
    const instances = fleet(12);
    // The quota answer comes back after 10 ms, the others after 200 ms: all 4 calls are in flight then.
    await start({ instances, latencyMs: (c) => (c.errorCode === 'PendingSnapshotLimitExceeded' ? 10 : 200) });
    h.sim.addFault((c) => c.action === 'CreateSnapshots' && c.actionIndex === 0 ? { status: 400, code: 'PendingSnapshotLimitExceeded' } : undefined);
    const env = h.environment({ settings: { ...FAST_SETTINGS, concurrency: 4 } });

    const result = await runSnapshots(runRequest(), env);

    // The 3 other calls in flight made their sets; none was started after the quota answer.
    expect(h.createCalls()).toHaveLength(4);
    const c = result.totals.counts;
    expect(c.created + c.failed + c.notAttempted).toBe(12);
    expect(c).toEqual(expect.objectContaining({ created: 3, failed: 1, notAttempted: 8 }));
  });
});
