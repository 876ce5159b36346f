/**
 * The request contract between the construct and the worker, written once.
 *
 * The construct renders a `SnapshotRunRequest` into the workflow definition (the worker task's
 * parameters) and the scheduler's target input (`ScheduledRunInput`); the worker (lambda/, bundled
 * by esbuild from this same file) parses both with the functions below. The limits are EC2's and
 * Step Functions'; the construct checks props against them at synth time and the worker checks
 * the request again at run time, with the same functions.
 *
 * This module is private (not exported from the package) and has no dependency on aws-cdk-lib,
 * so the worker bundle stays small.
 */
import { createHash } from 'crypto';

/** Version of the request shape. Bump it on any incompatible change. */
export const REQUEST_VERSION = 3;

/** Prefix of the tags that the library owns on every snapshot it creates. */
export const OWNERSHIP_TAG_PREFIX = 'cdk-instance-snapshots:';
/** Which schedule made the snapshot (the schedule's id, by default the construct's path in the CDK app). */
export const SCHEDULE_TAG = `${OWNERSHIP_TAG_PREFIX}schedule`;
/** Which Step Functions execution made the snapshot (its name: EventBridge Scheduler's execution id). */
export const EXECUTION_ID_TAG = `${OWNERSHIP_TAG_PREFIX}execution-id`;
/** Which instance the snapshot set belongs to. */
export const INSTANCE_ID_TAG = `${OWNERSHIP_TAG_PREFIX}instance-id`;
/**
 * The scheduled occurrence the snapshot belongs to (ISO 8601, UTC, as `canonicalScheduledTime`
 * writes it). With the schedule tag it is the run's identity: one set per instance per value.
 */
export const SCHEDULED_TIME_TAG = `${OWNERSHIP_TAG_PREFIX}scheduled-time`;
/** Every tag the library puts on a snapshot, in addition to the user's `snapshotTags`. */
export const OWNERSHIP_TAG_KEYS = [SCHEDULE_TAG, EXECUTION_ID_TAG, INSTANCE_ID_TAG, SCHEDULED_TIME_TAG];

/** EC2's limits that the request must respect (EC2 API reference, CreateSnapshots and tagging). */
export const LIMITS = {
  maxTagKeyLength: 127,
  maxTagValueLength: 256,
  maxTagsPerResource: 50,
  maxExcludeDataVolumeIds: 40,
  maxDescriptionLength: 255,
  /** Step Functions execution names: 1 to 80 characters. */
  maxExecutionNameLength: 80,
};

/** Instance states in which a snapshot set is taken. */
export const SNAPSHOT_INSTANCE_STATES = ['running', 'stopped'];
/**
 * Instance states that are listed but not snapshotted when met: the instance is on its way to a
 * snapshot-worthy state, so it is reported as not attempted and taken by a later pass of the run.
 */
export const TRANSITIONAL_INSTANCE_STATES = ['pending', 'stopping'];

/** The only value EC2 accepts for `CopyTagsFromSource`. */
export const COPY_TAGS_FROM_VOLUME = 'volume';

/** EC2's default CreateSnapshots refill rate per account and Region (calls per second). */
export const DEFAULT_CREATE_SNAPSHOTS_PER_SECOND = 5;

/**
 * What every run of one schedule does: the schedule's selection and `CreateSnapshots` options.
 * Rendered by the construct into the workflow definition (never taken from the execution input),
 * and checked by the worker on every step.
 */
export interface SnapshotRunRequest {
  /** Always `REQUEST_VERSION`. */
  readonly version: number;
  /** Identifies the schedule; written to the `SCHEDULE_TAG` tag. */
  readonly scheduleId: string;
  /** Tag key -> accepted values; an instance is selected when it matches every key. */
  readonly instanceTags: Record<string, string[]>;
  readonly excludeBootVolume: boolean;
  readonly excludeDataVolumeIds: string[];
  /** Tag key -> values: a data volume carrying any key with one of its values is left out. */
  readonly excludeDataVolumeTags?: Record<string, string[]>;
  readonly outpostArn?: string;
  readonly description?: string;
  /** The user's tags for every snapshot (the ownership tags are added by the worker). */
  readonly snapshotTags: Record<string, string>;
  /** `'volume'` to copy each volume's tags to its snapshot. */
  readonly copyTagsFromSource?: string;
  readonly dryRun: boolean;
  /** The account's CreateSnapshots refill rate in this Region (EC2's default: 5). */
  readonly createSnapshotsPerSecond?: number;
  /** Tag key -> values: an instance carrying any key with one of its values is not selected. */
  readonly excludeInstanceTags?: Record<string, string[]>;
  /** EC2's `Location` for instances in Local Zones: `regional` or `local` (absent: EC2's default, regional). */
  readonly location?: string;
  /** A lock put on every snapshot of a new set (`LockSnapshot`); absent: no lock. */
  readonly lock?: SnapshotLockSpec;
  /** Which of the schedule's sets to keep; absent: nothing is ever deleted. */
  readonly retention?: RetentionSpec;
  /** The account's DeleteSnapshot refill rate in this Region (EC2's default: 5). */
  readonly deleteSnapshotsPerSecond?: number;
  /** Copies of every completed set to other Regions, each with its own retention; absent: none. */
  readonly copies?: CopyRuleSpec[];
  /** Completed sets shared with a vault account, which copies them (`SnapshotVault`); absent: none. */
  readonly vault?: VaultShareSpec;
}

/** Where a schedule shares its completed sets: the vault account and its event bus. */
export interface VaultShareSpec {
  /** The vault's account id (12 digits): each snapshot of a completed set gets a createVolumePermission for it. */
  readonly account: string;
  /** The vault's event bus (in this Region): one event per shared set tells the vault what to copy. */
  readonly eventBusArn: string;
}

/** The event a schedule sends the vault for every set it shares (EventBridge PutEvents). */
export const VAULT_EVENT = { source: 'cdk-instance-snapshots', detailType: 'Snapshot Set Shared' } as const;

/** The detail of a `VAULT_EVENT`: the set's identity, which the vault cannot read from shared snapshots (tags are not shared). */
export interface SharedSetDetail {
  readonly version: 1;
  readonly scheduleId: string;
  readonly scheduledTime: string;
  readonly instanceId: string;
  readonly snapshots: Array<{ readonly snapshotId: string; readonly volumeId: string }>;
}

/** What a vault's worker does (rendered by `SnapshotVault` into the worker's `VAULT_REQUEST` environment variable). */
export interface VaultRequest {
  readonly version: 1;
  /** The vault's id: the `SCHEDULE_TAG` of every copy it makes (its retention and IAM conditions name it). */
  readonly vaultId: string;
  /** The only accounts whose shared sets are copied. */
  readonly sourceAccounts: string[];
  /** Which copies to keep (per source instance); absent: none is deleted. */
  readonly retention?: RetentionSpec;
  /** A lock on every copy. */
  readonly lock?: SnapshotLockSpec;
  /** A KMS key of the vault account: every copy is encrypted with it. */
  readonly kmsKeyArn?: string;
}

/** The vault worker's environment variable that holds its `VaultRequest` (JSON). */
export const VAULT_REQUEST_ENV = 'VAULT_REQUEST';
/** Tag on every vault copy: the account whose snapshot it copies. */
export const SOURCE_ACCOUNT_TAG = `${OWNERSHIP_TAG_PREFIX}source-account`;
/** Tag on every vault copy: the schedule that made the set in the source account. */
export const SOURCE_SCHEDULE_TAG = `${OWNERSHIP_TAG_PREFIX}source-schedule`;
/** The worker action a vault's schedule starts: apply the vault's retention. */
export const VAULT_PRUNE_ACTION = 'vault-prune';

const ACCOUNT_ID = /^\d{12}$/;
const EVENT_BUS_ARN = /^arn:aws[a-z-]*:events:([a-z0-9-]+):(\d{12}):event-bus\/[A-Za-z0-9._\-/]+$/;

/** Checks the vault share of a request. */
export function checkVaultShare(value: unknown, prop = 'vault'): ContractViolation[] {
  if (!isRecord(value)) return [{ prop, message: `${prop} must be an object with account and eventBusArn, got: ${show(value)}` }];
  const out: ContractViolation[] = [];
  if (Object.keys(value).some((k) => k !== 'account' && k !== 'eventBusArn')) out.push({ prop, message: `${prop} takes only account and eventBusArn, got: ${show(Object.keys(value))}` });
  if (typeof value.account !== 'string' || !ACCOUNT_ID.test(value.account)) out.push({ prop, message: `${prop}.account must be a 12-digit account id, got: ${show(value.account)}` });
  const bus = typeof value.eventBusArn === 'string' ? EVENT_BUS_ARN.exec(value.eventBusArn) : undefined;
  if (!bus) {
    out.push({ prop, message: `${prop}.eventBusArn must be an event bus ARN like "arn:aws:events:eu-central-1:111122223333:event-bus/snapshot-vault", got: ${show(value.eventBusArn)}` });
  } else if (bus[2] !== value.account) {
    out.push({ prop, message: `${prop}.eventBusArn must be a bus of the vault account ${show(value.account)}, got: ${show(value.eventBusArn)}` });
  }
  return out;
}

/** Parses and checks a vault's request (its worker's environment); throws InvalidRunRequestError naming every problem. */
export function parseVaultRequest(value: unknown): VaultRequest {
  const v: ContractViolation[] = [];
  if (!isRecord(value)) throw new InvalidRunRequestError([{ prop: 'vault', message: `the vault request must be a JSON object, got: ${show(value)}` }]);
  const unknown = Object.keys(value).filter((k) => !['version', 'vaultId', 'sourceAccounts', 'retention', 'lock', 'kmsKeyArn'].includes(k));
  if (unknown.length > 0) v.push({ prop: 'vault', message: `the vault request has fields no version 1 request has, got: ${show(unknown)}` });
  if (value.version !== 1) v.push({ prop: 'version', message: `version must be 1, got: ${show(value.version)}` });
  if (typeof value.vaultId !== 'string') v.push({ prop: 'vaultId', message: `vaultId must be a string, got: ${show(value.vaultId)}` });
  else v.push(...checkScheduleId(value.vaultId, 'vaultId'));
  if (!Array.isArray(value.sourceAccounts) || value.sourceAccounts.length === 0 || value.sourceAccounts.some((a) => typeof a !== 'string' || !ACCOUNT_ID.test(a))) {
    v.push({ prop: 'sourceAccounts', message: `sourceAccounts must list at least one 12-digit account id, got: ${show(value.sourceAccounts)}` });
  }
  if (value.retention !== undefined) v.push(...checkRetentionSpec(value.retention));
  if (value.lock !== undefined) v.push(...checkLockSpec(value.lock));
  if (value.kmsKeyArn !== undefined && (typeof value.kmsKeyArn !== 'string' || !KMS_KEY_ARN.test(value.kmsKeyArn))) {
    v.push({ prop: 'kmsKeyArn', message: `kmsKeyArn must be a KMS key ARN (not an alias), got: ${show(value.kmsKeyArn)}` });
  }
  if (v.length > 0) throw new InvalidRunRequestError(v);
  return value as unknown as VaultRequest;
}

/** Checks the detail of a shared-set event; throws InvalidRunRequestError naming every problem. */
export function parseSharedSetDetail(value: unknown): SharedSetDetail {
  const v: ContractViolation[] = [];
  const d = isRecord(value) ? value : {};
  if (d.version !== 1) v.push({ prop: 'detail.version', message: `detail.version must be 1, got: ${show(d.version)}` });
  if (typeof d.scheduleId !== 'string' || checkScheduleId(d.scheduleId).length > 0) v.push({ prop: 'detail.scheduleId', message: `detail.scheduleId must be a schedule id, got: ${show(d.scheduleId)}` });
  if (typeof d.scheduledTime !== 'string' || canonicalScheduledTime(d.scheduledTime) !== d.scheduledTime) {
    v.push({ prop: 'detail.scheduledTime', message: `detail.scheduledTime must be a canonical UTC time, got: ${show(d.scheduledTime)}` });
  }
  if (typeof d.instanceId !== 'string' || !/^i-[0-9a-f]{8,17}$/.test(d.instanceId)) v.push({ prop: 'detail.instanceId', message: `detail.instanceId must be an instance id, got: ${show(d.instanceId)}` });
  const snapshots = d.snapshots;
  if (!Array.isArray(snapshots) || snapshots.length === 0 || snapshots.length > 40
    || snapshots.some((s) => !isRecord(s) || typeof s.snapshotId !== 'string' || !/^snap-[0-9a-f]{8,17}$/.test(s.snapshotId) || typeof s.volumeId !== 'string')) {
    v.push({ prop: 'detail.snapshots', message: `detail.snapshots must list 1 to 40 snapshots with snapshotId and volumeId, got: ${show(snapshots)}` });
  }
  if (v.length > 0) throw new InvalidRunRequestError(v);
  return d as unknown as SharedSetDetail;
}

/**
 * Copies of the schedule's sets in another Region. Each snapshot of a completed set is copied
 * (EC2 has no set-level copy); every copy carries the set's identity tags and its source's id, so
 * the destination sees whole sets and a repeated copy is found before it is made.
 */
export interface CopyRuleSpec {
  /** The destination Region, e.g. `eu-west-1` (never the schedule's own). */
  readonly region: string;
  /** A KMS key in the destination Region: every copy is encrypted with it (unencrypted sources too). */
  readonly kmsKeyArn?: string;
  /** Copy the source snapshot's other tags (the user's `snapshotTags`, volume tags) onto the copy. */
  readonly copyTags: boolean;
  /** Which copies to keep in the destination; absent: copies are never deleted. */
  readonly retention?: RetentionSpec;
  /** EBS time-based copy: the copy completes within this many minutes (15 to 2,880, in steps of 15). */
  readonly completionDurationMinutes?: number;
}

/** Tag on every copy: the id of the snapshot it was copied from. */
export const SOURCE_SNAPSHOT_TAG = `${OWNERSHIP_TAG_PREFIX}source-snapshot-id`;
/** Tag on every copy: the Region of the snapshot it was copied from. */
export const SOURCE_REGION_TAG = `${OWNERSHIP_TAG_PREFIX}source-region`;
/** Every tag the library puts on a copy. */
export const COPY_TAG_KEYS = [...OWNERSHIP_TAG_KEYS, SOURCE_SNAPSHOT_TAG, SOURCE_REGION_TAG];

/** EC2's limits for copies (CopySnapshot). */
export const COPY_LIMITS = {
  /** Destination Regions per schedule (as Data Lifecycle Manager). */
  maxCopyRules: 3,
  /** Copies in progress at once per destination Region and account. */
  maxConcurrentCopiesPerRegion: 20,
  minCompletionMinutes: 15,
  maxCompletionMinutes: 2_880,
  completionStepMinutes: 15,
};

/** EC2 `LockSnapshot` options, applied to every snapshot of a set the run creates. */
export interface SnapshotLockSpec {
  /** `governance` or `compliance`. */
  readonly mode: string;
  /** Days the lock lasts (1 to 36,500). */
  readonly durationDays: number;
  /** Compliance mode only: hours during which the lock can still be removed (1 to 72). */
  readonly coolOffHours?: number;
}

/**
 * Which sets of the schedule to keep, per instance; every set no rule keeps is deleted. A set is
 * every snapshot of one instance from one scheduled occurrence; its time is the occurrence's
 * scheduled time. At least one rule is present.
 */
export interface RetentionSpec {
  /** Keep the newest N sets (1 to 1,000). */
  readonly count?: number;
  /** Keep the sets whose scheduled time is less than this many seconds ago. */
  readonly maxAgeSeconds?: number;
  /** Calendar rules: keep the newest set of each of the last N hours, days, weeks, months, years that have sets. */
  readonly hourly?: number;
  readonly daily?: number;
  readonly weekly?: number;
  readonly monthly?: number;
  readonly yearly?: number;
  /** IANA time zone in which calendar buckets are counted (the schedule's). */
  readonly timeZone: string;
  /**
   * An instance that is gone (terminated, no longer selected): its count and calendar rules, and the
   * protection of its newest set, lapse this many seconds after its newest set's scheduled time.
   */
  readonly goneInstanceSeconds: number;
}

/** The modes of EC2 snapshot locks. */
export const LOCK_MODES = ['governance', 'compliance'];
/** EC2's `Location` values for CreateSnapshots. */
export const SNAPSHOT_LOCATIONS = ['regional', 'local'];

/** EC2's and the library's ranges for lifecycle options. */
export const LIFECYCLE_LIMITS = {
  /** Data Lifecycle Manager's range for count retention. */
  minCount: 1,
  maxCount: 1000,
  /** Calendar rules: buckets per granularity (restic has no bound; this keeps a listing's work bounded). */
  maxCalendarBuckets: 10_000,
  /** EC2 LockSnapshot: `LockDuration` in days and `CoolOffPeriod` in hours. */
  minLockDays: 1,
  maxLockDays: 36_500,
  minCoolOffHours: 1,
  maxCoolOffHours: 72,
  /** Gone instances: their sets are kept at least a day after their newest one. */
  minGoneInstanceSeconds: 86_400,
};

/** The longest age and gone-instance period a retention may name, in seconds (100 years). */
export const MAX_LIFECYCLE_SECONDS = 100 * 366 * 86_400;

/** EC2's default DeleteSnapshot refill rate per account and Region (calls per second). */
export const DEFAULT_DELETE_SNAPSHOTS_PER_SECOND = 5;

/**
 * The execution input EventBridge Scheduler sends to the workflow (context attributes filled in
 * at run time). An operator can start a run by hand with the same shape.
 */
export interface ScheduledRunInput {
  /** `<aws.scheduler.scheduled-time>`: which occurrence this run is. */
  readonly scheduledTime: string;
  /** `<aws.scheduler.execution-id>` (also the execution's name); defaults to the execution's name. */
  readonly schedulerExecutionId?: string;
}

/** Fields of the workflow's state that the definition reads, named once for both sides. */
export const WORKFLOW = {
  /** Worker actions. */
  actionPrepare: 'prepare',
  actionStep: 'snapshot-step',
  /** `cursor.phase` values. */
  phaseSnapshot: 'snapshot',
  phaseWaitForRetryPass: 'wait',
  /** The sets are made: the run deletes what the retention rules no longer keep. */
  phasePrune: 'prune',
  /** Copies to other Regions: the step starts what it can and checks what is in progress. */
  phaseCopy: 'copy',
  /** Copies (or their sources) are in progress: the workflow waits, then steps again. */
  phaseWaitForCopies: 'copy-wait',
  phaseDone: 'done',
  /** `cursor.result` values. */
  resultSucceeded: 'succeeded',
  resultFailed: 'failed',
  /** Attribute names of the occurrence lock item. */
  lockKeyAttribute: 'pk',
  lockOwnerAttribute: 'owner',
  lockExpiryAttribute: 'expiresAt',
  /** Error name with which the worker rejects its input; never retried. */
  invalidInputError: 'InvalidRunRequestError',
};

/** A canonical, checked occurrence: what Prepare returns and every step receives. */
export interface Occurrence {
  /** `scheduledTime` in one canonical form (`canonicalScheduledTime`). */
  readonly scheduledTime: string;
  /** The Step Functions execution's name (the scheduler's execution id for scheduled runs). */
  readonly executionName: string;
  /** The lock item's key: schedule id and scheduled time. */
  readonly lockKey: string;
  /** When the lock item expires (DynamoDB TTL, epoch seconds, as a string for the `N` type). */
  readonly expiresAt: string;
}

/** How long an occurrence's lock is kept: beyond Step Functions' 90 days of execution history. */
export const LOCK_RETENTION_DAYS = 100;

/** Every field a `SnapshotRunRequest` may have. */
const REQUEST_KEYS = [
  'version', 'scheduleId', 'instanceTags', 'excludeBootVolume', 'excludeDataVolumeIds', 'excludeDataVolumeTags',
  'outpostArn', 'description', 'snapshotTags', 'copyTagsFromSource', 'dryRun', 'createSnapshotsPerSecond',
  'excludeInstanceTags', 'location', 'lock', 'retention', 'deleteSnapshotsPerSecond', 'copies', 'vault',
];

/** One problem found in a request or in props: the prop it concerns and what is wrong. */
export interface ContractViolation {
  readonly prop: string;
  readonly message: string;
}

const VOLUME_ID = /^vol-([0-9a-f]{8}|[0-9a-f]{17})$/;
const OUTPOST_ARN = /^arn:aws[a-z-]*:outposts:[a-z0-9-]+:\d{12}:outpost\/op-[0-9a-f]{17}$/;

/** Longest shown value in an error message; longer ones are cut with their length said. */
const MAX_SHOWN = 120;

/** A value as error messages show it: JSON, cut to `MAX_SHOWN` characters. */
export function show(value: unknown): string {
  // JSON writes NaN and Infinity as null: say what they are.
  const text = value === undefined || (typeof value === 'number' && !Number.isFinite(value)) ? String(value) : JSON.stringify(value) ?? String(value);
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}...` : text;
}

/** Checks `instanceTags`: at least one key, each with at least one value, within EC2's lengths. */
export function checkInstanceTags(tags: Record<string, readonly string[]>, isUnresolved: (s: string) => boolean = () => false): ContractViolation[] {
  const out: ContractViolation[] = [];
  if (Object.keys(tags).length === 0) {
    out.push({ prop: 'instanceTags', message: `instanceTags must name at least one tag key, got: ${show(tags)}` });
  }
  return [...out, ...checkTagValuesMap('instanceTags', tags, isUnresolved)];
}

/** Checks `excludeDataVolumeTags`: each key with at least one value, within EC2's lengths (may be empty). */
export function checkExcludeDataVolumeTags(
  tags: Record<string, readonly string[]>,
  isUnresolved: (s: string) => boolean = () => false,
): ContractViolation[] {
  return checkTagValuesMap('excludeDataVolumeTags', tags, isUnresolved);
}

/** A map of tag key -> accepted values: keys and values within EC2's lengths, at least one value per key, no repeats. */
function checkTagValuesMap(prop: string, tags: Record<string, readonly string[]>, isUnresolved: (s: string) => boolean): ContractViolation[] {
  const out: ContractViolation[] = [];
  for (const key of Object.keys(tags)) {
    if (isUnresolved(key)) continue;
    out.push(...checkTagKey(prop, key, false));
    const values = tags[key];
    if (!Array.isArray(values) || values.length === 0) {
      out.push({ prop, message: `${prop}[${show(key)}] must list at least one accepted value, got: ${show(values)}` });
      continue;
    }
    for (const value of values) {
      if (typeof value !== 'string') {
        out.push({ prop, message: `${prop}[${show(key)}] values must be strings, got: ${show(value)}` });
      } else if (!isUnresolved(value) && value.length > LIMITS.maxTagValueLength) {
        out.push({ prop, message: `${prop}[${show(key)}] values must be at most ${LIMITS.maxTagValueLength} characters, got: ${show(value)} (${value.length})` });
      }
    }
    if (new Set(values).size !== values.length) {
      out.push({ prop, message: `${prop}[${show(key)}] lists a value twice, got: ${show(values)}` });
    }
  }
  return out;
}

function checkTagKey(prop: string, key: string, forbidAwsPrefix: boolean): ContractViolation[] {
  if (key.length === 0 || key.length > LIMITS.maxTagKeyLength) {
    return [{ prop, message: `${prop} keys must be 1 to ${LIMITS.maxTagKeyLength} characters, got: ${show(key)} (${key.length})` }];
  }
  if (forbidAwsPrefix && key.toLowerCase().startsWith('aws:')) {
    return [{ prop, message: `${prop} keys must not start with "aws:" (reserved by AWS), got: ${show(key)}` }];
  }
  return [];
}

/** Checks `snapshotTags`: EC2's key and value lengths, no `aws:` keys, none of ours, and the 50-tag limit. */
export function checkSnapshotTags(tags: Record<string, string>, isUnresolved: (s: string) => boolean = () => false): ContractViolation[] {
  const prop = 'snapshotTags';
  const out: ContractViolation[] = [];
  for (const [key, value] of Object.entries(tags)) {
    if (isUnresolved(key)) continue;
    out.push(...checkTagKey(prop, key, true));
    if (key.startsWith(OWNERSHIP_TAG_PREFIX)) {
      out.push({ prop, message: `snapshotTags keys must not start with "${OWNERSHIP_TAG_PREFIX}" (the library's own tags), got: ${show(key)}` });
    }
    if (typeof value !== 'string') {
      out.push({ prop, message: `snapshotTags[${show(key)}] must be a string, got: ${show(value)}` });
    } else if (!isUnresolved(value) && value.length > LIMITS.maxTagValueLength) {
      out.push({ prop, message: `snapshotTags values must be at most ${LIMITS.maxTagValueLength} characters, got: ${show(key)}=${show(value)} (${value.length})` });
    }
  }
  const allowed = LIMITS.maxTagsPerResource - OWNERSHIP_TAG_KEYS.length;
  const count = Object.keys(tags).length;
  if (count > allowed) {
    out.push({
      prop,
      message: `snapshotTags may hold at most ${allowed} tags (EC2 allows ${LIMITS.maxTagsPerResource} per snapshot and the library adds ${OWNERSHIP_TAG_KEYS.length}), got: ${count}`,
    });
  }
  return out;
}

/** Checks `excludeDataVolumeIds`: at most 40 well-formed, distinct volume ids. */
export function checkExcludeDataVolumeIds(ids: readonly string[], isUnresolved: (s: string) => boolean = () => false): ContractViolation[] {
  const prop = 'excludeDataVolumeIds';
  const out: ContractViolation[] = [];
  if (ids.length > LIMITS.maxExcludeDataVolumeIds) {
    out.push({ prop, message: `excludeDataVolumeIds may list at most ${LIMITS.maxExcludeDataVolumeIds} volume ids (EC2's limit), got: ${ids.length}` });
  }
  const seen = new Set<string>();
  for (const id of ids) {
    if (typeof id !== 'string' || (!isUnresolved(id) && !VOLUME_ID.test(id))) {
      out.push({ prop, message: `excludeDataVolumeIds must hold EBS volume ids like "vol-0123456789abcdef0", got: ${show(id)}` });
    } else if (seen.has(id)) {
      out.push({ prop, message: `excludeDataVolumeIds lists a volume id twice, got: ${show(id)}` });
    }
    seen.add(id);
  }
  return out;
}

/** Checks `outpostArn`: an Outposts outpost ARN. */
export function checkOutpostArn(arn: string): ContractViolation[] {
  if (!OUTPOST_ARN.test(arn)) {
    return [{
      prop: 'outpostArn',
      message: `outpostArn must be an outpost ARN like "arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0", got: ${show(arn)}`,
    }];
  }
  return [];
}

/** Checks `description`: at most 255 characters. */
export function checkDescription(description: string): ContractViolation[] {
  if (description.length > LIMITS.maxDescriptionLength) {
    return [{
      prop: 'description',
      message: `description must be at most ${LIMITS.maxDescriptionLength} characters (EC2's limit), got: ${show(description)} (${description.length})`,
    }];
  }
  return [];
}

/** Thrown by `parseRunRequest` when the event is not a valid request; lists every problem. */
export class InvalidRunRequestError extends Error {
  public readonly violations: ContractViolation[];
  constructor(violations: ContractViolation[]) {
    super(`invalid snapshot run request: ${violations.map((v) => v.message).join('; ')}`);
    this.name = 'InvalidRunRequestError';
    this.violations = violations;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Parses and checks an incoming event. Returns the request or throws `InvalidRunRequestError`
 * naming every field that is missing or wrong.
 */
export function parseRunRequest(event: unknown): SnapshotRunRequest {
  if (!isRecord(event)) {
    throw new InvalidRunRequestError([{ prop: 'event', message: `the event must be a JSON object, got: ${show(event)}` }]);
  }
  const v: ContractViolation[] = [];
  const str = (name: string, required: boolean): string | undefined => {
    const value = event[name];
    if (value === undefined && !required) return undefined;
    if (typeof value !== 'string' || value.length === 0) {
      v.push({ prop: name, message: `${name} must be a non-empty string, got: ${show(value)}` });
      return undefined;
    }
    return value;
  };
  const bool = (name: string): boolean => {
    const value = event[name] ?? false;
    if (typeof value !== 'boolean') {
      v.push({ prop: name, message: `${name} must be a boolean, got: ${show(value)}` });
      return false;
    }
    return value;
  };

  const unknown = Object.keys(event).filter((k) => !REQUEST_KEYS.includes(k));
  if (unknown.length > 0) {
    v.push({ prop: 'request', message: `the request has fields no version ${REQUEST_VERSION} request has, got: ${show(unknown)}` });
  }
  if (event.version !== REQUEST_VERSION) {
    v.push({ prop: 'version', message: `version must be ${REQUEST_VERSION}, got: ${show(event.version)}` });
  }
  const scheduleId = str('scheduleId', true);
  if (scheduleId !== undefined) v.push(...checkScheduleId(scheduleId));

  let instanceTags: Record<string, string[]> = {};
  if (!isRecord(event.instanceTags)) {
    v.push({ prop: 'instanceTags', message: `instanceTags must be an object of tag key -> values, got: ${show(event.instanceTags)}` });
  } else {
    instanceTags = event.instanceTags as Record<string, string[]>;
    v.push(...checkInstanceTags(instanceTags));
  }

  let excludeDataVolumeIds: string[] = [];
  if (event.excludeDataVolumeIds !== undefined) {
    if (!Array.isArray(event.excludeDataVolumeIds)) {
      v.push({ prop: 'excludeDataVolumeIds', message: `excludeDataVolumeIds must be an array, got: ${show(event.excludeDataVolumeIds)}` });
    } else {
      excludeDataVolumeIds = event.excludeDataVolumeIds;
      v.push(...checkExcludeDataVolumeIds(excludeDataVolumeIds));
    }
  }

  let excludeDataVolumeTags: Record<string, string[]> = {};
  if (event.excludeDataVolumeTags !== undefined) {
    if (!isRecord(event.excludeDataVolumeTags)) {
      v.push({ prop: 'excludeDataVolumeTags', message: `excludeDataVolumeTags must be an object of tag key -> values, got: ${show(event.excludeDataVolumeTags)}` });
    } else {
      excludeDataVolumeTags = event.excludeDataVolumeTags as Record<string, string[]>;
      v.push(...checkExcludeDataVolumeTags(excludeDataVolumeTags));
    }
  }

  let snapshotTags: Record<string, string> = {};
  if (event.snapshotTags !== undefined) {
    if (!isRecord(event.snapshotTags)) {
      v.push({ prop: 'snapshotTags', message: `snapshotTags must be an object of tag key -> value, got: ${show(event.snapshotTags)}` });
    } else {
      snapshotTags = event.snapshotTags as Record<string, string>;
      v.push(...checkSnapshotTags(snapshotTags));
    }
  }

  const outpostArn = str('outpostArn', false);
  if (outpostArn !== undefined) v.push(...checkOutpostArn(outpostArn));
  const description = typeof event.description === 'string' ? event.description : str('description', false);
  if (description !== undefined) v.push(...checkDescription(description));
  const copyTagsFromSource = str('copyTagsFromSource', false);
  if (copyTagsFromSource !== undefined && copyTagsFromSource !== COPY_TAGS_FROM_VOLUME) {
    v.push({ prop: 'copyTagsFromSource', message: `copyTagsFromSource must be "${COPY_TAGS_FROM_VOLUME}", got: ${show(copyTagsFromSource)}` });
  }
  const excludeBootVolume = bool('excludeBootVolume');
  const dryRun = bool('dryRun');
  const createSnapshotsPerSecond = event.createSnapshotsPerSecond;
  if (createSnapshotsPerSecond !== undefined) {
    v.push(...checkCreateSnapshotsPerSecond(createSnapshotsPerSecond as number));
  }
  const deleteSnapshotsPerSecond = event.deleteSnapshotsPerSecond;
  if (deleteSnapshotsPerSecond !== undefined) {
    v.push(...checkCallsPerSecond(deleteSnapshotsPerSecond as number, 'deleteSnapshotsPerSecond', DEFAULT_DELETE_SNAPSHOTS_PER_SECOND));
  }
  let excludeInstanceTags: Record<string, string[]> | undefined;
  if (event.excludeInstanceTags !== undefined) {
    if (!isRecord(event.excludeInstanceTags)) {
      v.push({ prop: 'excludeInstanceTags', message: `excludeInstanceTags must be an object of tag key -> values, got: ${show(event.excludeInstanceTags)}` });
    } else {
      excludeInstanceTags = event.excludeInstanceTags as Record<string, string[]>;
      v.push(...checkExcludeInstanceTags(excludeInstanceTags));
    }
  }
  const location = str('location', false);
  if (location !== undefined) v.push(...checkLocation(location, outpostArn));
  const lock = event.lock;
  if (lock !== undefined) v.push(...checkLockSpec(lock));
  const retention = event.retention;
  if (retention !== undefined) v.push(...checkRetentionSpec(retention));
  const copies = event.copies;
  if (copies !== undefined) v.push(...checkCopyRules(copies, { outpostArn, location }));
  const vault = event.vault;
  if (vault !== undefined) v.push(...checkVaultShare(vault));
  if (Array.isArray(copies) && copies.length > 0 && Object.keys(snapshotTags).length > LIMITS.maxTagsPerResource - COPY_TAG_KEYS.length) {
    v.push({
      prop: 'snapshotTags',
      message: `snapshotTags may hold at most ${LIMITS.maxTagsPerResource - COPY_TAG_KEYS.length} tags with copies (a copy carries the library's `
        + `${COPY_TAG_KEYS.length} tags), got: ${Object.keys(snapshotTags).length}`,
    });
  }

  if (v.length > 0) {
    throw new InvalidRunRequestError(v);
  }
  return {
    version: REQUEST_VERSION,
    scheduleId: scheduleId!,
    instanceTags,
    excludeBootVolume,
    excludeDataVolumeIds,
    excludeDataVolumeTags,
    outpostArn,
    description,
    snapshotTags,
    copyTagsFromSource,
    dryRun,
    ...(createSnapshotsPerSecond !== undefined ? { createSnapshotsPerSecond: createSnapshotsPerSecond as number } : {}),
    ...(deleteSnapshotsPerSecond !== undefined ? { deleteSnapshotsPerSecond: deleteSnapshotsPerSecond as number } : {}),
    ...(excludeInstanceTags !== undefined ? { excludeInstanceTags } : {}),
    ...(location !== undefined ? { location } : {}),
    ...(lock !== undefined ? { lock: lock as SnapshotLockSpec } : {}),
    ...(retention !== undefined ? { retention: retention as RetentionSpec } : {}),
    ...(copies !== undefined ? { copies: copies as CopyRuleSpec[] } : {}),
    ...(vault !== undefined ? { vault: vault as VaultShareSpec } : {}),
  };
}

const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;
/** A KMS key ARN (IAM grants the use of a key by its key ARN, so an alias would allow nothing). */
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:key\/.+$/;
const COPY_RULE_KEYS = ['region', 'kmsKeyArn', 'copyTags', 'retention', 'completionDurationMinutes'];

/**
 * Checks copy rules: at most 3 distinct Regions, a KMS key in its rule's Region, a completion
 * duration EC2 accepts, a retention like the schedule's; never with Outposts or Local Zones (their
 * snapshots cannot be copied to another Region).
 */
export function checkCopyRules(
  value: unknown,
  source: { readonly outpostArn?: string; readonly location?: string; readonly region?: string },
  isUnresolved: (s: string) => boolean = () => false,
): ContractViolation[] {
  const prop = 'copies';
  const L = COPY_LIMITS;
  if (!Array.isArray(value)) return [{ prop, message: `copies must be a list of copy rules, got: ${show(value)}` }];
  const out: ContractViolation[] = [];
  if (value.length > L.maxCopyRules) {
    out.push({ prop, message: `copies may name at most ${L.maxCopyRules} destination Regions (as Data Lifecycle Manager), got: ${value.length}` });
  }
  if (value.length > 0 && source.outpostArn !== undefined) {
    out.push({ prop, message: `copies cannot be made of Outpost snapshots (EC2 does not copy them to another Region), got: outpostArn ${show(source.outpostArn)}` });
  }
  if (value.length > 0 && source.location === 'local') {
    out.push({ prop, message: 'copies cannot be made of Local Zone snapshots (EC2 does not copy them to another Region), got: location "local"' });
  }
  const seen = new Set<string>();
  value.forEach((rule: unknown, n: number) => {
    const at = `copies[${n}]`;
    if (!isRecord(rule)) {
      out.push({ prop, message: `${at} must be a copy rule, got: ${show(rule)}` });
      return;
    }
    const unknown = Object.keys(rule).filter((k) => !COPY_RULE_KEYS.includes(k));
    if (unknown.length > 0) out.push({ prop, message: `${at} has fields no copy rule has, got: ${show(unknown)}` });
    const region = rule.region;
    if (typeof region !== 'string' || (!isUnresolved(region) && !REGION.test(region))) {
      out.push({ prop, message: `${at}.region must be a Region name like "eu-west-1", got: ${show(region)}` });
    } else if (!isUnresolved(region)) {
      if (seen.has(region)) out.push({ prop, message: `${at}.region names a Region a rule before it names already, got: ${show(region)}` });
      if (source.region !== undefined && region === source.region) {
        out.push({ prop, message: `${at}.region is the schedule's own Region: copies go to other Regions, got: ${show(region)}` });
      }
      seen.add(region);
    }
    if (rule.kmsKeyArn !== undefined) {
      const m = typeof rule.kmsKeyArn === 'string' && !isUnresolved(rule.kmsKeyArn) ? KMS_KEY_ARN.exec(rule.kmsKeyArn) : undefined;
      if (typeof rule.kmsKeyArn !== 'string' || (!isUnresolved(rule.kmsKeyArn) && !m)) {
        out.push({ prop, message: `${at}.kmsKeyArn must be a KMS key ARN (not an alias), got: ${show(rule.kmsKeyArn)}` });
      } else if (m && typeof region === 'string' && !isUnresolved(region) && m[1] !== region) {
        out.push({ prop, message: `${at}.kmsKeyArn must be a key in the rule's Region ${show(region)} (KMS keys are Regional), got: ${show(rule.kmsKeyArn)}` });
      }
    }
    if (typeof rule.copyTags !== 'boolean') out.push({ prop, message: `${at}.copyTags must be a boolean, got: ${show(rule.copyTags)}` });
    if (rule.retention !== undefined) out.push(...checkRetentionSpec(rule.retention, `${at}.retention`));
    const minutes = rule.completionDurationMinutes;
    const inSteps = isWholeIn(minutes, L.minCompletionMinutes, L.maxCompletionMinutes) && (minutes as number) % L.completionStepMinutes === 0;
    if (minutes !== undefined && !inSteps) {
      out.push({
        prop,
        message: `${at} completion duration must be ${L.minCompletionMinutes} minutes to ${L.maxCompletionMinutes / 60} hours in steps of `
          + `${L.completionStepMinutes} minutes (EBS time-based copy), got: ${show(minutes)} minutes`,
      });
    }
  });
  return out;
}

/** Checks a schedule id: it is a tag value (at most 256 characters) and part of the lock key. */
export function checkScheduleId(scheduleId: string, prop = 'scheduleId'): ContractViolation[] {
  if (typeof scheduleId !== 'string' || scheduleId.length === 0 || scheduleId.length > LIMITS.maxTagValueLength) {
    return [{ prop, message: `${prop} must be 1 to ${LIMITS.maxTagValueLength} characters (it is the snapshots' "${SCHEDULE_TAG}" tag value), got: ${show(scheduleId)}` }];
  }
  if (scheduleId.trim() !== scheduleId) {
    return [{ prop, message: `${prop} must not start or end with white space, got: ${show(scheduleId)}` }];
  }
  return [];
}

/** Checks the CreateSnapshots rate: a positive number of calls per second (EC2's default is 5). */
export function checkCreateSnapshotsPerSecond(rate: number, prop = 'createSnapshotsPerSecond'): ContractViolation[] {
  return checkCallsPerSecond(rate, prop, DEFAULT_CREATE_SNAPSHOTS_PER_SECOND);
}

/** Checks an EC2 refill rate: a number of calls per second above 0 and at most 1000. */
export function checkCallsPerSecond(rate: number, prop: string, ec2Default: number): ContractViolation[] {
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0 || rate > 1000) {
    return [{ prop, message: `${prop} must be a number of calls per second above 0 and at most 1000 (EC2's default is ${ec2Default}), got: ${show(rate)}` }];
  }
  return [];
}

/** Checks `excludeInstanceTags`: each key with at least one value, within EC2's lengths (may be empty). */
export function checkExcludeInstanceTags(
  tags: Record<string, readonly string[]>,
  isUnresolved: (s: string) => boolean = () => false,
): ContractViolation[] {
  return checkTagValuesMap('excludeInstanceTags', tags, isUnresolved);
}

/** Checks `location`: `regional` or `local`, and never with an Outpost (EC2 takes one or the other). */
export function checkLocation(location: string, outpostArn: string | undefined): ContractViolation[] {
  if (!SNAPSHOT_LOCATIONS.includes(location)) {
    return [{ prop: 'location', message: `location must be one of ${show(SNAPSHOT_LOCATIONS)} (EC2's Location for instances in Local Zones), got: ${show(location)}` }];
  }
  if (outpostArn !== undefined) {
    return [{ prop: 'location', message: `location is for instances in Local Zones and does not combine with outpostArn, got: location ${show(location)} and outpostArn ${show(outpostArn)}` }];
  }
  return [];
}

function isWholeIn(value: unknown, min: number, max: number): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

/** Checks a snapshot lock against EC2's LockSnapshot ranges. */
export function checkLockSpec(value: unknown, prop = 'lock'): ContractViolation[] {
  const L = LIFECYCLE_LIMITS;
  if (!isRecord(value)) return [{ prop, message: `${prop} must be an object with mode and durationDays, got: ${show(value)}` }];
  const out: ContractViolation[] = [];
  const unknown = Object.keys(value).filter((k) => !['mode', 'durationDays', 'coolOffHours'].includes(k));
  if (unknown.length > 0) out.push({ prop, message: `${prop} takes only mode, durationDays and coolOffHours, got: ${show(unknown)}` });
  if (typeof value.mode !== 'string' || !LOCK_MODES.includes(value.mode)) {
    out.push({ prop, message: `${prop} mode must be one of ${show(LOCK_MODES)}, got: ${show(value.mode)}` });
  }
  if (!isWholeIn(value.durationDays, L.minLockDays, L.maxLockDays)) {
    out.push({ prop, message: `${prop} duration must be a whole number of days from ${L.minLockDays} to ${L.maxLockDays} (EC2's range), got: ${show(value.durationDays)} days` });
  }
  if (value.coolOffHours !== undefined) {
    if (value.mode !== 'compliance') {
      out.push({ prop, message: `${prop} cool-off period is for compliance mode only (EC2 rejects it in governance mode), got: ${show(value.coolOffHours)} hours with mode ${show(value.mode)}` });
    } else if (!isWholeIn(value.coolOffHours, L.minCoolOffHours, L.maxCoolOffHours)) {
      out.push({ prop, message: `${prop} cool-off period must be a whole number of hours from ${L.minCoolOffHours} to ${L.maxCoolOffHours} (EC2's range), got: ${show(value.coolOffHours)} hours` });
    }
  }
  return out;
}

const RETENTION_KEYS = ['count', 'maxAgeSeconds', 'hourly', 'daily', 'weekly', 'monthly', 'yearly', 'timeZone', 'goneInstanceSeconds'];
const CALENDAR_KEYS = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;

/** True when `zone` is an IANA time zone this runtime knows. */
export function isKnownTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Checks a retention spec: at least one rule, each within range, a known time zone. */
export function checkRetentionSpec(value: unknown, prop = 'retention'): ContractViolation[] {
  const L = LIFECYCLE_LIMITS;
  if (!isRecord(value)) return [{ prop, message: `${prop} must be an object of retention rules, got: ${show(value)}` }];
  const out: ContractViolation[] = [];
  const unknown = Object.keys(value).filter((k) => !RETENTION_KEYS.includes(k));
  if (unknown.length > 0) out.push({ prop, message: `${prop} has fields no retention has, got: ${show(unknown)}` });
  if (value.count !== undefined && !isWholeIn(value.count, L.minCount, L.maxCount)) {
    out.push({ prop, message: `${prop} count must be a whole number of sets from ${L.minCount} to ${L.maxCount}, got: ${show(value.count)}` });
  }
  if (value.maxAgeSeconds !== undefined && !isWholeIn(value.maxAgeSeconds, 1, MAX_LIFECYCLE_SECONDS)) {
    out.push({ prop, message: `${prop} age must be a whole number of seconds from 1 to 100 years, got: ${show(value.maxAgeSeconds)} seconds` });
  }
  for (const key of CALENDAR_KEYS) {
    if (value[key] !== undefined && !isWholeIn(value[key], 1, L.maxCalendarBuckets)) {
      out.push({ prop, message: `${prop} ${key} must be a whole number from 1 to ${L.maxCalendarBuckets}, got: ${show(value[key])}` });
    }
  }
  if (value.count === undefined && value.maxAgeSeconds === undefined && CALENDAR_KEYS.every((k) => value[k] === undefined)) {
    out.push({ prop, message: `${prop} must hold at least one rule (count, age or a calendar rule), got: ${show(value)}` });
  }
  if (typeof value.timeZone !== 'string' || !isKnownTimeZone(value.timeZone)) {
    out.push({ prop, message: `${prop} time zone must be an IANA time zone such as "Europe/Berlin", got: ${show(value.timeZone)}` });
  }
  if (!isWholeIn(value.goneInstanceSeconds, L.minGoneInstanceSeconds, MAX_LIFECYCLE_SECONDS)) {
    out.push({ prop, message: `${prop} for gone instances must be a whole number of seconds from ${L.minGoneInstanceSeconds} (1 day) to 100 years, got: ${show(value.goneInstanceSeconds)} seconds` });
  }
  return out;
}

/** A literal, unfilled EventBridge Scheduler context attribute such as `<aws.scheduler.execution-id>`. */
const SCHEDULER_PLACEHOLDER = /<aws\.scheduler\.[a-z-]+>/;
/** ISO 8601 in UTC, as EventBridge Scheduler writes `<aws.scheduler.scheduled-time>` (fractions allowed). */
const UTC_TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?Z$/;
/** Characters Step Functions allows in an execution name (no white space, no `<>{}[]?*"#%\\^|~`$&,;:/`). */
const EXECUTION_NAME = /^[^\s<>{}[\]?*"#%\\^|~`$&,;:/]{1,80}$/;

/**
 * One canonical text for a scheduled time, so that `2026-11-24T02:30:00Z` and
 * `2026-11-24T02:30:00.000Z` are the same occurrence: whole seconds without a fraction, otherwise
 * milliseconds. Returns undefined for anything that is not a real UTC timestamp.
 */
export function canonicalScheduledTime(value: string): string | undefined {
  const m = UTC_TIMESTAMP.exec(value);
  if (!m) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) return undefined;
  const iso = new Date(ms).toISOString();
  // Date.parse accepts 2026-02-30 and rolls it over: a real date reads back the same.
  if (iso.slice(0, 19) !== `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}`) return undefined;
  return iso.endsWith('.000Z') ? `${iso.slice(0, 19)}Z` : iso;
}

/**
 * Checks the execution's input and name and returns the run's occurrence. `scheduledTime` must be
 * a real UTC timestamp, the execution id and name must be filled in (not a literal
 * `<aws.scheduler.*>` placeholder) and fit EC2's 256-character tag values.
 */
export function parseOccurrence(scheduleId: string, input: unknown, executionName: unknown, nowMs: number = Date.now()): Occurrence {
  const v: ContractViolation[] = [];
  const record = isRecord(input) ? input : undefined;
  if (!record) {
    throw new InvalidRunRequestError([{ prop: 'input', message: `the execution input must be a JSON object like {"scheduledTime":"2026-11-24T02:30:00Z"}, got: ${show(input)}` }]);
  }
  const checkText = (prop: string, value: unknown, max: number): value is string => {
    if (typeof value !== 'string' || value.length === 0 || value.length > max) {
      v.push({ prop, message: `${prop} must be a string of 1 to ${max} characters, got: ${show(value)}` });
      return false;
    }
    if (SCHEDULER_PLACEHOLDER.test(value)) {
      v.push({ prop, message: `${prop} holds an EventBridge Scheduler placeholder that was not filled in, got: ${show(value)}` });
      return false;
    }
    return true;
  };
  let scheduledTime: string | undefined;
  if (checkText('scheduledTime', record.scheduledTime, LIMITS.maxTagValueLength)) {
    scheduledTime = canonicalScheduledTime(record.scheduledTime);
    if (!scheduledTime) {
      v.push({ prop: 'scheduledTime', message: `scheduledTime must be a UTC timestamp like "2026-11-24T02:30:00Z", got: ${show(record.scheduledTime)}` });
    }
  }
  if (record.schedulerExecutionId !== undefined) {
    checkText('schedulerExecutionId', record.schedulerExecutionId, LIMITS.maxTagValueLength);
  }
  if (checkText('executionName', executionName, LIMITS.maxExecutionNameLength) && !EXECUTION_NAME.test(executionName)) {
    v.push({ prop: 'executionName', message: `executionName must be a Step Functions execution name, got: ${show(executionName)}` });
  }
  const unknown = Object.keys(record).filter((k) => k !== 'scheduledTime' && k !== 'schedulerExecutionId');
  if (unknown.length > 0) {
    v.push({ prop: 'input', message: `the execution input takes only scheduledTime and schedulerExecutionId, got: ${show(unknown)}` });
  }
  v.push(...checkScheduleId(scheduleId));
  if (v.length > 0) throw new InvalidRunRequestError(v);
  // Kept from the later of the scheduled time and now: a lock taken today for an old occurrence
  // (a run started by hand) must not expire at once.
  const expiresAt = Math.floor(Math.max(Date.parse(scheduledTime!), nowMs) / 1000) + LOCK_RETENTION_DAYS * 86_400;
  return {
    scheduledTime: scheduledTime!,
    executionName: executionName as string,
    lockKey: `${scheduleId}#${scheduledTime}`,
    expiresAt: String(expiresAt),
  };
}

/** Checks an occurrence handed from one workflow state to the next (it is re-derived, never trusted). */
export function checkOccurrence(scheduleId: string, value: unknown): Occurrence {
  const o = isRecord(value) ? value : {};
  const again = parseOccurrence(scheduleId, { scheduledTime: o.scheduledTime }, o.executionName);
  if (again.lockKey !== o.lockKey || typeof o.expiresAt !== 'string' || !/^\d{1,12}$/.test(o.expiresAt)) {
    throw new InvalidRunRequestError([{ prop: 'occurrence', message: `the occurrence does not match its scheduled time and schedule, got: ${show(value)}` }]);
  }
  return { ...again, expiresAt: o.expiresAt };
}

/**
 * The SHA-256 of a request's canonical JSON (object keys sorted). The construct sets it on the
 * schedule's worker; the worker refuses any request that does not hash the same.
 */
export function requestSha256(request: SnapshotRunRequest): string {
  return createHash('sha256').update(canonicalJson(request)).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isRecord(value)) {
    return `{${Object.keys(value).sort().filter((k) => value[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The run's CloudWatch metrics (embedded metric format), named once for the worker that emits them
 * and the construct's metric helpers and alarms. Every metric has exactly one dimension,
 * `Schedule` (the schedule id).
 */
export const METRICS = {
  namespace: 'CdkInstanceSnapshots',
  scheduleDimension: 'Schedule',
  /** Emitted once per finished run (the final step). */
  instancesSelected: 'InstancesSelected',
  snapshotSetsCreated: 'SnapshotSetsCreated',
  instancesAlreadyDone: 'InstancesAlreadyDone',
  dryRunChecksPassed: 'DryRunChecksPassed',
  instancesSkipped: 'InstancesSkipped',
  instancesFailed: 'InstancesFailed',
  instancesNotAttempted: 'InstancesNotAttempted',
  /** Seconds from the run's first step to its end. */
  runDuration: 'RunDuration',
  /** Emitted by every step, also one that fails: 1 when the step threw. */
  stepFailures: 'StepFailures',
  /** Sets whose snapshots EC2 reported failed after CreateSnapshots returned (EBS completion events). */
  snapshotSetsFailed: 'SnapshotSetsFailed',
  /** New sets whose snapshots could not all be locked (`lock`): the set exists without its protection. */
  snapshotLocksFailed: 'SnapshotLocksFailed',
  /** Retention, emitted by the run's final step when the schedule has retention rules. */
  snapshotSetsDeleted: 'SnapshotSetsDeleted',
  snapshotsDeleted: 'SnapshotsDeleted',
  /** Dry run: sets the rules would delete. */
  snapshotSetsToDelete: 'SnapshotSetsToDelete',
  /** Sets the rules no longer keep but that are kept: a snapshot backs an AMI (InvalidSnapshot.InUse). */
  snapshotSetsInUse: 'SnapshotSetsInUse',
  /** Sets the rules no longer keep but that a snapshot lock still protects. */
  snapshotSetsLocked: 'SnapshotSetsLocked',
  /** Sets whose deletion failed for any other reason (the run fails). */
  pruneFailures: 'PruneFailures',
  /** Copies, by schedule (the dimension) over every destination Region; emitted by the run's final step with `copies`. */
  snapshotsCopied: 'SnapshotsCopied',
  /** Sets whose copy to a destination could not be made (the run fails). */
  copyFailures: 'CopyFailures',
  /** Copies still in progress past their completion duration when the run ended. */
  copiesOverdue: 'CopiesOverdue',
  /** Sets shared with the vault (and announced on its bus), and sets that could not be. */
  setsShared: 'SnapshotSetsShared',
  shareFailures: 'ShareFailures',
  /** In the vault: sets copied from a source account, sets that could not be, copies deleted by the vault's retention. */
  vaultSetsCopied: 'VaultSetsCopied',
  vaultCopyFailures: 'VaultCopyFailures',
  vaultSnapshotsDeleted: 'VaultSnapshotsDeleted',
} as const;

/** The worker's environment variable that names the SNS topic it notifies of failed sets. */
export const NOTIFICATION_TOPIC_ENV = 'NOTIFICATION_TOPIC_ARN';

/**
 * The worker's environment variable that holds its schedule's id: an EBS completion event carries
 * no tags, so the worker keeps the snapshots whose `SCHEDULE_TAG` equals it.
 */
export const SCHEDULE_ID_ENV = 'SCHEDULE_ID';
