/**
 * The run's ledger: what the workflow carries from one worker step to the next (the cursor), how
 * each instance's outcome is counted, and the summary that ends the run.
 *
 * The cursor is small and of bounded size for any fleet: a position in the selection (instance
 * ids in sorted order), counters, at most `MAX_FAILURE_RECORDS` examples and at most
 * `MAX_FAILURE_CODES` error codes. It never lists the instances left to do: every step lists the
 * selection again, so stale or forged cursor content can never widen it.
 */
import type { BucketLevel } from './clients';
import { InvalidRunRequestError, show, WORKFLOW } from '../src/private/request-contract';

export type InstanceOutcome = 'created' | 'already-done' | 'dry-run-ok' | 'skipped' | 'failed' | 'not-attempted';

export interface RunCounts {
  /** Instances the first pass selected. */
  selected: number;
  /** Sets this run created (every pass). */
  created: number;
  /** Instances whose set for this occurrence already existed when the first pass reached them. */
  alreadyDone: number;
  dryRunOk: number;
  /** Instances left out on purpose (gone, nothing to snapshot), in the last pass. */
  skipped: number;
  /** Instances whose set could not be made, in the last pass. */
  failed: number;
  /** Instances not tried in the last pass (account quota reached, instance not yet running or stopped). */
  notAttempted: number;
  /** Of `failed`: sets made whose snapshots could not all be locked (`lock`). */
  lockFailed: number;
}

/** The copy phase's progress in one destination Region. */
export interface CopyRegionProgress {
  readonly region: string;
  /** Every instance with an id <= `after` has all its wanted sets copied ('' before the first). */
  after: string;
  /** Every wanted set is copied and the destination's retention applied. */
  done: boolean;
  /** Copies made (CopySnapshot calls that answered with a copy). */
  copied: number;
  /** Sets that cannot be copied (a source in error, a copy refused). */
  failed: number;
  /** Copies of the destination deleted by its retention (snapshots). */
  deleted: number;
  /** As of the last step: copies in progress, of which overdue, and wanted sets not yet copied. */
  inProgress: number;
  overdue: number;
  waiting: number;
}

/** Sharing the run's sets with a vault account (part of the copy phase). */
export interface ShareProgress {
  /** Every instance with an id <= `after` has had its set shared and announced ('' before the first). */
  after: string;
  done: boolean;
  /** Sets shared and announced on the vault's bus. */
  shared: number;
  /** Sets that cannot be shared (a source in error, EC2 or the bus refused). */
  failed: number;
  /** As of the last step: sets waiting for their snapshots to complete. */
  waiting: number;
}

/** The copy phase: one entry per copy rule, in the request's order, and the vault share. */
export interface CopyProgress {
  regions: CopyRegionProgress[];
  share?: ShareProgress;
  /** Waits between copy steps so far. */
  waits: number;
}

/** A fresh copy phase for the given destination Regions. */
export function newCopyProgress(regions: readonly string[], vault = false): CopyProgress {
  return {
    regions: regions.map((region) => ({ region, after: '', done: false, copied: 0, failed: 0, deleted: 0, inProgress: 0, overdue: 0, waiting: 0 })),
    ...(vault ? { share: { after: '', done: false, shared: 0, failed: 0, waiting: 0 } } : {}),
    waits: 0,
  };
}

/** Retention's progress and counts: the run's prune phase, after its sets are made. */
export interface PruneProgress {
  /** `live`: the selected instances' sets; `gone`: then those of instances no longer selected. */
  stage: 'live' | 'gone';
  /** Every instance of the stage with an id <= `after` has had its sets pruned ('' before the first). */
  after: string;
  /** Sets and snapshots deleted. */
  setsDeleted: number;
  snapshotsDeleted: number;
  /** Dry run: sets the rules would delete. */
  setsToDelete: number;
  /** Sets the rules no longer keep, kept because a snapshot backs an AMI. */
  setsInUse: number;
  /** Sets the rules no longer keep, kept until their snapshot lock expires. */
  setsLocked: number;
  /** Sets the rules no longer keep, kept until their snapshots are completed. */
  setsPending: number;
  /** Sets whose deletion failed. */
  setsFailed: number;
  /** The DeleteSnapshot token bucket as the last step left it. */
  bucket?: BucketLevel;
}

export interface FailureRecord {
  readonly instanceId: string;
  /** `prune-failed`: deleting one of the instance's old sets failed. */
  readonly outcome: 'failed' | 'not-attempted' | 'prune-failed' | 'copy-failed' | 'share-failed';
  readonly code: string;
  readonly message: string;
}

export type Phase = typeof WORKFLOW.phaseSnapshot | typeof WORKFLOW.phaseWaitForRetryPass | typeof WORKFLOW.phaseDone;

/** What the workflow carries between worker steps. */
export interface RunCursor {
  readonly v: 1;
  phase: Phase;
  /** 1 for the first pass over the selection; later passes retry what has no set yet. */
  pass: number;
  /** Every selected instance with an id <= `after` has been handled in this pass ('' before the first). */
  after: string;
  /**
   * The next step handles the selected instances in (`after`, `upto`]; absent: it lists the whole
   * selection first to find the bound (the first step of a pass).
   */
  upto?: string;
  steps: number;
  counts: RunCounts;
  /** failed and not-attempted instances of the last pass, by error code. */
  failuresByCode: Record<string, number>;
  /** The first failures of the last pass. */
  failures: FailureRecord[];
  /** HTTP requests made, by action, retries included. */
  apiCalls: Record<string, number>;
  /** The CreateSnapshots token bucket as the last step left it. */
  bucket?: BucketLevel;
  /** The run's first step began (epoch ms). */
  startedAtMs: number;
  /** An account-wide quota stopped the run: no further pass. */
  halted?: string;
  /** Present from the prune phase on (schedules with retention rules). */
  prune?: PruneProgress;
  /** Present from the copy phase on (schedules with copy rules). */
  copy?: CopyProgress;
  /** Set when `phase` is done. */
  result?: typeof WORKFLOW.resultSucceeded | typeof WORKFLOW.resultFailed;
  summary?: RunSummary;
  /** The summary as JSON text: the cause of a failed execution. */
  summaryText?: string;
}

/** The execution's output (and, when it fails, its cause). */
export interface RunSummary {
  readonly scheduleId: string;
  readonly scheduledTime: string;
  readonly executionName: string;
  readonly result: string;
  readonly counts: RunCounts;
  /** Retention's counts (schedules with retention rules). */
  readonly prune?: Omit<PruneProgress, 'stage' | 'after' | 'bucket'>;
  /** Copies by destination Region (schedules with copy rules). */
  readonly copies?: Array<Omit<CopyRegionProgress, 'after' | 'done'>>;
  /** Sets shared with the vault account (schedules with `vault`). */
  readonly shared?: Omit<ShareProgress, 'after' | 'done'>;
  readonly failuresByCode: Record<string, number>;
  readonly failures: FailureRecord[];
  readonly passes: number;
  readonly steps: number;
  readonly apiCalls: Record<string, number>;
  readonly durationMs: number;
}

export const MAX_FAILURE_RECORDS = 20;
/** Distinct error codes counted by name; the rest are counted under `OTHER_CODE`. */
export const MAX_FAILURE_CODES = 24;
export const OTHER_CODE = 'Other';

export function newCursor(startedAtMs: number): RunCursor {
  return {
    v: 1,
    phase: WORKFLOW.phaseSnapshot,
    pass: 1,
    after: '',
    steps: 0,
    counts: { selected: 0, created: 0, alreadyDone: 0, dryRunOk: 0, skipped: 0, failed: 0, notAttempted: 0, lockFailed: 0 },
    failuresByCode: {},
    failures: [],
    apiCalls: {},
    startedAtMs,
  };
}

/** Starts the next pass: what the last pass left undone is counted again by the new one. */
export function startRetryPass(cursor: RunCursor): void {
  cursor.pass += 1;
  cursor.after = '';
  cursor.upto = undefined;
  cursor.phase = WORKFLOW.phaseSnapshot;
  cursor.counts.skipped = 0;
  cursor.counts.failed = 0;
  cursor.counts.notAttempted = 0;
  cursor.counts.lockFailed = 0;
  cursor.failuresByCode = {};
  cursor.failures = [];
}

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
const PHASES: string[] = [
  WORKFLOW.phaseSnapshot, WORKFLOW.phaseWaitForRetryPass, WORKFLOW.phasePrune, WORKFLOW.phaseCopy, WORKFLOW.phaseWaitForCopies, WORKFLOW.phaseDone,
];
const CURSOR_KEYS = new Set([
  'v', 'phase', 'pass', 'after', 'upto', 'steps', 'counts', 'failuresByCode', 'failures', 'apiCalls', 'bucket', 'startedAtMs', 'halted', 'prune', 'copy',
  'result', 'summary', 'summaryText',
]);
const PRUNE_COUNT_KEYS = ['setsDeleted', 'snapshotsDeleted', 'setsToDelete', 'setsInUse', 'setsLocked', 'setsPending', 'setsFailed'] as const;

/** A fresh prune phase. */
export function newPruneProgress(): PruneProgress {
  return { stage: 'live', after: '', setsDeleted: 0, snapshotsDeleted: 0, setsToDelete: 0, setsInUse: 0, setsLocked: 0, setsPending: 0, setsFailed: 0 };
}

/**
 * Checks a cursor handed back by the workflow: only known fields, a position that is an instance
 * id, counters that are numbers. Throws `InvalidRunRequestError` otherwise.
 */
export function parseCursor(value: unknown): RunCursor {
  const c = value as Partial<RunCursor> | null;
  const problems: string[] = [];
  if (typeof c !== 'object' || c === null || Array.isArray(c)) {
    problems.push('the cursor must be an object');
  } else {
    const unknown = Object.keys(c).filter((k) => !CURSOR_KEYS.has(k));
    if (unknown.length > 0) problems.push(`unknown fields ${show(unknown)}`);
    if (c.v !== 1) problems.push('v must be 1');
    if (!PHASES.includes(c.phase as string)) problems.push(`phase must be one of ${show(PHASES)}`);
    if (!Number.isInteger(c.pass) || c.pass! < 1) problems.push('pass must be a whole number >= 1');
    if (typeof c.after !== 'string' || (c.after !== '' && !INSTANCE_ID.test(c.after))) problems.push('after must be \'\' or an instance id');
    if (c.upto !== undefined && (typeof c.upto !== 'string' || !INSTANCE_ID.test(c.upto) || c.upto <= c.after!)) problems.push('upto must be an instance id after `after`');
    if (!Number.isInteger(c.steps) || c.steps! < 0) problems.push('steps must be a whole number');
    if (!Number.isFinite(c.startedAtMs)) problems.push('startedAtMs must be a number');
    const counts = c.counts as unknown as Record<string, unknown> | undefined;
    const countKeys: Array<keyof RunCounts> = ['selected', 'created', 'alreadyDone', 'dryRunOk', 'skipped', 'failed', 'notAttempted', 'lockFailed'];
    if (typeof counts !== 'object' || counts === null || countKeys.some((k) => !Number.isInteger(counts[k]))) {
      problems.push(`counts must hold ${countKeys.join(', ')}`);
    }
    if (!isNumberMap(c.failuresByCode) || !isNumberMap(c.apiCalls)) problems.push('failuresByCode and apiCalls must map names to numbers');
    if (!Array.isArray(c.failures) || c.failures.length > MAX_FAILURE_RECORDS) problems.push(`failures must be a list of at most ${MAX_FAILURE_RECORDS}`);
    if (c.bucket !== undefined && !isBucketLevel(c.bucket)) problems.push('bucket must hold tokens and atEpochMs');
    if (c.prune !== undefined) problems.push(...pruneProblems(c.prune));
    if (c.phase === WORKFLOW.phasePrune && c.prune === undefined) problems.push('the prune phase needs prune');
    if (c.copy !== undefined) problems.push(...copyProblems(c.copy));
    if ((c.phase === WORKFLOW.phaseCopy || c.phase === WORKFLOW.phaseWaitForCopies) && c.copy === undefined) problems.push('the copy phase needs copy');
  }
  if (problems.length > 0) {
    throw new InvalidRunRequestError([{ prop: 'cursor', message: `cursor is not one this workflow wrote (${problems.join('; ')}), got: ${show(value)}` }]);
  }
  return c as RunCursor;
}

function isBucketLevel(value: unknown): boolean {
  const b = value as Partial<BucketLevel> | null;
  return typeof b === 'object' && b !== null && Number.isFinite(b.tokens) && Number.isFinite(b.atEpochMs);
}

const COPY_COUNT_KEYS = ['copied', 'failed', 'deleted', 'inProgress', 'overdue', 'waiting'] as const;
const REGION_NAME = /^[a-z]{2}(-[a-z]+)+-\d+$/;

function copyProblems(value: unknown): string[] {
  const c = value as Partial<CopyProgress> | null;
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return ['copy must be an object'];
  const problems: string[] = [];
  if (Object.keys(c).some((k) => k !== 'regions' && k !== 'waits' && k !== 'share')) problems.push('copy has unknown fields');
  if (c.share !== undefined) {
    const s = c.share as unknown as Record<string, unknown>;
    if (typeof s !== 'object' || s === null || Object.keys(s).some((k) => !['after', 'done', 'shared', 'failed', 'waiting'].includes(k))
      || typeof s.after !== 'string' || (s.after !== '' && !INSTANCE_ID.test(s.after)) || typeof s.done !== 'boolean'
      || ['shared', 'failed', 'waiting'].some((k) => !Number.isInteger(s[k]) || (s[k] as number) < 0)) {
      problems.push('copy.share must hold after, done, shared, failed and waiting');
    }
  }
  if (!Number.isInteger(c.waits) || c.waits! < 0) problems.push('copy.waits must be a whole number');
  if (!Array.isArray(c.regions) || c.regions.length > 3) return [...problems, 'copy.regions must be a list of at most 3'];
  for (const r of c.regions as unknown as Array<Record<string, unknown>>) {
    if (typeof r !== 'object' || r === null) { problems.push('copy.regions must hold objects'); continue; }
    if (Object.keys(r).some((k) => !['region', 'after', 'done', ...COPY_COUNT_KEYS].includes(k))) problems.push('copy.regions entries have unknown fields');
    if (typeof r.region !== 'string' || !REGION_NAME.test(r.region)) problems.push('copy.regions[].region must be a Region name');
    if (typeof r.after !== 'string' || (r.after !== '' && !INSTANCE_ID.test(r.after))) problems.push('copy.regions[].after must be \'\' or an instance id');
    if (typeof r.done !== 'boolean') problems.push('copy.regions[].done must be a boolean');
    if (COPY_COUNT_KEYS.some((k) => !Number.isInteger(r[k]) || (r[k] as number) < 0)) problems.push(`copy.regions[] must hold ${COPY_COUNT_KEYS.join(', ')}`);
  }
  return problems;
}

function pruneProblems(value: unknown): string[] {
  const p = value as Record<string, unknown> | null;
  if (typeof p !== 'object' || p === null || Array.isArray(p)) return ['prune must be an object'];
  const problems: string[] = [];
  const unknown = Object.keys(p).filter((k) => !['stage', 'after', 'bucket'].includes(k) && !(PRUNE_COUNT_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) problems.push(`prune has unknown fields ${show(unknown)}`);
  if (p.stage !== 'live' && p.stage !== 'gone') problems.push('prune.stage must be "live" or "gone"');
  if (typeof p.after !== 'string' || (p.after !== '' && !INSTANCE_ID.test(p.after))) problems.push('prune.after must be \'\' or an instance id');
  if (PRUNE_COUNT_KEYS.some((k) => !Number.isInteger(p[k]) || (p[k] as number) < 0)) problems.push(`prune must hold ${PRUNE_COUNT_KEYS.join(', ')}`);
  if (p.bucket !== undefined && !isBucketLevel(p.bucket)) problems.push('prune.bucket must hold tokens and atEpochMs');
  return problems;
}

function isNumberMap(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    && Object.keys(value).length <= MAX_FAILURE_CODES + 1 && Object.values(value).every((n) => Number.isFinite(n));
}

/** Structured logging: one JSON line per call, the run's keys added by the caller. */
export interface RunLog {
  info(message: string, attributes?: Record<string, unknown>): void;
  warn(message: string, attributes?: Record<string, unknown>): void;
  error(message: string, attributes?: Record<string, unknown>): void;
}

/** Counts and logs outcomes into a cursor. */
export class Ledger {
  constructor(private readonly cursor: RunCursor, private readonly log: RunLog) {}

  countCall(action: string, attempts = 1): void {
    this.cursor.apiCalls[action] = (this.cursor.apiCalls[action] ?? 0) + attempts;
  }

  /**
   * Counts and logs one instance's outcome. The human-readable explanation is logged as `detail`:
   * `message` is the log line's own key.
   */
  record(instanceId: string, outcome: InstanceOutcome, details: { code?: string; detail?: string; snapshotIds?: string[] } = {}): void {
    const c = this.cursor.counts;
    const attributes = { instanceId, outcome, pass: this.cursor.pass, ...details };
    switch (outcome) {
      case 'created': c.created++; this.log.info('snapshot set created', attributes); break;
      case 'already-done': c.alreadyDone++; this.log.info('snapshot set of this occurrence already exists', attributes); break;
      case 'dry-run-ok': c.dryRunOk++; this.log.info('dry run: snapshot set would have been created', attributes); break;
      case 'skipped': c.skipped++; this.log.warn('instance skipped', attributes); break;
      case 'failed':
      case 'not-attempted': {
        if (outcome === 'failed') c.failed++; else c.notAttempted++;
        this.log.error(outcome === 'failed' ? 'instance failed' : 'instance not attempted', attributes);
        this.keepFailure(instanceId, outcome, details.code, details.detail);
        break;
      }
    }
  }

  /** Counts a failure by code and keeps it as an example while there is room. */
  keepFailure(instanceId: string, outcome: FailureRecord['outcome'], code = 'UnknownError', detail = ''): void {
    const known = this.cursor.failuresByCode;
    const key = known[code] !== undefined || Object.keys(known).length < MAX_FAILURE_CODES ? code : OTHER_CODE;
    known[key] = (known[key] ?? 0) + 1;
    if (this.cursor.failures.length < MAX_FAILURE_RECORDS) {
      this.cursor.failures.push({ instanceId, outcome, code, message: detail.slice(0, 300) });
    }
  }

  /** Instances of the current pass that could not be handled (the reason for another pass). */
  unfinishedInPass(): number {
    return this.cursor.counts.failed + this.cursor.counts.notAttempted;
  }
}

/** Ends the run: sets result, summary and its text on the cursor. */
export function finishRun(cursor: RunCursor, run: { scheduleId: string; scheduledTime: string; executionName: string }, nowMs: number): void {
  const copyFailures = (cursor.copy?.regions ?? []).reduce((n, r) => n + r.failed, 0) + (cursor.copy?.share?.failed ?? 0);
  const failed = cursor.counts.failed + cursor.counts.notAttempted + (cursor.prune?.setsFailed ?? 0) + copyFailures > 0;
  cursor.phase = WORKFLOW.phaseDone;
  cursor.result = failed ? WORKFLOW.resultFailed : WORKFLOW.resultSucceeded;
  const summary: RunSummary = {
    scheduleId: run.scheduleId,
    scheduledTime: run.scheduledTime,
    executionName: run.executionName,
    result: cursor.result,
    counts: { ...cursor.counts },
    ...(cursor.prune ? { prune: pruneCounts(cursor.prune) } : {}),
    ...(cursor.copy ? { copies: cursor.copy.regions.map(({ after: _after, done: _done, ...counts }) => counts) } : {}),
    ...(cursor.copy?.share ? { shared: shareCounts(cursor.copy.share) } : {}),
    failuresByCode: { ...cursor.failuresByCode },
    failures: [...cursor.failures],
    passes: cursor.pass,
    steps: cursor.steps,
    apiCalls: { ...cursor.apiCalls },
    durationMs: nowMs - cursor.startedAtMs,
  };
  cursor.summary = summary;
  cursor.summaryText = JSON.stringify(summary);
}

function pruneCounts(p: PruneProgress): Omit<PruneProgress, 'stage' | 'after' | 'bucket'> {
  const { stage: _stage, after: _after, bucket: _bucket, ...counts } = p;
  return counts;
}

function shareCounts(p: ShareProgress): Omit<ShareProgress, 'after' | 'done'> {
  return { shared: p.shared, failed: p.failed, waiting: p.waiting };
}
