import { Annotations, Stack, Token } from 'aws-cdk-lib';
import { RegionInfo } from 'aws-cdk-lib/region-info';
import { Construct } from 'constructs';
import { heartbeatPeriodProblem } from './heartbeat';
import { isDuration, isTokenValue, MAX_LIFECYCLE_SECONDS, showDuration, wholeUnits } from './lifecycle';
import {
  checkCallsPerSecond,
  checkCreateSnapshotsPerSecond,
  checkDescription,
  checkExcludeDataVolumeIds,
  checkExcludeDataVolumeTags,
  checkExcludeInstanceTags,
  checkInstanceTags,
  checkLocation,
  checkOutpostArn,
  checkScheduleId,
  checkSnapshotTags,
  ContractViolation,
  COPY_LIMITS,
  DEFAULT_DELETE_SNAPSHOTS_PER_SECOND,
  LIFECYCLE_LIMITS,
  LIMITS,
  OWNERSHIP_TAG_KEYS,
  show,
  SOURCE_REGION_TAG,
  SOURCE_SNAPSHOT_TAG,
} from './request-contract';
import { describeTopic } from './shared-resources';
import { CopyTagsFromSource } from '../copy-tags-from-source';
import type { InstanceSnapshotScheduleProps } from '../instance-snapshot-schedule';
import { LogLevel } from '../log-level';
import { Retention } from '../retention';
import { SnapshotLocation } from '../snapshot-location';
import { SnapshotLock } from '../snapshot-lock';

/** The longest schedule id: it is the value of the metrics' `Schedule` dimension, which aws-cdk-lib limits to 255 characters. */
export const MAX_DIMENSION_VALUE_LENGTH = 255;

/** Checks that a schedule id fits the metrics' dimension value (one character shorter than a tag value). */
export function checkDimensionValue(scheduleId: string, prop: string): ContractViolation[] {
  if (scheduleId.length > MAX_DIMENSION_VALUE_LENGTH) {
    return [{
      prop,
      message: `${prop} must be at most ${MAX_DIMENSION_VALUE_LENGTH} characters (it is the value of the metrics' Schedule dimension), got: ${show(scheduleId)} (${scheduleId.length})`,
    }];
  }
  return [];
}

/** Recycle Bin keeps deleted EBS snapshots 1 to 365 days. */
export const RECYCLE_BIN_DAYS = { min: 1, max: 365 };

/** EC2's `Location` value for each `SnapshotLocation`. */
export const LOCATION_VALUES: Record<SnapshotLocation, string> = {
  [SnapshotLocation.REGIONAL]: 'regional',
  [SnapshotLocation.LOCAL]: 'local',
};

/** Warns about tag keys and values with white space at either end: they almost never match an instance. */
function warnAboutPadding(scope: Construct, prop: string, tags: Record<string, unknown> | undefined): void {
  for (const [key, values] of Object.entries(tags ?? {})) {
    const padded = [key, ...(Array.isArray(values) ? values : [values])]
      .filter((x): x is string => typeof x === 'string' && !Token.isUnresolved(x) && x.trim() !== x);
    if (padded.length > 0) {
      Annotations.of(scope).addWarningV2(`cdk-instance-snapshots:${prop}Whitespace`,
        `${prop} has keys or values with white space at either end, which EC2 compares exactly: ${show(padded)}`);
    }
  }
}

/**
 * Checks every prop at synth time (tokens are skipped) and throws one error listing every problem,
 * each naming the prop and ending with the value it got; warns about legal but suspicious values.
 */
export function validateProps(scope: Construct, props: InstanceSnapshotScheduleProps): void {
  const unresolved = (s: string) => Token.isUnresolved(s);
  const violations: ContractViolation[] = [];
  const tagMap = (prop: string, value: unknown, required: boolean): value is { [key: string]: string[] } => {
    if (value === undefined && !required) return false;
    if (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value)) {
      violations.push({ prop, message: `${prop} must be an object of tag key -> list of values${required ? ' (required)' : ''}, got: ${show(value)}` });
      return false;
    }
    for (const [key, values] of Object.entries(value)) {
      if (Token.isUnresolved(values)) {
        violations.push({ prop, message: `${prop}[${show(key)}] must be a list written out in the app (a list token cannot be checked or turned into EC2 filters), got: ${show(values)}` });
        return false;
      }
    }
    return !Token.isUnresolved(value);
  };
  if (tagMap('instanceTags', props.instanceTags, true)) {
    violations.push(...checkInstanceTags(props.instanceTags, unresolved));
    warnAboutPadding(scope, 'instanceTags', props.instanceTags);
  }
  if (props.excludeDataVolumeIds !== undefined && !Token.isUnresolved(props.excludeDataVolumeIds)) {
    if (!Array.isArray(props.excludeDataVolumeIds)) {
      violations.push({ prop: 'excludeDataVolumeIds', message: `excludeDataVolumeIds must be a list of volume ids, got: ${show(props.excludeDataVolumeIds)}` });
    } else {
      violations.push(...checkExcludeDataVolumeIds(props.excludeDataVolumeIds, unresolved));
    }
  }
  if (tagMap('excludeDataVolumeTags', props.excludeDataVolumeTags, false)) {
    violations.push(...checkExcludeDataVolumeTags(props.excludeDataVolumeTags!, unresolved));
    warnAboutPadding(scope, 'excludeDataVolumeTags', props.excludeDataVolumeTags);
  }
  if (tagMap('excludeInstanceTags', props.excludeInstanceTags, false)) {
    violations.push(...checkExcludeInstanceTags(props.excludeInstanceTags!, unresolved));
    violations.push(...excludesEverything(props.instanceTags, props.excludeInstanceTags!));
    warnAboutPadding(scope, 'excludeInstanceTags', props.excludeInstanceTags);
  }
  if (props.snapshotTags !== undefined && !Token.isUnresolved(props.snapshotTags)) {
    if (props.snapshotTags === null || typeof props.snapshotTags !== 'object' || Array.isArray(props.snapshotTags)) {
      violations.push({ prop: 'snapshotTags', message: `snapshotTags must be an object of tag key -> value, got: ${show(props.snapshotTags)}` });
    } else {
      violations.push(...withCopyTagLimit(checkSnapshotTags(props.snapshotTags, unresolved), props.snapshotTags, hasCopies(props)));
    }
  }
  if (props.outpostArn !== undefined && !Token.isUnresolved(props.outpostArn)) {
    violations.push(...checkOutpostArn(props.outpostArn));
  }
  if (props.description !== undefined && !Token.isUnresolved(props.description)) {
    violations.push(...checkDescription(props.description));
  }
  if (props.copyTagsFromSource !== undefined && !Object.values(CopyTagsFromSource).includes(props.copyTagsFromSource)) {
    violations.push({ prop: 'copyTagsFromSource', message: `copyTagsFromSource must be a CopyTagsFromSource member, got: ${show(props.copyTagsFromSource)}` });
  }
  // Plain JavaScript callers can pass anything: 'false' is a truthy string, not false.
  for (const prop of ['excludeBootVolume', 'dryRun', 'enabled', 'alarms', 'dashboard'] as const) {
    const value: unknown = props[prop];
    if (value !== undefined && typeof value !== 'boolean') {
      violations.push({ prop, message: `${prop} must be true or false, got: ${show(value)}` });
    }
  }
  if (props.createSnapshotsPerSecond !== undefined && !Token.isUnresolved(props.createSnapshotsPerSecond)) {
    violations.push(...checkCreateSnapshotsPerSecond(props.createSnapshotsPerSecond));
  }
  if (props.retryAttempts !== undefined && !Token.isUnresolved(props.retryAttempts)
    && (!Number.isInteger(props.retryAttempts) || props.retryAttempts < 0 || props.retryAttempts > 185)) {
    violations.push({ prop: 'retryAttempts', message: `retryAttempts must be a whole number from 0 to 185, got: ${show(props.retryAttempts)}` });
  }
  if (props.maxEventAge !== undefined && !Token.isUnresolved(props.maxEventAge.toSeconds())) {
    const seconds = props.maxEventAge.toSeconds();
    if (seconds < 60 || seconds > 86_400) {
      violations.push({ prop: 'maxEventAge', message: `maxEventAge must be from 1 minute to 24 hours, got: ${props.maxEventAge.toHumanString()}` });
    }
  }
  if (props.logLevel !== undefined && !Object.values(LogLevel).includes(props.logLevel)) {
    violations.push({ prop: 'logLevel', message: `logLevel must be a LogLevel member, got: ${show(props.logLevel)}` });
  }
  const minimum: unknown = props.expectedMinimumInstances;
  if (minimum !== undefined && !Token.isUnresolved(minimum) && !(typeof minimum === 'number' && Number.isSafeInteger(minimum) && minimum >= 0)) {
    violations.push({ prop: 'expectedMinimumInstances', message: `expectedMinimumInstances must be a whole number of 0 or more (0 turns the minimum off), got: ${show(minimum)}` });
  }
  if (props.heartbeatPeriod !== undefined) {
    const problem = Token.isUnresolved(props.heartbeatPeriod.toMilliseconds({ integral: false }))
      ? `heartbeatPeriod must be known at synth time (it sets the alarm's periods), got: ${props.heartbeatPeriod.toString()}`
      : heartbeatPeriodProblem(props.heartbeatPeriod);
    if (problem) violations.push({ prop: 'heartbeatPeriod', message: problem });
  }
  violations.push(...lifecycleViolations(props));
  violations.push(...copyViolations(scope, props.copies));
  violations.push(...vaultViolations(scope, props.vault));
  if (props.notificationTopic?.fifo) {
    violations.push({
      prop: 'notificationTopic',
      message: `notificationTopic must be a standard topic (EventBridge publishes to a FIFO topic only with a message group id), got: ${describeTopic(props.notificationTopic)}`,
    });
  }
  if (props.deadLetterQueue?.fifo) {
    const queue = props.deadLetterQueue;
    violations.push({
      prop: 'deadLetterQueue',
      message: `deadLetterQueue must be a standard queue (EventBridge Scheduler takes no FIFO dead-letter queue), got: ${Token.isUnresolved(queue.queueArn) ? `the queue ${queue.node.path}` : show(queue.queueArn)}`,
    });
  }
  if (violations.length > 0) {
    // Every problem at once, one per line, so a user fixes them in one pass.
    throw new Error(violations.map((v) => v.message).join('\n'));
  }
}

/**
 * `excludeInstanceTags` that leave nothing to select: a key of `instanceTags` whose every accepted
 * value is excluded (an instance must carry one of them, and carrying any excludes it).
 */
function excludesEverything(instanceTags: unknown, exclude: { [key: string]: string[] }): ContractViolation[] {
  if (typeof instanceTags !== 'object' || instanceTags === null || Token.isUnresolved(instanceTags)) return [];
  const out: ContractViolation[] = [];
  for (const [key, excluded] of Object.entries(exclude)) {
    const accepted: unknown = (instanceTags as Record<string, unknown>)[key];
    if (Token.isUnresolved(key) || !Array.isArray(accepted) || accepted.length === 0 || !Array.isArray(excluded)) continue;
    if (accepted.some((v) => typeof v !== 'string' || Token.isUnresolved(v))) continue;
    if (accepted.every((v) => excluded.includes(v))) {
      out.push({
        prop: 'excludeInstanceTags',
        message: `excludeInstanceTags[${show(key)}] excludes every value instanceTags accepts for that key, so no instance could ever be selected, `
          + `got: ${show(excluded)} excluding instanceTags[${show(key)}] ${show(accepted)}`,
      });
    }
  }
  return out;
}

/** Checks the identity and lifecycle props: scheduleId, retention, lock, Recycle Bin, location and the DeleteSnapshot rate. */
function lifecycleViolations(props: InstanceSnapshotScheduleProps): ContractViolation[] {
  const out: ContractViolation[] = [];
  const scheduleId: unknown = props.scheduleId;
  if (scheduleId !== undefined) {
    if (typeof scheduleId === 'string' && Token.isUnresolved(scheduleId)) {
      out.push({
        prop: 'scheduleId',
        message: `scheduleId must be written out in the app (it is the snapshots' tag value, IAM conditions and the metrics dimension), got: ${show(scheduleId)}`,
      });
    } else {
      const problems = checkScheduleId(scheduleId as string, 'scheduleId');
      out.push(...(problems.length > 0 ? problems : checkDimensionValue(scheduleId as string, 'scheduleId')));
    }
  }
  if (props.retention !== undefined && !(props.retention instanceof Retention)) {
    out.push({ prop: 'retention', message: `retention must be made with Retention.count(), .age(), .calendar() or .anyOf(), got: ${show(props.retention)}` });
  }
  if (props.lock !== undefined && !(props.lock instanceof SnapshotLock)) {
    out.push({ prop: 'lock', message: `lock must be made with SnapshotLock.governance() or SnapshotLock.compliance(), got: ${show(props.lock)}` });
  }
  if (props.goneInstanceRetention !== undefined) {
    const gone = props.goneInstanceRetention;
    if (props.retention === undefined && !copiesHaveRetention(props.copies)) {
      out.push({
        prop: 'goneInstanceRetention',
        message: `goneInstanceRetention only applies with retention (without it nothing is deleted): set retention or leave it out, got: ${showDuration(gone)}`,
      });
    } else if (isTokenValue(gone)) {
      out.push({ prop: 'goneInstanceRetention', message: 'goneInstanceRetention must be written out in the app (the worker evaluates it from the rendered request), got: an unresolved token' });
    } else if (wholeUnits(gone, 1, LIFECYCLE_LIMITS.minGoneInstanceSeconds, MAX_LIFECYCLE_SECONDS) === undefined) {
      out.push({ prop: 'goneInstanceRetention', message: `goneInstanceRetention must be whole seconds from 1 day to 36600 days (100 years), got: ${showDuration(gone)}` });
    }
  }
  if (props.recycleBinRetention !== undefined) {
    const bin = props.recycleBinRetention;
    if (isTokenValue(bin) || wholeUnits(bin, 86_400, RECYCLE_BIN_DAYS.min, RECYCLE_BIN_DAYS.max) === undefined) {
      out.push({
        prop: 'recycleBinRetention',
        message: `recycleBinRetention must be whole days from ${RECYCLE_BIN_DAYS.min} to ${RECYCLE_BIN_DAYS.max} (Recycle Bin's range for EBS snapshots), `
          + `got: ${isDuration(bin) ? showDuration(bin) : show(bin)}`,
      });
    }
  }
  if (props.location !== undefined) {
    const location = LOCATION_VALUES[props.location];
    if (location === undefined) {
      out.push({ prop: 'location', message: `location must be a SnapshotLocation member, got: ${show(props.location)}` });
    } else {
      out.push(...checkLocation(location, props.outpostArn));
    }
  }
  if (props.deleteSnapshotsPerSecond !== undefined) {
    if (props.retention === undefined) {
      out.push({
        prop: 'deleteSnapshotsPerSecond',
        message: `deleteSnapshotsPerSecond only applies with retention (without it nothing is deleted): set retention or leave it out, got: ${show(props.deleteSnapshotsPerSecond)}`,
      });
    } else if (!Token.isUnresolved(props.deleteSnapshotsPerSecond)) {
      out.push(...checkCallsPerSecond(props.deleteSnapshotsPerSecond, 'deleteSnapshotsPerSecond', DEFAULT_DELETE_SNAPSHOTS_PER_SECOND));
    }
  }
  return out;
}

/** True when `copies` names at least one rule (an empty list is no copies). */
export function hasCopies(props: InstanceSnapshotScheduleProps): boolean {
  return Array.isArray(props.copies) && props.copies.length > 0;
}

function copiesHaveRetention(copies: unknown): boolean {
  return Array.isArray(copies) && copies.some((rule) => typeof rule === 'object' && rule !== null && rule.retention !== undefined);
}

/** The tags the library puts on a copy besides the user's: its ownership tags and the two source tags. */
const COPY_OWN_TAGS = [...OWNERSHIP_TAG_KEYS, SOURCE_SNAPSHOT_TAG, SOURCE_REGION_TAG];

/**
 * With copies, a copy carries the two source tags as well: `snapshotTags` may hold 2 tags fewer.
 * Replaces the contract's count message (which counts for the source snapshots only) by this one.
 */
function withCopyTagLimit(problems: ContractViolation[], tags: Record<string, string>, copies: boolean): ContractViolation[] {
  const allowed = LIMITS.maxTagsPerResource - COPY_OWN_TAGS.length;
  const count = Object.keys(tags).length;
  if (!copies || count <= allowed) return problems;
  return [
    ...problems.filter((p) => !p.message.startsWith('snapshotTags may hold at most')),
    {
      prop: 'snapshotTags',
      message: `snapshotTags may hold at most ${allowed} tags with copies (EC2 allows ${LIMITS.maxTagsPerResource} per snapshot, and each copy carries `
        + `the library's ${OWNERSHIP_TAG_KEYS.length} tags and ${SOURCE_SNAPSHOT_TAG} and ${SOURCE_REGION_TAG}), got: ${count}`,
    },
  ];
}

/** Every field of a `SnapshotCopyRule`. */
const COPY_RULE_PROPS = ['region', 'kmsKeyArn', 'copyTags', 'retention', 'completionDuration'];
/** A KMS key ARN (IAM grants the use of a key by its key ARN: an alias ARN would allow nothing). */
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/;
const KMS_KEY_ARN_EXAMPLE = '"arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"';

/**
 * Checks the props of each copy rule as the construct takes them: a Region written out in the app
 * and in the stack's partition, a key ARN, a `Retention`, a completion duration EBS accepts. The
 * rendered rules are then checked against the contract (`checkCopyRules`): their number, distinct
 * Regions, not the stack's own, the key's Region, and no copies of Outpost or Local Zone snapshots.
 */
function copyViolations(scope: Construct, copies: unknown): ContractViolation[] {
  const prop = 'copies';
  if (copies === undefined) return [];
  if (Token.isUnresolved(copies)) {
    return [{ prop, message: `copies must be a list written out in the app (the request and the worker role's permissions are built from each rule), got: ${show(copies)}` }];
  }
  if (!Array.isArray(copies)) return [{ prop, message: `copies must be a list of SnapshotCopyRule, got: ${show(copies)}` }];
  const out: ContractViolation[] = [];
  copies.forEach((rule: unknown, i: number) => {
    const at = `copies[${i}]`;
    if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) {
      out.push({ prop, message: `${at} must be a SnapshotCopyRule like { region: "eu-west-1" }, got: ${show(rule)}` });
      return;
    }
    const r = rule as Record<string, unknown>;
    const unknownFields = Object.keys(r).filter((k) => !COPY_RULE_PROPS.includes(k));
    if (unknownFields.length > 0) out.push({ prop, message: `${at} has fields no SnapshotCopyRule has, got: ${show(unknownFields)}` });
    out.push(...copyRegionViolations(scope, at, r.region));
    out.push(...copyKeyViolations(at, r.kmsKeyArn));
    if (r.copyTags !== undefined && typeof r.copyTags !== 'boolean') {
      out.push({ prop, message: `${at}.copyTags must be true or false, got: ${show(r.copyTags)}` });
    }
    if (r.retention !== undefined && !(r.retention instanceof Retention)) {
      out.push({ prop, message: `${at}.retention must be made with Retention.count(), .age(), .calendar() or .anyOf(), got: ${show(r.retention)}` });
    }
    out.push(...completionDurationViolations(at, r.completionDuration));
  });
  return out;
}

function copyRegionViolations(scope: Construct, at: string, region: unknown): ContractViolation[] {
  if (typeof region !== 'string') return []; // the contract's check says what a Region looks like
  if (Token.isUnresolved(region)) {
    return [{
      prop: 'copies',
      message: `${at}.region must be written out in the app (the worker calls CopySnapshot in that Region and the worker role's permissions name it), `
        + `got: ${show(region)}`,
    }];
  }
  const here = Stack.of(scope).region;
  const [ours, theirs] = Token.isUnresolved(here) ? [] : [RegionInfo.get(here).partition, RegionInfo.get(region).partition];
  if (ours && theirs && ours !== theirs) {
    return [{
      prop: 'copies',
      message: `${at}.region must be in the stack's partition ${show(ours)} (EC2 copies snapshots within a partition), got: ${show(region)} in ${show(theirs)}`,
    }];
  }
  return [];
}

function copyKeyViolations(at: string, key: unknown): ContractViolation[] {
  if (key === undefined || (typeof key === 'string' && (Token.isUnresolved(key) || KMS_KEY_ARN.test(key)))) return [];
  const alias = typeof key === 'string' && /^arn:aws[a-z-]*:kms:[^:]*:\d*:alias\//.test(key);
  return [{
    prop: 'copies',
    message: alias
      ? `${at}.kmsKeyArn must be the key's ARN, not an alias (IAM allows the worker role the use of a key by its key ARN), got: ${show(key)}`
      : `${at}.kmsKeyArn must be a KMS key ARN like ${KMS_KEY_ARN_EXAMPLE}, got: ${show(key)}`,
  }];
}

function completionDurationViolations(at: string, duration: unknown): ContractViolation[] {
  if (duration === undefined) return [];
  const L = COPY_LIMITS;
  const range = `${L.minCompletionMinutes} minutes to ${L.maxCompletionMinutes / 60} hours in steps of ${L.completionStepMinutes} minutes (EBS time-based copy)`;
  if (isTokenValue(duration)) {
    return [{ prop: 'copies', message: `${at}.completionDuration must be written out in the app (the worker sends it with each CopySnapshot), got: an unresolved token` }];
  }
  const step = L.completionStepMinutes;
  if (wholeUnits(duration, step * 60, L.minCompletionMinutes / step, L.maxCompletionMinutes / step) === undefined) {
    return [{ prop: 'copies', message: `${at}.completionDuration must be ${range}, got: ${showDuration(duration)}` }];
  }
  return [];
}

/** Every field of a `VaultShare`. */
const VAULT_SHARE_PROPS = ['account', 'eventBusArn'];
/** An AWS account id. */
export const ACCOUNT_ID = /^\d{12}$/;
/** An EventBridge event bus ARN: partition, Region, account, name. */
const EVENT_BUS_ARN = /^arn:(aws[a-z-]*):events:([a-z0-9-]*):([^:]*):event-bus\/[A-Za-z0-9._\-/]+$/;

/**
 * Checks the vault share as the construct takes it: a 12-digit account that is not the stack's own,
 * and a bus ARN of that account in the stack's Region. Values that are tokens are skipped (the
 * worker checks the rendered request on every run).
 */
export function vaultViolations(scope: Construct, vault: unknown): ContractViolation[] {
  const prop = 'vault';
  if (vault === undefined) return [];
  if (typeof vault !== 'object' || vault === null || Array.isArray(vault) || Token.isUnresolved(vault)) {
    return [{ prop, message: `vault must be a VaultShare like { account: "111122223333" }, got: ${show(vault)}` }];
  }
  const v = vault as Record<string, unknown>;
  const out: ContractViolation[] = [];
  const unknownFields = Object.keys(v).filter((k) => !VAULT_SHARE_PROPS.includes(k));
  if (unknownFields.length > 0) out.push({ prop, message: `vault has fields no VaultShare has, got: ${show(unknownFields)}` });
  const stack = Stack.of(scope);
  const account = v.account;
  const accountKnown = typeof account === 'string' && !Token.isUnresolved(account);
  if (accountKnown && !ACCOUNT_ID.test(account)) {
    out.push({ prop, message: `vault.account must be a 12-digit account id, got: ${show(account)}` });
  } else if (accountKnown && !Token.isUnresolved(stack.account) && account === stack.account) {
    out.push({ prop, message: `vault.account must be another account than the stack's own (a vault in the same account protects nothing), got: ${show(account)}` });
  } else if (account === undefined || (typeof account !== 'string')) {
    out.push({ prop, message: `vault.account must be a 12-digit account id (required), got: ${show(account)}` });
  }
  const bus = v.eventBusArn;
  if (bus !== undefined && !(typeof bus === 'string' && Token.isUnresolved(bus))) {
    const match = typeof bus === 'string' ? EVENT_BUS_ARN.exec(bus) : null;
    const region = stack.region;
    if (!match) {
      out.push({ prop, message: `vault.eventBusArn must be an event bus ARN like "arn:aws:events:eu-central-1:111122223333:event-bus/cdk-instance-snapshots-vault", got: ${show(bus)}` });
    } else if (accountKnown && match[3] !== account) {
      out.push({ prop, message: `vault.eventBusArn must be a bus of the vault account ${show(account)}, got: ${show(bus)}` });
    } else if (!Token.isUnresolved(region) && match[2] !== region) {
      out.push({ prop, message: `vault.eventBusArn must be a bus in the stack's Region ${show(region)} (snapshots are shared within their Region), got: ${show(bus)}` });
    }
  }
  return out;
}
