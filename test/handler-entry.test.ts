import { CreateSnapshotsCommand, DescribeInstancesCommand, DescribeSnapshotsCommand, EC2Client, EC2ServiceException } from '@aws-sdk/client-ec2';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { RetryToken } from '@smithy/types';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';

// Powertools writes through the global console in dev mode, where the test can read each line.
process.env.POWERTOOLS_DEV = 'true';
process.env.POWERTOOLS_METRICS_DISABLED = 'false';
process.env.POWERTOOLS_METRICS_NAMESPACE = 'CdkInstanceSnapshots';
process.env.POWERTOOLS_SERVICE_NAME = 'cdk-instance-snapshots';
process.env.AWS_REGION = 'eu-central-1';
process.env.VERIFY_DELAY_MS = '1';
// eslint-disable-next-line import/order
import { handler, settingsFromEnv, ThrottlingOnlyRetryStrategy } from '../lambda/snapshot-handler';

const ec2Mock = mockClient(EC2Client);
const lambdaMock = mockClient(LambdaClient);

const EVENT = {
  version: 1,
  scheduleId: 'Stack/Nightly',
  executionId: 'exec-1',
  scheduledTime: '2026-11-24T02:30:00Z',
  instanceTags: { Backup: ['nightly'] },
  excludeBootVolume: false,
  excludeDataVolumeIds: [],
  snapshotTags: {},
  dryRun: false,
};

function context(remainingMs = 900_000): Context {
  return {
    invokedFunctionArn: 'arn:aws:lambda:eu-central-1:123456789012:function:handler',
    getRemainingTimeInMillis: () => remainingMs,
  } as unknown as Context;
}

function instance(id: string) {
  return { InstanceId: id, RootDeviceName: '/dev/xvda', Tags: [{ Key: 'Backup', Value: 'nightly' }], BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeId: 'vol-1' } }] };
}

let output: any[];
beforeEach(() => {
  ec2Mock.reset();
  lambdaMock.reset();
  output = [];
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    jest.spyOn(console, method).mockImplementation((line?: unknown, ..._rest: unknown[]) => {
      output.push(typeof line === 'string' && line.startsWith('{') ? JSON.parse(line) : line);
    });
  }
  ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('i-01'), instance('i-02')] }] });
  ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
  ec2Mock.on(CreateSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: 'snap-1' }] });
});
afterEach(() => jest.restoreAllMocks());

const logLines = () => output.filter((o) => typeof o === 'object' && o.message);

test('GIVEN a run where every instance succeeds THEN each log line carries the execution id and a summary ends the run', async () => {
  const result = await handler(EVENT, context());

  expect(result.status).toBe('completed');
  const lines = logLines();
  expect(lines.length).toBeGreaterThanOrEqual(3);
  for (const line of lines) {
    expect(line).toEqual(expect.objectContaining({ executionId: 'exec-1', scheduleId: 'Stack/Nightly' }));
  }
  expect(lines[lines.length - 1]).toEqual(expect.objectContaining({
    message: 'run summary',
    selected: 2,
    created: 2,
    alreadyDone: 0,
    skipped: 0,
    failed: 0,
    notAttempted: 0,
    failuresByCode: {},
    apiCalls: { DescribeInstances: 1, DescribeSnapshots: 1, CreateSnapshots: 2 },
    durationMs: expect.any(Number),
  }));
});

test('GIVEN a finished run THEN metrics are published per schedule (EMF)', async () => {
  await handler(EVENT, context());

  const emf = output.find((o) => typeof o === 'object' && o._aws);
  expect(emf).toEqual(expect.objectContaining({ Schedule: 'Stack/Nightly', SnapshotSetsCreated: 2, InstancesFailed: 0, InstancesSelected: 2 }));
  expect(emf._aws.CloudWatchMetrics[0].Namespace).toBe('CdkInstanceSnapshots');
});

test('GIVEN an instance that fails THEN the invocation ends in an error that lists it, after the summary', async () => {
  ec2Mock.on(CreateSnapshotsCommand, { InstanceSpecification: { InstanceId: 'i-02' } })
    .rejects(new EC2ServiceException({ name: 'IncorrectState', $fault: 'client', message: 'volume busy', $metadata: { httpStatusCode: 400 } }));

  await expect(handler(EVENT, context())).rejects.toThrow('1 of 2 selected instances have no snapshot set from this run: i-02 failed IncorrectState');
  expect(logLines()).toContainEqual(expect.objectContaining({ message: 'run summary', failed: 1, failuresByCode: { IncorrectState: 1 } }));
  expect(logLines()).toContainEqual(expect.objectContaining({ level: 'ERROR', message: 'instance failed', instanceId: 'i-02', code: 'IncorrectState', executionId: 'exec-1' }));
});

test('GIVEN an invalid event THEN nothing is called and the error names the fields', async () => {
  await expect(handler({ ...EVENT, executionId: '', instanceTags: {} }, context())).rejects.toThrow(
    'invalid snapshot run request: executionId must be a non-empty string, got: ""; instanceTags must name at least one tag key, got: {}',
  );
  expect(ec2Mock).not.toHaveReceivedAnyCommand();
  expect(logLines()).toContainEqual(expect.objectContaining({ level: 'ERROR', message: 'invalid run request: nothing done' }));
});

test('GIVEN a continuation that is not ours THEN nothing is called and the error names it', async () => {
  await expect(handler({ ...EVENT, continuation: { pending: [{ id: 'vol-1' }], totals: {} } }, context())).rejects.toThrow(
    'invalid snapshot run request: continuation must hold the pending instances ({ id: "i-..." }) and the run\'s totals, got: {"pending":[{"id":"vol-1"}],"totals":{}}',
  );
  expect(ec2Mock).not.toHaveReceivedAnyCommand();
});

test('GIVEN too little time left THEN the rest of the run goes to an asynchronous invocation of the same function, and this one succeeds', async () => {
  process.env.TIME_RESERVE_MS = '60000';
  try {
    const result = await handler(EVENT, context(30_000));

    expect(result.status).toBe('continued');
    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotsCommand);
    expect(lambdaMock).toHaveReceivedCommandWith(InvokeCommand, { FunctionName: 'arn:aws:lambda:eu-central-1:123456789012:function:handler', InvocationType: 'Event' });
    const payload = JSON.parse(Buffer.from(lambdaMock.commandCalls(InvokeCommand)[0].args[0].input.Payload as Uint8Array).toString());
    expect(payload.executionId).toBe('exec-1');
    expect(payload.continuation.pending).toEqual([{ id: 'i-01' }, { id: 'i-02' }]);
    expect(payload.continuation.totals.counts.selected).toBe(2);
  } finally {
    delete process.env.TIME_RESERVE_MS;
  }
});

test('GIVEN a continuation event THEN it snapshots the instances handed over without listing again', async () => {
  const first = await (async () => {
    process.env.TIME_RESERVE_MS = '60000';
    try {
      await handler(EVENT, context(30_000));
    } finally {
      delete process.env.TIME_RESERVE_MS;
    }
    return JSON.parse(Buffer.from(lambdaMock.commandCalls(InvokeCommand)[0].args[0].input.Payload as Uint8Array).toString());
  })();
  ec2Mock.resetHistory();

  const result = await handler(first, context());

  expect(result.status).toBe('completed');
  expect(ec2Mock).not.toHaveReceivedCommand(DescribeInstancesCommand);
  expect(ec2Mock).toHaveReceivedCommandTimes(CreateSnapshotsCommand, 2);
  expect(result.totals.invocations).toBe(2);
  expect(result.totals.counts).toEqual(expect.objectContaining({ selected: 2, created: 2 }));
});

describe('settingsFromEnv', () => {
  test('GIVEN nothing set THEN the defaults follow EC2 (15 s per volume, so 16 s)', () => {
    expect(settingsFromEnv({})).toEqual(expect.objectContaining({ perVolumeRetryDelayMs: 16_000, concurrency: 10, reserveMs: 60_000 }));
  });
  test('GIVEN a bad value THEN the error names the variable and the value', () => {
    expect(() => settingsFromEnv({ SNAPSHOT_CONCURRENCY: '0' })).toThrow('environment variable SNAPSHOT_CONCURRENCY must be a number >= 1, got: "0"');
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
