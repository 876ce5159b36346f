import {
  buildCreateSnapshotsInput,
  buildDescribeExcludedVolumesInput,
  buildDescribeInstancesInput,
  buildDescribeOccurrenceSnapshotsInput,
  escapeFilterValue,
  excludedByTag,
  instancesWithSets,
  matchesSelection,
  planInstance,
} from '../lambda/ec2-requests';
import { INSTANCE_ID_TAG, parseOccurrence, SCHEDULE_TAG, REQUEST_VERSION, SCHEDULED_TIME_TAG, SnapshotRunRequest } from '../src/private/request-contract';

const REQUEST: SnapshotRunRequest = {
  version: REQUEST_VERSION,
  scheduleId: 'S/N',
  instanceTags: { Backup: ['nightly', 'always'], Env: ['prod'] },
  excludeBootVolume: false,
  excludeDataVolumeIds: [],
  snapshotTags: {},
  dryRun: false,
};
const OCCURRENCE = parseOccurrence('S/N', { scheduledTime: '2026-11-24T02:30:00Z' }, 'exec-1');
const ROOT = 'vol-0000000000000000a';
const asTags = (tags: Record<string, string>) => Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
const DATA = 'vol-0000000000000000b';
const INSTANCE = {
  InstanceId: 'i-1',
  RootDeviceName: '/dev/xvda',
  BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeId: ROOT } }, { DeviceName: '/dev/sdf', Ebs: { VolumeId: DATA } }],
};

test.each([
  ['plain', 'plain'],
  ['a*b', 'a\\*b'],
  ['what?', 'what\\?'],
  ['back\\slash', 'back\\\\slash'],
])('escapeFilterValue(%j) matches only the literal value', (value, escaped) => {
  expect(escapeFilterValue(value)).toBe(escaped);
});

test.each<[Record<string, string>, boolean]>([
  [{ Backup: 'nightly', Env: 'prod' }, true],
  [{ Backup: 'always', Env: 'prod', Other: 'x' }, true],
  [{ Backup: 'nightly' }, false],
  [{ Backup: 'Nightly', Env: 'prod' }, false],
  [{ Backup: 'nightly', Env: 'prod ' }, false],
])('matchesSelection(%j) is %s: every key, one of its values, exact and case-sensitive', (tags, expected) => {
  const instance = { ...INSTANCE, Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) };
  expect(matchesSelection(REQUEST, instance)).toBe(expected);
});

describe('buildDescribeInstancesInput', () => {
  test('GIVEN the selection THEN one escaped tag: filter per key, the states that lead to a set, the largest page and the token', () => {
    expect(buildDescribeInstancesInput({ ...REQUEST, instanceTags: { 'Backup': ['*'], 'team?': ['a'] } }, 'tok')).toEqual({
      Filters: [
        { Name: 'tag:Backup', Values: ['\\*'] },
        { Name: 'tag:team?', Values: ['a'] },
        { Name: 'instance-state-name', Values: ['running', 'stopped', 'pending', 'stopping'] },
      ],
      MaxResults: 1000,
      NextToken: 'tok',
    });
  });
});

describe('buildDescribeOccurrenceSnapshotsInput', () => {
  test('GIVEN an occurrence and a batch of instances THEN own snapshots of that schedule and scheduled time for those instances, exact values', () => {
    const input = buildDescribeOccurrenceSnapshotsInput({ ...REQUEST, scheduleId: 'Stack/Night*' }, OCCURRENCE, ['i-1', 'i-2'], 'tok');

    expect(input).toEqual({
      OwnerIds: ['self'],
      Filters: [
        { Name: `tag:${SCHEDULE_TAG}`, Values: ['Stack/Night\\*'] },
        { Name: `tag:${SCHEDULED_TIME_TAG}`, Values: ['2026-11-24T02:30:00Z'] },
        { Name: `tag:${INSTANCE_ID_TAG}`, Values: ['i-1', 'i-2'] },
      ],
      MaxResults: 1000,
      NextToken: 'tok',
    });
  });

  test('GIVEN two executions of the same occurrence THEN they look up the same sets: identity is schedule and scheduled time, not the execution', () => {
    const again = parseOccurrence('S/N', { scheduledTime: '2026-11-24T02:30:00.000Z' }, 'another-execution');

    expect(buildDescribeOccurrenceSnapshotsInput(REQUEST, again, ['i-1'])).toEqual(buildDescribeOccurrenceSnapshotsInput(REQUEST, OCCURRENCE, ['i-1']));
  });
});

describe('excluded volumes', () => {
  test('GIVEN a key and its values THEN one escaped tag: filter, pages of 500', () => {
    expect(buildDescribeExcludedVolumesInput('Scratch', ['true', 'y*'], 'tok')).toEqual({
      Filters: [{ Name: 'tag:Scratch', Values: ['true', 'y\\*'] }],
      MaxResults: 500,
      NextToken: 'tok',
    });
  });

  test('GIVEN volumes with and without the tags THEN only exact matches of any key are excluded', () => {
    const volume = (VolumeId: string, tags: Record<string, string>) => ({ VolumeId, Tags: asTags(tags) });
    expect(excludedByTag({ Scratch: ['true'], Backup: ['never'] }, [
      volume('vol-1', { Scratch: 'true' }),
      volume('vol-2', { Backup: 'never' }),
      volume('vol-3', { Backup: 'Never' }),
      volume('vol-4', { Scratch: 'yes' }),
      volume('vol-5', {}),
    ])).toEqual(new Set(['vol-1', 'vol-2']));
  });
});

describe('planInstance', () => {
  test('GIVEN no exclusion THEN the plan is just the id', () => {
    expect(planInstance(REQUEST, INSTANCE)).toEqual({ planned: { id: 'i-1' }, warning: undefined });
  });
  test('GIVEN excluded ids of other instances THEN only this instance\'s volumes are sent', () => {
    expect(planInstance({ ...REQUEST, excludeDataVolumeIds: [DATA, 'vol-0000000000000000f'] }, INSTANCE).planned).toEqual({ id: 'i-1', x: [DATA] });
  });
  test('GIVEN volumes excluded by tag THEN the attached data volumes among them are sent, the root never', () => {
    expect(planInstance(REQUEST, INSTANCE, new Set([ROOT, DATA, 'vol-0000000000000000f'])).planned).toEqual({ id: 'i-1', x: [DATA] });
  });
  test('GIVEN the root volume in the exclusions THEN the boot volume is excluded instead, with a warning', () => {
    const plan = planInstance({ ...REQUEST, excludeDataVolumeIds: [ROOT] }, INSTANCE);
    expect(plan.planned).toEqual({ id: 'i-1', b: true });
    expect(plan.warning).toContain('the root volume of i-1');
  });
  test('GIVEN boot excluded and the only data volume excluded THEN nothing is left to snapshot', () => {
    expect(planInstance({ ...REQUEST, excludeBootVolume: true, excludeDataVolumeIds: [DATA] }, INSTANCE).unplanned)
      .toEqual({ id: 'i-1', outcome: 'skipped', reason: 'NoVolumesToSnapshot', message: 'every attached EBS volume is excluded' });
  });
  test('GIVEN no EBS volume at all THEN it is skipped, saying so', () => {
    expect(planInstance(REQUEST, { ...INSTANCE, BlockDeviceMappings: [] }).unplanned)
      .toEqual({ id: 'i-1', outcome: 'skipped', reason: 'NoVolumesToSnapshot', message: 'the instance has no EBS volume attached' });
  });
  test('GIVEN an Outpost ARN THEN o is set only for an instance on that Outpost', () => {
    const outpostArn = 'arn:aws:outposts:eu-central-1:123456789012:outpost/op-0123456789abcdef0';
    expect(planInstance({ ...REQUEST, outpostArn }, { ...INSTANCE, OutpostArn: outpostArn }).planned).toEqual({ id: 'i-1', o: true });
    expect(planInstance({ ...REQUEST, outpostArn }, INSTANCE).planned).toEqual({ id: 'i-1' });
  });

  test.each([
    ['pending', 'InstancePending'],
    ['stopping', 'InstanceStopping'],
  ])('GIVEN a %s instance THEN it is not attempted with %s (a later pass takes it), even when it has nothing to snapshot', (state, reason) => {
    for (const instance of [INSTANCE, { ...INSTANCE, BlockDeviceMappings: [] }]) {
      expect(planInstance(REQUEST, { ...instance, State: { Name: state as any } })).toEqual({
        unplanned: { id: 'i-1', outcome: 'not-attempted', reason, message: `the instance is ${state}: a later pass of this run takes it once it is running or stopped` },
      });
    }
  });

  test.each(['running', 'stopped', undefined])('GIVEN state %s THEN the instance is planned', (state) => {
    expect(planInstance(REQUEST, { ...INSTANCE, State: state ? { Name: state as any } : undefined }).planned).toEqual({ id: 'i-1' });
  });
});

describe('buildCreateSnapshotsInput', () => {
  test('GIVEN a dry run with no optional field THEN no optional field is sent, and the tags name the occurrence', () => {
    const input = buildCreateSnapshotsInput({ ...REQUEST, dryRun: true }, OCCURRENCE, { id: 'i-1' });

    expect(Object.keys(input).sort()).toEqual(['DryRun', 'InstanceSpecification', 'TagSpecifications']);
    expect(input.InstanceSpecification).toEqual({ InstanceId: 'i-1', ExcludeBootVolume: false });
    expect(input.DryRun).toBe(true);
    expect(input.TagSpecifications).toEqual([{
      ResourceType: 'snapshot',
      Tags: [
        { Key: 'cdk-instance-snapshots:schedule', Value: 'S/N' },
        { Key: 'cdk-instance-snapshots:execution-id', Value: 'exec-1' },
        { Key: 'cdk-instance-snapshots:instance-id', Value: 'i-1' },
        { Key: 'cdk-instance-snapshots:scheduled-time', Value: '2026-11-24T02:30:00Z' },
      ],
    }]);
  });

  test('GIVEN a plan with every adjustment THEN excluded volumes, boot exclusion and the Outpost ARN are sent', () => {
    const outpostArn = 'arn:aws:outposts:eu-central-1:123456789012:outpost/op-0123456789abcdef0';
    const input = buildCreateSnapshotsInput({ ...REQUEST, outpostArn, description: 'd', copyTagsFromSource: 'volume' }, OCCURRENCE, { id: 'i-1', x: [DATA], b: true, o: true });

    expect(input).toEqual(expect.objectContaining({
      InstanceSpecification: { InstanceId: 'i-1', ExcludeBootVolume: true, ExcludeDataVolumeIds: [DATA] },
      OutpostArn: outpostArn,
      Description: 'd',
      CopyTagsFromSource: 'volume',
    }));
  });
});

describe('instancesWithSets', () => {
  const snapshot = (SnapshotId: string, tags: Record<string, string>) => ({ SnapshotId, Tags: asTags(tags) });
  const ours = (instanceId: string) => ({ [SCHEDULE_TAG]: 'S/N', [SCHEDULED_TIME_TAG]: '2026-11-24T02:30:00Z', [INSTANCE_ID_TAG]: instanceId });

  test('GIVEN snapshots of the occurrence THEN they are grouped by the instance-id tag', () => {
    expect(instancesWithSets(REQUEST, OCCURRENCE, [
      snapshot('snap-1', ours('i-1')), snapshot('snap-2', ours('i-1')), snapshot('snap-3', ours('i-2')),
    ])).toEqual(new Map([['i-1', ['snap-1', 'snap-2']], ['i-2', ['snap-3']]]));
  });

  test.each<[string, Record<string, string>]>([
    ['another scheduled time', { ...ours('i-1'), [SCHEDULED_TIME_TAG]: '2026-11-25T02:30:00Z' }],
    ['the same time written differently', { ...ours('i-1'), [SCHEDULED_TIME_TAG]: '2026-11-24T02:30:00.000Z' }],
    ['another schedule', { ...ours('i-1'), [SCHEDULE_TAG]: 'S/N2' }],
    ['no schedule tag', { [SCHEDULED_TIME_TAG]: '2026-11-24T02:30:00Z', [INSTANCE_ID_TAG]: 'i-1' }],
    ['no instance-id tag', { [SCHEDULE_TAG]: 'S/N', [SCHEDULED_TIME_TAG]: '2026-11-24T02:30:00Z' }],
  ])('GIVEN a snapshot with %s THEN it does not count (EC2\'s filter is only the first pass)', (_name, tags) => {
    expect(instancesWithSets(REQUEST, OCCURRENCE, [snapshot('snap-1', tags)])).toEqual(new Map());
  });
});
