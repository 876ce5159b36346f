/**
 * The vault account's worker on the real EC2 SDK against the simulator serving two accounts: a
 * source account shares a set and announces it, the vault copies it (once, whatever the repeats),
 * trusts nothing EC2 does not confirm, locks its copies and applies its own retention.
 */
import { ModifySnapshotAttributeCommand } from '@aws-sdk/client-ec2';
import { CapturedLog, FaultHarness, fleet } from './support/fault-harness';
import { copySharedSet, pruneVault, SharedSetEvent, VaultEnvironment } from '../lambda/vault';
import {
  INSTANCE_ID_TAG,
  SCHEDULE_TAG,
  SCHEDULED_TIME_TAG,
  SOURCE_ACCOUNT_TAG,
  SOURCE_SCHEDULE_TAG,
  SOURCE_SNAPSHOT_TAG,
  VAULT_EVENT,
  VaultRequest,
} from '../src/private/request-contract';

const REGION = 'us-east-1';
const SOURCE_ACCOUNT = '123456789012';
const VAULT_ACCOUNT = '999988887777';
const VAULT_KEY = { accessKeyId: 'AKIDVAULT', secretAccessKey: 'vault-secret' };
const SCHEDULED_TIME = '2026-11-24T02:30:00Z';
const DAY = 86_400_000;
const VAULT: VaultRequest = { version: 1, vaultId: 'Vault/Main', sourceAccounts: [SOURCE_ACCOUNT] };

let faults: FaultHarness | undefined;

afterEach(async () => {
  await faults?.stop();
  faults = undefined;
});

const INSTANCES = fleet(2, { volumes: 2 });

async function setUp(): Promise<FaultHarness> {
  faults = await new FaultHarness({
    instances: INSTANCES, region: REGION, accountId: SOURCE_ACCOUNT, accounts: { [VAULT_KEY.accessKeyId]: VAULT_ACCOUNT },
  }).start();
  return faults;
}

/** A set of the source schedule for `instanceId`, `days` before the occurrence, shared with the vault. */
async function sharedSet(h: FaultHarness, instanceId: string, days = 0, share = true) {
  const instance = INSTANCES.find((i) => i.instanceId === instanceId)!;
  const time = new Date(Date.parse(SCHEDULED_TIME) - days * DAY).toISOString().replace('.000Z', 'Z');
  const seeded = h.sim.seedSnapshots(instance.volumeIds.map((volumeId) => ({
    volumeId,
    instanceId,
    state: 'completed' as const,
    startTimeMs: Date.parse(time) + 1_000,
    tags: { [SCHEDULE_TAG]: 'Source/Nightly', [SCHEDULED_TIME_TAG]: time, [INSTANCE_ID_TAG]: instanceId },
  })));
  if (share) {
    const { ec2 } = h.clientsFor();
    for (const s of seeded) {
      await ec2.send(new ModifySnapshotAttributeCommand({ SnapshotId: s.snapshotId, Attribute: 'createVolumePermission', OperationType: 'add', UserIds: [VAULT_ACCOUNT] }));
    }
  }
  const event: SharedSetEvent = {
    'source': VAULT_EVENT.source,
    'detail-type': VAULT_EVENT.detailType,
    'account': SOURCE_ACCOUNT,
    'region': REGION,
    'detail': {
      version: 1,
      scheduleId: 'Source/Nightly',
      scheduledTime: time,
      instanceId,
      snapshots: seeded.map((s) => ({ snapshotId: s.snapshotId, volumeId: s.volumeId })),
    },
  };
  return { seeded, event, time };
}

function vaultEnv(h: FaultHarness, nowMs?: number): VaultEnvironment & { log: CapturedLog } {
  const c = h.clientsFor({ config: { credentials: VAULT_KEY } });
  return {
    ec2: c.ec2,
    ec2Copy: c.ec2Create,
    ec2Delete: c.ec2Delete,
    log: new CapturedLog(),
    count: () => undefined,
    ...(nowMs ? { now: () => nowMs } : {}),
  };
}

const vaultCopies = (h: FaultHarness) => h.sim.snapshotsOf(VAULT_ACCOUNT, REGION);

test('GIVEN a set shared by a source account WHEN its event arrives THEN the vault copies each snapshot, tagged with the set\'s identity and its source', async () => {
  const h = await setUp();
  const { seeded, event } = await sharedSet(h, INSTANCES[0].instanceId);

  const report = await copySharedSet(event, VAULT, vaultEnv(h));

  expect(report).toEqual({ status: 'copied', copied: 2, alreadyCopied: 0 });
  const copies = vaultCopies(h);
  expect(copies.map((c) => c.tags[SOURCE_SNAPSHOT_TAG]).sort()).toEqual(seeded.map((s) => s.snapshotId).sort());
  for (const c of copies) {
    expect(c.tags).toMatchObject({
      [SCHEDULE_TAG]: VAULT.vaultId,
      [SCHEDULED_TIME_TAG]: SCHEDULED_TIME,
      [INSTANCE_ID_TAG]: INSTANCES[0].instanceId,
      [SOURCE_ACCOUNT_TAG]: SOURCE_ACCOUNT,
      [SOURCE_SCHEDULE_TAG]: 'Source/Nightly',
    });
  }
  // The source account's own snapshots are untouched.
  expect(h.sim.snapshots).toHaveLength(2);
});

test('GIVEN the same event twice WHEN the vault handles both THEN the second makes no copy', async () => {
  const h = await setUp();
  const { event } = await sharedSet(h, INSTANCES[0].instanceId);

  await copySharedSet(event, VAULT, vaultEnv(h));
  const again = await copySharedSet(event, VAULT, vaultEnv(h));

  expect(again).toEqual({ status: 'copied', copied: 0, alreadyCopied: 2 });
  expect(vaultCopies(h)).toHaveLength(2);
});

test('GIVEN an event from an account that is not a source WHEN it arrives THEN it is rejected and nothing is copied', async () => {
  const h = await setUp();
  const { event } = await sharedSet(h, INSTANCES[0].instanceId);

  const report = await copySharedSet({ ...event, account: '555555555555' }, VAULT, vaultEnv(h));

  expect(report.status).toBe('rejected');
  expect(vaultCopies(h)).toEqual([]);
});

test('GIVEN an event naming snapshots not shared with the vault WHEN it arrives THEN the worker throws (Lambda retries) and copies nothing', async () => {
  const h = await setUp();
  const { event } = await sharedSet(h, INSTANCES[0].instanceId, 0, false);

  await expect(copySharedSet(event, VAULT, vaultEnv(h))).rejects.toThrow();
  expect(vaultCopies(h)).toEqual([]);
});

test('GIVEN an event whose detail names a snapshot of another account WHEN it arrives THEN nothing is copied', async () => {
  const h = await setUp();
  const { event } = await sharedSet(h, INSTANCES[0].instanceId);
  const forged = { ...event, detail: { ...(event.detail as object), snapshots: [{ snapshotId: 'snap-0123456789abcdef0', volumeId: 'vol-1' }] } };

  await expect(copySharedSet(forged, VAULT, vaultEnv(h))).rejects.toThrow();
  expect(vaultCopies(h)).toEqual([]);
});

test('GIVEN a lock WHEN the vault copies THEN every copy is locked', async () => {
  const h = await setUp();
  const { event } = await sharedSet(h, INSTANCES[0].instanceId);

  await copySharedSet(event, { ...VAULT, lock: { mode: 'compliance', durationDays: 30 } }, vaultEnv(h));

  for (const c of vaultCopies(h)) expect(h.sim.snapshotLock(c.snapshotId)).toMatchObject({ lockDurationDays: 30 });
  expect(vaultCopies(h)).toHaveLength(2);
});

test('GIVEN copies of three occurrences and Retention.count(2) WHEN the vault prunes THEN the oldest copies go, per instance', async () => {
  const h = await setUp();
  const [a, b] = INSTANCES.map((i) => i.instanceId);
  for (const id of [a, b]) {
    for (const days of [2, 1, 0]) await copySharedSet((await sharedSet(h, id, days)).event, VAULT, vaultEnv(h));
  }
  const retained = { ...VAULT, retention: { count: 2, timeZone: 'Etc/UTC', goneInstanceSeconds: 90 * 86_400 } };

  const report = await pruneVault(retained, vaultEnv(h, Date.parse(SCHEDULED_TIME) + 3_600_000));

  expect(report).toEqual({ snapshotsDeleted: 4, setsHeld: 0, failures: 0 });
  const left = vaultCopies(h).map((c) => `${c.instanceId} ${c.tags[SCHEDULED_TIME_TAG]}`).sort();
  expect(left.filter((x) => x.endsWith(new Date(Date.parse(SCHEDULED_TIME) - 2 * DAY).toISOString().replace('.000Z', 'Z')))).toEqual([]);
  expect(left).toHaveLength(8);
  // The source account's snapshots are never the vault's to delete.
  expect(h.sim.snapshots).toHaveLength(12);
});
