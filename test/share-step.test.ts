/**
 * Sharing the run's sets with a vault account (the copy phase with `vault`): the real EC2 SDK
 * against the simulator for the shares, a mocked EventBridge client for the vault's bus.
 */
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { CopyEnvironment, runCopyStep } from '../lambda/copy-step';
import { newCopyProgress, newCursor, parseCursor, RunCursor } from '../lambda/ledger';
import { SimInstance } from './support/ec2-simulator';
import { CapturedLog, FaultHarness, fleet, runRequest } from './support/fault-harness';
import { INSTANCE_ID_TAG, parseOccurrence, parseSharedSetDetail, SCHEDULE_TAG, SCHEDULED_TIME_TAG, VAULT_EVENT } from '../src/private/request-contract';

const SOURCE = 'us-east-1';
const VAULT_ACCOUNT = '999988887777';
const BUS = `arn:aws:events:${SOURCE}:${VAULT_ACCOUNT}:event-bus/cdk-instance-snapshots-vault`;
const SCHEDULED_TIME = '2026-11-24T02:30:00Z';
const REQUEST = runRequest({ vault: { account: VAULT_ACCOUNT, eventBusArn: BUS } });
const OCCURRENCE = parseOccurrence(REQUEST.scheduleId, { scheduledTime: SCHEDULED_TIME }, 'exec-0001');
const bus = mockClient(EventBridgeClient);

let faults: FaultHarness | undefined;

beforeEach(() => {
  bus.reset();
  bus.on(PutEventsCommand).callsFake((input) => Promise.resolve({ FailedEntryCount: 0, Entries: input.Entries.map((_: unknown, k: number) => ({ EventId: `e-${k}` })) }));
});

afterEach(async () => {
  await faults?.stop();
  faults = undefined;
});

async function setUp(instances: SimInstance[], state: 'completed' | 'pending' = 'completed', extra: Record<string, unknown> = {}): Promise<FaultHarness> {
  faults = await new FaultHarness({ instances, region: SOURCE }).start();
  faults.sim.seedSnapshots(instances.flatMap((i) => i.volumeIds.map((volumeId) => ({
    volumeId,
    instanceId: i.instanceId,
    startTimeMs: Date.parse(SCHEDULED_TIME) + 1_000,
    state,
    ...extra,
    tags: { [SCHEDULE_TAG]: REQUEST.scheduleId, [SCHEDULED_TIME_TAG]: SCHEDULED_TIME, [INSTANCE_ID_TAG]: i.instanceId },
  }))));
  return faults;
}

async function step(h: FaultHarness, cursor: RunCursor = { ...newCursor(Date.now()), phase: 'copy', copy: newCopyProgress([], true) }) {
  const log = new CapturedLog();
  const env: CopyEnvironment = {
    ec2: h.clientsFor().ec2,
    sourceRegion: SOURCE,
    regionClients: () => { throw new Error('no copy rule'); },
    events: new EventBridgeClient({ region: SOURCE }),
    log,
    stepBudgetMs: 60_000,
    reserveMs: 0,
    remainingMs: () => 900_000,
  };
  const next = await runCopyStep(REQUEST, OCCURRENCE, parseCursor(JSON.parse(JSON.stringify(cursor))), env);
  return { cursor: parseCursor(JSON.parse(JSON.stringify(next))), lines: log.lines };
}

const events = () => bus.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries ?? []);

test('GIVEN completed sets WHEN the step shares them THEN each snapshot is shared with the vault account and one event per set names it', async () => {
  const instances = fleet(3, { volumes: 2 });
  const h = await setUp(instances);

  const { cursor } = await step(h);

  for (const s of h.sim.snapshots) expect(h.sim.sharedWith(s.snapshotId)).toEqual([VAULT_ACCOUNT]);
  expect(events()).toHaveLength(3);
  for (const e of events()) {
    expect(e).toMatchObject({ EventBusName: BUS, Source: VAULT_EVENT.source, DetailType: VAULT_EVENT.detailType });
    const detail = parseSharedSetDetail(JSON.parse(e.Detail!));
    const own = h.sim.snapshots.filter((s) => s.instanceId === detail.instanceId).map((s) => s.snapshotId).sort();
    expect(detail).toMatchObject({ scheduleId: REQUEST.scheduleId, scheduledTime: SCHEDULED_TIME });
    expect(detail.snapshots.map((s) => s.snapshotId)).toEqual(own);
  }
  expect(cursor.phase).toBe('done');
  expect(cursor.result).toBe('succeeded');
  expect(cursor.summary!.shared).toEqual({ shared: 3, failed: 0, waiting: 0 });
  // Without copy rules the step lists nothing but the occurrence's sets: no instances, one DescribeSnapshots.
  expect(h.sim.countCalls('DescribeInstances')).toBe(0);
  expect(h.sim.countCalls('DescribeSnapshots')).toBe(1);
});

test('GIVEN sets still pending WHEN the step runs THEN nothing is shared or announced, and the run waits', async () => {
  const h = await setUp(fleet(2, { volumes: 1 }), 'pending');

  const { cursor } = await step(h);

  expect(events()).toEqual([]);
  expect(h.sim.snapshots.every((s) => h.sim.sharedWith(s.snapshotId).length === 0)).toBe(true);
  expect(cursor.phase).toBe('copy-wait');
  expect(cursor.copy!.share).toMatchObject({ done: false, waiting: 2 });

  for (const s of h.sim.snapshots) h.sim.setSnapshotState(s.snapshotId, 'completed');
  const second = await step(h, cursor);
  expect(events()).toHaveLength(2);
  expect(second.cursor.phase).toBe('done');
});

test('GIVEN the bus throttles one entry and refuses another WHEN the step runs THEN the throttled set is sent again next step, the refused one is reported', async () => {
  const instances = fleet(3, { volumes: 1 });
  const h = await setUp(instances);
  // The second instance's event is throttled once; the third's is refused every time.
  let throttled = false;
  bus.on(PutEventsCommand).callsFake((input) => Promise.resolve({
    Entries: input.Entries.map((e: { Detail: string }) => {
      const id = parseSharedSetDetail(JSON.parse(e.Detail)).instanceId;
      if (id === instances[1].instanceId && !throttled) { throttled = true; return { ErrorCode: 'ThrottlingException', ErrorMessage: 'slow down' }; }
      if (id === instances[2].instanceId) return { ErrorCode: 'AccessDeniedException', ErrorMessage: 'not allowed' };
      return { EventId: id };
    }),
  }));

  const first = await step(h);
  expect(first.cursor.phase).toBe('copy-wait');
  // Counted when the position passes them: the third instance waits behind the second.
  expect(first.cursor.copy!.share).toMatchObject({ shared: 1, failed: 0, done: false, after: instances[0].instanceId });

  const second = await step(h, first.cursor);
  const sent = events().map((e) => parseSharedSetDetail(JSON.parse(e.Detail!)).instanceId);
  expect(sent).toEqual([instances[0].instanceId, instances[1].instanceId, instances[2].instanceId, instances[1].instanceId, instances[2].instanceId]);
  expect(second.cursor.result).toBe('failed');
  expect(second.cursor.copy!.share).toMatchObject({ shared: 2, failed: 1, done: true });
  expect(second.cursor.failures).toEqual([expect.objectContaining({ instanceId: instances[2].instanceId, outcome: 'share-failed', code: 'AccessDeniedException' })]);
});

test('GIVEN a set encrypted with the AWS managed key WHEN the step shares it THEN EC2\'s refusal is reported, no event is sent, and the run fails', async () => {
  const h = await setUp(fleet(1, { volumes: 1 }), 'completed', { encrypted: true });

  const { cursor } = await step(h);

  expect(events()).toEqual([]);
  expect(cursor.result).toBe('failed');
  expect(cursor.failures[0]).toMatchObject({ outcome: 'share-failed' });
  expect(cursor.copy!.share).toMatchObject({ failed: 1, done: true });
});
