import { FaultHarness, fleet, ids, FAST_SETTINGS } from './support/fault-harness';
import { synthesizeWorkflow, WorkflowHarness } from './support/workflow-harness';
import { SCHEDULED_TIME_TAG } from '../src/private/request-contract';

const SETTINGS = { ...FAST_SETTINGS, settleWindowMs: 200, lookIntervalMs: 20, stepBudgetMs: 60_000 };

describe('a scheduled run through the synthesized workflow', () => {
  let faults: FaultHarness;
  let harness: WorkflowHarness;
  afterEach(async () => { harness?.dispose(); await faults?.stop(); });

  test('GIVEN 30 tagged instances WHEN the schedule fires THEN each gets one set and the execution succeeds with the summary', async () => {
    const instances = fleet(30);
    faults = await new FaultHarness({ instances: [...instances, { instanceId: 'i-0ffffffffffffffff', tags: { Backup: 'weekly' }, volumeIds: ['vol-0ffffffffffffffff'] }] }).start();
    harness = new WorkflowHarness(synthesizeWorkflow(), faults, { settings: SETTINGS, recoveryWaitMs: 10, retryPassWaitMs: 10 });
    const result = await harness.run({ scheduledTime: '2026-11-24T02:30:00Z', schedulerExecutionId: 'd32c5kddcf5bb8c3' });
    expect(result.error).toBeUndefined();
    expect(result.output).toMatchObject({ result: 'succeeded', scheduledTime: '2026-11-24T02:30:00Z', executionName: 'd32c5kddcf5bb8c3' });
    expect(result.output.counts).toMatchObject({ selected: 30, created: 30, failed: 0, notAttempted: 0 });
    const sets = faults.sim.setsByInstance();
    expect([...sets.keys()].sort()).toEqual(ids(instances).sort());
    expect([...sets.values()].every((s) => s.length === 1 && s[0][0].tags[SCHEDULED_TIME_TAG] === '2026-11-24T02:30:00Z')).toBe(true);
  });
});
