/**
 * The request contract between the construct and the handler, written once.
 *
 * The construct renders a `SnapshotRunRequest` into the EventBridge Scheduler target input; the
 * handler (lambda/, bundled by esbuild from this same file) parses it with `parseRunRequest`. The
 * limits below are EC2's; the construct checks props against them at synth time and the handler
 * checks the request again at run time, with the same functions.
 *
 * This module is private (not exported from the package) and has no dependency on aws-cdk-lib,
 * so the handler bundle stays small.
 */

/** Version of the request shape. Bump it on any incompatible change. */
export const REQUEST_VERSION = 1;

/** Prefix of the tags that the library owns on every snapshot it creates. */
export const OWNERSHIP_TAG_PREFIX = 'cdk-instance-snapshots:';
/** Which schedule made the snapshot (the construct's path in the CDK app). */
export const SCHEDULE_TAG = `${OWNERSHIP_TAG_PREFIX}schedule`;
/** Which scheduled run made the snapshot (EventBridge Scheduler execution id): the idempotency key. */
export const EXECUTION_ID_TAG = `${OWNERSHIP_TAG_PREFIX}execution-id`;
/** Which instance the snapshot set belongs to. */
export const INSTANCE_ID_TAG = `${OWNERSHIP_TAG_PREFIX}instance-id`;
/** The time the run was scheduled for (ISO 8601). */
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
};

/** Instance states in which a snapshot set is taken (pending, stopping, shutting-down and terminated are not). */
export const SNAPSHOT_INSTANCE_STATES = ['running', 'stopped'];

/** The only value EC2 accepts for `CopyTagsFromSource`. */
export const COPY_TAGS_FROM_VOLUME = 'volume';

/**
 * What one scheduled run must do. Rendered by the construct into the schedule's target input.
 */
export interface SnapshotRunRequest {
  /** Always `REQUEST_VERSION`. */
  readonly version: number;
  /** Identifies the schedule (the construct's path); written to the `SCHEDULE_TAG` tag. */
  readonly scheduleId: string;
  /** EventBridge Scheduler's execution id for this run (`<aws.scheduler.execution-id>`). */
  readonly executionId: string;
  /** The time this run was scheduled for (`<aws.scheduler.scheduled-time>`). */
  readonly scheduledTime: string;
  /** Tag key -> accepted values; an instance is selected when it matches every key. */
  readonly instanceTags: Record<string, string[]>;
  readonly excludeBootVolume: boolean;
  readonly excludeDataVolumeIds: string[];
  /**
   * Tag key -> values: a data volume carrying any key with one of its values is left out.
   * Optional so that requests rendered before it existed (a dead-letter re-drive) stay valid.
   */
  readonly excludeDataVolumeTags?: Record<string, string[]>;
  readonly outpostArn?: string;
  readonly description?: string;
  /** The user's tags for every snapshot (the ownership tags are added by the handler). */
  readonly snapshotTags: Record<string, string>;
  /** `'volume'` to copy each volume's tags to its snapshot. */
  readonly copyTagsFromSource?: string;
  readonly dryRun: boolean;
}

/** One problem found in a request or in props: the prop it concerns and what is wrong. */
export interface ContractViolation {
  readonly prop: string;
  readonly message: string;
}

const VOLUME_ID = /^vol-([0-9a-f]{8}|[0-9a-f]{17})$/;
const OUTPOST_ARN = /^arn:aws[a-z-]*:outposts:[a-z0-9-]+:\d{12}:outpost\/op-[0-9a-f]{17}$/;

function show(value: unknown): string {
  return JSON.stringify(value);
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

  if (event.version !== REQUEST_VERSION) {
    v.push({ prop: 'version', message: `version must be ${REQUEST_VERSION}, got: ${show(event.version)}` });
  }
  const scheduleId = str('scheduleId', true);
  const executionId = str('executionId', true);
  const scheduledTime = str('scheduledTime', true);

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

  if (v.length > 0) {
    throw new InvalidRunRequestError(v);
  }
  return {
    version: REQUEST_VERSION,
    scheduleId: scheduleId!,
    executionId: executionId!,
    scheduledTime: scheduledTime!,
    instanceTags,
    excludeBootVolume,
    excludeDataVolumeIds,
    excludeDataVolumeTags,
    outpostArn,
    description,
    snapshotTags,
    copyTagsFromSource,
    dryRun,
  };
}
