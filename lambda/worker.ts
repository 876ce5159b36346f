/**
 * Lambda entry of the run's worker: parse -> act -> report. The workflow calls it with one of two
 * actions: `prepare` (check the execution's input and name the occurrence; no AWS call) and
 * `snapshot-step` (one bounded step of the run). Bundled by esbuild into assets/lambda/worker.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { createEc2Clients, Ec2Clients, Ec2ClientsOptions, EC2_CREATE_SNAPSHOTS_BURST } from './clients';
import { newCursor, parseCursor, RunCursor, RunLog } from './ledger';
import { DEFAULT_SETTINGS, RunSettings, runSnapshotStep } from './snapshot-step';
import {
  checkOccurrence,
  DEFAULT_CREATE_SNAPSHOTS_PER_SECOND,
  InvalidRunRequestError,
  Occurrence,
  parseOccurrence,
  parseRunRequest,
  requestSha256,
  show,
  SnapshotRunRequest,
  WORKFLOW,
} from '../src/private/request-contract';

export { ThrottlingOnlyRetryStrategy } from './clients';

/** The environment variable that holds the SHA-256 of the schedule's request (set by the construct). */
export const REQUEST_SHA256_ENV = 'REQUEST_SHA256';


function envReader(env: Record<string, string | undefined>) {
  return (name: string, fallback: number, min: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min) {
      throw new Error(`environment variable ${name} must be a number >= ${min}, got: ${JSON.stringify(raw)}`);
    }
    return value;
  };
}

/** Reads optional tuning from the environment (the tests and the benchmark compress time with it). */
export function settingsFromEnv(env: Record<string, string | undefined>): RunSettings {
  const read = envReader(env);
  const d = DEFAULT_SETTINGS;
  return {
    concurrency: read('SNAPSHOT_CONCURRENCY', d.concurrency, 1),
    stepBudgetMs: read('STEP_BUDGET_MS', d.stepBudgetMs, 0),
    reserveMs: read('TIME_RESERVE_MS', d.reserveMs, 0),
    perVolumeRetryDelayMs: read('PER_VOLUME_RETRY_DELAY_MS', d.perVolumeRetryDelayMs, 0),
    throttleBackoffBaseMs: read('THROTTLE_BACKOFF_BASE_MS', d.throttleBackoffBaseMs, 0),
    throttleBackoffMaxMs: read('THROTTLE_BACKOFF_MAX_MS', d.throttleBackoffMaxMs, 0),
    settleWindowMs: read('SETTLE_WINDOW_MS', d.settleWindowMs, 0),
    lookIntervalMs: read('LOOK_INTERVAL_MS', d.lookIntervalMs, 1),
    maxAttemptsPerInstance: read('MAX_ATTEMPTS_PER_INSTANCE', d.maxAttemptsPerInstance, 1),
    maxPasses: read('MAX_PASSES', d.maxPasses, 1),
  };
}

/**
 * Tuning of the EC2 clients: the client-side CreateSnapshots token bucket at the schedule's rate
 * (`TIME_SCALE` multiplies it for the benchmark; `CREATE_SNAPSHOTS_BURST` its size) and the backoff
 * of the SDK's throttling retries, which uses the run's `THROTTLE_BACKOFF_*` settings.
 */
export function clientOptionsFromEnv(env: Record<string, string | undefined>, ratePerSecond: number): Ec2ClientsOptions {
  const read = envReader(env);
  const run = settingsFromEnv(env);
  return {
    createSnapshotsPerSec: ratePerSecond * read('TIME_SCALE', 1, 1),
    createSnapshotsBurst: read('CREATE_SNAPSHOTS_BURST', EC2_CREATE_SNAPSHOTS_BURST, 1),
    throttleBackoffBaseMs: run.throttleBackoffBaseMs,
    throttleBackoffMaxMs: run.throttleBackoffMaxMs,
  };
}

/** Seconds of calls kept in flight at the paced rate (a CreateSnapshots call takes a fraction of a second). */
export const IN_FLIGHT_SECONDS = 0.2;

/**
 * The settings with enough calls in flight to keep pace at `ratePerSecond` (an account with a
 * raised CreateSnapshots limit), never fewer than configured.
 */
export function withInFlightFor(settings: RunSettings, ratePerSecond: number): RunSettings {
  return { ...settings, concurrency: Math.max(settings.concurrency, Math.ceil(ratePerSecond * IN_FLIGHT_SECONDS)) };
}

/** Metrics of a finished run, one CloudWatch metric each (EMF), by schedule. */
export function runMetrics(cursor: RunCursor): Array<[string, number]> {
  const c = cursor.counts;
  return [
    ['InstancesSelected', c.selected],
    ['SnapshotSetsCreated', c.created],
    ['InstancesAlreadyDone', c.alreadyDone],
    ['DryRunChecksPassed', c.dryRunOk],
    ['InstancesSkipped', c.skipped],
    ['InstancesFailed', c.failed],
    ['InstancesNotAttempted', c.notAttempted],
  ];
}

/** What `prepare` returns: the workflow's state from here on. */
export interface PreparedRun {
  readonly occurrence: Occurrence;
  readonly cursor: RunCursor;
  /** Times the workflow re-ran a step that failed (counted by the workflow). */
  readonly recoveries: number;
}

/** Where the final step's metrics go (Powertools' `Metrics`, or a test's recorder). */
export type MetricsSink = Pick<Metrics, 'addDimension' | 'addMetric' | 'publishStoredMetrics'>;

export interface WorkerDependencies {
  readonly settings: RunSettings;
  readonly env: Record<string, string | undefined>;
  readonly logger: Logger;
  readonly metrics: MetricsSink;
  /** Builds the step's EC2 clients (tests point them at a local EC2 endpoint). */
  createClients(options: Ec2ClientsOptions): Ec2Clients;
  now?(): number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Builds the handler around its dependencies (the module's `handler` uses the real ones). */
export function makeWorker(deps: WorkerDependencies) {
  const { logger, metrics } = deps;
  const now = deps.now ?? Date.now;
  const log: RunLog = {
    info: (message, attributes = {}) => logger.info(message, attributes),
    warn: (message, attributes = {}) => logger.warn(message, attributes),
    error: (message, attributes = {}) => logger.error(message, attributes),
  };

  function parseRequest(event: Record<string, unknown>): SnapshotRunRequest {
    // The workflow passes the request as JSON text; an operator's direct call may pass the object.
    let raw = event.request;
    if (typeof raw === 'string') {
      try {
        raw = JSON.parse(raw);
      } catch {
        throw new InvalidRunRequestError([{ prop: 'request', message: `request must be JSON, got: ${show(raw)}` }]);
      }
    }
    const request = parseRunRequest(raw);
    const expected = deps.env[REQUEST_SHA256_ENV];
    if (expected && requestSha256(request) !== expected) {
      throw new InvalidRunRequestError([{ prop: 'request', message: 'request is not the one this schedule\'s worker was deployed with (its SHA-256 differs)' }]);
    }
    return request;
  }

  return async function handler(event: unknown, context: Pick<Context, 'getRemainingTimeInMillis'>): Promise<PreparedRun | RunCursor> {
    logger.resetKeys();
    let request: SnapshotRunRequest;
    let occurrence: Occurrence;
    let cursor: RunCursor;
    try {
      if (!isRecord(event)) {
        throw new InvalidRunRequestError([{ prop: 'event', message: `the event must be a JSON object, got: ${show(event)}` }]);
      }
      request = parseRequest(event);
      logger.appendKeys({ scheduleId: request.scheduleId, dryRun: request.dryRun });
      if (event.action === WORKFLOW.actionPrepare) {
        const prepared = parseOccurrence(request.scheduleId, event.input, event.executionName, now());
        logger.appendKeys({ scheduledTime: prepared.scheduledTime, executionName: prepared.executionName });
        logger.info('run prepared', { lockKey: prepared.lockKey });
        return { occurrence: prepared, cursor: newCursor(now()), recoveries: 0 };
      }
      if (event.action !== WORKFLOW.actionStep) {
        throw new InvalidRunRequestError([{ prop: 'action', message: `action must be "${WORKFLOW.actionPrepare}" or "${WORKFLOW.actionStep}", got: ${show(event.action)}` }]);
      }
      const unknown = Object.keys(event).filter((k) => !['action', 'request', 'occurrence', 'cursor'].includes(k));
      if (unknown.length > 0) {
        throw new InvalidRunRequestError([{ prop: 'event', message: `a snapshot step takes only action, request, occurrence and cursor, got: ${show(unknown)}` }]);
      }
      occurrence = checkOccurrence(request.scheduleId, event.occurrence);
      cursor = parseCursor(event.cursor);
    } catch (e) {
      const violations = e instanceof InvalidRunRequestError ? e.violations : undefined;
      logger.error('invalid worker input: nothing done', { error: (e as Error).message, violations });
      throw e;
    }
    logger.appendKeys({ scheduledTime: occurrence.scheduledTime, executionName: occurrence.executionName, pass: cursor.pass });
    if (cursor.phase === WORKFLOW.phaseDone) {
      return cursor;
    }
    try {
      const clientOptions = clientOptionsFromEnv(deps.env, request.createSnapshotsPerSecond ?? DEFAULT_CREATE_SNAPSHOTS_PER_SECOND);
      const clients = deps.createClients({ ...clientOptions, createSnapshotsBucket: cursor.bucket });
      try {
        const next = await runSnapshotStep(request, occurrence, cursor, {
          ec2: clients.ec2,
          ec2Create: clients.ec2Create,
          log,
          settings: withInFlightFor(deps.settings, clientOptions.createSnapshotsPerSec!),
          createSnapshotsPerSecond: clientOptions.createSnapshotsPerSec!,
          remainingMs: () => context.getRemainingTimeInMillis(),
          now,
        });
        if (clients.createLimiter) next.bucket = clients.createLimiter.level();
        if (next.phase === WORKFLOW.phaseDone) {
          logger.info('run summary', { ...next.summary });
          metrics.addDimension('Schedule', request.scheduleId);
          for (const [name, value] of runMetrics(next)) {
            metrics.addMetric(name, MetricUnit.Count, value);
          }
          metrics.publishStoredMetrics();
        }
        return next;
      } finally {
        clients.ec2.destroy();
        clients.ec2Create.destroy();
      }
    } catch (e) {
      logger.error('step failed before it finished: the workflow repeats it from the same cursor after a wait', { errorName: (e as Error).name, error: (e as Error).message });
      throw e;
    }
  };
}

export const handler = makeWorker({
  settings: settingsFromEnv(process.env),
  createClients: createEc2Clients,
  env: process.env,
  logger: new Logger(),
  metrics: new Metrics(),
});
