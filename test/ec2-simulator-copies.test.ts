/**
 * The simulator's Regions, copies to other Regions (CopySnapshot) and sharing (ModifySnapshotAttribute,
 * DescribeSnapshotAttribute), through a real EC2Client per Region.
 */
import {
  CopySnapshotCommand,
  CopySnapshotCommandInput,
  CreateSnapshotsCommand,
  DeleteSnapshotCommand,
  DescribeInstancesCommand,
  DescribeSnapshotAttributeCommand,
  DescribeSnapshotsCommand,
  DescribeSnapshotsCommandInput,
  EC2Client,
  EC2ServiceException,
  LockSnapshotCommand,
  ModifySnapshotAttributeCommand,
  ModifySnapshotAttributeCommandInput,
  Snapshot,
} from '@aws-sdk/client-ec2';
import { Ec2Simulator, Ec2SimulatorOptions, SimInstance, SimSnapshotSeed } from './support/ec2-simulator';

const CREDENTIALS = { accessKeyId: 'AKID', secretAccessKey: 'SECRET' };
const HOME = 'us-east-1';
const DEST = 'eu-west-1';
const OTHER = 'ap-southeast-2';
const HOUR = 3_600_000;
const MINUTE = 60_000;
const T0 = Date.parse('2026-11-24T00:00:00.000Z');
const PARTNER = '210987654321';
const AUDIT = '111122223333';
const CMK = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

let sim: Ec2Simulator;
const clients = new Map<string, EC2Client>();
/** the simulator's clock (tests that use `startSim` move it forward) */
let nowMs = T0;

function instance(n: number, extra: Partial<SimInstance> = {}): SimInstance {
  const id = n.toString(16).padStart(17, '0');
  return { instanceId: `i-${id}`, volumeIds: [`vol-${id}a`, `vol-${id}b`], ...extra };
}

/** A simulator on the test clock, in us-east-1 unless said otherwise. */
async function startSim(options: Ec2SimulatorOptions = {}): Promise<Ec2Simulator> {
  nowMs = T0;
  sim = new Ec2Simulator({ clock: () => nowMs, perVolumeIntervalMs: 0, ...options });
  await sim.start();
  return sim;
}

/** A client of that Region (one per Region and test), without retries. */
function ec2(region: string): EC2Client {
  let c = clients.get(region);
  if (!c) {
    c = new EC2Client({ endpoint: sim.endpoint, region, credentials: CREDENTIALS, maxAttempts: 1 });
    clients.set(region, c);
  }
  return c;
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

/** One snapshot of instance 1's first volume, completed, in `region` (default the simulator's own). */
function seed(extra: Partial<SimSnapshotSeed> = {}): string {
  const [snapshot] = sim.seedSnapshots([{ volumeId: instance(1).volumeIds[0], instanceId: instance(1).instanceId, ...extra }]);
  return snapshot.snapshotId;
}

/** Copies `sourceId` from us-east-1 into `region` (default eu-west-1); answers the copy's id. */
async function copy(sourceId: string, input: Partial<CopySnapshotCommandInput> = {}, region = DEST): Promise<string> {
  const out = await ec2(region).send(new CopySnapshotCommand({ SourceRegion: HOME, SourceSnapshotId: sourceId, ...input }));
  return out.SnapshotId!;
}

async function list(region: string, input: DescribeSnapshotsCommandInput = {}): Promise<Snapshot[]> {
  return (await ec2(region).send(new DescribeSnapshotsCommand(input))).Snapshots ?? [];
}

async function share(region: string, input: Omit<ModifySnapshotAttributeCommandInput, 'Attribute'>) {
  return ec2(region).send(new ModifySnapshotAttributeCommand({ Attribute: 'createVolumePermission', ...input }));
}

async function sharedWith(region: string, snapshotId: string): Promise<string[]> {
  const out = await ec2(region).send(new DescribeSnapshotAttributeCommand({ SnapshotId: snapshotId, Attribute: 'createVolumePermission' }));
  return (out.CreateVolumePermissions ?? []).map((p) => p.UserId!);
}

afterEach(async () => {
  for (const c of clients.values()) c.destroy();
  clients.clear();
  await sim?.stop();
});

describe('Regions', () => {
  test('GIVEN snapshots in two Regions THEN each Region\'s client lists only its own, and the getters mean the simulator\'s own', async () => {
    await startSim();
    const home = seed();
    const away = seed({ region: DEST });

    const homeIds = (await list(HOME)).map((s) => s.SnapshotId);
    const awayIds = (await list(DEST)).map((s) => s.SnapshotId);
    const elsewhere = await list(OTHER);

    expect(homeIds).toEqual([home]);
    expect(awayIds).toEqual([away]);
    expect(elsewhere).toEqual([]);
    expect(sim.snapshots.map((s) => s.snapshotId)).toEqual([home]);
    expect(sim.snapshotsIn(DEST).map((s) => [s.snapshotId, s.region])).toEqual([[away, DEST]]);
    expect(sim.snapshotsIn(OTHER)).toEqual([]);
    expect(sim.calls.map((c) => c.region)).toEqual([HOME, DEST, OTHER]);
  });

  test('GIVEN another Region\'s snapshot THEN DescribeSnapshots, DeleteSnapshot and LockSnapshot answer InvalidSnapshot.NotFound', async () => {
    await startSim();
    const away = seed({ region: DEST });

    const described = await serviceError(() => list(HOME, { SnapshotIds: [away] }));
    const deleted = await serviceError(() => ec2(HOME).send(new DeleteSnapshotCommand({ SnapshotId: away })));
    const locked = await serviceError(() => ec2(HOME).send(new LockSnapshotCommand({ SnapshotId: away, LockMode: 'governance', LockDuration: 1 })));
    const byFilter = await list(HOME, { Filters: [{ Name: 'snapshot-id', Values: [away] }] });

    expect([described.name, deleted.name, locked.name]).toEqual(['InvalidSnapshot.NotFound', 'InvalidSnapshot.NotFound', 'InvalidSnapshot.NotFound']);
    expect(byFilter).toEqual([]);
    expect(sim.snapshotLock(away)).toBeUndefined();
    expect(sim.snapshotsIn(DEST)).toHaveLength(1);
  });

  test('GIVEN a DeleteSnapshot in another Region THEN the deletion is recorded there, not in `deletions`', async () => {
    await startSim();
    const away = seed({ region: DEST });

    await ec2(DEST).send(new DeleteSnapshotCommand({ SnapshotId: away }));

    expect(sim.snapshotsIn(DEST)).toEqual([]);
    expect(sim.deletionsIn(DEST).map((d) => d.snapshotId)).toEqual([away]);
    expect(sim.deletions).toEqual([]);
  });

  test('GIVEN instances THEN they are only in the simulator\'s own Region: elsewhere none are listed nor snapshotted', async () => {
    await startSim({ instances: [instance(1)] });

    const here = await ec2(HOME).send(new DescribeInstancesCommand({}));
    const there = await ec2(DEST).send(new DescribeInstancesCommand({}));
    const create = await serviceError(() =>
      ec2(DEST).send(new CreateSnapshotsCommand({ InstanceSpecification: { InstanceId: instance(1).instanceId } })));

    expect(here.Reservations).toHaveLength(1);
    expect(there.Reservations ?? []).toEqual([]);
    expect([create.name, create.$metadata.httpStatusCode]).toEqual(['InvalidInstanceID.NotFound', 400]);
    expect(sim.snapshotsIn(DEST)).toEqual([]);
  });

  test('GIVEN the region option THEN snapshots are made in it, and a request without an Authorization header is in it', async () => {
    await startSim({ region: 'eu-central-1', instances: [instance(1)] });
    await ec2('eu-central-1').send(new CreateSnapshotsCommand({ InstanceSpecification: { InstanceId: instance(1).instanceId } }));

    const unsigned = await fetch(sim.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=DescribeSnapshots&Version=2016-11-15',
    });
    const body = await unsigned.text();

    expect(sim.snapshots.map((s) => s.region)).toEqual(['eu-central-1', 'eu-central-1']);
    expect(sim.snapshotsIn(HOME)).toEqual([]);
    expect(body.match(/<snapshotId>/g)).toHaveLength(2);
    expect(sim.calls.map((c) => c.region)).toEqual(['eu-central-1', 'eu-central-1']);
  });
});

describe('CopySnapshot', () => {
  test('GIVEN a completed snapshot THEN CopySnapshot makes a copy in the destination only, with the call\'s tags and the source\'s volume', async () => {
    await startSim();
    const source = seed({ tags: { Schedule: 'nightly' }, volumeSize: 100, description: 'nightly set' });

    const out = await ec2(DEST).send(new CopySnapshotCommand({
      SourceRegion: HOME,
      SourceSnapshotId: source,
      TagSpecifications: [{ ResourceType: 'snapshot', Tags: [{ Key: 'CopyOf', Value: source }] }],
    }));

    const [listed] = await list(DEST);
    expect(out.SnapshotId).toMatch(/^snap-[0-9a-f]{17}$/);
    expect(out.SnapshotId).not.toBe(source);
    expect(out.Tags).toEqual([{ Key: 'CopyOf', Value: source }]);
    expect(listed).toMatchObject({
      SnapshotId: out.SnapshotId,
      VolumeId: instance(1).volumeIds[0],
      VolumeSize: 100,
      State: 'completed',
      Description: `[Copied ${source} from ${HOME}]`,
      Tags: [{ Key: 'CopyOf', Value: source }],
      Encrypted: false,
    });
    expect(sim.snapshotsIn(DEST)).toEqual([expect.objectContaining({
      snapshotId: out.SnapshotId,
      region: DEST,
      instanceId: instance(1).instanceId,
      sourceSnapshotId: source,
      sourceRegion: HOME,
      tags: { CopyOf: source },
    })]);
    expect((await list(HOME)).map((s) => s.SnapshotId)).toEqual([source]);
    expect(sim.calls[0]).toMatchObject({ action: 'CopySnapshot', region: DEST, status: 200, params: { SourceRegion: HOME, SourceSnapshotId: source } });
    expect(sim.countCalls('CopySnapshot')).toBe(1);
  });

  test('GIVEN a Description THEN the copy has it', async () => {
    await startSim();
    const source = seed();
    const id = await copy(source, { Description: 'DR copy' });
    expect(sim.snapshot(id)?.description).toBe('DR copy');
  });

  test('GIVEN the same call twice THEN there are two copies (CopySnapshot has no client token)', async () => {
    await startSim();
    const source = seed();

    const first = await copy(source);
    const second = await copy(source);

    expect(first).not.toBe(second);
    expect(sim.snapshotsIn(DEST).map((s) => s.snapshotId)).toEqual([first, second]);
  });

  test('GIVEN PresignedUrl and DestinationRegion THEN they are accepted and ignored', async () => {
    await startSim();
    const source = seed();
    const id = await copy(source, { PresignedUrl: 'https://ec2.us-east-1.amazonaws.com/?Action=CopySnapshot', DestinationRegion: DEST });
    expect(sim.snapshotsIn(DEST).map((s) => s.snapshotId)).toEqual([id]);
    expect(sim.calls[0].params).toMatchObject({ DestinationRegion: DEST });
  });

  test('GIVEN copyCompletionMs THEN a copy is pending, its progress rising, until that long after its start, then completed', async () => {
    await startSim({ copyCompletionMs: HOUR, snapshotCompletionMs: 10 * HOUR });
    const source = seed({ state: 'completed' });
    const id = await copy(source);

    const early = (await list(DEST))[0];
    nowMs += HOUR / 2;
    const halfway = (await list(DEST))[0];
    nowMs += HOUR / 2;
    const done = (await list(DEST))[0];

    expect([early.State, early.Progress, early.StartTime?.getTime()]).toEqual(['pending', '0%', T0]);
    expect([halfway.State, halfway.Progress]).toEqual(['pending', '50%']);
    expect([done.State, done.Progress]).toEqual(['completed', '100%']);
    expect(sim.snapshot(id)?.state).toBe('completed');
  });

  test('GIVEN the real clock and a small copyCompletionMs THEN the copy completes after a short wait', async () => {
    sim = new Ec2Simulator({ copyCompletionMs: 40 });
    await sim.start();
    const source = seed();
    const id = await copy(source);
    const before = sim.snapshot(id)?.state;

    await new Promise((r) => setTimeout(r, 60));

    expect(before).toBe('pending');
    expect((await list(DEST)).map((s) => s.State)).toEqual(['completed']);
  });

  test('GIVEN setSnapshotState on a copy THEN it fixes the copy\'s state', async () => {
    await startSim({ copyCompletionMs: HOUR });
    const id = await copy(seed());

    sim.setSnapshotState(id, 'error');
    nowMs += 2 * HOUR;

    expect((await list(DEST)).map((s) => s.State)).toEqual(['error']);
  });

  test('GIVEN copies of the snapshots of one set THEN setsByInstance in the destination groups them as one set of the source\'s instance', async () => {
    await startSim({ instances: [instance(1)] });
    const created = await ec2(HOME).send(new CreateSnapshotsCommand({ InstanceSpecification: { InstanceId: instance(1).instanceId } }));
    const copies = [];
    for (const s of created.Snapshots ?? []) copies.push(await copy(s.SnapshotId!));

    const sets = sim.setsByInstance(undefined, DEST);

    expect([...sets.keys()]).toEqual([instance(1).instanceId]);
    expect(sets.get(instance(1).instanceId)?.map((set) => set.map((s) => s.snapshotId))).toEqual([copies]);
    expect(sim.setsByInstance().get(instance(1).instanceId)).toHaveLength(1);
  });

  test('GIVEN CompletionDurationMinutes 15 or 2880 THEN the copy is time-based with that duration', async () => {
    await startSim();
    const source = seed();
    const quick = await copy(source, { CompletionDurationMinutes: 15 });
    const slow = await copy(source, { CompletionDurationMinutes: 2880 });

    const listed = await list(DEST);

    expect(listed.map((s) => [s.SnapshotId, s.TransferType, s.CompletionDurationMinutes])).toEqual([
      [quick, 'time-based', 15],
      [slow, 'time-based', 2880],
    ]);
    expect(sim.snapshot(quick)?.completionDurationMinutes).toBe(15);
  });

  describe('errors', () => {
    test.each<[string, Partial<CopySnapshotCommandInput>]>([
      ['CompletionDurationMinutes 10', { CompletionDurationMinutes: 10 }],
      ['CompletionDurationMinutes 20', { CompletionDurationMinutes: 20 }],
      ['CompletionDurationMinutes 2895', { CompletionDurationMinutes: 2895 }],
      ['CompletionDurationMinutes 0', { CompletionDurationMinutes: 0 }],
    ])('GIVEN %s THEN InvalidParameterValue (400) and no copy', async (_name, input) => {
      await startSim();
      const source = seed();

      const err = await serviceError(() => copy(source, input));

      expect([err.name, err.$metadata.httpStatusCode]).toEqual(['InvalidParameterValue', 400]);
      expect(sim.snapshotsIn(DEST)).toEqual([]);
    });

    test.each<[string, Partial<CopySnapshotCommandInput>]>([
      ['SourceRegion', { SourceRegion: undefined }],
      ['SourceSnapshotId', { SourceSnapshotId: undefined }],
    ])('GIVEN no %s THEN MissingParameter (400) and no copy', async (param, input) => {
      await startSim();
      const source = seed();

      // a PresignedUrl keeps the SDK from presigning, which needs the SourceRegion
      const err = await serviceError(() => copy(source, { PresignedUrl: 'https://example.com/', ...input }));

      expect([err.name, err.$metadata.httpStatusCode, err.message]).toEqual(['MissingParameter', 400, `The request must contain the parameter ${param}`]);
      expect(sim.snapshotsIn(DEST)).toEqual([]);
    });

    test('GIVEN an unknown source, or a source in another Region than SourceRegion THEN InvalidSnapshot.NotFound', async () => {
      await startSim();
      const inDest = seed({ region: DEST });

      const unknown = await serviceError(() => copy('snap-00000000000000000'));
      const wrongRegion = await serviceError(() => copy(inDest, {}, OTHER));

      expect([unknown.name, unknown.$metadata.httpStatusCode]).toEqual(['InvalidSnapshot.NotFound', 400]);
      expect(unknown.message).toBe('The snapshot \'snap-00000000000000000\' does not exist.');
      expect(wrongRegion.name).toBe('InvalidSnapshot.NotFound');
      expect(sim.snapshotsIn(OTHER)).toEqual([]);
    });

    test.each(['pending', 'error'] as const)('GIVEN a %s source THEN IncorrectState (400) and no copy', async (state) => {
      await startSim();
      const source = seed({ state });

      const err = await serviceError(() => copy(source));

      expect([err.name, err.$metadata.httpStatusCode, err.message]).toEqual(['IncorrectState', 400, `Snapshot is in invalid state - ${state}`]);
      expect(sim.snapshotsIn(DEST)).toEqual([]);
    });

    test.each<[string, Partial<SimSnapshotSeed>]>([
      ['an Outpost', { outpostArn: 'arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0' }],
      ['a Local Zone (location local)', { location: 'local' }],
    ])('GIVEN a source on %s THEN InvalidParameterCombination (400) and no copy', async (_name, extra) => {
      await startSim();
      const source = seed(extra);

      const err = await serviceError(() => copy(source));

      expect([err.name, err.$metadata.httpStatusCode]).toEqual(['InvalidParameterCombination', 400]);
      expect(sim.snapshotsIn(DEST)).toEqual([]);
    });

    test('GIVEN DryRun THEN DryRunOperation (412) and no copy', async () => {
      await startSim();
      const err = await serviceError(() => copy(seed(), { DryRun: true }));
      expect([err.name, err.$metadata.httpStatusCode]).toEqual(['DryRunOperation', 412]);
      expect(sim.snapshotsIn(DEST)).toEqual([]);
    });
  });

  describe('concurrent copies', () => {
    test('GIVEN 20 copies pending in the destination THEN the 21st is refused with ResourceLimitExceeded, and allowed once one completes', async () => {
      await startSim({ copyCompletionMs: HOUR });
      const source = seed();
      const first = await copy(source);
      nowMs += MINUTE;
      for (let k = 1; k < 20; k++) await copy(source);

      const refused = await serviceError(() => copy(source));
      nowMs = T0 + HOUR;
      const allowed = await copy(source);
      const again = await serviceError(() => copy(source));

      expect([refused.name, refused.$metadata.httpStatusCode]).toEqual(['ResourceLimitExceeded', 400]);
      expect(refused.message).toMatch(/^You have reached the limit of concurrent snapshot copies/);
      expect(sim.snapshot(first)?.state).toBe('completed');
      expect(allowed).toMatch(/^snap-/);
      expect(again.name).toBe('ResourceLimitExceeded');
      expect(sim.snapshotsIn(DEST).filter((s) => s.state === 'pending')).toHaveLength(20);
      expect(sim.snapshotsIn(DEST)).toHaveLength(21);
    });

    test('GIVEN maxConcurrentCopies 2 THEN the limit is per destination Region, and a copy completed or deleted frees a place', async () => {
      await startSim({ copyCompletionMs: HOUR, maxConcurrentCopies: 2 });
      const source = seed();
      const [a, b] = [await copy(source), await copy(source)];

      const full = await serviceError(() => copy(source));
      const elsewhere = await copy(source, {}, OTHER);
      sim.setSnapshotState(a, 'completed');
      const afterCompleted = await copy(source);
      await ec2(DEST).send(new DeleteSnapshotCommand({ SnapshotId: b }));
      const afterDeleted = await copy(source);

      expect(full.name).toBe('ResourceLimitExceeded');
      expect(sim.snapshotsIn(OTHER).map((s) => s.snapshotId)).toEqual([elsewhere]);
      expect(sim.snapshotsIn(DEST).map((s) => s.snapshotId)).toEqual([a, afterCompleted, afterDeleted]);
    });
  });

  test('GIVEN copySnapshotBucket THEN CopySnapshot answers RequestLimitExceeded (503) past its capacity, other actions unaffected', async () => {
    await startSim({ copySnapshotBucket: { capacity: 2, refillPerSec: 0.001 } });
    const source = seed();
    await copy(source);
    await copy(source);

    const throttled = await serviceError(() => copy(source));
    const listed = await list(DEST);

    expect([throttled.name, throttled.$metadata.httpStatusCode]).toEqual(['RequestLimitExceeded', 503]);
    expect(listed).toHaveLength(2);
    expect(sim.calls.map((c) => c.status)).toEqual([200, 200, 503, 200]);
  });

  test('GIVEN a fault rule with afterEffect THEN the copy is made and the answer is the fault', async () => {
    await startSim();
    const source = seed();
    const seen: string[] = [];
    sim.addFault(({ action, region, actionIndex }) => {
      seen.push(`${action}@${region}#${actionIndex}`);
      return action === 'CopySnapshot' && actionIndex === 0 ? { status: 500, code: 'InternalError', afterEffect: true } : undefined;
    });

    const fault = await serviceError(() => copy(source));

    expect([fault.name, fault.$metadata.httpStatusCode]).toEqual(['InternalError', 500]);
    expect(sim.snapshotsIn(DEST)).toHaveLength(1);
    expect(seen).toEqual([`CopySnapshot@${DEST}#0`]);
    expect(sim.calls[0]).toMatchObject({ action: 'CopySnapshot', status: 500, errorCode: 'InternalError' });
  });

  test('GIVEN a fault rule without afterEffect THEN no copy is made', async () => {
    await startSim();
    sim.addFault(({ action }) => (action === 'CopySnapshot' ? { status: 503, code: 'Unavailable' } : undefined));
    const err = await serviceError(() => copy(seed()));
    expect(err.name).toBe('Unavailable');
    expect(sim.snapshotsIn(DEST)).toEqual([]);
  });
});

describe('encryption', () => {
  test('GIVEN seeded snapshots THEN DescribeSnapshots answers Encrypted and KmsKeyId, and the encrypted filter selects by them', async () => {
    await startSim();
    const plain = seed();
    const managed = seed({ encrypted: true });
    const customer = seed({ encrypted: true, kmsKeyId: CMK });

    const listed = await list(HOME);
    const encrypted = await list(HOME, { Filters: [{ Name: 'encrypted', Values: ['true'] }] });

    expect(listed.map((s) => [s.SnapshotId, s.Encrypted, s.KmsKeyId])).toEqual([
      [plain, false, undefined],
      [managed, true, undefined],
      [customer, true, CMK],
    ]);
    expect(encrypted.map((s) => s.SnapshotId)).toEqual([managed, customer]);
  });

  test('GIVEN Encrypted, a KmsKeyId or an encrypted source THEN the copy is encrypted (with the given key); otherwise not', async () => {
    await startSim();
    const plain = seed();
    const encryptedSource = seed({ encrypted: true, kmsKeyId: CMK });
    const destKey = 'arn:aws:kms:eu-west-1:123456789012:key/abcd1234-12ab-34cd-56ef-1234567890ab';

    const ids = [
      await copy(plain),
      await copy(plain, { Encrypted: true }),
      await copy(plain, { Encrypted: true, KmsKeyId: destKey }),
      await copy(encryptedSource),
      await copy(encryptedSource, { Encrypted: true, KmsKeyId: destKey }),
    ];

    const byId = new Map((await list(DEST)).map((s) => [s.SnapshotId, [s.Encrypted, s.KmsKeyId]]));
    expect(ids.map((id) => byId.get(id))).toEqual([
      [false, undefined],
      [true, undefined],
      [true, destKey],
      [true, undefined],
      [true, destKey],
    ]);
    expect(sim.snapshot(ids[2])).toMatchObject({ encrypted: true, kmsKeyId: destKey });
  });
});

describe('sharing', () => {
  test('GIVEN CreateVolumePermission.Add and UserId with OperationType add THEN the snapshot is shared with those accounts', async () => {
    await startSim();
    const id = seed();

    await share(HOME, { SnapshotId: id, CreateVolumePermission: { Add: [{ UserId: PARTNER }] } });
    await share(HOME, { SnapshotId: id, OperationType: 'add', UserIds: [AUDIT, PARTNER] });

    expect(sim.sharedWith(id)).toEqual([PARTNER, AUDIT]);
    expect(sim.calls[0].params).toEqual({ 'SnapshotId': id, 'Attribute': 'createVolumePermission', 'CreateVolumePermission.Add.1.UserId': PARTNER });
    expect(sim.calls[1].params).toMatchObject({ 'OperationType': 'add', 'UserId.1': AUDIT, 'UserId.2': PARTNER });
    expect(sim.countCalls('ModifySnapshotAttribute')).toBe(2);
  });

  test('GIVEN Remove THEN the snapshot is no longer shared with that account', async () => {
    await startSim();
    const id = seed();
    await share(HOME, { SnapshotId: id, OperationType: 'add', UserIds: [PARTNER, AUDIT] });

    await share(HOME, { SnapshotId: id, CreateVolumePermission: { Remove: [{ UserId: PARTNER }] } });
    const viaOperation = sim.sharedWith(id);
    await share(HOME, { SnapshotId: id, OperationType: 'remove', UserIds: [AUDIT] });

    expect(viaOperation).toEqual([AUDIT]);
    expect(sim.sharedWith(id)).toEqual([]);
  });

  test('GIVEN DescribeSnapshotAttribute createVolumePermission THEN it lists the accounts the snapshot is shared with', async () => {
    await startSim();
    const id = seed();
    const before = await sharedWith(HOME, id);
    await share(HOME, { SnapshotId: id, OperationType: 'add', UserIds: [PARTNER, AUDIT] });

    const out = await ec2(HOME).send(new DescribeSnapshotAttributeCommand({ SnapshotId: id, Attribute: 'createVolumePermission' }));

    expect(before).toEqual([]);
    expect(out.SnapshotId).toBe(id);
    expect(out.CreateVolumePermissions).toEqual([{ UserId: PARTNER }, { UserId: AUDIT }]);
    expect(sim.countCalls('DescribeSnapshotAttribute')).toBe(2);
  });

  test.each<[string, Partial<SimSnapshotSeed>]>([
    ['encrypted with the default key (no KmsKeyId)', { encrypted: true }],
    ['encrypted with alias/aws/ebs', { encrypted: true, kmsKeyId: 'arn:aws:kms:us-east-1:123456789012:alias/aws/ebs' }],
  ])('GIVEN a snapshot %s THEN sharing it answers InvalidParameter (400) and shares nothing', async (_name, extra) => {
    await startSim();
    const id = seed(extra);

    const err = await serviceError(() => share(HOME, { SnapshotId: id, OperationType: 'add', UserIds: [PARTNER] }));

    expect([err.name, err.$metadata.httpStatusCode]).toEqual(['InvalidParameter', 400]);
    expect(sim.sharedWith(id)).toEqual([]);
    expect(await sharedWith(HOME, id)).toEqual([]);
  });

  test('GIVEN an unencrypted or customer-managed-key snapshot THEN it can be shared', async () => {
    await startSim();
    const plain = seed();
    const customer = seed({ encrypted: true, kmsKeyId: CMK });

    await share(HOME, { SnapshotId: plain, OperationType: 'add', UserIds: [PARTNER] });
    await share(HOME, { SnapshotId: customer, OperationType: 'add', UserIds: [PARTNER] });

    expect([sim.sharedWith(plain), sim.sharedWith(customer)]).toEqual([[PARTNER], [PARTNER]]);
  });

  test('GIVEN a copy in another Region THEN it is shared there, and from the source Region it is not found', async () => {
    await startSim();
    const id = await copy(seed());

    const fromHome = await serviceError(() => share(HOME, { SnapshotId: id, OperationType: 'add', UserIds: [PARTNER] }));
    const describeFromHome = await serviceError(() => sharedWith(HOME, id));
    await share(DEST, { SnapshotId: id, OperationType: 'add', UserIds: [PARTNER] });

    expect([fromHome.name, describeFromHome.name]).toEqual(['InvalidSnapshot.NotFound', 'InvalidSnapshot.NotFound']);
    expect(await sharedWith(DEST, id)).toEqual([PARTNER]);
  });

  test('GIVEN UserId without OperationType, a malformed account id or DryRun THEN ModifySnapshotAttribute is refused and shares nothing', async () => {
    await startSim();
    const id = seed();

    const noOperation = await serviceError(() => share(HOME, { SnapshotId: id, UserIds: [PARTNER] }));
    const malformed = await serviceError(() => share(HOME, { SnapshotId: id, OperationType: 'add', UserIds: ['partner'] }));
    const dry = await serviceError(() => share(HOME, { SnapshotId: id, OperationType: 'add', UserIds: [PARTNER], DryRun: true }));

    expect([noOperation.name, noOperation.$metadata.httpStatusCode]).toEqual(['MissingParameter', 400]);
    expect([malformed.name, malformed.$metadata.httpStatusCode]).toEqual(['InvalidUserID.Malformed', 400]);
    expect([dry.name, dry.$metadata.httpStatusCode]).toEqual(['DryRunOperation', 412]);
    expect(sim.sharedWith(id)).toEqual([]);
  });

  test('GIVEN a fault rule with afterEffect THEN the snapshot is shared and the answer is the fault', async () => {
    await startSim();
    const id = seed();
    sim.addFault(({ action }) => (action === 'ModifySnapshotAttribute' ? { status: 500, code: 'InternalError', afterEffect: true } : undefined));

    const fault = await serviceError(() => share(HOME, { SnapshotId: id, OperationType: 'add', UserIds: [PARTNER] }));

    expect(fault.name).toBe('InternalError');
    expect(sim.sharedWith(id)).toEqual([PARTNER]);
  });
});
