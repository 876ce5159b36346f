import {
  CreateSnapshotsCommand,
  DescribeInstancesCommand,
  DescribeInstancesCommandOutput,
  DescribeRegionsCommand,
  DescribeSnapshotsCommand,
  DescribeSnapshotsCommandOutput,
  EC2Client,
  EC2ClientConfig,
  EC2ServiceException,
  Instance,
  Snapshot,
  paginateDescribeInstances,
  paginateDescribeSnapshots,
} from '@aws-sdk/client-ec2';
import { ConfiguredRetryStrategy } from '@smithy/core/retry';
import { Ec2Simulator, SimInstance } from './support/ec2-simulator';

const CREDENTIALS = { accessKeyId: 'AKID', secretAccessKey: 'SECRET' };

let sim: Ec2Simulator;
const clients: EC2Client[] = [];

/** A real client pointed at the simulator; no retries unless `retries` is given (then `retries` attempts, 10 ms apart). */
function client(options: { retries?: number; config?: Partial<EC2ClientConfig> } = {}): EC2Client {
  const attempts = options.retries ?? 1;
  const c = new EC2Client({
    endpoint: sim.endpoint,
    region: 'us-east-1',
    credentials: CREDENTIALS,
    maxAttempts: attempts,
    retryStrategy: new ConfiguredRetryStrategy(attempts, () => 10),
    ...options.config,
  });
  clients.push(c);
  return c;
}

function instance(n: number, tags: Record<string, string> = {}, extra: Partial<SimInstance> = {}): SimInstance {
  const id = n.toString(16).padStart(17, '0');
  return {
    instanceId: `i-${id}`,
    tags,
    volumeIds: [`vol-${id}a`, `vol-${id}b`, `vol-${id}c`],
    ...extra,
  };
}

/** Runs `fn`, expecting it to reject with an EC2 service error; returns that error. */
async function serviceError(fn: () => Promise<unknown>): Promise<EC2ServiceException> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(EC2ServiceException);
    return e as EC2ServiceException;
  }
  throw new Error('expected an error');
}

async function startSim(...args: ConstructorParameters<typeof Ec2Simulator>): Promise<Ec2Simulator> {
  sim = new Ec2Simulator(...args);
  await sim.start();
  return sim;
}

afterEach(async () => {
  for (const c of clients.splice(0)) {
    c.destroy();
  }
  await sim?.stop();
});

describe('DescribeInstances', () => {
  test('pages with MaxResults/NextToken through the SDK paginator and parses the instance shape', async () => {
    const instances = Array.from({ length: 12 }, (_, n) => instance(n + 1, { Name: `host-${n + 1}` }));
    instances[0].outpostArn = 'arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0';
    await startSim({ instances });
    const ec2 = client();

    const pages: DescribeInstancesCommandOutput[] = [];
    for await (const page of paginateDescribeInstances({ client: ec2, pageSize: 5 }, {})) {
      pages.push(page);
    }

    expect(pages.map((p) => p.Reservations?.length)).toEqual([5, 5, 2]);
    const all = pages.flatMap((p) => p.Reservations ?? []);
    expect(all.every((r) => r.Instances?.length === 1 && r.OwnerId === '123456789012' && r.ReservationId?.startsWith('r-'))).toBe(true);
    expect(all.map((r) => r.Instances?.[0].InstanceId)).toEqual(instances.map((i) => i.instanceId));
    expect(pages[2].NextToken).toBeUndefined();

    const calls = sim.calls;
    expect(calls.map((c) => c.params.MaxResults)).toEqual(['5', '5', '5']);
    expect(calls[0].params.NextToken).toBeUndefined();
    expect(calls[1].params.NextToken).toBe(pages[0].NextToken);
    expect(calls[2].params.NextToken).toBe(pages[1].NextToken);
    expect(calls.every((c) => c.status === 200 && c.action === 'DescribeInstances')).toBe(true);

    const first = all[0].Instances?.[0] as Instance;
    expect(first).toMatchObject({
      InstanceId: instances[0].instanceId,
      State: { Code: 16, Name: 'running' },
      RootDeviceName: '/dev/xvda',
      RootDeviceType: 'ebs',
      OutpostArn: instances[0].outpostArn,
      Tags: [{ Key: 'Name', Value: 'host-1' }],
      BlockDeviceMappings: [
        { DeviceName: '/dev/xvda', Ebs: { VolumeId: instances[0].volumeIds[0], Status: 'attached', DeleteOnTermination: true } },
        { DeviceName: '/dev/sdf', Ebs: { VolumeId: instances[0].volumeIds[1], Status: 'attached', DeleteOnTermination: false } },
        { DeviceName: '/dev/sdg', Ebs: { VolumeId: instances[0].volumeIds[2], Status: 'attached' } },
      ],
    });
    expect(first.LaunchTime).toBeInstanceOf(Date);
    expect(all[1].Instances?.[0].OutpostArn).toBeUndefined();
  });

  test('filters: values ORed within a filter, filters ANDed; tag-key, state, instance-id, wildcards', async () => {
    await startSim({
      instances: [
        instance(1, { Backup: 'nightly', Env: 'prod' }),
        instance(2, { Backup: 'weekly', Env: 'prod' }),
        instance(3, { Backup: 'nightly', Env: 'dev' }, { state: 'stopped' }),
        instance(4, { Env: 'prod' }),
        instance(5, {}),
      ],
    });
    const ec2 = client();
    const ids = async (filters: Array<{ Name: string; Values: string[] }>): Promise<string[]> => {
      const out = await ec2.send(new DescribeInstancesCommand({ Filters: filters }));
      return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId ?? '?').map((id) => id.slice(-1));
    };

    expect(await ids([{ Name: 'tag:Backup', Values: ['nightly'] }])).toEqual(['1', '3']);
    expect(await ids([{ Name: 'tag:Backup', Values: ['nightly', 'weekly'] }])).toEqual(['1', '2', '3']);
    expect(await ids([{ Name: 'tag:Backup', Values: ['nightly'] }, { Name: 'tag:Env', Values: ['prod'] }])).toEqual(['1']);
    expect(await ids([{ Name: 'tag-key', Values: ['Backup'] }])).toEqual(['1', '2', '3']);
    expect(await ids([{ Name: 'instance-state-name', Values: ['stopped'] }])).toEqual(['3']);
    expect(await ids([{ Name: 'instance-state-name', Values: ['running'] }, { Name: 'tag:Backup', Values: ['*ly'] }])).toEqual(['1', '2']);
    expect(await ids([{ Name: 'instance-id', Values: [instance(4).instanceId, instance(5).instanceId] }])).toEqual(['4', '5']);
    expect(await ids([{ Name: 'tag:Backup', Values: ['none'] }])).toEqual([]);

    expect(sim.calls[2].params).toEqual({
      'Filter.1.Name': 'tag:Backup',
      'Filter.1.Value.1': 'nightly',
      'Filter.2.Name': 'tag:Env',
      'Filter.2.Value.1': 'prod',
    });
  });

  test('InstanceIds, validation errors and error shape', async () => {
    await startSim({ instances: [instance(1), instance(2)] });
    const ec2 = client();

    const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instance(2).instanceId] }));
    expect(out.Reservations?.map((r) => r.Instances?.[0].InstanceId)).toEqual([instance(2).instanceId]);
    expect(sim.calls[0].params).toEqual({ 'InstanceId.1': instance(2).instanceId });
    expect(out.$metadata).toMatchObject({ httpStatusCode: 200, attempts: 1 });
    expect(out.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);

    const notFound = await serviceError(() => ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-00000000000000999'] })));
    expect(notFound.name).toBe('InvalidInstanceID.NotFound');
    expect(notFound.message).toBe('The instance ID \'i-00000000000000999\' does not exist');
    expect(notFound.$fault).toBe('client');
    expect(notFound.$metadata.httpStatusCode).toBe(400);
    expect(notFound.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);

    expect((await serviceError(() => ec2.send(new DescribeInstancesCommand({ MaxResults: 4 })))).name).toBe('InvalidParameterValue');
    expect((await serviceError(() => ec2.send(new DescribeInstancesCommand({ MaxResults: 1001 })))).name).toBe('InvalidParameterValue');
    expect((await serviceError(() => ec2.send(new DescribeInstancesCommand({ MaxResults: 5, InstanceIds: [instance(1).instanceId] })))).name)
      .toBe('InvalidParameterCombination');
    expect((await serviceError(() => ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'no-such-filter', Values: ['x'] }] })))).name)
      .toBe('InvalidParameterValue');
    expect((await serviceError(() => ec2.send(new DescribeInstancesCommand({ MaxResults: 5, NextToken: 'garbage' })))).name)
      .toBe('InvalidPaginationToken');
    const dry = await serviceError(() => ec2.send(new DescribeInstancesCommand({ DryRun: true })));
    expect([dry.name, dry.$metadata.httpStatusCode]).toEqual(['DryRunOperation', 412]);

    expect(sim.calls.slice(1).map((c) => [c.status, c.errorCode])).toEqual([
      [400, 'InvalidInstanceID.NotFound'],
      [400, 'InvalidParameterValue'],
      [400, 'InvalidParameterValue'],
      [400, 'InvalidParameterCombination'],
      [400, 'InvalidParameterValue'],
      [400, 'InvalidPaginationToken'],
      [412, 'DryRunOperation'],
    ]);
  });

  test('works through AWS_ENDPOINT_URL_EC2 and unsupported actions answer InvalidAction', async () => {
    await startSim({ instances: [instance(1)] });
    const saved = process.env.AWS_ENDPOINT_URL_EC2;
    process.env.AWS_ENDPOINT_URL_EC2 = sim.endpoint;
    try {
      const ec2 = new EC2Client({ region: 'us-east-1', credentials: CREDENTIALS, maxAttempts: 1 });
      clients.push(ec2);
      const out = await ec2.send(new DescribeInstancesCommand({}));
      expect(out.Reservations).toHaveLength(1);
      const err = await serviceError(() => ec2.send(new DescribeRegionsCommand({})));
      expect([err.name, err.$metadata.httpStatusCode]).toEqual(['InvalidAction', 400]);
    } finally {
      if (saved === undefined) {
        delete process.env.AWS_ENDPOINT_URL_EC2;
      } else {
        process.env.AWS_ENDPOINT_URL_EC2 = saved;
      }
    }
    expect(sim.calls.map((c) => c.action)).toEqual(['DescribeInstances', 'DescribeRegions']);
  });
});

describe('CreateSnapshots', () => {
  test('every option is serialized, parsed and applied', async () => {
    const outpostArn = 'arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0';
    const inst = instance(1, {}, { volumeIds: ['vol-root', 'vol-data1', 'vol-data2', 'vol-data3'], outpostArn });
    await startSim({ instances: [inst] });
    const ec2 = client();

    const out = await ec2.send(new CreateSnapshotsCommand({
      InstanceSpecification: { InstanceId: inst.instanceId, ExcludeBootVolume: true, ExcludeDataVolumeIds: ['vol-data1', 'vol-data3'] },
      Description: 'nightly & <co>',
      OutpostArn: outpostArn,
      CopyTagsFromSource: 'volume',
      TagSpecifications: [{ ResourceType: 'snapshot', Tags: [{ Key: 'Backup', Value: 'nightly' }, { Key: 'Set', Value: 'a b=c&d' }] }],
    }));

    expect(sim.calls).toHaveLength(1);
    expect(sim.calls[0]).toMatchObject({ action: 'CreateSnapshots', status: 200 });
    expect(sim.calls[0].params).toEqual({
      'InstanceSpecification.InstanceId': inst.instanceId,
      'InstanceSpecification.ExcludeBootVolume': 'true',
      'InstanceSpecification.ExcludeDataVolumeId.1': 'vol-data1',
      'InstanceSpecification.ExcludeDataVolumeId.2': 'vol-data3',
      'Description': 'nightly & <co>',
      'OutpostArn': outpostArn,
      'CopyTagsFromSource': 'volume',
      'TagSpecification.1.ResourceType': 'snapshot',
      'TagSpecification.1.Tag.1.Key': 'Backup',
      'TagSpecification.1.Tag.1.Value': 'nightly',
      'TagSpecification.1.Tag.2.Key': 'Set',
      'TagSpecification.1.Tag.2.Value': 'a b=c&d',
    });

    expect(sim.snapshots).toHaveLength(1);
    const [snap] = sim.snapshots;
    expect(snap).toMatchObject({
      volumeId: 'vol-data2',
      instanceId: inst.instanceId,
      description: 'nightly & <co>',
      tags: { Backup: 'nightly', Set: 'a b=c&d' },
      outpostArn,
    });
    expect(snap.snapshotId).toMatch(/^snap-[0-9a-f]{17}$/);

    expect(out.Snapshots).toHaveLength(1);
    expect(out.Snapshots?.[0]).toMatchObject({
      SnapshotId: snap.snapshotId,
      VolumeId: 'vol-data2',
      State: 'pending',
      VolumeSize: 8,
      OwnerId: '123456789012',
      Description: 'nightly & <co>',
      OutpostArn: outpostArn,
      Encrypted: false,
      Tags: [{ Key: 'Backup', Value: 'nightly' }, { Key: 'Set', Value: 'a b=c&d' }],
    });
    expect(out.Snapshots?.[0].StartTime?.getTime()).toBe(snap.startTimeMs);
  });

  test('one snapshot per volume with the same start time and tags; ExcludeBootVolume=false keeps the root', async () => {
    await startSim({ instances: [instance(1)] });
    const out = await client().send(new CreateSnapshotsCommand({
      InstanceSpecification: { InstanceId: instance(1).instanceId, ExcludeBootVolume: false },
      TagSpecifications: [{ ResourceType: 'snapshot', Tags: [{ Key: 'Set', Value: 's1' }] }],
    }));
    expect(out.Snapshots?.map((s) => s.VolumeId)).toEqual(instance(1).volumeIds);
    expect(new Set(sim.snapshots.map((s) => s.startTimeMs)).size).toBe(1);
    expect(new Set(sim.snapshots.map((s) => s.snapshotId)).size).toBe(3);
    expect(sim.snapshots.every((s) => s.tags.Set === 's1' && s.description === undefined)).toBe(true);
    expect(sim.calls[0].params['InstanceSpecification.ExcludeBootVolume']).toBe('false');
  });

  test('DryRun answers 412 DryRunOperation without effect', async () => {
    await startSim({ instances: [instance(1)] });
    const ec2 = client({ retries: 3 });
    const err = await serviceError(() => ec2.send(new CreateSnapshotsCommand({
      InstanceSpecification: { InstanceId: instance(1).instanceId },
      DryRun: true,
    })));
    expect(err.name).toBe('DryRunOperation');
    expect(err.message).toBe('Request would have succeeded, but DryRun flag is set.');
    expect(err.$metadata).toMatchObject({ httpStatusCode: 412, attempts: 1 });
    expect(sim.snapshots).toHaveLength(0);
    expect(sim.calls).toHaveLength(1);
    expect(sim.calls[0].params.DryRun).toBe('true');
  });

  test('validation errors', async () => {
    const outpost = 'arn:aws:outposts:us-east-1:123456789012:outpost/op-1';
    await startSim({ instances: [instance(1), instance(2, {}, { outpostArn: outpost })] });
    const ec2 = client({ retries: 3 });
    const id = instance(1).instanceId;
    const name = async (input: ConstructorParameters<typeof CreateSnapshotsCommand>[0]): Promise<string> =>
      (await serviceError(() => ec2.send(new CreateSnapshotsCommand(input)))).name;

    expect(await name({ InstanceSpecification: {} as { InstanceId: string } })).toBe('MissingParameter');
    expect(await name({ InstanceSpecification: { InstanceId: id, ExcludeDataVolumeIds: [instance(1).volumeIds[0]] } })).toBe('InvalidParameterValue');
    expect(await name({
      InstanceSpecification: { InstanceId: id, ExcludeDataVolumeIds: Array.from({ length: 41 }, (_, k) => `vol-x${k}`) },
    })).toBe('InvalidParameterValue');
    expect(await name({ InstanceSpecification: { InstanceId: id }, OutpostArn: outpost })).toBe('InvalidParameterCombination');
    expect(await name({ InstanceSpecification: { InstanceId: instance(2).instanceId }, OutpostArn: `${outpost}x` }))
      .toBe('InvalidParameterCombination');
    expect(await name({ InstanceSpecification: { InstanceId: id }, TagSpecifications: [{ ResourceType: 'volume', Tags: [] }] }))
      .toBe('InvalidParameterValue');
    expect(await name({ InstanceSpecification: { InstanceId: 'i-00000000000000999' } })).toBe('InvalidInstanceID.NotFound');

    expect(sim.calls).toHaveLength(7); // 4xx are not retried
    expect(sim.calls[2].params['InstanceSpecification.ExcludeDataVolumeId.41']).toBe('vol-x40');
    expect(sim.snapshots).toHaveLength(0);
  });

  test('terminated instance answers InvalidInstanceID.NotFound; DescribeInstances still shows it', async () => {
    await startSim({ instances: [instance(1)] });
    const ec2 = client();
    await ec2.send(new CreateSnapshotsCommand({ InstanceSpecification: { InstanceId: instance(1).instanceId } }));
    sim.terminate(instance(1).instanceId);

    const err = await serviceError(() => ec2.send(new CreateSnapshotsCommand({ InstanceSpecification: { InstanceId: instance(1).instanceId } })));
    expect([err.name, err.$metadata.httpStatusCode]).toEqual(['InvalidInstanceID.NotFound', 400]);
    expect(err.message).toContain(instance(1).instanceId);

    const out = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-state-name', Values: ['terminated'] }] }));
    const inst = out.Reservations?.[0].Instances?.[0];
    expect(inst?.State).toEqual({ Code: 48, Name: 'terminated' });
    expect(inst?.BlockDeviceMappings).toEqual([]);
    expect(sim.snapshots).toHaveLength(3);
  });

  test('per-volume rate: a second snapshot of a volume within the interval is refused (400, not retried)', async () => {
    await startSim({ instances: [instance(1), instance(2)], perVolumeIntervalMs: 250 });
    const ec2 = client({ retries: 3 });
    const create = (n: number): Promise<unknown> =>
      ec2.send(new CreateSnapshotsCommand({ InstanceSpecification: { InstanceId: instance(n).instanceId } }));

    await create(1);
    await create(2); // other volumes: fine
    const err = await serviceError(() => create(1));
    expect(err.name).toBe('SnapshotCreationPerVolumeRateExceeded');
    expect(err.$metadata).toMatchObject({ httpStatusCode: 400, attempts: 1 });
    expect(sim.snapshots).toHaveLength(6);

    await new Promise((r) => setTimeout(r, 260));
    await create(1);
    expect(sim.snapshots).toHaveLength(9);
    expect(sim.calls.map((c) => c.status)).toEqual([200, 200, 400, 200]);
  });
});

describe('throttling and faults', () => {
  test('RequestLimitExceeded (503) is retried by the SDK until the bucket refills', async () => {
    await startSim({ instances: [instance(1)], createSnapshotsBucket: { capacity: 1, refillPerSec: 10 }, perVolumeIntervalMs: 0 });
    // one token per 100 ms; the SDK waits 120 ms before its retry
    const ec2 = client({ retries: 3, config: { retryStrategy: new ConfiguredRetryStrategy(3, () => 120) } });
    const create = (): Promise<{ $metadata: { attempts?: number } }> =>
      ec2.send(new CreateSnapshotsCommand({ InstanceSpecification: { InstanceId: instance(1).instanceId } }));

    const first = await create();
    const second = await create();
    expect(first.$metadata.attempts).toBe(1);
    expect(second.$metadata.attempts).toBe(2);
    const successes = sim.calls.filter((c) => c.status === 200).length;
    expect(successes).toBe(2);
    expect(sim.countCalls('CreateSnapshots')).toBeGreaterThan(successes);
    expect(sim.calls[1]).toMatchObject({ status: 503, errorCode: 'RequestLimitExceeded' });
    expect(sim.setsByInstance().get(instance(1).instanceId)).toHaveLength(2);
  });

  test('RequestLimitExceeded error shape once retries are exhausted', async () => {
    await startSim({ instances: [instance(1)], describeBucket: { capacity: 1, refillPerSec: 0.001 } });
    const ec2 = client({ retries: 3 });
    await ec2.send(new DescribeInstancesCommand({}));
    const err = await serviceError(() => ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'] })));
    expect(err.name).toBe('RequestLimitExceeded');
    expect(err.message).toBe('Request limit exceeded.');
    expect(err.$fault).toBe('server');
    expect(err.$retryable).toBeUndefined();
    expect(err.$metadata).toMatchObject({ httpStatusCode: 503, attempts: 3 });
    expect(err.$metadata.totalRetryDelay).toBeGreaterThanOrEqual(20);
    expect(sim.calls.map((c) => c.errorCode)).toEqual([undefined, 'RequestLimitExceeded', 'RequestLimitExceeded', 'RequestLimitExceeded']);
  });

  test('a 500 fault is retried by the SDK; faults see callIndex/actionIndex and are counted as calls', async () => {
    await startSim({ instances: [instance(1)] });
    const seen: Array<[string, number, number]> = [];
    sim.addFault(({ action, callIndex, actionIndex }) => {
      seen.push([action, callIndex, actionIndex]);
      return undefined;
    });
    sim.addFault(({ action, actionIndex }) =>
      action === 'DescribeInstances' && actionIndex === 0 ? { status: 500, code: 'InternalError', message: 'boom' } : undefined);
    const ec2 = client({ retries: 3 });

    const out = await ec2.send(new DescribeInstancesCommand({}));
    expect(out.$metadata.attempts).toBe(2);
    expect(seen).toEqual([['DescribeInstances', 0, 0], ['DescribeInstances', 1, 1]]);
    expect(sim.calls.map((c) => [c.status, c.errorCode])).toEqual([[500, 'InternalError'], [200, undefined]]);
  });

  test('first matching fault wins; clearFaults restores normal handling; non-retryable codes are not retried', async () => {
    await startSim({ instances: [instance(1)] });
    sim.addFault(({ action }) => (action === 'DescribeInstances' ? { status: 403, code: 'UnauthorizedOperation', message: 'nope' } : undefined));
    const ec2 = client({ retries: 3 });
    const err = await serviceError(() => ec2.send(new DescribeInstancesCommand({})));
    expect([err.name, err.message, err.$metadata.attempts, err.$fault]).toEqual(['UnauthorizedOperation', 'nope', 1, 'client']);
    sim.clearFaults();
    await ec2.send(new DescribeInstancesCommand({}));
    expect(sim.calls.map((c) => c.status)).toEqual([403, 200]);
  });

  test('afterEffect: the snapshot is made, the answer is a 500, the SDK retry then hits the per-volume limit', async () => {
    await startSim({ instances: [instance(1)] });
    sim.addFault(({ action, actionIndex }) =>
      action === 'CreateSnapshots' && actionIndex === 0 ? { status: 500, code: 'InternalError', afterEffect: true } : undefined);
    const ec2 = client({ retries: 3 });
    const err = await serviceError(() => ec2.send(new CreateSnapshotsCommand({ InstanceSpecification: { InstanceId: instance(1).instanceId } })));
    expect(err.name).toBe('SnapshotCreationPerVolumeRateExceeded');
    expect(err.$metadata.attempts).toBe(2);
    expect(sim.calls.map((c) => [c.status, c.errorCode])).toEqual([[500, 'InternalError'], [400, 'SnapshotCreationPerVolumeRateExceeded']]);
    expect(sim.snapshots).toHaveLength(3);
    expect(sim.setsByInstance().get(instance(1).instanceId)).toHaveLength(1);
  });

  test('latencyMs delays every answer', async () => {
    await startSim({ instances: [instance(1)], latencyMs: 60 });
    const t0 = Date.now();
    await client().send(new DescribeInstancesCommand({}));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(55);
  });
});

describe('DescribeSnapshots', () => {
  test('tag filter, Owner and pagination through the SDK paginator', async () => {
    await startSim({ instances: [1, 2, 3, 4, 5].map((n) => instance(n)), perVolumeIntervalMs: 0 });
    const ec2 = client();
    for (const n of [1, 2, 3, 4, 5]) {
      await ec2.send(new CreateSnapshotsCommand({
        InstanceSpecification: { InstanceId: instance(n).instanceId },
        Description: `d${n}`,
        TagSpecifications: [{ ResourceType: 'snapshot', Tags: [{ Key: 'Backup', Value: n === 5 ? 'weekly' : 'nightly' }, { Key: 'Set', Value: `set-${n}` }] }],
      }));
    }
    sim.calls.length = 0;

    const pages: DescribeSnapshotsCommandOutput[] = [];
    for await (const page of paginateDescribeSnapshots({ client: ec2, pageSize: 5 }, {
      OwnerIds: ['self'],
      Filters: [{ Name: 'tag:Backup', Values: ['nightly'] }],
    })) {
      pages.push(page);
    }
    expect(pages.map((p) => p.Snapshots?.length)).toEqual([5, 5, 2]);
    const snaps = pages.flatMap((p) => p.Snapshots ?? []);
    expect(snaps.map((s) => s.SnapshotId)).toEqual(sim.snapshots.slice(0, 12).map((s) => s.snapshotId));
    expect(snaps[0]).toMatchObject({
      VolumeId: instance(1).volumeIds[0],
      State: 'completed',
      Progress: '100%',
      OwnerId: '123456789012',
      Description: 'd1',
      VolumeSize: 8,
      StorageTier: 'standard',
      Tags: [{ Key: 'Backup', Value: 'nightly' }, { Key: 'Set', Value: 'set-1' }],
    } as Snapshot);
    expect(snaps[0].StartTime?.getTime()).toBe(sim.snapshots[0].startTimeMs);
    expect(sim.calls[1].params).toEqual({
      'MaxResults': '5',
      'NextToken': pages[0].NextToken,
      'Owner.1': 'self',
      'Filter.1.Name': 'tag:Backup',
      'Filter.1.Value.1': 'nightly',
    });

    const bySet = await ec2.send(new DescribeSnapshotsCommand({ Filters: [{ Name: 'tag:Set', Values: ['set-2', 'set-5'] }, { Name: 'tag-key', Values: ['Backup'] }] }));
    expect(bySet.Snapshots?.map((s) => s.Tags?.find((t) => t.Key === 'Set')?.Value)).toEqual(['set-2', 'set-2', 'set-2', 'set-5', 'set-5', 'set-5']);
    const byVolume = await ec2.send(new DescribeSnapshotsCommand({ Filters: [{ Name: 'volume-id', Values: [instance(3).volumeIds[1]] }] }));
    expect(byVolume.Snapshots?.map((s) => s.SnapshotId)).toEqual([sim.snapshots[7].snapshotId]);
    const byId = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [sim.snapshots[4].snapshotId] }));
    expect(byId.Snapshots?.map((s) => s.VolumeId)).toEqual([sim.snapshots[4].volumeId]);
    const otherOwner = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['999999999999'] }));
    expect(otherOwner.Snapshots ?? []).toEqual([]);

    const missing = await serviceError(() => ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: ['snap-00000000000000000'] })));
    expect(missing.name).toBe('InvalidSnapshot.NotFound');
    const tokenReuse = await serviceError(() => ec2.send(new DescribeSnapshotsCommand({ MaxResults: 5, NextToken: pages[0].NextToken })));
    expect(tokenReuse.name).toBe('InvalidPaginationToken');
    expect((await serviceError(() => ec2.send(new DescribeSnapshotsCommand({ MaxResults: 4 })))).name).toBe('InvalidParameterValue');
  });
});

describe('setsByInstance', () => {
  test('groups snapshots by CreateSnapshots call, or by the value of a tag', async () => {
    await startSim({ instances: [instance(1), instance(2, {}, { volumeIds: ['vol-only'] })], perVolumeIntervalMs: 0 });
    const ec2 = client();
    const create = (n: number, set: string): Promise<unknown> => ec2.send(new CreateSnapshotsCommand({
      InstanceSpecification: { InstanceId: instance(n).instanceId },
      TagSpecifications: [{ ResourceType: 'snapshot', Tags: [{ Key: 'Set', Value: set }] }],
    }));
    await create(1, 'a');
    await create(2, 'a');
    await create(1, 'b');
    await create(1, 'b');

    const byCall = sim.setsByInstance();
    expect([...byCall.keys()]).toEqual([instance(1).instanceId, instance(2).instanceId]);
    expect(byCall.get(instance(1).instanceId)?.map((set) => set.length)).toEqual([3, 3, 3]);
    expect(byCall.get(instance(2).instanceId)?.map((set) => set.map((s) => s.volumeId))).toEqual([['vol-only']]);

    const byTag = sim.setsByInstance('Set');
    expect(byTag.get(instance(1).instanceId)?.map((set) => [set[0].tags.Set, set.length])).toEqual([['a', 3], ['b', 6]]);
    expect(sim.setsByInstance('Missing').size).toBe(0);
    expect(sim.countCalls('CreateSnapshots')).toBe(4);
    expect(sim.countCalls('DescribeInstances')).toBe(0);
  });
});
