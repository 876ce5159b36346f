/**
 * The worker's Lambda entry (makeWorker): its two actions, the checks of everything it is handed,
 * the clients it builds per step, and what it reports (Powertools log lines and EMF metrics).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { CreateSnapshotsCommand, DescribeInstancesCommand, DescribeSnapshotsCommand, EC2Client, EC2ServiceException } from '@aws-sdk/client-ec2';
import type { RetryToken } from '@smithy/types';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { CREDENTIALS, instanceId, runRequest } from './support/fault-harness';
import { createEc2Clients, Ec2Clients, Ec2ClientsOptions } from '../lambda/clients';
import { newCursor, newPruneProgress, RunCursor } from '../lambda/ledger';
import { DEFAULT_SETTINGS, RunSettings } from '../lambda/snapshot-step';
import {
  clientOptionsFromEnv,
  createWorkerMetrics,
  makeWorker,
  MetricsSink,
  PreparedRun,
  REQUEST_SHA256_ENV,
  runMetrics,
  settingsFromEnv,
  ThrottlingOnlyRetryStrategy,
  withInFlightFor,
} from '../lambda/worker';
import {
  EXECUTION_ID_TAG,
  INSTANCE_ID_TAG,
  InvalidRunRequestError,
  METRICS,
  Occurrence,
  parseRunRequest,
  REQUEST_VERSION,
  requestSha256,
  SCHEDULE_ID_ENV,
  SCHEDULE_TAG,
  SCHEDULED_TIME_TAG,
  SnapshotRunRequest,
} from '../src/private/request-contract';

// Powertools writes through the global console in dev mode, where the test reads each line.
process.env.POWERTOOLS_DEV = 'true';
process.env.POWERTOOLS_METRICS_DISABLED = 'false';
// As the construct sets it: Powertools would make it a `service` dimension of every metric.
process.env.POWERTOOLS_SERVICE_NAME = 'cdk-instance-snapshots';
// The worker names its namespace itself: another one here must not reach its lines.
process.env.POWERTOOLS_METRICS_NAMESPACE = 'NotTheLibrarysNamespace';

const ec2Mock = mockClient(EC2Client);

const REQUEST: SnapshotRunRequest = runRequest({ snapshotTags: {}, createSnapshotsPerSecond: 7 });
const REQUEST_JSON = JSON.stringify(REQUEST);
const NOW = 1_795_000_000_000;
const SETTINGS: RunSettings = {
  ...DEFAULT_SETTINGS,
  settleWindowMs: 10,
  lookIntervalMs: 2,
  perVolumeRetryDelayMs: 2,
  throttleBackoffBaseMs: 1,
  throttleBackoffMaxMs: 2,
  reserveMs: 0,
};
const [I1, I2] = [instanceId(1), instanceId(2)];

function instance(id: string) {
  return { InstanceId: id, State: { Name: 'running' as const }, RootDeviceName: '/dev/xvda', Tags: [{ Key: 'Backup', Value: 'nightly' }], BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeId: `vol-${id.slice(2)}` } }] };
}

const context = { getRemainingTimeInMillis: () => 900_000 };

/** The worker with its real clients (mocked EC2), recording how they are built and destroyed. */
function worker(env: Record<string, string> = {}, settings: RunSettings = SETTINGS, deps: { metrics?: MetricsSink; now?: () => number } = {}) {
  const built: Array<{ options: Ec2ClientsOptions; clients: Ec2Clients; destroyed: jest.SpyInstance[] }> = [];
  const handler = makeWorker({
    settings,
    env,
    logger: new Logger(),
    metrics: deps.metrics ?? createWorkerMetrics(),
    now: deps.now ?? (() => NOW),
    createClients: (options) => {
      const clients = createEc2Clients({ ...options, config: { region: 'eu-central-1', credentials: CREDENTIALS } });
      built.push({ options, clients, destroyed: [jest.spyOn(clients.ec2, 'destroy'), jest.spyOn(clients.ec2Create, 'destroy')] });
      return clients;
    },
  });
  return { handler, built };
}

function prepareEvent(overrides: Record<string, unknown> = {}) {
  return { action: 'prepare', request: REQUEST_JSON, input: { scheduledTime: '2026-11-24T02:30:00Z', schedulerExecutionId: 'd32c5kddcf5bb8c3' }, executionName: 'd32c5kddcf5bb8c3', ...overrides };
}

async function prepared(): Promise<PreparedRun> {
  return await worker().handler(prepareEvent(), context) as PreparedRun;
}

function stepEvent(occurrence: Occurrence, cursor: RunCursor, overrides: Record<string, unknown> = {}) {
  return JSON.parse(JSON.stringify({ action: 'snapshot-step', request: REQUEST_JSON, occurrence, cursor, ...overrides }));
}

let output: any[];
beforeEach(() => {
  ec2Mock.reset();
  output = [];
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    jest.spyOn(console, method).mockImplementation((line?: unknown, ..._rest: unknown[]) => {
      output.push(typeof line === 'string' && line.startsWith('{') ? JSON.parse(line) : line);
    });
  }
  ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance(I1), instance(I2)] }] });
  ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
  ec2Mock.on(CreateSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: 'snap-1' }] });
});
afterEach(() => jest.restoreAllMocks());

const logLines = () => output.filter((o) => typeof o === 'object' && o?.message);
const emf = () => output.filter((o) => typeof o === 'object' && o?._aws);

describe('prepare', () => {
  test.each([
    ['JSON text (as the workflow sends it)', REQUEST_JSON],
    ['an object (as an operator may send it)', REQUEST],
  ])('GIVEN the request as %s WHEN prepare runs THEN it returns the occurrence, a new cursor and no recovery, calling nothing', async (_name, request) => {
    const { handler, built } = worker();

    const result = await handler(prepareEvent({ request }), context);

    expect(result).toEqual({
      occurrence: {
        scheduledTime: '2026-11-24T02:30:00Z',
        executionName: 'd32c5kddcf5bb8c3',
        lockKey: 'Stack/Nightly#2026-11-24T02:30:00Z',
        expiresAt: String(Date.parse('2026-11-24T02:30:00Z') / 1000 + 100 * 86_400),
      },
      cursor: newCursor(NOW),
      recoveries: 0,
    });
    expect(built).toEqual([]);
    expect(ec2Mock).not.toHaveReceivedAnyCommand();
    expect(logLines()).toContainEqual(expect.objectContaining({
      message: 'run prepared', scheduleId: 'Stack/Nightly', scheduledTime: '2026-11-24T02:30:00Z', executionName: 'd32c5kddcf5bb8c3', lockKey: 'Stack/Nightly#2026-11-24T02:30:00Z',
    }));
  });

  test('GIVEN the scheduled time with milliseconds WHEN prepare runs THEN the occurrence is the same one', async () => {
    const result = await worker().handler(prepareEvent({ input: { scheduledTime: '2026-11-24T02:30:00.000Z' } }), context) as PreparedRun;

    expect(result.occurrence.lockKey).toBe('Stack/Nightly#2026-11-24T02:30:00Z');
  });

  test('GIVEN REQUEST_SHA256 of this request WHEN prepare runs THEN the request is accepted, whatever the order of its keys', async () => {
    const reordered = JSON.stringify(Object.fromEntries(Object.entries(REQUEST).reverse()));
    const { handler } = worker({ [REQUEST_SHA256_ENV]: requestSha256(parseRunRequest(REQUEST)) });

    await expect(handler(prepareEvent({ request: reordered }), context)).resolves.toEqual(expect.objectContaining({ recoveries: 0 }));
  });
});

describe('invalid input is rejected before anything is done, naming the field', () => {
  let occurrence: Occurrence;
  let cursor: RunCursor;
  beforeAll(async () => {
    jest.spyOn(console, 'info').mockImplementation(() => undefined);
    ({ occurrence, cursor } = await prepared());
    jest.restoreAllMocks();
  });

  const cases: Array<[string, string, string, () => unknown, Record<string, string>]> = [
    ['an event that is not an object', 'event', 'the event must be a JSON object, got: "hello"',
      () => 'hello', {}],
    ['a request that is not JSON', 'request', 'request must be JSON, got: "{\\"version\\":2,"',
      () => prepareEvent({ request: '{"version":2,' }), {}],
    ['no request', 'event', 'the event must be a JSON object, got: undefined',
      () => prepareEvent({ request: undefined }), {}],
    ['a request of another version', 'version', `version must be ${REQUEST_VERSION}, got: 1`,
      () => prepareEvent({ request: JSON.stringify({ ...REQUEST, version: 1 }) }), {}],
    ['a request that is not the deployed one', 'request', 'request is not the one this schedule\'s worker was deployed with (its SHA-256 differs)',
      () => prepareEvent({ request: JSON.stringify({ ...REQUEST, instanceTags: { Backup: ['all'] } }) }), { [REQUEST_SHA256_ENV]: requestSha256(REQUEST) }],
    ['an unknown action', 'action', 'action must be "prepare" or "snapshot-step", got: "run"',
      () => prepareEvent({ action: 'run' }), {}],
    ['the literal <aws.scheduler.execution-id> as the execution name', 'executionName',
      'executionName holds an EventBridge Scheduler placeholder that was not filled in, got: "<aws.scheduler.execution-id>"',
      () => prepareEvent({ executionName: '<aws.scheduler.execution-id>' }), {}],
    ['the literal <aws.scheduler.execution-id> in the execution input', 'schedulerExecutionId',
      'schedulerExecutionId holds an EventBridge Scheduler placeholder that was not filled in, got: "<aws.scheduler.execution-id>"',
      () => prepareEvent({ input: { scheduledTime: '2026-11-24T02:30:00Z', schedulerExecutionId: '<aws.scheduler.execution-id>' } }), {}],
    ['a 300-character execution name', 'executionName', 'executionName must be a string of 1 to 80 characters',
      () => prepareEvent({ executionName: 'e'.repeat(300) }), {}],
    ['a 300-character execution id', 'schedulerExecutionId', 'schedulerExecutionId must be a string of 1 to 256 characters',
      () => prepareEvent({ input: { scheduledTime: '2026-11-24T02:30:00Z', schedulerExecutionId: 'e'.repeat(300) } }), {}],
    ['a scheduled time that is not a day (2026-02-30)', 'scheduledTime', 'scheduledTime must be a UTC timestamp like "2026-11-24T02:30:00Z", got: "2026-02-30T02:30:00Z"',
      () => prepareEvent({ input: { scheduledTime: '2026-02-30T02:30:00Z' } }), {}],
    ['unknown fields in the execution input', 'input', 'the execution input takes only scheduledTime and schedulerExecutionId, got: ["dryRun"]',
      () => prepareEvent({ input: { scheduledTime: '2026-11-24T02:30:00Z', dryRun: false } }), {}],
    ['unknown fields in a step event', 'event', 'a snapshot step takes only action, request, occurrence and cursor, got: ["pending"]',
      () => stepEvent(occurrence, cursor, { pending: [I1] }), {}],
    ['a forged cursor with a list of instances', 'cursor', 'unknown fields ["pending"]',
      () => stepEvent(occurrence, { ...cursor, pending: [I1] } as RunCursor), {}],
    ['a cursor positioned on something that is not an instance', 'cursor', 'after must be \'\' or an instance id',
      () => stepEvent(occurrence, { ...cursor, after: 'zzz' }), {}],
    ['no cursor', 'cursor', 'the cursor must be an object',
      () => stepEvent(occurrence, undefined as unknown as RunCursor), {}],
    ['an occurrence whose lock key was changed', 'occurrence', 'the occurrence does not match its scheduled time and schedule',
      () => stepEvent({ ...occurrence, lockKey: 'Stack/Nightly#2026-01-01T00:00:00Z' }, cursor), {}],
    ['no occurrence', 'scheduledTime', 'scheduledTime must be a string of 1 to 256 characters',
      () => stepEvent(undefined as unknown as Occurrence, cursor), {}],
  ];

  test.each(cases)('GIVEN %s THEN InvalidRunRequestError names %s, no EC2 client is built and the log says nothing was done', async (_name, prop, message, event, env) => {
    const { handler, built } = worker(env);

    const error = await handler(event(), context).then(() => undefined, (e) => e);

    expect(error).toBeInstanceOf(InvalidRunRequestError);
    expect(error.name).toBe('InvalidRunRequestError');
    expect(error.violations.map((v: { prop: string }) => v.prop)).toContain(prop);
    expect(error.message).toContain(message);
    expect(built).toEqual([]);
    expect(ec2Mock).not.toHaveReceivedAnyCommand();
    expect(logLines()).toContainEqual(expect.objectContaining({ level: 'ERROR', message: 'invalid worker input: nothing done', error: error.message }));
  });
});

describe('snapshot-step', () => {
  test('GIVEN a prepared run WHEN a step runs THEN it returns the next cursor, and every log line names the schedule, the occurrence and the pass', async () => {
    const { occurrence, cursor } = await prepared();
    output.length = 0;

    const next = await worker().handler(stepEvent(occurrence, cursor), context) as RunCursor;

    expect(next).toEqual(expect.objectContaining({ phase: 'done', result: 'succeeded', after: I2, steps: 1 }));
    expect(next.counts).toEqual(expect.objectContaining({ selected: 2, created: 2 }));
    expect(ec2Mock).toHaveReceivedCommandTimes(CreateSnapshotsCommand, 2);
    const lines = logLines();
    expect(lines.length).toBeGreaterThanOrEqual(4);
    for (const line of lines) {
      expect(line).toEqual(expect.objectContaining({ scheduleId: 'Stack/Nightly', scheduledTime: '2026-11-24T02:30:00Z', executionName: 'd32c5kddcf5bb8c3', pass: 1, dryRun: false }));
    }
    expect(lines[lines.length - 1]).toEqual(expect.objectContaining({
      message: 'run summary',
      result: 'succeeded',
      counts: expect.objectContaining({ selected: 2, created: 2, failed: 0 }),
      apiCalls: { DescribeInstances: 1, DescribeSnapshots: 1, CreateSnapshots: 2 },
      durationMs: 0,
    }));
  });

  test('GIVEN a cursor of a finished run WHEN a step runs THEN it is handed back unchanged, with no client and no call', async () => {
    const { occurrence } = await prepared();
    const done = { ...newCursor(NOW), phase: 'done' as const, result: 'succeeded' as const };
    const { handler, built } = worker();

    await expect(handler(stepEvent(occurrence, done), context)).resolves.toEqual(done);
    expect(built).toEqual([]);
    expect(ec2Mock).not.toHaveReceivedAnyCommand();
  });

  test('GIVEN a request rate and TIME_SCALE WHEN a step builds its clients THEN the CreateSnapshots bucket runs at that rate, with the run\'s backoffs', async () => {
    const { occurrence, cursor } = await prepared();
    const { handler, built } = worker({ TIME_SCALE: '10', CREATE_SNAPSHOTS_BURST: '20', THROTTLE_BACKOFF_BASE_MS: '3', THROTTLE_BACKOFF_MAX_MS: '30' });

    await handler(stepEvent(occurrence, cursor), context);

    expect(built.map((b) => b.options)).toEqual([{
      createSnapshotsPerSec: 70,
      deleteSnapshotsPerSec: 50,
      createSnapshotsBurst: 20,
      throttleBackoffBaseMs: 3,
      throttleBackoffMaxMs: 30,
      createSnapshotsBucket: undefined,
      deleteSnapshotsBucket: undefined,
    }]);
  });

  test('GIVEN no rate in the request WHEN a step builds its clients THEN EC2\'s default of 5 per second is used', async () => {
    const { occurrence, cursor } = await prepared();
    const { createSnapshotsPerSecond: _rate, ...withoutRate } = REQUEST;
    const { handler, built } = worker();

    await handler(stepEvent(occurrence, cursor, { request: JSON.stringify(withoutRate) }), context);

    expect(built[0].options.createSnapshotsPerSec).toBe(5);
  });

  test('GIVEN a cursor carrying the bucket as the last step left it WHEN the next step runs THEN the bucket starts from that level and the step hands on its own', async () => {
    const { occurrence, cursor } = await prepared();
    const started = Date.now();
    const { handler, built } = worker();

    const next = await handler(stepEvent(occurrence, { ...cursor, bucket: { tokens: -3, atEpochMs: started } }), context) as RunCursor;

    expect(built[0].options.createSnapshotsBucket).toEqual({ tokens: -3, atEpochMs: started });
    // -3 tokens plus what 7 per second refilled since: far from the full bucket of 100 a cold start would have.
    expect(next.bucket!.tokens).toBeGreaterThanOrEqual(-3);
    expect(next.bucket!.tokens).toBeLessThan(-3 + ((Date.now() - started) / 1000) * 7 + 0.01);
    expect(next.bucket!.atEpochMs).toBeGreaterThanOrEqual(started);
  });

  test.each([
    ['a step that finishes', false],
    ['a step that throws', true],
  ])('GIVEN %s THEN both of its clients are destroyed', async (_name, fails) => {
    const { occurrence, cursor } = await prepared();
    if (fails) ec2Mock.on(DescribeInstancesCommand).rejects(new Error('listing failed'));
    const { handler, built } = worker();

    await handler(stepEvent(occurrence, cursor), context).catch(() => undefined);

    expect(built).toHaveLength(1);
    for (const destroy of built[0].destroyed) expect(destroy).toHaveBeenCalledTimes(1);
  });

  test('GIVEN the listing fails WHEN a step runs THEN the error is logged and thrown as is, for the workflow to repeat the step', async () => {
    const { occurrence, cursor } = await prepared();
    ec2Mock.on(DescribeInstancesCommand).rejects(new EC2ServiceException({ name: 'UnauthorizedOperation', $fault: 'client', message: 'not allowed', $metadata: { httpStatusCode: 403 } }));

    const error = await worker().handler(stepEvent(occurrence, cursor), context).then(() => undefined, (e) => e);

    expect(error).toBeInstanceOf(EC2ServiceException);
    expect(error).not.toBeInstanceOf(InvalidRunRequestError);
    expect(logLines()).toContainEqual(expect.objectContaining({
      level: 'ERROR', message: expect.stringContaining('step failed before it finished'), errorName: 'UnauthorizedOperation', error: 'not allowed',
    }));
    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotsCommand);
  });

  test('GIVEN too little time left in the invocation WHEN a step runs THEN it starts nothing, reports its window not attempted, and a retry pass follows', async () => {
    const { occurrence, cursor } = await prepared();

    const { handler } = worker({}, { ...SETTINGS, reserveMs: 60_000 });

    const next = await handler(stepEvent(occurrence, cursor), { getRemainingTimeInMillis: () => 30_000 }) as RunCursor;

    expect(next).toEqual(expect.objectContaining({ phase: 'wait', after: I2, steps: 1, failuresByCode: { StepOutOfTime: 2 } }));
    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotsCommand);
  });

  test('GIVEN the request\'s rate and STEP_BUDGET_MS WHEN a step runs THEN its window is what that rate makes in that time', async () => {
    const { occurrence, cursor } = await prepared();
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: Array.from({ length: 12 }, (_, n) => instance(instanceId(n))) }] });

    // 7 calls/s x 1 s: a window of 7 (above the concurrency of 2).
    const next = await worker({}, { ...SETTINGS, concurrency: 2, stepBudgetMs: 1_000 }).handler(stepEvent(occurrence, cursor), context) as RunCursor;

    expect(ec2Mock).toHaveReceivedCommandTimes(CreateSnapshotsCommand, 7);
    expect(next).toEqual(expect.objectContaining({ phase: 'snapshot', after: instanceId(6), upto: instanceId(11) }));
  });
});

describe('metrics (EMF): exactly one dimension, Schedule', () => {
  const [I3, I4, I5] = [instanceId(3), instanceId(4), instanceId(5)];

  /** One EMF line as CloudWatch reads it: the namespace, the single dimension set, each metric's unit. */
  function emfLine(values: Record<string, number>, units: Record<string, string> = {}) {
    return {
      _aws: {
        Timestamp: expect.any(Number),
        CloudWatchMetrics: [{
          Namespace: 'CdkInstanceSnapshots',
          Dimensions: [['Schedule']],
          Metrics: Object.keys(values).map((Name) => ({ Name, Unit: units[Name] ?? 'Count' })),
        }],
      },
      Schedule: 'Stack/Nightly',
      ...values,
    };
  }

  function rejectWith(name: string, message: string) {
    return new EC2ServiceException({ name, $fault: 'client', message, $metadata: { httpStatusCode: 400 } });
  }

  test('GIVEN a run with every outcome WHEN its final step ends THEN one line carries the run\'s counts, RunDuration in seconds and StepFailures 0', async () => {
    const { occurrence, cursor } = await prepared();
    // I1 created, I2's set exists already, I3 is gone, I4's volume is busy, I5 is still pending.
    const instances = [instance(I1), instance(I2), instance(I3), instance(I4), { ...instance(I5), State: { Name: 'pending' as const } }];
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: instances }] });
    const i2Set = [
      { Key: SCHEDULE_TAG, Value: 'Stack/Nightly' }, { Key: SCHEDULED_TIME_TAG, Value: occurrence.scheduledTime },
      { Key: INSTANCE_ID_TAG, Value: I2 }, { Key: EXECUTION_ID_TAG, Value: occurrence.executionName },
    ];
    ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: 'snap-0000000000000002a', Tags: i2Set }] });
    ec2Mock.on(CreateSnapshotsCommand, { InstanceSpecification: { InstanceId: I3 } }).rejects(rejectWith('InvalidInstanceID.NotFound', 'gone'));
    ec2Mock.on(CreateSnapshotsCommand, { InstanceSpecification: { InstanceId: I4 } }).rejects(rejectWith('IncorrectState', 'volume busy'));
    output.length = 0;

    const { handler } = worker({}, { ...SETTINGS, maxPasses: 1 }, { now: () => NOW + 83_500 });

    const next = await handler(stepEvent(occurrence, cursor), context) as RunCursor;

    expect(next.phase).toBe('done');
    expect(emf()).toEqual([emfLine({
      InstancesSelected: 5,
      SnapshotSetsCreated: 1,
      InstancesAlreadyDone: 1,
      DryRunChecksPassed: 0,
      InstancesSkipped: 1,
      InstancesFailed: 1,
      InstancesNotAttempted: 1,
      SnapshotLocksFailed: 0,
      RunDuration: 83.5,
      StepFailures: 0,
    }, { RunDuration: 'Seconds' })]);
  });

  test('GIVEN a dry run WHEN its final step ends THEN DryRunChecksPassed counts the instances and no set is counted', async () => {
    const dryRun = JSON.stringify({ ...REQUEST, dryRun: true });
    const { occurrence, cursor } = await worker().handler(prepareEvent({ request: dryRun }), context) as PreparedRun;
    ec2Mock.on(CreateSnapshotsCommand).rejects(rejectWith('DryRunOperation', 'would have succeeded'));

    await worker().handler(stepEvent(occurrence, cursor, { request: dryRun }), context);

    expect(emf()).toEqual([expect.objectContaining({ DryRunChecksPassed: 2, SnapshotSetsCreated: 0, InstancesSelected: 2, StepFailures: 0 })]);
  });

  test('GIVEN a step that crashes (the listing fails) WHEN it throws THEN its line still goes out: StepFailures 1, by schedule, no run counts', async () => {
    const { occurrence, cursor } = await prepared();
    ec2Mock.on(DescribeInstancesCommand).rejects(rejectWith('UnauthorizedOperation', 'not allowed'));
    output.length = 0;

    await expect(worker().handler(stepEvent(occurrence, cursor), context)).rejects.toThrow('not allowed');

    expect(emf()).toEqual([emfLine({ StepFailures: 1 })]);
    // The line comes after the step's own error line: it is the last thing the invocation writes.
    expect(output[output.length - 1]).toEqual(emfLine({ StepFailures: 1 }));
  });

  test('GIVEN a step that leaves the run going (a retry pass follows) WHEN it ends THEN its line has StepFailures 0 and no run counts yet', async () => {
    const { occurrence, cursor } = await prepared();
    ec2Mock.on(CreateSnapshotsCommand, { InstanceSpecification: { InstanceId: I2 } }).rejects(rejectWith('IncorrectState', 'volume busy'));

    const next = await worker().handler(stepEvent(occurrence, cursor), context) as RunCursor;

    expect(next.phase).toBe('wait');
    expect(emf()).toEqual([emfLine({ StepFailures: 0 })]);
  });

  test('GIVEN a cursor of a finished run WHEN a step runs THEN it reports StepFailures 0 and does not count the run again', async () => {
    const { occurrence } = await prepared();
    output.length = 0;
    const done = { ...newCursor(NOW), phase: 'done' as const, result: 'succeeded' as const };

    await worker().handler(stepEvent(occurrence, done), context);

    expect(emf()).toEqual([emfLine({ StepFailures: 0 })]);
  });

  test('GIVEN prepare WHEN it runs THEN it publishes nothing', async () => {
    await prepared();

    expect(emf()).toEqual([]);
  });

  test.each<[string, Record<string, string>, () => unknown, Array<Record<string, unknown>>]>([
    ['a forged cursor, the request naming the schedule', {}, () => ({ action: 'snapshot-step', request: REQUEST_JSON, occurrence: {}, cursor: { pending: [] } }),
      [emfLine({ StepFailures: 1 })]],
    ['a request that is not JSON, SCHEDULE_ID naming the schedule', { [SCHEDULE_ID_ENV]: 'Stack/Nightly' }, () => ({ action: 'snapshot-step', request: '{' }),
      [emfLine({ StepFailures: 1 })]],
    ['a request that is not JSON and no SCHEDULE_ID (nothing names the schedule)', {}, () => ({ action: 'snapshot-step', request: '{' }),
      []],
  ])('GIVEN a step with %s WHEN it is refused THEN the lines are as expected', async (_name, env, event, lines) => {
    await expect(worker(env).handler(event(), context)).rejects.toThrow(InvalidRunRequestError);

    expect(emf()).toEqual(lines);
  });

  test('GIVEN SCHEDULE_ID WHEN a step runs THEN the line is by the deployed schedule, whatever the request says', async () => {
    const { occurrence, cursor } = await prepared();
    output.length = 0;

    await worker({ [SCHEDULE_ID_ENV]: 'Stack/Deployed' }).handler(stepEvent(occurrence, cursor), context);

    expect(emf()).toEqual([expect.objectContaining({ Schedule: 'Stack/Deployed', StepFailures: 0 })]);
  });

  test('GIVEN Metrics with a service name and default dimensions WHEN the worker publishes THEN they are gone: Schedule is the only dimension', async () => {
    const { occurrence, cursor } = await prepared();
    const metrics = new Metrics({ namespace: 'CdkInstanceSnapshots', serviceName: 'svc', defaultDimensions: { environment: 'prod' } });

    await worker({}, SETTINGS, { metrics }).handler(stepEvent(occurrence, cursor), context);

    const [line] = emf();
    expect(line._aws.CloudWatchMetrics[0].Dimensions).toEqual([['Schedule']]);
    expect(line).not.toHaveProperty('service');
    expect(line).not.toHaveProperty('environment');
  });

  test('GIVEN publishing the metrics fails WHEN a step ends THEN the step\'s result stands and the failure is logged', async () => {
    const { occurrence, cursor } = await prepared();
    const metrics: MetricsSink = {
      clearDefaultDimensions: () => undefined,
      addDimension: jest.fn(),
      addMetric: jest.fn(),
      publishStoredMetrics: () => { throw new RangeError('too many'); },
    } as unknown as MetricsSink;

    const next = await worker({}, SETTINGS, { metrics }).handler(stepEvent(occurrence, cursor), context) as RunCursor;

    expect(next.phase).toBe('done');
    expect(logLines()).toContainEqual(expect.objectContaining({ level: 'ERROR', message: 'metrics not published', errorName: 'RangeError', error: 'too many' }));
  });

  test('runMetrics names each metric as METRICS does, with its unit', () => {
    const cursor = { ...newCursor(0), summary: { durationMs: 1_250 } } as RunCursor;

    expect(runMetrics(cursor)).toEqual([
      [METRICS.instancesSelected, 'Count', 0],
      [METRICS.snapshotSetsCreated, 'Count', 0],
      [METRICS.instancesAlreadyDone, 'Count', 0],
      [METRICS.dryRunChecksPassed, 'Count', 0],
      [METRICS.instancesSkipped, 'Count', 0],
      [METRICS.instancesFailed, 'Count', 0],
      [METRICS.instancesNotAttempted, 'Count', 0],
      [METRICS.snapshotLocksFailed, 'Count', 0],
      [METRICS.runDuration, 'Seconds', 1.25],
    ]);
  });

  test('GIVEN a run with a prune phase THEN runMetrics adds retention\'s counts, each under its METRICS name', () => {
    const prune = { ...newPruneProgress(), setsDeleted: 4, snapshotsDeleted: 9, setsToDelete: 1, setsInUse: 2, setsLocked: 3, setsFailed: 5 };
    const cursor = { ...newCursor(0), prune, summary: { durationMs: 0 } } as RunCursor;

    expect(runMetrics(cursor).slice(-6)).toEqual([
      [METRICS.snapshotSetsDeleted, 'Count', 4],
      [METRICS.snapshotsDeleted, 'Count', 9],
      [METRICS.snapshotSetsToDelete, 'Count', 1],
      [METRICS.snapshotSetsInUse, 'Count', 2],
      [METRICS.snapshotSetsLocked, 'Count', 3],
      [METRICS.pruneFailures, 'Count', 5],
    ]);
  });
});

describe('settingsFromEnv', () => {
  test('GIVEN nothing set THEN the defaults follow EC2 and Lambda (15 s per volume, so 16 s; 10 of 15 minutes per step)', () => {
    expect(settingsFromEnv({})).toEqual(DEFAULT_SETTINGS);
    expect(DEFAULT_SETTINGS).toEqual(expect.objectContaining({
      perVolumeRetryDelayMs: 16_000, concurrency: 10, reserveMs: 30_000, stepBudgetMs: 600_000,
    }));
  });

  test.each<[string, keyof RunSettings]>([
    ['SNAPSHOT_CONCURRENCY', 'concurrency'],
    ['STEP_BUDGET_MS', 'stepBudgetMs'],
    ['TIME_RESERVE_MS', 'reserveMs'],
    ['PER_VOLUME_RETRY_DELAY_MS', 'perVolumeRetryDelayMs'],
    ['THROTTLE_BACKOFF_BASE_MS', 'throttleBackoffBaseMs'],
    ['THROTTLE_BACKOFF_MAX_MS', 'throttleBackoffMaxMs'],
    ['SETTLE_WINDOW_MS', 'settleWindowMs'],
    ['LOOK_INTERVAL_MS', 'lookIntervalMs'],
    ['MAX_ATTEMPTS_PER_INSTANCE', 'maxAttemptsPerInstance'],
    ['MAX_PASSES', 'maxPasses'],
  ])('GIVEN %s THEN it sets %s', (name, setting) => {
    expect(settingsFromEnv({ [name]: '7' })).toEqual({ ...DEFAULT_SETTINGS, [setting]: 7 });
  });

  test.each([
    ['SNAPSHOT_CONCURRENCY', '0', 1],
    ['LOOK_INTERVAL_MS', '0', 1],
    ['MAX_PASSES', 'many', 1],
    ['SETTLE_WINDOW_MS', '-1', 0],
  ])('GIVEN %s=%j THEN the error names the variable and the value', (name, value, min) => {
    expect(() => settingsFromEnv({ [name]: value })).toThrow(`environment variable ${name} must be a number >= ${min}, got: ${JSON.stringify(value)}`);
  });
});

describe('clientOptionsFromEnv', () => {
  test('GIVEN nothing set THEN the schedule\'s rate, EC2\'s bucket of 100 and the default backoffs', () => {
    expect(clientOptionsFromEnv({}, 5)).toEqual({
      createSnapshotsPerSec: 5, deleteSnapshotsPerSec: 5, createSnapshotsBurst: 100, throttleBackoffBaseMs: 1_000, throttleBackoffMaxMs: 20_000,
    });
  });
  test('GIVEN TIME_SCALE THEN it multiplies the rate', () => {
    expect(clientOptionsFromEnv({ TIME_SCALE: '20' }, 5).createSnapshotsPerSec).toBe(100);
  });
});

describe('ThrottlingOnlyRetryStrategy', () => {
  const token = (count: number): RetryToken => ({ getRetryCount: () => count, getRetryDelay: () => 10 });
  const inner = {
    acquireInitialRetryToken: jest.fn(async () => token(0)),
    refreshRetryTokenForRetry: jest.fn(async () => token(1)),
    recordSuccess: jest.fn(),
  };
  const strategy = new ThrottlingOnlyRetryStrategy(inner);

  test('GIVEN a throttling error THEN the SDK strategy retries it', async () => {
    await expect(strategy.refreshRetryTokenForRetry(token(0), { errorType: 'THROTTLING' })).resolves.toBeDefined();
    expect(inner.refreshRetryTokenForRetry).toHaveBeenCalled();
  });
  test.each(['TRANSIENT', 'SERVER_ERROR', 'CLIENT_ERROR'] as const)('GIVEN a %s error THEN it is not retried (the set may exist)', async (errorType) => {
    inner.refreshRetryTokenForRetry.mockClear();
    await expect(strategy.refreshRetryTokenForRetry(token(0), { errorType })).rejects.toThrow(`not retrying a ${errorType} error`);
    expect(inner.refreshRetryTokenForRetry).not.toHaveBeenCalled();
  });
});

describe('calls in flight', () => {
  test.each([
    [5, 10, 10],
    [50, 10, 10],
    [100, 10, 20],
    [250, 10, 50],
    [5, 1, 1],
  ])('GIVEN a paced rate of %i/s and %i configured WHEN the worker sets up a step THEN %i calls are kept in flight', (rate, configured, expected) => {
    expect(withInFlightFor({ ...DEFAULT_SETTINGS, concurrency: configured }, rate).concurrency).toBe(expected);
  });
});

describe('a vault\'s worker', () => {
  const VAULT = { version: 1, vaultId: 'Vault/Main', sourceAccounts: ['123456789012'] };
  const shared = {
    'source': 'cdk-instance-snapshots',
    'detail-type': 'Snapshot Set Shared',
    'account': '123456789012',
    'region': 'us-east-1',
    'detail': {
      version: 1,
      scheduleId: 'Source/Nightly',
      scheduledTime: '2026-11-24T02:30:00Z',
      instanceId: instanceId(1),
      snapshots: [{ snapshotId: 'snap-0123456789abcdef0', volumeId: 'vol-1' }],
    },
  };

  /** The metrics a call published: name -> value, with the dimension. */
  function recorder() {
    const lines: Array<{ dimensions: Record<string, string>; values: Record<string, number> }> = [];
    let pending = { dimensions: {} as Record<string, string>, values: {} as Record<string, number> };
    const metrics = {
      clearDefaultDimensions: () => undefined,
      addDimension: (name: string, value: string) => { pending.dimensions[name] = value; },
      addMetric: (name: string, _unit: unknown, value: number) => { pending.values[name] = value; },
      publishStoredMetrics: () => { lines.push(pending); pending = { dimensions: {}, values: {} }; },
    } as unknown as MetricsSink;
    return { metrics, lines };
  }

  test('GIVEN a worker without VAULT_REQUEST WHEN a shared-set event or the vault\'s prune arrives THEN it refuses, naming the variable, and calls nothing', async () => {
    await expect(worker().handler(shared, context)).rejects.toThrow('VAULT_REQUEST');
    await expect(worker().handler({ action: 'vault-prune' }, context)).rejects.toThrow('VAULT_REQUEST');
    expect(ec2Mock).not.toHaveReceivedAnyCommand();
  });

  test('GIVEN a shared-set event EC2 cannot confirm WHEN it fails THEN the worker throws for Lambda to retry and counts one VaultCopyFailures, by the vault\'s id', async () => {
    const { metrics, lines } = recorder();
    ec2Mock.on(DescribeSnapshotsCommand).rejects(new EC2ServiceException({ name: 'InvalidSnapshot.NotFound', $fault: 'client', message: 'not shared', $metadata: {} }));

    await expect(worker({ VAULT_REQUEST: JSON.stringify(VAULT) }, SETTINGS, { metrics }).handler(shared, context)).rejects.toThrow('not shared');

    expect(lines).toEqual([{ dimensions: { Schedule: 'Vault/Main' }, values: { VaultCopyFailures: 1 } }]);
  });

  test('GIVEN the vault\'s prune WHEN it has no retention THEN it deletes nothing and says so in VaultSnapshotsDeleted', async () => {
    const { metrics, lines } = recorder();

    await worker({ VAULT_REQUEST: JSON.stringify(VAULT) }, SETTINGS, { metrics }).handler({ action: 'vault-prune' }, context);

    expect(ec2Mock).not.toHaveReceivedAnyCommand();
    expect(lines).toEqual([{ dimensions: { Schedule: 'Vault/Main' }, values: { VaultSnapshotsDeleted: 0 } }]);
  });

  test('GIVEN the vault\'s prune fails WHEN the listing is refused THEN it throws and counts no copy failure', async () => {
    const { metrics, lines } = recorder();
    const vault = { ...VAULT, retention: { count: 1, timeZone: 'Etc/UTC', goneInstanceSeconds: 86_400 } };
    ec2Mock.on(DescribeSnapshotsCommand).rejects(new EC2ServiceException({ name: 'UnauthorizedOperation', $fault: 'client', message: 'no', $metadata: {} }));

    await expect(worker({ VAULT_REQUEST: JSON.stringify(vault) }, SETTINGS, { metrics }).handler({ action: 'vault-prune' }, context)).rejects.toThrow('no');

    expect(lines).toEqual([]);
  });
});
