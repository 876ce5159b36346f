/**
 * Disaster recovery end to end: the synthesized workflow of a schedule with `copies` and `vault`
 * runs against the simulator (two accounts, several Regions); the events it puts on the vault's
 * bus (a mocked EventBridge client) are handed to the vault's worker, which copies the shared sets
 * into the vault account. A set made in one Region ends up, complete and tagged, in the copy
 * Region and in the vault.
 */
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { copySharedSet, SharedSetEvent } from '../lambda/vault';
import { CapturedLog, FAST_SETTINGS, FaultHarness, fleet } from './support/fault-harness';
import { synthesizeWorkflow, WorkflowHarness, WorkflowHarnessOptions } from './support/workflow-harness';
import { INSTANCE_ID_TAG, SCHEDULED_TIME_TAG, SOURCE_ACCOUNT_TAG, SOURCE_SNAPSHOT_TAG, VaultRequest } from '../src/private/request-contract';

jest.setTimeout(30_000);

const SCALE = 100;
const REGION = 'us-east-1';
const SOURCE_ACCOUNT = '123456789012';
const VAULT_ACCOUNT = '999988887777';
const VAULT_KEY = { accessKeyId: 'AKIDVAULT', secretAccessKey: 'vault-secret' };
const BUS = `arn:aws:events:${REGION}:${VAULT_ACCOUNT}:event-bus/cdk-instance-snapshots-vault`;
const SCHEDULED_TIME = '2026-11-24T02:30:00Z';
const bus = mockClient(EventBridgeClient);

let faults: FaultHarness | undefined;
let harness: WorkflowHarness | undefined;

afterEach(async () => {
  harness?.dispose();
  await faults?.stop();
  harness = undefined;
  faults = undefined;
});

test('GIVEN a schedule with a copy Region and a vault WHEN the occurrence runs and the vault handles its events THEN every snapshot exists in both, tagged with its set', async () => {
  bus.reset();
  bus.on(PutEventsCommand).callsFake((input) => Promise.resolve({ Entries: input.Entries.map((_: unknown, k: number) => ({ EventId: `e-${k}` })) }));
  const instances = fleet(4, { volumes: 2 });
  faults = await new FaultHarness({
    instances, region: REGION, accountId: SOURCE_ACCOUNT, accounts: { [VAULT_KEY.accessKeyId]: VAULT_ACCOUNT }, perVolumeIntervalMs: 150,
  }).start();
  const options: WorkflowHarnessOptions = {
    settings: { ...FAST_SETTINGS, concurrency: 4, settleWindowMs: 900, lookIntervalMs: 100, perVolumeRetryDelayMs: 160, stepBudgetMs: 60_000 },
    recoveryWaitMs: 120_000 / SCALE,
    retryPassWaitMs: 300_000 / SCALE,
    clients: { createSnapshotsPerSec: 5 * SCALE, createSnapshotsBurst: 100 },
    eventBridge: new EventBridgeClient({ region: REGION }),
  };
  harness = new WorkflowHarness(synthesizeWorkflow({ copies: [{ region: 'eu-west-1' }], vault: { account: VAULT_ACCOUNT, eventBusArn: BUS } }), faults, options);

  const result = await harness.run({ scheduledTime: SCHEDULED_TIME, schedulerExecutionId: 'exec-1' });

  expect(result.error).toBeUndefined();
  expect(result.output).toMatchObject({ result: 'succeeded', copies: [{ region: 'eu-west-1', copied: 8 }], shared: { shared: 4, failed: 0 } });
  const sources = faults.sim.snapshots.filter((s) => s.tags[SCHEDULED_TIME_TAG] === SCHEDULED_TIME);
  expect(sources).toHaveLength(8);

  // The vault's bus delivers the events to the vault's worker (EventBridge sets account and region).
  const vault: VaultRequest = { version: 1, vaultId: 'Vault/Main', sourceAccounts: [SOURCE_ACCOUNT] };
  const vaultClients = faults.clientsFor({ config: { credentials: VAULT_KEY } });
  const entries = bus.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries ?? []);
  expect(entries).toHaveLength(4);
  for (const entry of entries) {
    const event: SharedSetEvent = { 'source': entry.Source!, 'detail-type': entry.DetailType!, 'account': SOURCE_ACCOUNT, 'region': REGION, 'detail': JSON.parse(entry.Detail!) };
    const report = await copySharedSet(event, vault, {
      ec2: vaultClients.ec2, ec2Copy: vaultClients.ec2Create, ec2Delete: vaultClients.ec2Delete, log: new CapturedLog(), count: () => undefined,
    });
    expect(report).toMatchObject({ status: 'copied', copied: 2 });
  }

  for (const [where, copies] of [['eu-west-1', faults.sim.snapshotsIn('eu-west-1')], ['vault', faults.sim.snapshotsOf(VAULT_ACCOUNT, REGION)]] as const) {
    const bySource = new Map(copies.map((c) => [c.tags[SOURCE_SNAPSHOT_TAG], c]));
    expect([where, copies.length]).toEqual([where, 8]);
    for (const s of sources) {
      const copy = bySource.get(s.snapshotId)!;
      expect(copy.tags).toMatchObject({ [SCHEDULED_TIME_TAG]: SCHEDULED_TIME, [INSTANCE_ID_TAG]: s.instanceId });
    }
  }
  expect(faults.sim.snapshotsOf(VAULT_ACCOUNT, REGION).every((c) => c.tags[SOURCE_ACCOUNT_TAG] === SOURCE_ACCOUNT)).toBe(true);
});
