/**
 * One prune step of a run: list the schedule's snapshots and the live selection -> decide which
 * sets the retention rules no longer keep (lambda/retention.ts, pure) -> for each batch of those
 * sets, in instance-id order, ask which are locked or back an AMI -> delete the rest, whole sets,
 * paced to the DeleteSnapshot bucket -> return the cursor.
 *
 * Every step lists again, so a repeated or concurrent step decides from what exists; the cursor
 * only says up to which instance the sets are handled. Deleting a deleted snapshot answers
 * InvalidSnapshot.NotFound, which is success here.
 */
import { DeleteSnapshotCommand, DescribeImagesCommand, DescribeSnapshotsCommand, EC2Client, Filter, Tag } from '@aws-sdk/client-ec2';
import { DESCRIBE_PAGE_SIZE, escapeFilterValue } from './ec2-requests';
import { classifyError, ErrorAction } from './error-codes';
import { Ledger, RunCursor, RunLog } from './ledger';
import { afterPrune } from './phases';
import { decideRetention, HeldSet, ListedSnapshot, SetToDelete } from './retention';
import { CallCounter, counted, listSelection } from './selection';
import { locksInForce } from './snapshot-locks';
import {
  DEFAULT_DELETE_SNAPSHOTS_PER_SECOND,
  INSTANCE_ID_TAG,
  Occurrence,
  SCHEDULE_TAG,
  SCHEDULED_TIME_TAG,
  SnapshotRunRequest,
  SOURCE_SNAPSHOT_TAG,
} from '../src/private/request-contract';

/**
 * Instances whose sets are listed, checked for locks and AMIs, then deleted, at a time (their ids
 * are the values of one `tag:` filter, which EC2 accepts up to 200).
 */
export const PRUNE_BATCH_INSTANCES = 100;
/** Snapshot ids per DescribeImages filter. */
const IMAGE_LOOKUP_BATCH_SIZE = 200;

export interface PruneEnvironment {
  /** DescribeInstances, DescribeSnapshots, DescribeLockedSnapshots, DescribeImages. */
  readonly ec2: EC2Client;
  /** DeleteSnapshot, paced by its own token bucket. */
  readonly ec2Delete: EC2Client;
  readonly log: RunLog;
  /** A step starts no new deletion after this long. */
  readonly stepBudgetMs: number;
  /** A step stops when its invocation has less than this left. */
  readonly reserveMs: number;
  /** DeleteSnapshot calls in flight at once. */
  readonly concurrency: number;
  /**
   * After throttling or a server error that outlasted the SDK's retries: the first wait before the
   * same snapshot is deleted again (doubling per repeat, with jitter), and the longest.
   */
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  random?(): number;
  /** Milliseconds left in this invocation. */
  remainingMs(): number;
  now?(): number;
}

/** The schedule's own snapshots (owner self, its schedule tag), paginated, reduced to what retention reads. */
export function listScheduleSnapshots(
  ec2: EC2Client,
  scheduleId: string,
  count: CallCounter,
  keep: (instanceId: string | undefined) => boolean = () => true,
): Promise<ListedSnapshot[]> {
  return listSnapshots(ec2, [{ Name: `tag:${SCHEDULE_TAG}`, Values: [escapeFilterValue(scheduleId)] }], count, keep);
}

/** The schedule's own snapshots of the given instances (at most 200: the values of one filter). */
export function listInstanceSnapshots(
  ec2: EC2Client,
  scheduleId: string,
  instanceIds: readonly string[],
  count: CallCounter,
): Promise<ListedSnapshotOrCopy[]> {
  return listSnapshots(ec2, [
    { Name: `tag:${SCHEDULE_TAG}`, Values: [escapeFilterValue(scheduleId)] },
    { Name: `tag:${INSTANCE_ID_TAG}`, Values: [...instanceIds] },
  ], count);
}

/** A listed snapshot with the id of the snapshot it was copied from, when it is a copy the library made. */
export type ListedSnapshotOrCopy = ListedSnapshot & { readonly sourceSnapshotId?: string };

/** The account's own snapshots matching `filters`, paginated, reduced to what retention and copy planning read. */
export async function listSnapshots(
  ec2: EC2Client,
  filters: Filter[],
  count: CallCounter,
  keep: (instanceId: string | undefined) => boolean = () => true,
  onTags?: (snapshotId: string, tags: Tag[]) => void,
): Promise<ListedSnapshotOrCopy[]> {
  const out: ListedSnapshotOrCopy[] = [];
  let token: string | undefined;
  do {
    const page = await counted(count, 'DescribeSnapshots', () => ec2.send(new DescribeSnapshotsCommand({
      OwnerIds: ['self'],
      Filters: filters,
      MaxResults: DESCRIBE_PAGE_SIZE,
      NextToken: token,
    })));
    for (const s of page.Snapshots ?? []) {
      const tag = (key: string) => s.Tags?.find((t) => t.Key === key)?.Value;
      const instanceId = tag(INSTANCE_ID_TAG);
      if (!s.SnapshotId || !keep(instanceId)) continue;
      onTags?.(s.SnapshotId, s.Tags ?? []);
      out.push({
        snapshotId: s.SnapshotId,
        volumeId: s.VolumeId ?? '',
        state: s.State ?? 'pending',
        startTimeMs: s.StartTime ? s.StartTime.getTime() : 0,
        scheduleId: tag(SCHEDULE_TAG),
        instanceId,
        scheduledTime: tag(SCHEDULED_TIME_TAG),
        ...(tag(SOURCE_SNAPSHOT_TAG) !== undefined ? { sourceSnapshotId: tag(SOURCE_SNAPSHOT_TAG) } : {}),
      });
    }
    token = page.NextToken;
  } while (token);
  return out;
}

/** The snapshots among `snapshotIds` that an image of this account uses (DescribeImages, deprecated and disabled images too). */
export async function snapshotsInImages(ec2: EC2Client, snapshotIds: readonly string[], count: CallCounter): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let i = 0; i < snapshotIds.length; i += IMAGE_LOOKUP_BATCH_SIZE) {
    const batch = snapshotIds.slice(i, i + IMAGE_LOOKUP_BATCH_SIZE);
    const wanted = new Set(batch);
    let token: string | undefined;
    do {
      const page = await counted(count, 'DescribeImages', () => ec2.send(new DescribeImagesCommand({
        Owners: ['self'],
        Filters: [{ Name: 'block-device-mapping.snapshot-id', Values: batch }],
        IncludeDeprecated: true,
        IncludeDisabled: true,
        NextToken: token,
      })));
      for (const image of page.Images ?? []) {
        for (const m of image.BlockDeviceMappings ?? []) {
          const id = m.Ebs?.SnapshotId;
          if (id && wanted.has(id)) out.set(id, image.ImageId ?? 'an image');
        }
      }
      token = page.NextToken;
    } while (token);
  }
  return out;
}

/** The outcome of deleting one set. */
type SetOutcome = { kind: 'deleted'; snapshots: number } | { kind: 'gone' } | { kind: 'interrupted' } | { kind: 'in-use'; imageId: string } | { kind: 'failed'; code: string; message: string };

/**
 * Runs one prune step and returns the cursor for the next; ends the run when every instance's sets
 * are handled. Throws only when a listing or look-up failed after the SDK's retries: the workflow
 * then runs the step again from the same cursor.
 */
export async function runPruneStep(
  request: SnapshotRunRequest,
  occurrence: Occurrence,
  cursor: RunCursor,
  env: PruneEnvironment,
): Promise<RunCursor> {
  const now = env.now ?? Date.now;
  const stepStart = now();
  const prune = cursor.prune!;
  const rules = request.retention!;
  const ledger = new Ledger(cursor, env.log);
  const count = (action: string, attempts?: number) => ledger.countCall(action, attempts);
  cursor.steps += 1;

  const live = (await listSelection(env.ec2, request, count)).map((i) => i.InstanceId!);
  const liveIds = new Set(live);
  const decide = (
    listed: readonly ListedSnapshot[],
    lockedUntilMs?: ReadonlyMap<string, number>,
    inUseBy?: ReadonlyMap<string, string>,
  ) => decideRetention({
    scheduleId: request.scheduleId,
    rules,
    snapshots: listed,
    liveInstanceIds: liveIds,
    currentScheduledTime: occurrence.scheduledTime,
    nowMs: now(),
    lockedUntilMs,
    inUseBy,
  });
  const outOfTime = () => now() - stepStart >= env.stepBudgetMs || env.remainingMs() < env.reserveMs;
  /** Look-ups that failed in this step (see `lookUp`). */
  const lookUpFailed = new Set<string>();

  // Two stages, each in instance-id order. Live instances: their snapshots are asked for by
  // instance id, a batch at a time, the next batch while the current one is deleted. Gone
  // instances (not selected any more): only a listing of all the schedule's snapshots finds them.
  let finished = false;
  let ignored = 0;
  while (!finished && !outOfTime()) {
    let instances: string[];
    let snapshotsOf: (batch: readonly string[]) => Promise<ListedSnapshot[]>;
    if (prune.stage === 'live') {
      instances = live.filter((id) => id > prune.after);
      snapshotsOf = async (batch) => {
        const ids = new Set(batch);
        return (await listInstanceSnapshots(env.ec2, request.scheduleId, batch, count)).filter((x) => ids.has(x.instanceId!));
      };
    } else {
      const gone = (id: string | undefined) => id === undefined || (!liveIds.has(id) && id > prune.after);
      const listed = await listScheduleSnapshots(env.ec2, request.scheduleId, count, gone);
      const byInstance = new Map<string, ListedSnapshot[]>();
      for (const snapshot of listed) {
        const key = snapshot.instanceId ?? '';
        const list = byInstance.get(key);
        if (list) list.push(snapshot); else byInstance.set(key, [snapshot]);
      }
      const untagged = byInstance.get('')?.length ?? 0;
      byInstance.delete('');
      if (untagged > 0) env.log.warn('snapshots with the schedule\'s tag but no instance-id tag are never deleted', { count: untagged });
      instances = [...byInstance.keys()].sort();
      snapshotsOf = (batch) => Promise.resolve(batch.flatMap((id) => byInstance.get(id) ?? []));
    }
    let index = 0;
    let next = instances.length > 0 ? snapshotsOf(instances.slice(0, PRUNE_BATCH_INSTANCES)) : undefined;
    while (next && !outOfTime()) {
      const batch = instances.slice(index, index + PRUNE_BATCH_INSTANCES);
      const listed = await next;
      const following = instances.slice(index + PRUNE_BATCH_INSTANCES, index + 2 * PRUNE_BATCH_INSTANCES);
      next = following.length > 0 ? snapshotsOf(following) : undefined;
      next?.catch(() => undefined); // awaited (and reported) by the next round
      const done = await pruneBatch(batch, listed);
      index += done;
      if (done > 0) prune.after = batch[done - 1];
      if (done < batch.length) break;
    }
    if (index < instances.length) break; // out of time: the next step goes on from `after`
    if (prune.stage === 'live') {
      prune.stage = 'gone';
      prune.after = '';
    } else {
      finished = true;
    }
  }

  /**
   * The look-ups of locks and AMIs before deleting. EC2 itself refuses to delete a locked snapshot
   * or one that backs an AMI, so they are for whole sets and clear reports, not for safety: when
   * one fails after the SDK's retries (EC2 unwell, or an endpoint without the action), the step
   * warns once and goes on without it, and DeleteSnapshot's own refusal is reported instead.
   */
  async function lookUp<T>(what: 'locks' | 'images', ask: () => Promise<Map<string, T>>): Promise<Map<string, T>> {
    if (lookUpFailed.has(what)) return new Map();
    try {
      return await ask();
    } catch (e) {
      lookUpFailed.add(what);
      env.log.warn(`the look-up of ${what === 'locks' ? 'snapshot locks (DescribeLockedSnapshots)' : 'AMIs (DescribeImages)'} failed: `
        + 'this step deletes without it, and EC2 refuses what it protects', { errorName: (e as Error).name, error: (e as Error).message });
      return new Map();
    }
  }

  /** Prunes the sets of a batch of instances; returns how many instances, in order, are fully handled. */
  async function pruneBatch(batch: readonly string[], listed: readonly ListedSnapshot[]): Promise<number> {
    const candidates = decide(listed).toDelete.flatMap((s) => s.snapshotIds);
    const lockedUntil = await lookUp('locks', () => locksInForce(env.ec2, candidates, count));
    const inUse = await lookUp('images', () => snapshotsInImages(env.ec2, candidates, count));
    const decision = decide(listed, lockedUntil, inUse);
    ignored += decision.ignored;
    const deletable: SetToDelete[] = [];
    for (const set of decision.toDelete) {
      if (request.dryRun) {
        prune.setsToDelete++;
        env.log.info('dry run: snapshot set would be deleted', describe(set));
      } else {
        deletable.push(set);
      }
    }
    // Whole sets, several at a time, in order; the client's token bucket paces the calls. Out of
    // time, no further set starts: the instances from the first set not started on are left to
    // the next step.
    let next = 0;
    let firstUnhandled = batch.length;
    const unhandled = (instanceId: string) => { firstUnhandled = Math.min(firstUnhandled, batch.indexOf(instanceId)); };
    const worker = async () => {
      while (next < deletable.length) {
        if (outOfTime()) {
          unhandled(deletable[next].instanceId);
          return;
        }
        const set = deletable[next++];
        const outcome = await deleteSet(set);
        if (outcome.kind === 'interrupted') unhandled(set.instanceId); else record(set, outcome);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(env.concurrency, deletable.length)) }, worker));
    const done = firstUnhandled;
    for (const held of decision.held.filter((h) => batch.indexOf(h.instanceId) < done)) {
      if (held.reason === 'pending') {
        prune.setsPending++;
        env.log.info('snapshot set kept for now: a snapshot of it is not completed yet', describeHeld(held));
      } else if (held.reason === 'locked') {
        prune.setsLocked++;
        env.log.info('snapshot set kept until its lock expires', { ...describeHeld(held), lockedUntil: new Date(held.untilMs ?? 0).toISOString() });
      } else {
        record(held, { kind: 'in-use', imageId: held.imageId ?? 'an image' });
      }
    }
    return done;
  }

  async function deleteSet(set: SetToDelete): Promise<SetOutcome> {
    let deleted = 0;
    let waits = 0;
    for (let k = 0; k < set.snapshotIds.length;) {
      const snapshotId = set.snapshotIds[k];
      try {
        await counted(count, 'DeleteSnapshot', () => env.ec2Delete.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })));
        deleted++;
        k++;
      } catch (e) {
        const error = classifyError(e);
        if (error.code === 'InvalidSnapshot.NotFound') { // gone already: a repeated step or a second run deleted it
          k++;
          continue;
        }
        if (error.action === ErrorAction.THROTTLED || error.action === ErrorAction.AMBIGUOUS) {
          // Throttled by other callers, or EC2 unwell, beyond the SDK's retries: the same delete
          // again after a wait (deleting twice is harmless); out of time, the next step takes the set.
          if (outOfTime()) return { kind: 'interrupted' };
          const cap = Math.min(env.backoffMaxMs, env.backoffBaseMs * 2 ** waits++);
          await new Promise((resolve) => setTimeout(resolve, cap / 2 + (env.random ?? Math.random)() * (cap / 2)));
          continue;
        }
        if (error.code === 'InvalidSnapshot.InUse') {
          // An AMI registered since the look-up: keep the rest of the set.
          return { kind: 'in-use', imageId: /ami-[0-9a-f]+/.exec(error.message)?.[0] ?? 'an image' };
        }
        return { kind: 'failed', code: error.code, message: error.message };
      }
    }
    // Every snapshot was gone already: a repeated step, listing what EC2 had deleted, counts it once.
    return deleted === 0 ? { kind: 'gone' } : { kind: 'deleted', snapshots: deleted };
  }

  function record(set: SetToDelete | HeldSet, outcome: SetOutcome): void {
    switch (outcome.kind) {
      case 'deleted':
        prune.setsDeleted++;
        prune.snapshotsDeleted += outcome.snapshots;
        env.log.info('snapshot set deleted', describe(set));
        break;
      case 'gone':
        env.log.info('snapshot set was deleted already', describe(set));
        break;
      case 'in-use':
        prune.setsInUse++;
        env.log.warn('snapshot set kept: a snapshot backs an AMI; deregister the AMI to let retention delete it', { ...describe(set), imageId: outcome.imageId });
        break;
      case 'failed':
        prune.setsFailed++;
        env.log.error('snapshot set could not be deleted', { ...describe(set), code: outcome.code, detail: outcome.message });
        ledger.keepFailure(set.instanceId, 'prune-failed', outcome.code, `deleting the set of ${set.scheduledTime} failed: ${outcome.message}`);
        break;
    }
  }

  if (finished) afterPrune(request, occurrence, cursor, now());
  env.log.info('prune step finished', {
    step: cursor.steps,
    stage: prune.stage,
    after: prune.after,
    setsDeleted: prune.setsDeleted,
    ignored,
    phase: cursor.phase,
    durationMs: now() - stepStart,
  });
  return cursor;
}

function describe(set: SetToDelete | HeldSet): Record<string, unknown> {
  return { instanceId: set.instanceId, scheduledTime: set.scheduledTime, reason: set.reason, snapshotIds: set.snapshotIds };
}

function describeHeld(set: HeldSet): Record<string, unknown> {
  return { instanceId: set.instanceId, scheduledTime: set.scheduledTime, snapshotIds: set.snapshotIds };
}

/** DeleteSnapshot calls per second for a request (EC2's default when the request does not say). */
export function deleteRateOf(request: SnapshotRunRequest): number {
  return request.deleteSnapshotsPerSecond ?? DEFAULT_DELETE_SNAPSHOTS_PER_SECOND;
}
