/**
 * One scheduled run (or one continuation of it): find -> skip what this run already did ->
 * CreateSnapshots for the rest, with bounded concurrency -> hand what is left to a continuation.
 *
 * Every dependency (clients, clock, remaining time, logging, self-invocation) comes in through
 * `RunEnvironment`, so this file is tested without Lambda and with either mocked clients or the
 * real SDK against a local EC2 endpoint.
 */
import {
  CreateSnapshotsCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  EC2Client,
  Snapshot,
} from '@aws-sdk/client-ec2';
import {
  buildCreateSnapshotsInput,
  buildDescribeExcludedVolumesInput,
  buildDescribeInstancesInput,
  buildDescribeRunSnapshotsInput,
  excludedByTag,
  instancesWithSets,
  matchesSelection,
  planInstance,
  PlannedInstance,
} from './ec2-requests';
import { ClassifiedError, classifyError, ErrorAction } from './error-codes';
import { InvalidRunRequestError, SnapshotRunRequest } from '../src/private/request-contract';

/** Tuning of one run. Defaults follow EC2's documented limits; tests and the benchmark scale them. */
export interface RunSettings {
  /** CreateSnapshots calls in flight at once. */
  readonly concurrency: number;
  /** Wait before retrying an instance after SnapshotCreationPerVolumeRateExceeded (EC2: 15 s per volume). */
  readonly perVolumeRetryDelayMs: number;
  /** First backoff after throttling surfaced through the SDK's own retries; doubles per repeat, with jitter. */
  readonly throttleBackoffBaseMs: number;
  /** Largest such backoff. */
  readonly throttleBackoffMaxMs: number;
  /** Wait after an ambiguous failure (5xx, timeout) before looking for the set it may have made. */
  readonly verifyDelayMs: number;
  /** Attempts per instance for per-volume waits and ambiguous failures (throttling retries are not counted). */
  readonly maxAttemptsPerInstance: number;
  /** Stop starting calls when the invocation has less than this left; the rest goes to a continuation. */
  readonly reserveMs: number;
}

export const DEFAULT_SETTINGS: RunSettings = {
  concurrency: 10,
  perVolumeRetryDelayMs: 16_000,
  throttleBackoffBaseMs: 1_000,
  throttleBackoffMaxMs: 20_000,
  verifyDelayMs: 3_000,
  maxAttemptsPerInstance: 4,
  reserveMs: 60_000,
};

/** Structured logging: one JSON line per call, the run's keys added by the caller. */
export interface RunLog {
  info(message: string, attributes?: Record<string, unknown>): void;
  warn(message: string, attributes?: Record<string, unknown>): void;
  error(message: string, attributes?: Record<string, unknown>): void;
}

export interface RunEnvironment {
  /** Client for DescribeInstances and DescribeSnapshots (the SDK retries throttling and server errors). */
  readonly ec2: EC2Client;
  /** Client for CreateSnapshots: the SDK retries throttling only, since any other retry could make a second set. */
  readonly ec2Create: EC2Client;
  readonly log: RunLog;
  readonly settings: RunSettings;
  /** Milliseconds left in this invocation. */
  remainingMs(): number;
  /** Starts a new invocation with the same run and the work left. */
  continueRun(event: ContinuationEvent): Promise<void>;
  now?(): number;
  random?(): number;
}

export type InstanceOutcome = 'created' | 'already-done' | 'dry-run-ok' | 'skipped' | 'failed' | 'not-attempted';

export interface RunCounts {
  selected: number;
  created: number;
  alreadyDone: number;
  dryRunOk: number;
  skipped: number;
  failed: number;
  notAttempted: number;
}

export interface FailureRecord {
  readonly instanceId: string;
  readonly outcome: 'failed' | 'not-attempted';
  readonly code: string;
  readonly message: string;
}

/** What a run has done so far; carried from one invocation to its continuation. */
export interface RunTotals {
  readonly counts: RunCounts;
  /** failed and not-attempted instances by error code. */
  readonly failuresByCode: Record<string, number>;
  /** The first `MAX_FAILURE_RECORDS` failures, for the final error message. */
  readonly failures: FailureRecord[];
  /** HTTP requests made, by action, retries included. */
  readonly apiCalls: Record<string, number>;
  invocations: number;
  readonly startedAtMs: number;
}

export const MAX_FAILURE_RECORDS = 50;

/** A run hands over to at most this many invocations in all (about 90,000 instances at EC2's default rate). */
export const MAX_INVOCATIONS = 20;

/** The event of a continuation: the run's request, the instances left, and the totals so far. */
export interface ContinuationEvent extends SnapshotRunRequest {
  readonly continuation: {
    readonly pending: PlannedInstance[];
    readonly totals: RunTotals;
  };
}

/**
 * The continuation part of an event, checked: absent for a scheduled run; for a continuation, a
 * list of planned instances and the totals so far. Throws `InvalidRunRequestError` otherwise.
 */
export function parseContinuation(event: unknown): ContinuationEvent['continuation'] | undefined {
  const continuation = (event as { continuation?: unknown }).continuation;
  if (continuation === undefined) return undefined;
  const c = continuation as Partial<ContinuationEvent['continuation']>;
  const pendingOk = Array.isArray(c.pending) && c.pending.every((p) => typeof p?.id === 'string' && p.id.startsWith('i-'));
  const totalsOk = typeof c.totals?.counts?.selected === 'number' && Array.isArray(c.totals.failures)
    && typeof c.totals.apiCalls === 'object' && typeof c.totals.invocations === 'number';
  if (!pendingOk || !totalsOk) {
    const shown = JSON.stringify(continuation);
    throw new InvalidRunRequestError([{
      prop: 'continuation',
      message: `continuation must hold the pending instances ({ id: "i-..." }) and the run's totals, got: ${shown.length > 200 ? `${shown.slice(0, 200)}...` : shown}`,
    }]);
  }
  return c as ContinuationEvent['continuation'];
}

export interface RunResult {
  /** `continued`: the rest of the run was handed to a new invocation. */
  readonly status: 'completed' | 'continued';
  readonly totals: RunTotals;
  /** Duration of this invocation. */
  readonly invocationDurationMs: number;
}

/** Thrown at the end of a run in which any instance failed or was not attempted. */
export class RunFailedError extends Error {
  constructor(public readonly totals: RunTotals) {
    const bad = totals.counts.failed + totals.counts.notAttempted;
    const listed = totals.failures.map((f) => `${f.instanceId} ${f.outcome} ${f.code}`).join(', ');
    const more = bad > totals.failures.length ? ` and ${bad - totals.failures.length} more` : '';
    super(`${bad} of ${totals.counts.selected} selected instances have no snapshot set from this run: ${listed}${more}`);
    this.name = 'RunFailedError';
  }
}

export function newTotals(startedAtMs: number): RunTotals {
  return {
    counts: { selected: 0, created: 0, alreadyDone: 0, dryRunOk: 0, skipped: 0, failed: 0, notAttempted: 0 },
    failuresByCode: {},
    failures: [],
    apiCalls: {},
    invocations: 0,
    startedAtMs,
  };
}

interface WorkItem {
  readonly index: number;
  readonly planned: PlannedInstance;
  attempts: number;
  throttles: number;
  notBefore: number;
  /**
   * An earlier call for this instance ended ambiguously (server error, timeout) and the look after
   * it found no set. DescribeSnapshots is eventually consistent, so the set may still show up:
   * look again before every further call.
   */
  unsure?: boolean;
  lastError?: ClassifiedError;
}

type AttemptResult = { kind: 'done' } | { kind: 'again'; delayMs: number } | { kind: 'halt'; error: ClassifiedError };

/**
 * Runs (or continues) one scheduled run. Resolves with the totals; throws only when the run
 * cannot proceed safely (listing or the idempotency look-up failed after the SDK's retries).
 */
export async function runSnapshots(request: SnapshotRunRequest, env: RunEnvironment, continuation?: ContinuationEvent['continuation']): Promise<RunResult> {
  const now = env.now ?? Date.now;
  const random = env.random ?? Math.random;
  const s = env.settings;
  const invocationStart = now();
  const totals: RunTotals = continuation?.totals ?? newTotals(invocationStart);
  totals.invocations += 1;

  const countCall = (action: string, metadata?: { attempts?: number }) => {
    totals.apiCalls[action] = (totals.apiCalls[action] ?? 0) + (metadata?.attempts ?? 1);
  };
  async function call<T extends { $metadata?: { attempts?: number } }>(action: string, send: () => Promise<T>): Promise<T> {
    try {
      const out = await send();
      countCall(action, out.$metadata);
      return out;
    } catch (e) {
      countCall(action, (e as { $metadata?: { attempts?: number } }).$metadata);
      throw e;
    }
  }

  /**
   * Counts and logs one instance's outcome. The human-readable explanation is logged as `detail`:
   * `message` is the log line's own key.
   */
  function record(instanceId: string, outcome: InstanceOutcome, details: { code?: string; detail?: string; snapshotIds?: string[] } = {}): void {
    const c = totals.counts;
    const attributes = { instanceId, outcome, ...details };
    switch (outcome) {
      case 'created': c.created++; env.log.info('snapshot set created', attributes); break;
      case 'already-done': c.alreadyDone++; env.log.info('snapshot set already created by this run', attributes); break;
      case 'dry-run-ok': c.dryRunOk++; env.log.info('dry run: snapshot set would have been created', attributes); break;
      case 'skipped': c.skipped++; env.log.warn('instance skipped', attributes); break;
      case 'failed':
      case 'not-attempted':
        if (outcome === 'failed') c.failed++; else c.notAttempted++;
        env.log.error(outcome === 'failed' ? 'instance failed' : 'instance not attempted', attributes);
        totals.failuresByCode[details.code!] = (totals.failuresByCode[details.code!] ?? 0) + 1;
        if (totals.failures.length < MAX_FAILURE_RECORDS) {
          totals.failures.push({ instanceId, outcome, code: details.code!, message: details.detail ?? '' });
        }
        break;
    }
  }

  async function findRunSets(instanceId?: string): Promise<Map<string, string[]>> {
    const snapshots: Snapshot[] = [];
    let token: string | undefined;
    do {
      const page = await call('DescribeSnapshots', () => env.ec2.send(new DescribeSnapshotsCommand(buildDescribeRunSnapshotsInput(request, token, instanceId))));
      snapshots.push(...(page.Snapshots ?? []));
      token = page.NextToken;
    } while (token);
    return instancesWithSets(snapshots);
  }

  // 1. Find: the listing (first invocation) or the work handed over (continuation).
  let work: PlannedInstance[] = [];
  if (continuation) {
    work = continuation.pending;
  } else {
    // Data volumes excluded by tag: one paginated DescribeVolumes per key (a volume is excluded
    // when it carries ANY of the keys; EC2 ANDs filters, so the keys are asked separately).
    const excludedVolumes = new Set<string>();
    for (const [key, values] of Object.entries(request.excludeDataVolumeTags ?? {})) {
      let volumesToken: string | undefined;
      do {
        const page = await call('DescribeVolumes', () => env.ec2.send(new DescribeVolumesCommand(buildDescribeExcludedVolumesInput(key, values, volumesToken))));
        for (const id of excludedByTag({ [key]: values }, page.Volumes ?? [])) excludedVolumes.add(id);
        volumesToken = page.NextToken;
      } while (volumesToken);
    }
    let token: string | undefined;
    do {
      const page = await call('DescribeInstances', () => env.ec2.send(new DescribeInstancesCommand(buildDescribeInstancesInput(request, token))));
      for (const instance of (page.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
        if (!instance.InstanceId || !matchesSelection(request, instance)) continue;
        totals.counts.selected++;
        const plan = planInstance(request, instance, excludedVolumes);
        if (plan.warning) env.log.warn(plan.warning, { instanceId: instance.InstanceId });
        if (plan.unplanned) record(plan.unplanned.id, plan.unplanned.outcome, { code: plan.unplanned.reason, detail: plan.unplanned.message });
        if (plan.planned) work.push(plan.planned);
      }
      token = page.NextToken;
    } while (token);
    if (totals.counts.selected === 0) {
      env.log.info('no instance carries the selection tags: nothing to snapshot', { instanceTags: request.instanceTags });
    }
  }

  // 2. Idempotency: what this execution id already made (a retried or re-driven run).
  if (!request.dryRun && work.length > 0) {
    const done = await findRunSets();
    work = work.filter((p) => {
      const snapshotIds = done.get(p.id);
      if (snapshotIds) record(p.id, 'already-done', { snapshotIds });
      return !snapshotIds;
    });
  }

  // 3. Act: one CreateSnapshots per instance, bounded concurrency, waits scheduled not slept.

  /** Looks for the set that an ambiguous call may have made; records the outcome when there is one to record. */
  async function lookForSet(id: string, after: ClassifiedError): Promise<'found' | 'none' | 'unknown'> {
    let found: string[] | undefined;
    try {
      found = (await findRunSets(id)).get(id);
    } catch (lookupError) {
      const l = classifyError(lookupError);
      record(id, 'failed', { code: after.code, detail: `${after.message}; could not check whether a set was made (${l.code}: ${l.message}), not retried to avoid a duplicate` });
      return 'unknown';
    }
    if (found) {
      record(id, 'created', { snapshotIds: found, detail: `found after ${after.code}` });
      return 'found';
    }
    return 'none';
  }

  async function attempt(item: WorkItem): Promise<AttemptResult> {
    const id = item.planned.id;
    if (item.unsure && !request.dryRun && item.lastError) {
      if (await lookForSet(id, item.lastError) !== 'none') return { kind: 'done' };
    }
    try {
      const out = await call('CreateSnapshots', () => env.ec2Create.send(new CreateSnapshotsCommand(buildCreateSnapshotsInput(request, item.planned))));
      record(id, 'created', { snapshotIds: (out.Snapshots ?? []).map((x) => x.SnapshotId!) });
      return { kind: 'done' };
    } catch (e) {
      const error = classifyError(e);
      const fail = (): AttemptResult => {
        record(id, 'failed', { code: error.code, detail: error.message });
        return { kind: 'done' };
      };
      switch (error.action) {
        case ErrorAction.DRY_RUN_OK:
          record(id, 'dry-run-ok');
          return { kind: 'done' };
        case ErrorAction.SKIP:
          record(id, 'skipped', { code: error.code, detail: error.message });
          return { kind: 'done' };
        case ErrorAction.HALT:
          fail();
          return { kind: 'halt', error };
        case ErrorAction.WAIT_PER_VOLUME:
          item.attempts++;
          if (item.attempts >= s.maxAttemptsPerInstance) return fail();
          env.log.info('volume snapshotted less than 15 s ago: retrying the instance later', { instanceId: id, code: error.code, delayMs: s.perVolumeRetryDelayMs });
          return { kind: 'again', delayMs: s.perVolumeRetryDelayMs };
        case ErrorAction.THROTTLED: {
          item.throttles++;
          const cap = Math.min(s.throttleBackoffMaxMs, s.throttleBackoffBaseMs * 2 ** (item.throttles - 1));
          return { kind: 'again', delayMs: cap / 2 + random() * (cap / 2) };
        }
        case ErrorAction.AMBIGUOUS: {
          if (!request.dryRun) {
            // The call may have created the set before the error: look before retrying.
            await new Promise((r) => setTimeout(r, s.verifyDelayMs));
            if (await lookForSet(id, error) !== 'none') return { kind: 'done' };
            item.unsure = true;
            item.lastError = error;
          }
          item.attempts++;
          if (item.attempts >= s.maxAttemptsPerInstance) return fail();
          const cap = Math.min(s.throttleBackoffMaxMs, s.throttleBackoffBaseMs * 2 ** (item.attempts - 1));
          return { kind: 'again', delayMs: cap / 2 + random() * (cap / 2) };
        }
        default:
          return fail();
      }
    }
  }

  const ready: WorkItem[] = work.map((planned, index) => ({ index, planned, attempts: 0, throttles: 0, notBefore: 0 }));
  const waiting: WorkItem[] = [];
  const inFlight = new Set<Promise<void>>();
  let halt: ClassifiedError | undefined;
  let timeUp = false;
  let wake: (() => void) | undefined;
  const byIndex = (a: WorkItem, b: WorkItem) => a.index - b.index;

  const waitForEvent = async (maxMs: number) => {
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, Math.max(0, maxMs));
    });
    clearTimeout(timer);
    wake = undefined;
  };

  for (;;) {
    const t = now();
    const due = waiting.filter((w) => w.notBefore <= t);
    if (due.length > 0) {
      for (const d of due) waiting.splice(waiting.indexOf(d), 1);
      ready.unshift(...due.sort(byIndex));
    }
    if (!timeUp && env.remainingMs() < s.reserveMs) {
      timeUp = true;
      env.log.info('time budget nearly used: no new calls in this invocation', { remainingMs: env.remainingMs() });
    }
    const starting = !halt && !timeUp;
    if (starting && ready.length > 0 && inFlight.size < s.concurrency) {
      const item = ready.shift()!;
      const p: Promise<void> = attempt(item).then((result) => {
        if (result.kind === 'again') {
          item.notBefore = now() + result.delayMs;
          waiting.push(item);
        } else if (result.kind === 'halt' && !halt) {
          halt = result.error;
          env.log.error('account snapshot quota reached: no new snapshot sets in this run', { code: result.error.code });
        }
      }).finally(() => {
        inFlight.delete(p);
        wake?.();
      });
      inFlight.add(p);
      continue;
    }
    if (inFlight.size === 0 && (!starting || (ready.length === 0 && waiting.length === 0))) break;
    // Sleep until a call ends, the next waiting instance is due, or the time budget runs low.
    const nextDue = waiting.length > 0 ? Math.min(...waiting.map((w) => w.notBefore)) - t : Number.MAX_SAFE_INTEGER;
    await waitForEvent(starting ? Math.min(nextDue, env.remainingMs() - s.reserveMs, 60_000) : 60_000);
  }

  // 4. Hand over or report what is left.
  const leftover = [...ready, ...waiting].sort(byIndex).map((w) => w.planned);
  let status: RunResult['status'] = 'completed';
  if (leftover.length > 0 && halt) {
    for (const p of leftover) record(p.id, 'not-attempted', { code: halt.code, detail: `not attempted after ${halt.code}: ${halt.message}` });
  } else if (leftover.length > 0 && totals.invocations >= MAX_INVOCATIONS) {
    for (const p of leftover) {
      record(p.id, 'not-attempted', { code: 'ContinuationLimitReached', detail: `the run used ${totals.invocations} invocations, the most it may` });
    }
  } else if (leftover.length > 0) {
    try {
      await env.continueRun({ ...request, continuation: { pending: leftover, totals } });
      status = 'continued';
      env.log.info('run continues in a new invocation', { pending: leftover.length, invocation: totals.invocations + 1 });
    } catch (e) {
      const error = classifyError(e);
      for (const p of leftover) {
        record(p.id, 'not-attempted', { code: 'ContinuationFailed', detail: `out of time and the continuation could not start (${error.code}: ${error.message})` });
      }
    }
  }
  return { status, totals, invocationDurationMs: now() - invocationStart };
}
