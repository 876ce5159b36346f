/**
 * The simulator's additions for the fault tests and the benchmark: Lambda Invoke (the benchmark's
 * self-invoking runs; the worker no longer calls it), DescribeSnapshots lag, DescribeVolumes, and
 * call counting.
 */
import { CreateSnapshotsCommand, DescribeSnapshotsCommand, EC2Client, DescribeVolumesCommand, DescribeVolumesCommandInput, paginateDescribeVolumes, Volume } from '@aws-sdk/client-ec2';
import { Ec2Simulator } from './support/ec2-simulator';
import { CREDENTIALS, fleet, REGION } from './support/fault-harness';

let sim: Ec2Simulator;
const clients: Array<{ destroy(): void }> = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await sim?.stop();
});

/** Lambda's Invoke as the SDK sends it (REST-JSON: POST /2015-03-31/functions/{name}/invocations). */
async function invoke(functionName: string, invocationType: string, payload = '{}') {
  const response = await fetch(`${sim.endpoint}/2015-03-31/functions/${encodeURIComponent(functionName)}/invocations`, {
    method: 'POST',
    headers: { 'x-amz-invocation-type': invocationType, 'content-type': 'application/json' },
    body: payload,
  });
  const body = await response.text();
  return { status: response.status, errorType: response.headers.get('x-amzn-errortype'), body: body === '' ? undefined : JSON.parse(body) };
}

describe('Lambda Invoke', () => {
  test('GIVEN an Event invocation THEN it is recorded with its payload and answered 202; DryRun is answered 204 and not recorded', async () => {
    sim = new Ec2Simulator();
    await sim.start();
    const arn = 'arn:aws:lambda:us-east-1:123456789012:function:snapshots';

    const out = await invoke(arn, 'Event', '{"a":1}');
    const dry = await invoke(arn, 'DryRun');

    expect(out.status).toBe(202);
    expect(dry.status).toBe(204);
    expect(sim.invocations).toEqual([{ functionName: arn, invocationType: 'Event', payload: '{"a":1}', atMs: expect.any(Number) }]);
    expect(sim.invocationPayloads()).toEqual([{ a: 1 }]);
    expect(sim.countCalls('Invoke')).toBe(2);
  });

  test('GIVEN faults THEN they answer in Lambda\'s REST-JSON error shape; afterEffect records the invocation anyway; RequestResponse is refused', async () => {
    sim = new Ec2Simulator();
    await sim.start();
    sim.addFault((c) => c.action === 'Invoke' && c.actionIndex === 0 ? { status: 429, code: 'TooManyRequestsException', message: 'Rate exceeded' } : undefined);
    sim.addFault((c) => c.action === 'Invoke' && c.actionIndex === 1 ? { status: 500, code: 'ServiceException', afterEffect: true } : undefined);

    const throttled = await invoke('f', 'Event');
    const ambiguous = await invoke('f', 'Event');
    const synchronous = await invoke('f', 'RequestResponse');

    expect(throttled).toEqual({ status: 429, errorType: 'TooManyRequestsException', body: { Type: 'User', message: 'Rate exceeded' } });
    expect([ambiguous.status, ambiguous.errorType]).toEqual([500, 'ServiceException']);
    expect([synchronous.status, synchronous.errorType]).toEqual([400, 'InvalidParameterValueException']);
    expect(sim.invocations).toHaveLength(1);
  });
});

describe('describeSnapshotsLagMs', () => {
  test('GIVEN a DescribeSnapshots lag THEN a new snapshot is listed only after it, while the per-volume limit sees it at once', async () => {
    sim = new Ec2Simulator({ instances: fleet(1, { volumes: 1 }), describeSnapshotsLagMs: 150 });
    await sim.start();
    const ec2 = new EC2Client({ endpoint: sim.endpoint, region: REGION, credentials: CREDENTIALS, maxAttempts: 1 });
    clients.push(ec2);
    const instanceId = fleet(1)[0].instanceId;

    await ec2.send(new CreateSnapshotsCommand({ InstanceSpecification: { InstanceId: instanceId } }));
    const early = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'] }));
    const again = await ec2.send(new CreateSnapshotsCommand({ InstanceSpecification: { InstanceId: instanceId } })).catch((e) => e);
    await new Promise((r) => setTimeout(r, 160));
    const late = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'] }));

    expect(early.Snapshots).toEqual([]);
    expect(again.name).toBe('SnapshotCreationPerVolumeRateExceeded');
    expect(late.Snapshots).toHaveLength(1);
  });
});

describe('DescribeVolumes', () => {
  test('GIVEN volumes of several instances THEN DescribeVolumes pages (at most 500) through the SDK paginator, filters by tag, attachment and id, and answers attachments and tags', async () => {
    const instances = fleet(4, { volumes: 3 });
    instances[1].volumeTags = { [instances[1].volumeIds[2]]: { Backup: 'exclude', Name: 'scratch' } };
    instances[2].volumeTags = { [instances[2].volumeIds[1]]: { Backup: 'keep' } };
    sim = new Ec2Simulator({ instances });
    await sim.start();
    sim.terminate(instances[3].instanceId);
    const ec2 = new EC2Client({ endpoint: sim.endpoint, region: REGION, credentials: CREDENTIALS, maxAttempts: 1 });
    clients.push(ec2);
    const all = async (input: DescribeVolumesCommandInput) => {
      const out: Volume[] = [];
      for await (const page of paginateDescribeVolumes({ client: ec2, pageSize: 5 }, input)) out.push(...(page.Volumes ?? []));
      return out;
    };

    const every = await all({});
    const tagged = await all({ Filters: [{ Name: 'tag:Backup', Values: ['exclude', 'other'] }] });
    const ofOne = await all({ Filters: [{ Name: 'attachment.instance-id', Values: [instances[0].instanceId] }] });
    const tooMany = await ec2.send(new DescribeVolumesCommand({ MaxResults: 501 })).catch((e) => e);

    expect(every).toHaveLength(9); // the terminated instance's volumes are gone
    expect(sim.countCalls('DescribeVolumes')).toBe(2 + 1 + 1 + 1);
    expect(tagged).toEqual([expect.objectContaining({
      VolumeId: instances[1].volumeIds[2],
      Tags: [{ Key: 'Backup', Value: 'exclude' }, { Key: 'Name', Value: 'scratch' }],
      Attachments: [expect.objectContaining({ InstanceId: instances[1].instanceId, Device: '/dev/sdg', State: 'attached' })],
    })]);
    expect(ofOne.map((v) => v.VolumeId)).toEqual(instances[0].volumeIds);
    expect(tooMany.name).toBe('InvalidParameterValue');
  });
});

test('GIVEN calls of several actions THEN countCalls counts by action, in step with calls', async () => {
  sim = new Ec2Simulator();
  await sim.start();
  const ec2 = new EC2Client({ endpoint: sim.endpoint, region: REGION, credentials: CREDENTIALS, maxAttempts: 1 });
  clients.push(ec2);

  for (let k = 0; k < 3; k++) await ec2.send(new DescribeSnapshotsCommand({}));
  await ec2.send(new CreateSnapshotsCommand({ InstanceSpecification: { InstanceId: 'i-0' } })).catch(() => undefined);

  expect(sim.countCalls('DescribeSnapshots')).toBe(3);
  expect(sim.countCalls('CreateSnapshots')).toBe(1);
  expect(sim.countCalls('DescribeInstances')).toBe(0);
  expect(sim.calls.map((c) => c.action)).toEqual(['DescribeSnapshots', 'DescribeSnapshots', 'DescribeSnapshots', 'CreateSnapshots']);
});
