/**
 * Synthesizes the integration test (test/integ.snapshot-schedule.ts) offline and compares both
 * stacks (the test case and the assertions) with committed snapshots, so CI catches an integration
 * test that no longer synthesizes or that changed, without an AWS account.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { buildIntegApp, EXECUTION_ID, SCHEDULED_TIME } from './integ.snapshot-schedule';

/** integ-tests puts `salt: Date.now()` on its custom resources so that they run on every deploy. */
function withoutSalt(value: any): any {
  if (Array.isArray(value)) return value.map(withoutSalt);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, k === 'salt' ? '[SALT]' : withoutSalt(v)]));
  }
  return value;
}

describe('integration test app', () => {
  const { app, stack, execution } = buildIntegApp(new App());
  const stacks = app.node.findAll().filter(Stack.isStack);

  test('has the test case stack and the assertions stack', () => {
    expect(stacks.map((s) => s.node.path)).toEqual([
      'SnapshotScheduleInteg',
      'SnapshotScheduleIntegTest/DefaultTest/DeployAssert',
    ]);
  });

  test.each(stacks.map((s) => [s.node.path, s] as const))('%s matches the snapshot', (_path, s) => {
    expect(withoutSalt(Template.fromStack(s).toJSON())).toMatchSnapshot();
  });

  test('GIVEN the integration test WHEN it starts the workflow THEN it sends what the schedule would send for one run', () => {
    const template = Template.fromStack(stack);
    const [target] = Object.values(template.findResources('AWS::Scheduler::Schedule')).map((r) => r.Properties.Target);
    const [stateMachineId] = Object.keys(template.findResources('AWS::StepFunctions::StateMachine'));
    // the target input with the state machine's ARN as a reference and the context attributes filled in
    const parts: any[] = target.Input['Fn::Join'][1];
    expect(parts[1]).toEqual({ Ref: stateMachineId });
    const fill = (text: string) => text
      .replace(/<aws\.scheduler\.execution-id>/g, EXECUTION_ID)
      .replace(/<aws\.scheduler\.scheduled-time>/g, SCHEDULED_TIME);
    const scheduled = JSON.parse(fill(`${parts[0]}STATE MACHINE${parts[2]}`));
    expect(scheduled.StateMachineArn).toBe('STATE MACHINE');
    expect(execution.name).toBe(scheduled.Name);
    expect(execution.input).toEqual(JSON.parse(scheduled.Input));
  });

  test('GIVEN the assertions stack WHEN synthesized THEN it starts the schedule\'s state machine with that name and input', () => {
    const assertions = stacks.find((s) => s !== stack)!;
    const [start] = Object.values(Template.fromStack(assertions).findResources('Custom::DeployAssert@SdkCallSFNStartExecution'));
    // integ-tests sends each parameter as JSON text
    expect(start.Properties.parameters.stateMachineArn).toEqual({
      'Fn::Join': ['', ['"', { 'Fn::ImportValue': expect.stringMatching(/^SnapshotScheduleInteg:ExportsOutputRefNightlyWorkflow/) }, '"']],
    });
    expect(JSON.parse(start.Properties.parameters.name)).toBe(execution.name);
    expect(JSON.parse(JSON.parse(start.Properties.parameters.input))).toEqual(execution.input);
  });
});
