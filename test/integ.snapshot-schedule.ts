/**
 * Integration test: a small tagged instance with a second EBS volume, an InstanceSnapshotSchedule
 * that selects it by tag (schedule disabled), then assertions that start the schedule's workflow
 * as the schedule would (execution name and input), wait for the execution to succeed with one set
 * created, and find the two snapshots, tagged as the library tags them.
 *
 * Against an AWS account (the instance goes to the Region's default VPC, so one must exist):
 *
 *   npx --yes @aws-cdk/integ-runner@2 --directory test --language typescript --update-on-failed
 *
 * The snapshots it creates are left behind (tagged `cdk-instance-snapshots:schedule` =
 * `SnapshotScheduleInteg/Nightly`): delete them after the run.
 *
 * Without an account, test/integ-snapshot-schedule.test.ts synthesizes this app offline and
 * compares it with a committed jest snapshot.
 */
import { ExpectedResult, IntegTest, Match } from '@aws-cdk/integ-tests-alpha';
import { App, Duration, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { InstanceSnapshotSchedule } from '../src';
import {
  EXECUTION_ID_TAG,
  INSTANCE_ID_TAG,
  SCHEDULE_TAG,
  SCHEDULED_TIME_TAG,
  ScheduledRunInput,
} from '../src/private/request-contract';

/** The run the assertions start by hand: fixed, so the snapshots can be found by their tags. */
export const EXECUTION_ID = 'integ-00000000-0000-4000-8000-000000000001';
export const SCHEDULED_TIME = '2030-01-01T03:00:00Z';
const SELECTING_TAG = { key: 'cdk-instance-snapshots-integ', value: 'snapshot-schedule' };
const DESCRIPTION = 'cdk-instance-snapshots integration test';
const SNAPSHOT_TAGS = { Purpose: 'cdk-instance-snapshots-integ' };

export function buildIntegApp(app: App = new App()) {
  const stack = new Stack(app, 'SnapshotScheduleInteg');

  // No VPC of our own: an instance without a subnet is launched into the default VPC.
  // AL2023 arm64 comes from the public SSM parameter (resolved at deploy time, no lookup).
  const instance = new ec2.CfnInstance(stack, 'Instance', {
    imageId: ec2.MachineImage.latestAmazonLinux2023({ cpuType: ec2.AmazonLinuxCpuType.ARM_64 }).getImage(stack).imageId,
    instanceType: 't4g.nano',
    metadataOptions: { httpTokens: 'required' },
    blockDeviceMappings: [{
      deviceName: '/dev/sdf',
      ebs: { volumeSize: 1, volumeType: 'gp3', encrypted: true, deleteOnTermination: true },
    }],
    tags: [{ key: SELECTING_TAG.key, value: SELECTING_TAG.value }],
  });

  const schedule = new InstanceSnapshotSchedule(stack, 'Nightly', {
    instanceTags: { [SELECTING_TAG.key]: [SELECTING_TAG.value] },
    enabled: false,
    description: DESCRIPTION,
    snapshotTags: SNAPSHOT_TAGS,
  });

  // What the schedule would start for one run (test/integ-snapshot-schedule.test.ts checks that it
  // equals the schedule's target input), with a fixed execution id and scheduled time.
  const input: ScheduledRunInput = { scheduledTime: SCHEDULED_TIME, schedulerExecutionId: EXECUTION_ID };
  const execution = { name: EXECUTION_ID, input };

  const integ = new IntegTest(app, 'SnapshotScheduleIntegTest', {
    testCases: [stack],
    diffAssets: false,
  });

  const start = integ.assertions.awsApiCall('SFN', 'StartExecution', {
    stateMachineArn: schedule.stateMachine.stateMachineArn,
    name: execution.name,
    input: JSON.stringify(execution.input),
  });
  // The run: Prepare, ClaimOccurrence, worker steps (a pass may wait 5 minutes for pending
  // snapshots), then RunSucceeded with the summary as the output.
  const run = integ.assertions.awsApiCall('SFN', 'DescribeExecution', { executionArn: start.getAttString('executionArn') });
  run.expect(ExpectedResult.objectLike({
    status: 'SUCCEEDED',
    output: Match.serializedJson(Match.objectLike({
      scheduleId: schedule.scheduleId,
      scheduledTime: SCHEDULED_TIME,
      executionName: EXECUTION_ID,
      result: 'succeeded',
      counts: Match.objectLike({ selected: 1, created: 1, failed: 0, notAttempted: 0 }),
    })),
  })).waitForAssertions({ totalTimeout: Duration.minutes(30), interval: Duration.seconds(30) });
  start.next(run);

  // The set: one snapshot per volume (root and /dev/sdf), found by every tag it must carry.
  const expectedTags: Record<string, string> = {
    [SCHEDULE_TAG]: schedule.scheduleId,
    [EXECUTION_ID_TAG]: EXECUTION_ID,
    [INSTANCE_ID_TAG]: instance.ref,
    [SCHEDULED_TIME_TAG]: SCHEDULED_TIME,
    ...SNAPSHOT_TAGS,
  };
  const snapshots = integ.assertions.awsApiCall('EC2', 'DescribeSnapshots', {
    OwnerIds: ['self'],
    Filters: Object.entries(expectedTags).map(([key, value]) => ({ Name: `tag:${key}`, Values: [value] })),
  });
  const snapshotOfTheSet = Match.objectLike({ Description: DESCRIPTION, OwnerId: stack.account });
  snapshots.expect(ExpectedResult.objectLike({ Snapshots: [snapshotOfTheSet, snapshotOfTheSet] }))
    .waitForAssertions({ totalTimeout: Duration.minutes(5), interval: Duration.seconds(15) });
  run.next(snapshots);

  return { app, stack, instance, schedule, execution, integ };
}

if (require.main === module) {
  buildIntegApp().app.synth();
}
