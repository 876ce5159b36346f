/**
 * The README's main job: an app with a stack that uses InstanceSnapshotSchedule. Synthesizes it
 * to cdk.out.example/ and prints what `cdk deploy` would create: the resources (per schedule and
 * shared), the schedules with their time zones, where each schedule's failures are notified
 * (alarms and rules), each worker's permissions with their conditions, and the workflow's states in
 * the order a run meets them.
 *
 *   npx projen example
 */
import * as path from 'path';
import { App, CfnElement, CfnResource, Duration, Stack, TimeZone } from 'aws-cdk-lib';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import { CopyTagsFromSource, InstanceSnapshotSchedule, Retention, SnapshotLock } from '../src';

const app = new App({ outdir: path.join(__dirname, '..', 'cdk.out.example') });
const stack = new Stack(app, 'InstanceSnapshotsExample', { env: { account: '123456789012', region: 'eu-central-1' } });

const schedules = [
  new InstanceSnapshotSchedule(stack, 'Nightly', {
    instanceTags: { Backup: ['nightly'] },
    schedule: scheduler.ScheduleExpression.cron({ hour: '2', minute: '30', timeZone: TimeZone.EUROPE_BERLIN }),
    excludeBootVolume: true,
    excludeDataVolumeIds: ['vol-0123456789abcdef0'],
    description: 'nightly crash-consistent set',
    snapshotTags: { CostCenter: '42' },
    copyTagsFromSource: CopyTagsFromSource.VOLUME,
    // The last two weeks, then one set a week for two months, counted in Berlin time.
    retention: Retention.calendar({ daily: 14, weekly: 8 }),
    lock: SnapshotLock.governance(Duration.days(7)),
    recycleBinRetention: Duration.days(7),
  }),
  // A second schedule in the same stack has its own worker, roles and workflow; it shares only
  // the occurrence lock table and the log group.
  new InstanceSnapshotSchedule(stack, 'Weekly', {
    instanceTags: { Backup: ['weekly', 'nightly'], Environment: ['prod'] },
    schedule: scheduler.ScheduleExpression.cron({ weekDay: 'SUN', hour: '4', minute: '0', timeZone: TimeZone.AMERICA_NEW_YORK }),
    retention: Retention.anyOf(Retention.count(4), Retention.age(Duration.days(90))),
    excludeInstanceTags: { Lifecycle: ['decommissioning'] },
  }),
];

const assembly = app.synth();
const artifact = assembly.getStackByName(stack.stackName);
const resources: Record<string, { Type: string; Properties?: any }> = artifact.template.Resources;
const logicalId = (element: CfnElement) => stack.getLogicalId(element);
const resourceOf = (construct: { node: { defaultChild?: unknown } }) => resources[logicalId(construct.node.defaultChild as CfnElement)];

/** A CloudFormation value as text: references as `${...}`. */
function text(value: any): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(text).join(', ');
  if (value['Fn::Join']) return value['Fn::Join'][1].map(text).join(value['Fn::Join'][0]);
  if (value.Ref) return `\${${value.Ref}}`;
  if (value['Fn::GetAtt']) return `\${${value['Fn::GetAtt'].join('.')}}`;
  return JSON.stringify(value);
}

/** The state names of a definition in the order a run meets them (depth first from StartAt). */
function statesInOrder(definition: any): string[] {
  const order: string[] = [];
  const visit = (name: string | undefined) => {
    if (!name || order.includes(name)) return;
    order.push(name);
    const state = definition.States[name];
    visit(state.Next);
    for (const choice of state.Choices ?? []) visit(choice.Next);
    visit(state.Default);
    for (const c of state.Catch ?? []) visit(c.Next);
  };
  visit(definition.StartAt);
  return order;
}

function describeState(name: string, state: any): string {
  const next = [
    ...(state.Choices ?? []).map((c: any) => `${c.Next} if ${c.Variable} ${Object.keys(c).find((k) => k !== 'Variable' && k !== 'Next')} ${JSON.stringify(Object.entries(c).find(([k]) => k !== 'Variable' && k !== 'Next')?.[1])}`),
    ...(state.Default ? [`${state.Default} otherwise`] : []),
    ...(state.Next ? [state.Next] : []),
    ...(state.Catch ?? []).map((c: any) => `${c.Next} on ${c.ErrorEquals.join('|')}`),
  ];
  const end = state.Type === 'Succeed' || state.Type === 'Fail' || state.End ? ' (end)' : '';
  return `${name.padEnd(20)} ${state.Type.padEnd(8)}${end}${next.length > 0 ? ` -> ${next.join('; ')}` : ''}`;
}

console.log(`Synthesized ${artifact.stackName} to ${path.relative(process.cwd(), artifact.templateFullPath)}: ${Object.keys(resources).length} resources`);

console.log('\nResources:');
for (const r of stack.node.findAll().filter(CfnResource.isCfnResource)) {
  const scope = r.node.path.slice(stack.node.path.length + 1).replace(/\/Resource$/, '');
  console.log(`  ${r.cfnResourceType.padEnd(34)} ${scope}`);
}

for (const schedule of schedules) {
  const props = resourceOf(schedule.schedule).Properties;
  console.log(`\nSchedule ${schedule.node.id} (snapshots tagged ${schedule.scheduleId}):`);
  console.log(`  when:      ${props.ScheduleExpression} in ${props.ScheduleExpressionTimezone ?? 'UTC'}, ${props.State.toLowerCase()}`);
  console.log(`  what:      ${props.Description}`);
  console.log(`  starts:    ${text(props.Target.Arn)} (retries ${props.Target.RetryPolicy.MaximumRetryAttempts} times within ${props.Target.RetryPolicy.MaximumEventAgeInSeconds / 3600} h)`);

  console.log('  failures go to:');
  for (const alarm of [schedule.instancesFailedAlarm, schedule.heartbeatAlarm, schedule.deadLetterQueueAlarm]) {
    if (!alarm) continue;
    const a = resourceOf(alarm).Properties;
    const what = a.Metrics ? a.Metrics.find((m: any) => m.Expression).Expression : `${a.Statistic} of ${a.MetricName}`;
    const period = a.Period ?? a.Metrics.find((m: any) => m.MetricStat).MetricStat.Period;
    console.log(`    ${alarm.node.id.padEnd(22)} alarm if ${what} ${a.ComparisonOperator} ${a.Threshold}`
      + ` (${a.DatapointsToAlarm ?? a.EvaluationPeriods} of ${a.EvaluationPeriods} x ${period} s, missing data ${a.TreatMissingData}) -> ${text(a.AlarmActions)}`);
  }
  for (const rule of [schedule.runFailedRule, schedule.snapshotSetFailedRule]) {
    const r = resourceOf(rule).Properties;
    console.log(`    ${rule.node.id.padEnd(22)} rule on ${r.EventPattern['detail-type'][0]} -> ${text(r.Targets[0].Arn)}`);
  }

  console.log('  worker may:');
  for (const policy of resourceOf(schedule.workerRole).Properties.Policies) {
    for (const st of policy.PolicyDocument.Statement) {
      console.log(`    ${(st.Sid ?? '').padEnd(38)} ${[st.Action].flat().join(', ')} on ${text(st.Resource)}`);
      for (const [operator, conditions] of Object.entries<Record<string, unknown>>(st.Condition ?? {})) {
        for (const [key, value] of Object.entries(conditions)) {
          console.log(`      if ${key} ${operator} ${[value].flat().map(text).join(' or ')}`);
        }
      }
    }
  }

  const definition = JSON.parse(text(resourceOf(schedule.stateMachine).Properties.DefinitionString));
  console.log('  workflow states, in the order a run meets them:');
  for (const name of statesInOrder(definition)) {
    console.log(`    ${describeState(name, definition.States[name])}`);
  }
}

const warnings = artifact.messages.filter((m) => m.level !== 'info');
if (warnings.length > 0) {
  console.log('\nWarnings:');
  for (const w of warnings) console.log(`  ${w.level}: ${w.entry.data}`);
  process.exitCode = 1;
}
