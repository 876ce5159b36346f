/**
 * Sharing the run's sets with a vault account, part of the copy phase: once every snapshot of a
 * set is completed, each gets a createVolumePermission for the vault account, and the vault's
 * event bus gets one event naming the set (the vault cannot read the tags of shared snapshots).
 * Repeating either is harmless: EC2 keeps one permission per account, and the vault copies a
 * snapshot only when it has no copy of it yet.
 */
import { ModifySnapshotAttributeCommand, EC2Client } from '@aws-sdk/client-ec2';
import { EventBridgeClient, PutEventsCommand, PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { escapeFilterValue } from './ec2-requests';
import { classifyError, ErrorAction } from './error-codes';
import { Ledger, RunLog, ShareProgress } from './ledger';
import { listSnapshots, ListedSnapshotOrCopy } from './prune-step';
import { CallCounter, counted } from './selection';
import { Occurrence, SCHEDULE_TAG, SCHEDULED_TIME_TAG, SharedSetDetail, SnapshotRunRequest, VAULT_EVENT } from '../src/private/request-contract';

interface Refusal {
  readonly code: string;
  readonly message: string;
}
type Outcome = 'shared' | Refusal;

/** Entries per PutEvents call (EventBridge's limit). */
const PUT_EVENTS_BATCH = 10;

export interface ShareEnvironment {
  readonly ec2: EC2Client;
  readonly events: EventBridgeClient;
  readonly log: RunLog;
  readonly ledger: Ledger;
  readonly count: CallCounter;
  outOfTime(): boolean;
}

/** The vault's event for one set. */
export function buildSharedSetEntry(
  request: SnapshotRunRequest,
  occurrence: Occurrence,
  instanceId: string,
  snapshots: readonly ListedSnapshotOrCopy[],
): PutEventsRequestEntry {
  const detail: SharedSetDetail = {
    version: 1,
    scheduleId: request.scheduleId,
    scheduledTime: occurrence.scheduledTime,
    instanceId,
    snapshots: [...snapshots].sort((a, b) => (a.snapshotId < b.snapshotId ? -1 : 1)).map((s) => ({ snapshotId: s.snapshotId, volumeId: s.volumeId })),
  };
  return { EventBusName: request.vault!.eventBusArn, Source: VAULT_EVENT.source, DetailType: VAULT_EVENT.detailType, Detail: JSON.stringify(detail) };
}

/**
 * Shares the occurrence's completed sets, in instance-id order from `share.after`; returns when
 * every set is handled (`share.done`) or one is still pending or out of time (the next step goes on).
 */
export async function runShareStep(request: SnapshotRunRequest, occurrence: Occurrence, share: ShareProgress, env: ShareEnvironment): Promise<void> {
  const vault = request.vault!;
  const listed = await listSnapshots(env.ec2, [
    { Name: `tag:${SCHEDULE_TAG}`, Values: [escapeFilterValue(request.scheduleId)] },
    { Name: `tag:${SCHEDULED_TIME_TAG}`, Values: [escapeFilterValue(occurrence.scheduledTime)] },
  ], env.count);
  const byInstance = new Map<string, ListedSnapshotOrCopy[]>();
  for (const s of listed) {
    if (s.scheduleId !== request.scheduleId || s.scheduledTime !== occurrence.scheduledTime || !s.instanceId || s.instanceId <= share.after) continue;
    byInstance.set(s.instanceId, [...(byInstance.get(s.instanceId) ?? []), s]);
  }
  const instances = [...byInstance.keys()].sort();
  share.waiting = 0;
  let settledUpTo = share.after;
  let allSettled = true;
  for (let i = 0; i < instances.length && allSettled; i += PUT_EVENTS_BATCH) {
    if (env.outOfTime()) { allSettled = false; break; }
    const batch = instances.slice(i, i + PUT_EVENTS_BATCH);
    const outcomes = new Map<string, Outcome>();
    const toAnnounce: string[] = [];
    for (const id of batch) {
      const snapshots = byInstance.get(id)!;
      if (snapshots.some((s) => s.state === 'error')) {
        outcomes.set(id, { code: 'SourceSnapshotFailed', message: 'a snapshot of the set failed: it cannot be shared' });
      } else if (snapshots.some((s) => s.state !== 'completed')) {
        share.waiting++;
      } else {
        const refusal = await permitted(snapshots);
        if (refusal) outcomes.set(id, refusal); else toAnnounce.push(id);
      }
    }
    for (const [id, outcome] of await announce(toAnnounce)) outcomes.set(id, outcome);
    // Counted once, when the position passes the instance: one settled after an unsettled one is
    // done again by the next step (sharing and announcing twice is harmless).
    for (const id of batch) {
      const outcome = outcomes.get(id);
      if (!outcome) { allSettled = false; break; }
      if (outcome === 'shared') {
        share.shared++;
        env.log.info('snapshot set shared with the vault', { instanceId: id, account: vault.account });
      } else {
        failed(id, outcome.code, outcome.message);
      }
      settledUpTo = id;
    }
  }
  share.after = settledUpTo;
  share.done = allSettled;

  /** Lets the vault account create volumes from every snapshot of a set; EC2's refusal, if it refuses. */
  async function permitted(snapshots: readonly ListedSnapshotOrCopy[]): Promise<Refusal | undefined> {
    for (const s of snapshots) {
      try {
        await counted(env.count, 'ModifySnapshotAttribute', () => env.ec2.send(new ModifySnapshotAttributeCommand({
          SnapshotId: s.snapshotId,
          Attribute: 'createVolumePermission',
          OperationType: 'add',
          UserIds: [vault.account],
        })));
      } catch (e) {
        const error = classifyError(e);
        return { code: error.code, message: `${s.snapshotId} could not be shared with ${vault.account} (snapshots encrypted with the AWS managed key cannot be): ${error.message}` };
      }
    }
    return undefined;
  }

  /** Sends the sets' events; returns the outcome of each set whose event EventBridge took or refused for good. */
  async function announce(instanceIds: readonly string[]): Promise<Array<[string, Outcome]>> {
    if (instanceIds.length === 0) return [];
    const entries = instanceIds.map((id) => buildSharedSetEntry(request, occurrence, id, byInstance.get(id)!));
    try {
      const out = await counted(env.count, 'PutEvents', () => env.events.send(new PutEventsCommand({ Entries: entries })));
      const settled: Array<[string, Outcome]> = [];
      instanceIds.forEach((id, k) => {
        const code = out.Entries?.[k]?.ErrorCode;
        if (!code) {
          settled.push([id, 'shared']);
        } else if (/throttl|internal/i.test(code)) {
          env.log.warn('the vault\'s bus did not take an event now: the next step sends it again', { instanceId: id, code });
        } else {
          settled.push([id, { code, message: `the vault's bus refused the set's event: ${out.Entries?.[k]?.ErrorMessage ?? code}` }]);
        }
      });
      return settled;
    } catch (e) {
      const error = classifyError(e);
      if (error.action === ErrorAction.THROTTLED || error.action === ErrorAction.AMBIGUOUS) {
        env.log.warn('the vault\'s bus could not be reached now: the next step sends the events again', { code: error.code, detail: error.message });
        return [];
      }
      return instanceIds.map((id) => [id, { code: error.code, message: `the vault's bus refused the set's event: ${error.message}` }]);
    }
  }

  function failed(instanceId: string, code: string, message: string): void {
    share.failed++;
    env.log.error('snapshot set not shared with the vault', { instanceId, code, detail: message });
    env.ledger.keepFailure(instanceId, 'share-failed', code, message);
  }
}
