import { awscdk, javascript } from 'projen';

const project = new awscdk.AwsCdkConstructLibrary({
  name: 'cdk-instance-snapshots',
  description:
    'Crash-consistent EBS snapshot sets of tagged EC2 instances on an EventBridge Scheduler schedule, run by AWS Step Functions: exactly one set per instance per occurrence, exact tag selection, time zones, least-privilege IAM per schedule.',
  keywords: ['cdk', 'awscdk', 'aws-cdk', 'ebs', 'ec2', 'snapshots', 'backup', 'eventbridge-scheduler', 'step-functions'],
  license: 'Apache-2.0',
  stability: 'experimental',
  author: 'cdk-instance-snapshots maintainers',
  authorAddress: 'maintainers@users.noreply.r-seed-2b1d1a78.example',
  repositoryUrl: 'https://github.com/cdk-instance-snapshots/cdk-instance-snapshots.git',
  defaultReleaseBranch: 'main',
  packageManager: javascript.NodePackageManager.NPM,
  projenrcTs: true,

  // Toolchain pins that build together on these machines (see shared TOOLCHAIN notes).
  cdkVersion: '2.276.0',
  // cdk-nag 3 (tests only) needs constructs >= 10.5.1.
  constructsVersion: '10.5.1',
  jsiiVersion: '~6.0.0',
  typescriptVersion: '~6.0.3',
  minNodeVersion: '20.16.0',
  workflowNodeVersion: '24.x',

  // The handler lives in lambda/ and is bundled explicitly below; nothing in src/ to discover.
  lambdaAutoDiscover: false,

  devDeps: [
    '@aws-sdk/client-ec2',
    // Notifies the schedule's topic of failed snapshot sets (EBS completion events); bundled into the worker.
    '@aws-sdk/client-sns',
    // Tells a vault account which sets were shared with it (PutEvents to its bus); bundled into the worker.
    '@aws-sdk/client-eventbridge',
    '@aws-lambda-powertools/logger',
    '@aws-lambda-powertools/metrics',
    '@smithy/core',
    '@smithy/types',
    '@types/aws-lambda',
    'aws-sdk-client-mock',
    'aws-sdk-client-mock-jest',
    // The synthesized workflow, executed offline in tests and the benchmark.
    'aws-local-stepfunctions@3.0.0',
    'asl-validator',
  ],

  jestOptions: {
    // `projen test` never rewrites snapshots; `projen test:update` does, on purpose.
    updateSnapshot: javascript.UpdateSnapshot.NEVER,
    jestConfig: {
      snapshotSerializers: ['<rootDir>/test/support/asset-hash-serializer.ts'],
      // Whole workflow executions and 40-schedule syntheses take seconds on a shared 2-core machine.
      testTimeout: 30_000,
      // aws-local-stepfunctions calls Promise.withResolvers, which Node 20 lacks.
      setupFiles: ['<rootDir>/test/support/promise-with-resolvers.ts'],
      testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/support/'],
    },
  },
  typecheckTests: true,

  // jsii targets. Packaged by the GitHub workflows; locally `package` builds npm only.
  publishToPypi: { distName: 'cdk-instance-snapshots', module: 'cdk_instance_snapshots' },
  publishToMaven: {
    javaPackage: 'io.github.cdkinstancesnapshots',
    mavenGroupId: 'io.github.cdk-instance-snapshots',
    mavenArtifactId: 'cdk-instance-snapshots',
  },
  publishToNuget: { dotNetNamespace: 'CdkInstanceSnapshots', packageId: 'CdkInstanceSnapshots' },
  publishToGo: { moduleName: 'github.com/cdk-instance-snapshots/cdk-instance-snapshots-go' },

  gitignore: ['/cdk.out*/', '/.bindings/'],
  npmignoreEnabled: true,
});

// ---------------------------------------------------------------------------
// Worker bundle: lambda/ -> assets/lambda/worker/index.js (shipped in the npm package,
// git-ignored, rebuilt before compile and before tests).
project.bundler.addBundle('lambda/worker.ts', {
  platform: 'node',
  target: 'node22',
  // Everything, the AWS SDK included, goes into the bundle: pinned by our lockfile, not by the
  // Lambda runtime's copy.
  externals: [],
  minify: true,
  sourcemap: false,
  mainFields: ['module', 'main'],
  watchTask: false,
});
project.testTask.prependSpawn(project.bundler.bundleTask);
// A plain closing line ("jest: N passed, N failed, N skipped") for CI systems that do not parse jest's summary.
project.jest?.addReporter(new javascript.JestReporter('<rootDir>/test/support/summary-reporter.js'));

// esbuild does not type-check: the handler, the benchmark and the example are type-checked and
// linted with the rest of the repository.
for (const dir of ['lambda', 'bench', 'example']) {
  project.tsconfigDev.addInclude(`../${dir}/**/*.ts`);
  // eslint's project service reads the tsconfig nearest to each file.
  new javascript.TypescriptConfig(project, {
    fileName: `${dir}/tsconfig.json`,
    extends: javascript.TypescriptConfigExtends.fromPaths(['../tsconfig.json']),
    include: ['**/*.ts'],
    compilerOptions: { rootDir: '..', noEmit: true },
  });
  project.eslint?.addLintPattern(dir);
  project.eslint?.allowDevDeps(`${dir}/**/*.ts`);
}
project.npmignore?.exclude('/lambda/', '/bench/', '/example/', '/rosetta/', '/cdk.out*/', '/.bindings/');

// ---------------------------------------------------------------------------
// The README's main job: synthesize the example app and show what it deploys.
const example = project.addTask('example', {
  description: 'Synthesize example/app.ts (a stack that uses InstanceSnapshotSchedule) and summarize what it deploys',
});
example.spawn(project.bundler.bundleTask);
example.exec('ts-node --project test/tsconfig.json example/app.ts');

// ---------------------------------------------------------------------------
// jsii targets, cdk-nag, the consumer smoke test and the integ test.
const CDK_NAG_VERSION = '^3.0.2';
// @aws-cdk/integ-tests-alpha: 2.245.0-alpha.0 is the newest on the registry (no 2.276.0-alpha.0).
project.addDevDeps(`cdk-nag@${CDK_NAG_VERSION}`, '@aws-cdk/integ-tests-alpha@2.245.0-alpha.0');

// Locally, `package` builds the npm package only (projen packages every declared language when CI
// is unset; Python, Java, .NET and Go need toolchains and registries we do not have). The GitHub
// workflows keep their per-language package jobs, which call `package:<language>`.
project.packageTask.reset();
project.packageTask.spawn(project.tasks.tryFind('package:js')!);

// Tests need lib/ and .jsii (rosetta, bindings, smoke): compile when they are missing or older
// than their inputs (README.md is embedded in .jsii), so `projen test` works on a fresh clone and
// `projen build` (which has just compiled) does not compile twice.
const jsiiIsStale = [
  "const fs=require('fs'),path=require('path');",
  'const t=(f)=>{try{return fs.statSync(f).mtimeMs}catch{return -1}};',
  "const built=Math.min(t('.jsii'),t('lib/index.js'));",
  'const walk=(d)=>fs.readdirSync(d,{withFileTypes:true}).flatMap((e)=>e.isDirectory()?walk(path.join(d,e.name)):[path.join(d,e.name)]);',
  "const inputs=[...walk('src'),'README.md','package.json','tsconfig.json'];",
  'process.exit(built<0||inputs.some((f)=>t(f)>built)?0:1);',
].join('');

// README examples are compiled strictly (rosetta/default.ts-fixture supplies the imports), from
// the README embedded in .jsii: after compile.
const rosettaExtract = project.addTask('rosetta:extract', {
  description: 'Compile the README examples with jsii-rosetta (strict): fails on a broken example',
  exec: 'jsii-rosetta extract --strict',
});
project.postCompileTask.spawn(rosettaExtract);
// README examples: jsii-rosetta compiles them against the package, its peers and these.
project.package.addField('jsiiRosetta', { exampleDependencies: { 'cdk-nag': CDK_NAG_VERSION } });
// rosetta's translation cache (not shipped, not committed); .ci/ is not for consumers either.
project.gitignore.exclude('/.jsii.tabl.json');
project.npmignore?.exclude('/.jsii.tabl.json', '/.ci/');

// The Python, Java, .NET and Go bindings, generated (not built) offline: an API that does not
// translate fails the tests. Output in .bindings/ (git- and npm-ignored).
const bindings = project.addTask('bindings', {
  description: 'Generate the Python, Java, .NET and Go bindings (code only) into .bindings/',
  exec: 'jsii-pacmak --code-only --force --no-npmignore --outdir .bindings --target python --target java --target dotnet --target go',
});

// What a consumer gets: npm pack, install the tarball into a fresh app without esbuild, synthesize.
const smoke = project.addTask('smoke', {
  description: 'Pack the package, install it into a fresh app (no esbuild) and synthesize a stack that uses it',
  exec: 'ts-node --transpile-only --project test/tsconfig.json test/smoke/smoke.ts',
});

// test: bundle -> compile (if stale) -> rosetta:extract -> bindings -> tsc -> jest -> smoke -> eslint
const testSteps = project.testTask.steps;
const afterBundle = testSteps.findIndex((step) => step.spawn === project.bundler.bundleTask.name) + 1;
project.testTask.insertStep(afterBundle,
  { spawn: project.compileTask.name, condition: `node -e "${jsiiIsStale}"` },
  { spawn: rosettaExtract.name },
  { spawn: bindings.name },
);
const eslintStep = project.testTask.steps.findIndex((step) => step.spawn === 'eslint');
project.testTask.insertStep(eslintStep < 0 ? project.testTask.steps.length : eslintStep, { spawn: smoke.name });

// ---------------------------------------------------------------------------
// Benchmark of a whole run as it deploys: the synthesized workflow (aws-local-stepfunctions) with
// the worker that ships (the esbuild bundle) against the EC2 simulator, time-compressed.
const bench = project.addTask('bench', {
  description: 'Run the synthesized workflow with the bundled worker against the EC2 simulator at fleet scale; the last line is a JSON summary',
});
bench.spawn(project.bundler.bundleTask);
bench.exec('ts-node --transpile-only --project test/tsconfig.json bench/bench.ts');

project.synth();
