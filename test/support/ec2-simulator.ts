/**
 * In-process simulator of the subset of the Amazon EC2 *query protocol* used by the
 * snapshot code: DescribeInstances, CreateSnapshots, DescribeSnapshots and DescribeVolumes; the
 * snapshot lifecycle: DeleteSnapshot, LockSnapshot, DescribeLockedSnapshots and DescribeImages (for the
 * images registered with `registerImage`); copies and sharing: CopySnapshot, ModifySnapshotAttribute and
 * DescribeSnapshotAttribute (createVolumePermission); CreateTags (of snapshots only); and of Lambda's
 * `Invoke` (REST-JSON, `POST /2015-03-31/functions/{name}/invocations`), which only records the
 * payload (the handler's continuation), so `AWS_ENDPOINT_URL_LAMBDA` can point here too.
 *
 * Point a real `EC2Client` at it with `endpoint: sim.endpoint` (or the env variable
 * `AWS_ENDPOINT_URL_EC2`). Requests are form-encoded POSTs (`Action=...&Version=2016-11-15&...`),
 * answers are EC2 style XML; errors use the EC2 `<Response><Errors><Error>` envelope and
 * the `x-amzn-requestid` header, which the SDK copies into `$metadata.requestId`.
 *
 * Snapshot states, lock states and time stamps follow the simulator's clock (`clock`, default
 * `Date.now`), computed when read: there are no timers. Token buckets and the per-volume interval
 * use real time.
 *
 * Regions: one simulator serves several Regions at one endpoint. The Region of a request is the one in
 * the credential scope of its SigV4 `Authorization` header (`Credential=AKID/20261124/<region>/ec2/aws4_request`),
 * or the simulator's own (`region`) without one. Instances (and their volumes and the registered images)
 * live in the simulator's own Region only; every snapshot has a Region, and every snapshot action and
 * listing sees only the snapshots of the request's Region. The getters (`snapshots`, `setsByInstance`,
 * `deletions`, ...) mean the simulator's own Region; `snapshotsIn(region)` lists another's.
 *
 * Accounts: with `accounts` (access key id -> account id) one simulator serves several AWS accounts. The
 * account of a request is the one of the access key id in its credential scope; an unknown or missing key
 * means the simulator's own (`accountId`). Instances, volumes and images are the own account's only. Every
 * snapshot has an owner (`ownerId`), and every snapshot action works per (account, Region): a request sees
 * and acts on its own account's snapshots only, except that a snapshot shared with it (createVolumePermission)
 * can be described (by id, by its owner, or with RestorableBy; without its tags) and copied. The getters mean
 * the own account; `snapshotsOf(accountId, region)` lists another's.
 *
 * Only Node built-ins are used. Signatures are not checked.
 */
import { randomBytes, randomUUID, createHash } from 'crypto';
import * as http from 'http';
import { AddressInfo } from 'net';

export interface SimInstance {
  instanceId: string;
  /** default 'running' (pending|running|stopping|stopped|shutting-down|terminated) */
  state?: string;
  tags?: Record<string, string>;
  /** first one is the root volume (device /dev/xvda), others /dev/sdf, /dev/sdg... */
  volumeIds: string[];
  /** volumeId -> tags of that volume (DescribeVolumes) */
  volumeTags?: Record<string, Record<string, string>>;
  outpostArn?: string;
}

export type SimSnapshotState = 'pending' | 'completed' | 'error';

export interface SimSnapshot {
  snapshotId: string;
  /** the account that owns it (seeds: default the simulator's own `accountId`) */
  ownerId: string;
  /** the Region the snapshot is in (seeds: default the simulator's own) */
  region: string;
  volumeId: string;
  /** the instance whose volume it is (a copy: the source's), for `setsByInstance` */
  instanceId: string;
  description?: string;
  /** GiB; default 8 */
  volumeSize?: number;
  /** default false */
  encrypted?: boolean;
  /** the KMS key of an encrypted snapshot; absent: the AWS managed key (`alias/aws/ebs`) */
  kmsKeyId?: string;
  /** a copy (CopySnapshot): the snapshot it was copied from, and that snapshot's Region */
  sourceSnapshotId?: string;
  sourceRegion?: string;
  /** a time-based copy: its CompletionDurationMinutes */
  completionDurationMinutes?: number;
  tags: Record<string, string>;
  outpostArn?: string;
  /** the `Location` of the CreateSnapshots call (`local`: in the instance's Local Zone); absent when the call had none */
  location?: 'regional' | 'local';
  /** epoch ms; the same for all snapshots of one CreateSnapshots call */
  startTimeMs: number;
  /**
   * default 'completed'. With `snapshotCompletionMs` (a copy: `copyCompletionMs`) a new snapshot is
   * 'pending' until that many ms after its start time; `setSnapshotState` fixes a state. Kept up to date on the objects that
   * `snapshots` and `snapshot()` return.
   */
  state?: SimSnapshotState;
  /** '100%' when completed; while pending it rises with time (as of the last read) */
  progress?: string;
}

/**
 * What `seedSnapshots` takes: a snapshot whose id (default: generated), owner (the simulator's own
 * account), Region (the simulator's own), tags ({}) and start time (now) may be left out.
 */
export type SimSnapshotSeed = Omit<SimSnapshot, 'snapshotId' | 'ownerId' | 'region' | 'tags' | 'startTimeMs'>
  & Partial<Pick<SimSnapshot, 'snapshotId' | 'ownerId' | 'region' | 'tags' | 'startTimeMs'>>;

/** One snapshot deleted by DeleteSnapshot. */
export interface SimDeletion {
  snapshotId: string;
  /** epoch ms on the simulator's clock */
  atMs: number;
  snapshot: SimSnapshot;
}

export type SimLockMode = 'governance' | 'compliance';
export type SimLockState = 'governance' | 'compliance-cooloff' | 'compliance' | 'expired';

/** A snapshot lock as set by LockSnapshot (or `setSnapshotLock`): what was asked for. */
export interface SimLockSpec {
  mode: SimLockMode;
  /** days, counted from when the snapshot is completed (or from the lock, if later); or `expirationDateMs` */
  lockDurationDays?: number;
  expirationDateMs?: number;
  /** compliance mode only: hours from the lock's creation during which it can still be changed */
  coolOffPeriodHours?: number;
  /** default: now */
  createdOnMs?: number;
}

/** A snapshot lock as DescribeLockedSnapshots shows it now. */
export interface SimSnapshotLock {
  snapshotId: string;
  lockState: SimLockState;
  lockDurationDays?: number;
  coolOffPeriodHours?: number;
  coolOffPeriodExpiresOnMs?: number;
  lockCreatedOnMs: number;
  /** absent while the snapshot is pending */
  lockDurationStartTimeMs?: number;
  /** absent while the snapshot is pending (unless the lock has an expiration date) */
  lockExpiresOnMs?: number;
}

/** An AMI registered with `registerImage`: it keeps its snapshots from being deleted. */
export interface SimImage {
  imageId: string;
  /** first one is the root device (/dev/xvda), others /dev/sdf, /dev/sdg... */
  snapshotIds: string[];
  creationDateMs: number;
}

export interface SimCall {
  action: string;
  /** decoded form parameters, without `Action` and `Version` */
  params: Record<string, string>;
  /** the request's Region (its credential scope; without an `Authorization` header the simulator's own) */
  region: string;
  /** the request's account (its access key id, see `accounts`; otherwise the simulator's own) */
  accountId: string;
  /** epoch ms at which the request arrived */
  atMs: number;
  /** HTTP status of the answer */
  status: number;
  errorCode?: string;
}

export interface TokenBucketOptions {
  capacity: number;
  refillPerSec: number;
}

export interface Ec2SimulatorOptions {
  instances?: SimInstance[];
  /** token bucket applied to CreateSnapshots (RequestLimitExceeded, HTTP 503 like EC2) */
  createSnapshotsBucket?: TokenBucketOptions;
  /**
   * token bucket applied to DescribeInstances, DescribeSnapshots, DescribeVolumes, DescribeLockedSnapshots,
   * DescribeImages and DescribeSnapshotAttribute together
   */
  describeBucket?: TokenBucketOptions;
  /** minimum ms between two snapshots of one volume (EC2: 15000) -> SnapshotCreationPerVolumeRateExceeded (400); default 15000; 0 disables */
  perVolumeIntervalMs?: number;
  /**
   * artificial latency added to every response, ms, or a function of the call (answered with the
   * status and error code it got); default 0 (the request is processed on arrival, the answer is
   * sent after the delay)
   */
  latencyMs?: number | ((call: SimCall) => number);
  /** default '123456789012' */
  accountId?: string;
  /**
   * DescribeSnapshots lists a snapshot only this many ms after it was created (EC2's eventual
   * consistency); default 0. The per-volume rate check still sees it at once.
   */
  describeSnapshotsLagMs?: number;
  /**
   * a new snapshot (created, or seeded without a state) is 'pending' until this many ms after its
   * start time, then 'completed' (computed when read); default 0: completed at once
   */
  snapshotCompletionMs?: number;
  /** token bucket applied to DeleteSnapshot, on its own (EC2: capacity 100, refill 5 per second); RequestLimitExceeded, HTTP 503 */
  deleteSnapshotBucket?: TokenBucketOptions;
  /**
   * the simulator's clock, epoch ms: start times, call times, snapshot completion and lock states
   * follow it (inject one to move time forward by hours or days); default `Date.now`
   */
  clock?: () => number;
  /** the simulator's own Region: where its instances are, and the Region of a request without an `Authorization` header; default 'us-east-1' */
  region?: string;
  /** token bucket applied to CopySnapshot, on its own; RequestLimitExceeded, HTTP 503 */
  copySnapshotBucket?: TokenBucketOptions;
  /**
   * a copy (CopySnapshot, or a seeded snapshot with a `sourceSnapshotId` and no state) is 'pending'
   * until this many ms after its start time, then 'completed' (computed when read); default 0: completed at once
   */
  copyCompletionMs?: number;
  /**
   * copies pending at once of one account in one (destination) Region; one more answers
   * ResourceLimitExceeded (400); default 20 (EC2's limit)
   */
  maxConcurrentCopies?: number;
  /**
   * access key id -> account id (12 digits): a request signed with that key is that account's (see the
   * header); default none: every request is the simulator's own account's
   */
  accounts?: Record<string, string>;
}

/** One Lambda `Invoke` request received (and accepted) by the simulator. */
export interface SimInvocation {
  functionName: string;
  /** `X-Amz-Invocation-Type`: Event, RequestResponse or DryRun */
  invocationType: string;
  /** the request body, as sent */
  payload: string;
  atMs: number;
}

/** `callIndex`: 0-based index among all calls; `actionIndex`: 0-based index among calls of the same action. */
export type FaultRule = (call: {
  action: string;
  params: Record<string, string>;
  region: string;
  accountId: string;
  callIndex: number;
  actionIndex: number;
}) => SimFault | undefined;

export interface SimFault {
  status: number;
  code: string;
  message?: string;
  /** apply the call's effect then still answer with the error (e.g. a 500 after the snapshot was made) */
  afterEffect?: boolean;
}

const XMLNS = 'http://ec2.amazonaws.com/doc/2016-11-15/';
const DEFAULT_ACCOUNT_ID = '123456789012';
const DEFAULT_PER_VOLUME_INTERVAL_MS = 15_000;
const DEFAULT_REGION = 'us-east-1';
/** EC2: at most 20 concurrent snapshot copies per destination Region */
const DEFAULT_MAX_CONCURRENT_COPIES = 20;
/** CopySnapshot's CompletionDurationMinutes: 15 minutes to 48 hours, in steps of 15 minutes */
const MIN_COMPLETION_DURATION_MINUTES = 15;
const MAX_COMPLETION_DURATION_MINUTES = 2880;
const MAX_EXCLUDED_DATA_VOLUMES = 40;
const VOLUME_SIZE_GIB = 8;

const STATE_CODES: Record<string, number> = {
  'pending': 0,
  'running': 16,
  'shutting-down': 32,
  'terminated': 48,
  'stopping': 64,
  'stopped': 80,
};

const INSTANCE_FILTERS = new Set([
  'instance-id',
  'instance-state-name',
  'instance-state-code',
  'tag-key',
  'tag-value',
  'block-device-mapping.volume-id',
  'outpost-arn',
]);

const VOLUME_FILTERS = new Set([
  'volume-id',
  'attachment.instance-id',
  'status',
  'tag-key',
  'tag-value',
]);

const SNAPSHOT_FILTERS = new Set([
  'snapshot-id',
  'volume-id',
  'status',
  'owner-id',
  'description',
  'tag-key',
  'tag-value',
  'outpost-arn',
  'encrypted',
]);

const LOCKED_SNAPSHOT_FILTERS = new Set(['lock-state']);

const IMAGE_FILTERS = new Set([
  'image-id',
  'state',
  'owner-id',
  'block-device-mapping.snapshot-id',
]);

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** LockSnapshot: LockDuration 1 to 36,500 days, CoolOffPeriod 1 to 72 hours */
const MAX_LOCK_DURATION_DAYS = 36_500;
const MAX_COOL_OFF_HOURS = 72;

/** An error answered to the client in the EC2 error envelope. */
class SimError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

interface InstanceRecord {
  instanceId: string;
  state: string;
  tags: Record<string, string>;
  volumeIds: string[];
  volumeTags: Record<string, Record<string, string>>;
  outpostArn?: string;
  launchTimeMs: number;
}

interface Filter {
  name: string;
  values: string[];
}

/** A snapshot as the simulator keeps it: the public object plus what indexes and states need. */
interface SnapshotRecord {
  readonly snap: SimSnapshot;
  /** the snapshots of its Region */
  readonly store: RegionStore;
  /** creation order, never reused: index lists are sorted by it and page tokens point into it */
  readonly seq: number;
  /** setsByInstance without a tag key: one CreateSnapshots call, or one seeded start time */
  readonly group: string;
  /** false once deleted (index lists drop dead records lazily) */
  alive: boolean;
  /** pending on its own: completes at this time (simulator clock); cleared when it completes or its state is set */
  completesAtMs?: number;
  /** when it became completed; undefined while pending or in error */
  completedAtMs?: number;
  lock?: LockRecord;
  /** account ids it is shared with (createVolumePermission), in the order they were added */
  sharedWith?: string[];
}

/** The snapshots of one account in one Region and their indexes. */
interface RegionStore {
  readonly region: string;
  /** the account owning them */
  readonly account: string;
  /** every current snapshot and the deleted ones not yet compacted away, in creation order */
  readonly all: IndexList;
  /** tag key -> value -> snapshots carrying it, in creation order (DescribeSnapshots narrows with it) */
  readonly byTag: Map<string, Map<string, IndexList>>;
  /** the current snapshots with a lock (in force or expired) */
  readonly locked: Set<SnapshotRecord>;
  /** the copies made by this account in this Region that are pending now (for `maxConcurrentCopies`) */
  readonly pendingCopies: Set<SnapshotRecord>;
  /** every snapshot deleted by DeleteSnapshot in this Region, in order */
  readonly deletions: SimDeletion[];
  /** `snapshotsIn`, built on first read after a change */
  view?: SimSnapshot[];
}

interface LockRecord {
  mode: SimLockMode;
  createdOnMs: number;
  durationDays?: number;
  expirationDateMs?: number;
  coolOffHours?: number;
}

/** Records sorted by `seq`, possibly holding deleted ones (`dead` of them) until compacted. */
interface IndexList {
  items: SnapshotRecord[];
  dead: number;
}

interface Page<T> {
  items: T[];
  nextToken?: string;
}

interface InvokeAnswer {
  status: number;
  body: string;
  requestId: string;
  errorCode?: string;
}

class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(private readonly options: TokenBucketOptions) {
    this.tokens = options.capacity;
    this.last = performance.now();
  }

  /** Takes one token; false when the bucket is empty. */
  take(): boolean {
    const now = performance.now();
    this.tokens = Math.min(this.options.capacity, this.tokens + ((now - this.last) / 1000) * this.options.refillPerSec);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }
}

/** Min-heap of the snapshots pending on their own, by completion time: completing them costs O(log n) each, not a scan. */
class CompletionQueue {
  private readonly heap: Array<{ atMs: number; record: SnapshotRecord }> = [];

  push(record: SnapshotRecord, atMs: number): void {
    const heap = this.heap;
    heap.push({ atMs, record });
    let k = heap.length - 1;
    while (k > 0) {
      const parent = Math.floor((k - 1) / 2);
      if (heap[parent].atMs <= heap[k].atMs) break;
      [heap[parent], heap[k]] = [heap[k], heap[parent]];
      k = parent;
    }
  }

  /** Removes and returns the records due at `nowMs` (in completion order). */
  popDue(nowMs: number): Array<{ atMs: number; record: SnapshotRecord }> {
    const due: Array<{ atMs: number; record: SnapshotRecord }> = [];
    const heap = this.heap;
    while (heap.length > 0 && heap[0].atMs <= nowMs) {
      due.push(heap[0]);
      const last = heap.pop()!;
      if (heap.length === 0) break;
      heap[0] = last;
      let k = 0;
      for (;;) {
        const left = 2 * k + 1;
        const right = left + 1;
        let least = k;
        if (left < heap.length && heap[left].atMs < heap[least].atMs) least = left;
        if (right < heap.length && heap[right].atMs < heap[least].atMs) least = right;
        if (least === k) break;
        [heap[least], heap[k]] = [heap[k], heap[least]];
        k = least;
      }
    }
    return due;
  }
}

export class Ec2Simulator {
  /** every request, in arrival order */
  readonly calls: SimCall[] = [];
  /** every accepted Lambda Invoke, in arrival order (also recorded in `calls` as action `Invoke`) */
  readonly invocations: SimInvocation[] = [];
  /** every snapshot deleted by DeleteSnapshot in the simulator's own Region, in order */
  readonly deletions: SimDeletion[];

  private readonly instances = new Map<string, InstanceRecord>();
  private readonly faults: FaultRule[] = [];
  private readonly createBucket?: TokenBucket;
  private readonly describeBucket?: TokenBucket;
  private readonly deleteBucket?: TokenBucket;
  private readonly copyBucket?: TokenBucket;
  private readonly region: string;
  private readonly copyCompletionMs: number;
  private readonly maxConcurrentCopies: number;
  private readonly perVolumeIntervalMs: number;
  private readonly latencyMs: number | ((call: SimCall) => number);
  private readonly accountId: string;
  private readonly describeSnapshotsLagMs: number;
  private readonly snapshotCompletionMs: number;
  private readonly now: () => number;
  /** action -> number of calls so far */
  private readonly actionCounts = new Map<string, number>();
  /** volumeId -> performance.now() of its last snapshot */
  private readonly lastSnapshotAt = new Map<string, number>();
  /** `storeKey(account, region)` -> that account's snapshots in that Region (created on first use) */
  private readonly stores = new Map<string, RegionStore>();
  /** the simulator's own account's in its own Region */
  private readonly home: RegionStore;
  /** access key id -> account id (option `accounts`) */
  private readonly accounts: Map<string, string>;
  /** account id -> the current snapshots (of other accounts, any Region) shared with it */
  private readonly grants = new Map<string, Set<SnapshotRecord>>();
  /** snapshotId -> current snapshot, in any Region (ids are unique across Regions) */
  private readonly snapshotsById = new Map<string, SnapshotRecord>();
  private readonly completions = new CompletionQueue();
  private nextSeq = 0;
  /** imageId -> image, in registration order */
  private readonly imagesById = new Map<string, SimImage>();
  /**
   * DescribeInstances: the filtered instances of the first page of a listing, reused by its later
   * pages (by request fingerprint), so a listing of N instances costs O(N), not O(N^2 / page).
   */
  private readonly listings = new Map<string, InstanceRecord[]>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private server?: http.Server;
  private url?: string;

  constructor(options: Ec2SimulatorOptions = {}) {
    this.createBucket = options.createSnapshotsBucket ? new TokenBucket(options.createSnapshotsBucket) : undefined;
    this.describeBucket = options.describeBucket ? new TokenBucket(options.describeBucket) : undefined;
    this.perVolumeIntervalMs = options.perVolumeIntervalMs ?? DEFAULT_PER_VOLUME_INTERVAL_MS;
    this.latencyMs = options.latencyMs ?? 0;
    this.accountId = options.accountId ?? DEFAULT_ACCOUNT_ID;
    this.describeSnapshotsLagMs = options.describeSnapshotsLagMs ?? 0;
    this.deleteBucket = options.deleteSnapshotBucket ? new TokenBucket(options.deleteSnapshotBucket) : undefined;
    this.snapshotCompletionMs = options.snapshotCompletionMs ?? 0;
    this.now = options.clock ?? Date.now;
    this.region = options.region ?? DEFAULT_REGION;
    this.copyBucket = options.copySnapshotBucket ? new TokenBucket(options.copySnapshotBucket) : undefined;
    this.copyCompletionMs = options.copyCompletionMs ?? 0;
    this.maxConcurrentCopies = options.maxConcurrentCopies ?? DEFAULT_MAX_CONCURRENT_COPIES;
    this.accounts = new Map(Object.entries(options.accounts ?? {}));
    this.home = this.store(this.region);
    this.deletions = this.home.deletions;
    this.addInstances(options.instances ?? []);
  }

  /**
   * The current snapshots (created, seeded, copied, not deleted) of the simulator's own Region, in
   * creation order, with their state as of now. A new array after each change; do not change it.
   */
  get snapshots(): readonly SimSnapshot[] {
    return this.snapshotsIn(this.region);
  }

  /** Like `snapshots`, for any Region (none: empty). */
  snapshotsIn(region: string): readonly SimSnapshot[] {
    return this.snapshotsOf(this.accountId, region);
  }

  /** Like `snapshots`, for any account (see `accounts`) and Region (default the simulator's own); none: empty. */
  snapshotsOf(accountId: string, region: string = this.region): readonly SimSnapshot[] {
    this.completeDue();
    const store = this.stores.get(storeKey(accountId, region));
    if (!store) return [];
    if (store.view === undefined) {
      store.all.items = store.all.items.filter((r) => r.alive);
      store.all.dead = 0;
      store.view = store.all.items.map((r) => r.snap);
    }
    return store.view;
  }

  /** A current snapshot of any Region, with its state as of now; undefined when unknown or deleted. */
  snapshot(snapshotId: string): SimSnapshot | undefined {
    this.completeDue();
    return this.snapshotsById.get(snapshotId)?.snap;
  }

  /** Every snapshot deleted by DeleteSnapshot in a Region, in order (the own Region's: `deletions`). */
  deletionsIn(region: string): readonly SimDeletion[] {
    return this.stores.get(storeKey(this.accountId, region))?.deletions ?? [];
  }

  /** The account ids a snapshot (of any Region) is shared with by ModifySnapshotAttribute, in the order they were added. */
  sharedWith(snapshotId: string): string[] {
    const record = this.snapshotsById.get(snapshotId);
    if (!record) {
      throw new Error(`Ec2Simulator: unknown snapshot ${snapshotId}`);
    }
    return [...(record.sharedWith ?? [])];
  }

  /** The ids of the snapshots deleted by DeleteSnapshot in the simulator's own Region, in order. */
  deletedSnapshotIds(): string[] {
    return this.deletions.map((d) => d.snapshotId);
  }

  /**
   * Adds pre-existing snapshots in bulk (e.g. earlier sets for retention), indexed like created ones.
   * Ids are generated when left out; a given id must be new. Without a state a seeded snapshot is
   * completed, unless `snapshotCompletionMs` says it is still pending. One set (for `setsByInstance`
   * without a tag key) = the seeded snapshots of one instance with the same start time. The per-volume
   * rate limit does not see them. A seed with a `sourceSnapshotId` is a copy (its completion follows
   * `copyCompletionMs`; nothing checks its source). Returns the snapshots as stored.
   */
  seedSnapshots(seeds: readonly SimSnapshotSeed[]): SimSnapshot[] {
    const now = this.now();
    const seen = new Set<string>();
    for (const seed of seeds) {
      if (seed.snapshotId === undefined) continue;
      if (this.snapshotsById.has(seed.snapshotId) || seen.has(seed.snapshotId)) {
        throw new Error(`Ec2Simulator: duplicate snapshot ${seed.snapshotId}`);
      }
      seen.add(seed.snapshotId);
    }
    const random = randomBytes(9 * seeds.length).toString('hex');
    return seeds.map((seed, n) => {
      let snapshotId = seed.snapshotId;
      if (snapshotId === undefined) {
        snapshotId = 'snap-' + random.slice(18 * n, 18 * n + 17);
        while (this.snapshotsById.has(snapshotId) || seen.has(snapshotId)) snapshotId = newId('snap-');
      }
      const startTimeMs = seed.startTimeMs ?? now;
      const snap: SimSnapshot = {
        snapshotId,
        ownerId: seed.ownerId ?? this.accountId,
        region: seed.region ?? this.region,
        volumeId: seed.volumeId,
        instanceId: seed.instanceId,
        description: seed.description,
        tags: { ...(seed.tags ?? {}) },
        outpostArn: seed.outpostArn,
        location: seed.location,
        startTimeMs,
        volumeSize: seed.volumeSize,
        encrypted: seed.encrypted,
        kmsKeyId: seed.kmsKeyId,
        sourceSnapshotId: seed.sourceSnapshotId,
        sourceRegion: seed.sourceRegion,
        completionDurationMinutes: seed.completionDurationMinutes,
      };
      this.addSnapshot(snap, `seed:${startTimeMs}`, seed.state, seed.progress);
      return snap;
    });
  }

  /**
   * Fixes a snapshot's state: 'completed' (progress 100%), 'pending' (stays pending until set again)
   * or 'error'. An error cancels the snapshot's lock, as in EC2 for a snapshot locked while pending.
   * Any Region's snapshot, copies included (a copy counts towards `maxConcurrentCopies` while pending).
   */
  setSnapshotState(snapshotId: string, state: SimSnapshotState): void {
    const record = this.snapshotsById.get(snapshotId);
    if (!record) {
      throw new Error(`Ec2Simulator: unknown snapshot ${snapshotId}`);
    }
    if (state !== 'pending' && state !== 'completed' && state !== 'error') {
      throw new Error(`Ec2Simulator: unknown snapshot state ${String(state)}`);
    }
    this.completeDue();
    record.completesAtMs = undefined;
    record.snap.state = state;
    if (record.snap.sourceSnapshotId !== undefined) {
      if (state === 'pending') record.store.pendingCopies.add(record);
      else record.store.pendingCopies.delete(record);
    }
    if (state === 'completed') {
      record.completedAtMs ??= this.now();
      record.snap.progress = '100%';
    } else {
      record.completedAtMs = undefined;
      if (state === 'pending') record.snap.progress = '0%';
      if (state === 'error') this.setLock(record, undefined);
    }
  }

  /** A snapshot's lock as DescribeLockedSnapshots would show it now (expired ones included); undefined without a lock. */
  snapshotLock(snapshotId: string): SimSnapshotLock | undefined {
    this.completeDue();
    const record = this.snapshotsById.get(snapshotId);
    return record?.lock ? this.lockView(record, this.now()) : undefined;
  }

  /** Sets (without EC2's checks) or, with undefined, removes a snapshot's lock; e.g. to seed locked snapshots. */
  setSnapshotLock(snapshotId: string, lock: SimLockSpec | undefined): void {
    const record = this.snapshotsById.get(snapshotId);
    if (!record) {
      throw new Error(`Ec2Simulator: unknown snapshot ${snapshotId}`);
    }
    this.setLock(record, lock && {
      mode: lock.mode,
      createdOnMs: lock.createdOnMs ?? this.now(),
      durationDays: lock.lockDurationDays,
      expirationDateMs: lock.expirationDateMs,
      coolOffHours: lock.coolOffPeriodHours,
    });
  }

  /**
   * Registers an AMI backed by these (current) snapshots of the simulator's own account and Region, the first one
   * as its root device; DeleteSnapshot
   * then answers InvalidSnapshot.InUse for them and DescribeImages lists it. Returns the AMI id.
   */
  registerImage(snapshotIds: string[]): string {
    if (snapshotIds.length === 0) {
      throw new Error('Ec2Simulator: an image needs at least one snapshot');
    }
    for (const id of snapshotIds) {
      if (!this.recordIn(id, this.region)) {
        throw new Error(`Ec2Simulator: unknown snapshot ${id}`);
      }
    }
    let imageId = newId('ami-');
    while (this.imagesById.has(imageId)) imageId = newId('ami-');
    this.imagesById.set(imageId, { imageId, snapshotIds: [...snapshotIds], creationDateMs: this.now() });
    return imageId;
  }

  /** Removes an image registered with `registerImage`; its snapshots can then be deleted. */
  deregisterImage(imageId: string): void {
    if (!this.imagesById.delete(imageId)) {
      throw new Error(`Ec2Simulator: unknown image ${imageId}`);
    }
  }

  /** The registered images, in registration order. */
  get images(): readonly SimImage[] {
    return [...this.imagesById.values()];
  }

  /** 'http://127.0.0.1:PORT'; throws before start() */
  get endpoint(): string {
    if (this.url === undefined) {
      throw new Error('Ec2Simulator: endpoint is only known after start()');
    }
    return this.url;
  }

  /** Listens on 127.0.0.1 on a random port; resolves the endpoint URL. */
  async start(): Promise<string> {
    if (this.url !== undefined) {
      return this.url;
    }
    const server = http.createServer((req, res) => this.onRequest(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const { port } = server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
    return this.url;
  }

  /** Stops listening, drops pending (delayed) answers and closes all connections, including idle keep-alive ones. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) {
      return;
    }
    this.server = undefined;
    this.url = undefined;
    for (const timer of this.timers) {
      clearTimeout(timer);
    }
    this.timers.clear();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  addInstances(instances: SimInstance[]): void {
    for (const instance of instances) {
      if (this.instances.has(instance.instanceId)) {
        throw new Error(`Ec2Simulator: duplicate instance ${instance.instanceId}`);
      }
      const state = instance.state ?? 'running';
      if (STATE_CODES[state] === undefined) {
        throw new Error(`Ec2Simulator: unknown instance state ${state}`);
      }
      this.instances.set(instance.instanceId, {
        instanceId: instance.instanceId,
        state,
        tags: { ...(instance.tags ?? {}) },
        volumeIds: [...instance.volumeIds],
        volumeTags: Object.fromEntries(Object.entries(instance.volumeTags ?? {}).map(([v, tags]) => [v, { ...tags }])),
        outpostArn: instance.outpostArn,
        launchTimeMs: this.now(),
      });
    }
  }

  /** state -> 'terminated'; CreateSnapshots then answers InvalidInstanceID.NotFound (400). */
  terminate(instanceId: string): void {
    const instance = this.instances.get(instanceId);
    if (!instance) {
      throw new Error(`Ec2Simulator: unknown instance ${instanceId}`);
    }
    instance.state = 'terminated';
  }

  /** Changes an instance's state (e.g. 'stopped', 'pending'); 'terminated' is `terminate`. */
  setInstanceState(instanceId: string, state: string): void {
    const instance = this.instances.get(instanceId);
    if (!instance) {
      throw new Error(`Ec2Simulator: unknown instance ${instanceId}`);
    }
    if (STATE_CODES[state] === undefined) {
      throw new Error(`Ec2Simulator: unknown instance state ${state}`);
    }
    instance.state = state;
  }

  /** Replaces an instance's tags (e.g. to untag it mid-run). */
  setInstanceTags(instanceId: string, tags: Record<string, string>): void {
    const instance = this.instances.get(instanceId);
    if (!instance) {
      throw new Error(`Ec2Simulator: unknown instance ${instanceId}`);
    }
    instance.tags = { ...tags };
  }

  /** Rules are consulted in order before normal handling; the first non-undefined answer wins. */
  addFault(rule: FaultRule): void {
    this.faults.push(rule);
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /**
   * instanceId -> list of snapshot sets of the current (not deleted) snapshots of the simulator's own
   * account in a Region (default the simulator's own), in creation order.
   * Without `tagKey` one set = the snapshots made by one CreateSnapshots call (seeded ones: see
   * `seedSnapshots`; copies: the copies of the snapshots of one such set, by however many calls).
   * With `tagKey` one set = the snapshots of one (instanceId, value of tag `tagKey`) pair;
   * snapshots without that tag are left out.
   */
  setsByInstance(tagKey?: string, region: string = this.region): Map<string, SimSnapshot[][]> {
    const result = new Map<string, SimSnapshot[][]>();
    const groups = new Map<string, SimSnapshot[]>();
    this.completeDue();
    for (const record of this.stores.get(storeKey(this.accountId, region))?.all.items ?? []) {
      if (!record.alive) continue;
      const snapshot = record.snap;
      let groupKey: string;
      if (tagKey === undefined) {
        groupKey = record.group;
      } else {
        const value = snapshot.tags[tagKey];
        if (value === undefined) {
          continue;
        }
        groupKey = value;
      }
      const key = `${snapshot.instanceId}\u0000${groupKey}`;
      let group = groups.get(key);
      if (!group) {
        group = [];
        groups.set(key, group);
        let sets = result.get(snapshot.instanceId);
        if (!sets) {
          sets = [];
          result.set(snapshot.instanceId, sets);
        }
        sets.push(group);
      }
      group.push(snapshot);
    }
    return result;
  }

  countCalls(action: string): number {
    return this.actionCounts.get(action) ?? 0;
  }

  /** The payloads of the accepted Lambda invocations, parsed as JSON. */
  invocationPayloads(): unknown[] {
    return this.invocations.map((i) => JSON.parse(i.payload));
  }

  // ---------------------------------------------------------------- HTTP

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const region = credentialRegion(req.headers.authorization) ?? this.region;
      const accessKeyId = credentialAccessKeyId(req.headers.authorization);
      const account = (accessKeyId === undefined ? undefined : this.accounts.get(accessKeyId)) ?? this.accountId;
      const invoke = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/.exec(url.pathname);
      if (invoke) {
        const invocationType = String(req.headers['x-amz-invocation-type'] ?? 'RequestResponse');
        const payload = Buffer.concat(chunks).toString('utf8');
        const { status, body, requestId, errorCode } = this.processInvoke(decodeURIComponent(invoke[1]), invocationType, payload, region, account);
        this.send(res, status, body, requestId, {
          'content-type': 'application/json',
          ...(errorCode ? { 'x-amzn-errortype': errorCode } : {}),
        });
        return;
      }
      const params: Record<string, string> = {};
      for (const [key, value] of url.searchParams) {
        setParam(params, key, value);
      }
      for (const [key, value] of new URLSearchParams(Buffer.concat(chunks).toString('utf8'))) {
        setParam(params, key, value);
      }
      const { status, body, requestId } = this.process(params, region, account);
      this.send(res, status, body, requestId);
    });
  }

  /** Answers the call processed last (processing is synchronous, so that is this request's). */
  private send(res: http.ServerResponse, status: number, body: string, requestId: string, headers?: Record<string, string>): void {
    const latencyMs = typeof this.latencyMs === 'function' ? this.latencyMs(this.calls[this.calls.length - 1]) : this.latencyMs;
    const write = (): void => {
      if (res.destroyed) {
        return;
      }
      res.writeHead(status, {
        'content-type': 'text/xml;charset=UTF-8',
        'server': 'AmazonEC2',
        ...headers,
        'content-length': Buffer.byteLength(body),
        'x-amzn-requestid': requestId,
      });
      res.end(body);
    };
    if (latencyMs <= 0) {
      write();
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      write();
    }, latencyMs);
    this.timers.add(timer);
  }

  /** Records a call in `calls` and asks the fault rules about it. */
  private begin(action: string, params: Record<string, string>, region: string, accountId: string)
    : { call: SimCall; callIndex: number; fault?: SimFault } {
    const callIndex = this.calls.length;
    const actionIndex = this.countCalls(action);
    const call: SimCall = { action, params, region, accountId, atMs: this.now(), status: 0 };
    this.calls.push(call);
    this.actionCounts.set(action, actionIndex + 1);
    try {
      for (const rule of this.faults) {
        const fault = rule({ action, params: { ...params }, region, accountId, callIndex, actionIndex });
        if (fault !== undefined) {
          return { call, callIndex, fault };
        }
      }
    } catch (e) {
      return { call, callIndex, fault: { status: 500, code: 'InternalError', message: `Ec2Simulator bug: a fault rule threw ${e instanceof Error ? e.stack ?? e.message : String(e)}` } };
    }
    return { call, callIndex };
  }

  /** Lambda Invoke: records the invocation (nothing runs) and answers like Lambda (202 for Event, 204 for DryRun). */
  private processInvoke(functionName: string, invocationType: string, payload: string, region: string, account: string): InvokeAnswer {
    const requestId = randomUUID();
    const { call, fault } = this.begin('Invoke', { FunctionName: functionName, InvocationType: invocationType }, region, account);
    const accept = (): number => {
      if (invocationType === 'DryRun') {
        return 204;
      }
      if (invocationType !== 'Event') {
        throw new SimError(400, 'InvalidParameterValueException', 'Ec2Simulator runs no function: only Event and DryRun invocations are supported.');
      }
      this.invocations.push({ functionName, invocationType, payload, atMs: this.now() });
      return 202;
    };
    try {
      if (fault !== undefined) {
        if (fault.afterEffect) {
          accept();
        }
        throw new SimError(fault.status, fault.code, fault.message ?? `Simulated fault ${fault.code}`);
      }
      call.status = accept();
      return { status: call.status, body: '', requestId };
    } catch (e) {
      const error = e instanceof SimError ? e : new SimError(500, 'ServiceException', String(e));
      call.status = error.status;
      call.errorCode = error.code;
      return { status: error.status, body: JSON.stringify({ Type: 'User', message: error.message }), requestId, errorCode: error.code };
    }
  }

  /** Handles one request synchronously and records it in `calls`. */
  private process(allParams: Record<string, string>, region: string, account: string): { status: number; body: string; requestId: string } {
    const { Action: action = '', Version: _version, ...params } = allParams;
    const requestId = randomUUID();
    const { call, callIndex, fault } = this.begin(action, params, region, account);
    try {
      if (fault !== undefined) {
        if (fault.afterEffect) {
          try {
            this.dispatch(action, params, region, account, callIndex);
          } catch (e) {
            if (!(e instanceof SimError)) {
              throw e;
            }
          }
        }
        throw new SimError(fault.status, fault.code, fault.message ?? `Simulated fault ${fault.code}`);
      }
      const inner = this.dispatch(action, params, region, account, callIndex);
      call.status = 200;
      const body = `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${XMLNS}">`
        + `${text('requestId', requestId)}${inner}</${action}Response>`;
      return { status: 200, body, requestId };
    } catch (e) {
      const error = e instanceof SimError
        ? e
        : new SimError(500, 'InternalError', `Ec2Simulator bug: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      call.status = error.status;
      call.errorCode = error.code;
      const body = '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        + `${text('Code', error.code)}${text('Message', error.message)}</Error></Errors>`
        + `${text('RequestID', requestId)}</Response>`;
      return { status: error.status, body, requestId };
    }
  }

  private dispatch(action: string, params: Record<string, string>, region: string, account: string, callIndex: number): string {
    switch (action) {
      case 'DescribeInstances':
        this.throttle(this.describeBucket);
        return this.describeInstances(params, region, account);
      case 'DescribeSnapshots':
        this.throttle(this.describeBucket);
        return this.describeSnapshots(params, region, account);
      case 'DescribeVolumes':
        this.throttle(this.describeBucket);
        return this.describeVolumes(params, region, account);
      case 'CreateSnapshots':
        this.throttle(this.createBucket);
        return this.createSnapshots(params, region, account, callIndex);
      case 'DeleteSnapshot':
        this.throttle(this.deleteBucket);
        return this.deleteSnapshot(params, region, account);
      case 'LockSnapshot':
        return this.lockSnapshot(params, region, account);
      // EC2's non-mutating actions share one bucket
      case 'DescribeLockedSnapshots':
        this.throttle(this.describeBucket);
        return this.describeLockedSnapshots(params, region, account);
      case 'DescribeImages':
        this.throttle(this.describeBucket);
        return this.describeImages(params, region, account);
      case 'CopySnapshot':
        this.throttle(this.copyBucket);
        return this.copySnapshot(params, region, account);
      case 'ModifySnapshotAttribute':
        return this.modifySnapshotAttribute(params, region, account);
      case 'DescribeSnapshotAttribute':
        this.throttle(this.describeBucket);
        return this.describeSnapshotAttribute(params, region, account);
      case 'CreateTags':
        return this.createTags(params, region, account);
      default:
        throw new SimError(400, 'InvalidAction', `The action ${action || '(none)'} is not valid for this web service.`);
    }
  }

  private throttle(bucket: TokenBucket | undefined): void {
    if (bucket && !bucket.take()) {
      throw new SimError(503, 'RequestLimitExceeded', 'Request limit exceeded.');
    }
  }

  // ---------------------------------------------------------------- actions

  /** The simulator's own Region's instances, to its own account; another Region or account has none. */
  private describeInstances(params: Record<string, string>, region: string, account: string): string {
    const action = this.scoped('DescribeInstances', region, account);
    const here = this.isHome(region, account);
    const ids = listParam(params, 'InstanceId');
    const maxResults = parseMaxResults(params);
    if (ids.length > 0 && maxResults !== undefined) {
      throw new SimError(400, 'InvalidParameterCombination', 'The parameter instancesSet cannot be used with the parameter maxResults');
    }
    const filters = parseFilters(params, INSTANCE_FILTERS);
    checkDryRun(params);
    const fingerprint = requestFingerprint(action, params);
    const cached = params.NextToken ? this.listings.get(fingerprint) : undefined;
    if (cached && ids.length === 0) {
      const page = paginate(action, params, cached, maxResults);
      return node('reservationSet', ...page.items.map((i) => this.reservationXml(i))) + text('nextToken', page.nextToken);
    }
    let instances = here ? [...this.instances.values()] : [];
    if (ids.length > 0) {
      const missing = ids.filter((id) => !here || !this.instances.has(id));
      if (missing.length > 0) {
        throw new SimError(400, 'InvalidInstanceID.NotFound', missing.length === 1
          ? `The instance ID '${missing[0]}' does not exist`
          : `The instance IDs '${missing.join(', ')}' do not exist`);
      }
      instances = instances.filter((i) => ids.includes(i.instanceId));
    }
    instances = instances.filter((i) => matchesAll(filters, (name) => instanceValues(i, name)));
    if (ids.length === 0) {
      this.listings.delete(fingerprint);
      this.listings.set(fingerprint, instances);
      if (this.listings.size > 64) this.listings.delete(this.listings.keys().next().value!);
    }
    const page = paginate(action, params, instances, maxResults);
    const reservations = page.items.map((i) => this.reservationXml(i));
    return node('reservationSet', ...reservations) + text('nextToken', page.nextToken);
  }

  /** Instances are the simulator's own account's in its own Region only: otherwise InvalidInstanceID.NotFound. */
  private createSnapshots(params: Record<string, string>, region: string, account: string, callIndex: number): string {
    const instanceId = params['InstanceSpecification.InstanceId'];
    if (!instanceId) {
      throw new SimError(400, 'MissingParameter', 'The request must contain the parameter InstanceSpecification.InstanceId');
    }
    const excludeBoot = parseBool(params, 'InstanceSpecification.ExcludeBootVolume');
    const excluded = listParam(params, 'InstanceSpecification.ExcludeDataVolumeId');
    if (excluded.length > MAX_EXCLUDED_DATA_VOLUMES) {
      throw new SimError(400, 'InvalidParameterValue',
        `The number of excluded data volumes (${excluded.length}) exceeds the maximum of ${MAX_EXCLUDED_DATA_VOLUMES}.`);
    }
    const tags = parseSnapshotTags(params);
    const copyTags = params.CopyTagsFromSource;
    if (copyTags !== undefined && copyTags !== 'volume') {
      throw new SimError(400, 'InvalidParameterValue', `Value (${copyTags}) for parameter CopyTagsFromSource is invalid.`);
    }
    const location = params.Location;
    if (location !== undefined && location !== 'regional' && location !== 'local') {
      throw new SimError(400, 'InvalidParameterValue', `Value (${location}) for parameter Location is invalid.`);
    }
    // Location is for instances in Local Zones, OutpostArn for instances on Outposts: EC2 documents them
    // apart; that it refuses both together (and with this code) is unverified.
    if (location !== undefined && params.OutpostArn !== undefined) {
      throw new SimError(400, 'InvalidParameterCombination', 'The parameters Location and OutpostArn cannot be used together.');
    }
    const instance = this.isHome(region, account) ? this.instances.get(instanceId) : undefined;
    if (!instance || instance.state === 'terminated') {
      throw new SimError(400, 'InvalidInstanceID.NotFound', `The instance ID '${instanceId}' does not exist`);
    }
    const rootVolumeId = instance.volumeIds[0];
    if (rootVolumeId !== undefined && excluded.includes(rootVolumeId)) {
      throw new SimError(400, 'InvalidParameterValue',
        `The root volume ${rootVolumeId} cannot be excluded using ExcludeDataVolumeIds; use ExcludeBootVolume instead.`);
    }
    const outpostArn = params.OutpostArn;
    if (outpostArn !== undefined && outpostArn !== instance.outpostArn) {
      throw new SimError(400, 'InvalidParameterCombination',
        `The OutpostArn ${outpostArn} does not match the Outpost of instance ${instanceId}.`);
    }
    checkDryRun(params);

    const volumeIds = instance.volumeIds.filter((v, index) => !(index === 0 && excludeBoot) && !excluded.includes(v));
    const now = performance.now();
    if (this.perVolumeIntervalMs > 0) {
      for (const volumeId of volumeIds) {
        const last = this.lastSnapshotAt.get(volumeId);
        if (last !== undefined && now - last < this.perVolumeIntervalMs) {
          throw new SimError(400, 'SnapshotCreationPerVolumeRateExceeded',
            'The maximum per volume CreateSnapshot request rate has been exceeded. Use an increasing or variable sleep interval between requests.');
        }
      }
    }

    const startTimeMs = this.now();
    const created: SimSnapshot[] = volumeIds.map((volumeId) => ({
      snapshotId: this.newSnapshotId(),
      ownerId: account,
      region,
      volumeId,
      instanceId,
      description: params.Description,
      tags: { ...tags },
      outpostArn,
      location: location as SimSnapshot['location'],
      startTimeMs,
    }));
    for (const snapshot of created) {
      this.addSnapshot(snapshot, `call:${callIndex}`);
      this.lastSnapshotAt.set(snapshot.volumeId, now);
    }
    return node('snapshotSet', ...created.map((s) => node('item',
      text('description', s.description),
      tagSetXml(s.tags),
      text('encrypted', false),
      text('volumeId', s.volumeId),
      text('state', 'pending'),
      text('volumeSize', VOLUME_SIZE_GIB),
      text('startTime', new Date(s.startTimeMs).toISOString()),
      text('progress', ''),
      text('ownerId', this.accountId),
      text('snapshotId', s.snapshotId),
      text('outpostArn', s.outpostArn),
    )));
  }

  /**
   * Pages are cut by creation order (the token holds the last snapshot answered), so deleting
   * snapshots between pages neither skips nor repeats any.
   *
   * Accounts: the caller's own snapshots, and those another account shared with it when it names them
   * (`SnapshotId.N`), names their owner (`Owner.N`/`OwnerId.N`) or asks with `RestorableBy.N`; the
   * parameters intersect, as EC2 documents. `Owner.N` self or the caller's id: its own; another account's
   * id: what that account shared with it; anything else: nothing. `RestorableBy.N` self or the caller's id:
   * its own and what is shared with it; another account's id: the caller's own shared with that account.
   * Without any of them only the caller's own are listed: EC2 documents that it then lists every snapshot
   * the caller can restore (shared and public ones too); the simulator answers as for `Owner.N=self`, which
   * is what this library always asks. Another account's snapshot is answered without its tags (EC2 shows
   * none of them; tag filters never match it) and with its owner's `ownerId`. A `SnapshotId.N` the caller
   * can neither own nor see answers InvalidSnapshot.NotFound (EC2 documents leaving such ids out of the
   * answer; which one it does for another account's snapshot is unverified).
   */
  private describeSnapshots(params: Record<string, string>, region: string, account: string): string {
    const action = this.scoped('DescribeSnapshots', region, account);
    const store = this.store(region, account);
    const ids = listParam(params, 'SnapshotId');
    const owners = [...listParam(params, 'Owner'), ...listParam(params, 'OwnerId')];
    const restorableBy = listParam(params, 'RestorableBy');
    // EC2 documents 5 to 1,000 and answers at most 1,000 for a larger value
    const maxResults = parseMaxResults(params, 1000, true);
    if (ids.length > 0 && maxResults !== undefined) {
      throw new SimError(400, 'InvalidParameterCombination', 'The parameter snapshotSet cannot be used with the parameter maxResults');
    }
    const filters = parseFilters(params, SNAPSHOT_FILTERS);
    const after = pageStart(action, params);
    checkDryRun(params);
    this.completeDue();
    const missing = ids.find((id) => !this.visibleRecord(id, region, account));
    if (missing !== undefined) {
      throw new SimError(400, 'InvalidSnapshot.NotFound', `The snapshot '${missing}' does not exist.`);
    }
    const isSelf = (id: string): boolean => id === 'self' || id === account;
    const ownByOwner = owners.length === 0 || owners.some(isSelf);
    const restorableBySelf = restorableBy.length === 0 || restorableBy.some(isSelf);
    const restorableByOthers = new Set(restorableBy.filter((id) => !isSelf(id)));
    const ownAccept = (r: SnapshotRecord): boolean => ownByOwner
      && (restorableBySelf || (r.sharedWith ?? []).some((id) => restorableByOthers.has(id)));
    const sharedAccept = (r: SnapshotRecord): boolean => restorableBySelf
      && (owners.length === 0 || owners.includes(r.snap.ownerId));
    let candidates: SnapshotRecord[];
    if (ids.length > 0) {
      candidates = sortBySeq(ids.map((id) => this.snapshotsById.get(id)!));
    } else {
      const own = ownByOwner ? this.candidates(store, [], filters) : [];
      const shared = owners.length > 0 || restorableBy.length > 0 ? this.sharedIn(region, account) : [];
      candidates = shared.length === 0 ? own : sortBySeq([...own, ...shared]);
    }
    const now = this.now();
    const visibleBefore = now - this.describeSnapshotsLagMs;
    const visible = (r: SnapshotRecord): boolean => this.describeSnapshotsLagMs <= 0 || r.snap.startTimeMs <= visibleBefore;
    const page = keysetPage(action, params, candidates, after, maxResults,
      (r) => visible(r) && (r.store === store ? ownAccept(r) : sharedAccept(r))
        && matchesAll(filters, (name) => this.snapshotValues(r.snap, name, account)));
    const items = page.items.map(({ snap: s }) => node('item',
      text('snapshotId', s.snapshotId),
      text('volumeId', s.volumeId),
      text('status', s.state),
      text('startTime', new Date(s.startTimeMs).toISOString()),
      text('progress', this.progressOf(s, now)),
      text('ownerId', s.ownerId),
      text('volumeSize', s.volumeSize ?? VOLUME_SIZE_GIB),
      text('description', s.description),
      text('encrypted', s.encrypted ?? false),
      text('kmsKeyId', s.kmsKeyId),
      s.ownerId === account ? tagSetXml(s.tags) : '',
      text('outpostArn', s.outpostArn),
      text('storageTier', 'standard'),
      s.sourceSnapshotId === undefined ? '' : text('transferType', s.completionDurationMinutes === undefined ? 'standard' : 'time-based'),
      text('completionDurationMinutes', s.completionDurationMinutes),
    ));
    return node('snapshotSet', ...items) + text('nextToken', page.nextToken);
  }

  /**
   * Deletes at once (no lag): the snapshot leaves every listing. Checks, in order: NotFound, InUse (an
   * image), locked, then DryRun (which answers DryRunOperation only for a delete that would succeed:
   * that order is unverified). Another account's snapshot, even one shared with the caller, is NotFound
   * (unverified: EC2 may answer UnauthorizedOperation for one it can see).
   */
  private deleteSnapshot(params: Record<string, string>, region: string, account: string): string {
    const snapshotId = requireParam(params, 'SnapshotId');
    this.completeDue();
    const record = this.recordIn(snapshotId, region, account);
    if (!record) {
      throw new SimError(400, 'InvalidSnapshot.NotFound', `The snapshot '${snapshotId}' does not exist.`);
    }
    const image = [...this.imagesById.values()].find((i) => i.snapshotIds.includes(snapshotId));
    if (image) {
      throw new SimError(400, 'InvalidSnapshot.InUse', `The snapshot ${snapshotId} is currently in use by ${image.imageId}`);
    }
    const now = this.now();
    if (record.lock && this.lockView(record, now).lockState !== 'expired') {
      // EC2 refuses to delete a locked snapshot; the exact error code and message for it are unverified
      throw new SimError(400, 'SnapshotLocked', `The snapshot ${snapshotId} is locked and cannot be deleted.`);
    }
    checkDryRun(params);
    const store = record.store;
    record.alive = false;
    this.snapshotsById.delete(snapshotId);
    store.locked.delete(record);
    store.pendingCopies.delete(record);
    store.all.dead++;
    for (const [key, value] of Object.entries(record.snap.tags)) {
      const list = store.byTag.get(key)?.get(value);
      if (list) list.dead++;
    }
    for (const grantee of record.sharedWith ?? []) this.grants.get(grantee)?.delete(record);
    store.view = undefined;
    store.deletions.push({ snapshotId, atMs: now, snapshot: record.snap });
    return text('return', true);
  }

  /**
   * Locks a snapshot (pending or completed) or changes its lock, as EC2 allows: a governance lock or a
   * compliance lock in its cool-off can be changed freely, a compliance lock after it only lengthened
   * (same mode, no CoolOffPeriod, an expiry not earlier). A change replaces the lock as if it were
   * made now (whether EC2 counts a changed duration from the first lock is unverified). Another
   * account's snapshot, even one shared with the caller, is NotFound (unverified, as for DeleteSnapshot).
   */
  private lockSnapshot(params: Record<string, string>, region: string, account: string): string {
    const snapshotId = requireParam(params, 'SnapshotId');
    const mode = requireParam(params, 'LockMode');
    if (mode !== 'governance' && mode !== 'compliance') {
      throw new SimError(400, 'InvalidParameterValue', `Value (${mode}) for parameter LockMode is invalid. Expecting governance or compliance.`);
    }
    const now = this.now();
    const durationDays = parseIntParam(params, 'LockDuration', 1, MAX_LOCK_DURATION_DAYS);
    const coolOffHours = parseIntParam(params, 'CoolOffPeriod', 1, MAX_COOL_OFF_HOURS);
    const rawExpiration = params.ExpirationDate;
    const expirationDateMs = rawExpiration === undefined ? undefined : Date.parse(rawExpiration);
    if (durationDays !== undefined && rawExpiration !== undefined) {
      throw new SimError(400, 'InvalidParameterValue', 'Specify either LockDuration or ExpirationDate, not both.');
    }
    if (durationDays === undefined && rawExpiration === undefined) {
      throw new SimError(400, 'InvalidParameterValue', 'Specify either LockDuration or ExpirationDate.');
    }
    if (expirationDateMs !== undefined && (Number.isNaN(expirationDateMs) || expirationDateMs <= now)) {
      throw new SimError(400, 'InvalidParameterValue', `Value (${rawExpiration}) for parameter ExpirationDate is invalid. It must be a date in the future.`);
    }
    if (coolOffHours !== undefined && mode !== 'compliance') {
      throw new SimError(400, 'InvalidParameterValue', 'CoolOffPeriod can only be specified with LockMode compliance.');
    }
    this.completeDue();
    const record = this.recordIn(snapshotId, region, account);
    if (!record) {
      throw new SimError(400, 'InvalidSnapshot.NotFound', `The snapshot '${snapshotId}' does not exist.`);
    }
    if (record.snap.state === 'error') {
      // EC2 locks only pending or completed snapshots; this code is unverified
      throw new SimError(400, 'IncorrectState', `The snapshot '${snapshotId}' is in state error and cannot be locked.`);
    }
    const lock: LockRecord = { mode, createdOnMs: now, durationDays, expirationDateMs, coolOffHours };
    if (record.lock) {
      const current = this.lockView(record, now);
      if (current.lockState === 'compliance') {
        // after the cool-off a compliance lock can only be lengthened; these codes are unverified
        if (mode !== 'compliance' || coolOffHours !== undefined) {
          throw new SimError(400, 'InvalidParameterValue',
            `The snapshot '${snapshotId}' is locked in compliance mode after its cooling-off period: only its duration can be increased.`);
        }
        const until = this.lockView({ ...record, lock }, now).lockExpiresOnMs;
        if (current.lockExpiresOnMs !== undefined && until !== undefined && until < current.lockExpiresOnMs) {
          throw new SimError(400, 'InvalidParameterValue',
            `The lock of snapshot '${snapshotId}' is in compliance mode: its duration can only be increased.`);
        }
      }
    }
    checkDryRun(params);
    this.setLock(record, lock);
    const view = this.lockView(record, now);
    return text('snapshotId', snapshotId) + lockXml(view);
  }

  /**
   * The locks (in force or expired) of this account's current snapshots, in snapshot creation order.
   * A SnapshotId that does not exist answers InvalidSnapshot.NotFound (EC2's answer is unverified);
   * one without a lock is left out.
   */
  private describeLockedSnapshots(params: Record<string, string>, region: string, account: string): string {
    const action = this.scoped('DescribeLockedSnapshots', region, account);
    const ids = listParam(params, 'SnapshotId');
    const maxResults = parseMaxResults(params);
    const filters = parseFilters(params, LOCKED_SNAPSHOT_FILTERS, false);
    const after = pageStart(action, params);
    checkDryRun(params);
    this.completeDue();
    const missing = ids.find((id) => !this.recordIn(id, region, account));
    if (missing !== undefined) {
      throw new SimError(400, 'InvalidSnapshot.NotFound', `The snapshot '${missing}' does not exist.`);
    }
    const now = this.now();
    const wanted = ids.length > 0 ? new Set(ids) : undefined;
    const locked = [...this.store(region, account).locked]
      .filter((r) => wanted === undefined || wanted.has(r.snap.snapshotId))
      .sort((a, b) => a.seq - b.seq);
    const views = new Map<SnapshotRecord, SimSnapshotLock>(locked.map((r) => [r, this.lockView(r, now)]));
    const page = keysetPage(action, params, locked, after, maxResults,
      (r) => matchesAll(filters, () => [views.get(r)!.lockState]));
    const items = page.items.map((r) => node('item',
      text('ownerId', account),
      text('snapshotId', r.snap.snapshotId),
      lockXml(views.get(r)!),
    ));
    return node('snapshotSet', ...items) + text('nextToken', page.nextToken);
  }

  /**
   * The images registered with `registerImage` (all this account's, none public). Owner.N other than
   * self or the account id: none. IncludeDeprecated and IncludeDisabled are checked and change nothing
   * (no image is deprecated or disabled); ExecutableBy.N is ignored. Images are in the simulator's own
   * Region only.
   */
  private describeImages(params: Record<string, string>, region: string, account: string): string {
    const action = this.scoped('DescribeImages', region, account);
    const here = this.isHome(region, account);
    const ids = listParam(params, 'ImageId');
    const owners = listParam(params, 'Owner');
    const maxResults = parseMaxResults(params);
    if (ids.length > 0 && maxResults !== undefined) {
      throw new SimError(400, 'InvalidParameterCombination', 'The parameter ImageIds cannot be used with the parameter maxResults');
    }
    const filters = parseFilters(params, IMAGE_FILTERS);
    parseBool(params, 'IncludeDeprecated');
    parseBool(params, 'IncludeDisabled');
    checkDryRun(params);
    const missing = ids.filter((id) => !here || !this.imagesById.has(id));
    if (missing.length > 0) {
      throw new SimError(400, 'InvalidAMIID.NotFound', `The image id '[${missing.join(', ')}]' does not exist`);
    }
    let images = here ? [...this.imagesById.values()] : [];
    if (owners.length > 0 && !owners.some((o) => o === 'self' || o === this.accountId)) {
      images = [];
    }
    if (ids.length > 0) {
      images = images.filter((i) => ids.includes(i.imageId));
    }
    images = images.filter((i) => matchesAll(filters, (name) => {
      switch (name) {
        case 'image-id': return [i.imageId];
        case 'state': return ['available'];
        case 'owner-id': return [this.accountId];
        case 'block-device-mapping.snapshot-id': return i.snapshotIds;
        default: return [];
      }
    }));
    const page = paginate(action, params, images, maxResults);
    const items = page.items.map((i) => node('item',
      text('imageId', i.imageId),
      text('imageLocation', `${this.accountId}/${i.imageId}`),
      text('imageState', 'available'),
      text('imageOwnerId', this.accountId),
      text('creationDate', new Date(i.creationDateMs).toISOString()),
      text('isPublic', false),
      text('architecture', 'x86_64'),
      text('imageType', 'machine'),
      text('name', i.imageId),
      text('rootDeviceType', 'ebs'),
      text('rootDeviceName', deviceName(0)),
      node('blockDeviceMapping', ...i.snapshotIds.map((snapshotId, index) => node('item',
        text('deviceName', deviceName(index)),
        node('ebs',
          text('snapshotId', snapshotId),
          text('volumeSize', VOLUME_SIZE_GIB),
          text('deleteOnTermination', true),
          text('volumeType', 'gp3'),
          text('encrypted', false),
        ),
      ))),
      text('virtualizationType', 'hvm'),
      text('hypervisor', 'xen'),
    ));
    return node('imagesSet', ...items) + text('nextToken', page.nextToken);
  }

  /**
   * The volumes of every instance (a terminated instance's volumes are gone), in the simulator's own
   * Region only; MaxResults 5-500 like EC2.
   */
  private describeVolumes(params: Record<string, string>, region: string, account: string): string {
    const action = this.scoped('DescribeVolumes', region, account);
    const ids = listParam(params, 'VolumeId');
    const maxResults = parseMaxResults(params, 500);
    if (ids.length > 0 && maxResults !== undefined) {
      throw new SimError(400, 'InvalidParameterCombination', 'The parameter volumeSet cannot be used with the parameter maxResults');
    }
    const filters = parseFilters(params, VOLUME_FILTERS);
    checkDryRun(params);
    let volumes = [...this.instances.values()]
      .filter((i) => this.isHome(region, account) && i.state !== 'terminated')
      .flatMap((i) => i.volumeIds.map((volumeId, index) => ({ volumeId, index, instance: i, tags: i.volumeTags[volumeId] ?? {} })));
    if (ids.length > 0) {
      const missing = ids.filter((id) => !volumes.some((v) => v.volumeId === id));
      if (missing.length > 0) {
        throw new SimError(400, 'InvalidVolume.NotFound', `The volume '${missing[0]}' does not exist.`);
      }
      volumes = volumes.filter((v) => ids.includes(v.volumeId));
    }
    volumes = volumes.filter((v) => matchesAll(filters, (name) => {
      switch (name) {
        case 'volume-id': return [v.volumeId];
        case 'attachment.instance-id': return [v.instance.instanceId];
        case 'status': return ['in-use'];
        default: return tagValues(v.tags, name);
      }
    }));
    const page = paginate(action, params, volumes, maxResults);
    const items = page.items.map((v) => node('item',
      text('volumeId', v.volumeId),
      text('size', VOLUME_SIZE_GIB),
      text('availabilityZone', `${this.region}a`),
      text('status', 'in-use'),
      text('createTime', new Date(v.instance.launchTimeMs).toISOString()),
      node('attachmentSet', node('item',
        text('volumeId', v.volumeId),
        text('instanceId', v.instance.instanceId),
        text('device', deviceName(v.index)),
        text('status', 'attached'),
        text('attachTime', new Date(v.instance.launchTimeMs).toISOString()),
        text('deleteOnTermination', v.index === 0),
      )),
      tagSetXml(v.tags),
      text('volumeType', 'gp3'),
      text('encrypted', false),
    ));
    return node('volumeSet', ...items) + text('nextToken', page.nextToken);
  }

  /**
   * Copies a snapshot of `SourceRegion` into the request's Region (the destination): a new snapshot with
   * the source's volume, size and instance, only the tags of the call (EC2 copies none), and the
   * description of the call or EC2's default. No client token: a repeated call makes a second copy.
   * Checks, in order: parameters, the source (NotFound, Outpost or Local Zone, not completed), the
   * destination's concurrent copies, then DryRun. `PresignedUrl` and `DestinationRegion` (which the
   * SDK adds) are accepted and ignored.
   *
   * Accounts: the source is the caller's own snapshot or one another account shared with it (another
   * account's snapshot not shared with it is InvalidSnapshot.NotFound: EC2 hides it). The copy is the
   * caller's, and counts towards the caller's concurrent copies in the destination. An encrypted shared
   * source can be copied: KMS is not simulated, so the caller's use of the owner's key is not checked.
   */
  private copySnapshot(params: Record<string, string>, region: string, account: string): string {
    const sourceRegion = requireParam(params, 'SourceRegion');
    const sourceId = requireParam(params, 'SourceSnapshotId');
    const encrypt = parseBool(params, 'Encrypted');
    const kmsKeyId = params.KmsKeyId === '' ? undefined : params.KmsKeyId;
    const durationMinutes = parseIntParam(params, 'CompletionDurationMinutes', MIN_COMPLETION_DURATION_MINUTES, MAX_COMPLETION_DURATION_MINUTES);
    if (durationMinutes !== undefined && durationMinutes % MIN_COMPLETION_DURATION_MINUTES !== 0) {
      throw new SimError(400, 'InvalidParameterValue',
        `Value (${durationMinutes}) for parameter CompletionDurationMinutes is invalid. Expecting a multiple of 15 between 15 and 2880.`);
    }
    const tags = parseSnapshotTags(params);
    this.completeDue();
    const source = this.visibleRecord(sourceId, sourceRegion, account);
    if (!source) {
      throw new SimError(400, 'InvalidSnapshot.NotFound', `The snapshot '${sourceId}' does not exist.`);
    }
    // EC2 documents that Outpost and Local Zone snapshots cannot be copied to another Region nor by a
    // time-based copy; the simulator refuses every copy of them, and this code is unverified
    if (source.snap.outpostArn !== undefined || source.snap.location === 'local') {
      throw new SimError(400, 'InvalidParameterCombination',
        `The snapshot '${sourceId}' is on an Outpost or in a Local Zone and cannot be copied.`);
    }
    const sourceState = source.snap.state ?? 'completed';
    if (sourceState !== 'completed') {
      // EC2 copies only completed snapshots; the message is EC2's, the code IncorrectState is unverified
      throw new SimError(400, 'IncorrectState', `Snapshot is in invalid state - ${sourceState}`);
    }
    const store = this.store(region, account);
    if (store.pendingCopies.size >= this.maxConcurrentCopies) {
      throw new SimError(400, 'ResourceLimitExceeded',
        `You have reached the limit of concurrent snapshot copies (${this.maxConcurrentCopies}) in ${region}.`);
    }
    checkDryRun(params);
    const copy: SimSnapshot = {
      snapshotId: this.newSnapshotId(),
      ownerId: account,
      region,
      volumeId: source.snap.volumeId,
      instanceId: source.snap.instanceId,
      description: params.Description ?? `[Copied ${sourceId} from ${sourceRegion}]`,
      tags,
      startTimeMs: this.now(),
      volumeSize: source.snap.volumeSize,
      // KmsKeyId without Encrypted=true: EC2 documents that Encrypted must then be true; it is taken as
      // asking for encryption here. Without KmsKeyId the copy has the default key (the AWS managed one).
      encrypted: source.snap.encrypted === true || encrypt || kmsKeyId !== undefined,
      kmsKeyId,
      sourceSnapshotId: sourceId,
      sourceRegion,
      completionDurationMinutes: durationMinutes,
    };
    this.addSnapshot(copy, `copy:${source.group}`);
    return text('snapshotId', copy.snapshotId) + tagSetXml(copy.tags);
  }

  /**
   * Shares a snapshot (`createVolumePermission`) with accounts or stops sharing it: `UserId.N` with
   * `OperationType` add|remove, and/or `CreateVolumePermission.Add.N.UserId` / `.Remove.N.UserId`.
   * Groups (public sharing) are not simulated. A snapshot encrypted with the AWS managed key cannot be
   * shared (EC2 documents that; the code InvalidParameter is unverified); stopping is always allowed.
   * Another account's snapshot, even one shared with the caller, is NotFound (unverified).
   */
  private modifySnapshotAttribute(params: Record<string, string>, region: string, account: string): string {
    const snapshotId = requireParam(params, 'SnapshotId');
    const attribute = params.Attribute;
    if (attribute !== undefined && attribute !== 'createVolumePermission') {
      throw new SimError(400, 'InvalidParameterValue',
        `Value (${attribute}) for parameter Attribute is invalid. Only createVolumePermission can be modified.`);
    }
    const operation = params.OperationType;
    if (operation !== undefined && operation !== 'add' && operation !== 'remove') {
      throw new SimError(400, 'InvalidParameterValue', `Value (${operation}) for parameter OperationType is invalid. Expecting add or remove.`);
    }
    const userIds = listParam(params, 'UserId');
    if (userIds.length > 0 && operation === undefined) {
      throw new SimError(400, 'MissingParameter', 'The request must contain the parameter OperationType');
    }
    const permissions = (kind: 'Add' | 'Remove'): string[] => listIndices(params, `CreateVolumePermission.${kind}`).map((n) => {
      if (params[`CreateVolumePermission.${kind}.${n}.Group`] !== undefined) {
        throw new SimError(400, 'InvalidParameterValue', 'Ec2Simulator does not simulate sharing with groups (public snapshots).');
      }
      return requireParam(params, `CreateVolumePermission.${kind}.${n}.UserId`);
    });
    if (listParam(params, 'UserGroup').length > 0) {
      throw new SimError(400, 'InvalidParameterValue', 'Ec2Simulator does not simulate sharing with groups (public snapshots).');
    }
    const add = [...permissions('Add'), ...(operation === 'add' ? userIds : [])];
    const remove = [...permissions('Remove'), ...(operation === 'remove' ? userIds : [])];
    if (add.length === 0 && remove.length === 0) {
      throw new SimError(400, 'MissingParameter', 'The request must contain the parameter CreateVolumePermission or UserId');
    }
    const malformed = [...add, ...remove].find((id) => !/^\d{12}$/.test(id));
    if (malformed !== undefined) {
      // EC2 refuses user ids that are not account ids; this code is unverified for this action
      throw new SimError(400, 'InvalidUserID.Malformed', `The user ID '${malformed}' is malformed.`);
    }
    this.completeDue();
    const record = this.recordIn(snapshotId, region, account);
    if (!record) {
      throw new SimError(400, 'InvalidSnapshot.NotFound', `The snapshot '${snapshotId}' does not exist.`);
    }
    if (add.length > 0 && record.snap.encrypted === true && isAwsManagedKey(record.snap.kmsKeyId)) {
      // EC2 documents that snapshots encrypted with the AWS managed key cannot be shared; the code is unverified
      throw new SimError(400, 'InvalidParameter',
        `The snapshot '${snapshotId}' is encrypted with the AWS managed key and cannot be shared.`);
    }
    checkDryRun(params);
    const shared = new Set(record.sharedWith ?? []);
    for (const id of add) shared.add(id);
    for (const id of remove) shared.delete(id);
    record.sharedWith = [...shared];
    for (const id of add) {
      let granted = this.grants.get(id);
      if (!granted) this.grants.set(id, granted = new Set());
      granted.add(record);
    }
    for (const id of remove) this.grants.get(id)?.delete(record);
    return text('return', true);
  }

  /**
   * `createVolumePermission` (the accounts a snapshot is shared with) or `productCodes` (none). Only the
   * owner can ask: another account's snapshot, even one shared with the caller, is NotFound (unverified).
   */
  private describeSnapshotAttribute(params: Record<string, string>, region: string, account: string): string {
    const snapshotId = requireParam(params, 'SnapshotId');
    const attribute = requireParam(params, 'Attribute');
    if (attribute !== 'createVolumePermission' && attribute !== 'productCodes') {
      throw new SimError(400, 'InvalidParameterValue',
        `Value (${attribute}) for parameter Attribute is invalid. Expecting createVolumePermission or productCodes.`);
    }
    const record = this.recordIn(snapshotId, region, account);
    if (!record) {
      throw new SimError(400, 'InvalidSnapshot.NotFound', `The snapshot '${snapshotId}' does not exist.`);
    }
    checkDryRun(params);
    if (attribute === 'productCodes') {
      return text('snapshotId', snapshotId) + node('productCodes');
    }
    return text('snapshotId', snapshotId)
      + node('createVolumePermission', ...(record.sharedWith ?? []).map((id) => node('item', text('userId', id))));
  }

  /**
   * Adds or overwrites tags (`Tag.N.Key`, `Tag.N.Value`) of snapshots (`ResourceId.N`) of the caller's
   * account in the request's Region; other resource types are not simulated. All or nothing: one
   * snapshot that is not the caller's (another account's, even one shared with it, is NotFound:
   * unverified, EC2 may answer UnauthorizedOperation) and nothing is tagged.
   */
  private createTags(params: Record<string, string>, region: string, account: string): string {
    const ids = listParam(params, 'ResourceId');
    if (ids.length === 0) {
      throw new SimError(400, 'MissingParameter', 'The request must contain the parameter ResourceId');
    }
    const tags: Record<string, string> = {};
    for (const n of listIndices(params, 'Tag')) {
      const key = params[`Tag.${n}.Key`];
      if (key === undefined || key === '') {
        throw new SimError(400, 'InvalidParameterValue', `Tag ${n} has no key.`);
      }
      tags[key] = params[`Tag.${n}.Value`] ?? '';
    }
    if (Object.keys(tags).length === 0) {
      throw new SimError(400, 'MissingParameter', 'The request must contain the parameter Tag');
    }
    const other = ids.find((id) => !id.startsWith('snap-'));
    if (other !== undefined) {
      throw new SimError(400, 'InvalidParameterValue', `Ec2Simulator tags only snapshots, got: ${other}`);
    }
    this.completeDue();
    const records = ids.map((id) => {
      const record = this.recordIn(id, region, account);
      if (!record) {
        throw new SimError(400, 'InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`);
      }
      return record;
    });
    checkDryRun(params);
    for (const record of new Set(records)) {
      const store = record.store;
      for (const [key, value] of Object.entries(tags)) {
        const old = record.snap.tags[key];
        if (old === value) continue;
        const byValue = store.byTag.get(key);
        const oldList = old === undefined ? undefined : byValue?.get(old);
        if (oldList) oldList.items = oldList.items.filter((r) => r !== record);
        record.snap.tags[key] = value;
        let values = byValue;
        if (!values) store.byTag.set(key, values = new Map());
        let list = values.get(value);
        if (!list) values.set(value, list = { items: [], dead: 0 });
        list.items = sortBySeq([...list.items, record]);
      }
    }
    return text('return', true);
  }

  // ---------------------------------------------------------------- helpers

  private reservationXml(i: InstanceRecord): string {
    const terminated = i.state === 'terminated';
    const mappings = terminated ? [] : i.volumeIds.map((volumeId, index) => node('item',
      text('deviceName', deviceName(index)),
      node('ebs',
        text('volumeId', volumeId),
        text('status', 'attached'),
        text('attachTime', new Date(i.launchTimeMs).toISOString()),
        text('deleteOnTermination', index === 0),
      ),
    ));
    const instance = node('item',
      text('instanceId', i.instanceId),
      text('imageId', 'ami-0123456789abcdef0'),
      node('instanceState', text('code', STATE_CODES[i.state] ?? 0), text('name', i.state)),
      text('instanceType', 't3.micro'),
      text('launchTime', new Date(i.launchTimeMs).toISOString()),
      text('rootDeviceType', 'ebs'),
      text('rootDeviceName', deviceName(0)),
      node('blockDeviceMapping', ...mappings),
      tagSetXml(i.tags),
      text('outpostArn', i.outpostArn),
    );
    return node('item',
      text('reservationId', 'r-' + hashHex(i.instanceId, 17)),
      text('ownerId', this.accountId),
      node('groupSet'),
      node('instancesSet', instance),
    );
  }

  /** An account's snapshots in a Region (default the simulator's own account), created on first use. */
  private store(region: string, account: string = this.accountId): RegionStore {
    const key = storeKey(account, region);
    let store = this.stores.get(key);
    if (!store) {
      store = { region, account, all: { items: [], dead: 0 }, byTag: new Map(), locked: new Set(), pendingCopies: new Set(), deletions: [] };
      this.stores.set(key, store);
    }
    return store;
  }

  /**
   * A current snapshot of that account (default the simulator's own) in that Region; undefined when
   * unknown, deleted, in another Region or another account's (as EC2 sees it).
   */
  private recordIn(snapshotId: string, region: string, account: string = this.accountId): SnapshotRecord | undefined {
    const record = this.snapshotsById.get(snapshotId);
    return record !== undefined && record.store.region === region && record.store.account === account ? record : undefined;
  }

  /** A current snapshot of that Region that the account owns or that is shared with it; undefined otherwise. */
  private visibleRecord(snapshotId: string, region: string, account: string): SnapshotRecord | undefined {
    const record = this.snapshotsById.get(snapshotId);
    if (record === undefined || record.store.region !== region) return undefined;
    return record.store.account === account || this.grants.get(account)?.has(record) ? record : undefined;
  }

  /** The current snapshots of other accounts in that Region shared with the account, in creation order. */
  private sharedIn(region: string, account: string): SnapshotRecord[] {
    const granted = this.grants.get(account);
    if (!granted || granted.size === 0) return [];
    return [...granted].filter((r) => r.alive && r.store.region === region).sort((a, b) => a.seq - b.seq);
  }

  /** The simulator's own account in its own Region: where its instances, volumes and images are. */
  private isHome(region: string, account: string): boolean {
    return region === this.region && account === this.accountId;
  }

  /**
   * What pagination tokens of a listing are bound to: the action, the Region unless it is the simulator's
   * own, and the account unless it is the simulator's own.
   */
  private scoped(action: string, region: string, account: string): string {
    const scope = region === this.region ? action : `${action}@${region}`;
    return account === this.accountId ? scope : `${scope}#${account}`;
  }

  private newSnapshotId(): string {
    let snapshotId = newId('snap-');
    while (this.snapshotsById.has(snapshotId)) snapshotId = newId('snap-');
    return snapshotId;
  }

  /**
   * Stores and indexes a new snapshot; without a given state it is pending until `snapshotCompletionMs`
   * (a copy: `copyCompletionMs`) after its start.
   */
  private addSnapshot(snap: SimSnapshot, group: string, state?: SimSnapshotState, progress?: string): void {
    const store = this.store(snap.region, snap.ownerId);
    const record: SnapshotRecord = { snap, store, seq: this.nextSeq++, group, alive: true };
    const isCopy = snap.sourceSnapshotId !== undefined;
    const completionMs = isCopy ? this.copyCompletionMs : this.snapshotCompletionMs;
    const completesAtMs = snap.startTimeMs + completionMs;
    if (state !== undefined) {
      snap.state = state;
      snap.progress = progress ?? (state === 'completed' ? '100%' : '0%');
      if (state === 'completed') record.completedAtMs = snap.startTimeMs;
    } else if (completionMs > 0 && completesAtMs > this.now()) {
      snap.state = 'pending';
      snap.progress = '0%';
      record.completesAtMs = completesAtMs;
      this.completions.push(record, completesAtMs);
    } else {
      snap.state = 'completed';
      snap.progress = '100%';
      record.completedAtMs = completionMs > 0 ? completesAtMs : snap.startTimeMs;
    }
    if (isCopy && snap.state === 'pending') store.pendingCopies.add(record);
    this.snapshotsById.set(snap.snapshotId, record);
    store.all.items.push(record);
    for (const [key, value] of Object.entries(snap.tags)) {
      let byValue = store.byTag.get(key);
      if (!byValue) store.byTag.set(key, byValue = new Map());
      let list = byValue.get(value);
      if (!list) byValue.set(value, list = { items: [], dead: 0 });
      list.items.push(record);
    }
    store.view = undefined;
  }

  /** Completes the snapshots pending on their own whose time has come. */
  private completeDue(): void {
    for (const { atMs, record } of this.completions.popDue(this.now())) {
      if (!record.alive || record.completesAtMs !== atMs) continue;
      record.completesAtMs = undefined;
      record.completedAtMs = atMs;
      record.snap.state = 'completed';
      record.snap.progress = '100%';
      record.store.pendingCopies.delete(record);
    }
  }

  private setLock(record: SnapshotRecord, lock: LockRecord | undefined): void {
    record.lock = lock;
    if (lock) record.store.locked.add(record);
    else record.store.locked.delete(record);
  }

  /**
   * A lock as seen at `nowMs`. Its duration starts when the snapshot is completed (EC2: a lock made on a
   * pending snapshot starts counting once the snapshot completes); the cool-off counts from the lock.
   */
  private lockView(record: Pick<SnapshotRecord, 'snap' | 'completedAtMs' | 'lock'>, nowMs: number): SimSnapshotLock {
    const lock = record.lock!;
    const durationStartMs = record.completedAtMs === undefined ? undefined : Math.max(lock.createdOnMs, record.completedAtMs);
    const expiresOnMs = lock.expirationDateMs
      ?? (durationStartMs === undefined || lock.durationDays === undefined ? undefined : durationStartMs + lock.durationDays * DAY_MS);
    const coolOffExpiresOnMs = lock.coolOffHours === undefined ? undefined : lock.createdOnMs + lock.coolOffHours * HOUR_MS;
    let lockState: SimLockState = lock.mode;
    if (expiresOnMs !== undefined && nowMs >= expiresOnMs) {
      lockState = 'expired';
    } else if (lock.mode === 'compliance' && coolOffExpiresOnMs !== undefined && nowMs < coolOffExpiresOnMs) {
      lockState = 'compliance-cooloff';
    }
    return {
      snapshotId: record.snap.snapshotId,
      lockState,
      lockDurationDays: lock.durationDays,
      coolOffPeriodHours: lock.coolOffHours,
      coolOffPeriodExpiresOnMs: coolOffExpiresOnMs,
      lockCreatedOnMs: lock.createdOnMs,
      lockDurationStartTimeMs: durationStartMs,
      lockExpiresOnMs: expiresOnMs,
    };
  }

  /** '100%' when completed; while pending on its own, the share of its completion time gone by (kept on the snapshot). */
  private progressOf(snap: SimSnapshot, nowMs: number): string | undefined {
    const record = this.snapshotsById.get(snap.snapshotId);
    const completionMs = record?.completesAtMs === undefined ? 0 : record.completesAtMs - snap.startTimeMs;
    if (completionMs > 0) {
      const share = Math.floor(((nowMs - snap.startTimeMs) / completionMs) * 100);
      snap.progress = `${Math.max(0, Math.min(99, share))}%`;
    }
    return snap.progress;
  }

  /**
   * The snapshots of the Region that can match, in creation order (deleted ones may still be in it: skip
   * them): the given ids (all in the Region); or, with a `snapshot-id` or `tag:` filter of exact values,
   * only those (the most selective such filter); otherwise all.
   */
  private candidates(store: RegionStore, ids: string[], filters: Filter[]): SnapshotRecord[] {
    if (ids.length > 0) {
      return sortBySeq(ids.map((id) => this.snapshotsById.get(id)!));
    }
    let best: SnapshotRecord[] | undefined;
    let sorted = true;
    for (const f of filters) {
      if (f.values.some((v) => /[*?\\]/.test(v))) continue;
      let found: SnapshotRecord[];
      let foundSorted = true;
      if (f.name === 'snapshot-id') {
        found = f.values.flatMap((v) => this.recordIn(v, store.region, store.account) ?? []);
        foundSorted = found.length <= 1;
      } else if (f.name.startsWith('tag:')) {
        const byValue = store.byTag.get(f.name.slice(4));
        const lists = f.values.flatMap((v) => {
          const list = byValue?.get(v);
          return list ? [compact(list)] : [];
        });
        found = lists.length === 1 ? lists[0] : lists.flat();
        foundSorted = lists.length <= 1;
      } else {
        continue;
      }
      if (!best || found.length < best.length) {
        best = found;
        sorted = foundSorted;
      }
    }
    if (!best) return compact(store.all);
    return sorted ? best : sortBySeq(best);
  }

  /** A snapshot's values for a DescribeSnapshots filter, as `account` sees it (another account's: no tags). */
  private snapshotValues(s: SimSnapshot, name: string, account: string): string[] {
    switch (name) {
      case 'snapshot-id': return [s.snapshotId];
      case 'volume-id': return [s.volumeId];
      case 'status': return [s.state ?? 'completed'];
      case 'owner-id': return [s.ownerId];
      case 'description': return s.description === undefined ? [] : [s.description];
      case 'outpost-arn': return s.outpostArn === undefined ? [] : [s.outpostArn];
      case 'encrypted': return [String(s.encrypted ?? false)];
      default: return s.ownerId === account ? tagValues(s.tags, name) : [];
    }
  }
}

// ------------------------------------------------------------------ free helpers

/** The access key id of a SigV4 `Authorization` header's credential scope (`Credential=AKID/...`). */
function credentialAccessKeyId(authorization: string | undefined): string | undefined {
  if (authorization === undefined) {
    return undefined;
  }
  return /Credential=([^/,\s]+)\//.exec(authorization)?.[1];
}

/** The key of `Ec2Simulator.stores`: one account's snapshots in one Region. */
function storeKey(account: string, region: string): string {
  return `${account}\u0000${region}`;
}

/** The Region of a SigV4 `Authorization` header's credential scope (`Credential=AKID/DATE/REGION/SERVICE/aws4_request`). */
function credentialRegion(authorization: string | undefined): string | undefined {
  if (authorization === undefined) {
    return undefined;
  }
  return /Credential=[^/,\s]+\/\d{8}\/([^/,\s]+)\/[^/,\s]+\/aws4_request/.exec(authorization)?.[1];
}

/** The AWS managed key for EBS: no key given (the default), `alias/aws/ebs` or an ARN of that alias. */
function isAwsManagedKey(kmsKeyId: string | undefined): boolean {
  return kmsKeyId === undefined || kmsKeyId === 'alias/aws/ebs' || kmsKeyId.endsWith(':alias/aws/ebs');
}

function setParam(params: Record<string, string>, key: string, value: string): void {
  if (key === '__proto__') {
    return;
  }
  params[key] = value;
}

/** `Prefix.1`, `Prefix.2`, ... in index order */
function listParam(params: Record<string, string>, prefix: string): string[] {
  const re = new RegExp(`^${escapeRegExp(prefix)}\\.(\\d+)$`);
  const found: Array<[number, string]> = [];
  for (const [key, value] of Object.entries(params)) {
    const m = re.exec(key);
    if (m) {
      found.push([Number(m[1]), value]);
    }
  }
  return found.sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}

/** indices N for which `Prefix.N.<suffix>` exists, sorted */
function listIndices(params: Record<string, string>, prefix: string): number[] {
  const re = new RegExp(`^${escapeRegExp(prefix)}\\.(\\d+)\\.`);
  const indices = new Set<number>();
  for (const key of Object.keys(params)) {
    const m = re.exec(key);
    if (m) {
      indices.add(Number(m[1]));
    }
  }
  return [...indices].sort((a, b) => a - b);
}

function parseFilters(params: Record<string, string>, known: Set<string>, tags = true): Filter[] {
  return listIndices(params, 'Filter').map((n) => {
    const name = params[`Filter.${n}.Name`];
    if (name === undefined || name === '') {
      throw new SimError(400, 'MissingParameter', `The request must contain the parameter Filter.${n}.Name`);
    }
    if (!known.has(name) && !(tags && name.startsWith('tag:') && name.length > 4)) {
      throw new SimError(400, 'InvalidParameterValue', `The filter '${name}' is invalid`);
    }
    return { name, values: listParam(params, `Filter.${n}.Value`) };
  });
}

/** A filter's values, compiled once per request: exact values in a set, wildcard ones as regular expressions. */
const compiledFilters = new WeakMap<Filter, { exact: Set<string>; patterns: RegExp[] }>();

function compile(filter: Filter): { exact: Set<string>; patterns: RegExp[] } {
  let compiled = compiledFilters.get(filter);
  if (!compiled) {
    compiled = { exact: new Set(), patterns: [] };
    for (const pattern of filter.values) {
      if (/[*?\\]/.test(pattern)) compiled.patterns.push(wildcardRegExp(pattern));
      else compiled.exact.add(pattern);
    }
    compiledFilters.set(filter, compiled);
  }
  return compiled;
}

/** Filters are ANDed; the values of one filter are ORed; `*` and `?` are wildcards (`\` escapes). */
function matchesAll(filters: Filter[], valuesOf: (name: string) => string[]): boolean {
  return filters.every((f) => {
    const { exact, patterns } = compile(f);
    return valuesOf(f.name).some((v) => exact.has(v) || patterns.some((re) => re.test(v)));
  });
}

function instanceValues(i: InstanceRecord, name: string): string[] {
  switch (name) {
    case 'instance-id': return [i.instanceId];
    case 'instance-state-name': return [i.state];
    case 'instance-state-code': return [String(STATE_CODES[i.state] ?? 0)];
    case 'block-device-mapping.volume-id': return i.state === 'terminated' ? [] : [...i.volumeIds];
    case 'outpost-arn': return i.outpostArn === undefined ? [] : [i.outpostArn];
    default: return tagValues(i.tags, name);
  }
}

function tagValues(tags: Record<string, string>, name: string): string[] {
  if (name === 'tag-key') {
    return Object.keys(tags);
  }
  if (name === 'tag-value') {
    return Object.values(tags);
  }
  if (name.startsWith('tag:')) {
    const value = tags[name.slice(4)];
    return value === undefined ? [] : [value];
  }
  return [];
}

function wildcardRegExp(pattern: string): RegExp {
  let source = '';
  for (let k = 0; k < pattern.length; k++) {
    const c = pattern[k];
    if (c === '\\' && k + 1 < pattern.length) {
      source += escapeRegExp(pattern[++k]);
    } else if (c === '*') {
      source += '.*';
    } else if (c === '?') {
      source += '.';
    } else {
      source += escapeRegExp(c);
    }
  }
  return new RegExp(`^${source}$`, 's');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function parseBool(params: Record<string, string>, key: string): boolean {
  const value = params[key];
  if (value === undefined || value === 'false') {
    return false;
  }
  if (value === 'true') {
    return true;
  }
  throw new SimError(400, 'InvalidParameterValue', `Value (${value}) for parameter ${key} is invalid. Expecting a boolean.`);
}

function checkDryRun(params: Record<string, string>): void {
  if (parseBool(params, 'DryRun')) {
    throw new SimError(412, 'DryRunOperation', 'Request would have succeeded, but DryRun flag is set.');
  }
}

/** `MaxResults`, 5 to `max`; with `capAbove` a larger value means `max` (DescribeSnapshots), otherwise it is refused. */
function parseMaxResults(params: Record<string, string>, max = 1000, capAbove = false): number | undefined {
  const raw = params.MaxResults;
  if (raw === undefined) {
    return undefined;
  }
  const value = Number(raw);
  if (capAbove && Number.isInteger(value) && value > max) {
    return max;
  }
  if (!Number.isInteger(value) || value < 5 || value > max) {
    throw new SimError(400, 'InvalidParameterValue',
      `Value ( ${raw} ) for parameter maxResults is invalid. Expecting a value between 5 and ${max}.`);
  }
  return value;
}

function requireParam(params: Record<string, string>, key: string): string {
  const value = params[key];
  if (value === undefined || value === '') {
    throw new SimError(400, 'MissingParameter', `The request must contain the parameter ${key}`);
  }
  return value;
}

/** An optional integer parameter within [min, max]; InvalidParameterValue otherwise. */
function parseIntParam(params: Record<string, string>, key: string, min: number, max: number): number | undefined {
  const raw = params[key];
  if (raw === undefined) {
    return undefined;
  }
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
    throw new SimError(400, 'InvalidParameterValue', `Value (${raw}) for parameter ${key} is invalid. Expecting a value between ${min} and ${max}.`);
  }
  return value;
}

/** Tags of all `TagSpecification.N` entries (ResourceType must be 'snapshot'). */
function parseSnapshotTags(params: Record<string, string>): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const n of listIndices(params, 'TagSpecification')) {
    const resourceType = params[`TagSpecification.${n}.ResourceType`];
    if (resourceType !== 'snapshot') {
      throw new SimError(400, 'InvalidParameterValue',
        `'${resourceType ?? ''}' is not a valid taggable resource type for this operation.`);
    }
    for (const m of listIndices(params, `TagSpecification.${n}.Tag`)) {
      const key = params[`TagSpecification.${n}.Tag.${m}.Key`];
      if (key === undefined || key === '') {
        throw new SimError(400, 'InvalidParameterValue', `Tag ${m} of TagSpecification ${n} has no key.`);
      }
      tags[key] = params[`TagSpecification.${n}.Tag.${m}.Value`] ?? '';
    }
  }
  return tags;
}

/**
 * Offset pagination with an opaque token bound to the action and to the other
 * parameters (a token reused with different filters answers InvalidPaginationToken).
 */
/** The request without its paging and dry-run parameters: what a pagination token is bound to. */
function requestFingerprint(action: string, params: Record<string, string>): string {
  const { NextToken: _token, MaxResults: _max, DryRun: _dryRun, ...rest } = params;
  return hashHex(action + '\n' + JSON.stringify(Object.entries(rest).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))), 16);
}

function paginate<T>(action: string, params: Record<string, string>, items: T[], maxResults: number | undefined): Page<T> {
  const token = params.NextToken;
  const fingerprint = requestFingerprint(action, params);
  let offset = 0;
  if (token !== undefined && token !== '') {
    const decoded = decodeToken(token);
    if (!decoded || decoded.f !== fingerprint) {
      throw new SimError(400, 'InvalidPaginationToken', 'The specified pagination token is not valid or is expired.');
    }
    offset = decoded.o;
  }
  const end = maxResults === undefined ? items.length : offset + maxResults;
  const nextToken = end < items.length
    ? Buffer.from(JSON.stringify({ f: fingerprint, o: end })).toString('base64url')
    : undefined;
  return { items: items.slice(offset, end), nextToken };
}

/**
 * Keyset pagination: the token names the last item answered (by `seq`) and is bound to the request
 * like `paginate`'s; returns the `seq` to start after (-1 without a token).
 */
function pageStart(action: string, params: Record<string, string>): number {
  const token = params.NextToken;
  if (token === undefined || token === '') {
    return -1;
  }
  const decoded = decodeToken(token);
  if (!decoded || decoded.f !== requestFingerprint(action, params)) {
    throw new SimError(400, 'InvalidPaginationToken', 'The specified pagination token is not valid or is expired.');
  }
  return decoded.o;
}

/**
 * The next page of `sorted` (records in `seq` order, deleted ones skipped) after `afterSeq`: up to
 * `maxResults` records passing `accept`, and a token when another one follows.
 */
function keysetPage(action: string, params: Record<string, string>, sorted: SnapshotRecord[], afterSeq: number,
  maxResults: number | undefined, accept: (r: SnapshotRecord) => boolean): Page<SnapshotRecord> {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (sorted[mid].seq <= afterSeq) lo = mid + 1;
    else hi = mid;
  }
  const items: SnapshotRecord[] = [];
  for (let k = lo; k < sorted.length; k++) {
    const record = sorted[k];
    if (!record.alive || !accept(record)) continue;
    if (maxResults !== undefined && items.length === maxResults) {
      const last = items[items.length - 1].seq;
      return { items, nextToken: Buffer.from(JSON.stringify({ f: requestFingerprint(action, params), o: last })).toString('base64url') };
    }
    items.push(record);
  }
  return { items };
}

/** Drops a list's deleted records once they are half of it (amortized O(1) per delete). */
function compact(list: IndexList): SnapshotRecord[] {
  if (list.dead > 0 && list.dead * 2 >= list.items.length) {
    list.items = list.items.filter((r) => r.alive);
    list.dead = 0;
  }
  return list.items;
}

function sortBySeq(records: SnapshotRecord[]): SnapshotRecord[] {
  return [...new Set(records)].sort((a, b) => a.seq - b.seq);
}

/** The lock fields of LockSnapshot's answer and of a DescribeLockedSnapshots item. */
function lockXml(lock: SimSnapshotLock): string {
  const time = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());
  return text('lockState', lock.lockState)
    + text('lockDuration', lock.lockDurationDays)
    + text('coolOffPeriod', lock.coolOffPeriodHours)
    + text('coolOffPeriodExpiresOn', time(lock.coolOffPeriodExpiresOnMs))
    + text('lockCreatedOn', time(lock.lockCreatedOnMs))
    + text('lockDurationStartTime', time(lock.lockDurationStartTimeMs))
    + text('lockExpiresOn', time(lock.lockExpiresOnMs));
}

function decodeToken(token: string): { f: string; o: number } | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (typeof value === 'object' && value !== null) {
      const { f, o } = value as { f?: unknown; o?: unknown };
      if (typeof f === 'string' && typeof o === 'number' && Number.isInteger(o) && o >= 0) {
        return { f, o };
      }
    }
  } catch {
    // fall through
  }
  return undefined;
}

function deviceName(index: number): string {
  return index === 0 ? '/dev/xvda' : `/dev/sd${String.fromCharCode('f'.charCodeAt(0) + index - 1)}`;
}

function newId(prefix: string): string {
  return prefix + randomBytes(9).toString('hex').slice(0, 17);
}

function hashHex(input: string, length: number): string {
  return createHash('sha256').update(input).digest('hex').slice(0, length);
}

function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\'': '&apos;' })[c] ?? c);
}

/** `<name>value</name>`, or nothing when value is undefined */
function text(name: string, value: string | number | boolean | undefined): string {
  return value === undefined ? '' : `<${name}>${escapeXml(String(value))}</${name}>`;
}

function node(name: string, ...children: string[]): string {
  return children.length === 0 ? `<${name}/>` : `<${name}>${children.join('')}</${name}>`;
}

/** omitted when there are no tags, like EC2 */
function tagSetXml(tags: Record<string, string>): string {
  const entries = Object.entries(tags);
  if (entries.length === 0) {
    return '';
  }
  return node('tagSet', ...entries.map(([key, value]) => node('item', text('key', key), text('value', value))));
}
