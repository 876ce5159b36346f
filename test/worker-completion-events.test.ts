/**
 * The worker as the target of its schedule's EventBridge rule for EC2's `EBS Multi-Volume
 * Snapshots Completion Status` events of failed sets: it tells its own schedule's sets from the
 * others' by their tags (DescribeSnapshots), then logs, counts (EMF) and notifies (SNS) them.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { DescribeSnapshotsCommand, EC2Client, EC2ServiceException, Snapshot } from '@aws-sdk/client-ec2';
import { PublishCommand, SNSClient, SNSServiceException } from '@aws-sdk/client-sns';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { completionEvent, snapshotId } from './support/completion-event';
import { createEventClients } from '../lambda/clients';
import { DEFAULT_SETTINGS } from '../lambda/snapshot-step';
import { CompletionEventReport, createWorkerMetrics, makeWorker } from '../lambda/worker';
import {
  EXECUTION_ID_TAG,
  INSTANCE_ID_TAG,
  InvalidRunRequestError,
  NOTIFICATION_TOPIC_ENV,
  SCHEDULE_ID_ENV,
  SCHEDULE_TAG,
  SCHEDULED_TIME_TAG,
} from '../src/private/request-contract';

// Powertools writes through the global console in dev mode, where the test reads each line.
process.env.POWERTOOLS_DEV = 'true';
process.env.POWERTOOLS_METRICS_DISABLED = 'false';
process.env.POWERTOOLS_SERVICE_NAME = 'cdk-instance-snapshots';

const ec2Mock = mockClient(EC2Client);
const snsMock = mockClient(SNSClient);

const SCHEDULE = 'Stack/Nightly';
const TOPIC = 'arn:aws:sns:eu-central-1:123456789012:snapshot-alerts';
const ENV = { [SCHEDULE_ID_ENV]: SCHEDULE, [NOTIFICATION_TOPIC_ENV]: TOPIC };
const [S1, S2, S3] = [1, 2, 3].map(snapshotId);
const I1 = 'i-0000000000000000a';
const context = { getRemainingTimeInMillis: () => 900_000 };

function tagged(id: string, scheduleId: string, instanceId = I1): Snapshot {
  return {
    SnapshotId: id,
    State: 'error',
    Tags: [
      { Key: SCHEDULE_TAG, Value: scheduleId },
      { Key: INSTANCE_ID_TAG, Value: instanceId },
      { Key: SCHEDULED_TIME_TAG, Value: '2026-11-24T02:30:00Z' },
      { Key: EXECUTION_ID_TAG, Value: 'd32c5kddcf5bb8c3' },
    ],
  };
}

function notFound(id: string) {
  return new EC2ServiceException({ name: 'InvalidSnapshot.NotFound', $fault: 'client', message: `The snapshot '${id}' does not exist.`, $metadata: { httpStatusCode: 400 } });
}

let built: number;
function worker(env: Record<string, string> = ENV): { handler: (event: unknown, ctx: typeof context) => Promise<unknown> } {
  const handler = makeWorker({
    settings: DEFAULT_SETTINGS,
    env,
    logger: new Logger(),
    metrics: createWorkerMetrics(),
    createClients: () => {
      throw new Error('a completion event builds no step clients');
    },
    createEventClients: () => {
      built++;
      return createEventClients();
    },
  });
  return { handler };
}

let output: any[];
beforeEach(() => {
  ec2Mock.reset();
  snsMock.reset();
  built = 0;
  output = [];
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    jest.spyOn(console, method).mockImplementation((line?: unknown, ..._rest: unknown[]) => {
      output.push(typeof line === 'string' && line.startsWith('{') ? JSON.parse(line) : line);
    });
  }
  snsMock.on(PublishCommand).resolves({ MessageId: 'm-1' });
});
afterEach(() => jest.restoreAllMocks());

const logLines = () => output.filter((o) => typeof o === 'object' && o?.message);
const emf = () => output.filter((o) => typeof o === 'object' && o?._aws);
const published = () => snsMock.commandCalls(PublishCommand).map((c) => c.args[0].input);

describe('a failed set of this schedule', () => {
  beforeEach(() => {
    ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [tagged(S1, SCHEDULE), tagged(S2, SCHEDULE)] });
  });

  test('GIVEN the event WHEN the worker handles it THEN it describes exactly the event\'s snapshots, its own', async () => {
    await worker().handler(completionEvent([1, 2]), context);

    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeSnapshotsCommand, 1);
    expect(ec2Mock).toHaveReceivedCommandWith(DescribeSnapshotsCommand, { OwnerIds: ['self'], SnapshotIds: [S1, S2] });
  });

  test('GIVEN the event WHEN the worker handles it THEN one error line names the set: schedule, occurrence, execution, instance, snapshots, cause', async () => {
    await worker().handler(completionEvent([1, 2]), context);

    const errors = logLines().filter((l) => l.level === 'ERROR');
    expect(errors).toEqual([expect.objectContaining({
      message: 'snapshot set failed after CreateSnapshots returned',
      scheduleId: SCHEDULE,
      eventId: '7bf73129-1428-4cd3-a780-95db273d1602',
      instanceId: I1,
      scheduledTime: '2026-11-24T02:30:00Z',
      executionName: 'd32c5kddcf5bb8c3',
      snapshotIds: [S1, S2],
      cause: 'Snapshot creation failed for one or more volumes',
    })]);
    expect(logLines().some((l) => l.message === 'invalid worker input: nothing done')).toBe(false);
  });

  test('GIVEN the event WHEN the worker handles it THEN one EMF line: SnapshotSetsFailed 1, Schedule its only dimension', async () => {
    await worker().handler(completionEvent([1, 2]), context);

    expect(emf()).toEqual([{
      _aws: {
        Timestamp: expect.any(Number),
        CloudWatchMetrics: [{ Namespace: 'CdkInstanceSnapshots', Dimensions: [['Schedule']], Metrics: [{ Name: 'SnapshotSetsFailed', Unit: 'Count' }] }],
      },
      Schedule: SCHEDULE,
      SnapshotSetsFailed: 1,
    }]);
  });

  test('GIVEN a topic WHEN the worker handles the event THEN one SNS message to it names the schedule, the occurrence, the instance and the snapshots', async () => {
    const report = await worker().handler(completionEvent([1, 2]), context);

    expect(report).toEqual<CompletionEventReport>({ failedSets: 1, foreignSnapshots: 0, missingSnapshots: 0, notified: true });
    expect(published()).toEqual([{ TopicArn: TOPIC, Subject: `Snapshot set failed: ${I1} of ${SCHEDULE}`, Message: expect.any(String) }]);
    expect(JSON.parse(published()[0].Message!)).toEqual(expect.objectContaining({
      scheduleId: SCHEDULE,
      region: 'eu-central-1',
      account: '123456789012',
      sets: [expect.objectContaining({ instanceId: I1, scheduledTime: '2026-11-24T02:30:00Z', executionName: 'd32c5kddcf5bb8c3', snapshotIds: [S1, S2] })],
    }));
    expect(logLines()).toContainEqual(expect.objectContaining({ level: 'INFO', message: 'failed snapshot set notified', topicArn: TOPIC }));
  });

  test('GIVEN no topic WHEN the worker handles the event THEN no SNS call, the log says so, the error line and the metric stay', async () => {
    const report = await worker({ [SCHEDULE_ID_ENV]: SCHEDULE }).handler(completionEvent([1, 2]), context);

    expect(report).toEqual(expect.objectContaining({ failedSets: 1, notified: false }));
    expect(snsMock).not.toHaveReceivedAnyCommand();
    expect(logLines()).toContainEqual(expect.objectContaining({ level: 'INFO', message: 'no notification topic (NOTIFICATION_TOPIC_ARN is not set): reported in the log and the metric only' }));
    expect(logLines().filter((l) => l.level === 'ERROR')).toHaveLength(1);
    expect(emf()).toEqual([expect.objectContaining({ SnapshotSetsFailed: 1 })]);
  });

  test('GIVEN SNS refuses the message WHEN the worker handles the event THEN it throws (Lambda retries the event), after logging and counting the set', async () => {
    snsMock.on(PublishCommand).rejects(new SNSServiceException({ name: 'AuthorizationErrorException', $fault: 'client', message: 'not allowed', $metadata: {} }));

    await expect(worker().handler(completionEvent([1, 2]), context)).rejects.toThrow('not allowed');

    expect(emf()).toEqual([expect.objectContaining({ SnapshotSetsFailed: 1 })]);
    expect(logLines()).toContainEqual(expect.objectContaining({
      level: 'ERROR', message: 'notification of the failed set not sent', topicArn: TOPIC, errorName: 'AuthorizationErrorException',
    }));
  });

  test('GIVEN two events WHEN one worker handles both THEN its event clients are built once, and each event gets its own message', async () => {
    const { handler } = worker();

    await handler(completionEvent([1, 2]), context);
    await handler(completionEvent([1, 2]), context);

    expect(built).toBe(1);
    expect(published()).toHaveLength(2);
  });
});

describe('a failed set of another schedule', () => {
  test.each<[string, Snapshot[]]>([
    ['another schedule\'s tag', [tagged(S1, 'Stack/Weekly'), tagged(S2, 'Stack/Weekly')]],
    ['a schedule id that only starts like this one', [tagged(S1, `${SCHEDULE}2`), tagged(S2, `${SCHEDULE}2`)]],
    ['no tag of this library (a set someone else made)', [{ SnapshotId: S1, Tags: [{ Key: 'Name', Value: 'manual' }] }, { SnapshotId: S2 }]],
  ])('GIVEN snapshots with %s WHEN the worker handles the event THEN one info line, no metric, no message', async (_name, snapshots) => {
    ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: snapshots });

    const report = await worker().handler(completionEvent([1, 2]), context);

    expect(report).toEqual({ failedSets: 0, foreignSnapshots: 2, missingSnapshots: 0, notified: false });
    expect(logLines()).toEqual([expect.objectContaining({
      level: 'INFO', message: 'completion event names no snapshot of this schedule: ignored', foreignSnapshotIds: [S1, S2], snapshotsNotFound: [],
    })]);
    expect(emf()).toEqual([]);
    expect(snsMock).not.toHaveReceivedAnyCommand();
  });

  test('GIVEN an event that names this schedule\'s set and another\'s WHEN the worker handles it THEN it reports only its own snapshots', async () => {
    ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [tagged(S1, SCHEDULE), tagged(S2, 'Stack/Weekly', 'i-0000000000000000b')] });

    await worker().handler(completionEvent([1, 2]), context);

    const body = JSON.parse(published()[0].Message!);
    expect(body.sets).toEqual([expect.objectContaining({ instanceId: I1, snapshotIds: [S1] })]);
    expect(JSON.stringify(body)).not.toContain(S2);
  });
});

describe('snapshots that are gone', () => {
  test('GIVEN one snapshot of the set deleted since WHEN EC2 answers InvalidSnapshot.NotFound THEN the rest is described by filter and the set is reported', async () => {
    ec2Mock.on(DescribeSnapshotsCommand, { SnapshotIds: [S1, S2, S3] }).rejects(notFound(S3));
    ec2Mock.on(DescribeSnapshotsCommand, { Filters: [{ Name: 'snapshot-id', Values: [S1, S2, S3] }] }).resolves({ Snapshots: [tagged(S1, SCHEDULE), tagged(S2, SCHEDULE)] });

    const report = await worker().handler(completionEvent([1, 2, 3]), context);

    expect(report).toEqual({ failedSets: 1, foreignSnapshots: 0, missingSnapshots: 1, notified: true });
    expect(ec2Mock).toHaveReceivedNthCommandWith(2, DescribeSnapshotsCommand, { OwnerIds: ['self'], Filters: [{ Name: 'snapshot-id', Values: [S1, S2, S3] }], MaxResults: 1000 });
    const body = JSON.parse(published()[0].Message!);
    expect(body.sets[0].snapshotIds).toEqual([S1, S2]);
    expect(body.snapshotsNotFound).toEqual([S3]);
    expect(logLines()).toContainEqual(expect.objectContaining({ level: 'ERROR', snapshotIds: [S1, S2], snapshotsNotFound: [S3] }));
  });

  test('GIVEN the filtered answer in pages WHEN the worker describes THEN it reads every page', async () => {
    ec2Mock.on(DescribeSnapshotsCommand, { SnapshotIds: [S1, S2, S3] }).rejects(notFound(S3));
    ec2Mock.on(DescribeSnapshotsCommand, { NextToken: undefined, Filters: [{ Name: 'snapshot-id', Values: [S1, S2, S3] }] })
      .resolves({ Snapshots: [tagged(S1, SCHEDULE)], NextToken: 'page-2' });
    ec2Mock.on(DescribeSnapshotsCommand, { NextToken: 'page-2' }).resolves({ Snapshots: [tagged(S2, SCHEDULE)] });

    await worker().handler(completionEvent([1, 2, 3]), context);

    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeSnapshotsCommand, 3);
    expect(JSON.parse(published()[0].Message!).sets[0].snapshotIds).toEqual([S1, S2]);
  });

  test('GIVEN every snapshot of the event gone WHEN the worker handles it THEN one info line lists them, nothing else', async () => {
    ec2Mock.on(DescribeSnapshotsCommand, { SnapshotIds: [S1, S2] }).rejects(notFound(S1));
    ec2Mock.on(DescribeSnapshotsCommand, { Filters: [{ Name: 'snapshot-id', Values: [S1, S2] }] }).resolves({ Snapshots: [] });

    const report = await worker().handler(completionEvent([1, 2]), context);

    expect(report).toEqual({ failedSets: 0, foreignSnapshots: 0, missingSnapshots: 2, notified: false });
    expect(logLines()).toEqual([expect.objectContaining({ level: 'INFO', snapshotsNotFound: [S1, S2], foreignSnapshotIds: [] })]);
    expect(emf()).toEqual([]);
    expect(snsMock).not.toHaveReceivedAnyCommand();
  });

  test('GIVEN another error from DescribeSnapshots WHEN the worker handles the event THEN it throws it, unswallowed, with no fallback', async () => {
    ec2Mock.on(DescribeSnapshotsCommand).rejects(new EC2ServiceException({ name: 'UnauthorizedOperation', $fault: 'client', message: 'denied', $metadata: {} }));

    await expect(worker().handler(completionEvent([1]), context)).rejects.toThrow('denied');

    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeSnapshotsCommand, 1);
    expect(snsMock).not.toHaveReceivedAnyCommand();
  });
});

describe('events the worker does not act on', () => {
  test('GIVEN a set that succeeded (a rule without the result filter) WHEN the worker handles it THEN one info line and no call', async () => {
    const report = await worker().handler(completionEvent([1], { result: 'succeeded' }), context);

    expect(report).toEqual({ failedSets: 0, foreignSnapshots: 0, missingSnapshots: 0, notified: false });
    expect(logLines()).toEqual([expect.objectContaining({ level: 'INFO', message: 'completion event of a set that did not fail: ignored', result: 'succeeded' })]);
    expect(ec2Mock).not.toHaveReceivedAnyCommand();
  });

  test.each<[string, Record<string, string>, unknown, string]>([
    ['no SCHEDULE_ID in the environment', { [NOTIFICATION_TOPIC_ENV]: TOPIC }, completionEvent([1]),
      'environment variable SCHEDULE_ID is not set: this schedule\'s snapshots cannot be told from others\''],
    ['an event without snapshots', ENV, completionEvent([]), 'a completion event names its snapshots, got: []'],
  ])('GIVEN %s WHEN the worker handles the event THEN it throws, logs that nothing was done and calls nothing', async (_name, env, event, message) => {
    await expect(worker(env).handler(event, context)).rejects.toThrow(message);

    expect(logLines()).toEqual([expect.objectContaining({ level: 'ERROR', message: 'invalid completion event: nothing done', error: expect.stringContaining(message) })]);
    expect(ec2Mock).not.toHaveReceivedAnyCommand();
    expect(snsMock).not.toHaveReceivedAnyCommand();
  });

  test('GIVEN an event that is not JSON-shaped like EC2\'s WHEN it names snapshots badly THEN the error is InvalidRunRequestError with the field', async () => {
    const error = await worker().handler(completionEvent([], { snapshots: [{ snapshot_id: 'nope' }] }), context).then(() => undefined, (e) => e);

    expect(error).toBeInstanceOf(InvalidRunRequestError);
    expect(error.violations).toEqual([expect.objectContaining({ prop: 'detail.snapshots' })]);
  });
});

describe('the shipped handler\'s log level (POWERTOOLS_LOG_LEVEL, set by the construct)', () => {
  // The shipped handler reads its environment from process.env (the Logger when the module loads).
  beforeEach(() => { process.env[SCHEDULE_ID_ENV] = SCHEDULE; });
  afterEach(() => {
    delete process.env[SCHEDULE_ID_ENV];
    delete process.env.POWERTOOLS_LOG_LEVEL;
  });

  let isolatedEc2: AwsClientStub<EC2Client> | undefined;
  afterEach(() => isolatedEc2?.restore());

  /**
   * The module's own `handler`, loaded fresh with the given level (a fresh copy of the SDK too:
   * its EC2 client is mocked here to answer DescribeSnapshots with `snapshots`).
   */
  function shippedHandler(level: string | undefined, snapshots: Snapshot[]): (event: unknown, ctx: typeof context) => Promise<unknown> {
    if (level === undefined) delete process.env.POWERTOOLS_LOG_LEVEL; else process.env.POWERTOOLS_LOG_LEVEL = level;
    let handler: (event: unknown, ctx: typeof context) => Promise<unknown> = async () => undefined;
    jest.isolateModules(() => {
      /* eslint-disable @typescript-eslint/no-require-imports */
      const stub: AwsClientStub<EC2Client> = mockClient((require('@aws-sdk/client-ec2') as typeof import('@aws-sdk/client-ec2')).EC2Client);
      stub.onAnyCommand().resolves({ Snapshots: snapshots });
      isolatedEc2 = stub;
      handler = (require('../lambda/worker') as typeof import('../lambda/worker')).handler;
      /* eslint-enable @typescript-eslint/no-require-imports */
    });
    return handler;
  }

  test.each<[string, string | undefined, string[]]>([
    ['unset (INFO)', undefined, ['INFO']],
    ['DEBUG', 'DEBUG', ['INFO']],
    ['WARN', 'WARN', []],
    ['ERROR', 'ERROR', []],
    // Powertools 2.x reads the variable in upper case only: anything else falls back to INFO.
    // The construct must render the level in upper case.
    ['warn in lower case (ignored by Powertools)', 'warn', ['INFO']],
  ])('GIVEN POWERTOOLS_LOG_LEVEL %s WHEN the shipped handler ignores another schedule\'s set THEN its info line is %j', async (_name, level, levels) => {
    const handler = shippedHandler(level, [tagged(S1, 'Stack/Weekly')]);
    output.length = 0;

    await handler(completionEvent([1]), context);

    expect(logLines().map((l) => l.level)).toEqual(levels);
  });

  test('GIVEN POWERTOOLS_LOG_LEVEL ERROR WHEN the shipped handler reports a failed set THEN the error line still goes out', async () => {
    const handler = shippedHandler('ERROR', [tagged(S1, SCHEDULE)]);

    await handler(completionEvent([1]), context);

    expect(logLines()).toEqual([expect.objectContaining({ level: 'ERROR', message: 'snapshot set failed after CreateSnapshots returned' })]);
  });
});
