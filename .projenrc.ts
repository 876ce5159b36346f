import { awscdk, javascript } from 'projen';

const project = new awscdk.AwsCdkConstructLibrary({
  name: 'cdk-instance-snapshots',
  description:
    'Crash-consistent EBS snapshot sets of tagged EC2 instances on an EventBridge Scheduler schedule: exact tag selection, time zones, safe retries, least-privilege IAM.',
  keywords: ['cdk', 'awscdk', 'aws-cdk', 'ebs', 'ec2', 'snapshots', 'backup', 'eventbridge-scheduler'],
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
  constructsVersion: '10.5.0',
  jsiiVersion: '~6.0.0',
  typescriptVersion: '~6.0.3',
  minNodeVersion: '20.16.0',
  workflowNodeVersion: '24.x',

  // The handler lives in lambda/ and is bundled explicitly below; nothing in src/ to discover.
  lambdaAutoDiscover: false,

  devDeps: [
    '@aws-sdk/client-ec2',
    '@aws-sdk/client-lambda',
    '@aws-lambda-powertools/logger',
    '@aws-lambda-powertools/metrics',
    '@smithy/core',
    '@smithy/types',
    '@types/aws-lambda',
    'aws-sdk-client-mock',
    'aws-sdk-client-mock-jest',
  ],

  jestOptions: {
    // `projen test` never rewrites snapshots; `projen test:update` does, on purpose.
    updateSnapshot: javascript.UpdateSnapshot.NEVER,
    jestConfig: {
      snapshotSerializers: ['<rootDir>/test/support/asset-hash-serializer.ts'],
      testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/support/'],
    },
  },
  typecheckTests: true,

  gitignore: ['/cdk.out*/', '/.bindings/'],
  npmignoreEnabled: true,
});

// ---------------------------------------------------------------------------
// Handler bundle: lambda/ -> assets/lambda/snapshot-handler/index.js (shipped in the npm package,
// git-ignored, rebuilt before compile and before tests).
project.bundler.addBundle('lambda/snapshot-handler.ts', {
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

project.synth();
