/**
 * One copy step of a run: for each destination Region of the schedule's copy rules, list the
 * sources and copies of a batch of instances at a time -> plan (lambda/copy-planning.ts, pure) ->
 * start the copies the destination has room for (EC2 allows 20 in progress per Region) -> apply the
 * destination's retention to instances whose wanted sets are all copied -> return the cursor.
 *
 * CopySnapshot has no client token: a step calls it at most once per source snapshot, and every
 * step plans from a fresh listing, after the workflow's wait between copy steps (longer than
 * DescribeSnapshots' lag), so an answer that was lost is found as a copy instead of made twice.
 */
import { CopySnapshotCommand, CopySnapshotCommandInput, DeleteSnapshotCommand, EC2Client, Tag } from '@aws-sdk/client-ec2';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { planCopies, CopyJob, ListedCopy } from './copy-planning';
import { escapeFilterValue } from './ec2-requests';
import { classifyError, ErrorAction } from './error-codes';
import { CopyRegionProgress, finishRun, Ledger, RunCursor, RunLog } from './ledger';
import { listInstanceSnapshots, listSnapshots, ListedSnapshotOrCopy } from './prune-step';
import { decideRetention } from './retention';
import { counted, listSelection } from './selection';
import { runShareStep } from './share-step';
import { locksInForce } from './snapshot-locks';
import {
  COPY_LIMITS,
  CopyRuleSpec,
  EXECUTION_ID_TAG,
  INSTANCE_ID_TAG,
  Occurrence,
  OWNERSHIP_TAG_PREFIX,
  SCHEDULE_TAG,
  SCHEDULED_TIME_TAG,
  SnapshotRunRequest,
  SOURCE_REGION_TAG,
  SOURCE_SNAPSHOT_TAG,
  WORKFLOW,
} from '../src/private/request-contract';

/** Instances whose sources and copies are listed and planned at a time (the values of one `tag:` filter). */
export const COPY_BATCH_INSTANCES = 100;
/** A run waits this long at most for its copies; what is not copied by then is reported, and the next run copies it. */
export const COPY_WAIT_LIMIT_MS = 20 * 3_600_000;

/** The EC2 clients of one destination Region. */
export interface RegionClients {
  /** DescribeSnapshots, DescribeLockedSnapshots (the SDK retries throttling and server errors). */
  readonly ec2: EC2Client;
  /** CopySnapshot: the SDK retries throttling only (a retried server error could make a second copy). */
  readonly ec2Copy: EC2Client;
  /** DeleteSnapshot (the destination's retention). */
  readonly ec2Delete: EC2Client;
}

export interface CopyEnvironment {
  /** The schedule's own Region: DescribeInstances, DescribeSnapshots. */
  readonly ec2: EC2Client;
  /** The schedule's own Region's name (the copies' SourceRegion). */
  readonly sourceRegion: string;
  /** PutEvents to the vault's bus (schedules with `vault`). */
  readonly events?: EventBridgeClient;
  readonly log: RunLog;
  readonly stepBudgetMs: number;
  readonly reserveMs: number;
  regionClients(region: string): RegionClients;
  remainingMs(): number;
  now?(): number;
}

/** The CopySnapshot request for one source snapshot of a set. */
export function buildCopySnapshotInput(
  request: SnapshotRunRequest,
  rule: CopyRuleSpec,
  sourceRegion: string,
  job: CopyJob,
  sourceTags: readonly Tag[],
  executionName: string,
): CopySnapshotCommandInput {
  const own = (key: string) => key.startsWith(OWNERSHIP_TAG_PREFIX);
  const tags: Tag[] = [
    ...(rule.copyTags ? sourceTags.filter((t) => t.Key !== undefined && !own(t.Key) && !t.Key.startsWith('aws:')) : []),
    { Key: SCHEDULE_TAG, Value: request.scheduleId },
    { Key: SCHEDULED_TIME_TAG, Value: job.scheduledTime },
    { Key: INSTANCE_ID_TAG, Value: job.instanceId },
    { Key: EXECUTION_ID_TAG, Value: executionName },
    { Key: SOURCE_SNAPSHOT_TAG, Value: job.sourceSnapshotId },
    { Key: SOURCE_REGION_TAG, Value: sourceRegion },
  ];
  return {
    SourceRegion: sourceRegion,
    SourceSnapshotId: job.sourceSnapshotId,
    Description: `cdk-instance-snapshots: ${job.sourceSnapshotId} of ${job.instanceId} (${job.scheduledTime}) from ${sourceRegion}`.slice(0, 255),
    ...(rule.kmsKeyArn ? { Encrypted: true, KmsKeyId: rule.kmsKeyArn } : {}),
    ...(rule.completionDurationMinutes !== undefined ? { CompletionDurationMinutes: rule.completionDurationMinutes } : {}),
    TagSpecifications: [{ ResourceType: 'snapshot', Tags: tags }],
  };
}

/**
 * Runs one copy step and returns the cursor for the next: `copy-wait` while copies or their
 * sources are in progress, the end of the run once every Region is done (or the wait limit is
 * reached). Throws only when a listing failed after the SDK's retries.
 */
export async function runCopyStep(
  request: SnapshotRunRequest,
  occurrence: Occurrence,
  cursor: RunCursor,
  env: CopyEnvironment,
): Promise<RunCursor> {
  const now = env.now ?? Date.now;
  const stepStart = now();
  const copy = cursor.copy!;
  const ledger = new Ledger(cursor, env.log);
  const count = (action: string, attempts?: number) => ledger.countCall(action, attempts);
  cursor.steps += 1;
  if (cursor.phase === WORKFLOW.phaseWaitForCopies) copy.waits += 1;
  const outOfTime = () => now() - stepStart >= env.stepBudgetMs || env.remainingMs() < env.reserveMs;

  // The instances to copy for: those selected now, and those with a set of this occurrence (an
  // instance terminated since the run made its set still gets its copies).
  // Listed only when a Region still has copies to make (a schedule may only share with a vault).
  const rules = request.copies ?? [];
  const copying = copy.regions.some((r) => !r.done);
  const live = new Set(copying ? (await listSelection(env.ec2, request, count)).map((i) => i.InstanceId!) : []);
  const ofOccurrence = copying ? await listSnapshots(env.ec2, [
    { Name: `tag:${SCHEDULE_TAG}`, Values: [escapeFilterValue(request.scheduleId)] },
    { Name: `tag:${SCHEDULED_TIME_TAG}`, Values: [escapeFilterValue(occurrence.scheduledTime)] },
  ], count) : [];
  const instances = [...new Set([...live, ...ofOccurrence.map((s) => s.instanceId).filter((x): x is string => !!x)])].sort();
  const sourceTagsOf = new Map<string, Tag[]>();
  let lastRefusal = '';

  for (let r = 0; r < rules.length && !outOfTime(); r++) {
    const progress = copy.regions[r];
    if (progress.done) continue;
    await copyToRegion(rules[r], progress);
  }
  if (copy.share && !copy.share.done && !outOfTime()) {
    if (!env.events) throw new Error('sharing with a vault needs an EventBridge client');
    await runShareStep(request, occurrence, copy.share, { ec2: env.ec2, events: env.events, log: env.log, ledger, count, outOfTime });
  }

  async function copyToRegion(rule: CopyRuleSpec, progress: CopyRegionProgress): Promise<void> {
    const clients = env.regionClients(rule.region);
    const retention = rule.retention;
    // Room under EC2's limit of copies in progress per destination Region (this schedule's count;
    // other copies in the account make EC2 answer ResourceLimitExceeded, which ends the starting).
    const inProgress = await listSnapshots(clients.ec2, [
      { Name: `tag:${SCHEDULE_TAG}`, Values: [escapeFilterValue(request.scheduleId)] },
      { Name: 'status', Values: ['pending'] },
    ], count);
    let room = Math.max(0, COPY_LIMITS.maxConcurrentCopiesPerRegion - inProgress.length);
    progress.inProgress = 0;
    progress.overdue = 0;
    progress.waiting = 0;
    let settledUpTo = progress.after;
    let allSettled = true;
    let refused: string | undefined;
    const todo = instances.filter((id) => id > progress.after);
    for (let i = 0; i < todo.length; i += COPY_BATCH_INSTANCES) {
      if (outOfTime()) { allSettled = false; break; }
      const batch = todo.slice(i, i + COPY_BATCH_INSTANCES);
      const ids = new Set(batch);
      const sources = (await listSourceSnapshots(batch)).filter((s) => ids.has(s.instanceId!));
      const listedCopies = await listInstanceSnapshots(clients.ec2, request.scheduleId, batch, count);
      const copies = listedCopies.filter((s) => ids.has(s.instanceId!)) as ListedCopy[];
      const plan = planCopies({
        scheduleId: request.scheduleId,
        sources,
        copies,
        retention,
        liveInstanceIds: live,
        currentScheduledTime: occurrence.scheduledTime,
        nowMs: now(),
        completionDurationMinutes: rule.completionDurationMinutes,
      });
      progress.inProgress += plan.inProgress;
      progress.overdue += plan.overdue.length;
      for (const o of plan.overdue) {
        env.log.warn('copy overdue: still in progress past its completion duration', { region: rule.region, ...o, completionDurationMinutes: rule.completionDurationMinutes });
      }
      // Start what there is room for, newest sets first.
      const started = new Set<string>();
      for (const job of plan.toCopy) {
        if (room <= 0 || outOfTime()) break;
        const outcome = await startCopy(rule, job);
        if (outcome === 'refused') { refused = lastRefusal; break; }
        if (outcome === 'started') {
          room--;
          started.add(job.instanceId);
          progress.copied++;
          progress.inProgress++;
        }
        if (outcome === 'no-room') room = 0;
      }
      // Settled: nothing left to copy, nothing in progress, no source pending. Failed sources are
      // reported once, when their instance is settled.
      const unsettled = new Set([
        ...plan.toCopy.map((j) => j.instanceId),
        ...plan.waitingForSource.map((s) => s.instanceId),
        ...copies.filter((c) => c.state !== 'completed' && c.state !== 'error').map((c) => c.instanceId!),
        ...started,
      ]);
      progress.waiting += new Set([...plan.toCopy.map((j) => `${j.instanceId}#${j.scheduledTime}`), ...plan.waitingForSource.map((s) => `${s.instanceId}#${s.scheduledTime}`)]).size;
      for (const id of batch) {
        if (unsettled.has(id)) { allSettled = false; continue; }
        // An instance settled after one that is not is looked at again by the next step: its
        // failures are reported once, when the position passes it.
        if (!allSettled) continue;
        for (const failed of plan.failedSources.filter((f) => f.instanceId === id)) {
          progress.failed++;
          env.log.error('snapshot set cannot be copied: a snapshot of it failed', { region: rule.region, ...failed });
          ledger.keepFailure(id, 'copy-failed', 'SourceSnapshotFailed', `the set of ${failed.scheduledTime} cannot be copied to ${rule.region}: a snapshot of it failed`);
        }
        if (retention) progress.deleted += await applyRetention(clients, retention, copies.filter((c) => c.instanceId === id));
        settledUpTo = id;
      }
      if (refused || (room <= 0 && !allSettled)) break; // nothing more can start in this Region now
    }
    progress.after = settledUpTo;
    if (refused) {
      // EC2 refused a copy for a reason that repeating does not change (permissions, a key): the
      // Region is given up for this run, reported; the next run tries again.
      progress.done = true;
      env.log.error('copies to this Region stopped for this run: EC2 refused a copy', { region: rule.region, code: refused });
      return;
    }
    if (allSettled && retention && !outOfTime()) {
      // The copies of instances gone before this occurrence: only a listing of all the schedule's
      // copies in the Region finds them; their retention lapses as in the schedule's own Region.
      const known = new Set(instances);
      const gone = await listSnapshots(clients.ec2, [{ Name: `tag:${SCHEDULE_TAG}`, Values: [escapeFilterValue(request.scheduleId)] }], count,
        (id) => id !== undefined && !known.has(id)) as ListedCopy[];
      const byInstance = new Map<string, ListedCopy[]>();
      for (const c of gone) byInstance.set(c.instanceId!, [...(byInstance.get(c.instanceId!) ?? []), c]);
      for (const [, copies] of [...byInstance].sort(([a], [b]) => (a < b ? -1 : 1))) {
        progress.deleted += await applyRetention(clients, retention, copies);
      }
    }
    if (allSettled) {
      progress.done = true;
      env.log.info('copies complete in Region', { region: rule.region, copied: progress.copied, failed: progress.failed, deleted: progress.deleted });
    }
  }

  /** This schedule's snapshots in its own Region for a batch of instances, with their tags kept for copying. */
  async function listSourceSnapshots(batch: readonly string[]): Promise<ListedSnapshotOrCopy[]> {
    return listSnapshots(env.ec2, [
      { Name: `tag:${SCHEDULE_TAG}`, Values: [escapeFilterValue(request.scheduleId)] },
      { Name: `tag:${INSTANCE_ID_TAG}`, Values: [...batch] },
    ], count, undefined, (id, tags) => sourceTagsOf.set(id, tags));
  }

  /** One CopySnapshot call; never repeated in this step (see the file's comment). */
  async function startCopy(rule: CopyRuleSpec, job: CopyJob): Promise<'started' | 'no-room' | 'refused'> {
    const clients = env.regionClients(rule.region);
    const sourceTags = sourceTagsOf.get(job.sourceSnapshotId) ?? [];
    const input = buildCopySnapshotInput(request, rule, env.sourceRegion, job, sourceTags, occurrence.executionName);
    try {
      const out = await counted(count, 'CopySnapshot', () => clients.ec2Copy.send(new CopySnapshotCommand(input)));
      env.log.info('copy started', { region: rule.region, ...job, copySnapshotId: out.SnapshotId });
      return 'started';
    } catch (e) {
      const error = classifyError(e);
      if (error.code === 'ResourceLimitExceeded') {
        env.log.info('destination has no room for another copy now: the next step goes on', { region: rule.region });
        return 'no-room';
      }
      if (error.action === ErrorAction.THROTTLED || error.action === ErrorAction.AMBIGUOUS) {
        // The copy may exist: the next step, after the wait, lists it before anything is copied again.
        env.log.warn('copy answer unclear or throttled: the next step looks for the copy before copying again', { region: rule.region, ...job, code: error.code });
        return 'no-room';
      }
      copyFailed(rule, job, error.code, error.message);
      lastRefusal = error.code;
      return 'refused';
    }
  }

  function copyFailed(rule: CopyRuleSpec, job: CopyJob, code: string, message: string): void {
    const progress = copy.regions[rules.indexOf(rule)];
    progress.failed++;
    env.log.error('snapshot could not be copied', { region: rule.region, ...job, code, detail: message });
    ledger.keepFailure(job.instanceId, 'copy-failed', code, `copying ${job.sourceSnapshotId} (${job.scheduledTime}) to ${rule.region} failed: ${message}`);
  }

  /** Deletes the copies of one settled instance that the destination's retention no longer keeps; returns how many. */
  async function applyRetention(clients: RegionClients, kept: NonNullable<CopyRuleSpec['retention']>, copies: readonly ListedCopy[]): Promise<number> {
    const decide = (locked?: ReadonlyMap<string, number>) => decideRetention({
      scheduleId: request.scheduleId,
      rules: kept,
      snapshots: copies,
      liveInstanceIds: live,
      currentScheduledTime: occurrence.scheduledTime,
      nowMs: now(),
      lockedUntilMs: locked,
    });
    const candidates = decide().toDelete.flatMap((s) => s.snapshotIds);
    if (candidates.length === 0) return 0;
    const decision = decide(await locksInForce(clients.ec2, candidates, count).catch(() => new Map<string, number>()));
    let deleted = 0;
    for (const set of decision.toDelete) {
      for (const id of set.snapshotIds) {
        try {
          await counted(count, 'DeleteSnapshot', () => clients.ec2Delete.send(new DeleteSnapshotCommand({ SnapshotId: id })));
          deleted++;
        } catch (e) {
          const error = classifyError(e);
          if (error.code === 'InvalidSnapshot.NotFound') continue;
          env.log.warn('copy not deleted: the next run tries again', { snapshotId: id, instanceId: set.instanceId, code: error.code });
          break;
        }
      }
    }
    return deleted;
  }

  const waitedTooLong = now() - cursor.startedAtMs >= COPY_WAIT_LIMIT_MS;
  if (copy.regions.every((r) => r.done) && (copy.share?.done ?? true)) {
    finishRun(cursor, { scheduleId: request.scheduleId, scheduledTime: occurrence.scheduledTime, executionName: occurrence.executionName }, now());
  } else if (waitedTooLong) {
    for (const r of copy.regions.filter((x) => !x.done)) {
      r.failed += r.waiting;
      ledger.keepFailure('', 'copy-failed', 'CopiesNotFinished',
        `${r.waiting} sets were not copied to ${r.region} within ${COPY_WAIT_LIMIT_MS / 3_600_000} hours (${r.inProgress} copies in progress): the next run goes on`);
    }
    if (copy.share && !copy.share.done) {
      copy.share.failed += Math.max(1, copy.share.waiting);
      ledger.keepFailure('', 'share-failed', 'SharesNotFinished',
        `${copy.share.waiting} sets were not shared with the vault within ${COPY_WAIT_LIMIT_MS / 3_600_000} hours: they were not completed`);
    }
    finishRun(cursor, { scheduleId: request.scheduleId, scheduledTime: occurrence.scheduledTime, executionName: occurrence.executionName }, now());
  } else {
    cursor.phase = WORKFLOW.phaseWaitForCopies;
  }
  env.log.info('copy step finished', {
    step: cursor.steps,
    phase: cursor.phase,
    regions: copy.regions.map((r) => ({ region: r.region, done: r.done, copied: r.copied, inProgress: r.inProgress, waiting: r.waiting })),
    durationMs: now() - stepStart,
  });
  return cursor;
}
