/**
 * The simulator's accounts (option `accounts`): snapshots of one account shared with another (a vault
 * account), seen and copied by that account, through real EC2Clients signed with different access keys.
 */
import {
  CopySnapshotCommand,
  CopySnapshotCommandInput,
  CreateSnapshotsCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DescribeInstancesCommand,
  DescribeSnapshotAttributeCommand,
  DescribeSnapshotsCommand,
  DescribeSnapshotsCommandInput,
  DescribeVolumesCommand,
  EC2Client,
  EC2ServiceException,
  LockSnapshotCommand,
  ModifySnapshotAttributeCommand,
  Snapshot,
} from '@aws-sdk/client-ec2';
import { Ec2Simulator, Ec2SimulatorOptions, SimInstance, SimSnapshotSeed } from './support/ec2-simulator';

const HOME = 'us-east-1';
const DEST = 'eu-west-1';
const HOUR = 3_600_000;
const T0 = Date.parse('2026-11-24T00:00:00.000Z');
/** the simulator's own account (its default `accountId`): the source account */
const SOURCE = '123456789012';
/** the account snapshots are shared with */
const VAULT = '210987654321';
/** an account nothing is shared with */
const THIRD = '111122223333';
const KEYS: Record<string, string> = { [SOURCE]: 'AKIDSOURCE', [VAULT]: 'AKIDVAULT', [THIRD]: 'AKIDTHIRD' };
const ACCOUNTS = { AKIDSOURCE: SOURCE, AKIDVAULT: VAULT, AKIDTHIRD: THIRD };
const CMK = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const INSTANCE: SimInstance = { instanceId: 'i-00000000000000001', volumeIds: ['vol-00000000000000001', 'vol-00000000000000002'] };

let sim: Ec2Simulator;
const clients = new Map<string, EC2Client>();
let nowMs = T0;

async function startSim(options: Ec2SimulatorOptions = {}): Promise<Ec2Simulator> {
  nowMs = T0;
  sim = new Ec2Simulator({ clock: () => nowMs, perVolumeIntervalMs: 0, accounts: ACCOUNTS, instances: [INSTANCE], ...options });
  await sim.start();
  return sim;
}

/** A client of that account (by its access key; 'AKIDUNKNOWN' for an unmapped one) in that Region, without retries. */
function ec2(account: string, region = HOME): EC2Client {
  const accessKeyId = KEYS[account] ?? account;
  const key = `${accessKeyId}/${region}`;
  let c = clients.get(key);
  if (!c) {
    c = new EC2Client({ endpoint: sim.endpoint, region, credentials: { accessKeyId, secretAccessKey: 'SECRET' }, maxAttempts: 1 });
    clients.set(key, c);
  }
  return c;
}

async function serviceError(fn: () => Promise<unknown>): Promise<EC2ServiceException> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(EC2ServiceException);
    return e as EC2ServiceException;
  }
  throw new Error('expected an error');
}

/** One completed snapshot of the instance's first volume (default: the source account's, in us-east-1); its id. */
function seed(extra: Partial<SimSnapshotSeed> = {}): string {
  const [snapshot] = sim.seedSnapshots([{ volumeId: INSTANCE.volumeIds[0], instanceId: INSTANCE.instanceId, ...extra }]);
  return snapshot.snapshotId;
}

async function list(account: string, input: DescribeSnapshotsCommandInput = {}, region = HOME): Promise<Snapshot[]> {
  return (await ec2(account, region).send(new DescribeSnapshotsCommand(input))).Snapshots ?? [];
}

async function ids(account: string, input: DescribeSnapshotsCommandInput = {}, region = HOME): Promise<string[]> {
  return (await list(account, input, region)).map((s) => s.SnapshotId!);
}

/** The source account shares (or, with 'remove', stops sharing) a snapshot with an account. */
async function share(snapshotId: string, account = VAULT, operation: 'add' | 'remove' = 'add', region = HOME): Promise<void> {
  await ec2(SOURCE, region).send(new ModifySnapshotAttributeCommand({
    SnapshotId: snapshotId, Attribute: 'createVolumePermission', OperationType: operation, UserIds: [account],
  }));
}

/** `account` copies `sourceId` of us-east-1 into `region` (default eu-west-1); the copy's id. */
async function copyAs(account: string, sourceId: string, input: Partial<CopySnapshotCommandInput> = {}, region = DEST): Promise<string> {
  const out = await ec2(account, region).send(new CopySnapshotCommand({ SourceRegion: HOME, SourceSnapshotId: sourceId, ...input }));
  return out.SnapshotId!;
}

afterEach(async () => {
  for (const c of clients.values()) c.destroy();
  clients.clear();
  await sim?.stop();
});

describe('accounts', () => {
  test('GIVEN snapshots of two accounts THEN each account lists only its own, and the getters mean the simulator\'s own account', async () => {
    await startSim();
    const mine = [seed({ tags: { Set: 'a' } }), seed({ tags: { Set: 'b' } })];
    const vaults = seed({ ownerId: VAULT });

    const sourceListing = await list(SOURCE);
    const vaultListing = await list(VAULT);
    const vaultSelf = await ids(VAULT, { OwnerIds: ['self'] });

    expect(sourceListing.map((s) => [s.SnapshotId, s.OwnerId, s.Tags?.[0]?.Value])).toEqual([[mine[0], SOURCE, 'a'], [mine[1], SOURCE, 'b']]);
    expect(vaultListing.map((s) => [s.SnapshotId, s.OwnerId])).toEqual([[vaults, VAULT]]);
    expect(vaultSelf).toEqual([vaults]);
    expect(sim.snapshots.map((s) => s.snapshotId)).toEqual(mine);
    expect(sim.snapshots.every((s) => s.ownerId === SOURCE)).toBe(true);
    expect(sim.snapshotsOf(VAULT).map((s) => s.snapshotId)).toEqual([vaults]);
    expect(sim.snapshotsOf(SOURCE, HOME).map((s) => s.snapshotId)).toEqual(mine);
    expect(sim.snapshotsOf(VAULT, DEST)).toEqual([]);
    expect(sim.snapshotsOf(THIRD)).toEqual([]);
  });

  test('GIVEN an access key not in `accounts` THEN the request is the simulator\'s own account\'s; `calls` records each request\'s account', async () => {
    await startSim();
    const mine = seed();

    const unknown = await ids('AKIDUNKNOWN');
    await ids(VAULT);

    expect(unknown).toEqual([mine]);
    expect(sim.calls.map((c) => c.accountId)).toEqual([SOURCE, VAULT]);
  });

  test('GIVEN a fault rule THEN it is told the request\'s account', async () => {
    await startSim();
    sim.addFault((call) => (call.accountId === VAULT ? { status: 403, code: 'UnauthorizedOperation' } : undefined));

    const refused = await serviceError(() => list(VAULT));
    const allowed = await list(SOURCE);

    expect(refused.name).toBe('UnauthorizedOperation');
    expect(allowed).toEqual([]);
  });

  test('GIVEN another account THEN it has no instances nor volumes, and cannot snapshot the simulator\'s instances', async () => {
    await startSim();

    const reservations = (await ec2(VAULT).send(new DescribeInstancesCommand({}))).Reservations ?? [];
    const volumes = (await ec2(VAULT).send(new DescribeVolumesCommand({}))).Volumes ?? [];
    const create = await serviceError(() => ec2(VAULT).send(new CreateSnapshotsCommand({
      InstanceSpecification: { InstanceId: INSTANCE.instanceId },
    })));
    const own = (await ec2(SOURCE).send(new DescribeInstancesCommand({}))).Reservations ?? [];

    expect(reservations).toEqual([]);
    expect(volumes).toEqual([]);
    expect(create.name).toBe('InvalidInstanceID.NotFound');
    expect(own).toHaveLength(1);
    expect(sim.snapshotsOf(VAULT)).toEqual([]);
  });

  test('GIVEN CreateSnapshots by the own account THEN its snapshots are owned by it', async () => {
    await startSim();

    const out = await ec2(SOURCE).send(new CreateSnapshotsCommand({ InstanceSpecification: { InstanceId: INSTANCE.instanceId } }));

    expect(out.Snapshots?.map((s) => s.OwnerId)).toEqual([SOURCE, SOURCE]);
    expect(sim.snapshots.map((s) => s.ownerId)).toEqual([SOURCE, SOURCE]);
  });
});

describe('a snapshot not shared', () => {
  test('GIVEN another account\'s snapshot THEN DescribeSnapshots by id answers InvalidSnapshot.NotFound, by owner or RestorableBy nothing', async () => {
    await startSim();
    const source = seed();

    const byId = await serviceError(() => list(VAULT, { SnapshotIds: [source] }));
    const byOwner = await ids(VAULT, { OwnerIds: [SOURCE] });
    const restorable = await ids(VAULT, { RestorableByUserIds: ['self'] });

    expect(byId.name).toBe('InvalidSnapshot.NotFound');
    expect(byOwner).toEqual([]);
    expect(restorable).toEqual([]);
  });

  test('GIVEN another account\'s snapshot THEN CopySnapshot answers InvalidSnapshot.NotFound and makes nothing', async () => {
    await startSim();
    const source = seed();

    const refused = await serviceError(() => copyAs(VAULT, source));

    expect(refused.name).toBe('InvalidSnapshot.NotFound');
    expect(sim.snapshotsOf(VAULT, DEST)).toEqual([]);
  });
});

describe('a shared snapshot', () => {
  test('GIVEN a snapshot shared with the vault THEN the vault sees it by id, without its tags and with its owner\'s id', async () => {
    await startSim();
    const source = seed({ tags: { Schedule: 's1' }, description: 'set 1' });
    await share(source);

    const [seen] = await list(VAULT, { SnapshotIds: [source] });
    const [asOwner] = await list(SOURCE, { SnapshotIds: [source] });

    expect(seen).toMatchObject({ SnapshotId: source, OwnerId: SOURCE, Description: 'set 1', State: 'completed' });
    expect(seen.Tags).toBeUndefined();
    expect(asOwner.Tags).toEqual([{ Key: 'Schedule', Value: 's1' }]);
  });

  test('GIVEN a shared snapshot THEN the vault\'s default and Owner self listings leave it out, Owner <owner id> lists it', async () => {
    await startSim();
    const source = seed();
    const notShared = seed();
    const vaults = seed({ ownerId: VAULT });
    await share(source);

    const byDefault = await ids(VAULT);
    const self = await ids(VAULT, { OwnerIds: ['self'] });
    const ownId = await ids(VAULT, { OwnerIds: [VAULT] });
    const byOwner = await ids(VAULT, { OwnerIds: [SOURCE] });
    const both = await ids(VAULT, { OwnerIds: ['self', SOURCE] });
    const stranger = await ids(VAULT, { OwnerIds: [THIRD] });
    const amazon = await ids(VAULT, { OwnerIds: ['amazon'] });

    expect(byDefault).toEqual([vaults]);
    expect(self).toEqual([vaults]);
    expect(ownId).toEqual([vaults]);
    expect(byOwner).toEqual([source]);
    expect(byOwner).not.toContain(notShared);
    expect(both).toEqual([source, vaults]);
    expect(stranger).toEqual([]);
    expect(amazon).toEqual([]);
  });

  test('GIVEN a shared snapshot THEN RestorableBy self or the vault\'s id lists the vault\'s own and the shared one', async () => {
    await startSim();
    const source = seed();
    seed();
    const vaults = seed({ ownerId: VAULT });
    await share(source);

    const bySelf = await ids(VAULT, { RestorableByUserIds: ['self'] });
    const byId = await ids(VAULT, { RestorableByUserIds: [VAULT] });
    const sharedOnly = await ids(VAULT, { RestorableByUserIds: ['self'], OwnerIds: [SOURCE] });

    expect(bySelf).toEqual([source, vaults]);
    expect(byId).toEqual([source, vaults]);
    expect(sharedOnly).toEqual([source]);
  });

  test('GIVEN snapshots shared with two accounts THEN the owner\'s RestorableBy <account> lists those it shared with that account', async () => {
    await startSim();
    const [a, b, c] = [seed(), seed(), seed()];
    await share(a, VAULT);
    await share(b, THIRD);

    const withVault = await ids(SOURCE, { RestorableByUserIds: [VAULT] });
    const withThird = await ids(SOURCE, { RestorableByUserIds: [THIRD] });
    const all = await ids(SOURCE, { RestorableByUserIds: ['self'] });

    expect(withVault).toEqual([a]);
    expect(withThird).toEqual([b]);
    expect(all).toEqual([a, b, c]);
  });

  test('GIVEN a shared snapshot THEN another account it is not shared with does not see it', async () => {
    await startSim();
    const source = seed();
    await share(source);

    const byId = await serviceError(() => list(THIRD, { SnapshotIds: [source] }));
    const byOwner = await ids(THIRD, { OwnerIds: [SOURCE] });

    expect(byId.name).toBe('InvalidSnapshot.NotFound');
    expect(byOwner).toEqual([]);
  });

  test('GIVEN a shared snapshot THEN the vault\'s tag filters never match it, owner-id and status filters do', async () => {
    await startSim();
    const source = seed({ tags: { Schedule: 's1' } });
    await share(source);

    const byTag = await ids(VAULT, { OwnerIds: [SOURCE], Filters: [{ Name: 'tag:Schedule', Values: ['s1'] }] });
    const byTagKey = await ids(VAULT, { OwnerIds: [SOURCE], Filters: [{ Name: 'tag-key', Values: ['*'] }] });
    const byOwnerId = await ids(VAULT, { RestorableByUserIds: ['self'], Filters: [{ Name: 'owner-id', Values: [SOURCE] }] });
    const byStatus = await ids(VAULT, { OwnerIds: [SOURCE], Filters: [{ Name: 'status', Values: ['completed'] }] });
    const ownerByTag = await ids(SOURCE, { Filters: [{ Name: 'tag:Schedule', Values: ['s1'] }] });

    expect(byTag).toEqual([]);
    expect(byTagKey).toEqual([]);
    expect(byOwnerId).toEqual([source]);
    expect(byStatus).toEqual([source]);
    expect(ownerByTag).toEqual([source]);
  });

  test('GIVEN own and shared snapshots THEN pages of RestorableBy self follow creation order without repeats', async () => {
    await startSim();
    const made: string[] = [];
    for (let k = 0; k < 12; k++) {
      const id = seed(k % 2 === 0 ? {} : { ownerId: VAULT });
      if (k % 2 === 0) await share(id);
      made.push(id);
    }

    const pages: string[][] = [];
    let token: string | undefined;
    do {
      const out = await ec2(VAULT).send(new DescribeSnapshotsCommand({ RestorableByUserIds: ['self'], MaxResults: 5, NextToken: token }));
      pages.push((out.Snapshots ?? []).map((s) => s.SnapshotId!));
      token = out.NextToken;
    } while (token);

    expect(pages.map((p) => p.length)).toEqual([5, 5, 2]);
    expect(pages.flat()).toEqual(made);
  });

  test('GIVEN a shared snapshot in another Region THEN the vault sees it there only', async () => {
    await startSim();
    const source = seed({ region: DEST });
    await share(source, VAULT, 'add', DEST);

    const there = await ids(VAULT, { SnapshotIds: [source] }, DEST);
    const here = await serviceError(() => list(VAULT, { SnapshotIds: [source] }, HOME));

    expect(there).toEqual([source]);
    expect(here.name).toBe('InvalidSnapshot.NotFound');
  });

  test('GIVEN a snapshot shared and then unshared THEN the vault no longer sees nor copies it', async () => {
    await startSim();
    const source = seed();
    await share(source);
    const before = await ids(VAULT, { OwnerIds: [SOURCE] });
    await share(source, VAULT, 'remove');

    const byId = await serviceError(() => list(VAULT, { SnapshotIds: [source] }));
    const byOwner = await ids(VAULT, { OwnerIds: [SOURCE] });
    const restorable = await ids(VAULT, { RestorableByUserIds: ['self'] });
    const copy = await serviceError(() => copyAs(VAULT, source));

    expect(before).toEqual([source]);
    expect(byId.name).toBe('InvalidSnapshot.NotFound');
    expect(byOwner).toEqual([]);
    expect(restorable).toEqual([]);
    expect(copy.name).toBe('InvalidSnapshot.NotFound');
  });

  test('GIVEN a shared snapshot deleted by its owner THEN the vault no longer sees it', async () => {
    await startSim();
    const source = seed();
    await share(source);

    await ec2(SOURCE).send(new DeleteSnapshotCommand({ SnapshotId: source }));
    const byOwner = await ids(VAULT, { OwnerIds: [SOURCE] });
    const byId = await serviceError(() => list(VAULT, { SnapshotIds: [source] }));

    expect(byOwner).toEqual([]);
    expect(byId.name).toBe('InvalidSnapshot.NotFound');
  });

  test.each<[string, (client: EC2Client, snapshotId: string) => Promise<unknown>]>([
    ['DeleteSnapshot', (c, id) => c.send(new DeleteSnapshotCommand({ SnapshotId: id }))],
    ['LockSnapshot', (c, id) => c.send(new LockSnapshotCommand({ SnapshotId: id, LockMode: 'governance', LockDuration: 1 }))],
    ['ModifySnapshotAttribute', (c, id) => c.send(new ModifySnapshotAttributeCommand({
      SnapshotId: id, Attribute: 'createVolumePermission', OperationType: 'add', UserIds: [THIRD],
    }))],
    ['CreateTags', (c, id) => c.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: 'Schedule', Value: 'mine' }] }))],
    ['DescribeSnapshotAttribute', (c, id) => c.send(new DescribeSnapshotAttributeCommand({ SnapshotId: id, Attribute: 'createVolumePermission' }))],
  ])('GIVEN a snapshot shared with the vault THEN the vault\'s %s answers InvalidSnapshot.NotFound and changes nothing', async (_name, act) => {
    await startSim();
    const source = seed({ tags: { Schedule: 's1' } });
    await share(source);

    const refused = await serviceError(() => act(ec2(VAULT), source));

    expect([refused.name, refused.$metadata.httpStatusCode]).toEqual(['InvalidSnapshot.NotFound', 400]);
    expect(sim.snapshot(source)?.tags).toEqual({ Schedule: 's1' });
    expect(sim.sharedWith(source)).toEqual([VAULT]);
    expect(sim.snapshotLock(source)).toBeUndefined();
    expect(sim.deletions).toEqual([]);
  });
});

describe('CreateTags', () => {
  test('GIVEN the owner\'s CreateTags THEN its snapshots get the tags, and tag filters find them', async () => {
    await startSim();
    const [a, b] = [seed({ tags: { Schedule: 'old', Keep: 'yes' } }), seed()];

    await ec2(SOURCE).send(new CreateTagsCommand({ Resources: [a, b], Tags: [{ Key: 'Schedule', Value: 'new' }] }));
    const byNew = await ids(SOURCE, { Filters: [{ Name: 'tag:Schedule', Values: ['new'] }] });
    const byOld = await ids(SOURCE, { Filters: [{ Name: 'tag:Schedule', Values: ['old'] }] });

    expect(sim.snapshot(a)?.tags).toEqual({ Schedule: 'new', Keep: 'yes' });
    expect(sim.snapshot(b)?.tags).toEqual({ Schedule: 'new' });
    expect(byNew).toEqual([a, b]);
    expect(byOld).toEqual([]);
  });

  test('GIVEN one snapshot that is not the caller\'s THEN CreateTags tags none', async () => {
    await startSim();
    const a = seed();
    const vaults = seed({ ownerId: VAULT });

    const refused = await serviceError(() => ec2(SOURCE).send(new CreateTagsCommand({ Resources: [a, vaults], Tags: [{ Key: 'K', Value: 'v' }] })));

    expect(refused.name).toBe('InvalidSnapshot.NotFound');
    expect(sim.snapshot(a)?.tags).toEqual({});
  });
});

describe('CopySnapshot of a shared snapshot', () => {
  test('GIVEN a snapshot shared with the vault THEN the vault copies it to another Region: the copy is the vault\'s, with only the call\'s tags', async () => {
    await startSim();
    const source = seed({ tags: { Schedule: 's1' }, volumeSize: 20 });
    await share(source);

    const copy = await copyAs(VAULT, source, {
      TagSpecifications: [{ ResourceType: 'snapshot', Tags: [{ Key: 'Vault', Value: 'v1' }] }],
    });
    const [listed] = await list(VAULT, { SnapshotIds: [copy] }, DEST);

    expect(sim.snapshotsOf(VAULT, DEST).map((s) => [s.snapshotId, s.ownerId, s.region, s.sourceSnapshotId])).toEqual([[copy, VAULT, DEST, source]]);
    expect(sim.snapshot(copy)?.tags).toEqual({ Vault: 'v1' });
    expect(listed).toMatchObject({ SnapshotId: copy, OwnerId: VAULT, VolumeSize: 20, Tags: [{ Key: 'Vault', Value: 'v1' }] });
    expect(sim.snapshotsIn(DEST)).toEqual([]);
    expect(sim.snapshots.map((s) => s.snapshotId)).toEqual([source]);
    expect(await ids(SOURCE, {}, DEST)).toEqual([]);
  });

  test('GIVEN a snapshot shared with the vault THEN the vault copies it within the same Region', async () => {
    await startSim();
    const source = seed();
    await share(source);

    const copy = await copyAs(VAULT, source, {}, HOME);

    expect(sim.snapshotsOf(VAULT, HOME).map((s) => s.snapshotId)).toEqual([copy]);
    expect(await ids(VAULT)).toEqual([copy]);
    expect(sim.snapshots.map((s) => s.snapshotId)).toEqual([source]);
  });

  test('GIVEN copyCompletionMs THEN the vault\'s copy is pending until then, then completed', async () => {
    await startSim({ copyCompletionMs: HOUR });
    const source = seed();
    await share(source);

    const copy = await copyAs(VAULT, source);
    const [pending] = await list(VAULT, { SnapshotIds: [copy] }, DEST);
    nowMs = T0 + HOUR;
    const [completed] = await list(VAULT, { SnapshotIds: [copy] }, DEST);

    expect(pending.State).toBe('pending');
    expect(completed.State).toBe('completed');
  });

  test('GIVEN maxConcurrentCopies THEN the limit counts per account and destination Region', async () => {
    await startSim({ copyCompletionMs: HOUR, maxConcurrentCopies: 1 });
    const source = seed();
    await share(source);

    const sourceCopy = await copyAs(SOURCE, source);
    const vaultCopy = await copyAs(VAULT, source);
    const vaultFull = await serviceError(() => copyAs(VAULT, source));
    const sourceFull = await serviceError(() => copyAs(SOURCE, source));
    const vaultElsewhere = await copyAs(VAULT, source, {}, HOME);
    sim.setSnapshotState(vaultCopy, 'completed');
    const vaultAgain = await copyAs(VAULT, source);

    expect(vaultFull.name).toBe('ResourceLimitExceeded');
    expect(sourceFull.name).toBe('ResourceLimitExceeded');
    expect(sim.snapshotsIn(DEST).map((s) => s.snapshotId)).toEqual([sourceCopy]);
    expect(sim.snapshotsOf(VAULT, DEST).map((s) => s.snapshotId)).toEqual([vaultCopy, vaultAgain]);
    expect(sim.snapshotsOf(VAULT, HOME).map((s) => s.snapshotId)).toEqual([vaultElsewhere]);
  });

  test('GIVEN a shared snapshot encrypted with a customer managed key THEN the vault can copy it (KMS is not simulated)', async () => {
    await startSim();
    const source = seed({ encrypted: true, kmsKeyId: CMK });
    await share(source);

    const copy = await copyAs(VAULT, source);

    expect(sim.snapshot(copy)).toMatchObject({ ownerId: VAULT, encrypted: true });
  });

  test('GIVEN a copy in the vault THEN the vault owns it: it can tag and lock it, and the source account cannot see it', async () => {
    await startSim();
    const source = seed();
    await share(source);
    const copy = await copyAs(VAULT, source);

    await ec2(VAULT, DEST).send(new CreateTagsCommand({ Resources: [copy], Tags: [{ Key: 'K', Value: 'v' }] }));
    await ec2(VAULT, DEST).send(new LockSnapshotCommand({ SnapshotId: copy, LockMode: 'governance', LockDuration: 1 }));
    const hidden = await serviceError(() => list(SOURCE, { SnapshotIds: [copy] }, DEST));

    expect(sim.snapshot(copy)?.tags).toEqual({ K: 'v' });
    expect(sim.snapshotLock(copy)?.lockState).toBe('governance');
    expect(hidden.name).toBe('InvalidSnapshot.NotFound');
  });
});
