/**
 * The real Lambda entry (lambda/snapshot-handler.ts), its module-scope SDK clients configured only
 * through the environment, against the simulator's EC2 and Lambda Invoke endpoints.
 */
import type { Context } from 'aws-lambda';
import { Ec2Simulator, SimInstance } from './support/ec2-simulator';
import { CREDENTIALS, fleet, REGION, runRequest } from './support/fault-harness';
import { SnapshotRunRequest } from '../src/private/request-contract';

type Handler = typeof import('../lambda/snapshot-handler').handler;

const FUNCTION_ARN = 'arn:aws:lambda:us-east-1:123456789012:function:snapshots';
let sim: Ec2Simulator;
let handler: Handler;
let output: any[];

beforeAll(async () => {
  sim = new Ec2Simulator();
  await sim.start();
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_EC2: sim.endpoint,
    AWS_ENDPOINT_URL_LAMBDA: sim.endpoint,
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
    PER_VOLUME_RETRY_DELAY_MS: '50',
    THROTTLE_BACKOFF_BASE_MS: '2',
    THROTTLE_BACKOFF_MAX_MS: '20',
    VERIFY_DELAY_MS: '5',
    TIME_RESERVE_MS: '60000',
  });
  // Loaded only now: the module's clients read the endpoints from the environment.
  jest.isolateModules(() => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    handler = (require('../lambda/snapshot-handler') as typeof import('../lambda/snapshot-handler')).handler;
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
  jest.restoreAllMocks();
});

const logLines = () => output.filter((o) => typeof o === 'object' && o?.message);

/** A Lambda context whose time runs low (below TIME_RESERVE_MS) once the simulator has seen `calls` more CreateSnapshots. */
function context(calls = Infinity): Context {
  const base = sim.countCalls('CreateSnapshots');
  return {
    invokedFunctionArn: FUNCTION_ARN,
    getRemainingTimeInMillis: () => (sim.countCalls('CreateSnapshots') - base < calls ? 900_000 : 30_000),
  } as unknown as Context;
}

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

test('GIVEN a fleet larger than one invocation WHEN the handler runs THEN it continues through Lambda Invoke (Event) with the same execution id until done, one set each', async () => {
  const instances = instancesFor('entry-continued', 12, 1000);
  let event: unknown = runRequest({ executionId: 'exec-entry-1', instanceTags: { Backup: ['entry-continued'] } });
  const statuses: string[] = [];
  for (let k = 0; k < 10; k++) {
    const invokes = sim.invocations.length;
    const result = await handler(event, context(4));
    statuses.push(result.status);
    if (result.status !== 'continued') break;
    expect(sim.invocations).toHaveLength(invokes + 1);
    const invocation = sim.invocations[invokes];
    expect(invocation).toEqual(expect.objectContaining({ functionName: FUNCTION_ARN, invocationType: 'Event' }));
    event = JSON.parse(invocation.payload);
    expect(event).toEqual(expect.objectContaining({ executionId: 'exec-entry-1', continuation: expect.any(Object) }));
  }

  expect(statuses.length).toBeGreaterThanOrEqual(3);
  expect(statuses[statuses.length - 1]).toBe('completed');
  expect(setsOf(instances)).toEqual(once(instances));
  const lines = logLines();
  for (const line of lines) expect(line).toEqual(expect.objectContaining({ executionId: 'exec-entry-1' }));
  expect(lines[lines.length - 1]).toEqual(expect.objectContaining({
    message: 'run summary',
    selected: 12,
    created: 12,
    alreadyDone: 0,
    failed: 0,
    notAttempted: 0,
    invocations: statuses.length,
    apiCalls: { DescribeInstances: 1, DescribeSnapshots: statuses.length, CreateSnapshots: 12 },
  }));
});

test('GIVEN the continuation cannot be invoked WHEN the time runs low THEN the invocation fails listing what is left, and Lambda\'s retry of the same event makes only the missing sets', async () => {
  const instances = instancesFor('entry-retried', 8, 2000);
  sim.addFault((c) => c.action === 'Invoke' ? { status: 403, code: 'AccessDeniedException', message: 'not authorized to perform lambda:InvokeFunction' } : undefined);
  const event: SnapshotRunRequest = runRequest({ executionId: 'exec-entry-2', instanceTags: { Backup: ['entry-retried'] } });

  await expect(handler(event, context(3))).rejects.toThrow(/^5 of 8 selected instances have no snapshot set from this run: i-\w+ not-attempted ContinuationFailed/);
  expect(sim.countCalls('Invoke')).toBeGreaterThan(0);
  expect(Object.values(setsOf(instances)).filter((n) => n === 1)).toHaveLength(3);
  expect(logLines()).toContainEqual(expect.objectContaining({ message: 'run summary', created: 3, notAttempted: 5, failuresByCode: { ContinuationFailed: 5 } }));
  expect(logLines()).toContainEqual(expect.objectContaining({
    level: 'ERROR', message: 'instance not attempted', code: 'ContinuationFailed', detail: expect.stringContaining('AccessDeniedException: not authorized to perform lambda:InvokeFunction'),
  }));

  // Lambda retries the failed asynchronous invocation with the same event.
  sim.clearFaults();
  output.length = 0;
  const calls = sim.countCalls('CreateSnapshots');
  const result = await handler(JSON.parse(JSON.stringify(event)), context());

  expect(result.status).toBe('completed');
  expect(sim.countCalls('CreateSnapshots') - calls).toBe(5);
  expect(setsOf(instances)).toEqual(once(instances));
  expect(logLines()).toContainEqual(expect.objectContaining({ message: 'run summary', selected: 8, alreadyDone: 3, created: 5, failed: 0, notAttempted: 0 }));
});

test('GIVEN a 500 after EC2 made the set WHEN the real handler runs THEN it finds the set: no duplicate and no failure', async () => {
  const instances = instancesFor('entry-500', 4, 3000);
  let seen = 0;
  sim.addFault((c) => c.action === 'CreateSnapshots' && seen++ === 1 ? { status: 500, code: 'InternalError', afterEffect: true } : undefined);

  const result = await handler(runRequest({ executionId: 'exec-entry-3', instanceTags: { Backup: ['entry-500'] } }), context());

  expect(result.status).toBe('completed');
  expect(setsOf(instances)).toEqual(once(instances));
  // EC2's part of the story is in the log line (Powertools would drop an attribute named `message`).
  expect(logLines().filter((l) => l.detail === 'found after InternalError')).toEqual([
    expect.objectContaining({ level: 'INFO', message: 'snapshot set created', executionId: 'exec-entry-3', outcome: 'created', snapshotIds: expect.any(Array) }),
  ]);
  expect(logLines().filter((l) => /reserved key/.test(l.message))).toEqual([]);
  expect(logLines()).toContainEqual(expect.objectContaining({ message: 'run summary', created: 4, failed: 0 }));
});
