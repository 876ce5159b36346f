/**
 * Consumer smoke test (`npx projen smoke`, part of `npx projen test`): what a user installs from npm
 * works on its own.
 *
 * 1. `npm pack` the package (needs compile and bundle first) and check what ships: only lib/,
 *    assets/, .jsii, API.md, README.md, LICENSE and package.json.
 * 2. Install the tarball, with the aws-cdk-lib and constructs versions of our package.json, into a
 *    fresh app folder (no esbuild anywhere it can resolve from).
 * 3. Synthesize a stack using InstanceSnapshotSchedule in plain Node (consumer-app.js; it checks
 *    that the stack has the schedule's state machine and worker) and check that the template's
 *    Lambda code is an asset whose folder holds the shipped index.js, byte for byte our
 *    assets/lambda/worker/index.js.
 *
 * Set KEEP_SMOKE=1 to keep the temporary folder.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');
const WORKER_BUNDLE = 'assets/lambda/worker/index.js';

/** What may ship in the npm package: anything else fails the smoke test. */
const ALLOWED = [/^lib\/.+\.(js|d\.ts)$/, /^assets\//, /^\.jsii$/, /^API\.md$/, /^README\.md$/, /^LICENSE$/, /^package\.json$/];
/** What must ship. */
const REQUIRED = ['lib/index.js', 'lib/index.d.ts', WORKER_BUNDLE, '.jsii', 'README.md', 'LICENSE', 'package.json'];

const problems: string[] = [];
const check = (ok: boolean, message: string) => {
  if (!ok) problems.push(message);
};
const started = Date.now();
const step = (message: string) => console.log(`smoke: ${message} (${((Date.now() - started) / 1000).toFixed(1)} s)`);

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  try {
    return execFileSync(command, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')} failed in ${cwd}: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
  }
}

function main(): void {
  for (const file of ['lib/index.js', '.jsii', WORKER_BUNDLE]) {
    if (!fs.existsSync(path.join(ROOT, file))) {
      throw new Error(`${file} is missing: run \`npx projen compile\` and \`npx projen bundle\` first`);
    }
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cdk-instance-snapshots-smoke-'));
  try {
    // 1. pack, and check what ships
    const [packed] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], ROOT));
    const shipped: string[] = packed.files.map((f: { path: string }) => f.path);
    step(`packed ${packed.filename}: ${shipped.length} files, ${(packed.size / 1024).toFixed(0)} KiB`);
    const forbidden = shipped.filter((f) => !ALLOWED.some((re) => re.test(f)));
    check(forbidden.length === 0, `files that must not ship are in the package: ${forbidden.join(', ')}`);
    for (const file of REQUIRED) {
      check(shipped.includes(file), `${file} is not in the package`);
    }

    // 2. a fresh app: the tarball plus the aws-cdk-lib and constructs versions we build against
    const app = path.join(work, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'smoke-consumer', version: '0.0.0', private: true }, null, 2));
    fs.copyFileSync(path.join(__dirname, 'consumer-app.js'), path.join(app, 'consumer-app.js'));
    const ours = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const versions = ['aws-cdk-lib', 'constructs'].map((name) => `${name}@${ours.devDependencies[name]}`);
    run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--no-package-lock', '--prefer-offline', '--loglevel=error',
      path.join(work, packed.filename), ...versions], app);
    step(`installed the tarball, ${versions.join(', ')}`);
    let esbuild: string | undefined;
    try {
      esbuild = require.resolve('esbuild', { paths: [app] });
    } catch {
      // expected: a consumer has no esbuild
    }
    check(esbuild === undefined, `the consumer app can resolve esbuild (${esbuild}): the test would not prove the bundle is shipped`);

    // 3. synthesize in plain Node, outside this repository's node_modules
    const outdir = path.join(app, 'cdk.out');
    const env = { ...process.env };
    delete env.NODE_PATH;
    delete env.NODE_OPTIONS;
    const output = run(process.execPath, ['consumer-app.js', outdir], app, env);
    const consumer: { resolved: string; stateMachine: string; worker: string } = JSON.parse(output.trim().split('\n').pop()!);
    const resolved = consumer.resolved;
    check(resolved.startsWith(path.join(app, 'node_modules', 'cdk-instance-snapshots') + path.sep),
      `cdk-instance-snapshots resolved to ${resolved}, not to the installed tarball`);
    step(`synthesized SmokeStack in plain Node: state machine ${consumer.stateMachine}, worker ${consumer.worker}`);

    const template = JSON.parse(fs.readFileSync(path.join(outdir, 'SmokeStack.template.json'), 'utf8'));
    const functions = Object.entries(template.Resources as Record<string, any>).filter(([, r]) => r.Type === 'AWS::Lambda::Function').map(([id, r]) => ({ id, ...r }));
    check(functions.length === 1 && functions[0].id === consumer.worker, `expected the worker ${consumer.worker} as the one Lambda function in the template, got: ${JSON.stringify(functions.map((f) => f.id))}`);
    const s3Key: string = functions[0]?.Properties?.Code?.S3Key ?? '';
    const hash = /^([0-9a-f]{64})\.zip$/.exec(s3Key)?.[1];
    check(hash !== undefined, `the Lambda code is not a file asset: ${JSON.stringify(functions[0]?.Properties?.Code)}`);
    const assets = JSON.parse(fs.readFileSync(path.join(outdir, 'SmokeStack.assets.json'), 'utf8'));
    const source = hash ? assets.files?.[hash]?.source : undefined;
    check(source?.packaging === 'zip', `asset ${hash} is not a zipped folder: ${JSON.stringify(source)}`);
    if (source?.path) {
      const folder = path.join(outdir, source.path);
      const files = fs.readdirSync(folder);
      check(files.length === 1 && files[0] === 'index.js', `the asset folder ${source.path} holds ${JSON.stringify(files)}, not just index.js`);
      const shippedBundle = fs.readFileSync(path.join(folder, 'index.js'));
      const ourBundle = fs.readFileSync(path.join(ROOT, WORKER_BUNDLE));
      check(shippedBundle.equals(ourBundle), `the asset's index.js (${shippedBundle.length} bytes) differs from ${WORKER_BUNDLE} (${ourBundle.length} bytes)`);
    }
    step(`the Lambda code is asset ${hash?.slice(0, 12)}…, whose index.js is ${WORKER_BUNDLE}`);
  } finally {
    if (process.env.KEEP_SMOKE) {
      console.log(`smoke: kept ${work}`);
    } else {
      fs.rmSync(work, { recursive: true, force: true });
    }
  }
  if (problems.length > 0) {
    throw new Error(`smoke test failed:\n- ${problems.join('\n- ')}`);
  }
  step('passed');
}

main();
