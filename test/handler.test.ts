import {
  CreateSnapshotsCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  EC2Client,
  EC2ServiceException,
  Instance,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { DEFAULT_SETTINGS, RunEnvironment, RunLog, runSnapshots } from '../lambda/run-snapshots';
import { SnapshotRunRequest } from '../src/private/request-contract';

const ec2Mock = mockClient(EC2Client);

const REQUEST: SnapshotRunRequest = {
  version: 1,
  scheduleId: 'Stack/Nightly',
  executionId: '2c6e5a0e-3f4b-4d8e-9c1a-7b2d9e0f1a23',
  scheduledTime: '2026-11-24T02:30:00Z',
  instanceTags: { Backup: ['nightly'] },
  excludeBootVolume: false,
  excludeDataVolumeIds: [],
  snapshotTags: {},
  dryRun: false,
};

function instance(id: string, options: { tags?: Record<string, string>; volumes?: string[]; outpostArn?: string } = {}): Instance {
  const volumes = options.volumes ?? [`vol-${id.slice(2).padEnd(17, '0')}`];
  return {
    InstanceId: id,
    RootDeviceName: '/dev/xvda',
    Tags: Object.entries(options.tags ?? { Backup: 'nightly' }).map(([Key, Value]) => ({ Key, Value })),
    BlockDeviceMappings: volumes.map((v, i) => ({ DeviceName: i === 0 ? '/dev/xvda' : `/dev/sd${String.fromCharCode(102 + i)}`, Ebs: { VolumeId: v } })),
    OutpostArn: options.outpostArn,
  };
}

function ec2Error(name: string, status = 400): EC2ServiceException {
  return new EC2ServiceException({ name, $fault: status >= 500 ? 'server' : 'client', message: `${name} happened`, $metadata: { httpStatusCode: status, attempts: 1 } });
}

interface LogLine { level: string; message: string; attributes: Record<string, any> }

function environment(overrides: Partial<RunEnvironment> = {}): { env: RunEnvironment; lines: LogLine[]; continued: any[] } {
  const lines: LogLine[] = [];
  const log: RunLog = {
    info: (message, attributes = {}) => lines.push({ level: 'info', message, attributes }),
    warn: (message, attributes = {}) => lines.push({ level: 'warn', message, attributes }),
    error: (message, attributes = {}) => lines.push({ level: 'error', message, attributes }),
  };
  const continued: any[] = [];
  const client = new EC2Client({ region: 'eu-central-1' });
  const env: RunEnvironment = {
    ec2: client,
    ec2Create: client,
    log,
    settings: { ...DEFAULT_SETTINGS, perVolumeRetryDelayMs: 5, throttleBackoffBaseMs: 1, throttleBackoffMaxMs: 4, verifyDelayMs: 1, reserveMs: 0 },
    remainingMs: () => 900_000,
    continueRun: async (event) => { continued.push(event); },
    ...overrides,
  };
  return { env, lines, continued };
}

function outcomes(lines: LogLine[]): Record<string, string> {
  return Object.fromEntries(lines.filter((l) => l.attributes.outcome).map((l) => [l.attributes.instanceId, l.attributes.outcome]));
}

beforeEach(() => {
  ec2Mock.reset();
  ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
  ec2Mock.on(CreateSnapshotsCommand).callsFake((input) => Promise.resolve({
    Snapshots: [{ SnapshotId: `snap-${input.InstanceSpecification.InstanceId.slice(2)}`, VolumeId: 'vol-1' }],
  }));
});

describe('listing', () => {
  test('GIVEN several DescribeInstances pages WHEN run THEN every page is read and every instance gets one call', async () => {
    ec2Mock.on(DescribeInstancesCommand)
      .resolvesOnce({ Reservations: [{ Instances: [instance('i-01'), instance('i-02')] }], NextToken: 'p2' })
      .resolvesOnce({ Reservations: [{ Instances: [instance('i-03')] }, { Instances: [instance('i-04')] }], NextToken: 'p3' })
      .resolvesOnce({ Reservations: [{ Instances: [instance('i-05')] }] });
    const { env } = environment();

    const result = await runSnapshots(REQUEST, env);

    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeInstancesCommand, 3);
    expect(ec2Mock.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input.NextToken)).toEqual([undefined, 'p2', 'p3']);
    const created = ec2Mock.commandCalls(CreateSnapshotsCommand).map((c) => c.args[0].input.InstanceSpecification!.InstanceId).sort();
    expect(created).toEqual(['i-01', 'i-02', 'i-03', 'i-04', 'i-05']);
    expect(result.totals.counts).toEqual(expect.objectContaining({ selected: 5, created: 5, failed: 0 }));
    expect(result.totals.apiCalls).toEqual({ DescribeInstances: 3, DescribeSnapshots: 1, CreateSnapshots: 5 });
  });

  test('GIVEN tag selection WHEN listing THEN one exact tag: filter per key, the states, and the largest page', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    const { env } = environment();

    await runSnapshots({ ...REQUEST, instanceTags: { Backup: ['nightly', 'a*b?'], Env: ['prod'] } }, env);

    expect(ec2Mock).toHaveReceivedCommandWith(DescribeInstancesCommand, {
      Filters: [
        { Name: 'tag:Backup', Values: ['nightly', 'a\\*b\\?'] },
        { Name: 'tag:Env', Values: ['prod'] },
        { Name: 'instance-state-name', Values: ['running', 'stopped'] },
      ],
      MaxResults: 1000,
    });
  });

  test('GIVEN an instance that EC2 returned but whose tags do not match exactly WHEN run THEN it is not selected', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({
      Reservations: [{ Instances: [instance('i-01'), instance('i-02', { tags: { Backup: 'Nightly' } }), instance('i-03', { tags: {} })] }],
    });
    const { env } = environment();

    const result = await runSnapshots(REQUEST, env);

    expect(ec2Mock).toHaveReceivedCommandTimes(CreateSnapshotsCommand, 1);
    expect(result.totals.counts.selected).toBe(1);
  });

  test('GIVEN no instance carries the tags WHEN run THEN it is a normal, logged outcome with no call and no failure', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    const { env, lines } = environment();

    const result = await runSnapshots(REQUEST, env);

    expect(result.status).toBe('completed');
    expect(result.totals.counts).toEqual({ selected: 0, created: 0, alreadyDone: 0, dryRunOk: 0, skipped: 0, failed: 0, notAttempted: 0 });
    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotsCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(DescribeSnapshotsCommand);
    expect(lines).toContainEqual(expect.objectContaining({ level: 'info', message: 'no instance carries the selection tags: nothing to snapshot' }));
  });
});

describe('CreateSnapshots requests', () => {
  test('GIVEN every option WHEN run THEN each is mapped into the request with the library tags', async () => {
    const volumes = ['vol-0000000000000000a', 'vol-0000000000000000b', 'vol-0000000000000000c'];
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('i-01', { volumes })] }] });
    const { env } = environment();

    await runSnapshots({
      ...REQUEST,
      excludeBootVolume: true,
      excludeDataVolumeIds: ['vol-0000000000000000b', 'vol-0000000000000000f'],
      description: 'nightly set',
      snapshotTags: { CostCenter: '42' },
      copyTagsFromSource: 'volume',
    }, env);

    expect(ec2Mock).toHaveReceivedCommandWith(CreateSnapshotsCommand, {
      InstanceSpecification: { InstanceId: 'i-01', ExcludeBootVolume: true, ExcludeDataVolumeIds: ['vol-0000000000000000b'] },
      Description: 'nightly set',
      CopyTagsFromSource: 'volume',
      DryRun: false,
      TagSpecifications: [{
        ResourceType: 'snapshot',
        Tags: [
          { Key: 'CostCenter', Value: '42' },
          { Key: 'cdk-instance-snapshots:schedule', Value: 'Stack/Nightly' },
          { Key: 'cdk-instance-snapshots:execution-id', Value: REQUEST.executionId },
          { Key: 'cdk-instance-snapshots:instance-id', Value: 'i-01' },
          { Key: 'cdk-instance-snapshots:scheduled-time', Value: REQUEST.scheduledTime },
        ],
      }],
    });
    const input = ec2Mock.commandCalls(CreateSnapshotsCommand)[0].args[0].input;
    expect(input.OutpostArn).toBeUndefined();
  });

  test('GIVEN an Outpost ARN WHEN run THEN it is sent only for instances on that Outpost', async () => {
    const outpostArn = 'arn:aws:outposts:eu-central-1:123456789012:outpost/op-0123456789abcdef0';
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('i-01', { outpostArn }), instance('i-02')] }] });
    const { env } = environment();

    await runSnapshots({ ...REQUEST, outpostArn }, env);

    const byInstance = Object.fromEntries(ec2Mock.commandCalls(CreateSnapshotsCommand)
      .map((c) => [c.args[0].input.InstanceSpecification!.InstanceId, c.args[0].input.OutpostArn]));
    expect(byInstance).toEqual({ 'i-01': outpostArn, 'i-02': undefined });
  });

  test('GIVEN an excluded volume id that is an instance\'s root WHEN run THEN its boot volume is excluded instead, with a warning', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('i-01', { volumes: ['vol-0000000000000000a', 'vol-0000000000000000b'] })] }] });
    const { env, lines } = environment();

    await runSnapshots({ ...REQUEST, excludeDataVolumeIds: ['vol-0000000000000000a'] }, env);

    expect(ec2Mock).toHaveReceivedCommandWith(CreateSnapshotsCommand, { InstanceSpecification: { InstanceId: 'i-01', ExcludeBootVolume: true } });
    expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', message: expect.stringContaining('vol-0000000000000000a, the root volume of i-01') }));
  });

  test('GIVEN an instance whose every volume is excluded WHEN run THEN it is skipped with the reason, not called', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('i-01', { volumes: ['vol-0000000000000000a'] })] }] });
    const { env, lines } = environment();

    const result = await runSnapshots({ ...REQUEST, excludeBootVolume: true }, env);

    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotsCommand);
    expect(result.totals.counts).toEqual(expect.objectContaining({ selected: 1, skipped: 1 }));
    expect(lines).toContainEqual(expect.objectContaining({ attributes: expect.objectContaining({ instanceId: 'i-01', outcome: 'skipped', code: 'NoVolumesToSnapshot' }) }));
  });
});

describe('excluding data volumes by tag', () => {
  const [ROOT, DATA, SCRATCH, TMP] = ['vol-0000000000000000a', 'vol-0000000000000000b', 'vol-0000000000000000c', 'vol-0000000000000000d'];
  const tagged = (VolumeId: string, Key: string, Value: string) => ({ VolumeId, Tags: [{ Key, Value }] });

  test('GIVEN volumes carrying any of the tags WHEN run THEN one paginated look-up per key, and they are left out of the request', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('i-01', { volumes: [ROOT, DATA, SCRATCH, TMP] })] }] });
    ec2Mock.on(DescribeVolumesCommand, { Filters: [{ Name: 'tag:Scratch', Values: ['true'] }] })
      .resolvesOnce({ Volumes: [tagged(SCRATCH, 'Scratch', 'true')], NextToken: 'next' })
      .resolvesOnce({ Volumes: [tagged('vol-0000000000000000f', 'Scratch', 'true')] });
    // EC2's filter is a first pass: a volume whose tag does not match exactly stays in.
    ec2Mock.on(DescribeVolumesCommand, { Filters: [{ Name: 'tag:Backup', Values: ['never'] }] })
      .resolves({ Volumes: [tagged(TMP, 'Backup', 'never'), tagged(DATA, 'Backup', 'Never')] });
    const { env } = environment();

    const result = await runSnapshots({ ...REQUEST, excludeDataVolumeTags: { Scratch: ['true'], Backup: ['never'] } }, env);

    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeVolumesCommand, 3);
    expect(ec2Mock.commandCalls(DescribeVolumesCommand).map((c) => c.args[0].input.MaxResults)).toEqual([500, 500, 500]);
    expect(ec2Mock).toHaveReceivedCommandWith(CreateSnapshotsCommand, {
      InstanceSpecification: { InstanceId: 'i-01', ExcludeBootVolume: false, ExcludeDataVolumeIds: [SCRATCH, TMP] },
    });
    expect(result.totals.apiCalls.DescribeVolumes).toBe(3);
  });

  test('GIVEN a tagged root volume WHEN run THEN it is still snapshotted (boot volumes are excluded only by excludeBootVolume)', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('i-01', { volumes: [ROOT, DATA] })] }] });
    ec2Mock.on(DescribeVolumesCommand).resolves({ Volumes: [tagged(ROOT, 'Scratch', 'true')] });
    const { env } = environment();

    await runSnapshots({ ...REQUEST, excludeDataVolumeTags: { Scratch: ['true'] } }, env);

    const spec = ec2Mock.commandCalls(CreateSnapshotsCommand)[0].args[0].input.InstanceSpecification;
    expect(spec).toEqual({ InstanceId: 'i-01', ExcludeBootVolume: false });
  });

  test('GIVEN more than 40 attached data volumes excluded WHEN run THEN the instance is reported failed, not called', async () => {
    const volumes = [ROOT, ...Array.from({ length: 41 }, (_, i) => `vol-${(i + 16).toString(16).padStart(17, '0')}`)];
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('i-01', { volumes })] }] });
    ec2Mock.on(DescribeVolumesCommand).resolves({ Volumes: volumes.slice(1).map((v) => tagged(v, 'Scratch', 'true')) });
    const { env } = environment();

    const result = await runSnapshots({ ...REQUEST, excludeDataVolumeTags: { Scratch: ['true'] } }, env);

    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotsCommand);
    expect(result.totals.failuresByCode).toEqual({ TooManyExcludedVolumes: 1 });
  });

  test('GIVEN no volume tags WHEN run THEN no DescribeVolumes call is made', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('i-01')] }] });
    const { env } = environment();

    await runSnapshots(REQUEST, env);

    expect(ec2Mock).not.toHaveReceivedCommand(DescribeVolumesCommand);
  });
});

describe('dry run', () => {
  test('GIVEN dryRun WHEN EC2 answers DryRunOperation THEN it counts as success, nothing is looked up or created', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('i-01'), instance('i-02')] }] });
    ec2Mock.on(CreateSnapshotsCommand).rejects(ec2Error('DryRunOperation', 412));
    const { env, lines } = environment();

    const result = await runSnapshots({ ...REQUEST, dryRun: true }, env);

    expect(ec2Mock).toHaveReceivedCommandWith(CreateSnapshotsCommand, { DryRun: true });
    expect(ec2Mock).not.toHaveReceivedCommand(DescribeSnapshotsCommand);
    expect(result.totals.counts).toEqual(expect.objectContaining({ dryRunOk: 2, created: 0, failed: 0 }));
    expect(outcomes(lines)).toEqual({ 'i-01': 'dry-run-ok', 'i-02': 'dry-run-ok' });
  });

  test('GIVEN dryRun WHEN EC2 answers UnauthorizedOperation THEN the instance is reported failed with the code', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('i-01')] }] });
    ec2Mock.on(CreateSnapshotsCommand).rejects(ec2Error('UnauthorizedOperation', 403));
    const { env } = environment();

    const result = await runSnapshots({ ...REQUEST, dryRun: true }, env);

    expect(result.totals.failuresByCode).toEqual({ UnauthorizedOperation: 1 });
    expect(ec2Mock).toHaveReceivedCommandTimes(CreateSnapshotsCommand, 1);
  });
});

describe('failures', () => {
  test('GIVEN an instance terminated between listing and snapshotting WHEN run THEN it is skipped, not failed', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('i-01'), instance('i-02')] }] });
    ec2Mock.on(CreateSnapshotsCommand, { InstanceSpecification: { InstanceId: 'i-01' } }).rejects(ec2Error('InvalidInstanceID.NotFound'));
    const { env, lines } = environment();

    const result = await runSnapshots(REQUEST, env);

    expect(result.totals.counts).toEqual(expect.objectContaining({ created: 1, skipped: 1, failed: 0 }));
    expect(lines).toContainEqual(expect.objectContaining({
      level: 'warn', attributes: expect.objectContaining({ instanceId: 'i-01', outcome: 'skipped', code: 'InvalidInstanceID.NotFound' }),
    }));
  });

  test('GIVEN one instance failing WHEN run THEN the others still get their sets and the failure is reported with its code', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('i-01'), instance('i-02'), instance('i-03')] }] });
    ec2Mock.on(CreateSnapshotsCommand, { InstanceSpecification: { InstanceId: 'i-02' } }).rejects(ec2Error('ConcurrentSnapshotLimitExceeded'));
    const { env, lines } = environment();

    const result = await runSnapshots(REQUEST, env);

    expect(outcomes(lines)).toEqual({ 'i-01': 'created', 'i-02': 'failed', 'i-03': 'created' });
    expect(result.totals.failures).toEqual([
      { instanceId: 'i-02', outcome: 'failed', code: 'ConcurrentSnapshotLimitExceeded', message: 'ConcurrentSnapshotLimitExceeded happened' },
    ]);
    // Reported, not hammered: one call for the failing instance.
    expect(ec2Mock.commandCalls(CreateSnapshotsCommand).filter((c) => c.args[0].input.InstanceSpecification!.InstanceId === 'i-02')).toHaveLength(1);
  });

  test('GIVEN an unexpected error (a bug, not EC2) WHEN run THEN it is reported as that instance\'s failure, not swallowed', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('i-01')] }] });
    ec2Mock.on(CreateSnapshotsCommand).rejects(new TypeError('boom'));
    const { env } = environment();

    const result = await runSnapshots(REQUEST, env);

    expect(result.totals.failuresByCode).toEqual({ TypeError: 1 });
  });

  test('GIVEN the listing fails WHEN run THEN the run throws (nothing was attempted, Lambda records the failure)', async () => {
    ec2Mock.on(DescribeInstancesCommand).rejects(ec2Error('UnauthorizedOperation', 403));
    const { env } = environment();

    await expect(runSnapshots(REQUEST, env)).rejects.toThrow('UnauthorizedOperation happened');
    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotsCommand);
  });
});

describe('idempotency', () => {
  test('GIVEN sets this execution id already made WHEN run again THEN only the missing instances are called', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('i-01'), instance('i-02'), instance('i-03')] }] });
    ec2Mock.on(DescribeSnapshotsCommand)
      .resolvesOnce({
        Snapshots: [{ SnapshotId: 'snap-1', Tags: [{ Key: 'cdk-instance-snapshots:instance-id', Value: 'i-01' }] }],
        NextToken: 'more',
      })
      .resolvesOnce({ Snapshots: [{ SnapshotId: 'snap-3', Tags: [{ Key: 'cdk-instance-snapshots:instance-id', Value: 'i-03' }] }] });
    const { env, lines } = environment();

    const result = await runSnapshots(REQUEST, env);

    expect(ec2Mock).toHaveReceivedCommandWith(DescribeSnapshotsCommand, {
      OwnerIds: ['self'],
      Filters: [
        { Name: 'tag:cdk-instance-snapshots:execution-id', Values: [REQUEST.executionId] },
        { Name: 'tag:cdk-instance-snapshots:schedule', Values: ['Stack/Nightly'] },
      ],
      MaxResults: 1000,
    });
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeSnapshotsCommand, 2);
    expect(ec2Mock.commandCalls(CreateSnapshotsCommand).map((c) => c.args[0].input.InstanceSpecification!.InstanceId)).toEqual(['i-02']);
    expect(result.totals.counts).toEqual(expect.objectContaining({ alreadyDone: 2, created: 1 }));
    expect(outcomes(lines)).toEqual({ 'i-01': 'already-done', 'i-02': 'created', 'i-03': 'already-done' });
  });
});
