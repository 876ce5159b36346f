// A consumer's CDK app in plain JavaScript, run by test/smoke/smoke.ts inside a fresh folder where
// only the packed cdk-instance-snapshots tarball, aws-cdk-lib and constructs are installed.
//
//   node consumer-app.js <outdir>
//
// Synthesizes one schedule, checks that the stack holds its state machine, its worker and what
// reports its failures (topic, rules, alarms), and prints one JSON line: where the package resolved
// from and the logical ids it found.
const { App, Stack } = require('aws-cdk-lib');
const { InstanceSnapshotSchedule } = require('cdk-instance-snapshots');

const app = new App({ outdir: process.argv[2] });
const stack = new Stack(app, 'SmokeStack');
const schedule = new InstanceSnapshotSchedule(stack, 'Nightly', { instanceTags: { Backup: ['nightly'] } });
const assembly = app.synth();

const resources = assembly.getStackByName('SmokeStack').template.Resources;
const logicalIdOf = (construct) => stack.resolve(construct.node.defaultChild.logicalId);
const expected = {
  stateMachine: ['AWS::StepFunctions::StateMachine', logicalIdOf(schedule.stateMachine)],
  worker: ['AWS::Lambda::Function', logicalIdOf(schedule.worker)],
  schedule: ['AWS::Scheduler::Schedule', logicalIdOf(schedule.schedule)],
  notificationTopic: ['AWS::SNS::Topic', logicalIdOf(schedule.notificationTopic)],
  deadLetterQueue: ['AWS::SQS::Queue', logicalIdOf(schedule.deadLetterQueue)],
  runFailedRule: ['AWS::Events::Rule', logicalIdOf(schedule.runFailedRule)],
  snapshotSetFailedRule: ['AWS::Events::Rule', logicalIdOf(schedule.snapshotSetFailedRule)],
  instancesFailedAlarm: ['AWS::CloudWatch::Alarm', logicalIdOf(schedule.instancesFailedAlarm)],
  heartbeatAlarm: ['AWS::CloudWatch::Alarm', logicalIdOf(schedule.heartbeatAlarm)],
  deadLetterQueueAlarm: ['AWS::CloudWatch::Alarm', logicalIdOf(schedule.deadLetterQueueAlarm)],
};
const problems = Object.entries(expected)
  .filter(([, [type, id]]) => resources[id]?.Type !== type)
  .map(([name, [type, id]]) => `${name}: expected ${type} ${id} in the template, got: ${JSON.stringify(resources[id]?.Type)}`);
const stateMachine = resources[expected.stateMachine[1]];
if (stateMachine && !JSON.stringify(stateMachine.Properties.DefinitionString).includes(expected.worker[1])) {
  problems.push(`the state machine does not call the worker ${expected.worker[1]}`);
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}

console.log(JSON.stringify({
  resolved: require.resolve('cdk-instance-snapshots'),
  stateMachine: expected.stateMachine[1],
  worker: expected.worker[1],
}));
