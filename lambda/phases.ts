/**
 * The order of a run's phases: the sets are made (passes), then retention deletes what its rules
 * no longer keep, then the sets are copied to other Regions and shared with a vault account; the
 * run ends after the last phase the schedule has.
 */
import { finishRun, newCopyProgress, newPruneProgress, RunCursor } from './ledger';
import { Occurrence, SnapshotRunRequest, WORKFLOW } from '../src/private/request-contract';

/** The sets are made (or reported): the next phase, or the end of the run. */
export function afterSnapshots(request: SnapshotRunRequest, occurrence: Occurrence, cursor: RunCursor, nowMs: number): void {
  if (request.retention) {
    // Also after the account's quota stopped creation, which is when deleting matters most.
    cursor.phase = WORKFLOW.phasePrune;
    cursor.prune = newPruneProgress();
    return;
  }
  afterPrune(request, occurrence, cursor, nowMs);
}

/** Retention is applied (or there is none): the copies, or the end of the run. */
export function afterPrune(request: SnapshotRunRequest, occurrence: Occurrence, cursor: RunCursor, nowMs: number): void {
  // A dry run makes no set, so it has nothing to copy.
  const copies = request.copies ?? [];
  if ((copies.length > 0 || request.vault) && !request.dryRun) {
    cursor.phase = WORKFLOW.phaseCopy;
    cursor.copy = newCopyProgress(copies.map((c) => c.region), request.vault !== undefined);
    return;
  }
  finishRun(cursor, { scheduleId: request.scheduleId, scheduledTime: occurrence.scheduledTime, executionName: occurrence.executionName }, nowMs);
}
