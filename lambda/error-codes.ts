/**
 * What the handler does with each error `CreateSnapshots` can answer (see EC2's error codes).
 */

/** How the handler treats one failed `CreateSnapshots` call. */
export enum ErrorAction {
  /** DryRun: the call would have succeeded. */
  DRY_RUN_OK = 'dry-run-ok',
  /** A volume was snapshotted less than 15 s ago: wait, then retry the instance in this run. */
  WAIT_PER_VOLUME = 'wait-per-volume',
  /** Request rate exceeded (the SDK's own retries ran out): back off and retry while time remains. */
  THROTTLED = 'throttled',
  /** The instance is gone: reported as skipped, not as a failure. */
  SKIP = 'skip',
  /** Reported as failed at once, not retried in this run. */
  FAIL = 'fail',
  /** Account-wide snapshot quota: fail this instance and start no further set in this run. */
  HALT = 'halt',
  /** The call may or may not have created a set (server error, timeout, network): look before retrying. */
  AMBIGUOUS = 'ambiguous',
}

const BY_CODE: Record<string, ErrorAction> = {
  'DryRunOperation': ErrorAction.DRY_RUN_OK,
  'SnapshotCreationPerVolumeRateExceeded': ErrorAction.WAIT_PER_VOLUME,
  'RequestLimitExceeded': ErrorAction.THROTTLED,
  'Throttling': ErrorAction.THROTTLED,
  'InvalidInstanceID.NotFound': ErrorAction.SKIP,
  'ConcurrentSnapshotLimitExceeded': ErrorAction.FAIL,
  'IncorrectState': ErrorAction.FAIL,
  'PendingSnapshotLimitExceeded': ErrorAction.HALT,
  'SnapshotLimitExceeded': ErrorAction.HALT,
  'InternalError': ErrorAction.AMBIGUOUS,
  'InternalFailure': ErrorAction.AMBIGUOUS,
  'ServiceUnavailable': ErrorAction.AMBIGUOUS,
  'Unavailable': ErrorAction.AMBIGUOUS,
  'TimeoutError': ErrorAction.AMBIGUOUS,
  'RequestTimeout': ErrorAction.AMBIGUOUS,
};

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** An error, reduced to what the handler reports and decides on. */
export interface ClassifiedError {
  readonly action: ErrorAction;
  /** EC2's error code, or the error's name / Node's network code. */
  readonly code: string;
  readonly message: string;
}

/** Classifies anything a `CreateSnapshots` call threw. */
export function classifyError(error: unknown): ClassifiedError {
  const e = (typeof error === 'object' && error !== null ? error : {}) as {
    name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number };
  };
  const code = (e.code && NETWORK_CODES.has(e.code) ? e.code : e.name) ?? 'UnknownError';
  const message = e.message ?? String(error);
  const known = BY_CODE[code];
  if (known) {
    return { action: known, code, message };
  }
  if (NETWORK_CODES.has(code)) {
    return { action: ErrorAction.AMBIGUOUS, code, message };
  }
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500) {
    return { action: ErrorAction.AMBIGUOUS, code, message };
  }
  // Every other answer (bad parameters, permissions, tag policy, KMS, anything unknown) is
  // reported with its code and not retried: repeating it would fail the same way.
  return { action: ErrorAction.FAIL, code, message };
}
