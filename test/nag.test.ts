/**
 * cdk-nag's AwsSolutions pack over a stack that uses a fully configured InstanceSnapshotSchedule.
 *
 * cdk-nag 3 is a policy-validation plugin: `Validations.of(app).addPlugins(new AwsSolutionsChecks(app))`,
 * and findings are acknowledged with aws-cdk-lib's own `Validations.of(scope).acknowledge({ id, reason })`
 * (one id per finding). The tests read the validation report that `app.synth()` writes.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, CfnResource, Duration, Stack, StackProps, Validations } from 'aws-cdk-lib';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { IConstruct } from 'constructs';
import { InstanceSnapshotSchedule } from '../src';
import { fullProps } from './support/full-props';

const STACK = 'NagStack';
const SCHEDULE = 'Nightly';
/** The id of the handler construct shared by every schedule of a stack (fixed: it is API). */
const HANDLER = 'InstanceSnapshotScheduleHandler';

/** One finding: the rule id (with its bracketed finding) and the construct path it is reported on. */
interface Finding {
  readonly id: string;
  readonly path: string;
}

/**
 * What the construct is expected to produce: wildcards that EC2 forces, each with the reason a
 * reviewer needs. Nothing else may appear.
 */
function forcedFindings(region: string, account: string): Array<Finding & { reason: string }> {
  const policy = `${STACK}/${SCHEDULE}/HandlerPolicy/Resource`;
  return [
    {
      id: 'AwsSolutions-IAM5[Resource::*]',
      path: `${STACK}/${HANDLER}/DescribePolicy/Resource`,
      reason: 'ec2:DescribeInstances, ec2:DescribeSnapshots and ec2:DescribeVolumes support no resource-level permissions (EC2 has no resource type for them): "*" is the only resource IAM accepts.',
    },
    {
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${region}:${account}:instance/*]`,
      path: policy,
      reason: 'Instances are selected by tag at run time, so their ids are unknown at deploy time; the statement is limited by aws:ResourceTag conditions on the selecting tags.',
    },
    {
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${region}:${account}:volume/*]`,
      path: policy,
      reason: 'CreateSnapshots snapshots the volumes attached to a selected instance, whose ids are unknown at deploy time; the instance statement limits which instances are snapshotted.',
    },
    {
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${region}::snapshot/*]`,
      path: policy,
      reason: 'Snapshot ids do not exist before CreateSnapshots creates them; the statements are limited by aws:RequestTag (this schedule\'s tag) and ec2:CreateAction conditions.',
    },
  ];
}

const ENVIRONMENTS: Array<[string, StackProps, string, string]> = [
  ['an environment-agnostic stack', {}, '<AWS::Region>', '<AWS::AccountId>'],
  ['a stack with account and region', { env: { account: '123456789012', region: 'eu-central-1' } }, 'eu-central-1', '123456789012'],
];

/** The user's side: a stack with a properly configured dead-letter queue and a schedule group. */
function userStack(app: App, stackProps: StackProps) {
  const stack = new Stack(app, STACK, stackProps);
  const deadLetterQueue = new sqs.Queue(stack, 'SnapshotRunsDlq', {
    enforceSSL: true,
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    retentionPeriod: Duration.days(14),
  });
  // cdk-nag recognizes a queue as a dead-letter queue only when another queue's RedrivePolicy
  // names it; EventBridge Scheduler's dead-letter target is not recognized.
  Validations.of(deadLetterQueue).acknowledge({
    id: 'AwsSolutions-SQS3',
    reason: 'This queue is the dead-letter queue of an EventBridge Scheduler target (DeadLetterConfig), which cdk-nag does not recognize as one.',
  });
  const scheduleGroup = new scheduler.ScheduleGroup(stack, 'SnapshotGroup', { scheduleGroupName: 'snapshots' });
  return { stack, deadLetterQueue, scheduleGroup };
}

/** Synthesizes with the AwsSolutions pack and returns its unacknowledged findings. */
function nagFindings(app: App): Finding[] {
  const pack = new AwsSolutionsChecks(app);
  Validations.of(app).addPlugins(pack);
  const assembly = app.synth();
  const report = JSON.parse(fs.readFileSync(path.join(assembly.directory, 'validation-report.json'), 'utf8'));
  return report.pluginReports
    .filter((r: any) => r.pluginName === pack.name)
    .flatMap((r: any) => r.violations)
    .flatMap((v: any) => v.violatingConstructs.map((c: any) => ({ id: v.ruleName, path: c.constructPath })))
    .sort((a: Finding, b: Finding) => `${a.id} ${a.path}`.localeCompare(`${b.id} ${b.path}`));
}

function newApp(): App {
  return new App({
    outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'nag-test-')),
    // Read the report instead of catching the synth error: it lists every finding at once.
    context: { '@aws-cdk/core:failSynthOnValidationErrors': false },
  });
}

/** The acknowledgements recorded on `scope` and below: rule id -> reason, by construct path. */
function acknowledgementsUnder(scope: IConstruct): Array<Finding & { reason: string }> {
  return scope.node.findAll().flatMap((c) => c.node.metadata
    .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
    .flatMap((m) => Object.entries(m.data as Record<string, string>)
      // aws-cdk-lib records ids without a plugin prefix as `Annotation::<id>`.
      .map(([id, reason]) => ({ id: id.replace(/^annotation::/i, ''), path: c.node.path, reason }))));
}

describe.each(ENVIRONMENTS)('AwsSolutions pack over %s', (_name, stackProps, region, account) => {
  const forced = forcedFindings(region, account);

  test('a user\'s nag run is clean without acknowledging anything of the construct', () => {
    // GIVEN a user who acknowledges only their own queue, a fully configured schedule, and a
    // second schedule, which shares the handler
    const app = newApp();
    const { stack, deadLetterQueue, scheduleGroup } = userStack(app, stackProps);
    new InstanceSnapshotSchedule(stack, SCHEDULE, fullProps(deadLetterQueue, scheduleGroup));
    new InstanceSnapshotSchedule(stack, 'Weekly', { instanceTags: { Backup: ['weekly'] } });

    // WHEN
    const findings = nagFindings(app);

    // THEN (with the next test: every finding is a forced wildcard that the construct acknowledges,
    // under the id cdk-nag writes)
    expect(findings).toEqual([]);
  });

  test('the construct acknowledges exactly the wildcards EC2 forces, each on its own policy with a written reason', () => {
    // GIVEN
    const { stack, deadLetterQueue, scheduleGroup } = userStack(newApp(), stackProps);
    const schedule = new InstanceSnapshotSchedule(stack, SCHEDULE, fullProps(deadLetterQueue, scheduleGroup));

    // WHEN
    const acknowledged = [schedule, stack.node.findChild(HANDLER)].flatMap(acknowledgementsUnder);

    // THEN (acknowledgements sit on the policy construct; findings on its CfnResource child)
    expect(acknowledged.map((a) => ({ id: a.id, path: `${a.path}/Resource`, reason: a.reason })).sort((a, b) => a.id.localeCompare(b.id)))
      .toEqual([...forced].sort((a, b) => a.id.localeCompare(b.id)));
  });
});

describe('what the construct creates', () => {
  test('lives inside its own scope or the shared handler construct', () => {
    // GIVEN a user's stack
    const app = new App();
    const { stack, deadLetterQueue, scheduleGroup } = userStack(app, {});
    const userConstructs = stack.node.findAll().map((c) => c.node.path);
    const stackChildren = stack.node.children.map((c) => c.node.id);

    // WHEN two schedules are added
    new InstanceSnapshotSchedule(stack, SCHEDULE, fullProps(deadLetterQueue, scheduleGroup));
    new InstanceSnapshotSchedule(stack, 'Weekly', { instanceTags: { Backup: ['weekly'] } });

    // THEN the stack gains the two schedules and one shared handler, nothing else
    expect(stack.node.children.map((c) => c.node.id)).toEqual([...stackChildren, SCHEDULE, HANDLER, 'Weekly']);
    expect(app.node.children).toEqual([stack]);
    // the user's constructs (queue, group) gain no children (no queue policy, no grants on them)
    const ours = [`${STACK}/${SCHEDULE}`, `${STACK}/Weekly`, `${STACK}/${HANDLER}`];
    const inside = (p: string) => ours.some((scope) => p === scope || p.startsWith(`${scope}/`));
    expect(stack.node.findAll().map((c) => c.node.path).filter((p) => !inside(p))).toEqual(userConstructs);
    // and every resource comes from one of those scopes or from the user
    const resources = stack.node.findAll().filter(CfnResource.isCfnResource).map((r) => r.node.path);
    expect(resources.filter((p) => !inside(p))).toEqual([
      `${STACK}/SnapshotRunsDlq/Resource`,
      `${STACK}/SnapshotRunsDlq/Policy/Resource`,
      `${STACK}/SnapshotGroup/Resource`,
    ]);
  });
});
