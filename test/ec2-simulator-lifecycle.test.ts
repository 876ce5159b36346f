/**
 * The simulator's snapshot lifecycle: snapshot states, seeding, DeleteSnapshot, LockSnapshot,
 * DescribeLockedSnapshots, DescribeImages and CreateSnapshots' Location, through a real EC2Client.
 */
import {
  CreateSnapshotsCommand,
  CreateSnapshotsCommandInput,
  DeleteSnapshotCommand,
  DescribeImagesCommand,
  DescribeImagesCommandInput,
  DescribeLockedSnapshotsCommand,
  DescribeSnapshotsCommand,
  DescribeSnapshotsCommandInput,
  EC2Client,
  EC2ServiceException,
  LockSnapshotCommand,
  LockSnapshotCommandInput,
  Snapshot,
} from '@aws-sdk/client-ec2';
import { Ec2Simulator, Ec2SimulatorOptions, SimInstance, SimSnapshotSeed } from './support/ec2-simulator';

const CREDENTIALS = { accessKeyId: 'AKID', secretAccessKey: 'SECRET' };
const ACCOUNT = '123456789012';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.parse('2025-03-01T00:00:00.000Z');

let sim: Ec2Simulator;
let ec2: EC2Client;
/** the simulator's clock (tests that pass `clock: () => nowMs` move it forward) */
let nowMs = T0;

function instance(n: number, extra: Partial<SimInstance> = {}): SimInstance {
  const id = n.toString(16).padStart(17, '0');
  return { instanceId: `i-${id}`, volumeIds: [`vol-${id}a`, `vol-${id}b`, `vol-${id}c`], ...extra };
}

/** A simulator on the test clock and a client without retries. */
async function startSim(options: Ec2SimulatorOptions = {}): Promise<Ec2Simulator> {
  nowMs = T0;
  sim = new Ec2Simulator({ clock: () => nowMs, perVolumeIntervalMs: 0, ...options });
  await sim.start();
  ec2 = new EC2Client({ endpoint: sim.endpoint, region: 'us-east-1', credentials: CREDENTIALS, maxAttempts: 1 });
  return sim;
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

async function create(input: Partial<CreateSnapshotsCommandInput> = {}, n = 1): Promise<string[]> {
  const out = await ec2.send(new CreateSnapshotsCommand({ InstanceSpecification: { InstanceId: instance(n).instanceId }, ...input }));
  return (out.Snapshots ?? []).map((s) => s.SnapshotId!);
}

async function listSnapshots(input: DescribeSnapshotsCommandInput = {}): Promise<Snapshot[]> {
  return (await ec2.send(new DescribeSnapshotsCommand(input))).Snapshots ?? [];
}

async function lock(input: Omit<LockSnapshotCommandInput, 'LockMode'> & { LockMode?: LockSnapshotCommandInput['LockMode'] }) {
  return ec2.send(new LockSnapshotCommand({ LockMode: 'governance', ...input }));
}

/** `count` seeded snapshots of instance 1's first volume, tagged `Set`, one hour apart. */
function seeds(count: number, tags: Record<string, string> = {}): SimSnapshotSeed[] {
  return Array.from({ length: count }, (_, k) => ({
    volumeId: instance(1).volumeIds[0],
    instanceId: instance(1).instanceId,
    startTimeMs: T0 - (count - k) * HOUR,
    tags: { Set: `s${k}`, ...tags },
  }));
}

afterEach(async () => {
  ec2?.destroy();
  await sim?.stop();
});

describe('snapshot state', () => {
  test('GIVEN snapshotCompletionMs THEN a new snapshot is pending, its progress rising, until that long after its start, then completed', async () => {
    await startSim({ instances: [instance(1)], snapshotCompletionMs: 10 * 60_000 });
    const [id] = await create();

    const early = (await listSnapshots({ SnapshotIds: [id] }))[0];
    nowMs += 5 * 60_000;
    const halfway = (await listSnapshots({ SnapshotIds: [id] }))[0];
    nowMs += 5 * 60_000;
    const done = (await listSnapshots({ SnapshotIds: [id] }))[0];

    expect([early.State, early.Progress]).toEqual(['pending', '0%']);
    expect([halfway.State, halfway.Progress]).toEqual(['pending', '50%']);
    expect([done.State, done.Progress]).toEqual(['completed', '100%']);
    expect(sim.snapshot(id)).toMatchObject({ state: 'completed', progress: '100%' });
  });

  test('GIVEN the real clock and a small snapshotCompletionMs THEN the snapshot completes after a short wait', async () => {
    sim = new Ec2Simulator({ instances: [instance(1)], snapshotCompletionMs: 40 });
    await sim.start();
    ec2 = new EC2Client({ endpoint: sim.endpoint, region: 'us-east-1', credentials: CREDENTIALS, maxAttempts: 1 });
    await create();
    const before = sim.snapshots.map((s) => s.state);

    await new Promise((r) => setTimeout(r, 60));

    expect(before).toEqual(['pending', 'pending', 'pending']);
    expect((await listSnapshots()).map((s) => s.State)).toEqual(['completed', 'completed', 'completed']);
  });

  test('GIVEN no snapshotCompletionMs THEN snapshots are completed at once (as before)', async () => {
    await startSim({ instances: [instance(1)] });
    const ids = await create();
    expect((await listSnapshots()).map((s) => [s.SnapshotId, s.State, s.Progress])).toEqual(ids.map((id) => [id, 'completed', '100%']));
  });

  test('GIVEN snapshots in each state THEN the status filter selects by state', async () => {
    await startSim({ instances: [instance(1)], snapshotCompletionMs: HOUR });
    const [a, b, c] = await create();
    sim.setSnapshotState(b, 'completed');
    sim.setSnapshotState(c, 'error');

    const ids = async (status: string[]) => (await listSnapshots({ Filters: [{ Name: 'status', Values: status }] })).map((s) => s.SnapshotId);

    expect(await ids(['pending'])).toEqual([a]);
    expect(await ids(['completed'])).toEqual([b]);
    expect(await ids(['error'])).toEqual([c]);
    expect(await ids(['pending', 'error'])).toEqual([a, c]);
  });

  test('GIVEN setSnapshotState pending THEN the snapshot stays pending past its completion time', async () => {
    await startSim({ instances: [instance(1)], snapshotCompletionMs: 1000 });
    const [id] = await create();
    sim.setSnapshotState(id, 'completed');
    sim.setSnapshotState(id, 'pending');
    nowMs += DAY;
    expect((await listSnapshots({ SnapshotIds: [id] }))[0].State).toBe('pending');
  });
});

describe('DescribeSnapshots', () => {
  test('GIVEN Owner self, the account id or another account THEN only the first two list the snapshots', async () => {
    await startSim({ instances: [instance(1)] });
    await create();

    expect(await listSnapshots({ OwnerIds: ['self'] })).toHaveLength(3);
    expect(await listSnapshots({ OwnerIds: [ACCOUNT] })).toHaveLength(3);
    expect(await listSnapshots({ OwnerIds: ['amazon'] })).toHaveLength(0);
    expect(await listSnapshots({ OwnerIds: ['999999999999', 'self'] })).toHaveLength(3);
    expect(await listSnapshots({ Filters: [{ Name: 'owner-id', Values: ['999999999999'] }] })).toHaveLength(0);
    expect(sim.calls[1].params['Owner.1']).toBe('self');
  });

  test('GIVEN 2,500 seeded snapshots THEN MaxResults 1000 pages them 1000, 1000, 500 in seeding order; a larger MaxResults answers 1000', async () => {
    await startSim();
    const seeded = sim.seedSnapshots(seeds(2500));

    const pages: Snapshot[][] = [];
    let token: string | undefined;
    do {
      const out = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], MaxResults: 1000, NextToken: token }));
      pages.push(out.Snapshots ?? []);
      token = out.NextToken;
    } while (token !== undefined);
    const capped = await ec2.send(new DescribeSnapshotsCommand({ MaxResults: 5000 }));

    expect(pages.map((p) => p.length)).toEqual([1000, 1000, 500]);
    expect(pages.flat().map((s) => s.SnapshotId)).toEqual(seeded.map((s) => s.snapshotId));
    expect(capped.Snapshots).toHaveLength(1000);
    expect(capped.NextToken).toBeDefined();
  });

  test('GIVEN snapshots deleted between two pages THEN the next page goes on after the last one answered, skipping none', async () => {
    await startSim();
    const seeded = sim.seedSnapshots(seeds(20)).map((s) => s.snapshotId);
    const first = await ec2.send(new DescribeSnapshotsCommand({ MaxResults: 5 }));
    for (const id of [...seeded.slice(0, 5), seeded[6]]) {
      await ec2.send(new DeleteSnapshotCommand({ SnapshotId: id }));
    }

    const second = await ec2.send(new DescribeSnapshotsCommand({ MaxResults: 5, NextToken: first.NextToken }));

    expect(first.Snapshots?.map((s) => s.SnapshotId)).toEqual(seeded.slice(0, 5));
    expect(second.Snapshots?.map((s) => s.SnapshotId)).toEqual([seeded[5], ...seeded.slice(7, 11)]);
  });

  test('GIVEN SnapshotIds and a tag filter the snapshot does not match THEN the answer is empty, not NotFound', async () => {
    await startSim();
    const [a, b] = sim.seedSnapshots(seeds(2)).map((s) => s.snapshotId);

    const out = await listSnapshots({ SnapshotIds: [a, b], Filters: [{ Name: 'tag:Set', Values: ['s1'] }] });

    expect(out.map((s) => s.SnapshotId)).toEqual([b]);
  });

  test('GIVEN a snapshot-id filter THEN it selects those snapshots (and ignores unknown ids)', async () => {
    await startSim();
    const ids = sim.seedSnapshots(seeds(10)).map((s) => s.snapshotId);
    const out = await listSnapshots({ Filters: [{ Name: 'snapshot-id', Values: [ids[7], 'snap-00000000000000000', ids[2]] }], MaxResults: 1000 });
    expect(out.map((s) => s.SnapshotId)).toEqual([ids[2], ids[7]]);
  });
});

describe('seedSnapshots', () => {
  test('GIVEN given and generated ids THEN both are stored as given, listed with their tags, state and start time', async () => {
    await startSim();
    const [given, generated, failed] = sim.seedSnapshots([
      { snapshotId: 'snap-0000000000000000a', volumeId: 'vol-1', instanceId: 'i-1', startTimeMs: T0 - DAY, tags: { A: '1' }, description: 'old' },
      { volumeId: 'vol-2', instanceId: 'i-1' },
      { volumeId: 'vol-3', instanceId: 'i-1', state: 'error' },
    ]);

    const listed = await listSnapshots();

    expect(given.snapshotId).toBe('snap-0000000000000000a');
    expect(generated.snapshotId).toMatch(/^snap-[0-9a-f]{17}$/);
    expect(listed.map((s) => [s.SnapshotId, s.State, s.StartTime?.getTime()])).toEqual([
      [given.snapshotId, 'completed', T0 - DAY],
      [generated.snapshotId, 'completed', T0],
      [failed.snapshotId, 'error', T0],
    ]);
    expect(listed[0]).toMatchObject({ Description: 'old', Tags: [{ Key: 'A', Value: '1' }], VolumeId: 'vol-1' });
    expect(() => sim.seedSnapshots([{ snapshotId: given.snapshotId, volumeId: 'vol-1', instanceId: 'i-1' }])).toThrow(/duplicate snapshot/);
  });

  test('GIVEN snapshotCompletionMs THEN a seeded snapshot without a state is pending only if it started less than that long ago', async () => {
    await startSim({ snapshotCompletionMs: HOUR });
    const [old, recent] = sim.seedSnapshots([
      { volumeId: 'vol-1', instanceId: 'i-1', startTimeMs: T0 - 2 * HOUR },
      { volumeId: 'vol-1', instanceId: 'i-1', startTimeMs: T0 - HOUR / 2 },
    ]);

    const seeded = [old.state, recent.state];
    const before = (await listSnapshots()).map((s) => s.State);
    nowMs += HOUR / 2;
    const after = (await listSnapshots()).map((s) => s.State);

    expect(seeded).toEqual(['completed', 'pending']);
    expect(before).toEqual(['completed', 'pending']);
    expect(after).toEqual(['completed', 'completed']);
  });

  test('GIVEN 210,000 seeded snapshots (10,000 instances x 3 volumes x 7 sets) THEN tag filters page through only the matching ones', async () => {
    await startSim();
    const all: SimSnapshotSeed[] = [];
    for (let set = 0; set < 7; set++) {
      for (let i = 0; i < 10_000; i++) {
        for (let v = 0; v < 3; v++) {
          all.push({
            volumeId: `vol-${i}-${v}`,
            instanceId: `i-${i}`,
            startTimeMs: T0 - (7 - set) * DAY,
            tags: { Schedule: 'nightly', Set: `set-${set}`, Instance: `i-${i}` },
          });
        }
      }
    }

    sim.seedSnapshots(all);
    const firstPage = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], MaxResults: 1000, Filters: [{ Name: 'tag:Set', Values: ['set-3'] }] }));
    const oneInstance = await listSnapshots({ Filters: [{ Name: 'tag:Schedule', Values: ['nightly'] }, { Name: 'tag:Instance', Values: ['i-42', 'i-4242'] }] });

    expect(sim.snapshots).toHaveLength(210_000);
    expect(new Set(sim.snapshots.map((s) => s.snapshotId)).size).toBe(210_000);
    expect(firstPage.Snapshots).toHaveLength(1000);
    expect(firstPage.Snapshots?.every((s) => s.Tags?.some((t) => t.Key === 'Set' && t.Value === 'set-3'))).toBe(true);
    expect(firstPage.NextToken).toBeDefined();
    expect(oneInstance).toHaveLength(2 * 3 * 7);
    expect(sim.setsByInstance().get('i-42')?.map((set) => set.length)).toEqual([3, 3, 3, 3, 3, 3, 3]);
  });
});

describe('DeleteSnapshot', () => {
  test('GIVEN a snapshot THEN DeleteSnapshot removes it from every listing at once and records the deletion', async () => {
    await startSim({ instances: [instance(1)] });
    const [a, b, c] = await create({ TagSpecifications: [{ ResourceType: 'snapshot', Tags: [{ Key: 'Set', Value: 's1' }] }] });
    nowMs += 1000;

    const out = await ec2.send(new DeleteSnapshotCommand({ SnapshotId: b }));

    expect(out.$metadata.httpStatusCode).toBe(200);
    expect((await listSnapshots({ Filters: [{ Name: 'tag:Set', Values: ['s1'] }] })).map((s) => s.SnapshotId)).toEqual([a, c]);
    expect((await listSnapshots()).map((s) => s.SnapshotId)).toEqual([a, c]);
    expect((await serviceError(() => listSnapshots({ SnapshotIds: [b] }))).name).toBe('InvalidSnapshot.NotFound');
    expect(sim.snapshots.map((s) => s.snapshotId)).toEqual([a, c]);
    expect(sim.snapshot(b)).toBeUndefined();
    expect(sim.deletedSnapshotIds()).toEqual([b]);
    expect(sim.deletions).toEqual([
      { snapshotId: b, atMs: T0 + 1000, snapshot: expect.objectContaining({ snapshotId: b, volumeId: instance(1).volumeIds[1] }) },
    ]);
    expect(sim.setsByInstance().get(instance(1).instanceId)?.map((set) => set.map((s) => s.snapshotId))).toEqual([[a, c]]);
    expect(sim.calls[1].params).toEqual({ SnapshotId: b });
    expect(sim.countCalls('DeleteSnapshot')).toBe(1);
  });

  test('GIVEN an unknown or already deleted snapshot THEN DeleteSnapshot answers InvalidSnapshot.NotFound (400)', async () => {
    await startSim();
    const [id] = sim.seedSnapshots(seeds(1)).map((s) => s.snapshotId);
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: id }));

    const again = await serviceError(() => ec2.send(new DeleteSnapshotCommand({ SnapshotId: id })));
    const unknown = await serviceError(() => ec2.send(new DeleteSnapshotCommand({ SnapshotId: 'snap-00000000000000000' })));

    expect([again.name, again.$metadata.httpStatusCode, again.message]).toEqual(['InvalidSnapshot.NotFound', 400, `The snapshot '${id}' does not exist.`]);
    expect(unknown.name).toBe('InvalidSnapshot.NotFound');
    expect(sim.deletedSnapshotIds()).toEqual([id]);
  });

  test('GIVEN a snapshot backing a registered image THEN DeleteSnapshot answers InvalidSnapshot.InUse until the image is deregistered', async () => {
    await startSim();
    const [root, data] = sim.seedSnapshots(seeds(2)).map((s) => s.snapshotId);
    const ami = sim.registerImage([root, data]);

    const inUse = await serviceError(() => ec2.send(new DeleteSnapshotCommand({ SnapshotId: data })));
    sim.deregisterImage(ami);
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: data }));

    expect(ami).toMatch(/^ami-[0-9a-f]{17}$/);
    expect([inUse.name, inUse.$metadata.httpStatusCode]).toEqual(['InvalidSnapshot.InUse', 400]);
    expect(inUse.message).toBe(`The snapshot ${data} is currently in use by ${ami}`);
    expect(sim.deletedSnapshotIds()).toEqual([data]);
  });

  test('GIVEN a locked snapshot THEN DeleteSnapshot is refused (SnapshotLocked, 400) until the lock expires', async () => {
    await startSim();
    const [id] = sim.seedSnapshots(seeds(1)).map((s) => s.snapshotId);
    await lock({ SnapshotId: id, LockDuration: 1 });

    const locked = await serviceError(() => ec2.send(new DeleteSnapshotCommand({ SnapshotId: id })));
    nowMs += DAY;
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: id }));

    expect([locked.name, locked.$metadata.httpStatusCode]).toEqual(['SnapshotLocked', 400]);
    expect(sim.deletedSnapshotIds()).toEqual([id]);
  });

  test('GIVEN DryRun THEN DeleteSnapshot answers DryRunOperation (412) and deletes nothing', async () => {
    await startSim();
    const [id] = sim.seedSnapshots(seeds(1)).map((s) => s.snapshotId);

    const dry = await serviceError(() => ec2.send(new DeleteSnapshotCommand({ SnapshotId: id, DryRun: true })));

    expect([dry.name, dry.$metadata.httpStatusCode]).toEqual(['DryRunOperation', 412]);
    expect(sim.snapshot(id)).toBeDefined();
    expect(sim.deletions).toEqual([]);
  });

  test('GIVEN deleteSnapshotBucket THEN DeleteSnapshot answers RequestLimitExceeded (503) past its capacity, apart from CreateSnapshots\' bucket', async () => {
    await startSim({
      instances: [instance(1)],
      deleteSnapshotBucket: { capacity: 3, refillPerSec: 0.001 },
      createSnapshotsBucket: { capacity: 1, refillPerSec: 0.001 },
    });
    const ids = sim.seedSnapshots(seeds(4)).map((s) => s.snapshotId);
    for (const id of ids.slice(0, 3)) {
      await ec2.send(new DeleteSnapshotCommand({ SnapshotId: id }));
    }

    const throttled = await serviceError(() => ec2.send(new DeleteSnapshotCommand({ SnapshotId: ids[3] })));
    const created = await create();

    expect([throttled.name, throttled.$metadata.httpStatusCode, throttled.$metadata.attempts]).toEqual(['RequestLimitExceeded', 503, 1]);
    expect(created).toHaveLength(3);
    expect(sim.deletedSnapshotIds()).toEqual(ids.slice(0, 3));
    expect(sim.calls.map((c) => c.status)).toEqual([200, 200, 200, 503, 200]);
  });

  test('GIVEN a fault rule with afterEffect THEN the snapshot is deleted and the answer is the fault', async () => {
    await startSim();
    const [id] = sim.seedSnapshots(seeds(1)).map((s) => s.snapshotId);
    sim.addFault(({ action, actionIndex }) => (action === 'DeleteSnapshot' && actionIndex === 0 ? { status: 500, code: 'InternalError', afterEffect: true } : undefined));

    const fault = await serviceError(() => ec2.send(new DeleteSnapshotCommand({ SnapshotId: id })));
    const retry = await serviceError(() => ec2.send(new DeleteSnapshotCommand({ SnapshotId: id })));

    expect([fault.name, fault.$metadata.httpStatusCode]).toEqual(['InternalError', 500]);
    expect(retry.name).toBe('InvalidSnapshot.NotFound');
    expect(sim.deletedSnapshotIds()).toEqual([id]);
  });
});

describe('LockSnapshot', () => {
  const future = new Date(T0 + 10 * DAY);
  test.each<[string, Partial<LockSnapshotCommandInput>]>([
    ['both LockDuration and ExpirationDate', { LockDuration: 1, ExpirationDate: future }],
    ['neither LockDuration nor ExpirationDate', {}],
    ['LockDuration 0', { LockDuration: 0 }],
    ['LockDuration 36,501', { LockDuration: 36_501 }],
    ['an ExpirationDate in the past', { ExpirationDate: new Date(T0 - 1000) }],
    ['CoolOffPeriod in governance mode', { LockDuration: 1, CoolOffPeriod: 1 }],
    ['CoolOffPeriod 0', { LockMode: 'compliance', LockDuration: 1, CoolOffPeriod: 0 }],
    ['CoolOffPeriod 73', { LockMode: 'compliance', LockDuration: 1, CoolOffPeriod: 73 }],
    ['an unknown LockMode', { LockMode: 'strict' as LockSnapshotCommandInput['LockMode'], LockDuration: 1 }],
  ])('GIVEN %s THEN LockSnapshot answers InvalidParameterValue (400) and locks nothing', async (_name, input) => {
    await startSim();
    const [id] = sim.seedSnapshots(seeds(1)).map((s) => s.snapshotId);

    const err = await serviceError(() => lock({ SnapshotId: id, ...input }));

    expect([err.name, err.$metadata.httpStatusCode]).toEqual(['InvalidParameterValue', 400]);
    expect(sim.snapshotLock(id)).toBeUndefined();
  });

  test('GIVEN the limits (LockDuration 36,500, CoolOffPeriod 72) THEN LockSnapshot accepts them', async () => {
    await startSim();
    const [a, b] = sim.seedSnapshots(seeds(2)).map((s) => s.snapshotId);
    await lock({ SnapshotId: a, LockDuration: 36_500 });
    await lock({ SnapshotId: b, LockMode: 'compliance', LockDuration: 4, CoolOffPeriod: 72 });
    expect([sim.snapshotLock(a)?.lockState, sim.snapshotLock(b)?.lockState]).toEqual(['governance', 'compliance-cooloff']);
  });

  test('GIVEN an unknown snapshot THEN LockSnapshot answers InvalidSnapshot.NotFound', async () => {
    await startSim();
    const err = await serviceError(() => lock({ SnapshotId: 'snap-00000000000000000', LockDuration: 1 }));
    expect([err.name, err.$metadata.httpStatusCode]).toEqual(['InvalidSnapshot.NotFound', 400]);
  });

  test('GIVEN a governance lock on a completed snapshot THEN the answer has its state, duration and times, counted from now', async () => {
    await startSim();
    const [id] = sim.seedSnapshots(seeds(1)).map((s) => s.snapshotId);

    const out = await lock({ SnapshotId: id, LockDuration: 7 });

    expect(out).toMatchObject({
      SnapshotId: id,
      LockState: 'governance',
      LockDuration: 7,
      LockCreatedOn: new Date(T0),
      LockDurationStartTime: new Date(T0),
      LockExpiresOn: new Date(T0 + 7 * DAY),
    });
    expect(out.CoolOffPeriod).toBeUndefined();
    expect(sim.calls[0].params).toEqual({ SnapshotId: id, LockMode: 'governance', LockDuration: '7' });
  });

  test('GIVEN a compliance lock with a cool-off THEN its state goes compliance-cooloff, compliance, expired as time passes', async () => {
    await startSim();
    const [id] = sim.seedSnapshots(seeds(1)).map((s) => s.snapshotId);
    const state = async () => (await ec2.send(new DescribeLockedSnapshotsCommand({ SnapshotIds: [id] }))).Snapshots?.[0].LockState;

    const out = await lock({ SnapshotId: id, LockMode: 'compliance', LockDuration: 2, CoolOffPeriod: 3 });
    const inCoolOff = await state();
    nowMs += 3 * HOUR;
    const afterCoolOff = await state();
    nowMs = T0 + 2 * DAY;
    const afterExpiry = await state();

    expect(out).toMatchObject({ LockState: 'compliance-cooloff', CoolOffPeriod: 3, CoolOffPeriodExpiresOn: new Date(T0 + 3 * HOUR), LockExpiresOn: new Date(T0 + 2 * DAY) });
    expect([inCoolOff, afterCoolOff, afterExpiry]).toEqual(['compliance-cooloff', 'compliance', 'expired']);
  });

  test('GIVEN a compliance lock after its cool-off THEN it can be lengthened but not shortened nor turned into governance', async () => {
    await startSim();
    const [id] = sim.seedSnapshots(seeds(1)).map((s) => s.snapshotId);
    await lock({ SnapshotId: id, LockMode: 'compliance', LockDuration: 10 });

    const shorter = await serviceError(() => lock({ SnapshotId: id, LockMode: 'compliance', LockDuration: 5 }));
    const governance = await serviceError(() => lock({ SnapshotId: id, LockMode: 'governance', LockDuration: 20 }));
    const longer = await lock({ SnapshotId: id, LockMode: 'compliance', LockDuration: 20 });

    expect([shorter.name, governance.name]).toEqual(['InvalidParameterValue', 'InvalidParameterValue']);
    expect(longer).toMatchObject({ LockState: 'compliance', LockExpiresOn: new Date(T0 + 20 * DAY) });
  });

  test('GIVEN a governance lock THEN it can be shortened or changed', async () => {
    await startSim();
    const [id] = sim.seedSnapshots(seeds(1)).map((s) => s.snapshotId);
    await lock({ SnapshotId: id, LockDuration: 10 });
    const out = await lock({ SnapshotId: id, LockDuration: 1 });
    expect(out.LockExpiresOn).toEqual(new Date(T0 + DAY));
  });

  test('GIVEN an ExpirationDate THEN the lock expires then and has no duration', async () => {
    await startSim();
    const [id] = sim.seedSnapshots(seeds(1)).map((s) => s.snapshotId);
    const until = new Date(T0 + 3 * DAY);

    const out = await lock({ SnapshotId: id, ExpirationDate: until });

    expect(out).toMatchObject({ LockState: 'governance', LockExpiresOn: until });
    expect(out.LockDuration).toBeUndefined();
    expect(Date.parse(sim.calls[0].params.ExpirationDate)).toBe(until.getTime());
  });

  test('GIVEN a pending snapshot THEN it can be locked, its duration starting only when it completes, and it cannot be deleted meanwhile', async () => {
    await startSim({ instances: [instance(1)], snapshotCompletionMs: HOUR });
    const [id] = await create();

    const out = await lock({ SnapshotId: id, LockDuration: 1 });
    const deleteWhilePending = await serviceError(() => ec2.send(new DeleteSnapshotCommand({ SnapshotId: id })));
    nowMs += 2 * HOUR;
    const later = (await ec2.send(new DescribeLockedSnapshotsCommand({ SnapshotIds: [id] }))).Snapshots?.[0];

    expect(out.LockState).toBe('governance');
    expect(out.LockDurationStartTime).toBeUndefined();
    expect(out.LockExpiresOn).toBeUndefined();
    expect(deleteWhilePending.name).toBe('SnapshotLocked');
    expect(later).toMatchObject({
      LockDurationStartTime: new Date(T0 + HOUR),
      LockExpiresOn: new Date(T0 + HOUR + DAY),
      LockCreatedOn: new Date(T0),
    });
  });

  test('GIVEN a snapshot in error THEN it cannot be locked, and a pending snapshot\'s lock is cancelled when it fails', async () => {
    await startSim({ instances: [instance(1)], snapshotCompletionMs: HOUR });
    const [failed, pending] = await create();
    sim.setSnapshotState(failed, 'error');
    await lock({ SnapshotId: pending, LockDuration: 1 });

    const err = await serviceError(() => lock({ SnapshotId: failed, LockDuration: 1 }));
    sim.setSnapshotState(pending, 'error');

    expect(err.name).toBe('IncorrectState');
    expect(sim.snapshotLock(pending)).toBeUndefined();
  });

  test('GIVEN setSnapshotLock THEN the lock is in force without a LockSnapshot call, and removing it allows the delete', async () => {
    await startSim();
    const [{ snapshotId: id }] = sim.seedSnapshots([{ volumeId: 'vol-1', instanceId: 'i-1', startTimeMs: T0 - 2 * DAY }]);
    sim.setSnapshotLock(id, { mode: 'compliance', lockDurationDays: 30, createdOnMs: T0 - DAY });

    const refused = await serviceError(() => ec2.send(new DeleteSnapshotCommand({ SnapshotId: id })));
    const seen = sim.snapshotLock(id);
    sim.setSnapshotLock(id, undefined);
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: id }));

    expect(refused.name).toBe('SnapshotLocked');
    expect(seen).toMatchObject({ lockState: 'compliance', lockCreatedOnMs: T0 - DAY, lockExpiresOnMs: T0 + 29 * DAY });
    expect(sim.countCalls('LockSnapshot')).toBe(0);
    expect(sim.deletedSnapshotIds()).toEqual([id]);
  });

  test('GIVEN DryRun THEN LockSnapshot answers DryRunOperation and locks nothing', async () => {
    await startSim();
    const [id] = sim.seedSnapshots(seeds(1)).map((s) => s.snapshotId);
    const dry = await serviceError(() => lock({ SnapshotId: id, LockDuration: 1, DryRun: true }));
    expect([dry.name, dry.$metadata.httpStatusCode]).toEqual(['DryRunOperation', 412]);
    expect(sim.snapshotLock(id)).toBeUndefined();
  });
});

describe('DescribeLockedSnapshots', () => {
  test('GIVEN SnapshotIds THEN it lists their locks, leaves out snapshots without one, and an unknown id answers InvalidSnapshot.NotFound', async () => {
    await startSim();
    const [a, b, c] = sim.seedSnapshots(seeds(3)).map((s) => s.snapshotId);
    await lock({ SnapshotId: c, LockMode: 'compliance', LockDuration: 3, CoolOffPeriod: 1 });
    await lock({ SnapshotId: a, LockDuration: 1 });

    const out = await ec2.send(new DescribeLockedSnapshotsCommand({ SnapshotIds: [c, b, a] }));
    const unknown = await serviceError(() => ec2.send(new DescribeLockedSnapshotsCommand({ SnapshotIds: [a, 'snap-00000000000000000'] })));

    expect(out.Snapshots).toEqual([
      {
        OwnerId: ACCOUNT,
        SnapshotId: a,
        LockState: 'governance',
        LockDuration: 1,
        LockCreatedOn: new Date(T0),
        LockDurationStartTime: new Date(T0),
        LockExpiresOn: new Date(T0 + DAY),
      },
      {
        OwnerId: ACCOUNT,
        SnapshotId: c,
        LockState: 'compliance-cooloff',
        LockDuration: 3,
        CoolOffPeriod: 1,
        CoolOffPeriodExpiresOn: new Date(T0 + HOUR),
        LockCreatedOn: new Date(T0),
        LockDurationStartTime: new Date(T0),
        LockExpiresOn: new Date(T0 + 3 * DAY),
      },
    ]);
    expect(sim.calls[2].params).toEqual({ 'SnapshotId.1': c, 'SnapshotId.2': b, 'SnapshotId.3': a });
    expect([unknown.name, unknown.$metadata.httpStatusCode]).toEqual(['InvalidSnapshot.NotFound', 400]);
  });

  test('GIVEN locks in several states THEN the lock-state filter selects by state, and pages follow MaxResults/NextToken', async () => {
    await startSim();
    const ids = sim.seedSnapshots(seeds(12)).map((s) => s.snapshotId);
    for (const id of ids.slice(0, 8)) await lock({ SnapshotId: id, LockDuration: 1 });
    for (const id of ids.slice(8, 10)) await lock({ SnapshotId: id, LockMode: 'compliance', LockDuration: 30, CoolOffPeriod: 48 });
    nowMs += DAY + 1;
    const list = async (states: string[]) => {
      const found: string[] = [];
      let token: string | undefined;
      do {
        const out = await ec2.send(new DescribeLockedSnapshotsCommand({ Filters: [{ Name: 'lock-state', Values: states }], MaxResults: 5, NextToken: token }));
        found.push(...(out.Snapshots ?? []).map((s) => s.SnapshotId!));
        token = out.NextToken;
      } while (token !== undefined);
      return found;
    };

    expect(await list(['expired'])).toEqual(ids.slice(0, 8));
    expect(await list(['compliance-cooloff'])).toEqual(ids.slice(8, 10));
    expect(await list(['governance', 'compliance'])).toEqual([]);
    expect(sim.countCalls('DescribeLockedSnapshots')).toBe(2 + 1 + 1);
  });

  test('GIVEN a locked snapshot deleted after its lock expired THEN it is no longer listed', async () => {
    await startSim();
    const [id] = sim.seedSnapshots(seeds(1)).map((s) => s.snapshotId);
    await lock({ SnapshotId: id, LockDuration: 1 });
    nowMs += DAY;
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: id }));
    expect((await ec2.send(new DescribeLockedSnapshotsCommand({}))).Snapshots ?? []).toEqual([]);
  });
});

describe('DescribeImages', () => {
  test('GIVEN registered images THEN the block-device-mapping.snapshot-id filter finds the images using a snapshot', async () => {
    await startSim();
    const [a, b, c] = sim.seedSnapshots(seeds(3)).map((s) => s.snapshotId);
    const ami1 = sim.registerImage([a, b]);
    const ami2 = sim.registerImage([c]);

    const byB = await ec2.send(new DescribeImagesCommand({
      Owners: ['self'],
      Filters: [{ Name: 'block-device-mapping.snapshot-id', Values: [b] }],
      IncludeDeprecated: true,
      IncludeDisabled: true,
    }));

    expect(byB.Images).toHaveLength(1);
    expect(byB.Images?.[0]).toMatchObject({
      ImageId: ami1,
      OwnerId: ACCOUNT,
      State: 'available',
      RootDeviceName: '/dev/xvda',
      BlockDeviceMappings: [
        { DeviceName: '/dev/xvda', Ebs: { SnapshotId: a } },
        { DeviceName: '/dev/sdf', Ebs: { SnapshotId: b } },
      ],
    });
    expect(sim.calls[0].params).toMatchObject({ 'Owner.1': 'self', 'IncludeDeprecated': 'true', 'IncludeDisabled': 'true' });
    expect(sim.images.map((i) => i.imageId)).toEqual([ami1, ami2]);
  });

  test('GIVEN ImageIds, other owners, unknown and deregistered images THEN DescribeImages answers accordingly', async () => {
    await startSim();
    const [a, b] = sim.seedSnapshots(seeds(2)).map((s) => s.snapshotId);
    const ami1 = sim.registerImage([a]);
    const ami2 = sim.registerImage([b]);
    const ids = async (input: DescribeImagesCommandInput) =>
      ((await ec2.send(new DescribeImagesCommand(input))).Images ?? []).map((i) => i.ImageId);

    expect(await ids({ ImageIds: [ami2] })).toEqual([ami2]);
    expect(await ids({ Owners: ['amazon'] })).toEqual([]);
    expect(await ids({ Owners: [ACCOUNT] })).toEqual([ami1, ami2]);
    const unknown = await serviceError(() => ec2.send(new DescribeImagesCommand({ ImageIds: ['ami-00000000000000000'] })));
    sim.deregisterImage(ami1);
    expect(await ids({ Filters: [{ Name: 'block-device-mapping.snapshot-id', Values: [a] }] })).toEqual([]);
    expect(await ids({})).toEqual([ami2]);
    expect([unknown.name, unknown.$metadata.httpStatusCode]).toEqual(['InvalidAMIID.NotFound', 400]);
    expect(() => sim.registerImage(['snap-00000000000000000'])).toThrow(/unknown snapshot/);
  });
});

describe('CreateSnapshots Location', () => {
  test('GIVEN Location local or regional THEN it is recorded on the snapshots; without it, none is', async () => {
    await startSim({ instances: [instance(1), instance(2), instance(3)] });
    await create({ Location: 'local' }, 1);
    await create({ Location: 'regional' }, 2);
    await create({}, 3);

    expect(sim.snapshots.map((s) => s.location)).toEqual(['local', 'local', 'local', 'regional', 'regional', 'regional', undefined, undefined, undefined]);
    expect(sim.calls[0].params.Location).toBe('local');
    expect(sim.calls[2].params.Location).toBeUndefined();
  });

  test('GIVEN Location with OutpostArn THEN InvalidParameterCombination; an unknown Location THEN InvalidParameterValue', async () => {
    const outpostArn = 'arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0';
    await startSim({ instances: [instance(1, { outpostArn })] });

    const both = await serviceError(() => create({ Location: 'local', OutpostArn: outpostArn }));
    const unknown = await serviceError(() => create({ Location: 'zonal' as CreateSnapshotsCommandInput['Location'] }));
    const outpostOnly = await create({ OutpostArn: outpostArn });

    expect([both.name, both.$metadata.httpStatusCode]).toEqual(['InvalidParameterCombination', 400]);
    expect([unknown.name, unknown.$metadata.httpStatusCode]).toEqual(['InvalidParameterValue', 400]);
    expect(outpostOnly).toHaveLength(3);
    expect(sim.snapshots.every((s) => s.location === undefined && s.outpostArn === outpostArn)).toBe(true);
  });
});
