/**
 * The real Lambda entry (the `handler` of lambda/worker.ts), its clients configured only through
 * the environment, against the simulator's EC2 endpoint; the test plays the workflow: Prepare, then
 * SnapshotStep with each cursor it returns (through JSON) until the run is done.
 */
import { Ec2Simulator, SimInstance } from './support/ec2-simulator';
import { CREDENTIALS, fleet, REGION, runRequest } from './support/fault-harness';
import type { RunCursor } from '../lambda/ledger';
import type { PreparedRun } from '../lambda/worker';
import { requestSha256, SnapshotRunRequest } from '../src/private/request-contract';

type Handler = typeof import('../lambda/worker').handler;

let sim: Ec2Simulator;
let handler: Handler;
let output: any[];

beforeAll(async () => {
  sim = new Ec2Simulator();
  await sim.start();
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_EC2: sim.endpoint,
    AWS_REGION: REGION,
    AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
    AWS_EC2_METADATA_DISABLED: 'true',
    // Powertools writes through the global console in dev mode, where the test reads each line.
    POWERTOOLS_DEV: 'true',
    POWERTOOLS_SERVICE_NAME: 'cdk-instance-snapshots',
    POWERTOOLS_METRICS_NAMESPACE: 'CdkInstanceSnapshots',
    POWERTOOLS_METRICS_DISABLED: 'true',
    SNAPSHOT_CONCURRENCY: '3',
    // A step's window: 5 calls/s (the request's rate) x 0.6 s = 3 instances.
    STEP_BUDGET_MS: '600',
    PER_VOLUME_RETRY_DELAY_MS: '50',
    THROTTLE_BACKOFF_BASE_MS: '2',
    THROTTLE_BACKOFF_MAX_MS: '20',
    SETTLE_WINDOW_MS: '100',
    LOOK_INTERVAL_MS: '10',
    TIME_RESERVE_MS: '60000',
  });
  // Loaded only now: the module reads its settings from the environment.
  jest.isolateModules(() => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    handler = (require('../lambda/worker') as typeof import('../lambda/worker')).handler;
  });
});
afterAll(async () => sim.stop());

beforeEach(() => {
  output = [];
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    jest.spyOn(console, method).mockImplementation((line?: unknown, ..._rest: unknown[]) => {
      output.push(typeof line === 'string' && line.startsWith('{') ? JSON.parse(line) : line);
    });
  }
});
afterEach(() => {
  sim.clearFaults();
  delete process.env.REQUEST_SHA256;
  jest.restoreAllMocks();
});

const logLines = () => output.filter((o) => typeof o === 'object' && o?.message);
const context = { getRemainingTimeInMillis: () => 900_000 };

/** Instances of this test only (their own tag value), added to the shared simulator. */
function instancesFor(tag: string, n: number, from: number): SimInstance[] {
  const instances = fleet(n, { from }).map((i) => ({ ...i, tags: { Backup: tag } }));
  sim.addInstances(instances);
  return instances;
}

function setsOf(instances: SimInstance[]): Record<string, number> {
  const sets = sim.setsByInstance();
  return Object.fromEntries(instances.map((i) => [i.instanceId, sets.get(i.instanceId)?.length ?? 0]));
}

const once = (instances: SimInstance[]) => Object.fromEntries(instances.map((i) => [i.instanceId, 1]));

/** What the workflow passes to the worker (the request as JSON text), JSON round-tripped. */
function event(value: Record<string, unknown>) {
  return JSON.parse(JSON.stringify(value));
}

/** Prepare, then steps until the run is done; returns the cursors the steps returned. */
async function runWorkflow(request: SnapshotRunRequest, executionName: string): Promise<RunCursor[]> {
  const requestJson = JSON.stringify(request);
  const prepared = await handler(event({ action: 'prepare', request: requestJson, input: { scheduledTime: '2026-11-24T02:30:00Z', schedulerExecutionId: executionName }, executionName }), context) as PreparedRun;
  const cursors: RunCursor[] = [];
  let cursor = prepared.cursor;
  while (cursor.phase !== 'done' && cursors.length < 20) {
    cursor = await handler(event({ action: 'snapshot-step', request: requestJson, occurrence: prepared.occurrence, cursor }), context) as RunCursor;
    cursors.push(cursor);
  }
  return cursors;
}

test('GIVEN a fleet larger than one step WHEN the workflow runs the steps THEN each takes the next part of the selection until done, one set each, every line naming the occurrence', async () => {
  const instances = instancesFor('entry-steps', 12, 1000);
  const request = runRequest({ instanceTags: { Backup: ['entry-steps'] } });

  const cursors = await runWorkflow(request, 'exec-entry-1');

  expect(cursors.length).toBeGreaterThanOrEqual(3);
  expect(cursors.map((c) => c.phase)).toEqual([...Array(cursors.length - 1).fill('snapshot'), 'done']);
  const last = cursors[cursors.length - 1];
  expect(last).toEqual(expect.objectContaining({ result: 'succeeded', steps: cursors.length, pass: 1 }));
  expect(setsOf(instances)).toEqual(once(instances));
  const lines = logLines();
  for (const line of lines) expect(line).toEqual(expect.objectContaining({ scheduleId: 'Stack/Nightly', scheduledTime: '2026-11-24T02:30:00Z', executionName: 'exec-entry-1' }));
  expect(lines[lines.length - 1]).toEqual(expect.objectContaining({
    message: 'run summary',
    result: 'succeeded',
    counts: expect.objectContaining({ selected: 12, created: 12, alreadyDone: 0, failed: 0, notAttempted: 0 }),
    steps: cursors.length,
    apiCalls: { DescribeInstances: cursors.length, DescribeSnapshots: cursors.length, CreateSnapshots: 12 },
  }));
  // The workflow carries the CreateSnapshots bucket from step to step.
  for (const cursor of cursors) expect(cursor.bucket).toEqual({ tokens: expect.any(Number), atEpochMs: expect.any(Number) });
});

test('GIVEN a step whose answer was lost after it made sets WHEN the workflow runs it again from the same cursor THEN only the missing sets are made', async () => {
  const instances = instancesFor('entry-lost', 5, 2000);
  const requestJson = JSON.stringify(runRequest({ instanceTags: { Backup: ['entry-lost'] } }));
  const prepared = await handler(event({ action: 'prepare', request: requestJson, input: { scheduledTime: '2026-11-24T02:30:00Z' }, executionName: 'exec-entry-2' }), context) as PreparedRun;
  // The step makes sets for the first window, then its answer is lost (Lambda timed out, say).
  const lost = await handler(event({ action: 'snapshot-step', request: requestJson, occurrence: prepared.occurrence, cursor: prepared.cursor }), context) as RunCursor;
  expect(lost.counts.created).toBe(3);
  const calls = sim.countCalls('CreateSnapshots');
  output.length = 0;

  const again = await handler(event({ action: 'snapshot-step', request: requestJson, occurrence: prepared.occurrence, cursor: prepared.cursor }), context) as RunCursor;

  expect(again.after).toBe(lost.after);
  expect(sim.countCalls('CreateSnapshots')).toBe(calls);
  expect(again.counts).toEqual(expect.objectContaining({ selected: 3, alreadyDone: 3, created: 0 }));
  expect(logLines().filter((l) => l.outcome === 'already-done')).toHaveLength(3);
  // The run goes on from the repeated step's cursor.
  const done = await handler(event({ action: 'snapshot-step', request: requestJson, occurrence: prepared.occurrence, cursor: again }), context) as RunCursor;
  expect(done).toEqual(expect.objectContaining({ phase: 'done', result: 'succeeded' }));
  expect(setsOf(instances)).toEqual(once(instances));
});

test('GIVEN a 500 after EC2 made the set WHEN the real worker runs THEN it finds the set: no duplicate and no failure', async () => {
  const instances = instancesFor('entry-500', 3, 3000);
  let seen = 0;
  sim.addFault((c) => c.action === 'CreateSnapshots' && seen++ === 1 ? { status: 500, code: 'InternalError', afterEffect: true } : undefined);

  const cursors = await runWorkflow(runRequest({ instanceTags: { Backup: ['entry-500'] } }), 'exec-entry-3');

  expect(cursors[cursors.length - 1]).toEqual(expect.objectContaining({ phase: 'done', result: 'succeeded' }));
  expect(setsOf(instances)).toEqual(once(instances));
  // EC2's part of the story is in the log line (Powertools would drop an attribute named `message`).
  expect(logLines().filter((l) => l.detail === 'found after InternalError')).toEqual([
    expect.objectContaining({ level: 'INFO', message: 'snapshot set created', executionName: 'exec-entry-3', outcome: 'created', snapshotIds: expect.any(Array) }),
  ]);
  expect(logLines().filter((l) => /reserved key/.test(l.message))).toEqual([]);
  expect(logLines()).toContainEqual(expect.objectContaining({ message: 'run summary', counts: expect.objectContaining({ created: 3, failed: 0 }) }));
});

test('GIVEN REQUEST_SHA256 of another request WHEN the workflow sends this one THEN the worker refuses it and calls nothing', async () => {
  const request = runRequest({ instanceTags: { Backup: ['entry-sha'] } });
  process.env.REQUEST_SHA256 = requestSha256(runRequest({ instanceTags: { Backup: ['entry-other'] } }));
  const calls = sim.calls.length;

  // The module's worker reads its environment on every call.
  const error = await handler(event({ action: 'prepare', request: JSON.stringify(request), input: { scheduledTime: '2026-11-24T02:30:00Z' }, executionName: 'exec-entry-4' }), context)
    .then(() => undefined, (e) => e);

  // The module was loaded on its own (isolateModules): its error class is another instance; Step Functions sees the name.
  expect(error.name).toBe('InvalidRunRequestError');
  expect(error.violations).toEqual([expect.objectContaining({ prop: 'request', message: expect.stringContaining('its SHA-256 differs') })]);
  expect(sim.calls.length).toBe(calls);
});
