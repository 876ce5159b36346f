/**
 * Lambda entry of the run's worker: parse -> act -> report. The workflow calls it with one of two
 * actions: `prepare` (check the execution's input and name the occurrence; no AWS call) and
 * `snapshot-step` (one bounded step of the run). An EventBridge rule also sends it EC2's
 * `EBS Multi-Volume Snapshots Completion Status` events of failed sets: it reports those of its
 * own schedule (log, metric, SNS). Bundled by esbuild into assets/lambda/worker.
 *
 * Metrics (EMF, namespace and names in `METRICS`) have exactly one dimension, `Schedule`: every
 * `snapshot-step` publishes `StepFailures` (1 when it threw) on its way out, the step that ends the
 * run adds the run's counts and `RunDuration`, a completion event of this schedule publishes
 * `SnapshotSetsFailed`.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import type { Context } from 'aws-lambda';
import { createEc2Clients, createEventBridgeClient, createEventClients, Ec2Clients, Ec2ClientsOptions, EC2_CREATE_SNAPSHOTS_BURST, EventClients } from './clients';
import { isSnapshotsCompletionEvent } from './completion-events';
import { CompletionEventReport, reportCompletionEvent } from './completion-report';
import { RegionClients, runCopyStep } from './copy-step';
import { newCursor, parseCursor, RunCursor, RunLog } from './ledger';
import { deleteRateOf, runPruneStep } from './prune-step';
import { DEFAULT_SETTINGS, RunSettings, runSnapshotStep } from './snapshot-step';
import { copySharedSet, isSharedSetEvent, pruneVault, VaultEnvironment } from './vault';
import {
  checkOccurrence,
  DEFAULT_CREATE_SNAPSHOTS_PER_SECOND,
  DEFAULT_DELETE_SNAPSHOTS_PER_SECOND,
  InvalidRunRequestError,
  METRICS,
  NOTIFICATION_TOPIC_ENV,
  parseVaultRequest,
  VAULT_PRUNE_ACTION,
  VAULT_REQUEST_ENV,
  VaultRequest,
  Occurrence,
  parseOccurrence,
  parseRunRequest,
  requestSha256,
  SCHEDULE_ID_ENV,
  show,
  SnapshotRunRequest,
  WORKFLOW,
} from '../src/private/request-contract';

export { ThrottlingOnlyRetryStrategy } from './clients';
export type { CompletionEventReport } from './completion-report';
export { describeSnapshotsById } from './completion-report';

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
export function clientOptionsFromEnv(
  env: Record<string, string | undefined>,
  ratePerSecond: number,
  deleteRatePerSecond: number = DEFAULT_DELETE_SNAPSHOTS_PER_SECOND,
): Ec2ClientsOptions {
  const read = envReader(env);
  const run = settingsFromEnv(env);
  return {
    createSnapshotsPerSec: ratePerSecond * read('TIME_SCALE', 1, 1),
    deleteSnapshotsPerSec: deleteRatePerSecond * read('TIME_SCALE', 1, 1),
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

type Unit = (typeof MetricUnit)[keyof typeof MetricUnit];

/** Metrics of a finished run, one CloudWatch metric each (EMF), by schedule: name, unit, value. */
export function runMetrics(cursor: RunCursor): Array<[string, Unit, number]> {
  const c = cursor.counts;
  return [
    [METRICS.instancesSelected, MetricUnit.Count, c.selected],
    [METRICS.snapshotSetsCreated, MetricUnit.Count, c.created],
    [METRICS.instancesAlreadyDone, MetricUnit.Count, c.alreadyDone],
    [METRICS.dryRunChecksPassed, MetricUnit.Count, c.dryRunOk],
    [METRICS.instancesSkipped, MetricUnit.Count, c.skipped],
    [METRICS.instancesFailed, MetricUnit.Count, c.failed],
    [METRICS.instancesNotAttempted, MetricUnit.Count, c.notAttempted],
    [METRICS.snapshotLocksFailed, MetricUnit.Count, c.lockFailed],
    [METRICS.runDuration, MetricUnit.Seconds, (cursor.summary?.durationMs ?? 0) / 1000],
    ...pruneMetrics(cursor),
    ...copyMetrics(cursor),
  ];
}

/** Copies' metrics, over every destination Region, for a run of a schedule with copy rules. */
function copyMetrics(cursor: RunCursor): Array<[string, Unit, number]> {
  const regions = cursor.copy?.regions;
  if (!regions) return [];
  const sum = (key: 'copied' | 'failed' | 'overdue') => regions.reduce((n, r) => n + r[key], 0);
  const share = cursor.copy?.share;
  return [
    [METRICS.snapshotsCopied, MetricUnit.Count, sum('copied')],
    [METRICS.copyFailures, MetricUnit.Count, sum('failed')],
    [METRICS.copiesOverdue, MetricUnit.Count, sum('overdue')],
    ...(share ? [
      [METRICS.setsShared, MetricUnit.Count, share.shared],
      [METRICS.shareFailures, MetricUnit.Count, share.failed],
    ] as Array<[string, Unit, number]> : []),
  ];
}

/** Retention's metrics, for a run of a schedule with retention rules. */
function pruneMetrics(cursor: RunCursor): Array<[string, Unit, number]> {
  const p = cursor.prune;
  if (!p) return [];
  return [
    [METRICS.snapshotSetsDeleted, MetricUnit.Count, p.setsDeleted],
    [METRICS.snapshotsDeleted, MetricUnit.Count, p.snapshotsDeleted],
    [METRICS.snapshotSetsToDelete, MetricUnit.Count, p.setsToDelete],
    [METRICS.snapshotSetsInUse, MetricUnit.Count, p.setsInUse],
    [METRICS.snapshotSetsLocked, MetricUnit.Count, p.setsLocked],
    [METRICS.pruneFailures, MetricUnit.Count, p.setsFailed],
  ];
}

/** The worker's metrics as it ships: the library's namespace, whatever the environment says. */
export function createWorkerMetrics(): Metrics {
  return new Metrics({ namespace: METRICS.namespace });
}

/** What `prepare` returns: the workflow's state from here on. */
export interface PreparedRun {
  readonly occurrence: Occurrence;
  readonly cursor: RunCursor;
  /** Times the workflow re-ran a step that failed (counted by the workflow). */
  readonly recoveries: number;
}

/** Where the worker's metrics go (Powertools' `Metrics`, or a test's recorder). */
export type MetricsSink = Pick<Metrics, 'addDimension' | 'addMetric' | 'publishStoredMetrics' | 'clearDefaultDimensions'>;

export interface WorkerDependencies {
  readonly settings: RunSettings;
  readonly env: Record<string, string | undefined>;
  readonly logger: Logger;
  readonly metrics: MetricsSink;
  /** Builds the step's EC2 clients (tests point them at a local EC2 endpoint). */
  createClients(options: Ec2ClientsOptions): Ec2Clients;
  /**
   * Builds the clients of completion events, once, at their first use.
   * @default createEventClients
   */
  createEventClients?(): EventClients;
  /**
   * Builds the client of a vault's event bus, for a step that shares sets with it.
   * @default createEventBridgeClient
   */
  createEventBridgeClient?(): EventBridgeClient;
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

  /** What a `snapshot-step` invocation reports on its way out, whatever happened. */
  interface StepReport {
    /** The deployed schedule's id (SCHEDULE_ID), else the request's once it parsed. */
    scheduleId?: string;
    failed: boolean;
    /** The cursor of the run this step finished. */
    finished?: RunCursor;
  }

  // Default dimensions (Powertools adds `service`) would change every metric's identity:
  // the documented one dimension, `Schedule`, is all a line carries.
  metrics.clearDefaultDimensions();

  function publishStepMetrics(step: StepReport): void {
    if (!step.scheduleId) return; // nothing names the schedule: the error line says what was wrong
    try {
      metrics.addDimension(METRICS.scheduleDimension, step.scheduleId);
      // A step that threw is repeated by the workflow: only the repeat that returns counts the run.
      for (const [name, unit, value] of step.finished && !step.failed ? runMetrics(step.finished) : []) {
        metrics.addMetric(name, unit, value);
      }
      metrics.addMetric(METRICS.stepFailures, MetricUnit.Count, step.failed ? 1 : 0);
      metrics.publishStoredMetrics();
    } catch (e) {
      // The step's own outcome stands: a metric that could not be written does not fail (or repeat) it.
      logger.error('metrics not published', { errorName: (e as Error).name, error: (e as Error).message });
    }
  }

  let eventClients: EventClients | undefined;
  let eventBridge: EventBridgeClient | undefined;
  const onCompletionEvent = (raw: unknown): Promise<CompletionEventReport> => {
    eventClients ??= (deps.createEventClients ?? createEventClients)();
    return reportCompletionEvent(raw, {
      scheduleId: deps.env[SCHEDULE_ID_ENV],
      topicArn: deps.env[NOTIFICATION_TOPIC_ENV],
      clients: eventClients,
      logger,
      metrics,
    });
  };

  /** The vault's request, for a vault's worker (VAULT_REQUEST); throws for any other worker. */
  function vaultRequest(): VaultRequest {
    const raw = deps.env[VAULT_REQUEST_ENV];
    if (!raw) throw new InvalidRunRequestError([{ prop: VAULT_REQUEST_ENV, message: 'this worker is not a vault\'s: it has no VAULT_REQUEST' }]);
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      throw new InvalidRunRequestError([{ prop: VAULT_REQUEST_ENV, message: `VAULT_REQUEST must be JSON, got: ${show(raw)}` }]);
    }
    return parseVaultRequest(parsed);
  }

  /** A vault's work: a shared set to copy, or its retention. Metrics by the vault's id. */
  async function onVault(
    work: (vault: VaultRequest, env: VaultEnvironment) => Promise<Array<[string, number]>>,
    context: Pick<Context, 'getRemainingTimeInMillis'>,
    onFailure: Array<[string, number]>,
  ) {
    const vault = vaultRequest();
    logger.appendKeys({ vaultId: vault.vaultId });
    const clients = deps.createClients(clientOptionsFromEnv(deps.env, DEFAULT_CREATE_SNAPSHOTS_PER_SECOND));
    const counts: Record<string, number> = {};
    const publish = (values: Array<[string, number]>) => {
      if (values.length === 0) return;
      try {
        metrics.addDimension(METRICS.scheduleDimension, vault.vaultId);
        for (const [name, value] of values) metrics.addMetric(name, MetricUnit.Count, value);
        metrics.publishStoredMetrics();
      } catch (e) {
        logger.error('metrics not published', { errorName: (e as Error).name, error: (e as Error).message });
      }
    };
    try {
      const values = await work(vault, {
        ec2: clients.ec2,
        ec2Copy: clients.ec2Create,
        ec2Delete: clients.ec2Delete,
        log,
        count: (action, attempts = 1) => { counts[action] = (counts[action] ?? 0) + attempts; },
        now,
        remainingMs: () => context.getRemainingTimeInMillis(),
      });
      publish(values);
      return values;
    } catch (e) {
      logger.error('vault work failed: Lambda retries the event', { errorName: (e as Error).name, error: (e as Error).message, apiCalls: counts });
      publish(onFailure);
      throw e;
    } finally {
      clients.ec2.destroy();
      clients.ec2Create.destroy();
      clients.ec2Delete.destroy();
    }
  }

  return async function handler(event: unknown, context: Pick<Context, 'getRemainingTimeInMillis'>): Promise<PreparedRun | RunCursor | CompletionEventReport | unknown> {
    logger.resetKeys();
    if (isSnapshotsCompletionEvent(event)) {
      return onCompletionEvent(event);
    }
    if (isSharedSetEvent(event)) {
      return onVault(async (vault, env) => {
        const report = await copySharedSet(event, vault, env);
        return report.status === 'copied' ? [[METRICS.vaultSetsCopied, 1], [METRICS.vaultCopyFailures, 0]] : [[METRICS.vaultCopyFailures, 1]];
      }, context, [[METRICS.vaultCopyFailures, 1]]);
    }
    if (isRecord(event) && event.action === VAULT_PRUNE_ACTION) {
      // A failed retention pass is no failed copy: the worker's Errors alarm reports it.
      return onVault(async (vault, env) => [[METRICS.vaultSnapshotsDeleted, (await pruneVault(vault, env)).snapshotsDeleted]], context, []);
    }
    if (!(isRecord(event) && event.action === WORKFLOW.actionStep)) {
      return invoke(event, context, { failed: true });
    }
    const step: StepReport = { scheduleId: deps.env[SCHEDULE_ID_ENV] || undefined, failed: true };
    try {
      const result = await invoke(event, context, step);
      step.failed = false;
      return result;
    } finally {
      publishStepMetrics(step);
    }
  };

  async function invoke(event: unknown, context: Pick<Context, 'getRemainingTimeInMillis'>, step: StepReport): Promise<PreparedRun | RunCursor> {
    let request: SnapshotRunRequest;
    let occurrence: Occurrence;
    let cursor: RunCursor;
    try {
      if (!isRecord(event)) {
        throw new InvalidRunRequestError([{ prop: 'event', message: `the event must be a JSON object, got: ${show(event)}` }]);
      }
      request = parseRequest(event);
      step.scheduleId ??= request.scheduleId;
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
      const createRate = request.createSnapshotsPerSecond ?? DEFAULT_CREATE_SNAPSHOTS_PER_SECOND;
      const clientOptions = clientOptionsFromEnv(deps.env, createRate, deleteRateOf(request));
      const clients = deps.createClients({ ...clientOptions, createSnapshotsBucket: cursor.bucket, deleteSnapshotsBucket: cursor.prune?.bucket });
      const regional = new Map<string, Ec2Clients>();
      const regionClients = (region: string): RegionClients => {
        let built = regional.get(region);
        if (!built) regional.set(region, built = deps.createClients({ ...clientOptions, config: { region } }));
        return { ec2: built.ec2, ec2Copy: built.ec2Create, ec2Delete: built.ec2Delete };
      };
      try {
        const copying = cursor.phase === WORKFLOW.phaseCopy || cursor.phase === WORKFLOW.phaseWaitForCopies;
        const next = copying ? await runCopyStep(request, occurrence, cursor, {
          ec2: clients.ec2,
          sourceRegion: deps.env.AWS_REGION ?? (await clients.ec2.config.region()),
          events: request.vault ? (eventBridge ??= (deps.createEventBridgeClient ?? createEventBridgeClient)()) : undefined,
          regionClients,
          log,
          stepBudgetMs: deps.settings.stepBudgetMs,
          reserveMs: deps.settings.reserveMs,
          remainingMs: () => context.getRemainingTimeInMillis(),
          now,
        }) : cursor.phase === WORKFLOW.phasePrune ? await runPruneStep(request, occurrence, cursor, {
          ec2: clients.ec2,
          ec2Delete: clients.ec2Delete,
          log,
          stepBudgetMs: deps.settings.stepBudgetMs,
          reserveMs: deps.settings.reserveMs,
          concurrency: withInFlightFor(deps.settings, clientOptions.deleteSnapshotsPerSec!).concurrency,
          backoffBaseMs: deps.settings.throttleBackoffBaseMs,
          backoffMaxMs: deps.settings.throttleBackoffMaxMs,
          remainingMs: () => context.getRemainingTimeInMillis(),
          now,
        }) : await runSnapshotStep(request, occurrence, cursor, {
          ec2: clients.ec2,
          ec2Create: clients.ec2Create,
          log,
          settings: withInFlightFor(deps.settings, clientOptions.createSnapshotsPerSec!),
          createSnapshotsPerSecond: clientOptions.createSnapshotsPerSec!,
          remainingMs: () => context.getRemainingTimeInMillis(),
          now,
        });
        if (clients.createLimiter) next.bucket = clients.createLimiter.level();
        if (next.prune) next.prune.bucket = clients.deleteLimiter.level();
        if (next.phase === WORKFLOW.phaseDone) {
          logger.info('run summary', { ...next.summary });
          step.finished = next;
        }
        return next;
      } finally {
        for (const c of [clients, ...regional.values()]) {
          c.ec2.destroy();
          c.ec2Create.destroy();
          c.ec2Delete.destroy();
        }
      }
    } catch (e) {
      logger.error('step failed before it finished: the workflow repeats it from the same cursor after a wait', { errorName: (e as Error).name, error: (e as Error).message });
      throw e;
    }
  }
}

export const handler = makeWorker({
  settings: settingsFromEnv(process.env),
  createClients: createEc2Clients,
  env: process.env,
  // Level from POWERTOOLS_LOG_LEVEL (set by the construct); Lambda's own log level control, when set, wins.
  logger: new Logger(),
  metrics: createWorkerMetrics(),
});
