/**
 * One worker step of a run: list the selection -> look up what the occurrence already has ->
 * CreateSnapshots for the rest of the step's window, paced and with bounded concurrency -> return
 * the cursor. Windows follow each other in instance-id order (within a window, instances are taken
 * as the listing delivers them). Every instance the step starts is resolved before it returns, so
 * the cursor is a plain position: everything up to it is handled in this pass.
 *
 * Every dependency (clients, clock, remaining time, logging) comes in through `StepEnvironment`,
 * so this file is tested without Lambda, with mocked clients or the real SDK against a local EC2
 * endpoint.
 */
import { CreateSnapshotsCommand, DescribeSnapshotsCommand, EC2Client, Instance, Snapshot } from '@aws-sdk/client-ec2';
import { buildCreateSnapshotsInput, buildDescribeOccurrenceSnapshotsInput, instancesWithSets, LOOKUP_BATCH_SIZE, PlannedInstance, planInstance } from './ec2-requests';
import { ClassifiedError, classifyError, ErrorAction } from './error-codes';
import { Ledger, RunCursor, RunLog, startRetryPass } from './ledger';
import { afterSnapshots } from './phases';
import { after, counted, listExcludedVolumes, listSelection, listSelectionPages } from './selection';
import { lockSet } from './snapshot-locks';
import { DEFAULT_CREATE_SNAPSHOTS_PER_SECOND, Occurrence, SnapshotRunRequest, WORKFLOW } from '../src/private/request-contract';

/** Tuning of the worker. Defaults follow EC2's documented limits; tests and the benchmark scale them. */
export interface RunSettings {
  /** CreateSnapshots calls in flight at once. */
  readonly concurrency: number;
  /** A step starts no new instance after this long (Lambda allows 15 minutes in all). */
  readonly stepBudgetMs: number;
  /** A step stops everything when its invocation has less than this left. */
  readonly reserveMs: number;
  /** Wait before retrying an instance after SnapshotCreationPerVolumeRateExceeded (EC2: 15 s per volume). */
  readonly perVolumeRetryDelayMs: number;
  /** First backoff after throttling surfaced through the SDK's own retries; doubles per repeat, with jitter. */
  readonly throttleBackoffBaseMs: number;
  /** Largest such backoff. */
  readonly throttleBackoffMaxMs: number;
  /**
   * After an answer that leaves open whether a set was made (server error, timeout, or a per-volume
   * rate error that a twin may have caused), keep looking for the set this long before concluding
   * there is none. DescribeSnapshots is eventually consistent: this is the longest lag tolerated.
   */
  readonly settleWindowMs: number;
  /** Between two such looks. */
  readonly lookIntervalMs: number;
  /** CreateSnapshots attempts per instance and pass for per-volume waits and ambiguous failures (throttling is not counted). */
  readonly maxAttemptsPerInstance: number;
  /** Passes over the selection: the first, then retries of what still has no set. */
  readonly maxPasses: number;
}

export const DEFAULT_SETTINGS: RunSettings = {
  concurrency: 10,
  stepBudgetMs: 600_000,
  reserveMs: 30_000,
  perVolumeRetryDelayMs: 16_000,
  throttleBackoffBaseMs: 1_000,
  throttleBackoffMaxMs: 20_000,
  settleWindowMs: 90_000,
  lookIntervalMs: 10_000,
  maxAttemptsPerInstance: 4,
  maxPasses: 3,
};

export interface StepEnvironment {
  /** DescribeInstances, DescribeSnapshots, DescribeVolumes (the SDK retries throttling and server errors). */
  readonly ec2: EC2Client;
  /** CreateSnapshots: the SDK retries throttling only, since any other retry could make a second set. */
  readonly ec2Create: EC2Client;
  readonly log: RunLog;
  readonly settings: RunSettings;
  /** CreateSnapshots calls per second the client paces to: with the step budget, it sizes a step's window. */
  readonly createSnapshotsPerSecond: number;
  /** Milliseconds left in this invocation. */
  remainingMs(): number;
  now?(): number;
  random?(): number;
}

interface WorkItem {
  readonly index: number;
  readonly instance: Instance;
  planned?: PlannedInstance;
  attempts: number;
  throttles: number;
  notBefore: number;
  /** An answer left open whether a set was made: look for it until `settleUntil` before calling again. */
  unsure?: { readonly error: ClassifiedError; readonly settleUntil: number };
  /** One of this item's calls got an ambiguous answer (server error, timeout, empty answer): a set found later may be its own. */
  mayHaveMade?: boolean;
  lastError?: ClassifiedError;
}

type Next = { kind: 'done' } | { kind: 'again'; delayMs: number } | { kind: 'halt'; error: ClassifiedError };

/**
 * Runs one step and returns the cursor for the next. Throws only when the step cannot proceed
 * safely (listing or a look-up failed after the SDK's retries): the workflow then waits for
 * DescribeSnapshots to settle and runs the step again from the same cursor.
 */
export async function runSnapshotStep(
  request: SnapshotRunRequest,
  occurrence: Occurrence,
  cursor: RunCursor,
  env: StepEnvironment,
): Promise<RunCursor> {
  const now = env.now ?? Date.now;
  const random = env.random ?? Math.random;
  const s = env.settings;
  const stepStart = now();
  const ledger = new Ledger(cursor, env.log);
  const count = (action: string, attempts?: number) => ledger.countCall(action, attempts);

  if (cursor.phase === WORKFLOW.phaseWaitForRetryPass) {
    startRetryPass(cursor);
    env.log.info('retry pass: instances without a set of this occurrence are tried again', { pass: cursor.pass });
  }
  cursor.steps += 1;

  const excludedVolumes = await listExcludedVolumes(env.ec2, request, count);

  // The step's window: the selected instances after the cursor, up to `windowEnd`, sized so the
  // step can create their sets within its budget at the paced rate. With a window end from the
  // previous step, the listing streams: calls start with the first page instead of after the last.
  const paced = env.createSnapshotsPerSecond;
  const rate = Number.isFinite(paced) && paced > 0 ? paced : DEFAULT_CREATE_SNAPSHOTS_PER_SECOND;
  const windowFor = (budgetMs: number) => Math.max(s.concurrency, Math.floor((rate * Math.max(0, budgetMs)) / 1000));
  // The next step streams its listing while it creates: its window may use the whole budget.
  const windowSize = windowFor(s.stepBudgetMs);
  const todo: Instance[] = [];
  const beyond: string[] = [];
  let windowEnd = cursor.upto;
  let listingDone = false;
  let listingError: unknown;
  let wake: (() => void) | undefined;
  let streaming: Promise<void> | undefined;
  if (windowEnd === undefined) {
    const selection = await listSelection(env.ec2, request, count);
    const rest = after(selection, cursor.after);
    // This step listed everything before its first call: its window gets what the budget has left.
    const firstWindow = windowFor(s.stepBudgetMs - (now() - stepStart));
    todo.push(...rest.slice(0, firstWindow));
    beyond.push(...rest.slice(firstWindow).map((i) => i.InstanceId!));
    windowEnd = todo.length > 0 ? todo[todo.length - 1].InstanceId! : undefined;
    listingDone = true;
    if (cursor.pass === 1 && cursor.after === '' && selection.length === 0) {
      env.log.warn('no instance carries the selection tags: nothing to snapshot', { instanceTags: request.instanceTags });
    }
  } else {
    const end = windowEnd;
    streaming = listSelectionPages(env.ec2, request, count, (instance) => {
      const id = instance.InstanceId!;
      if (id > cursor.after && id <= end) {
        todo.push(instance);
        wake?.();
      } else if (id > end) {
        beyond.push(id);
      }
    }).then(() => { listingDone = true; wake?.(); }, (e) => { listingError = e; listingDone = true; wake?.(); });
  }

  async function findSets(ids: readonly string[]): Promise<Map<string, string[]>> {
    const snapshots: Snapshot[] = [];
    let token: string | undefined;
    do {
      const page = await counted(count, 'DescribeSnapshots', () => env.ec2.send(new DescribeSnapshotsCommand(buildDescribeOccurrenceSnapshotsInput(request, occurrence, ids, token))));
      snapshots.push(...(page.Snapshots ?? []));
      token = page.NextToken;
    } while (token);
    return instancesWithSets(request, occurrence, snapshots);
  }

  // Look-ups of what the occurrence already has: one per batch of the window's instances as they
  // are started (the window may still be growing while the listing streams), one batch ahead.
  const lookupOf: Array<Promise<Map<string, string[]>>> = [];
  let covered = 0;
  const lookupFor = (index: number): Promise<Map<string, string[]>> => {
    if (request.dryRun) return Promise.resolve(new Map());
    while (covered <= index || (covered < todo.length && covered < index + LOOKUP_BATCH_SIZE)) {
      const batch = todo.slice(covered, covered + LOOKUP_BATCH_SIZE);
      const p = findSets(batch.map((i) => i.InstanceId!));
      p.catch(() => undefined); // awaited (and reported) by the items that need it
      batch.forEach((_, k) => { lookupOf[covered + k] = p; });
      covered += batch.length;
    }
    return lookupOf[index];
  };

  /** First visit of an instance in this pass: already done, not to be done, or planned. */
  async function visit(item: WorkItem): Promise<Next | undefined> {
    const instance = item.instance;
    const id = instance.InstanceId!;
    if (cursor.pass === 1) cursor.counts.selected++;
    const existing = (await lookupFor(item.index)).get(id);
    if (existing) {
      // A set found again may have been made by a step that failed before it could lock it.
      if (!(await locked(id, existing, false))) return { kind: 'done' };
      if (cursor.pass === 1) ledger.record(id, 'already-done', { snapshotIds: existing });
      return { kind: 'done' };
    }
    const plan = planInstance(request, instance, excludedVolumes);
    if (plan.warning) env.log.warn(plan.warning, { instanceId: id });
    if (plan.unplanned) {
      ledger.record(id, plan.unplanned.outcome, { code: plan.unplanned.reason, detail: plan.unplanned.message });
      return { kind: 'done' };
    }
    item.planned = plan.planned;
    return undefined;
  }

  /**
   * Puts the schedule's lock on a set (`lock`); true when the set is protected as asked. A set
   * that could not be locked is recorded failed: it exists, without the protection asked for; a
   * later pass finds it and tries the lock again.
   */
  async function locked(id: string, snapshotIds: string[], justMade: boolean): Promise<boolean> {
    if (!request.lock || request.dryRun) return true;
    try {
      await lockSet(env.ec2, request.lock, snapshotIds, count, { knownUnlocked: justMade });
      return true;
    } catch (e) {
      const error = classifyError(e);
      cursor.counts.lockFailed++;
      ledger.record(id, 'failed', {
        code: `LockSnapshot.${error.code}`,
        detail: `the set exists but could not be locked: ${error.message}`,
        snapshotIds,
      });
      return false;
    }
  }

  /** Looks for the set an open answer may have made. */
  async function look(item: WorkItem): Promise<Next> {
    const id = item.instance.InstanceId!;
    const open = item.unsure!;
    const found = (await findSets([id])).get(id);
    if (found) {
      // Our own call made it if one of its answers was ambiguous; after per-volume rate errors
      // only, another maker did (as when the batch look-up finds a set).
      const ours = item.mayHaveMade === true;
      if (!(await locked(id, found, false))) return { kind: 'done' };
      ledger.record(id, ours || cursor.pass > 1 ? 'created' : 'already-done', { snapshotIds: found, detail: `found after ${open.error.code}` });
      return { kind: 'done' };
    }
    if (now() < open.settleUntil) return { kind: 'again', delayMs: s.lookIntervalMs };
    item.unsure = undefined;
    return { kind: 'again', delayMs: 0 };
  }

  async function create(item: WorkItem): Promise<Next> {
    const id = item.instance.InstanceId!;
    try {
      const out = await counted(count, 'CreateSnapshots', () => env.ec2Create.send(new CreateSnapshotsCommand(buildCreateSnapshotsInput(request, occurrence, item.planned!))));
      const snapshotIds = (out.Snapshots ?? []).map((x) => x.SnapshotId).filter((x): x is string => !!x);
      if (snapshotIds.length === 0) {
        // EC2 answered without a snapshot: whether a set exists is open, so look before anything else.
        return unsure(item, { action: ErrorAction.AMBIGUOUS, code: 'EmptyCreateSnapshotsAnswer', message: 'CreateSnapshots answered without any snapshot' });
      }
      if (!(await locked(id, snapshotIds, true))) return { kind: 'done' };
      ledger.record(id, 'created', { snapshotIds });
      return { kind: 'done' };
    } catch (e) {
      const error = classifyError(e);
      item.lastError = error;
      const fail = (): Next => {
        ledger.record(id, 'failed', { code: error.code, detail: error.message });
        return { kind: 'done' };
      };
      switch (error.action) {
        case ErrorAction.DRY_RUN_OK:
          ledger.record(id, 'dry-run-ok');
          return { kind: 'done' };
        case ErrorAction.SKIP:
          ledger.record(id, 'skipped', { code: error.code, detail: error.message });
          return { kind: 'done' };
        case ErrorAction.HALT:
          fail();
          return { kind: 'halt', error };
        case ErrorAction.THROTTLED: {
          item.throttles++;
          const cap = Math.min(s.throttleBackoffMaxMs, s.throttleBackoffBaseMs * 2 ** (item.throttles - 1));
          return { kind: 'again', delayMs: cap / 2 + random() * (cap / 2) };
        }
        case ErrorAction.WAIT_PER_VOLUME:
        case ErrorAction.AMBIGUOUS:
          return unsure(item, error);
        default:
          return fail();
      }
    }
  }

  /**
   * An answer that leaves open whether a set exists: a server error or timeout (the call may have
   * made it), or a per-volume rate error (a twin of this run may have made it). Look for the set
   * until DescribeSnapshots has caught up, and only then call again.
   */
  function unsure(item: WorkItem, error: ClassifiedError): Next {
    item.attempts++;
    item.lastError = error;
    if (error.action === ErrorAction.AMBIGUOUS) item.mayHaveMade = true;
    if (request.dryRun) {
      // A dry run makes nothing: there is nothing to look for.
      return { kind: 'again', delayMs: error.action === ErrorAction.WAIT_PER_VOLUME ? s.perVolumeRetryDelayMs : s.throttleBackoffBaseMs };
    }
    const settle = Math.max(s.settleWindowMs, error.action === ErrorAction.WAIT_PER_VOLUME ? s.perVolumeRetryDelayMs : 0);
    item.unsure = { error, settleUntil: now() + settle };
    env.log.info('answer leaves open whether a set was made: looking for it before calling again', {
      instanceId: item.instance.InstanceId, code: error.code, attempt: item.attempts, settleMs: settle,
    });
    return { kind: 'again', delayMs: Math.min(s.lookIntervalMs, settle) };
  }

  async function advance(item: WorkItem): Promise<Next> {
    if (!item.planned) {
      const visited = await visit(item);
      if (visited) return visited;
    }
    if (item.unsure) return look(item);
    if (item.attempts >= s.maxAttemptsPerInstance) {
      const error = item.lastError!;
      ledger.record(item.instance.InstanceId!, 'failed', { code: error.code, detail: `${error.message} (after ${item.attempts} attempts and no set found)` });
      return { kind: 'done' };
    }
    return create(item);
  }

  // The loop: start the window's instances as they come; retry or look again when due.
  const waiting: WorkItem[] = [];
  const inFlight = new Set<Promise<void>>();
  let nextIndex = 0;
  let halt: ClassifiedError | undefined;
  const failures: unknown[] = [];
  const hardStop = () => env.remainingMs() < s.reserveMs;
  const mayStart = () => !halt && !hardStop() && listingError === undefined;

  const run = (item: WorkItem) => {
    const p: Promise<void> = advance(item).then((next) => {
      if (next.kind === 'again') {
        item.notBefore = now() + next.delayMs;
        waiting.push(item);
      } else if (next.kind === 'halt' && !halt) {
        halt = next.error;
        env.log.error('account snapshot quota reached: no new snapshot sets in this run', { code: next.error.code });
      }
    }, (e) => {
      // A look-up that failed after the SDK's retries: the step cannot tell what exists. Stop
      // starting anything; the workflow repeats the step after DescribeSnapshots has settled.
      failures.push(e);
    }).finally(() => {
      inFlight.delete(p);
      wake?.();
    });
    inFlight.add(p);
  };

  for (;;) {
    const t = now();
    let started = false;
    if (mayStart() && failures.length === 0) {
      const due = waiting.filter((w) => w.notBefore <= t).sort((a, b) => a.index - b.index);
      for (const d of due) {
        if (inFlight.size >= s.concurrency) break;
        waiting.splice(waiting.indexOf(d), 1);
        run(d);
        started = true;
      }
      while (inFlight.size < s.concurrency && nextIndex < todo.length) {
        run({ index: nextIndex, instance: todo[nextIndex], attempts: 0, throttles: 0, notBefore: 0 });
        nextIndex++;
        started = true;
      }
    }
    if (started) continue;
    const stopping = !mayStart() || failures.length > 0;
    const moreToCome = !stopping && (!listingDone || nextIndex < todo.length);
    if (inFlight.size === 0 && !moreToCome && (waiting.length === 0 || stopping)) break;
    // Sleep until a call ends, a page arrives, the next waiting instance is due, or time runs low.
    const nextDue = waiting.length > 0 ? Math.min(...waiting.map((w) => w.notBefore)) - t : 60_000;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, Math.min(nextDue, env.remainingMs() - s.reserveMs, 60_000)));
      wake = () => { clearTimeout(timer); resolve(); };
    });
    wake = undefined;
  }
  // Stopped (time, quota) while the listing still streams: let it end, so that every instance of
  // the window is accounted for below and the next window starts after the right one.
  await streaming;
  if (failures.length > 0 || listingError !== undefined) {
    throw failures[0] ?? listingError;
  }

  // Started but unresolved when the invocation ran out of time: reported for this pass; the next
  // pass looks for their sets first (it starts well after DescribeSnapshots has settled).
  for (const item of waiting.sort((a, b) => a.index - b.index)) {
    const error = item.unsure?.error ?? item.lastError;
    ledger.record(item.instance.InstanceId!, 'failed', {
      code: error?.code ?? 'StepOutOfTime',
      detail: `unresolved when the step ran out of time${error ? ` (last answer: ${error.message})` : ''}; a later pass looks for its set first`,
    });
  }
  // Not started: after a quota error, every instance left in the pass; after running out of time,
  // the rest of the window (a later pass takes them).
  const unstarted = todo.slice(nextIndex).map((i) => i.InstanceId!);
  if (halt) unstarted.push(...beyond);
  for (const id of unstarted) {
    if (cursor.pass === 1) cursor.counts.selected++;
    ledger.record(id, 'not-attempted', halt
      ? { code: halt.code, detail: `not attempted after ${halt.code}: ${halt.message}` }
      : { code: 'StepOutOfTime', detail: 'the step ran out of time before it could start this instance; a later pass takes it' });
  }
  if (halt) cursor.halted = halt.code;

  // The next window: the instances after this one, up to the window size.
  beyond.sort();
  if (windowEnd !== undefined) cursor.after = windowEnd;
  cursor.upto = halt || beyond.length === 0 ? undefined : beyond[Math.min(windowSize, beyond.length) - 1];
  const passDone = halt !== undefined || cursor.upto === undefined;
  if (!passDone) {
    cursor.phase = WORKFLOW.phaseSnapshot;
  } else if (!halt && ledger.unfinishedInPass() > 0 && cursor.pass < s.maxPasses && !request.dryRun) {
    cursor.phase = WORKFLOW.phaseWaitForRetryPass;
    env.log.info('pass finished with instances left: a retry pass follows', { pass: cursor.pass, unfinished: ledger.unfinishedInPass() });
  } else {
    afterSnapshots(request, occurrence, cursor, now());
  }
  env.log.info('step finished', { pass: cursor.pass, step: cursor.steps, after: cursor.after, phase: cursor.phase, window: todo.length, durationMs: now() - stepStart });
  return cursor;
}
