/**
 * runCopyStep on the real EC2 SDK against the EC2 simulator (every Region at one endpoint), and
 * the CopySnapshot request it builds: room under EC2's limit of copies in progress, refusals,
 * failed sources, the wait limit, and what each copy carries.
 */
import { buildCopySnapshotInput, COPY_WAIT_LIMIT_MS, CopyEnvironment, runCopyStep } from '../lambda/copy-step';
import { newCopyProgress, newCursor, parseCursor, RunCursor } from '../lambda/ledger';
import { SimInstance } from './support/ec2-simulator';
import { CapturedLog, FaultHarness, fleet, runRequest } from './support/fault-harness';
import { CopyRuleSpec, INSTANCE_ID_TAG, parseOccurrence, SCHEDULE_TAG, SCHEDULED_TIME_TAG, SOURCE_REGION_TAG, SOURCE_SNAPSHOT_TAG } from '../src/private/request-contract';

const SOURCE = 'us-east-1';
const SCHEDULED_TIME = '2026-11-24T02:30:00Z';
const RULE: CopyRuleSpec = { region: 'eu-west-1', copyTags: true };
const REQUEST = runRequest({ copies: [RULE] });
const OCCURRENCE = parseOccurrence(REQUEST.scheduleId, { scheduledTime: SCHEDULED_TIME }, 'exec-0001');

let faults: FaultHarness | undefined;

afterEach(async () => {
  await faults?.stop();
  faults = undefined;
});

/** A simulator with one set of the occurrence per instance (state as given). */
async function setUp(instances: SimInstance[], options: Record<string, unknown> = {}, state: 'completed' | 'pending' | 'error' = 'completed'): Promise<FaultHarness> {
  faults = await new FaultHarness({ instances, region: SOURCE, ...options }).start();
  faults.sim.seedSnapshots(instances.flatMap((i) => i.volumeIds.map((volumeId) => ({
    volumeId,
    instanceId: i.instanceId,
    startTimeMs: Date.parse(SCHEDULED_TIME) + 1_000,
    state,
    tags: { [SCHEDULE_TAG]: REQUEST.scheduleId, [SCHEDULED_TIME_TAG]: SCHEDULED_TIME, [INSTANCE_ID_TAG]: i.instanceId, 'Team': 'db', 'aws:cloudformation:stack-name': 'x' },
  }))));
  return faults;
}

function environment(h: FaultHarness, overrides: Partial<CopyEnvironment> = {}): CopyEnvironment & { log: CapturedLog } {
  return {
    ec2: h.clientsFor().ec2,
    sourceRegion: SOURCE,
    regionClients: (region: string) => {
      const c = h.clientsFor({ config: { region } });
      return { ec2: c.ec2, ec2Copy: c.ec2Create, ec2Delete: c.ec2Delete };
    },
    log: new CapturedLog(),
    stepBudgetMs: 60_000,
    reserveMs: 0,
    remainingMs: () => 900_000,
    ...overrides,
  } as CopyEnvironment & { log: CapturedLog };
}

function copyCursor(startedAtMs = Date.now()): RunCursor {
  return { ...newCursor(startedAtMs), phase: 'copy', copy: newCopyProgress(['eu-west-1']) };
}

async function step(h: FaultHarness, cursor = copyCursor(), request = REQUEST, overrides: Partial<CopyEnvironment> = {}) {
  const env = environment(h, overrides);
  const next = await runCopyStep(request, OCCURRENCE, parseCursor(JSON.parse(JSON.stringify(cursor))), env);
  return { cursor: parseCursor(JSON.parse(JSON.stringify(next))), lines: env.log.lines };
}

test('GIVEN 30 snapshots to copy and EC2\'s limit of 20 in progress WHEN one step runs THEN it starts 20, and the next step the other 10 once some finished', async () => {
  const h = await setUp(fleet(30, { volumes: 1 }), { copyCompletionMs: 60_000 });

  const first = await step(h);
  expect(h.sim.countCalls('CopySnapshot')).toBe(20);
  expect(first.cursor.phase).toBe('copy-wait');
  expect(first.cursor.copy!.regions[0]).toMatchObject({ copied: 20, done: false });

  // Half of them complete; the next step has room for 10.
  for (const c of h.sim.snapshotsIn('eu-west-1').slice(0, 10)) h.sim.setSnapshotState(c.snapshotId, 'completed');
  const second = await step(h, first.cursor);
  expect(h.sim.countCalls('CopySnapshot')).toBe(30);
  expect(h.sim.calls.filter((c) => c.errorCode)).toEqual([]);
  expect(second.cursor.copy!.regions[0]).toMatchObject({ copied: 30, done: false, inProgress: 20 });
});

test('GIVEN every copy complete WHEN the step runs THEN the Region is done and the run ends succeeded', async () => {
  const h = await setUp(fleet(4, { volumes: 2 }));

  const first = await step(h);
  const second = await step(h, first.cursor);

  expect(second.cursor.phase).toBe('done');
  expect(second.cursor.result).toBe('succeeded');
  expect(second.cursor.summary!.copies).toEqual([{ region: 'eu-west-1', copied: 8, failed: 0, deleted: 0, inProgress: 0, overdue: 0, waiting: 0 }]);
  expect(h.sim.countCalls('CopySnapshot')).toBe(8);
});

test('GIVEN a source snapshot in error WHEN its instance is settled THEN the set is reported once as not copyable and the run fails', async () => {
  const h = await setUp(fleet(2, { volumes: 1 }));
  const failedSource = h.sim.snapshots[0];
  h.sim.setSnapshotState(failedSource.snapshotId, 'error');

  const first = await step(h);
  const second = await step(h, first.cursor);

  expect(second.cursor.result).toBe('failed');
  expect(second.cursor.failures).toEqual([expect.objectContaining({ instanceId: failedSource.instanceId, outcome: 'copy-failed', code: 'SourceSnapshotFailed' })]);
  expect(second.cursor.copy!.regions[0].failed).toBe(1);
});

test('GIVEN CopySnapshot refused (not authorized) THEN the Region is given up for the run after the first refusal, reported with its code, and the run fails', async () => {
  const h = await setUp(fleet(3, { volumes: 1 }));
  h.sim.addFault(({ action }) => (action === 'CopySnapshot' ? { status: 403, code: 'UnauthorizedOperation', message: 'not authorized' } : undefined));

  const first = await step(h);

  expect(h.sim.countCalls('CopySnapshot')).toBe(1);
  expect(first.cursor.failuresByCode).toEqual({ UnauthorizedOperation: 1 });
  expect(first.cursor.copy!.regions[0]).toMatchObject({ failed: 1, done: true });
  expect(first.cursor.phase).toBe('done');
  expect(first.cursor.result).toBe('failed');
});

test('GIVEN ResourceLimitExceeded (other copies in the account) THEN the step starts nothing more in that Region and waits', async () => {
  const h = await setUp(fleet(5, { volumes: 1 }));
  h.sim.addFault(({ action, actionIndex }) => (action === 'CopySnapshot' && actionIndex === 1
    ? { status: 400, code: 'ResourceLimitExceeded', message: 'You have reached the limit of concurrent snapshot copies' } : undefined));

  const first = await step(h);

  expect(h.sim.countCalls('CopySnapshot')).toBe(2);
  expect(first.cursor.phase).toBe('copy-wait');
  expect(first.cursor.failures).toEqual([]);
});

test('GIVEN copies still waiting when the run has waited its limit THEN they are reported as not finished and the run ends failed', async () => {
  const h = await setUp(fleet(3, { volumes: 1 }), {}, 'pending');

  const { cursor } = await step(h, copyCursor(Date.now() - COPY_WAIT_LIMIT_MS - 1));

  expect(cursor.phase).toBe('done');
  expect(cursor.result).toBe('failed');
  expect(cursor.failuresByCode).toEqual({ CopiesNotFinished: 1 });
  expect(h.sim.countCalls('CopySnapshot')).toBe(0);
});

describe('the CopySnapshot request', () => {
  const job = { instanceId: 'i-0123456789abcdef0', scheduledTime: SCHEDULED_TIME, sourceSnapshotId: 'snap-0123456789abcdef0', volumeId: 'vol-1' };
  const sourceTags = [
    { Key: 'Team', Value: 'db' },
    { Key: SCHEDULE_TAG, Value: 'forged' },
    { Key: 'aws:backup:source-resource', Value: 'x' },
  ];

  test('GIVEN copyTags THEN the source\'s own tags go, never its library or aws: tags, and the identity and source tags are the library\'s', () => {
    const input = buildCopySnapshotInput(REQUEST, RULE, SOURCE, job, sourceTags, 'exec-0001');

    expect(input).toMatchObject({ SourceRegion: SOURCE, SourceSnapshotId: job.sourceSnapshotId });
    expect(input.TagSpecifications![0].Tags).toEqual([
      { Key: 'Team', Value: 'db' },
      { Key: SCHEDULE_TAG, Value: REQUEST.scheduleId },
      { Key: SCHEDULED_TIME_TAG, Value: SCHEDULED_TIME },
      { Key: INSTANCE_ID_TAG, Value: job.instanceId },
      { Key: 'cdk-instance-snapshots:execution-id', Value: 'exec-0001' },
      { Key: SOURCE_SNAPSHOT_TAG, Value: job.sourceSnapshotId },
      { Key: SOURCE_REGION_TAG, Value: SOURCE },
    ]);
    expect(input).not.toHaveProperty('Encrypted');
    expect(input).not.toHaveProperty('CompletionDurationMinutes');
  });

  test('GIVEN no copyTags, a key and a completion duration THEN only the library\'s tags, encryption with that key, and time-based copy', () => {
    const rule = { region: 'eu-west-1', copyTags: false, kmsKeyArn: 'arn:aws:kms:eu-west-1:123456789012:key/abc', completionDurationMinutes: 60 };

    const input = buildCopySnapshotInput(REQUEST, rule, SOURCE, job, sourceTags, 'exec-0001');

    expect(input.TagSpecifications![0].Tags!.map((t) => t.Key)).not.toContain('Team');
    expect(input).toMatchObject({ Encrypted: true, KmsKeyId: rule.kmsKeyArn, CompletionDurationMinutes: 60 });
  });
});

test('GIVEN copies in the destination of an instance terminated long ago WHEN the Region is done THEN its copies go by the retention\'s gone-instance rule', async () => {
  const h = await setUp(fleet(1, { volumes: 1 }));
  const goneSince = Date.parse(SCHEDULED_TIME) - 100 * 86_400_000;
  h.sim.seedSnapshots([{
    region: 'eu-west-1',
    volumeId: 'vol-gone',
    instanceId: 'i-0ffffffffffffffff',
    startTimeMs: goneSince,
    state: 'completed',
    tags: {
      [SCHEDULE_TAG]: REQUEST.scheduleId,
      [SCHEDULED_TIME_TAG]: new Date(goneSince).toISOString().replace('.000Z', 'Z'),
      [INSTANCE_ID_TAG]: 'i-0ffffffffffffffff',
      [SOURCE_SNAPSHOT_TAG]: 'snap-0000000000000gone',
      [SOURCE_REGION_TAG]: SOURCE,
    },
  }]);
  const rule = { ...RULE, retention: { count: 3, timeZone: 'Etc/UTC', goneInstanceSeconds: 30 * 86_400 } };
  const request = runRequest({ copies: [rule] });

  const first = await step(h, copyCursor(), request);
  const second = await step(h, first.cursor, request);

  expect(second.cursor.phase).toBe('done');
  expect(h.sim.deletionsIn('eu-west-1').map((d) => d.snapshot.instanceId)).toEqual(['i-0ffffffffffffffff']);
  expect(second.cursor.copy!.regions[0].deleted).toBe(1);
});
