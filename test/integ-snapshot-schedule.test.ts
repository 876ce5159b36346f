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
  const { app, stack, request } = buildIntegApp(new App());
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

  test('invokes the handler with what the schedule would send for one run', () => {
    const [schedule] = Object.values(Template.fromStack(stack).findResources('AWS::Scheduler::Schedule'));
    const input = JSON.parse(schedule.Properties.Target.Input);
    expect(input.executionId).toEqual('<aws.scheduler.execution-id>');
    expect(input.scheduledTime).toEqual('<aws.scheduler.scheduled-time>');
    expect(request).toEqual({ ...input, executionId: EXECUTION_ID, scheduledTime: SCHEDULED_TIME });
  });
});
