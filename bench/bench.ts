/**
 * Benchmark of the handler that ships: the esbuild bundle `assets/lambda/snapshot-handler/index.js`,
 * required with its environment set, against the EC2 simulator (test/support/ec2-simulator.ts)
 * with a CreateSnapshots token bucket of known rate. Run with `npx projen bench` (bundles first).
 *
 * Time is compressed 20 times: EC2's CreateSnapshots bucket (100 tokens, 5 per second) becomes
 * 100 tokens and 100 per second, and every delay of the handler's settings is divided by 20
 * (15-minute invocation -> 45 s, 60 s reserve -> 3 s, 16 s per-volume wait -> 800 ms). The SDK's
 * own retry delays are not scaled, which makes the throttled figures conservative.
 *
 * Each scenario runs in a child process of its own (fresh SDK clients and rate-limiter state, like
 * a cold Lambda start); continuations are invoked in the same process (a warm start), their events
 * taken from the simulator's fake Lambda Invoke endpoint and JSON round-tripped.
 *
 * The last line printed is one JSON object for the largest fleet run under throttling.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Ec2Simulator, SimInstance, TokenBucketOptions } from '../test/support/ec2-simulator';

const ROOT = path.join(__dirname, '..');
const ASSET = path.join(ROOT, 'assets', 'lambda', 'snapshot-handler', 'index.js');
const TIME_SCALE = 20;
const EXECUTION_ID_TAG = 'cdk-instance-snapshots:execution-id';

interface Scenario {
  readonly name: string;
  readonly instances: number;
  /** CreateSnapshots token bucket; none: unlimited. */
  readonly bucket?: TokenBucketOptions;
  /** Simulated length of one invocation (Lambda's 15 minutes, scaled). */
  readonly invocationBudgetMs: number;
  /** Environment of the handler (settings read by `settingsFromEnv`). */
  readonly env: Record<string, string>;
}

interface ScenarioResult {
  readonly name: string;
  readonly instances: number;
  readonly volumes: number;
  readonly invocations: number;
  readonly status: string;
  readonly createSnapshotsCalls: number;
  readonly throttledCalls: number;
  readonly describeCalls: number;
  readonly invokeCalls: number;
  readonly allCalls: number;
  readonly created: number;
  readonly lost: number;
  readonly duplicates: number;
  /** Largest distance between an instance's place in the listing and the place of its set among those created. */
  readonly maxOrderDisplacement: number;
  readonly durationMs: number;
  readonly handlerApiCalls: Record<string, number>;
  readonly failuresByCode: Record<string, number>;
}

/** EC2's defaults divided by TIME_SCALE (the client-side bucket: EC2's 100 tokens and 5 per second, time-compressed). */
const SCALED_SETTINGS: Record<string, string> = {
  CREATE_SNAPSHOTS_PER_SEC: String(5 * TIME_SCALE),
  CREATE_SNAPSHOTS_BURST: '100',
  PER_VOLUME_RETRY_DELAY_MS: String(16_000 / TIME_SCALE),
  THROTTLE_BACKOFF_BASE_MS: String(1_000 / TIME_SCALE),
  THROTTLE_BACKOFF_MAX_MS: String(20_000 / TIME_SCALE),
  VERIFY_DELAY_MS: String(3_000 / TIME_SCALE),
  TIME_RESERVE_MS: String(60_000 / TIME_SCALE),
};
/** EC2's CreateSnapshots bucket, time-compressed. */
const SCALED_BUCKET: TokenBucketOptions = { capacity: 100, refillPerSec: 5 * TIME_SCALE };
/** EC2's bucket for filtered, paginated Describe calls, time-compressed. */
const SCALED_DESCRIBE_BUCKET: TokenBucketOptions = { capacity: 100, refillPerSec: 20 * TIME_SCALE };
const INVOCATION_MS = (15 * 60_000) / TIME_SCALE;

const SCENARIOS: Scenario[] = [
  { name: 'fleet-100', instances: 100, bucket: SCALED_BUCKET, invocationBudgetMs: INVOCATION_MS, env: SCALED_SETTINGS },
  // The account's bucket is the bottleneck (2,000 sets need 19 s of refill beyond the burst).
  { name: 'fleet-2000', instances: 2000, bucket: SCALED_BUCKET, invocationBudgetMs: INVOCATION_MS, env: SCALED_SETTINGS },
  // The same with the SDK's adaptive (CUBIC) rate limiter instead of the client-side bucket (the
  // handler before issue 3): for comparison, in the same run.
  {
    name: 'fleet-1000-sdk-adaptive-limiter',
    instances: 1000,
    bucket: SCALED_BUCKET,
    invocationBudgetMs: INVOCATION_MS,
    env: { ...SCALED_SETTINGS, CREATE_SNAPSHOTS_PER_SEC: '0' },
  },
  // Under sustained throttling: other callers take 30 % of the account's refill, the handler still
  // paces at the full documented rate, so it is throttled over and over and must absorb it.
  {
    name: 'fleet-1000-contended',
    instances: 1000,
    bucket: { capacity: 100, refillPerSec: 0.7 * 5 * TIME_SCALE },
    invocationBudgetMs: INVOCATION_MS,
    env: SCALED_SETTINGS,
  },
  // A fleet that does not fit in one invocation: 3 s budgets with a 1 s reserve (about 200 sets each),
  // continued through the simulator's Lambda Invoke endpoint.
  {
    name: 'fleet-1000-continued',
    instances: 1000,
    bucket: SCALED_BUCKET,
    invocationBudgetMs: 3_000,
    env: { ...SCALED_SETTINGS, TIME_RESERVE_MS: '1000' },
  },
];
const HEADLINE = 'fleet-2000';

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

/** `n` selected instances with 1 to 3 volumes each, and every tenth instance an unselected one. */
function fleet(n: number): SimInstance[] {
  const out: SimInstance[] = [];
  for (let i = 0; i < n + Math.floor(n / 10); i++) {
    const selected = i % 11 !== 10;
    const volumes = 1 + (i % 3);
    out.push({
      instanceId: `i-${hex(i, 17)}`,
      state: i % 7 === 3 ? 'stopped' : 'running',
      tags: selected ? { Backup: 'nightly', Name: `host-${i}` } : { Backup: 'weekly' },
      volumeIds: Array.from({ length: volumes }, (_, v) => `vol-${hex(i * 4 + v, 17)}`),
    });
  }
  return out;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// ------------------------------------------------------------------ child: one scenario

async function runScenario(scenario: Scenario): Promise<ScenarioResult> {
  const instances = fleet(scenario.instances);
  const sim = new Ec2Simulator({
    instances,
    createSnapshotsBucket: scenario.bucket,
    describeBucket: SCALED_DESCRIBE_BUCKET,
  });
  await sim.start();
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_EC2: sim.endpoint,
    AWS_ENDPOINT_URL_LAMBDA: sim.endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'AKIDBENCHMARK',
    AWS_SECRET_ACCESS_KEY: 'benchmark-secret',
    AWS_EC2_METADATA_DISABLED: 'true',
    POWERTOOLS_SERVICE_NAME: 'cdk-instance-snapshots',
    POWERTOOLS_METRICS_NAMESPACE: 'CdkInstanceSnapshots',
    POWERTOOLS_METRICS_DISABLED: 'true',
    POWERTOOLS_LOG_LEVEL: 'ERROR',
    ...scenario.env,
  });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { handler } = require(ASSET) as { handler: (event: unknown, context: unknown) => Promise<{ status: string; totals: any }> };

  const functionArn = 'arn:aws:lambda:us-east-1:123456789012:function:bench';
  let event: unknown = {
    version: 1,
    scheduleId: 'Bench/Nightly',
    executionId: `bench-${scenario.name}`,
    scheduledTime: new Date().toISOString(),
    instanceTags: { Backup: ['nightly'] },
    excludeBootVolume: false,
    excludeDataVolumeIds: [],
    snapshotTags: { Purpose: 'bench' },
    dryRun: false,
  };
  const started = performance.now();
  let result: { status: string; totals: any };
  let invocations = 0;
  for (;;) {
    invocations++;
    const deadline = Date.now() + scenario.invocationBudgetMs;
    const context = { invokedFunctionArn: functionArn, getRemainingTimeInMillis: () => deadline - Date.now() };
    const seen = sim.invocations.length;
    try {
      result = await handler(event, context);
    } catch (e) {
      result = { status: `failed: ${(e as Error).message.slice(0, 200)}`, totals: (e as { totals?: unknown }).totals };
    }
    if (result.status !== 'continued') break;
    if (sim.invocations.length !== seen + 1) throw new Error(`expected one continuation, got ${sim.invocations.length - seen}`);
    event = JSON.parse(sim.invocations[seen].payload);
  }
  const durationMs = performance.now() - started;
  await sim.stop();

  const selected = instances.filter((i) => i.tags?.Backup === 'nightly');
  const sets = sim.setsByInstance();
  const runSets = sim.setsByInstance(EXECUTION_ID_TAG);
  let lost = 0;
  let duplicates = 0;
  for (const i of selected) {
    const n = sets.get(i.instanceId)?.length ?? 0;
    if (n === 0) lost++;
    if (n > 1) duplicates += n - 1;
  }
  const createdRank = new Map<string, number>();
  for (const s of sim.snapshots) {
    if (!createdRank.has(s.instanceId)) createdRank.set(s.instanceId, createdRank.size);
  }
  const maxOrderDisplacement = Math.max(...selected.map((i, k) => Math.abs((createdRank.get(i.instanceId) ?? Infinity) - k)));
  const count = (action: string) => sim.countCalls(action);
  return {
    name: scenario.name,
    instances: selected.length,
    volumes: selected.reduce((n, i) => n + i.volumeIds.length, 0),
    invocations,
    status: result.status,
    createSnapshotsCalls: count('CreateSnapshots'),
    throttledCalls: sim.calls.filter((c) => c.errorCode === 'RequestLimitExceeded').length,
    describeCalls: count('DescribeInstances') + count('DescribeSnapshots'),
    invokeCalls: count('Invoke'),
    allCalls: sim.calls.length,
    created: [...runSets.values()].reduce((n, s) => n + s.length, 0),
    lost,
    duplicates,
    maxOrderDisplacement,
    durationMs,
    handlerApiCalls: result.totals?.apiCalls ?? {},
    failuresByCode: result.totals?.failuresByCode ?? {},
  };
}

// ------------------------------------------------------------------ parent

interface LoadTime {
  /** `require(target)` inside the process. */
  readonly requireMs: number;
  /** The whole process, start to exit, seen from outside. */
  readonly processMs: number;
}

/** Loads `target` in a fresh node process. */
function loadTime(target: string): LoadTime {
  const script = 'const t=process.hrtime.bigint();require(process.argv[1]);process.stdout.write(String(Number(process.hrtime.bigint()-t)/1e6))';
  const t = performance.now();
  const out = spawnSync(process.execPath, ['-e', script, target], { cwd: ROOT, encoding: 'utf8' });
  const processMs = performance.now() - t;
  if (out.status !== 0) throw new Error(`loading ${target} failed: ${out.stderr}`);
  return { requireMs: Number(out.stdout), processMs };
}

function medians(samples: LoadTime[]): LoadTime {
  return { requireMs: median(samples.map((x) => x.requireMs)), processMs: median(samples.map((x) => x.processMs)) };
}

function runChild(scenario: Scenario): ScenarioResult {
  const out = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', __filename, '--scenario', scenario.name], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, TS_NODE_PROJECT: path.join(ROOT, 'test', 'tsconfig.json') },
    maxBuffer: 64 * 1024 * 1024,
  });
  const last = out.stdout.trim().split('\n').pop() ?? '';
  if (out.status !== 0 || !last.startsWith('{')) {
    throw new Error(`scenario ${scenario.name} failed (exit ${out.status}):\n${out.stdout.slice(-2000)}\n${out.stderr.slice(-4000)}`);
  }
  return JSON.parse(last);
}

function main(): void {
  if (!fs.existsSync(ASSET)) throw new Error(`${ASSET} not found: run "npx projen bundle" first`);
  const reps = 7;
  const assetBytes = fs.statSync(ASSET).size;
  const sdkEntry = require.resolve('@aws-sdk/client-ec2', { paths: [ROOT] });
  const emptyScript = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-')), 'empty.js');
  fs.writeFileSync(emptyScript, '');
  const samples: Record<'empty' | 'asset' | 'sdk', LoadTime[]> = { empty: [], asset: [], sdk: [] };
  try {
    // Interleaved, so that drifts of the machine affect all three alike.
    for (let k = 0; k < reps; k++) {
      samples.empty.push(loadTime(emptyScript));
      samples.asset.push(loadTime(ASSET));
      samples.sdk.push(loadTime(sdkEntry));
    }
  } finally {
    fs.rmSync(path.dirname(emptyScript), { recursive: true, force: true });
  }
  const [empty, asset, sdk] = [medians(samples.empty), medians(samples.asset), medians(samples.sdk)];
  console.log(`handler asset: ${path.relative(ROOT, ASSET)} ${(assetBytes / 1024).toFixed(0)} KiB`);
  console.log(`module load, median of ${reps} fresh node processes: `
    + `handler asset require ${asset.requireMs.toFixed(1)} ms (process ${asset.processMs.toFixed(0)} ms); `
    + `unbundled @aws-sdk/client-ec2 require ${sdk.requireMs.toFixed(1)} ms (process ${sdk.processMs.toFixed(0)} ms); `
    + `empty module process ${empty.processMs.toFixed(0)} ms`);

  let headline: Record<string, unknown> | undefined;
  for (const scenario of SCENARIOS) {
    const r = runChild(scenario);
    const bucket = scenario.bucket;
    // Achieved rate, conservatively: the bucket's initial burst is taken out of the sets created,
    // and the time is the whole run (every invocation, listing and look-ups included), so the rate
    // is compared with what the bucket can refill in that time: (created - capacity) / duration.
    const achieved = bucket ? (r.created - bucket.capacity) / (r.durationMs / 1000) : r.created / (r.durationMs / 1000);
    const apiCallsPerInstance = r.allCalls / r.instances;
    console.log(`${r.name}: ${r.instances} instances (${r.volumes} volumes), ${r.invocations} invocation(s), status ${r.status}; `
      + `created ${r.created}, lost ${r.lost}, duplicates ${r.duplicates}, max displacement from listing order ${r.maxOrderDisplacement}; `
      + `HTTP requests ${r.allCalls} (CreateSnapshots ${r.createSnapshotsCalls}, of which throttled ${r.throttledCalls}; describe ${r.describeCalls}; invoke ${r.invokeCalls}), `
      + `${apiCallsPerInstance.toFixed(4)} per instance; ${(r.durationMs / 1000).toFixed(2)} s; `
      + (bucket
        ? `bucket ${bucket.capacity} + ${bucket.refillPerSec}/s, achieved ${achieved.toFixed(1)}/s beyond the burst = ${(achieved / bucket.refillPerSec).toFixed(3)} of the limit`
        : `${achieved.toFixed(1)} sets/s unlimited`)
      + `; failures ${JSON.stringify(r.failuresByCode)}`);
    if (r.name === HEADLINE && bucket) {
      headline = {
        instances: r.instances,
        createSnapshotsCalls: r.createSnapshotsCalls,
        describeCalls: r.describeCalls,
        apiCallsPerInstance: Number(apiCallsPerInstance.toFixed(4)),
        bucketRatePerSec: bucket.refillPerSec,
        achievedRatePerSec: Number(achieved.toFixed(2)),
        ratioToLimit: Number((achieved / bucket.refillPerSec).toFixed(3)),
        lost: r.lost,
        duplicates: r.duplicates,
        durationMs: Math.round(r.durationMs),
      };
    }
  }
  console.log(JSON.stringify(headline));
}

if (process.argv[2] === '--scenario') {
  const scenario = SCENARIOS.find((s) => s.name === process.argv[3]);
  if (!scenario) throw new Error(`unknown scenario ${process.argv[3]}`);
  runScenario(scenario).then((r) => {
    console.log(JSON.stringify(r));
    process.exit(0);
  }, (e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main();
}
