/**
 * The README's main job: an app with a stack that uses InstanceSnapshotSchedule. Synthesizes it
 * to cdk.out.example/ and prints what `cdk deploy` would create.
 *
 *   npx projen example
 */
import * as path from 'path';
import { App, Stack, TimeZone } from 'aws-cdk-lib';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import { CopyTagsFromSource, InstanceSnapshotSchedule } from '../src';

const app = new App({ outdir: path.join(__dirname, '..', 'cdk.out.example') });
const stack = new Stack(app, 'InstanceSnapshotsExample', { env: { account: '123456789012', region: 'eu-central-1' } });

new InstanceSnapshotSchedule(stack, 'Nightly', {
  instanceTags: { Backup: ['nightly'] },
  schedule: scheduler.ScheduleExpression.cron({ hour: '2', minute: '30', timeZone: TimeZone.EUROPE_BERLIN }),
  excludeBootVolume: true,
  excludeDataVolumeIds: ['vol-0123456789abcdef0'],
  description: 'nightly crash-consistent set',
  snapshotTags: { CostCenter: '42' },
  copyTagsFromSource: CopyTagsFromSource.VOLUME,
});

// A second schedule in the same stack shares the handler function.
new InstanceSnapshotSchedule(stack, 'Weekly', {
  instanceTags: { Backup: ['weekly', 'nightly'], Environment: ['prod'] },
  schedule: scheduler.ScheduleExpression.cron({ weekDay: 'SUN', hour: '4', minute: '0', timeZone: TimeZone.AMERICA_NEW_YORK }),
});

const assembly = app.synth();
const artifact = assembly.getStackByName(stack.stackName);
const resources: Record<string, { Type: string; Properties?: any }> = artifact.template.Resources;

console.log(`Synthesized ${artifact.stackName} to ${path.relative(process.cwd(), artifact.templateFullPath)}`);
console.log('\nResources:');
for (const [id, r] of Object.entries(resources)) {
  console.log(`  ${r.Type.padEnd(32)} ${id}`);
}
console.log('\nSchedules:');
for (const r of Object.values(resources).filter((x) => x.Type === 'AWS::Scheduler::Schedule')) {
  const input = JSON.parse(r.Properties.Target.Input);
  console.log(`  ${r.Properties.ScheduleExpression} ${r.Properties.ScheduleExpressionTimezone ?? 'UTC'} -> instances tagged ${JSON.stringify(input.instanceTags)}`);
}
console.log('\nHandler permissions:');
for (const r of Object.values(resources).filter((x) => x.Type === 'AWS::IAM::Policy')) {
  for (const st of r.Properties.PolicyDocument.Statement) {
    const actions = [st.Action].flat().join(', ');
    const conditions = st.Condition ? ` if ${JSON.stringify(st.Condition)}` : '';
    console.log(`  ${(st.Sid ?? '').padEnd(36)} ${actions}${conditions}`);
  }
}
const warnings = assembly.getStackByName(stack.stackName).messages.filter((m) => m.level !== 'info');
if (warnings.length > 0) {
  console.log('\nWarnings:');
  for (const w of warnings) console.log(`  ${w.level}: ${w.entry.data}`);
  process.exitCode = 1;
}
