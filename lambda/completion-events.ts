/**
 * EBS completion events: EC2 reports a `CreateSnapshots` set whose snapshots failed after the call
 * returned with the EventBridge event `EBS Multi-Volume Snapshots Completion Status`
 * (`detail.result: failed`). The event names the snapshots (ARNs) and their volumes, never their
 * tags, and a rule cannot match on tags: every schedule's worker receives every failed set of the
 * account and Region. The worker describes the snapshots and keeps those whose schedule tag is its
 * own schedule id.
 *
 * Pure parts only (no client): recognising and parsing the event, sorting the described snapshots
 * into this schedule's sets, and the notification's text.
 *
 * @see https://docs.aws.amazon.com/ebs/latest/userguide/ebs-cloud-watch-events.html
 */
import type { Snapshot } from '@aws-sdk/client-ec2';
import {
  EXECUTION_ID_TAG,
  INSTANCE_ID_TAG,
  InvalidRunRequestError,
  SCHEDULE_TAG,
  SCHEDULED_TIME_TAG,
  show,
} from '../src/private/request-contract';

/** What identifies the event (the rule's pattern matches the same values). */
export const COMPLETION_EVENT = {
  source: 'aws.ec2',
  detailType: 'EBS Multi-Volume Snapshots Completion Status',
  event: 'createSnapshots',
  resultFailed: 'failed',
} as const;

/** Snapshot ids per DescribeSnapshots call (values of one filter: EC2 accepts up to 200). */
export const DESCRIBE_IDS_PER_CALL = 200;

/** SNS: a subject is text on one line, without control characters, of fewer than 100 characters. */
export const MAX_SUBJECT_LENGTH = 99;

/** One snapshot as the event names it. */
export interface EventSnapshot {
  readonly snapshotId: string;
  /** The source volume (from its ARN), when the event names it. */
  readonly volumeId?: string;
  /** The snapshot's status as EC2 reported it (`error` for the failed ones). */
  readonly status?: string;
}

/** The fields of the event the worker uses. */
export interface CompletionEvent {
  readonly id: string;
  readonly time: string;
  readonly account: string;
  readonly region: string;
  /** `createSnapshots` */
  readonly event: string;
  /** `succeeded` or `failed` */
  readonly result: string;
  /** EC2's explanation of a failure ('' when none). */
  readonly cause: string;
  /** Each snapshot once, in the event's order. */
  readonly snapshots: EventSnapshot[];
}

/** A snapshot as DescribeSnapshots answered, reduced to what tells the sets apart. */
export interface DescribedSnapshot {
  readonly snapshotId: string;
  readonly tags: Record<string, string>;
}

/** One failed set of this schedule: one instance, one occurrence. */
export interface FailedSet {
  readonly instanceId: string;
  readonly scheduledTime: string;
  /** The Step Functions execution that made it. */
  readonly executionName: string;
  /** Sorted. */
  readonly snapshotIds: string[];
}

/** The event's snapshots, sorted into this schedule's sets and the rest. */
export interface SortedSnapshots {
  /** This schedule's sets, by instance and occurrence. */
  readonly sets: FailedSet[];
  /** Snapshots of other schedules or not made by this library (their ids, sorted). */
  readonly foreignSnapshotIds: string[];
  /** Snapshots EC2 no longer knows (deleted since): their schedule cannot be told (sorted). */
  readonly missingSnapshotIds: string[];
}

const SNAPSHOT_ID = /^snap-[0-9a-f]{8,17}$/;
const UNKNOWN = 'unknown';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whether an invocation's event is an EBS multi-volume completion event (by its source and detail type). */
export function isSnapshotsCompletionEvent(event: unknown): boolean {
  return isRecord(event) && event.source === COMPLETION_EVENT.source && event['detail-type'] === COMPLETION_EVENT.detailType;
}

/** The id at the end of a snapshot (or volume) ARN, or the id itself; undefined for anything else. */
export function resourceIdOf(value: unknown, prefix: 'snap' | 'vol'): string | undefined {
  if (typeof value !== 'string') return undefined;
  const id = value.slice(value.lastIndexOf('/') + 1);
  const pattern = prefix === 'snap' ? SNAPSHOT_ID : /^vol-[0-9a-f]{8,17}$/;
  return pattern.test(id) && (id === value || value.startsWith('arn:')) ? id : undefined;
}

/**
 * Checks and reads a completion event; throws `InvalidRunRequestError` naming the field when it is
 * not one EC2 would send (no snapshot, a snapshot that is not a snapshot ARN or id).
 */
export function parseCompletionEvent(event: unknown): CompletionEvent {
  const e = isRecord(event) ? event : {};
  const detail = isRecord(e.detail) ? e.detail : undefined;
  const text = (value: unknown) => (typeof value === 'string' ? value : '');
  if (!detail) {
    throw new InvalidRunRequestError([{ prop: 'detail', message: `a completion event has a detail object, got: ${show(e.detail)}` }]);
  }
  if (!Array.isArray(detail.snapshots) || detail.snapshots.length === 0) {
    throw new InvalidRunRequestError([{ prop: 'detail.snapshots', message: `a completion event names its snapshots, got: ${show(detail.snapshots)}` }]);
  }
  const snapshots: EventSnapshot[] = [];
  const seen = new Set<string>();
  for (const entry of detail.snapshots as unknown[]) {
    const snapshotId = resourceIdOf(isRecord(entry) ? entry.snapshot_id : undefined, 'snap');
    if (!snapshotId) {
      throw new InvalidRunRequestError([{ prop: 'detail.snapshots', message: `each snapshot has a snapshot_id (a snapshot ARN or id), got: ${show(entry)}` }]);
    }
    if (seen.has(snapshotId)) continue;
    seen.add(snapshotId);
    const r = entry as Record<string, unknown>;
    const volumeId = resourceIdOf(r.source, 'vol');
    snapshots.push({ snapshotId, ...(volumeId ? { volumeId } : {}), ...(typeof r.status === 'string' ? { status: r.status } : {}) });
  }
  return {
    id: text(e.id),
    time: text(e.time),
    account: text(e.account),
    region: text(e.region),
    event: text(detail.event),
    result: text(detail.result),
    cause: text(detail.cause),
    snapshots,
  };
}

/** Whether the event reports a failed `CreateSnapshots` set (the only kind the worker acts on). */
export function isFailedSet(event: CompletionEvent): boolean {
  return event.event === COMPLETION_EVENT.event && event.result === COMPLETION_EVENT.resultFailed;
}

/** Splits ids into DescribeSnapshots calls. */
export function describeBatches(ids: string[], size = DESCRIBE_IDS_PER_CALL): string[][] {
  const batches: string[][] = [];
  for (let i = 0; i < ids.length; i += size) batches.push(ids.slice(i, i + size));
  return batches;
}

/** A DescribeSnapshots answer, reduced. */
export function describedSnapshot(snapshot: Snapshot): DescribedSnapshot {
  return {
    snapshotId: snapshot.SnapshotId ?? '',
    tags: Object.fromEntries((snapshot.Tags ?? []).filter((t) => t.Key !== undefined).map((t) => [t.Key!, t.Value ?? ''])),
  };
}

/**
 * Sorts the event's snapshots: those carrying this schedule's tag, grouped into sets by their
 * instance and occurrence tags; the others; and those EC2 did not describe (gone).
 */
export function sortSnapshots(scheduleId: string, event: CompletionEvent, described: DescribedSnapshot[]): SortedSnapshots {
  const byId = new Map(described.map((d) => [d.snapshotId, d]));
  const sets = new Map<string, { instanceId: string; scheduledTime: string; executionName: string; snapshotIds: string[] }>();
  const foreign: string[] = [];
  const missing: string[] = [];
  for (const { snapshotId } of event.snapshots) {
    const snapshot = byId.get(snapshotId);
    if (!snapshot) {
      missing.push(snapshotId);
      continue;
    }
    if (snapshot.tags[SCHEDULE_TAG] !== scheduleId) {
      foreign.push(snapshotId);
      continue;
    }
    const instanceId = snapshot.tags[INSTANCE_ID_TAG] ?? UNKNOWN;
    const scheduledTime = snapshot.tags[SCHEDULED_TIME_TAG] ?? UNKNOWN;
    const key = `${instanceId}#${scheduledTime}`;
    const set = sets.get(key) ?? { instanceId, scheduledTime, executionName: snapshot.tags[EXECUTION_ID_TAG] ?? UNKNOWN, snapshotIds: [] };
    set.snapshotIds.push(snapshotId);
    sets.set(key, set);
  }
  return {
    sets: [...sets.values()]
      .map((s) => ({ ...s, snapshotIds: [...s.snapshotIds].sort() }))
      .sort((a, b) => a.instanceId.localeCompare(b.instanceId) || a.scheduledTime.localeCompare(b.scheduledTime)),
    foreignSnapshotIds: foreign.sort(),
    missingSnapshotIds: missing.sort(),
  };
}

/** An SNS subject: printable ASCII on one line (anything else becomes `?`), at most `MAX_SUBJECT_LENGTH` characters. */
export function snsSubject(text: string): string {
  const ascii = text.replace(/[^\x20-\x7e]/g, '?');
  return ascii.length <= MAX_SUBJECT_LENGTH ? ascii : `${ascii.slice(0, MAX_SUBJECT_LENGTH - 3)}...`;
}

/** The notification of an event's failed sets of one schedule: an SNS subject and a JSON body. */
export function failureNotification(scheduleId: string, event: CompletionEvent, sorted: SortedSnapshots): { subject: string; message: string } {
  const { sets } = sorted;
  const subject = sets.length === 1
    ? `Snapshot set failed: ${sets[0].instanceId} of ${scheduleId}`
    : `${sets.length} snapshot sets failed: ${scheduleId}`;
  const status = new Map(event.snapshots.map((s) => [s.snapshotId, s]));
  const body = {
    summary: `EC2 reported ${sets.length === 1 ? 'a snapshot set' : `${sets.length} snapshot sets`} of schedule ${scheduleId} failed after CreateSnapshots returned`,
    scheduleId,
    account: event.account,
    region: event.region,
    cause: event.cause,
    eventId: event.id,
    eventTime: event.time,
    sets: sets.map((s) => ({
      instanceId: s.instanceId,
      scheduledTime: s.scheduledTime,
      executionName: s.executionName,
      snapshotIds: s.snapshotIds,
      snapshots: s.snapshotIds.map((id) => ({ snapshotId: id, volumeId: status.get(id)?.volumeId, status: status.get(id)?.status })),
    })),
    ...(sorted.missingSnapshotIds.length > 0 ? { snapshotsNotFound: sorted.missingSnapshotIds } : {}),
  };
  return { subject: snsSubject(subject), message: JSON.stringify(body, undefined, 2) };
}
