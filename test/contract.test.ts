import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { InstanceSnapshotSchedule, InstanceSnapshotScheduleProps } from '../src';
import { FULL_PROPS } from './support/full-props';
import { InvalidRunRequestError, parseRunRequest } from '../src/private/request-contract';

/** The input EventBridge Scheduler would send: the synthesized template's input with the context attributes filled in. */
function scheduledEvent(props: InstanceSnapshotScheduleProps): unknown {
  const stack = new Stack(new App(), 'ContractStack');
  new InstanceSnapshotSchedule(stack, 'Schedule', props);
  const [schedule] = Object.values(Template.fromStack(stack).findResources('AWS::Scheduler::Schedule'));
  const input: string = schedule.Properties.Target.Input;
  return JSON.parse(input
    .replace('<aws.scheduler.execution-id>', '2c6e5a0e-3f4b-4d8e-9c1a-7b2d9e0f1a23')
    .replace('<aws.scheduler.scheduled-time>', '2026-11-24T02:30:00Z'));
}

describe('what the construct synthesizes is what the handler accepts', () => {
  test('GIVEN default props WHEN the handler parses the scheduled input THEN it gets the defaults', () => {
    expect(parseRunRequest(scheduledEvent({ instanceTags: { Backup: ['nightly'] } }))).toEqual({
      version: 1,
      scheduleId: 'ContractStack/Schedule',
      executionId: '2c6e5a0e-3f4b-4d8e-9c1a-7b2d9e0f1a23',
      scheduledTime: '2026-11-24T02:30:00Z',
      instanceTags: { Backup: ['nightly'] },
      excludeBootVolume: false,
      excludeDataVolumeIds: [],
      excludeDataVolumeTags: {},
      outpostArn: undefined,
      description: undefined,
      snapshotTags: {},
      copyTagsFromSource: undefined,
      dryRun: false,
    });
  });

  test('GIVEN every prop WHEN the handler parses the scheduled input THEN every option arrives unchanged', () => {
    const request = parseRunRequest(scheduledEvent({ ...FULL_PROPS, dryRun: true }));
    expect(request).toEqual(expect.objectContaining({
      instanceTags: { Backup: ['nightly', 'always'], Environment: ['prod'] },
      excludeBootVolume: true,
      excludeDataVolumeIds: ['vol-0123456789abcdef0', 'vol-0fedcba9876543210'],
      excludeDataVolumeTags: { Scratch: ['true'], Backup: ['never'] },
      outpostArn: 'arn:aws:outposts:eu-central-1:123456789012:outpost/op-0123456789abcdef0',
      description: 'nightly crash-consistent set',
      snapshotTags: { CostCenter: '42', Team: 'platform' },
      copyTagsFromSource: 'volume',
      dryRun: true,
    }));
  });
});

describe('the handler rejects requests it cannot honour, naming every field', () => {
  const valid = {
    version: 1, scheduleId: 'S/N', executionId: 'e', scheduledTime: 't', instanceTags: { Backup: ['nightly'] },
  };

  test.each<[string, unknown, string[]]>([
    ['not an object', 'hello', ['the event must be a JSON object, got: "hello"']],
    ['a missing execution id', { ...valid, executionId: undefined }, ['executionId must be a non-empty string, got: undefined']],
    ['a version from the future', { ...valid, version: 2 }, ['version must be 1, got: 2']],
    ['no instance tags', { ...valid, instanceTags: undefined }, ['instanceTags must be an object of tag key -> values, got: undefined']],
    ['an empty tag value list', { ...valid, instanceTags: { Backup: [] } }, ['instanceTags["Backup"] must list at least one accepted value, got: []']],
    ['a non-boolean dryRun', { ...valid, dryRun: 'yes' }, ['dryRun must be a boolean, got: "yes"']],
    ['excluded volume tags that are not a map', { ...valid, excludeDataVolumeTags: ['Scratch'] }, ['excludeDataVolumeTags must be an object of tag key -> values, got: ["Scratch"]']],
    ['a wrong copyTagsFromSource', { ...valid, copyTagsFromSource: 'instance' }, ['copyTagsFromSource must be "volume", got: "instance"']],
    ['a bad volume id and a bad outpost', { ...valid, excludeDataVolumeIds: ['v'], outpostArn: 'x' }, [
      'excludeDataVolumeIds must hold EBS volume ids like "vol-0123456789abcdef0", got: "v"',
      'outpostArn must be an outpost ARN like "arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0", got: "x"',
    ]],
  ])('%s', (_name, event, messages) => {
    let error: unknown;
    try {
      parseRunRequest(event);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidRunRequestError);
    expect((error as InvalidRunRequestError).violations.map((v) => v.message)).toEqual(messages);
  });
});
