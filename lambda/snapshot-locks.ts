/**
 * Snapshot locks: the lock a schedule puts on every snapshot of a new set (EC2 `LockSnapshot`,
 * which accepts pending snapshots), and the locks in force on snapshots that retention would
 * delete (`DescribeLockedSnapshots`): a locked snapshot is never sent to DeleteSnapshot.
 */
import { DescribeLockedSnapshotsCommand, EC2Client, LockSnapshotCommand, LockSnapshotCommandInput } from '@aws-sdk/client-ec2';
import { CallCounter, counted } from './selection';
import type { SnapshotLockSpec } from '../src/private/request-contract';

/** Snapshot ids per DescribeLockedSnapshots call. */
export const LOCK_LOOKUP_BATCH_SIZE = 200;

/** Lock states in which a snapshot cannot be deleted (`expired` can). */
const LOCKS_IN_FORCE = new Set(['governance', 'compliance', 'compliance-cooloff']);

/** The LockSnapshot request for one snapshot of a new set. */
export function buildLockSnapshotInput(lock: SnapshotLockSpec, snapshotId: string): LockSnapshotCommandInput {
  return {
    SnapshotId: snapshotId,
    LockMode: lock.mode as LockSnapshotCommandInput['LockMode'],
    LockDuration: lock.durationDays,
    ...(lock.coolOffHours !== undefined ? { CoolOffPeriod: lock.coolOffHours } : {}),
  };
}

/**
 * Snapshot id -> when its lock expires (epoch ms), for the given snapshots with a lock in force.
 * A lock without an expiry is taken as lasting forever. When EC2 refuses a batch because one id is
 * gone (InvalidSnapshot.NotFound), the batch is asked again one id at a time, and a gone snapshot
 * has no lock.
 */
export async function locksInForce(ec2: EC2Client, snapshotIds: readonly string[], count: CallCounter): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const ask = async (ids: readonly string[]): Promise<void> => {
    let token: string | undefined;
    do {
      const page = await counted(count, 'DescribeLockedSnapshots', () => ec2.send(new DescribeLockedSnapshotsCommand({
        SnapshotIds: [...ids],
        NextToken: token,
      })));
      for (const s of page.Snapshots ?? []) {
        if (!s.SnapshotId || !LOCKS_IN_FORCE.has(s.LockState ?? '')) continue;
        out.set(s.SnapshotId, s.LockExpiresOn ? s.LockExpiresOn.getTime() : Number.POSITIVE_INFINITY);
      }
      token = page.NextToken;
    } while (token);
  };
  for (let i = 0; i < snapshotIds.length; i += LOCK_LOOKUP_BATCH_SIZE) {
    const batch = snapshotIds.slice(i, i + LOCK_LOOKUP_BATCH_SIZE);
    try {
      await ask(batch);
    } catch (e) {
      if ((e as Error).name !== 'InvalidSnapshot.NotFound') throw e;
      for (const id of batch) {
        try {
          await ask([id]);
        } catch (one) {
          if ((one as Error).name !== 'InvalidSnapshot.NotFound') throw one;
        }
      }
    }
  }
  return out;
}

/**
 * Locks every snapshot of a set that has no lock in force yet (a set found again after a step
 * failed between CreateSnapshots and LockSnapshot gets its lock then). Returns the snapshots it
 * locked; throws the first error after the SDK's retries.
 */
export async function lockSet(
  ec2: EC2Client,
  lock: SnapshotLockSpec,
  snapshotIds: readonly string[],
  count: CallCounter,
  options: { readonly knownUnlocked?: boolean } = {},
): Promise<string[]> {
  const locked = options.knownUnlocked ? new Map<string, number>() : await locksInForce(ec2, snapshotIds, count);
  const todo = snapshotIds.filter((id) => !locked.has(id));
  for (const id of todo) {
    await counted(count, 'LockSnapshot', () => ec2.send(new LockSnapshotCommand(buildLockSnapshotInput(lock, id))));
  }
  return todo;
}
