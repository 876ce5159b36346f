/**
 * The AWS clients of the handler, built in one place so that tests and the benchmark use exactly
 * the configuration that ships (only the endpoint, credentials and retry delays are swapped).
 */
import { EC2Client, EC2ClientConfig } from '@aws-sdk/client-ec2';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SNSClient } from '@aws-sdk/client-sns';
import { AdaptiveRetryStrategy, RateLimiter } from '@smithy/core/retry';
import type { RetryErrorInfo, RetryStrategyV2, RetryToken, StandardRetryBackoffStrategy } from '@smithy/types';

/**
 * The SDK's adaptive strategy (client-side rate limiting that learns from throttling, backoff with
 * jitter), retrying throttling errors only. `CreateSnapshots` has no client token: retrying a
 * server error or a timeout could make a second set, so those come back to the handler, which
 * looks for the set before trying again.
 */
export class ThrottlingOnlyRetryStrategy implements RetryStrategyV2 {
  constructor(private readonly inner: RetryStrategyV2) {}
  acquireInitialRetryToken(scope: string): Promise<RetryToken> {
    return this.inner.acquireInitialRetryToken(scope);
  }
  refreshRetryTokenForRetry(token: RetryToken, errorInfo: RetryErrorInfo): Promise<RetryToken> {
    if (errorInfo.errorType !== 'THROTTLING') {
      return Promise.reject(new Error(`not retrying a ${errorInfo.errorType} error: the call may have created a snapshot set`));
    }
    return this.inner.refreshRetryTokenForRetry(token, errorInfo);
  }
  recordSuccess(token: RetryToken): void {
    this.inner.recordSuccess(token);
  }
}

const TIMER_SLACK_MS = 3;

/**
 * Client-side copy of EC2's token bucket for `CreateSnapshots` (EC2: 100 tokens, 5 per second per
 * account and Region): a call waits for a token, calls are served in the order they ask, so a run
 * goes at the bucket's rate without the throttling rounds the SDK's adaptive (CUBIC) limiter needs
 * to find it, and which leave it well below the rate on average. EC2's bucket is shared with every
 * other caller in the account: a throttling answer means it is empty, so the local copy is emptied
 * too (reservations already handed out stay) and the next calls are paced at the refill rate.
 */
export class TokenBucketRateLimiter implements RateLimiter {
  private tokens: number;
  private last: number;

  /**
   * @param initial the bucket as an earlier step of the run left it (`level()`), so that a new
   * invocation does not start with a full bucket that EC2's own bucket no longer has
   */
  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
    initial?: BucketLevel,
    wallClock: () => number = Date.now,
  ) {
    if (!(ratePerSec > 0) || !(burst >= 1)) {
      throw new Error(`a token bucket needs a rate > 0 and a burst >= 1, got: ${ratePerSec}/s, burst ${burst}`);
    }
    this.tokens = initial
      ? Math.min(burst, initial.tokens + (Math.max(0, wallClock() - initial.atEpochMs) / 1000) * ratePerSec)
      : burst;
    this.last = now();
  }

  /** The bucket's level now (negative: calls are waiting for tokens), to hand to the next step. */
  level(wallClock: () => number = Date.now): BucketLevel {
    this.refill();
    return { tokens: Math.round(this.tokens * 1000) / 1000, atEpochMs: wallClock() };
  }

  async getSendToken(): Promise<void> {
    this.refill();
    // Negative tokens are reservations: the caller sends when its token has been refilled.
    this.tokens -= 1;
    if (this.tokens < 0) {
      // Node's timers can fire up to a few ms early (they count from the event loop's cached
      // clock): wait a little longer, so the call does not reach EC2 before its token. Reservations
      // are counted in tokens, not in wake-up times, so this costs no throughput.
      const waitMs = (-this.tokens / this.ratePerSec) * 1000 + TIMER_SLACK_MS;
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }

  updateClientSendingRate(response: unknown): void {
    if ((response as Partial<RetryErrorInfo> | undefined)?.errorType === 'THROTTLING') {
      this.refill();
      this.tokens = Math.min(this.tokens, 0);
    }
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.ratePerSec);
    this.last = t;
  }
}

/** A token bucket's level at a moment (wall clock), carried from one worker step to the next. */
export interface BucketLevel {
  readonly tokens: number;
  readonly atEpochMs: number;
}

/** Exponential backoff with full jitter, from a base and a cap of our own (the SDK's base for throttling is 1 s). */
export class JitteredBackoff implements StandardRetryBackoffStrategy {
  constructor(private readonly baseMs: number, private readonly maxMs: number, private readonly random: () => number = Math.random) {}
  computeNextBackoffDelay(retries: number): number {
    return Math.floor(this.random() * Math.min(this.maxMs, this.baseMs * 2 ** retries));
  }
  setDelayBase(): void {
    // The base is ours: the SDK would set 1 s for throttling and 50 ms otherwise.
  }
}

/** Attempts per DescribeInstances / DescribeSnapshots call (throttling and server errors retried by the SDK). */
export const DESCRIBE_MAX_ATTEMPTS = 10;
/**
 * Attempts per CreateSnapshots call (throttling only). Kept low: the SDK's backoff sleeps do not
 * watch the invocation's time budget, the handler's own retries (after these) do.
 */
export const CREATE_MAX_ATTEMPTS = 5;

/** EC2's default CreateSnapshots bucket (per account and Region). */
export const EC2_CREATE_SNAPSHOTS_PER_SEC = 5;
export const EC2_CREATE_SNAPSHOTS_BURST = 100;

export interface Ec2ClientsOptions {
  /** Merged into both clients' configuration (tests: `endpoint`, `region`, `credentials`). */
  readonly config?: EC2ClientConfig;
  /**
   * CreateSnapshots calls per second granted by the client-side token bucket; 0 uses the SDK's
   * adaptive rate limiter instead.
   * @default 5 (EC2's default refill rate)
   */
  readonly createSnapshotsPerSec?: number;
  /**
   * Capacity of the client-side token bucket.
   * @default 100 (EC2's default bucket size)
   */
  readonly createSnapshotsBurst?: number;
  /**
   * First backoff of a throttled CreateSnapshots retry (full jitter, doubling per retry).
   * @default 1000 (the SDK's base for throttling)
   */
  readonly throttleBackoffBaseMs?: number;
  /**
   * Largest such backoff.
   * @default 20000 (the SDK's cap)
   */
  readonly throttleBackoffMaxMs?: number;
  /** The CreateSnapshots bucket as the run's previous step left it. */
  readonly createSnapshotsBucket?: BucketLevel;
  /**
   * DeleteSnapshot calls per second granted by the delete client's token bucket (EC2's bucket for
   * DeleteSnapshot is separate from CreateSnapshots').
   * @default 5 (EC2's default refill rate)
   */
  readonly deleteSnapshotsPerSec?: number;
  /** The DeleteSnapshot bucket as the run's previous step left it. */
  readonly deleteSnapshotsBucket?: BucketLevel;
  /**
   * Retry backoff of the describe client.
   * @default - the SDK's exponential backoff with full jitter
   */
  readonly describeBackoff?: StandardRetryBackoffStrategy;
}

export interface Ec2Clients {
  /** DescribeInstances and DescribeSnapshots: adaptive retries of throttling and server errors. */
  readonly ec2: EC2Client;
  /** CreateSnapshots: retries of throttling only, paced by a client-side token bucket. */
  readonly ec2Create: EC2Client;
  /** The CreateSnapshots bucket (absent with the SDK's adaptive limiter). */
  readonly createLimiter?: TokenBucketRateLimiter;
  /**
   * DeleteSnapshot: paced by its own client-side token bucket; throttling and server errors are
   * retried by the SDK (a repeated delete of a deleted snapshot answers InvalidSnapshot.NotFound).
   */
  readonly ec2Delete: EC2Client;
  readonly deleteLimiter: TokenBucketRateLimiter;
}

/** EC2's default DeleteSnapshot bucket (per account and Region, separate from CreateSnapshots'). */
export const EC2_DELETE_SNAPSHOT_PER_SEC = 5;
export const EC2_DELETE_SNAPSHOT_BURST = 100;

export function createEc2Clients(options: Ec2ClientsOptions = {}): Ec2Clients {
  const requestHandler = { requestTimeout: 20_000, connectionTimeout: 5_000 };
  const perSec = options.createSnapshotsPerSec ?? EC2_CREATE_SNAPSHOTS_PER_SEC;
  const rateLimiter = perSec > 0
    ? new TokenBucketRateLimiter(perSec, options.createSnapshotsBurst ?? EC2_CREATE_SNAPSHOTS_BURST, undefined, options.createSnapshotsBucket)
    : undefined;
  const deleteLimiter = new TokenBucketRateLimiter(
    options.deleteSnapshotsPerSec ?? EC2_DELETE_SNAPSHOT_PER_SEC, EC2_DELETE_SNAPSHOT_BURST, undefined, options.deleteSnapshotsBucket);
  const createBackoff = new JitteredBackoff(options.throttleBackoffBaseMs ?? 1_000, options.throttleBackoffMaxMs ?? 20_000);
  return {
    ec2: new EC2Client({
      requestHandler,
      ...options.config,
      maxAttempts: DESCRIBE_MAX_ATTEMPTS,
      retryStrategy: new AdaptiveRetryStrategy(DESCRIBE_MAX_ATTEMPTS, options.describeBackoff
        ? { maxAttempts: DESCRIBE_MAX_ATTEMPTS, backoff: options.describeBackoff }
        : undefined),
    }),
    ec2Create: new EC2Client({
      requestHandler,
      ...options.config,
      maxAttempts: CREATE_MAX_ATTEMPTS,
      retryStrategy: new ThrottlingOnlyRetryStrategy(new AdaptiveRetryStrategy(CREATE_MAX_ATTEMPTS, {
        maxAttempts: CREATE_MAX_ATTEMPTS,
        backoff: createBackoff,
        rateLimiter,
      })),
    }),
    createLimiter: rateLimiter,
    ec2Delete: new EC2Client({
      requestHandler,
      ...options.config,
      maxAttempts: DESCRIBE_MAX_ATTEMPTS,
      retryStrategy: new AdaptiveRetryStrategy(DESCRIBE_MAX_ATTEMPTS, {
        maxAttempts: DESCRIBE_MAX_ATTEMPTS,
        backoff: createBackoff,
        rateLimiter: deleteLimiter,
      }),
    }),
    deleteLimiter,
  };
}

/** The client of the vault's event bus (PutEvents): the SDK's standard retries (a repeated event is at worst a second look by the vault). */
export function createEventBridgeClient(): EventBridgeClient {
  return new EventBridgeClient({ requestHandler: { requestTimeout: 20_000, connectionTimeout: 5_000 }, maxAttempts: DESCRIBE_MAX_ATTEMPTS });
}

/** The clients of an EBS completion event (DescribeSnapshots, SNS Publish). */
export interface EventClients {
  readonly ec2: EC2Client;
  readonly sns: SNSClient;
}

/** Clients for completion events: the SDK's standard retries (a repeated Publish is at worst a second notice). */
export function createEventClients(): EventClients {
  const requestHandler = { requestTimeout: 20_000, connectionTimeout: 5_000 };
  return {
    ec2: new EC2Client({ requestHandler, maxAttempts: DESCRIBE_MAX_ATTEMPTS }),
    sns: new SNSClient({ requestHandler }),
  };
}
