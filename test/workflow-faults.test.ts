/**
 * The fault matrix: the synthesized workflow, run by aws-local-stepfunctions, its worker on the
 * real EC2 SDK against the EC2 simulator, under duplicate deliveries, crashes, lost answers,
 * lagging reads, twins, throttling and a changing fleet. Every case asserts snapshot sets per
 * instance for the occurrence: exactly one, or the instance is reported failed.
 *
 * Time is compressed 100 times: the worker's settle window (90 s) is 900 ms, its look interval
 * (10 s) 100 ms, the per-volume wait (16 s) 160 ms, EC2's per-volume interval (15 s) 150 ms, the
 * workflow's recovery wait (2 min) 1.2 s and its wait between passes (5 min) 3 s; DescribeSnapshots
 * lags of 8 s and 30 s are 80 ms and 300 ms.
 */
import { runSnapshotStep } from '../lambda/snapshot-step';
import { Ec2SimulatorOptions } from './support/ec2-simulator';
import { CapturedLog, FAST_SETTINGS, FaultHarness, fleet, ids, instanceId, runRequest, testOccurrence } from './support/fault-harness';
import { largestStateBytes, synthesizeWorkflow, WorkflowHarness, WorkflowHarnessOptions } from './support/workflow-harness';
import { newCursor } from '../lambda/ledger';

// Whole workflow executions on a shared 2-core machine: seconds each, more under load.
jest.setTimeout(30_000);

const SCALE = 100;
const SETTINGS = {
  ...FAST_SETTINGS,
  concurrency: 4,
  settleWindowMs: 90_000 / SCALE,
  lookIntervalMs: 10_000 / SCALE,
  perVolumeRetryDelayMs: 16_000 / SCALE,
  stepBudgetMs: 60_000,
};
const TIMING: WorkflowHarnessOptions = {
  settings: SETTINGS,
  recoveryWaitMs: 120_000 / SCALE,
  retryPassWaitMs: 300_000 / SCALE,
  // EC2's bucket (100, 5 per second) compressed.
  clients: { createSnapshotsPerSec: 5 * SCALE, createSnapshotsBurst: 100 },
};
const SCHEDULED_TIME = '2026-11-24T02:30:00Z';
const SIM: Ec2SimulatorOptions = { perVolumeIntervalMs: 15_000 / SCALE };

let faults: FaultHarness | undefined;
let harness: WorkflowHarness | undefined;

async function setUp(simOptions: Ec2SimulatorOptions, options: Partial<WorkflowHarnessOptions> = {}): Promise<WorkflowHarness> {
  faults = await new FaultHarness({ ...SIM, ...simOptions }).start();
  harness = new WorkflowHarness(synthesizeWorkflow(), faults, { ...TIMING, ...options });
  return harness;
}

afterEach(async () => {
  harness?.dispose();
  await faults?.stop();
  harness = undefined;
  faults = undefined;
});

function delivery(executionId: string, scheduledTime = SCHEDULED_TIME) {
  return { scheduledTime, schedulerExecutionId: executionId };
}

/** instance id -> sets of the occurrence (grouped by the scheduled-time tag). */
function setsPerInstance(): Map<string, number> {
  return new Map([...faults!.sim.setsByInstance('cdk-instance-snapshots:scheduled-time')].map(([id, sets]) => [id, sets.length]));
}

function expectOneSetEach(expected: string[]): void {
  faults!.expectExactlyOneSetEach(expected, SCHEDULED_TIME);
}

describe('duplicate deliveries of one occurrence', () => {
  test('GIVEN two executions of the same occurrence started at once (different execution ids) WHEN both run THEN one creates every set and the other ends as a duplicate', async () => {
    const instances = fleet(40);
    const h = await setUp({ instances, latencyMs: 2 });
    const [a, b] = await Promise.all([h.startExecution('exec-a', delivery('exec-a')), h.startExecution('exec-b', delivery('exec-b'))]);
    const outputs = [a.output, b.output];
    expect(a.error ?? b.error).toBeUndefined();
    expect(outputs.filter((o) => o.status === 'duplicate')).toHaveLength(1);
    const winner = outputs.find((o) => o.status !== 'duplicate');
    const loser = outputs.find((o) => o.status === 'duplicate');
    expect(winner.counts).toMatchObject({ selected: 40, created: 40, failed: 0 });
    expect(loser.ownerExecution).toContain(`:${winner.executionName}`);
    expectOneSetEach(ids(instances));
  }, 20_000);

  test('GIVEN a second delivery (another execution id) while the first run is between steps WHEN it starts THEN it ends as a duplicate and the first run completes alone', async () => {
    const instances = fleet(24);
    const h = await setUp({ instances }, { settings: { ...SETTINGS, stepBudgetMs: 5 } });
    let second: Promise<any> | undefined;
    const first = await h.startExecution('exec-a', delivery('exec-a'), {
      afterWorker: (call) => { if (call.state === 'SnapshotStep') second ??= h.startExecution('exec-b', delivery('exec-b')); },
    });
    expect(first.output).toMatchObject({ result: 'succeeded', counts: { created: 24 } });
    expect(first.output.steps).toBeGreaterThan(1);
    expect((await second)!.output).toMatchObject({ status: 'duplicate' });
    expectOneSetEach(ids(instances));
  }, 20_000);

  test('GIVEN the same execution delivered twice at once WHEN Step Functions treats it as one execution THEN one run happens', async () => {
    const instances = fleet(20);
    const h = await setUp({ instances });
    const [a, b] = await Promise.all([h.startExecution('exec-a', delivery('exec-a')), h.startExecution('exec-a', delivery('exec-a'))]);
    expect(a).toBe(b);
    expect(h.workerCalls.filter((c) => c.state === 'Prepare')).toHaveLength(1);
    expectOneSetEach(ids(instances));
  });

  test('GIVEN a finished run WHEN the occurrence is delivered again later with another execution id THEN the second execution is a duplicate and creates nothing', async () => {
    const instances = fleet(20);
    const h = await setUp({ instances });
    const first = await h.startExecution('exec-a', delivery('exec-a'));
    expect(first.output.result).toBe('succeeded');
    const createsBefore = faults!.sim.countCalls('CreateSnapshots');
    const again = await h.startExecution('exec-b', delivery('exec-b', '2026-11-24T02:30:00.000Z'));
    expect(again.output).toMatchObject({ status: 'duplicate', scheduledTime: SCHEDULED_TIME });
    expect(faults!.sim.countCalls('CreateSnapshots')).toBe(createsBefore);
    expect(await h.startExecution('exec-a', delivery('exec-a'))).toMatchObject({ startError: 'ExecutionAlreadyExists' });
    expectOneSetEach(ids(instances));
  });

  test('GIVEN the lock is bypassed (a twin worker runs the same occurrence directly) WHEN the workflow meets per-volume rate errors THEN it looks for the twin\'s sets instead of making second ones', async () => {
    const instances = fleet(40, { volumes: 1 });
    // EC2's per-volume interval and the look for a twin's set last 5 s here, not 150 and 900 ms: on a
    // loaded machine one of the two workers can fall seconds behind the other, and the test is
    // about what a worker does when it meets the twin's set, not about how far apart they run.
    const settings = { ...SETTINGS, settleWindowMs: 5_000 };
    const h = await setUp({ instances, describeSnapshotsLagMs: 30_000 / SCALE, perVolumeIntervalMs: 5_000 }, { settings });
    const twin = faults!.environment({ settings, log: new CapturedLog() });
    const [run] = await Promise.all([
      h.startExecution('exec-a', delivery('exec-a')),
      runSnapshotStep(runRequest({ scheduleId: 'Stack/Nightly', snapshotTags: {} }), testOccurrence(SCHEDULED_TIME, 'twin'), newCursor(Date.now()), twin),
    ]);
    expect(run.error).toBeUndefined();
    expect(faults!.sim.calls.some((c) => c.errorCode === 'SnapshotCreationPerVolumeRateExceeded')).toBe(true);
    expectOneSetEach(ids(instances));
  });
});

describe('a worker step that fails without an answer', () => {
  test('GIVEN the worker is killed after 7 sets WHEN the workflow recovers THEN it waits, repeats the step from the same cursor and every instance has one set', async () => {
    const instances = fleet(25);
    const h = await setUp({ instances, describeSnapshotsLagMs: 300 });
    const result = await h.startExecution('exec-a', delivery('exec-a'), { kill: (i) => (h.workerCalls[i].state === 'SnapshotStep' && i === 1 ? 7 : undefined) });
    expect(result.error).toBeUndefined();
    expect(result.output.counts).toMatchObject({ selected: 25, failed: 0, notAttempted: 0 });
    expect(result.output.counts.created + result.output.counts.alreadyDone).toBe(25);
    expect(result.output.counts.alreadyDone).toBe(7);
    expect(h.workerCalls.map((c) => c.state)).toEqual(['Prepare', 'SnapshotStep', 'SnapshotStep']);
    expect(h.workerCalls[2].input.cursor).toEqual(h.workerCalls[1].input.cursor);
    expectOneSetEach(ids(instances));
  });

  test('GIVEN Lambda answers with a service error after the worker created every set WHEN the workflow recovers THEN nothing is created twice', async () => {
    const instances = fleet(15);
    const h = await setUp({ instances });
    let lost = false;
    const result = await h.startExecution('exec-a', delivery('exec-a'), {
      afterWorker: (call) => {
        if (call.state === 'SnapshotStep' && !lost) {
          lost = true;
          const e = new Error('Lambda service error');
          e.name = 'Lambda.ServiceException';
          throw e;
        }
      },
    });
    expect(result.output).toMatchObject({ result: 'succeeded', counts: { created: 0, alreadyDone: 15 } });
    expect(faults!.sim.countCalls('CreateSnapshots')).toBe(15);
    expectOneSetEach(ids(instances));
  });

  test('GIVEN Lambda throttles the invocation before it runs WHEN the workflow retries at once THEN the run completes without a recovery wait', async () => {
    const instances = fleet(5);
    const h = await setUp({ instances });
    let throttled = 0;
    const result = await h.startExecution('exec-a', delivery('exec-a'), {
      beforeWorker: (call) => {
        if (call.state === 'SnapshotStep' && throttled++ < 2) {
          const e = new Error('Rate exceeded');
          e.name = 'Lambda.TooManyRequestsException';
          throw e;
        }
      },
    });
    expect(result.output.result).toBe('succeeded');
    expect(result.events.filter((e) => e.type === 'StateRetried' && e.state.name === 'SnapshotStep')).toHaveLength(2);
    expect(result.events.some((e) => e.type === 'StateEntered' && e.state.name === 'WaitBeforeStepAgain')).toBe(false);
    expectOneSetEach(ids(instances));
  });

  test('GIVEN a worker that always crashes WHEN the recoveries are used up THEN the execution fails naming the step error', async () => {
    const h = await setUp({ instances: fleet(3) });
    const result = await h.startExecution('exec-a', delivery('exec-a'), { kill: (i) => (i >= 1 ? 0 : undefined) });
    expect(result.error).toMatchObject({ name: 'WorkerStepFailed' });
    expect(h.workerCalls.filter((c) => c.state === 'SnapshotStep')).toHaveLength(6);
    expect(setsPerInstance().size).toBe(0);
  }, 20_000);
});

describe('ambiguous CreateSnapshots answers with lagging reads', () => {
  test.each([0, 8_000, 30_000])('GIVEN 5xx after the set was made and DescribeSnapshots lagging %i ms (uncompressed) WHEN the run goes on THEN each instance has one set, reported created', async (lagMs) => {
    const instances = fleet(20);
    const h = await setUp({ instances, describeSnapshotsLagMs: lagMs / SCALE });
    faults!.sim.addFault(({ action, actionIndex }) => (action === 'CreateSnapshots' && actionIndex % 3 === 0
      ? { status: 500, code: 'InternalError', afterEffect: true } : undefined));
    const result = await h.startExecution('exec-a', delivery('exec-a'));
    expect(result.output).toMatchObject({ result: 'succeeded', counts: { selected: 20, created: 20, failed: 0 } });
    expectOneSetEach(ids(instances));
  });

  test('GIVEN CreateSnapshots answers without any snapshot WHEN the set was in fact made THEN it is found, not counted blindly nor made twice', async () => {
    const instances = fleet(4);
    const h = await setUp({ instances, describeSnapshotsLagMs: 80 });
    faults!.sim.addFault(({ action, actionIndex }) => (action === 'CreateSnapshots' && actionIndex === 0 ? { status: 200, code: 'EmptyAnswer', afterEffect: true } : undefined));
    const result = await h.startExecution('exec-a', delivery('exec-a'));
    expect(h.log.lines.some((l) => l.attributes.code === 'EmptyCreateSnapshotsAnswer')).toBe(true);
    expect(result.output.counts).toMatchObject({ created: 4, failed: 0 });
    expectOneSetEach(ids(instances));
  });
});

describe('throttling', () => {
  test('GIVEN a throttling storm (another caller drains the bucket) WHEN the run goes on THEN every instance has one set and the run succeeds', async () => {
    const instances = fleet(60);
    const h = await setUp({ instances, createSnapshotsBucket: { capacity: 10, refillPerSec: 400 } });
    faults!.sim.addFault(({ action, actionIndex }) => (action === 'CreateSnapshots' && actionIndex % 4 === 1 ? { status: 503, code: 'RequestLimitExceeded' } : undefined));
    const result = await h.startExecution('exec-a', delivery('exec-a'));
    expect(result.output).toMatchObject({ result: 'succeeded', counts: { created: 60, failed: 0 } });
    expect(faults!.sim.calls.filter((c) => c.errorCode === 'RequestLimitExceeded').length).toBeGreaterThan(10);
    expectOneSetEach(ids(instances));
  });
});

describe('a fleet that changes during the run', () => {
  test('GIVEN steps of a few instances WHEN later instances are terminated, stopped or untagged between steps THEN the run follows the fleet as it is', async () => {
    const instances = fleet(30, { volumes: 1 });
    const h = await setUp({ instances }, { settings: { ...SETTINGS, stepBudgetMs: 5 } });
    const [terminated, stopped, untagged] = [instanceId(25), instanceId(26), instanceId(27)];
    const result = await h.startExecution('exec-a', delivery('exec-a'), {
      afterWorker: (call, index) => {
        if (call.state === 'SnapshotStep' && index === 1) {
          faults!.sim.terminate(terminated);
          faults!.sim.setInstanceState(stopped, 'stopped');
          faults!.sim.setInstanceTags(untagged, { Backup: 'never' });
        }
      },
    });
    expect(result.error).toBeUndefined();
    const expected = ids(instances).filter((id) => id !== terminated && id !== untagged);
    expectOneSetEach(expected);
    expect(result.output.counts).toMatchObject({ created: 28, failed: 0, notAttempted: 0 });
  });

  test('GIVEN an instance is pending when listed WHEN it is running before the retry pass THEN the retry pass snapshots it and the run succeeds', async () => {
    const instances = fleet(6, { volumes: 1 });
    instances[2].state = 'pending';
    const h = await setUp({ instances });
    const result = await h.startExecution('exec-a', delivery('exec-a'), {
      afterWorker: (_call, index) => { if (index === 1) faults!.sim.setInstanceState(instances[2].instanceId, 'running'); },
    });
    expect(result.output).toMatchObject({ result: 'succeeded', passes: 2, counts: { created: 6, notAttempted: 0 } });
    expect(h.log.lines.some((l) => l.attributes.code === 'InstancePending' && l.attributes.instanceId === instances[2].instanceId)).toBe(true);
    expectOneSetEach(ids(instances));
  });

  test('GIVEN an instance that EC2 refuses every time WHEN every pass fails it THEN the execution FAILS and its cause names the instance and the code', async () => {
    const instances = fleet(5, { volumes: 1 });
    const h = await setUp({ instances });
    const refused = instances[3].instanceId;
    faults!.sim.addFault(({ action, params }) => (action === 'CreateSnapshots' && params['InstanceSpecification.InstanceId'] === refused
      ? { status: 400, code: 'IncorrectState', message: 'volume busy' } : undefined));
    const result = await h.startExecution('exec-a', delivery('exec-a'));
    expect(result.error?.name).toBe('SnapshotRunFailed');
    const cause = JSON.parse(result.error!.cause);
    expect(cause).toMatchObject({ result: 'failed', passes: 3, counts: { selected: 5, created: 4, failed: 1 }, failuresByCode: { IncorrectState: 1 } });
    expect(cause.failures).toEqual([expect.objectContaining({ instanceId: refused, code: 'IncorrectState' })]);
    expect(faults!.sim.calls.filter((c) => c.params['InstanceSpecification.InstanceId'] === refused)).toHaveLength(3);
    expectOneSetEach(ids(instances).filter((id) => id !== refused));
  }, 20_000);

  test('GIVEN the account snapshot quota is reached WHEN the run meets it THEN no further set is started, the rest is reported not attempted and the execution FAILS', async () => {
    const instances = fleet(12, { volumes: 1 });
    const h = await setUp({ instances }, { settings: { ...SETTINGS, concurrency: 1 } });
    faults!.sim.addFault(({ action, actionIndex }) => (action === 'CreateSnapshots' && actionIndex >= 5 ? { status: 400, code: 'SnapshotLimitExceeded' } : undefined));
    const result = await h.startExecution('exec-a', delivery('exec-a'));
    const cause = JSON.parse(result.error!.cause);
    expect(cause.counts).toMatchObject({ selected: 12, created: 5, failed: 1, notAttempted: 6 });
    expect(cause.passes).toBe(1);
    expect(faults!.sim.countCalls('CreateSnapshots')).toBe(6);
  });
});

describe('input that is not the workflow\'s own', () => {
  test('GIVEN a forged worker input naming an untagged instance WHEN the worker gets it THEN it is rejected and nothing is snapshotted', async () => {
    const instances = fleet(3);
    const h = await setUp({ instances: [...instances, { instanceId: 'i-0aaaaaaaaaaaaaaaa', tags: { Backup: 'never' }, volumeIds: ['vol-0aaaaaaaaaaaaaaaa'] }] });
    const result = await h.startExecution('exec-a', delivery('exec-a'), {
      forgeInput: (input) => (input.action === 'snapshot-step' ? { ...input, cursor: { ...input.cursor, pending: ['i-0aaaaaaaaaaaaaaaa'] } } : input),
    });
    expect(result.error).toMatchObject({ name: 'InvalidRunRequest' });
    expect(setsPerInstance().size).toBe(0);
  });

  test('GIVEN a forged request with other tags WHEN the worker gets it THEN its hash does not match the deployed one and nothing is snapshotted', async () => {
    const h = await setUp({ instances: [{ instanceId: 'i-0aaaaaaaaaaaaaaaa', tags: { Backup: 'never' }, volumeIds: ['vol-0aaaaaaaaaaaaaaaa'] }] });
    const result = await h.startExecution('exec-a', delivery('exec-a'), {
      forgeInput: (input) => ({ ...input, request: JSON.stringify({ ...JSON.parse(input.request), instanceTags: { Backup: ['never'] } }) }),
    });
    expect(result.error).toMatchObject({ name: 'InvalidRunRequest' });
    expect(result.error!.cause).toContain('SHA-256');
    expect(setsPerInstance().size).toBe(0);
  });

  test.each([
    ['a literal placeholder', { scheduledTime: '<aws.scheduler.scheduled-time>', schedulerExecutionId: 'exec-a' }],
    ['an execution id over 256 characters', { scheduledTime: SCHEDULED_TIME, schedulerExecutionId: 'x'.repeat(300) }],
    ['a date that does not exist', { scheduledTime: '2026-02-30T02:30:00Z', schedulerExecutionId: 'exec-a' }],
  ])('GIVEN %s in the execution input WHEN the run starts THEN it is rejected before any lock or EC2 call', async (_name, input) => {
    const h = await setUp({ instances: fleet(2) });
    const result = await h.run(input, { executionName: 'exec-a' });
    expect(result.error).toMatchObject({ name: 'InvalidRunRequest' });
    expect(h.table.puts).toBe(0);
    expect(faults!.sim.calls).toHaveLength(0);
  });
});

describe('what the workflow carries', () => {
  test('GIVEN fleets of 10 and 200 instances in steps WHEN they run THEN the largest state is the same size, under 8 KiB', async () => {
    const sizes: number[] = [];
    for (const n of [10, 200]) {
      const h = await setUp({ instances: fleet(n) }, { settings: { ...SETTINGS, concurrency: 10, stepBudgetMs: 20 } });
      const result = await h.startExecution('exec-a', delivery('exec-a'));
      expect(result.output.counts.created).toBe(n);
      sizes.push(largestStateBytes(result.events));
      harness!.dispose();
      await faults!.stop();
    }
    expect(sizes[1]).toBeLessThan(8192);
    expect(Math.abs(sizes[1] - sizes[0])).toBeLessThan(200);
    expect(harness!.workerCalls.filter((c) => c.state === 'SnapshotStep').length).toBeGreaterThan(5);
  }, 30_000);
});
