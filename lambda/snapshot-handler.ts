/**
 * Lambda entry: parse -> run -> report. Bundled by esbuild into assets/lambda/snapshot-handler.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { Context } from 'aws-lambda';
import { createEc2Clients, Ec2Clients, Ec2ClientsOptions, EC2_CREATE_SNAPSHOTS_BURST, EC2_CREATE_SNAPSHOTS_PER_SEC } from './clients';
import { DEFAULT_SETTINGS, parseContinuation, RunFailedError, RunLog, RunSettings, RunTotals, runSnapshots } from './run-snapshots';
import { InvalidRunRequestError, parseRunRequest } from '../src/private/request-contract';

export { ThrottlingOnlyRetryStrategy } from './clients';

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

/** Reads optional tuning from the environment (the benchmark scales time with it). */
export function settingsFromEnv(env: Record<string, string | undefined>): RunSettings {
  const read = envReader(env);
  const d = DEFAULT_SETTINGS;
  return {
    concurrency: read('SNAPSHOT_CONCURRENCY', d.concurrency, 1),
    perVolumeRetryDelayMs: read('PER_VOLUME_RETRY_DELAY_MS', d.perVolumeRetryDelayMs, 0),
    throttleBackoffBaseMs: read('THROTTLE_BACKOFF_BASE_MS', d.throttleBackoffBaseMs, 0),
    throttleBackoffMaxMs: read('THROTTLE_BACKOFF_MAX_MS', d.throttleBackoffMaxMs, 0),
    verifyDelayMs: read('VERIFY_DELAY_MS', d.verifyDelayMs, 0),
    maxAttemptsPerInstance: read('MAX_ATTEMPTS_PER_INSTANCE', d.maxAttemptsPerInstance, 1),
    reserveMs: read('TIME_RESERVE_MS', d.reserveMs, 0),
  };
}

/**
 * Tuning of the EC2 clients from the environment: the client-side CreateSnapshots token bucket
 * (`CREATE_SNAPSHOTS_PER_SEC`, 0 for the SDK's adaptive limiter; `CREATE_SNAPSHOTS_BURST`) and the
 * backoff of the SDK's throttling retries, which uses the run's `THROTTLE_BACKOFF_*` settings.
 */
export function clientOptionsFromEnv(env: Record<string, string | undefined>): Ec2ClientsOptions {
  const read = envReader(env);
  const run = settingsFromEnv(env);
  return {
    createSnapshotsPerSec: read('CREATE_SNAPSHOTS_PER_SEC', EC2_CREATE_SNAPSHOTS_PER_SEC, 0),
    createSnapshotsBurst: read('CREATE_SNAPSHOTS_BURST', EC2_CREATE_SNAPSHOTS_BURST, 1),
    throttleBackoffBaseMs: run.throttleBackoffBaseMs,
    throttleBackoffMaxMs: run.throttleBackoffMaxMs,
  };
}

/** Metrics of a finished run, one CloudWatch metric each (EMF), by schedule. */
export function runMetrics(totals: RunTotals): Array<[string, number]> {
  const c = totals.counts;
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

const logger = new Logger();
const runLog: RunLog = {
  info: (message, attributes = {}) => logger.info(message, attributes),
  warn: (message, attributes = {}) => logger.warn(message, attributes),
  error: (message, attributes = {}) => logger.error(message, attributes),
};
const metrics = new Metrics();
// Module scope, so that warm invocations (continuations) reuse connections and the rate limiter;
// built on first use, so that a bad setting fails the invocation with a logged error, not the init.
let clients: Ec2Clients | undefined;
const lambdaClient = new LambdaClient({});

export async function handler(event: unknown, context: Context): Promise<{ status: string; totals: RunTotals }> {
  logger.resetKeys();
  let request;
  let continuation;
  try {
    request = parseRunRequest(event);
    continuation = parseContinuation(event);
  } catch (e) {
    const violations = e instanceof InvalidRunRequestError ? e.violations : undefined;
    logger.error('invalid run request: nothing done', { error: (e as Error).message, violations });
    throw e;
  }
  logger.appendKeys({ executionId: request.executionId, scheduleId: request.scheduleId, dryRun: request.dryRun });

  try {
    const settings = settingsFromEnv(process.env);
    clients ??= createEc2Clients(clientOptionsFromEnv(process.env));
    const result = await runSnapshots(request, {
      ec2: clients.ec2,
      ec2Create: clients.ec2Create,
      log: runLog,
      settings,
      remainingMs: () => context.getRemainingTimeInMillis(),
      continueRun: async (next) => {
        await lambdaClient.send(new InvokeCommand({
          FunctionName: context.invokedFunctionArn,
          InvocationType: 'Event',
          Payload: Buffer.from(JSON.stringify(next)),
        }));
      },
    }, continuation);

    const totals = result.totals;
    const summary = {
      ...totals.counts,
      failuresByCode: totals.failuresByCode,
      apiCalls: totals.apiCalls,
      invocations: totals.invocations,
      invocationDurationMs: result.invocationDurationMs,
      durationMs: Date.now() - totals.startedAtMs,
    };
    if (result.status === 'continued') {
      logger.info('invocation summary: the run continues in a new invocation', summary);
      return { status: result.status, totals };
    }
    logger.info('run summary', summary);
    metrics.addDimension('Schedule', request.scheduleId);
    for (const [name, value] of runMetrics(totals)) {
      metrics.addMetric(name, MetricUnit.Count, value);
    }
    metrics.publishStoredMetrics();
    if (totals.counts.failed + totals.counts.notAttempted > 0) {
      // Lambda's failure path (error metric, asynchronous retries) records the run. A retry with
      // the same execution id creates only the sets that are still missing.
      throw new RunFailedError(totals);
    }
    return { status: result.status, totals };
  } catch (e) {
    if (!(e instanceof RunFailedError)) {
      logger.error('run failed before every instance was handled', { errorName: (e as Error).name, error: (e as Error).message });
    }
    throw e;
  }
}
