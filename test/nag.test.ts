/**
 * cdk-nag's AwsSolutions pack over a stack that uses a fully configured InstanceSnapshotSchedule and a
 * default one.
 *
 * cdk-nag 3 is a policy-validation plugin: `Validations.of(app).addPlugins(new AwsSolutionsChecks(app))`,
 * and findings are acknowledged with aws-cdk-lib's own `Validations.of(scope).acknowledge({ id, reason })`
 * (one id per finding). The tests read the validation report that `app.synth()` writes.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, CfnResource, Duration, Stack, StackProps, Validations } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { IConstruct } from 'constructs';
import { InstanceSnapshotSchedule, Retention, SnapshotLock, SnapshotVault } from '../src';
import { fullProps } from './support/full-props';

const STACK = 'NagStack';
const SCHEDULE = 'Nightly';
const SECOND_SCHEDULE = 'Weekly';
/** The id of the construct that holds what every schedule of a stack shares (fixed: it is API). */
const SHARED = 'InstanceSnapshotScheduleShared';

/** One finding: the rule id (with its bracketed finding) and the construct path it is reported on. */
interface Finding {
  readonly id: string;
  readonly path: string;
}

/** A wildcard that AWS forces: where cdk-nag reports it, where the construct acknowledges it, and why. */
interface ForcedFinding extends Finding {
  readonly acknowledgedOn: string;
  readonly reason: string;
}

const DESCRIBE_REASON = 'ec2:DescribeInstances, ec2:DescribeSnapshots and ec2:DescribeVolumes support no resource-level permissions (EC2 has no resource type for them): "*" is the only resource IAM accepts.';
/**
 * The fully configured schedule also prunes (retention), locks, copies to eu-west-1 and us-east-1 (each with a retention) and shares
 * with a vault account: more describe actions, DeleteSnapshot, LockSnapshot, CopySnapshot and ModifySnapshotAttribute on snapshot/*,
 * and snapshot/* in each destination Region.
 */
const LIFECYCLE_DESCRIBE_REASON = 'ec2:DescribeInstances, ec2:DescribeSnapshots, ec2:DescribeVolumes, ec2:DescribeImages and ec2:DescribeLockedSnapshots support no '
  + 'resource-level permissions (EC2 has no resource type for them): "*" is the only resource IAM accepts.';
const SNAPSHOT_REASON = 'Snapshot ids do not exist before CreateSnapshots creates them; the statements are limited by aws:RequestTag (this schedule\'s tag) and ec2:CreateAction conditions';
const WORKFLOW_REASON = 'X-Ray tracing (xray:PutTraceSegments, xray:PutTelemetryRecords, xray:GetSampling*) and Step Functions log delivery (logs:CreateLogDelivery and friends) support no resource-level permissions: "*" is the only resource IAM accepts.';

/**
 * What one schedule is expected to produce: wildcards that EC2, X-Ray and CloudWatch Logs force,
 * each with the reason a reviewer needs. Nothing else may appear.
 */
function forcedFindings(schedule: string, region: string, account: string, lifecycle: boolean): ForcedFinding[] {
  const workerRole = `${STACK}/${schedule}/WorkerRole`;
  const workflowRole = `${STACK}/${schedule}/WorkflowRole`;
  return [
    {
      id: 'AwsSolutions-IAM5[Resource::*]',
      path: `${workerRole}/Resource`,
      acknowledgedOn: workerRole,
      reason: lifecycle ? LIFECYCLE_DESCRIBE_REASON : DESCRIBE_REASON,
    },
    {
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${region}:${account}:instance/*]`,
      path: `${workerRole}/Resource`,
      acknowledgedOn: workerRole,
      reason: 'Instances are selected by tag at run time, so their ids are unknown at deploy time; the statement is limited by aws:ResourceTag conditions on the selecting tags.',
    },
    {
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${region}:${account}:volume/*]`,
      path: `${workerRole}/Resource`,
      acknowledgedOn: workerRole,
      reason: 'CreateSnapshots snapshots the volumes attached to a selected instance, whose ids are unknown at deploy time; the instance statement limits which instances are snapshotted.',
    },
    {
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${region}::snapshot/*]`,
      path: `${workerRole}/Resource`,
      acknowledgedOn: workerRole,
      reason: lifecycle
        ? `${SNAPSHOT_REASON}, and DeleteSnapshot, LockSnapshot and CopySnapshot by aws:ResourceTag (this schedule's tag); `
          + 'ModifySnapshotAttribute by aws:ResourceTag (this schedule\'s tag) and ec2:Add/userId (the vault account only).'
        : `${SNAPSHOT_REASON}.`,
    },
    ...(lifecycle ? ['eu-west-1', 'us-east-1'] : []).map((destination) => ({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${destination}::snapshot/*]`,
      path: `${workerRole}/Resource`,
      acknowledgedOn: workerRole,
      reason: `Copies in ${destination} do not exist before CopySnapshot creates them; CopySnapshot and CreateTags there are limited by aws:RequestTag `
        + '(this schedule\'s tag) and ec2:CreateAction (CopySnapshot) conditions, and DeleteSnapshot by aws:ResourceTag (this schedule\'s tag).',
    })),
    {
      id: 'AwsSolutions-IAM5[Resource::*]',
      path: `${workflowRole}/Resource`,
      acknowledgedOn: workflowRole,
      reason: WORKFLOW_REASON,
    },
  ];
}

const ENVIRONMENTS: Array<[string, StackProps, string, string]> = [
  ['an environment-agnostic stack', {}, '<AWS::Region>', '<AWS::AccountId>'],
  ['a stack with account and region', { env: { account: '123456789012', region: 'eu-central-1' } }, 'eu-central-1', '123456789012'],
];

/** The user's side: a stack with a properly configured dead-letter queue, a schedule group, a log group and an encrypted topic. */
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
  const logGroup = new logs.LogGroup(stack, 'SnapshotLogs', { retention: logs.RetentionDays.ONE_YEAR });
  const topicKey = new kms.Key(stack, 'AlertsKey', { enableKeyRotation: true });
  const topic = new sns.Topic(stack, 'SnapshotAlerts', { masterKey: topicKey, enforceSSL: true });
  return { stack, deadLetterQueue, scheduleGroup, logGroup, topic };
}

/** The user's two schedules: one with every prop set, one with the defaults. */
function addSchedules(user: ReturnType<typeof userStack>): InstanceSnapshotSchedule[] {
  return [
    new InstanceSnapshotSchedule(user.stack, SCHEDULE, fullProps(user.deadLetterQueue, user.scheduleGroup, user.logGroup, user.topic)),
    new InstanceSnapshotSchedule(user.stack, SECOND_SCHEDULE, { instanceTags: { Backup: ['weekly'] } }),
  ];
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
    .sort(byIdAndPath);
}

function byIdAndPath(a: Finding, b: Finding): number {
  return `${a.id} ${a.path}`.localeCompare(`${b.id} ${b.path}`);
}

function newApp(): App {
  return new App({
    outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'nag-test-')),
    // Read the report instead of catching the synth error: it lists every finding at once.
    context: { '@aws-cdk/core:failSynthOnValidationErrors': false },
  });
}

/** The acknowledgements recorded on `scope` and below: rule id -> reason, by construct path. */
function acknowledgementsUnder(scope: IConstruct): Array<{ id: string; acknowledgedOn: string; reason: string }> {
  return scope.node.findAll().flatMap((c) => c.node.metadata
    .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
    .flatMap((m) => Object.entries(m.data as Record<string, string>)
      // aws-cdk-lib records ids without a plugin prefix as `Annotation::<id>`.
      .map(([id, reason]) => ({ id: id.replace(/^annotation::/i, ''), acknowledgedOn: c.node.path, reason }))));
}

/**
 * What the stack's shared resources are expected to produce: cdk-nag's SQS3 on the shared dead-letter
 * queue, which it does not recognize as one (it knows only queues named in another queue's RedrivePolicy).
 */
const SHARED_FINDINGS: ForcedFinding[] = [{
  id: 'AwsSolutions-SQS3',
  path: `${STACK}/${SHARED}/DeadLetterQueue/Resource`,
  acknowledgedOn: `${STACK}/${SHARED}/DeadLetterQueue`,
  reason: 'This queue is the dead-letter queue of EventBridge Scheduler targets (DeadLetterConfig), which cdk-nag does not recognize as one; a dead-letter queue has none of its own.',
}];

describe.each(ENVIRONMENTS)('AwsSolutions pack over %s', (_name, stackProps, region, account) => {
  // The first schedule has every prop (retention, lock and copies included), the second the defaults.
  const forced = [...forcedFindings(SCHEDULE, region, account, true), ...forcedFindings(SECOND_SCHEDULE, region, account, false), ...SHARED_FINDINGS];

  afterEach(() => jest.restoreAllMocks());

  test('GIVEN a user who acknowledges only their own queue WHEN nag runs over two schedules THEN it finds nothing', () => {
    // GIVEN
    const app = newApp();
    addSchedules(userStack(app, stackProps));

    // WHEN
    const findings = nagFindings(app);

    // THEN
    expect(findings).toEqual([]);
  });

  test('GIVEN the construct\'s acknowledgements switched off WHEN nag runs THEN it finds exactly the forced wildcards', () => {
    // GIVEN the user's own acknowledgement, then the schedules with Validations.acknowledge a no-op
    const app = newApp();
    const user = userStack(app, stackProps);
    jest.spyOn(Validations.prototype, 'acknowledge').mockImplementation(() => undefined);
    addSchedules(user);
    jest.restoreAllMocks();

    // WHEN
    const findings = nagFindings(app);

    // THEN every acknowledgement answers a real finding, and nothing else is found
    expect(findings).toEqual(forced.map(({ id, path: p }) => ({ id, path: p })).sort(byIdAndPath));
  });

  test('GIVEN two schedules WHEN their acknowledgements are read THEN each forced wildcard is acknowledged once, where it arises, with a written reason', () => {
    // GIVEN
    const user = userStack(newApp(), stackProps);
    addSchedules(user);

    // WHEN
    const acknowledged = [...addedScopes(user.stack)].flatMap(acknowledgementsUnder);

    // THEN
    const key = (a: { id: string; acknowledgedOn: string }) => `${a.id} ${a.acknowledgedOn}`;
    expect(acknowledged.sort((a, b) => key(a).localeCompare(key(b))))
      .toEqual(forced.map(({ id, acknowledgedOn, reason }) => ({ id, acknowledgedOn, reason })).sort((a, b) => key(a).localeCompare(key(b))));
  });
});

/** The constructs the library adds to a user's stack: the schedules and the shared resources. */
function addedScopes(stack: Stack): IConstruct[] {
  return [SCHEDULE, SECOND_SCHEDULE, SHARED].map((id) => stack.node.findChild(id));
}

describe('what the construct creates', () => {
  test('GIVEN a user\'s stack WHEN two schedules are added THEN everything lives inside the schedules or the shared construct', () => {
    // GIVEN a user's stack
    const app = new App();
    const user = userStack(app, {});
    const { stack } = user;
    const userConstructs = stack.node.findAll().map((c) => c.node.path);
    const stackChildren = stack.node.children.map((c) => c.node.id);

    // WHEN two schedules are added
    addSchedules(user);

    // THEN the stack gains the two schedules and one shared construct, nothing else
    expect(stack.node.children.map((c) => c.node.id)).toEqual([...stackChildren, SCHEDULE, SHARED, SECOND_SCHEDULE]);
    expect(app.node.children).toEqual([stack]);
    // the user's constructs (queue, group, log group, topic, key) gain no children (no queue policy; the
    // statements for EventBridge and CloudWatch go into the topic policy and key policy they already have)
    const ours = [SCHEDULE, SECOND_SCHEDULE, SHARED].map((id) => `${STACK}/${id}`);
    const inside = (p: string) => ours.some((scope) => p === scope || p.startsWith(`${scope}/`));
    expect(stack.node.findAll().map((c) => c.node.path).filter((p) => !inside(p))).toEqual(userConstructs);
    // and every resource comes from one of those scopes or from the user
    const resources = stack.node.findAll().filter(CfnResource.isCfnResource).map((r) => r.node.path);
    expect(resources.filter((p) => !inside(p))).toEqual([
      `${STACK}/SnapshotRunsDlq/Resource`,
      `${STACK}/SnapshotRunsDlq/Policy/Resource`,
      `${STACK}/SnapshotGroup/Resource`,
      `${STACK}/SnapshotLogs/Resource`,
      `${STACK}/AlertsKey/Resource`,
      `${STACK}/SnapshotAlerts/Resource`,
      `${STACK}/SnapshotAlerts/Policy/Resource`,
    ]);
  });
});

describe.each(ENVIRONMENTS)('AwsSolutions pack over a snapshot vault in %s', (_name, stackProps, region) => {
  const VAULT = 'Vault';
  const vaultPath = `${STACK}/${VAULT}`;
  const addVault = (stack: Stack) => new SnapshotVault(stack, VAULT, {
    sourceAccounts: ['111122223333', '444455556666'],
    retention: Retention.count(30),
    lock: SnapshotLock.governance(Duration.days(7)),
    kmsKey: new kms.Key(stack, 'VaultKey', { enableKeyRotation: true }),
    sourceKmsKeyArns: ['arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab'],
  });
  /** The wildcards the vault cannot avoid: EC2's describe calls and snapshot ids, Lambda versions in the LambdaInvoke target, and SQS3. */
  const forced = (workerSnapshotArn: string): Finding[] => [
    { id: 'AwsSolutions-IAM5[Resource::*]', path: `${vaultPath}/WorkerRole/Resource` },
    { id: `AwsSolutions-IAM5[Resource::${workerSnapshotArn}]`, path: `${vaultPath}/WorkerRole/Resource` },
    { id: expect.stringMatching(/^AwsSolutions-IAM5\[Resource::<VaultWorker[0-9A-F]+\.Arn>:\*\]$/), path: `${vaultPath}/PruneSchedulerRole/Resource` },
    { id: 'AwsSolutions-SQS3', path: `${vaultPath}/DeadLetterQueue/Resource` },
  ];

  test('GIVEN a vault with every option WHEN nag runs THEN it finds nothing', () => {
    const app = newApp();
    addVault(new Stack(app, STACK, stackProps));
    expect(nagFindings(app)).toEqual([]);
  });

  test('GIVEN the construct\'s acknowledgements switched off WHEN nag runs THEN it finds exactly the forced wildcards, each acknowledged with a reason', () => {
    const app = newApp();
    const stack = new Stack(app, STACK, stackProps);
    jest.spyOn(Validations.prototype, 'acknowledge').mockImplementation(() => undefined);
    addVault(stack);
    jest.restoreAllMocks();

    const findings = nagFindings(app);
    const expected = forced(`arn:<AWS::Partition>:ec2:${region}::snapshot/*`);
    expect(findings).toHaveLength(expected.length);
    expect(findings).toEqual(expect.arrayContaining(expected));

    const acknowledged = acknowledgementsUnder(addVault(new Stack(newApp(), STACK, stackProps)));
    expect(acknowledged.map((a) => ({ id: a.id, path: `${a.acknowledgedOn}/Resource` })).sort(byIdAndPath)).toEqual(findings);
    expect(acknowledged.every((a) => a.reason.length > 40)).toBe(true);
  });
});
