import { buildCreateSnapshotsInput, escapeFilterValue, instancesWithSets, matchesSelection, planInstance } from '../lambda/ec2-requests';
import { SnapshotRunRequest } from '../src/private/request-contract';

const REQUEST: SnapshotRunRequest = {
  version: 1,
  scheduleId: 'S/N',
  executionId: 'e-1',
  scheduledTime: '2026-11-24T02:30:00Z',
  instanceTags: { Backup: ['nightly', 'always'], Env: ['prod'] },
  excludeBootVolume: false,
  excludeDataVolumeIds: [],
  snapshotTags: {},
  dryRun: false,
};
const ROOT = 'vol-0000000000000000a';
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

describe('planInstance', () => {
  test('GIVEN no exclusion THEN the plan is just the id (the continuation payload stays small)', () => {
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
});

test('buildCreateSnapshotsInput: a dry run with no optional field sends no optional field', () => {
  const input = buildCreateSnapshotsInput({ ...REQUEST, dryRun: true }, { id: 'i-1' });
  expect(Object.keys(input).sort()).toEqual(['DryRun', 'InstanceSpecification', 'TagSpecifications']);
  expect(input.InstanceSpecification).toEqual({ InstanceId: 'i-1', ExcludeBootVolume: false });
  expect(input.DryRun).toBe(true);
});

test('instancesWithSets groups snapshots by the instance-id ownership tag and ignores untagged ones', () => {
  const tag = (v: string) => [{ Key: 'cdk-instance-snapshots:instance-id', Value: v }];
  expect(instancesWithSets([
    { SnapshotId: 'snap-1', Tags: tag('i-1') }, { SnapshotId: 'snap-2', Tags: tag('i-1') }, { SnapshotId: 'snap-3', Tags: tag('i-2') }, { SnapshotId: 'snap-4' },
  ])).toEqual(new Map([['i-1', ['snap-1', 'snap-2']], ['i-2', ['snap-3']]]));
});
