/**
 * Benchmark of a whole scheduled run as it deploys: the workflow the construct synthesizes,
 * executed by aws-local-stepfunctions, its Lambda tasks running the worker that ships (the esbuild
 * bundle `assets/lambda/worker/index.js`), its EC2 calls going to the EC2 simulator
 * (test/support/ec2-simulator.ts) with EC2's token buckets. Run with `npx projen bench`.
 *
 * Time is compressed TIME_SCALE times: EC2's CreateSnapshots bucket (100 tokens, 5 per second)
 * becomes 100 tokens and 5 x TIME_SCALE per second, the describe bucket (100, 20 per second)
 * likewise, and every delay of the worker and the workflow is divided by TIME_SCALE (a step's
 * 10-minute budget -> 12 s, Lambda's 15 minutes -> 18 s, the 5-minute wait between passes -> 6 s).
 * The SDK's own retry delays are the worker's scaled ones. What is not compressed is the CPU time
 * of the simulator, the SDK and the interpreter, which makes the figures conservative.
 *
 * Each scenario runs in a child process of its own (fresh SDK clients and module state, like a
 * cold Lambda start). The last line printed is one JSON object for the 50,000-instance run.
 */
import { fork, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Retention } from '../src';
import { Ec2Simulator, SimInstance, SimSnapshotSeed, TokenBucketOptions } from '../test/support/ec2-simulator';
import '../test/support/promise-with-resolvers';
import { FakeLockTable, largestStateBytes, STATE_MACHINE_ARN, synthesizeWorkflow } from '../test/support/workflow-harness';

const ROOT = path.join(__dirname, '..');
const ASSET = path.join(ROOT, 'assets', 'lambda', 'worker', 'index.js');
const TIME_SCALE = 50;
const SCHEDULE_TAG = 'cdk-instance-snapshots:schedule';
const SCHEDULED_TIME_TAG = 'cdk-instance-snapshots:scheduled-time';
const INSTANCE_ID_TAG = 'cdk-instance-snapshots:instance-id';
const SCHEDULED_TIME = '2026-11-24T02:30:00Z';
const DAY_MS = 86_400_000;

interface Scenario {
  readonly name: string;
  readonly instances: number;
  /** EC2's CreateSnapshots bucket as this account sees it (other callers take part of the refill). */
  readonly bucket: TokenBucketOptions;
  /** Every instance with this many volumes (default: 1 to 3). */
  readonly volumesPerInstance?: number;
  /** Pruning: `Retention.count(keep)` with `earlierSets` daily sets of every instance present before the run. */
  readonly pruning?: { readonly keep: number; readonly earlierSets: number };
}

interface ScenarioResult extends Omit<SimulatorReport, 'firstCreateAtMs' | 'lastCreateAtMs' | 'firstDeleteAtMs' | 'lastDeleteAtMs'> {
  readonly name: string;
  readonly status: string;
  readonly summary: any;
  readonly steps: number;
  readonly maxStateBytes: number;
  readonly durationMs: number;
  /** From the first CreateSnapshots call to the last one. */
  readonly createWindowMs: number;
  /** From the first snapshot deleted to the last one. */
  readonly deleteWindowMs: number;
}

const EC2_RATE = 5 * TIME_SCALE;
const SCENARIOS: Scenario[] = [
  { name: 'fleet-50000', instances: 50_000, bucket: { capacity: 100, refillPerSec: EC2_RATE } },
  // Other callers take 30 % of the account's refill: the worker paces at the documented rate, so it
  // is throttled over and over and must absorb it without losing or doubling a set.
  { name: 'fleet-5000-contended', instances: 5_000, bucket: { capacity: 100, refillPerSec: 0.7 * EC2_RATE } },
  { name: 'fleet-10000', instances: 10_000, bucket: { capacity: 100, refillPerSec: EC2_RATE } },
  // Retention: 10,000 instances of 3 volumes with 7 earlier daily sets under Retention.count(7):
  // the run makes one set per instance, then deletes the oldest, 30,000 snapshots.
  {
    name: 'prune-10000',
    instances: 10_000,
    bucket: { capacity: 100, refillPerSec: EC2_RATE },
    volumesPerInstance: 3,
    pruning: { keep: 7, earlierSets: 7 },
  },
];
const PRUNING = 'prune-10000';
/** EC2's DeleteSnapshot bucket (100, 5 per second), compressed. */
const DELETE_BUCKET: TokenBucketOptions = { capacity: 100, refillPerSec: EC2_RATE };
const HEADLINE = 'fleet-50000';

/** The worker's settings, time-compressed (see lambda/worker.ts `settingsFromEnv`). */
const SCALED_ENV: Record<string, string> = {
  TIME_SCALE: String(TIME_SCALE),
  STEP_BUDGET_MS: String(600_000 / TIME_SCALE),
  TIME_RESERVE_MS: String(30_000 / TIME_SCALE),
  PER_VOLUME_RETRY_DELAY_MS: String(16_000 / TIME_SCALE),
  THROTTLE_BACKOFF_BASE_MS: String(1_000 / TIME_SCALE),
  THROTTLE_BACKOFF_MAX_MS: String(20_000 / TIME_SCALE),
  SETTLE_WINDOW_MS: String(90_000 / TIME_SCALE),
  LOOK_INTERVAL_MS: String(10_000 / TIME_SCALE),
};
const INVOCATION_MS = (15 * 60_000) / TIME_SCALE;

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

/** `n` selected instances with 1 to 3 volumes each (or `volumes`), and every eleventh instance an unselected one. */
function fleet(n: number, volumes?: number): SimInstance[] {
  const out: SimInstance[] = [];
  for (let i = 0, selectedCount = 0; selectedCount < n; i++) {
    const selected = i % 11 !== 10;
    if (selected) selectedCount++;
    out.push({
      instanceId: `i-${hex(i * 7919 % 0x1000000, 17)}`,
      state: i % 7 === 3 ? 'stopped' : 'running',
      tags: selected ? { Backup: 'nightly', Name: `host-${i}` } : { Backup: 'weekly' },
      volumeIds: Array.from({ length: volumes ?? 1 + (i % 3) }, (_, v) => `vol-${hex(i * 4 + v, 17)}`),
    });
  }
  return out;
}

// ------------------------------------------------------------------ child: one scenario

/** What the EC2 simulator process reports at the end of a scenario. */
interface SimulatorReport {
  readonly instances: number;
  readonly volumes: number;
  readonly createSnapshotsCalls: number;
  readonly throttledCalls: number;
  readonly describeInstancesCalls: number;
  readonly describeSnapshotsCalls: number;
  readonly allCalls: number;
  readonly created: number;
  readonly lost: number;
  readonly duplicates: number;
  /** Arrival times of the CreateSnapshots calls (epoch ms), first and last. */
  readonly firstCreateAtMs: number;
  readonly lastCreateAtMs: number;
  /** Pruning: snapshots deleted, DeleteSnapshot requests and throttled ones, the first and last deletion. */
  readonly deleted: number;
  readonly deleteSnapshotCalls: number;
  readonly deleteThrottled: number;
  readonly firstDeleteAtMs: number;
  readonly lastDeleteAtMs: number;
  /** Deleted snapshots that retention had to keep (anything but the oldest earlier set). */
  readonly wronglyDeleted: number;
  /** Selected instances left with a number of sets other than `keep`. */
  readonly instancesNotAtKeep: number;
}

/** The scheduled time `days` days before the benchmark's occurrence (canonical form). */
function earlierOccurrence(days: number): string {
  return new Date(Date.parse(SCHEDULED_TIME) - days * DAY_MS).toISOString().replace('.000Z', 'Z');
}

/** The earlier sets of every selected instance, as the schedule made them on earlier days. */
function earlierSets(instances: SimInstance[], scheduleId: string, sets: number): SimSnapshotSeed[] {
  const seeds: SimSnapshotSeed[] = [];
  for (const instance of instances) {
    for (let day = 1; day <= sets; day++) {
      const scheduledTime = earlierOccurrence(day);
      for (const volumeId of instance.volumeIds) {
        seeds.push({
          volumeId,
          instanceId: instance.instanceId,
          startTimeMs: Date.parse(scheduledTime) + 60_000,
          state: 'completed',
          tags: { [SCHEDULE_TAG]: scheduleId, [SCHEDULED_TIME_TAG]: scheduledTime, [INSTANCE_ID_TAG]: instance.instanceId },
        });
      }
    }
  }
  return seeds;
}

/**
 * The EC2 simulator in a process of its own, as EC2 is a server of its own: its CPU time (building
 * pages of 1,000 instances, filtering 100,000 snapshots) does not slow the worker's pacing.
 */
async function serveSimulator(scenario: Scenario, scheduleId: string): Promise<void> {
  const instances = fleet(scenario.instances, scenario.volumesPerInstance);
  const sim = new Ec2Simulator({
    instances,
    createSnapshotsBucket: scenario.bucket,
    deleteSnapshotBucket: DELETE_BUCKET,
    describeBucket: { capacity: 100, refillPerSec: 20 * TIME_SCALE },
    perVolumeIntervalMs: 15_000 / TIME_SCALE,
  });
  const selectedInstances = instances.filter((i) => i.tags?.Backup === 'nightly');
  if (scenario.pruning) sim.seedSnapshots(earlierSets(selectedInstances, scheduleId, scenario.pruning.earlierSets));
  await sim.start();
  process.send!({ endpoint: sim.endpoint });
  process.on('message', async () => {
    const selected = instances.filter((i) => i.tags?.Backup === 'nightly');
    // One set per CreateSnapshots call (seeded earlier sets: one per instance and start time), of
    // this run's occurrence only: two calls for one instance are a duplicate.
    const sets = new Map([...sim.setsByInstance()].map(([id, all]) => [id, all.filter((set) => set[0].tags[SCHEDULED_TIME_TAG] === SCHEDULED_TIME)]));
    let lost = 0;
    let duplicates = 0;
    for (const i of selected) {
      const n = sets.get(i.instanceId)?.length ?? 0;
      if (n === 0) lost++;
      if (n > 1) duplicates += n - 1;
    }
    const creates = sim.calls.filter((c) => c.action === 'CreateSnapshots');
    const deletes = sim.calls.filter((c) => c.action === 'DeleteSnapshot');
    const oldest = scenario.pruning ? earlierOccurrence(scenario.pruning.earlierSets) : undefined;
    const setsLeft = new Map<string, Set<string>>();
    for (const snapshot of sim.snapshots) {
      const time = snapshot.tags[SCHEDULED_TIME_TAG];
      if (time === undefined) continue;
      const times = setsLeft.get(snapshot.instanceId) ?? new Set<string>();
      times.add(time);
      setsLeft.set(snapshot.instanceId, times);
    }
    const report: SimulatorReport = {
      instances: selected.length,
      volumes: selected.reduce((n, i) => n + i.volumeIds.length, 0),
      createSnapshotsCalls: creates.length,
      throttledCalls: creates.filter((c) => c.errorCode === 'RequestLimitExceeded').length,
      describeInstancesCalls: sim.countCalls('DescribeInstances'),
      describeSnapshotsCalls: sim.countCalls('DescribeSnapshots'),
      allCalls: sim.calls.length,
      created: [...sets.values()].reduce((n, x) => n + x.length, 0),
      lost,
      duplicates,
      firstCreateAtMs: creates[0]?.atMs ?? 0,
      lastCreateAtMs: creates[creates.length - 1]?.atMs ?? 0,
      deleted: sim.deletions.length,
      deleteSnapshotCalls: deletes.length,
      deleteThrottled: deletes.filter((c) => c.errorCode === 'RequestLimitExceeded').length,
      firstDeleteAtMs: sim.deletions[0]?.atMs ?? 0,
      lastDeleteAtMs: sim.deletions[sim.deletions.length - 1]?.atMs ?? 0,
      wronglyDeleted: sim.deletions.filter((d) => d.snapshot.tags[SCHEDULED_TIME_TAG] !== oldest).length,
      instancesNotAtKeep: scenario.pruning ? selected.filter((i) => (setsLeft.get(i.instanceId)?.size ?? 0) !== scenario.pruning!.keep).length : 0,
    };
    await sim.stop();
    process.send!(report, () => process.exit(0));
  });
}

function startSimulator(scenario: Scenario, scheduleId: string): Promise<{ endpoint: string; report(): Promise<SimulatorReport> }> {
  const child = fork(__filename, ['--simulator', scenario.name, scheduleId], { execArgv: ['--max-old-space-size=4096', '-r', 'ts-node/register/transpile-only'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('message', (m: { endpoint: string }) => resolve({
      endpoint: m.endpoint,
      report: () => new Promise((done) => {
        child.once('message', (r: SimulatorReport) => done(r));
        child.send('report');
      }),
    }));
  });
}

async function runScenario(scenario: Scenario): Promise<ScenarioResult> {
  const workflow = synthesizeWorkflow(scenario.pruning ? { retention: Retention.count(scenario.pruning.keep) } : {});
  const sim = await startSimulator(scenario, workflow.construct.scheduleId);
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_EC2: sim.endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'AKIDBENCHMARK',
    AWS_SECRET_ACCESS_KEY: 'benchmark-secret',
    AWS_EC2_METADATA_DISABLED: 'true',
    POWERTOOLS_METRICS_DISABLED: 'true',
    POWERTOOLS_LOG_LEVEL: 'ERROR',
    ...workflow.workerEnvironment,
    ...SCALED_ENV,
  });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { handler } = require(ASSET) as { handler: (event: unknown, context: unknown) => Promise<unknown> };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { StateMachine } = require('aws-local-stepfunctions');
  const table = new FakeLockTable();
  const invoke = async (payload: unknown) => {
    const deadline = Date.now() + INVOCATION_MS;
    return JSON.parse(JSON.stringify(await handler(JSON.parse(JSON.stringify(payload)), { getRemainingTimeInMillis: () => deadline - Date.now() })));
  };
  const name = `bench-${scenario.name}`;
  const started = performance.now();
  const execution = new StateMachine(workflow.definition).run({ scheduledTime: SCHEDULED_TIME, schedulerExecutionId: name }, {
    overrides: {
      taskResourceLocalHandlers: {
        Prepare: invoke,
        SnapshotStep: invoke,
        ClaimOccurrence: (p: unknown) => table.putItem(p),
        FindOwner: (p: unknown) => table.getItem(p),
      },
      waitTimeOverrides: { WaitBeforeStepAgain: 120_000 / TIME_SCALE, WaitBeforeRetryPass: 300_000 / TIME_SCALE },
    },
    context: { Execution: { Id: `${STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:${name}`, Name: name, StartTime: new Date().toISOString() } },
  });
  const events: any[] = [];
  const collect = (async () => { for await (const e of execution.eventLogs) events.push(e); })();
  let status = 'succeeded';
  let summary: any;
  try {
    summary = await execution.result;
  } catch (e: any) {
    status = `failed: ${e.cause?.name ?? e.name}`;
    summary = (() => { try { return JSON.parse(e.cause?.message); } catch { return undefined; } })();
  }
  await collect;
  const durationMs = performance.now() - started;
  const { firstCreateAtMs, lastCreateAtMs, firstDeleteAtMs, lastDeleteAtMs, ...report } = await sim.report();
  return {
    ...report,
    name: scenario.name,
    status,
    summary: summary && {
      counts: summary.counts, prune: summary.prune, failuresByCode: summary.failuresByCode, passes: summary.passes, apiCalls: summary.apiCalls,
    },
    steps: events.filter((e) => e.type === 'StateEntered' && e.state?.name === 'SnapshotStep').length,
    maxStateBytes: largestStateBytes(events),
    durationMs,
    createWindowMs: lastCreateAtMs - firstCreateAtMs,
    deleteWindowMs: lastDeleteAtMs - firstDeleteAtMs,
  };
}

// ------------------------------------------------------------------ parent

function runChild(scenario: Scenario): ScenarioResult {
  const out = spawnSync(process.execPath, ['--max-old-space-size=4096', '-r', 'ts-node/register/transpile-only', __filename, '--scenario', scenario.name], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, TS_NODE_PROJECT: path.join(ROOT, 'test', 'tsconfig.json'), JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION: '20' },
    maxBuffer: 256 * 1024 * 1024,
  });
  const last = out.stdout.trim().split('\n').pop() ?? '';
  if (out.status !== 0 || !last.startsWith('{')) {
    throw new Error(`scenario ${scenario.name} failed (exit ${out.status}):\n${out.stdout.slice(-2000)}\n${out.stderr.slice(-4000)}`);
  }
  return JSON.parse(last);
}

function main(): void {
  if (!fs.existsSync(ASSET)) throw new Error(`${ASSET} not found: run "npx projen bundle" first`);
  console.log(`worker asset: ${path.relative(ROOT, ASSET)} ${(fs.statSync(ASSET).size / 1024).toFixed(0)} KiB; time compressed ${TIME_SCALE} times`);
  let headline: Record<string, unknown> | undefined;
  let pruning: Record<string, unknown> | undefined;
  // BENCH_ONLY=name,name runs some scenarios only (the last line then lacks what was not run).
  const only = process.env.BENCH_ONLY?.split(',');
  for (const scenario of SCENARIOS.filter((x) => !only || only.includes(x.name))) {
    const r = runChild(scenario);
    const bucket = scenario.bucket;
    // Achieved rate, conservatively: the bucket's initial burst is taken out of the sets created,
    // and the time is the whole execution (every step, listing and look-ups included).
    const achieved = (r.created - bucket.capacity) / (r.durationMs / 1000);
    const ratioToLimit = achieved / bucket.refillPerSec;
    const createsPerInstance = r.createSnapshotsCalls / r.instances;
    console.log(`${r.name}: ${r.instances} instances (${r.volumes} volumes), execution ${r.status} after ${r.steps} worker steps, `
      + `${(r.durationMs / 1000).toFixed(1)} s (${(r.durationMs * TIME_SCALE / 3_600_000).toFixed(2)} h uncompressed)`);
    console.log(`  sets: created ${r.created}, lost ${r.lost}, duplicates ${r.duplicates}; summary ${JSON.stringify(r.summary?.counts)} ${JSON.stringify(r.summary?.failuresByCode)}`);
    console.log(`  CreateSnapshots: ${r.createSnapshotsCalls} HTTP requests (${r.throttledCalls} throttled) = ${createsPerInstance.toFixed(4)} per instance; `
      + `DescribeInstances ${r.describeInstancesCalls}, DescribeSnapshots ${r.describeSnapshotsCalls}; all requests ${r.allCalls} = ${(r.allCalls / r.instances).toFixed(4)} per instance`);
    console.log(`  rate: bucket ${bucket.capacity} + ${bucket.refillPerSec}/s, achieved ${achieved.toFixed(1)}/s beyond the burst over the whole execution = ${ratioToLimit.toFixed(3)} of the limit`
      + ` (${((r.created - bucket.capacity) / (r.createWindowMs / 1000) / bucket.refillPerSec).toFixed(3)} between the first and the last CreateSnapshots)`);
    console.log(`  largest state carried between workflow states: ${r.maxStateBytes} bytes`);
    if (scenario.pruning) {
      // The bucket's initial burst is taken out, as for creation; the time is the deletion window.
      const deleteRatio = (r.deleted - DELETE_BUCKET.capacity) / (r.deleteWindowMs / 1000) / DELETE_BUCKET.refillPerSec;
      console.log(`  pruning: Retention.count(${scenario.pruning.keep}) over ${scenario.pruning.earlierSets} earlier sets: deleted ${r.deleted} snapshots `
        + `(summary ${JSON.stringify(r.summary?.prune)}), wrongly deleted ${r.wronglyDeleted}, instances not left with ${scenario.pruning.keep} sets ${r.instancesNotAtKeep}`);
      console.log(`  DeleteSnapshot: ${r.deleteSnapshotCalls} HTTP requests (${r.deleteThrottled} throttled); bucket ${DELETE_BUCKET.capacity} + ${DELETE_BUCKET.refillPerSec}/s, `
        + `${deleteRatio.toFixed(3)} of the limit between the first and the last deletion (${(r.deleteWindowMs / 1000).toFixed(1)} s)`);
      if (r.name === PRUNING) {
        pruning = {
          instances: r.instances,
          deleted: r.deleted,
          deleteRatioToLimit: Number(deleteRatio.toFixed(3)),
          wronglyDeleted: r.wronglyDeleted,
          instancesNotAtKeep: r.instancesNotAtKeep,
          lost: r.lost,
          duplicates: r.duplicates,
          status: r.status,
        };
      }
    }
    if (r.name === HEADLINE) {
      headline = {
        instances: r.instances,
        apiCallsPerInstance: Number(createsPerInstance.toFixed(4)),
        ratioToLimit: Number(ratioToLimit.toFixed(3)),
        lost: r.lost,
        duplicates: r.duplicates,
        maxStateBytes: r.maxStateBytes,
        status: r.status,
        steps: r.steps,
        httpRequestsPerInstance: Number((r.allCalls / r.instances).toFixed(4)),
        timeScale: TIME_SCALE,
        durationMs: Math.round(r.durationMs),
      };
    }
  }
  console.log(JSON.stringify({ ...headline, pruning }));
}

if (process.argv[2] === '--simulator') {
  const scenario = SCENARIOS.find((x) => x.name === process.argv[3]);
  if (!scenario) throw new Error(`unknown scenario ${process.argv[3]}`);
  void serveSimulator(scenario, process.argv[4]);
} else if (process.argv[2] === '--scenario') {
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
