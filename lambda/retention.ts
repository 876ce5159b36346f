/**
 * Retention decisions: which of a schedule's snapshot sets to delete. Pure: snapshots in, sets to
 * delete out; no client, no clock, no I/O. The prune step (lambda/prune-step.ts) lists the
 * schedule's snapshots, asks EC2 which candidates are locked, and deletes what this returns.
 */
import { canonicalScheduledTime, RetentionSpec } from '../src/private/request-contract';

/** One snapshot as DescribeSnapshots lists it, reduced to what retention reads (tags read by the caller). */
export interface ListedSnapshot {
  readonly snapshotId: string;
  readonly volumeId: string;
  /** EC2 state: `pending`, `completed`, `error`, `recoverable`, `recovering`. */
  readonly state: string;
  readonly startTimeMs: number;
  /** The library's ownership tags, absent when the snapshot does not carry them. */
  readonly scheduleId?: string;
  readonly instanceId?: string;
  readonly scheduledTime?: string;
}

/** A set the rules no longer keep. */
export interface SetToDelete {
  readonly instanceId: string;
  readonly scheduledTime: string;
  readonly snapshotIds: string[];
  /**
   * `rules`: no rule keeps it; `duplicate`: a second set of one occurrence; `gone`: its instance is
   * gone and its time is up; `failed`: a snapshot of it is in `error` and no age rule keeps it.
   */
  readonly reason: 'rules' | 'duplicate' | 'gone' | 'failed';
}

/** A set the rules no longer keep that must not be deleted yet. */
export interface HeldSet {
  readonly instanceId: string;
  readonly scheduledTime: string;
  readonly snapshotIds: string[];
  /**
   * `pending`: a snapshot is not completed yet; `locked`: a snapshot lock is in force; `in-use`: a
   * snapshot backs an AMI (EC2 answers InvalidSnapshot.InUse).
   */
  readonly reason: 'pending' | 'locked' | 'in-use';
  /** `locked`: when the last lock of the set expires (epoch ms). */
  readonly untilMs?: number;
  /** `in-use`: the AMI that uses a snapshot of the set. */
  readonly imageId?: string;
}

export interface RetentionInput {
  /** Only snapshots whose schedule tag is exactly this are ever considered. */
  readonly scheduleId: string;
  readonly rules: RetentionSpec;
  /** Every snapshot listed (foreign and malformed ones are ignored and counted). */
  readonly snapshots: readonly ListedSnapshot[];
  /** The instances the schedule selects now: every other instance with sets is gone. */
  readonly liveInstanceIds: ReadonlySet<string>;
  /** The run's own occurrence (canonical scheduled time): its set is never deleted. */
  readonly currentScheduledTime: string;
  readonly nowMs: number;
  /** Snapshot id -> when its lock expires (epoch ms), for the snapshots with a lock in force. */
  readonly lockedUntilMs?: ReadonlyMap<string, number>;
  /** Snapshot id -> the AMI that uses it, for the snapshots that back an AMI. */
  readonly inUseBy?: ReadonlyMap<string, string>;
}

export interface RetentionDecision {
  /** Sorted by instance id, then oldest first. */
  readonly toDelete: SetToDelete[];
  /** Sorted like `toDelete`. */
  readonly held: HeldSet[];
  /** Sets kept by a rule or a protection. */
  readonly kept: number;
  /** Snapshots ignored: another schedule's, or without the ownership tags, or with a malformed scheduled time. */
  readonly ignored: number;
}

/** The calendar granularities of `RetentionSpec`, finest first. */
export const CALENDAR_GRANULARITIES = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
export type CalendarGranularity = typeof CALENDAR_GRANULARITIES[number];

/**
 * Decides which of a schedule's snapshot sets to delete.
 *
 * - Ownership: a snapshot is considered only when its schedule tag is exactly `scheduleId` (case
 *   included), it names an instance and its scheduled time is canonical (`canonicalScheduledTime`
 *   returns it unchanged). Every other snapshot is counted in `ignored` and never deleted.
 * - Sets: the considered snapshots of one instance and one scheduled time. Snapshots of one
 *   CreateSnapshots call share their start time; when an occurrence has several start times, the
 *   primary call is the all-completed one, then the earliest, then the one with the smallest
 *   snapshot id. Another call whose volumes the primary already covers is a `duplicate` and is
 *   deleted (also for the current occurrence); one that adds a volume is merged into the primary,
 *   so a volume's only snapshot of an occurrence is never deleted as a duplicate.
 * - State: `failed` when a snapshot is in `error`, `pending` when one is in any other state than
 *   `completed`, else `completed`.
 * - Rules, per instance, newest set first (a set is kept when any rule keeps it): `count` keeps the
 *   newest N sets that did not fail; `maxAgeSeconds` keeps every set younger than that, failed ones
 *   too; the calendar rules keep, like restic's `forget --keep-*`, the newest set of each of the
 *   last N hours, days, ISO weeks, months and years (in `timeZone`) that have a set that did not fail.
 * - Protections: the current occurrence's set, and a live instance's newest completed set.
 * - Gone instances (not in `liveInstanceIds`) are treated as live until `goneInstanceSeconds` after
 *   their newest set's time; after that only `maxAgeSeconds` keeps their sets, the rest go as `gone`.
 * - A failed set no rule keeps goes as `failed` (also for a gone instance), any other as `rules`.
 * - A set to delete is held instead while a snapshot of it is in a state other than `completed` and
 *   `error` (`pending`), while a lock on a snapshot of it is in force (`locked`, until the latest
 *   expiry), or while a snapshot of it backs an AMI (`in-use`), in that order.
 *
 * One pass over the snapshots, a sort per instance and one of the result; the time zone is consulted
 * once per distinct scheduled time.
 */
export function decideRetention(input: RetentionInput): RetentionDecision {
  const { rules, nowMs } = input;
  const current = canonicalScheduledTime(input.currentScheduledTime) ?? input.currentScheduledTime;
  const locks = input.lockedUntilMs;

  // Owned snapshots by instance, then by scheduled time.
  const byInstance = new Map<string, Map<string, ListedSnapshot[]>>();
  const timeOf = new Map<string, number>();
  let ignored = 0;
  for (const snapshot of input.snapshots) {
    const { instanceId, scheduledTime } = snapshot;
    if (snapshot.scheduleId !== input.scheduleId || typeof instanceId !== 'string' || instanceId.length === 0
      || typeof scheduledTime !== 'string' || ownedTime(timeOf, scheduledTime) === undefined) {
      ignored++;
      continue;
    }
    let occurrences = byInstance.get(instanceId);
    if (!occurrences) byInstance.set(instanceId, occurrences = new Map());
    const snapshots = occurrences.get(scheduledTime);
    if (snapshots) snapshots.push(snapshot);
    else occurrences.set(scheduledTime, [snapshot]);
  }

  const toDelete: Array<[SnapshotSet, SetToDelete]> = [];
  const held: Array<[SnapshotSet, HeldSet]> = [];
  let kept = 0;
  const drop = (set: SnapshotSet, reason: SetToDelete['reason']) => {
    const base = { instanceId: set.instanceId, scheduledTime: set.scheduledTime, snapshotIds: set.snapshots.map((s) => s.snapshotId).sort() };
    if (set.snapshots.some(isPending)) {
      held.push([set, { ...base, reason: 'pending' }]);
      return;
    }
    let untilMs = -Infinity;
    if (locks) {
      for (const s of set.snapshots) {
        const until = locks.get(s.snapshotId);
        if (until !== undefined && until > untilMs) untilMs = until;
      }
    }
    const imageId = input.inUseBy && set.snapshots.map((s) => input.inUseBy!.get(s.snapshotId)).find((x) => x !== undefined);
    if (untilMs > nowMs) held.push([set, { ...base, reason: 'locked', untilMs }]);
    else if (imageId !== undefined) held.push([set, { ...base, reason: 'in-use', imageId }]);
    else toDelete.push([set, { ...base, reason }]);
  };

  const calendar = CALENDAR_GRANULARITIES.filter((g) => rules[g] !== undefined && rules[g]! > 0);
  const buckets = new Map<number, CalendarBuckets>();
  const bucketsOf = (timeMs: number): CalendarBuckets => {
    let b = buckets.get(timeMs);
    if (!b) buckets.set(timeMs, b = calendarBuckets(timeMs, rules.timeZone));
    return b;
  };

  for (const [instanceId, occurrences] of byInstance) {
    const sets: SnapshotSet[] = [];
    for (const [scheduledTime, snapshots] of occurrences) {
      const { primary, duplicates } = resolveOccurrence(instanceId, scheduledTime, timeOf.get(scheduledTime)!, snapshots);
      sets.push(primary);
      for (const duplicate of duplicates) drop(duplicate, 'duplicate');
    }
    sets.sort(newestFirst);

    const keep = new Array<boolean>(sets.length).fill(false);
    const rulesApply = input.liveInstanceIds.has(instanceId) || nowMs - sets[0].timeMs < rules.goneInstanceSeconds * 1000;
    if (rulesApply) {
      let count = rules.count ?? 0;
      const left = calendar.map((g) => rules[g]!);
      const last: Array<string | undefined> = calendar.map(() => undefined);
      let newestCompleted = false;
      for (let i = 0; i < sets.length; i++) {
        const set = sets[i];
        if (!newestCompleted && set.state === 'completed') {
          newestCompleted = true;
          keep[i] = true;
        }
        if (set.state === 'failed') continue;
        if (count > 0) {
          count--;
          keep[i] = true;
        }
        if (calendar.length > 0) {
          const b = bucketsOf(set.timeMs);
          for (let g = 0; g < calendar.length; g++) {
            if (left[g] > 0 && b[calendar[g]] !== last[g]) {
              last[g] = b[calendar[g]];
              left[g]--;
              keep[i] = true;
            }
          }
        }
      }
    }
    for (let i = 0; i < sets.length; i++) {
      const set = sets[i];
      if (keep[i] || set.scheduledTime === current || (rules.maxAgeSeconds !== undefined && nowMs - set.timeMs < rules.maxAgeSeconds * 1000)) {
        kept++;
      } else {
        drop(set, set.state === 'failed' ? 'failed' : rulesApply ? 'rules' : 'gone');
      }
    }
  }

  return { toDelete: inOrder(toDelete), held: inOrder(held), kept, ignored };
}

/** The bucket of each calendar granularity that a time falls in, as comparable keys. */
export type CalendarBuckets = Record<CalendarGranularity, string>;

const formatters = new Map<string, Intl.DateTimeFormat>();

/**
 * The calendar buckets of an instant in an IANA time zone: its local year, month, ISO 8601 week
 * (Monday first, keyed by ISO week-year, so 2026-12-31 and 2027-01-01 are both in 2026-W53), day
 * and hour. The hour key carries the UTC offset, so the hour that a return from daylight-saving
 * time repeats is two hours, as it is in time; days, weeks, months and years are local dates
 * whatever their length (a 23- or 25-hour day is one day).
 */
export function calendarBuckets(timeMs: number, timeZone: string): CalendarBuckets {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
    });
    formatters.set(timeZone, format);
  }
  const f: Record<string, number> = {};
  for (const part of format.formatToParts(timeMs)) {
    if (part.type !== 'literal') f[part.type] = Number(part.value);
  }
  const offsetMinutes = Math.round((utcMs(f.year, f.month, f.day, f.hour, f.minute, f.second) - Math.floor(timeMs / 1000) * 1000) / 60_000);
  // ISO week: the week's Thursday decides its year.
  const dayMs = utcMs(f.year, f.month, f.day);
  const thursdayMs = dayMs + (3 - (new Date(dayMs).getUTCDay() + 6) % 7) * DAY_MS;
  const weekYear = new Date(thursdayMs).getUTCFullYear();
  const week = Math.floor((thursdayMs - utcMs(weekYear, 1, 1)) / (7 * DAY_MS)) + 1;
  const year = String(f.year);
  const month = `${year}-${pad(f.month)}`;
  const day = `${month}-${pad(f.day)}`;
  return {
    hourly: `${day}T${pad(f.hour)}${offsetMinutes < 0 ? '-' : '+'}${Math.abs(offsetMinutes)}`,
    daily: day,
    weekly: `${weekYear}-W${pad(week)}`,
    monthly: month,
    yearly: year,
  };
}

const DAY_MS = 86_400_000;

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** Milliseconds of a UTC wall time (years 0 to 99 too, which `Date.UTC` would move to the 1900s). */
function utcMs(year: number, month: number, day: number, hour = 0, minute = 0, second = 0): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, 0);
  return date.getTime();
}

/** The time of a canonical scheduled time, undefined for any other text (cached: sets share times). */
function ownedTime(cache: Map<string, number>, scheduledTime: string): number | undefined {
  let timeMs = cache.get(scheduledTime);
  if (timeMs === undefined) {
    timeMs = canonicalScheduledTime(scheduledTime) === scheduledTime ? Date.parse(scheduledTime) : NaN;
    cache.set(scheduledTime, timeMs);
  }
  return Number.isNaN(timeMs) ? undefined : timeMs;
}

interface SnapshotSet {
  readonly instanceId: string;
  readonly scheduledTime: string;
  readonly timeMs: number;
  /** The CreateSnapshots call's start time (the primary's, for a set with merged calls). */
  readonly startTimeMs: number;
  readonly snapshots: ListedSnapshot[];
  firstId: string;
  state: 'completed' | 'pending' | 'failed';
}

function isPending(snapshot: ListedSnapshot): boolean {
  return snapshot.state !== 'completed' && snapshot.state !== 'error';
}

function makeSet(instanceId: string, scheduledTime: string, timeMs: number, snapshots: ListedSnapshot[]): SnapshotSet {
  const set: SnapshotSet = { instanceId, scheduledTime, timeMs, startTimeMs: snapshots[0].startTimeMs, snapshots, firstId: '', state: 'completed' };
  summarize(set);
  return set;
}

function summarize(set: SnapshotSet): void {
  let firstId: string | undefined;
  let failed = false;
  let pending = false;
  for (const s of set.snapshots) {
    if (firstId === undefined || s.snapshotId < firstId) firstId = s.snapshotId;
    if (s.state === 'error') failed = true;
    else if (s.state !== 'completed') pending = true;
  }
  set.firstId = firstId ?? '';
  set.state = failed ? 'failed' : pending ? 'pending' : 'completed';
}

/** One occurrence's snapshots as its primary set and the duplicate calls to delete. */
function resolveOccurrence(
  instanceId: string, scheduledTime: string, timeMs: number, snapshots: ListedSnapshot[],
): { primary: SnapshotSet; duplicates: SnapshotSet[] } {
  const start = snapshots[0].startTimeMs;
  if (snapshots.every((s) => s.startTimeMs === start)) {
    return { primary: makeSet(instanceId, scheduledTime, timeMs, snapshots), duplicates: [] };
  }
  const calls = new Map<number, ListedSnapshot[]>();
  for (const s of snapshots) {
    const call = calls.get(s.startTimeMs);
    if (call) call.push(s);
    else calls.set(s.startTimeMs, [s]);
  }
  const [primary, ...others] = [...calls.values()].map((call) => makeSet(instanceId, scheduledTime, timeMs, call)).sort(primaryFirst);
  const volumes = new Set(primary.snapshots.map((s) => s.volumeId));
  const duplicates: SnapshotSet[] = [];
  for (const other of others) {
    if (other.snapshots.every((s) => volumes.has(s.volumeId))) {
      duplicates.push(other);
    } else {
      for (const s of other.snapshots) {
        primary.snapshots.push(s);
        volumes.add(s.volumeId);
      }
    }
  }
  if (duplicates.length < others.length) summarize(primary);
  return { primary, duplicates };
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Which call of an occurrence is its set: all completed, then earliest, then smallest snapshot id. */
function primaryFirst(a: SnapshotSet, b: SnapshotSet): number {
  const aDone = a.snapshots.every((s) => s.state === 'completed');
  const bDone = b.snapshots.every((s) => s.state === 'completed');
  if (aDone !== bDone) return aDone ? -1 : 1;
  return a.startTimeMs - b.startTimeMs || compareText(a.firstId, b.firstId);
}

function newestFirst(a: SnapshotSet, b: SnapshotSet): number {
  return b.timeMs - a.timeMs || b.startTimeMs - a.startTimeMs || compareText(a.firstId, b.firstId);
}

function byInstanceOldestFirst(a: SnapshotSet, b: SnapshotSet): number {
  return compareText(a.instanceId, b.instanceId) || a.timeMs - b.timeMs || a.startTimeMs - b.startTimeMs || compareText(a.firstId, b.firstId);
}

/** Sets to report, by instance id, then oldest first. */
function inOrder<T>(entries: Array<[SnapshotSet, T]>): T[] {
  return entries.sort(([a], [b]) => byInstanceOldestFirst(a, b)).map(([, entry]) => entry);
}

