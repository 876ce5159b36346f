/**
 * Copy planning: which of a schedule's snapshots to copy to one destination Region now, and where
 * the copies made so far stand. Pure: the snapshots of both Regions in, a plan out; no client, no
 * clock, no I/O. The copy step lists the schedule's snapshots in both Regions, starts the copies
 * this returns (as many as CopySnapshot's concurrency allows) and reports the rest.
 */
import { decideRetention, ListedSnapshot } from './retention';
import { canonicalScheduledTime, RetentionSpec } from '../src/private/request-contract';

/** A snapshot in the destination Region: ListedSnapshot plus the id of the snapshot it copies (SOURCE_SNAPSHOT_TAG), absent when it has none. */
export interface ListedCopy extends ListedSnapshot {
  readonly sourceSnapshotId?: string;
}

export interface CopyPlanInput {
  readonly scheduleId: string;
  /** The schedule's snapshots in its own Region, for some instances (every snapshot of those instances). */
  readonly sources: readonly ListedSnapshot[];
  /** The schedule's snapshots in the destination, for the same instances. */
  readonly copies: readonly ListedCopy[];
  /** Which source sets the destination wants: those this retention keeps (absent: the sets of the last COPY_CATCH_UP_DAYS days). */
  readonly retention?: RetentionSpec;
  readonly liveInstanceIds: ReadonlySet<string>;
  /** The run's own occurrence (canonical scheduled time). */
  readonly currentScheduledTime: string;
  readonly nowMs: number;
  /** EBS time-based copy: a copy pending longer than this after its start is overdue. */
  readonly completionDurationMinutes?: number;
}

/** One CopySnapshot to make: a source snapshot of a set. */
export interface CopyJob {
  readonly instanceId: string;
  readonly scheduledTime: string;
  readonly sourceSnapshotId: string;
  readonly volumeId: string;
}

/** A set: one instance's snapshots of one scheduled occurrence. */
export interface SetRef {
  readonly instanceId: string;
  readonly scheduledTime: string;
}

export interface CopyPlan {
  /**
   * Source snapshots to copy now: whole sets only (every source snapshot of the set completed), only
   * those without a copy; newest set first, then instance id, then snapshot id.
   */
  readonly toCopy: CopyJob[];
  /** Wanted sets with a source snapshot still pending (copied once completed); newest first, then instance id. */
  readonly waitingForSource: SetRef[];
  /** Wanted sets with a source snapshot in `error`: they cannot be copied; newest first, then instance id. */
  readonly failedSources: SetRef[];
  /** Copies of wanted sets still pending in the destination, and which of them are overdue. */
  readonly inProgress: number;
  /** Newest set first, then instance id, then source snapshot id, then the copy's start time and id. */
  readonly overdue: Array<SetRef & { readonly copySnapshotId: string; readonly sourceSnapshotId: string }>;
  /** Wanted sets whose every source snapshot has a completed copy. */
  readonly complete: number;
  /** Copies in `error` of wanted sets (they are deleted and the source copied again): their ids, sorted. */
  readonly failedCopies: string[];
  /** Second and later copies of one source snapshot (a repeated CopySnapshot): completed ones, to delete, the earliest copy kept; sorted. */
  readonly duplicateCopies: string[];
  /** Instances whose wanted sets are all complete (sorted). */
  readonly completeInstances: string[];
}

/** Without a retention for the destination, the sets of the last this many days are copied. */
export const COPY_CATCH_UP_DAYS = 7;

const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;

/** Rules that keep every set: `decideRetention` then only groups the sets and drops duplicate calls. */
const KEEP_EVERY_SET: RetentionSpec = { maxAgeSeconds: Infinity, timeZone: 'UTC', goneInstanceSeconds: 0 };

/**
 * Plans the copies of a schedule's sets to one destination Region.
 *
 * - Ownership, on both sides as in `decideRetention`: the schedule tag is exactly `scheduleId`, the
 *   instance tag is not empty and the scheduled time is canonical. A copy also names its source
 *   (`sourceSnapshotId`); when that source is listed, the copy's instance and scheduled time must be
 *   the source's. Every other snapshot is ignored: never copied, counted, or deleted.
 * - Wanted sets: the sets `decideRetention` forms from the sources (a duplicate call of an occurrence
 *   is not a set) that `retention` keeps, pending ones included; without `retention`, those whose
 *   scheduled time is less than COPY_CATCH_UP_DAYS days old, and the current occurrence's.
 * - Copies of one source: those in `error` are failed (listed, not a copy); of the others the kept
 *   one is, as the primary call of an occurrence, the completed one, then the earliest, then the one
 *   with the smallest id. A completed copy that is not kept is a duplicate (also of a set no longer
 *   wanted); one that is pending is in progress, never deleted.
 * - A wanted set is complete when every source snapshot has a completed copy; else it is failed when
 *   a source is in `error`, waiting when one is in any other state than `completed`, and otherwise
 *   its sources without a completed or pending copy are to copy.
 */
export function planCopies(input: CopyPlanInput): CopyPlan {
  const { scheduleId, nowMs } = input;
  const current = canonicalScheduledTime(input.currentScheduledTime) ?? input.currentScheduledTime;
  const times = new Map<string, number>();

  // The sets retention does not keep, and duplicate calls, are the source snapshots not wanted.
  const decision = decideRetention({
    scheduleId,
    rules: input.retention ?? KEEP_EVERY_SET,
    snapshots: input.sources,
    liveInstanceIds: input.liveInstanceIds,
    currentScheduledTime: current,
    nowMs,
  });
  const unwanted = new Set<string>();
  for (const dropped of [decision.toDelete, decision.held]) {
    for (const set of dropped) for (const id of set.snapshotIds) unwanted.add(id);
  }

  const owned = new Map<string, ListedSnapshot>();
  const wanted = new Map<string, WantedSet>();
  const windowStartMs = nowMs - COPY_CATCH_UP_DAYS * DAY_MS;
  for (const source of input.sources) {
    const timeMs = ownedTime(times, scheduleId, source);
    if (timeMs === undefined) continue;
    owned.set(source.snapshotId, source);
    if (unwanted.has(source.snapshotId)) continue;
    if (input.retention === undefined && timeMs <= windowStartMs && source.scheduledTime !== current) continue;
    const key = `${source.instanceId}\n${source.scheduledTime}`;
    const set = wanted.get(key);
    if (set) set.sources.push(source);
    else wanted.set(key, { instanceId: source.instanceId!, scheduledTime: source.scheduledTime!, timeMs, sources: [source] });
  }

  // Copies by the source they copy.
  const copiesOf = new Map<string, ListedCopy[]>();
  for (const copy of input.copies) {
    const sourceId = copy.sourceSnapshotId;
    if (ownedTime(times, scheduleId, copy) === undefined || typeof sourceId !== 'string' || sourceId.length === 0) continue;
    const source = owned.get(sourceId);
    if (source && (source.instanceId !== copy.instanceId || source.scheduledTime !== copy.scheduledTime)) continue;
    const copies = copiesOf.get(sourceId);
    if (copies) copies.push(copy);
    else copiesOf.set(sourceId, [copy]);
  }
  const statusOf = new Map<string, CopyStatus>();
  const duplicateCopies: string[] = [];
  for (const [sourceId, copies] of copiesOf) {
    const failed = copies.filter((c) => c.state === 'error');
    const [kept, ...others] = copies.filter((c) => c.state !== 'error').sort(keptFirst);
    for (const other of others) if (other.state === 'completed') duplicateCopies.push(other.snapshotId);
    const pending = copies.filter((c) => c.state !== 'error' && c.state !== 'completed').sort(earliestFirst);
    statusOf.set(sourceId, { kept, pending, failed });
  }

  const toCopy: CopyJob[] = [];
  const waitingForSource: SetRef[] = [];
  const failedSources: SetRef[] = [];
  const overdue: CopyPlan['overdue'] = [];
  const failedCopies: string[] = [];
  let inProgress = 0;
  let complete = 0;
  const instances = new Map<string, boolean>();
  const overdueMs = input.completionDurationMinutes === undefined ? undefined : input.completionDurationMinutes * MINUTE_MS;
  for (const set of [...wanted.values()].sort(newestFirst)) {
    const { instanceId, scheduledTime } = set;
    let copied = 0;
    let sourceFailed = false;
    let sourcePending = false;
    const missing: ListedSnapshot[] = [];
    for (const source of set.sources.sort(bySnapshotId)) {
      if (source.state === 'error') sourceFailed = true;
      else if (source.state !== 'completed') sourcePending = true;
      const status = statusOf.get(source.snapshotId);
      if (!status?.kept) missing.push(source);
      else if (status.kept.state === 'completed') copied++;
      if (!status) continue;
      for (const copy of status.failed) failedCopies.push(copy.snapshotId);
      for (const copy of status.pending) {
        inProgress++;
        if (overdueMs !== undefined && copy.startTimeMs + overdueMs < nowMs) {
          overdue.push({ instanceId, scheduledTime, copySnapshotId: copy.snapshotId, sourceSnapshotId: source.snapshotId });
        }
      }
    }
    const done = copied === set.sources.length;
    instances.set(instanceId, done && instances.get(instanceId) !== false);
    if (done) complete++;
    else if (sourceFailed) failedSources.push({ instanceId, scheduledTime });
    else if (sourcePending) waitingForSource.push({ instanceId, scheduledTime });
    else for (const s of missing) toCopy.push({ instanceId, scheduledTime, sourceSnapshotId: s.snapshotId, volumeId: s.volumeId });
  }

  return {
    toCopy,
    waitingForSource,
    failedSources,
    inProgress,
    overdue,
    complete,
    failedCopies: failedCopies.sort(),
    duplicateCopies: duplicateCopies.sort(),
    completeInstances: [...instances].filter(([, done]) => done).map(([id]) => id).sort(),
  };
}

interface WantedSet {
  readonly instanceId: string;
  readonly scheduledTime: string;
  readonly timeMs: number;
  readonly sources: ListedSnapshot[];
}

/** The copies of one source snapshot. */
interface CopyStatus {
  /** The copy that counts: completed or pending, undefined when there is none. */
  readonly kept?: ListedCopy;
  /** Every pending copy, the kept one included. */
  readonly pending: ListedCopy[];
  /** Copies in `error`. */
  readonly failed: ListedCopy[];
}

/**
 * The time of an owned snapshot's scheduled time, undefined for a snapshot the schedule does not own
 * (`decideRetention`'s test: exact schedule tag, an instance, a canonical scheduled time; cached).
 */
function ownedTime(cache: Map<string, number>, scheduleId: string, snapshot: ListedSnapshot): number | undefined {
  const { instanceId, scheduledTime } = snapshot;
  if (snapshot.scheduleId !== scheduleId || typeof instanceId !== 'string' || instanceId.length === 0 || typeof scheduledTime !== 'string') {
    return undefined;
  }
  let timeMs = cache.get(scheduledTime);
  if (timeMs === undefined) {
    timeMs = canonicalScheduledTime(scheduledTime) === scheduledTime ? Date.parse(scheduledTime) : NaN;
    cache.set(scheduledTime, timeMs);
  }
  return Number.isNaN(timeMs) ? undefined : timeMs;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function bySnapshotId(a: ListedSnapshot, b: ListedSnapshot): number {
  return compareText(a.snapshotId, b.snapshotId);
}

function earliestFirst(a: ListedSnapshot, b: ListedSnapshot): number {
  return a.startTimeMs - b.startTimeMs || compareText(a.snapshotId, b.snapshotId);
}

/**
 * Which copy of a source counts: a completed one, then the earliest, then the smallest id. A later
 * completed copy is deleted only once the earlier one is completed, so a copy that may still fail
 * never costs the one that did not.
 */
function keptFirst(a: ListedSnapshot, b: ListedSnapshot): number {
  const aDone = a.state === 'completed';
  const bDone = b.state === 'completed';
  if (aDone !== bDone) return aDone ? -1 : 1;
  return earliestFirst(a, b);
}

function newestFirst(a: WantedSet, b: WantedSet): number {
  return b.timeMs - a.timeMs || compareText(a.instanceId, b.instanceId);
}
