import { Annotations, Token } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { heartbeatPeriodProblem } from './heartbeat';
import {
  checkCreateSnapshotsPerSecond,
  checkDescription,
  checkExcludeDataVolumeIds,
  checkExcludeDataVolumeTags,
  checkInstanceTags,
  checkOutpostArn,
  checkSnapshotTags,
  ContractViolation,
  show,
} from './request-contract';
import { describeTopic } from './shared-resources';
import { CopyTagsFromSource } from '../copy-tags-from-source';
import type { InstanceSnapshotScheduleProps } from '../instance-snapshot-schedule';
import { LogLevel } from '../log-level';

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
  if (props.snapshotTags !== undefined && !Token.isUnresolved(props.snapshotTags)) {
    if (props.snapshotTags === null || typeof props.snapshotTags !== 'object' || Array.isArray(props.snapshotTags)) {
      violations.push({ prop: 'snapshotTags', message: `snapshotTags must be an object of tag key -> value, got: ${show(props.snapshotTags)}` });
    } else {
      violations.push(...checkSnapshotTags(props.snapshotTags, unresolved));
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
