/**
 * Pure builders for the EC2 requests the handler makes, and pure readers of EC2's answers.
 * No client, no I/O: every function here is tested on its own.
 */
import type {
  CreateSnapshotsCommandInput,
  DescribeInstancesCommandInput,
  DescribeSnapshotsCommandInput,
  DescribeVolumesCommandInput,
  Instance,
  Snapshot,
  SnapshotLocationEnum,
  Tag,
  Volume,
} from '@aws-sdk/client-ec2';
import {
  EXECUTION_ID_TAG,
  INSTANCE_ID_TAG,
  LIMITS,
  SCHEDULE_TAG,
  SCHEDULED_TIME_TAG,
  Occurrence,
  SNAPSHOT_INSTANCE_STATES,
  SnapshotRunRequest,
  TRANSITIONAL_INSTANCE_STATES,
} from '../src/private/request-contract';

/** Largest page EC2 serves for DescribeInstances and DescribeSnapshots. */
export const DESCRIBE_PAGE_SIZE = 1000;
/** Largest page EC2 serves for DescribeVolumes. */
export const DESCRIBE_VOLUMES_PAGE_SIZE = 500;

/** Instance ids per DescribeSnapshots look-up (values of one `tag:` filter; EC2 accepts up to 200). */
export const LOOKUP_BATCH_SIZE = 100;

/**
 * What the worker will ask of EC2 for one selected instance: the instance id and the
 * per-instance adjustments of the run's options.
 */
export interface PlannedInstance {
  /** Instance id. */
  readonly id: string;
  /** The run's excluded data volumes that are attached to this instance (EC2 rejects others' ids, and the root's). */
  readonly x?: string[];
  /** Exclude the boot volume of this instance (the run's `excludeBootVolume`, or its root named in `excludeDataVolumeIds`). */
  readonly b?: boolean;
  /** Pass the run's `outpostArn` (only for instances on that Outpost). */
  readonly o?: boolean;
  /** Pass the run's `location` (only for instances in a Local Zone: EC2 wants it left out for the others). */
  readonly l?: boolean;
}

/** An Availability Zone of a Region (`us-east-1a`), as opposed to a Local Zone (`us-west-2-lax-1a`) or a Wavelength Zone. */
const REGIONAL_ZONE = /^[a-z]{2}(-[a-z]+)+-\d+[a-z]$/;

/** The instance runs in a Local Zone (or another zone outside the Region's own Availability Zones); unknown placement counts as one. */
export function inLocalZone(instance: Instance): boolean {
  const zone = instance.Placement?.AvailabilityZone;
  return zone === undefined || !REGIONAL_ZONE.test(zone);
}

/** An instance that the listing returned but that gets no `CreateSnapshots` call, and why. */
export interface UnplannedInstance {
  readonly id: string;
  /**
   * `skipped`: nothing asked to be snapshotted; `failed`: a set was asked for and EC2 cannot make
   * it; `not-attempted`: the instance is starting or stopping, a later pass takes it.
   */
  readonly outcome: 'skipped' | 'failed' | 'not-attempted';
  readonly reason: string;
  readonly message: string;
}

/** EC2 filter values treat `*` and `?` as wildcards: escape them so the match is exact. */
export function escapeFilterValue(value: string): string {
  return value.replace(/[\\*?]/g, (c) => `\\${c}`);
}

/**
 * One DescribeInstances page: every selection tag as a `tag:` filter, and the snapshot-worthy
 * states with the transitional ones that lead to them (reported, not silently dropped).
 */
export function buildDescribeInstancesInput(request: SnapshotRunRequest, nextToken?: string): DescribeInstancesCommandInput {
  return {
    Filters: [
      ...Object.entries(request.instanceTags).map(([key, values]) => ({ Name: `tag:${key}`, Values: values.map(escapeFilterValue) })),
      { Name: 'instance-state-name', Values: [...SNAPSHOT_INSTANCE_STATES, ...TRANSITIONAL_INSTANCE_STATES] },
    ],
    MaxResults: DESCRIBE_PAGE_SIZE,
    NextToken: nextToken,
  };
}

/**
 * The account's own snapshots of this schedule's occurrence for the given instances: the look-up
 * that tells what is already done. Identity is (schedule, scheduled time, instance), never the
 * execution, so a second delivery of the occurrence finds the first one's sets.
 */
export function buildDescribeOccurrenceSnapshotsInput(
  request: SnapshotRunRequest,
  occurrence: Occurrence,
  instanceIds: readonly string[],
  nextToken?: string,
): DescribeSnapshotsCommandInput {
  return {
    OwnerIds: ['self'],
    Filters: [
      { Name: `tag:${SCHEDULE_TAG}`, Values: [escapeFilterValue(request.scheduleId)] },
      { Name: `tag:${SCHEDULED_TIME_TAG}`, Values: [escapeFilterValue(occurrence.scheduledTime)] },
      { Name: `tag:${INSTANCE_ID_TAG}`, Values: [...instanceIds] },
    ],
    MaxResults: DESCRIBE_PAGE_SIZE,
    NextToken: nextToken,
  };
}

/**
 * One DescribeVolumes page per key of `excludeDataVolumeTags` (a volume is excluded when it carries
 * ANY of the keys, while EC2 ANDs filters): the volumes carrying that key with one of its values.
 */
export function buildDescribeExcludedVolumesInput(key: string, values: string[], nextToken?: string): DescribeVolumesCommandInput {
  return {
    Filters: [{ Name: `tag:${key}`, Values: values.map(escapeFilterValue) }],
    MaxResults: DESCRIBE_VOLUMES_PAGE_SIZE,
    NextToken: nextToken,
  };
}

/** The volumes that carry any excluded key with one of its values (exact match). */
export function excludedByTag(excludeDataVolumeTags: Record<string, string[]>, volumes: Volume[]): Set<string> {
  return new Set(volumes
    .filter((v) => v.VolumeId && Object.entries(excludeDataVolumeTags).some(([key, values]) => {
      const value = tagValue(v.Tags, key);
      return value !== undefined && values.includes(value);
    }))
    .map((v) => v.VolumeId!));
}

function tagValue(tags: Tag[] | undefined, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value;
}

/**
 * Exact tag match (EC2's filter is the first pass; this is the definitive one): every key of
 * `instanceTags` with one of its values, and no key of `excludeInstanceTags` with one of its values
 * (EC2's filters cannot say NOT, so exclusion is decided here only).
 */
export function matchesSelection(request: SnapshotRunRequest, instance: Instance): boolean {
  return Object.entries(request.instanceTags).every(([key, values]) => {
    const value = tagValue(instance.Tags, key);
    return value !== undefined && values.includes(value);
  }) && !excludedByInstanceTags(request, instance);
}

/** The instance carries a key of `excludeInstanceTags` with one of its values. */
export function excludedByInstanceTags(request: SnapshotRunRequest, instance: Instance): boolean {
  return Object.entries(request.excludeInstanceTags ?? {}).some(([key, values]) => {
    const value = tagValue(instance.Tags, key);
    return value !== undefined && values.includes(value);
  });
}

/**
 * Instance ids that already have a snapshot set of the occurrence, from DescribeSnapshots results.
 * Only snapshots that carry the schedule and scheduled-time tags exactly count (EC2's filter is the
 * first pass; this is the definitive one).
 */
export function instancesWithSets(request: SnapshotRunRequest, occurrence: Occurrence, snapshots: Snapshot[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const snapshot of snapshots) {
    const schedule = tagValue(snapshot.Tags, SCHEDULE_TAG);
    const scheduledTime = tagValue(snapshot.Tags, SCHEDULED_TIME_TAG);
    if (schedule !== request.scheduleId || scheduledTime !== occurrence.scheduledTime) continue;
    const instanceId = tagValue(snapshot.Tags, INSTANCE_ID_TAG);
    if (!instanceId || !snapshot.SnapshotId) continue;
    out.set(instanceId, [...(out.get(instanceId) ?? []), snapshot.SnapshotId]);
  }
  return out;
}

/**
 * Decides what to ask of EC2 for one listed instance, or why not to ask anything.
 */
export interface InstancePlan {
  readonly planned?: PlannedInstance;
  readonly unplanned?: UnplannedInstance;
  readonly warning?: string;
}

export function planInstance(request: SnapshotRunRequest, instance: Instance, excludedVolumeIds: ReadonlySet<string> = new Set()): InstancePlan {
  const id = instance.InstanceId!;
  const state = instance.State?.Name;
  if (state !== undefined && TRANSITIONAL_INSTANCE_STATES.includes(state)) {
    return {
      unplanned: {
        id,
        outcome: 'not-attempted',
        reason: state === 'pending' ? 'InstancePending' : 'InstanceStopping',
        message: `the instance is ${state}: a later pass of this run takes it once it is running or stopped`,
      },
    };
  }
  const attached = (instance.BlockDeviceMappings ?? [])
    .map((m) => ({ device: m.DeviceName, volumeId: m.Ebs?.VolumeId }))
    .filter((m): m is { device: string | undefined; volumeId: string } => !!m.volumeId);
  const rootVolumeId = attached.find((m) => m.device !== undefined && m.device === instance.RootDeviceName)?.volumeId;
  const attachedIds = new Set(attached.map((m) => m.volumeId));

  let warning: string | undefined;
  let excludeBoot = request.excludeBootVolume;
  if (rootVolumeId && request.excludeDataVolumeIds.includes(rootVolumeId) && !excludeBoot) {
    excludeBoot = true;
    warning = `excludeDataVolumeIds names ${rootVolumeId}, the root volume of ${id}: its boot volume is excluded instead (EC2 rejects a root volume in ExcludeDataVolumeIds)`;
  }
  // By id (the run's list) and by tag (volumes looked up for this run); never the root: EC2 rejects it there.
  const excludedData = [...new Set([...request.excludeDataVolumeIds, ...excludedVolumeIds])]
    .filter((v) => attachedIds.has(v) && v !== rootVolumeId);
  if (excludedData.length > LIMITS.maxExcludeDataVolumeIds) {
    return {
      unplanned: {
        id,
        outcome: 'failed',
        reason: 'TooManyExcludedVolumes',
        message: `${excludedData.length} attached data volumes are excluded by id or tag; EC2 accepts at most ${LIMITS.maxExcludeDataVolumeIds} in one request`,
      },
      warning,
    };
  }
  const remaining = attached.filter((m) => !excludedData.includes(m.volumeId) && !(excludeBoot && m.volumeId === rootVolumeId));
  if (remaining.length === 0) {
    return {
      unplanned: {
        id,
        outcome: 'skipped',
        reason: 'NoVolumesToSnapshot',
        message: attached.length === 0 ? 'the instance has no EBS volume attached' : 'every attached EBS volume is excluded',
      },
      warning,
    };
  }
  const planned: PlannedInstance = {
    id,
    ...(excludedData.length > 0 ? { x: excludedData } : {}),
    ...(excludeBoot ? { b: true } : {}),
    ...(request.outpostArn && instance.OutpostArn === request.outpostArn ? { o: true } : {}),
    ...(request.location !== undefined && inLocalZone(instance) ? { l: true } : {}),
  };
  return { planned, warning };
}

/** The CreateSnapshots request for one planned instance: every option of the run, and the library's own tags. */
export function buildCreateSnapshotsInput(
  request: SnapshotRunRequest,
  occurrence: Occurrence,
  planned: PlannedInstance,
): CreateSnapshotsCommandInput {
  const tags: Tag[] = [
    ...Object.entries(request.snapshotTags).map(([Key, Value]) => ({ Key, Value })),
    { Key: SCHEDULE_TAG, Value: request.scheduleId },
    { Key: EXECUTION_ID_TAG, Value: occurrence.executionName },
    { Key: INSTANCE_ID_TAG, Value: planned.id },
    { Key: SCHEDULED_TIME_TAG, Value: occurrence.scheduledTime },
  ];
  return {
    InstanceSpecification: {
      InstanceId: planned.id,
      ExcludeBootVolume: planned.b ?? false,
      ...(planned.x ? { ExcludeDataVolumeIds: planned.x } : {}),
    },
    ...(request.description !== undefined ? { Description: request.description } : {}),
    ...(planned.o ? { OutpostArn: request.outpostArn } : {}),
    ...(planned.l ? { Location: request.location as SnapshotLocationEnum } : {}),
    TagSpecifications: [{ ResourceType: 'snapshot', Tags: tags }],
    ...(request.copyTagsFromSource ? { CopyTagsFromSource: 'volume' as const } : {}),
    DryRun: request.dryRun,
  };
}
