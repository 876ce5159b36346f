/**
 * The vault account's worker (`SnapshotVault`): it copies the sets that source accounts share with
 * it, and applies the vault's retention to its copies.
 *
 * A shared-set event is trusted only as far as EC2 confirms it: the sender must be one of the
 * vault's source accounts, and every snapshot it names must belong to that account, be shared with
 * the vault and be completed. A snapshot with a copy in the vault already (found by its source id
 * tag) is not copied again, so a repeated event, or Lambda's retry after an unclear CopySnapshot
 * answer, makes no second copy. What cannot be done now throws, and Lambda retries the event (up
 * to a day, then its dead-letter queue).
 */
import { CopySnapshotCommand, DeleteSnapshotCommand, DescribeSnapshotsCommand, EC2Client, LockSnapshotCommand } from '@aws-sdk/client-ec2';
import { escapeFilterValue } from './ec2-requests';
import { classifyError } from './error-codes';
import { RunLog } from './ledger';
import { listSnapshots } from './prune-step';
import { decideRetention } from './retention';
import { CallCounter, counted } from './selection';
import { buildLockSnapshotInput, locksInForce } from './snapshot-locks';
import {
  canonicalScheduledTime,
  INSTANCE_ID_TAG,
  InvalidRunRequestError,
  parseSharedSetDetail,
  SCHEDULE_TAG,
  SCHEDULED_TIME_TAG,
  show,
  SOURCE_ACCOUNT_TAG,
  SOURCE_REGION_TAG,
  SOURCE_SCHEDULE_TAG,
  SOURCE_SNAPSHOT_TAG,
  VAULT_EVENT,
  VaultRequest,
} from '../src/private/request-contract';

/** An EventBridge event as Lambda receives it from a rule. */
export interface SharedSetEvent {
  readonly 'source': string;
  readonly 'detail-type': string;
  readonly 'account': string;
  readonly 'region': string;
  readonly 'detail': unknown;
}

/** True for an event a source schedule sent the vault's bus. */
export function isSharedSetEvent(event: unknown): event is SharedSetEvent {
  const e = event as Partial<SharedSetEvent> | null;
  return typeof e === 'object' && e !== null && e.source === VAULT_EVENT.source && e['detail-type'] === VAULT_EVENT.detailType;
}

export interface VaultEnvironment {
  /** DescribeSnapshots, LockSnapshot, DescribeLockedSnapshots (the SDK retries throttling and server errors). */
  readonly ec2: EC2Client;
  /** CopySnapshot: throttling only is retried by the SDK (a repeated call would make a second copy). */
  readonly ec2Copy: EC2Client;
  /** DeleteSnapshot. */
  readonly ec2Delete: EC2Client;
  readonly log: RunLog;
  readonly count: CallCounter;
  now?(): number;
  remainingMs?(): number;
}

export interface VaultCopyReport {
  readonly status: 'copied' | 'rejected';
  /** Snapshots copied now, and those that had a copy already. */
  readonly copied: number;
  readonly alreadyCopied: number;
  readonly reason?: string;
}

/** Copies one shared set into the vault. Throws (for Lambda to retry) when EC2 cannot confirm or copy it now. */
export async function copySharedSet(event: SharedSetEvent, vault: VaultRequest, env: VaultEnvironment): Promise<VaultCopyReport> {
  if (!vault.sourceAccounts.includes(event.account)) {
    // Never retried: the bus only accepts the source accounts, so this is a misconfiguration or worse.
    env.log.error('shared-set event from an account that is not a source of this vault: ignored', { account: event.account, sourceAccounts: vault.sourceAccounts });
    return { status: 'rejected', copied: 0, alreadyCopied: 0, reason: `account ${event.account} is not a source of this vault` };
  }
  let detail;
  try {
    detail = parseSharedSetDetail(event.detail);
  } catch (e) {
    const message = e instanceof InvalidRunRequestError ? e.message : String(e);
    env.log.error('shared-set event that no source schedule writes: ignored', { account: event.account, error: message });
    return { status: 'rejected', copied: 0, alreadyCopied: 0, reason: message };
  }
  const ids = detail.snapshots.map((s) => s.snapshotId);
  // What EC2 says of the named snapshots: they must be the sender's, shared with us, completed.
  const described = await counted(env.count, 'DescribeSnapshots', () => env.ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: ids, OwnerIds: [event.account] })));
  const byId = new Map((described.Snapshots ?? []).map((s) => [s.SnapshotId!, s]));
  const unconfirmed = ids.filter((id) => byId.get(id)?.OwnerId !== event.account);
  if (unconfirmed.length > 0) {
    throw new Error(`snapshots ${show(unconfirmed)} of ${detail.instanceId} (${detail.scheduledTime}) are not shared with this vault by ${event.account} (yet)`);
  }
  const notCompleted = ids.filter((id) => byId.get(id)!.State !== 'completed');
  if (notCompleted.length > 0) throw new Error(`snapshots ${show(notCompleted)} are not completed yet`);

  const existing = await listSnapshots(env.ec2, [
    { Name: `tag:${SCHEDULE_TAG}`, Values: [escapeFilterValue(vault.vaultId)] },
    { Name: `tag:${SOURCE_SNAPSHOT_TAG}`, Values: ids },
  ], env.count);
  const copiedAlready = new Set(existing.filter((c) => c.state !== 'error').map((c) => c.sourceSnapshotId!));
  let copied = 0;
  for (const source of detail.snapshots) {
    if (copiedAlready.has(source.snapshotId)) continue;
    const out = await counted(env.count, 'CopySnapshot', () => env.ec2Copy.send(new CopySnapshotCommand({
      SourceRegion: event.region,
      SourceSnapshotId: source.snapshotId,
      Description: `cdk-instance-snapshots vault: ${source.snapshotId} of ${detail.instanceId} (${detail.scheduledTime}) from ${event.account}`.slice(0, 255),
      ...(vault.kmsKeyArn ? { Encrypted: true, KmsKeyId: vault.kmsKeyArn } : {}),
      TagSpecifications: [{
        ResourceType: 'snapshot',
        Tags: [
          { Key: SCHEDULE_TAG, Value: vault.vaultId },
          { Key: SCHEDULED_TIME_TAG, Value: detail.scheduledTime },
          { Key: INSTANCE_ID_TAG, Value: detail.instanceId },
          { Key: SOURCE_SNAPSHOT_TAG, Value: source.snapshotId },
          { Key: SOURCE_REGION_TAG, Value: event.region },
          { Key: SOURCE_ACCOUNT_TAG, Value: event.account },
          { Key: SOURCE_SCHEDULE_TAG, Value: detail.scheduleId },
        ],
      }],
    })));
    copied++;
    if (vault.lock && out.SnapshotId) {
      await counted(env.count, 'LockSnapshot', () => env.ec2.send(new LockSnapshotCommand(buildLockSnapshotInput(vault.lock!, out.SnapshotId!))));
    }
    env.log.info('shared snapshot copied into the vault', { sourceSnapshotId: source.snapshotId, copySnapshotId: out.SnapshotId, instanceId: detail.instanceId, account: event.account });
  }
  return { status: 'copied', copied, alreadyCopied: copiedAlready.size };
}

export interface VaultPruneReport {
  readonly snapshotsDeleted: number;
  readonly setsHeld: number;
  readonly failures: number;
}

/**
 * Applies the vault's retention to its copies. In the vault every instance counts as gone: its
 * count and calendar rules hold for `goneInstanceSeconds` after its newest copy, then only age.
 */
export async function pruneVault(vault: VaultRequest, env: VaultEnvironment): Promise<VaultPruneReport> {
  const now = env.now ?? Date.now;
  const rules = vault.retention;
  if (!rules) return { snapshotsDeleted: 0, setsHeld: 0, failures: 0 };
  const copies = await listSnapshots(env.ec2, [{ Name: `tag:${SCHEDULE_TAG}`, Values: [escapeFilterValue(vault.vaultId)] }], env.count);
  const decide = (locked?: ReadonlyMap<string, number>) => decideRetention({
    scheduleId: vault.vaultId,
    rules,
    snapshots: copies,
    liveInstanceIds: new Set(),
    // No occurrence of the vault's own: a time no copy has.
    currentScheduledTime: canonicalScheduledTime(new Date(now()).toISOString()) ?? new Date(now()).toISOString(),
    nowMs: now(),
    lockedUntilMs: locked,
  });
  const candidates = decide().toDelete.flatMap((s) => s.snapshotIds);
  const decision = decide(candidates.length > 0 ? await locksInForce(env.ec2, candidates, env.count) : undefined);
  let deleted = 0;
  let failures = 0;
  for (const set of decision.toDelete) {
    if ((env.remainingMs?.() ?? Infinity) < 30_000) break; // the next run goes on
    for (const id of set.snapshotIds) {
      try {
        await counted(env.count, 'DeleteSnapshot', () => env.ec2Delete.send(new DeleteSnapshotCommand({ SnapshotId: id })));
        deleted++;
      } catch (e) {
        const error = classifyError(e);
        if (error.code === 'InvalidSnapshot.NotFound') continue;
        failures++;
        env.log.error('vault copy could not be deleted', { snapshotId: id, instanceId: set.instanceId, code: error.code, detail: error.message });
        break;
      }
    }
  }
  env.log.info('vault retention applied', { snapshotsDeleted: deleted, setsHeld: decision.held.length, failures });
  return { snapshotsDeleted: deleted, setsHeld: decision.held.length, failures };
}
