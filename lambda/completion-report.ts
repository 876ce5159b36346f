/**
 * What the worker does with EC2's `EBS Multi-Volume Snapshots Completion Status` events of failed
 * sets: the event names snapshots, not tags, so it looks them up, keeps its own schedule's (by the
 * `cdk-instance-snapshots:schedule` tag), and reports those with a log line, a metric and an SNS
 * message. The pure parts (reading the event, sorting, the message) are in completion-events.ts.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { DescribeSnapshotsCommand, EC2Client, Snapshot } from '@aws-sdk/client-ec2';
import { PublishCommand } from '@aws-sdk/client-sns';
import type { EventClients } from './clients';
import {
  CompletionEvent,
  describeBatches,
  describedSnapshot,
  failureNotification,
  isFailedSet,
  parseCompletionEvent,
  sortSnapshots,
} from './completion-events';
import type { MetricsSink } from './worker';
import { InvalidRunRequestError, METRICS, NOTIFICATION_TOPIC_ENV, SCHEDULE_ID_ENV } from '../src/private/request-contract';

export interface CompletionEventDependencies {
  /** The schedule this worker belongs to (`SCHEDULE_ID`). */
  readonly scheduleId?: string;
  /** Where failed sets are notified (`NOTIFICATION_TOPIC_ARN`); none: log and metric only. */
  readonly topicArn?: string;
  readonly clients: EventClients;
  readonly logger: Logger;
  readonly metrics: MetricsSink;
}

/** What the worker did with an EBS completion event. */
export interface CompletionEventReport {
  /** This schedule's sets the event reported failed. */
  readonly failedSets: number;
  /** Snapshots of other schedules (or not made by this library). */
  readonly foreignSnapshots: number;
  /** Snapshots EC2 no longer knows. */
  readonly missingSnapshots: number;
  /** Whether an SNS message was published. */
  readonly notified: boolean;
}

/**
 * Describes snapshots by id. EC2 answers a list that names one deleted snapshot with
 * `InvalidSnapshot.NotFound` and nothing else: that batch is asked again with a `snapshot-id`
 * filter, which answers with the snapshots that still exist.
 */
export async function describeSnapshotsById(ec2: EC2Client, snapshotIds: string[]): Promise<Snapshot[]> {
  const found: Snapshot[] = [];
  for (const batch of describeBatches(snapshotIds)) {
    try {
      found.push(...(await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], SnapshotIds: batch }))).Snapshots ?? []);
    } catch (e) {
      if ((e as Error).name !== 'InvalidSnapshot.NotFound') throw e;
      let nextToken: string | undefined;
      do {
        const page = await ec2.send(new DescribeSnapshotsCommand({
          OwnerIds: ['self'], Filters: [{ Name: 'snapshot-id', Values: batch }], MaxResults: 1000, NextToken: nextToken,
        }));
        found.push(...page.Snapshots ?? []);
        nextToken = page.NextToken;
      } while (nextToken);
    }
  }
  return found;
}

export async function reportCompletionEvent(raw: unknown, deps: CompletionEventDependencies): Promise<CompletionEventReport> {
  const { logger, metrics, scheduleId } = deps;
  let event: CompletionEvent;
  try {
    if (!scheduleId) {
      throw new Error(`environment variable ${SCHEDULE_ID_ENV} is not set: this schedule's snapshots cannot be told from others'`);
    }
    event = parseCompletionEvent(raw);
  } catch (e) {
    const violations = e instanceof InvalidRunRequestError ? e.violations : undefined;
    logger.error('invalid completion event: nothing done', { error: (e as Error).message, violations });
    throw e;
  }
  logger.appendKeys({ scheduleId, eventId: event.id });
  if (!isFailedSet(event)) {
    logger.info('completion event of a set that did not fail: ignored', { event: event.event, result: event.result });
    return { failedSets: 0, foreignSnapshots: 0, missingSnapshots: 0, notified: false };
  }
  const described = await describeSnapshotsById(deps.clients.ec2, event.snapshots.map((s) => s.snapshotId));
  const sorted = sortSnapshots(scheduleId, event, described.map(describedSnapshot));
  const report = {
    failedSets: sorted.sets.length,
    foreignSnapshots: sorted.foreignSnapshotIds.length,
    missingSnapshots: sorted.missingSnapshotIds.length,
    notified: false,
  };
  if (sorted.sets.length === 0) {
    logger.info('completion event names no snapshot of this schedule: ignored', {
      foreignSnapshotIds: sorted.foreignSnapshotIds, snapshotsNotFound: sorted.missingSnapshotIds,
    });
    return report;
  }
  for (const set of sorted.sets) {
    logger.error('snapshot set failed after CreateSnapshots returned', {
      ...set, cause: event.cause, ...(sorted.missingSnapshotIds.length > 0 ? { snapshotsNotFound: sorted.missingSnapshotIds } : {}),
    });
  }
  // The metric before the notification: a Publish that fails is retried with the whole event
  // (Lambda's asynchronous retries), which may count the set twice but never not at all.
  metrics.addDimension(METRICS.scheduleDimension, scheduleId);
  metrics.addMetric(METRICS.snapshotSetsFailed, MetricUnit.Count, sorted.sets.length);
  metrics.publishStoredMetrics();
  const topicArn = deps.topicArn;
  if (!topicArn) {
    logger.info(`no notification topic (${NOTIFICATION_TOPIC_ENV} is not set): reported in the log and the metric only`);
    return report;
  }
  const { subject, message } = failureNotification(scheduleId, event, sorted);
  try {
    await deps.clients.sns.send(new PublishCommand({ TopicArn: topicArn, Subject: subject, Message: message }));
  } catch (e) {
    logger.error('notification of the failed set not sent', { topicArn, errorName: (e as Error).name, error: (e as Error).message });
    throw e;
  }
  logger.info('failed snapshot set notified', { topicArn, failedSets: sorted.sets.length });
  return { ...report, notified: true };
}
