// A consumer's CDK app in plain JavaScript, run by test/smoke/smoke.ts inside a fresh folder where
// only the packed cdk-instance-snapshots tarball, aws-cdk-lib and constructs are installed.
//
//   node consumer-app.js <outdir>
const { App, Stack } = require('aws-cdk-lib');
const { InstanceSnapshotSchedule } = require('cdk-instance-snapshots');

const app = new App({ outdir: process.argv[2] });
const stack = new Stack(app, 'SmokeStack');
new InstanceSnapshotSchedule(stack, 'Nightly', { instanceTags: { Backup: ['nightly'] } });
app.synth();

console.log(JSON.stringify({ resolved: require.resolve('cdk-instance-snapshots') }));
