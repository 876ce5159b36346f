/**
 * A large stack: 40 schedules with realistic selections, every default on. Checks the limits a
 * deployment would hit first: CloudFormation's 500 resources and 1 MB template per stack, and
 * IAM's 10,240 characters of inline policies per role (measured two ways: the library's own upper
 * bound, and the synthesized JSON with its references replaced by what CloudFormation would put
 * there).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, CfnElement, CfnResource, Duration, Stack } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { InstanceSnapshotSchedule, InstanceSnapshotScheduleProps, Retention, SnapshotLock } from '../src';
import { policySizeUpperBound, ROLE_INLINE_POLICY_LIMIT } from '../src/private/policy-size';

const ACCOUNT = '123456789012';
const REGION = 'ap-southeast-2';
const STACK = 'ProductionInstanceSnapshotSchedules';
const SCHEDULES = 40;
/**
 * What one schedule creates, every default on: schedule, scheduler role, state machine, workflow role,
 * worker, worker role (each role with its policy inline), the run-failed rule, the failed-set rule
 * with its permission to invoke the worker, the instances-failed alarm and the heartbeat alarm.
 */
const RESOURCES_PER_SCHEDULE = 11;
/**
 * What a stack's schedules share: the lock table, the log group, the notification topic with its
 * policy and key, the dead-letter queue with its policy and alarm.
 */
const SHARED_RESOURCES = 8;

/** Three tag keys of five values each, with the lengths tags have in real fleets. */
function realisticTags(i: number): { [key: string]: string[] } {
  const n = String(i).padStart(2, '0');
  return {
    'Environment': ['production', 'production-eu-west-1', 'disaster-recovery', 'pre-production', `customer-dedicated-${n}`],
    'Application': [
      `order-management-service-${n}`, `customer-portal-frontend-${n}`, `payment-gateway-adapter-${n}`,
      `inventory-sync-worker-${n}`, `reporting-data-warehouse-${n}`,
    ],
    'backup:policy': ['nightly-crash-consistent', 'nightly-with-data-volumes', 'weekly-full', 'monthly-archive-7y', `tier-${n}-gold`],
  };
}

interface RoleUnderTest {
  readonly path: string;
  readonly logicalId: string;
  readonly documents: iam.PolicyDocument[];
}

/** Every role of the stack with its inline policies, as the constructs hold them (attached iam.Policy resources included). */
function rolesWithInlinePolicies(stack: Stack): RoleUnderTest[] {
  const policies = stack.node.findAll().filter((c): c is iam.Policy => c instanceof iam.Policy);
  return stack.node.findAll().filter((c): c is iam.Role => c instanceof iam.Role).map((role) => {
    const logicalId = stack.getLogicalId(role.node.defaultChild as CfnElement);
    const inline = ((role.node.defaultChild as iam.CfnRole).policies as iam.CfnRole.PolicyProperty[] | undefined ?? [])
      .map((p) => p.policyDocument as iam.PolicyDocument);
    const attached = policies
      .filter((p) => JSON.stringify(stack.resolve((p.node.defaultChild as iam.CfnPolicy).roles)) === JSON.stringify([{ Ref: logicalId }]))
      .map((p) => p.document);
    return { path: role.node.path, logicalId, documents: [...inline, ...attached] };
  });
}

/** A physical name as CloudFormation generates one (stack, logical id, 13 random characters), cut to the service's limit. */
function physicalName(logicalId: string, limit: number): string {
  return `${STACK}-${logicalId}-ABCDEFGHIJKLM`.slice(-limit);
}

/** Replaces every reference with the text CloudFormation would put there when deploying the stack. */
function deployed(value: any, resources: Record<string, any>): any {
  if (Array.isArray(value)) return value.map((v) => deployed(v, resources));
  if (typeof value !== 'object' || value === null) return value;
  if ('Fn::Join' in value) return value['Fn::Join'][1].map((p: any) => deployed(p, resources)).join(value['Fn::Join'][0]);
  if ('Ref' in value) {
    const pseudo: Record<string, string> = { 'AWS::Partition': 'aws', 'AWS::Region': REGION, 'AWS::AccountId': ACCOUNT, 'AWS::URLSuffix': 'amazonaws.com' };
    if (pseudo[value.Ref]) return pseudo[value.Ref];
    const type = resources[value.Ref]?.Type;
    if (type === 'AWS::StepFunctions::StateMachine') return `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:${physicalName(value.Ref, 80)}`;
    if (type === 'AWS::DynamoDB::Table' || type === 'AWS::Logs::LogGroup' || type === 'AWS::IAM::Role') return physicalName(value.Ref, 64);
    if (type === 'AWS::SNS::Topic') return `arn:aws:sns:${REGION}:${ACCOUNT}:${physicalName(value.Ref, 256)}`;
    throw new Error(`no deployed value for a Ref to ${value.Ref} (${type})`);
  }
  if ('Fn::GetAtt' in value) {
    const [id, attribute] = value['Fn::GetAtt'];
    const type = resources[id]?.Type;
    if (attribute === 'Arn' && type === 'AWS::Lambda::Function') return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${physicalName(id, 64)}`;
    if (attribute === 'Arn' && type === 'AWS::Logs::LogGroup') return `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:${physicalName(id, 512)}:*`;
    if (attribute === 'Arn' && type === 'AWS::KMS::Key') return `arn:aws:kms:${REGION}:${ACCOUNT}:key/0123abcd-0123-4567-89ab-0123456789ab`;
    if (attribute === 'Arn' && type === 'AWS::SQS::Queue') return `arn:aws:sqs:${REGION}:${ACCOUNT}:${physicalName(id, 80)}`;
    throw new Error(`no deployed value for ${id}.${attribute} (${type})`);
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, deployed(v, resources)]));
}

/** IAM's measure of a role's inline policies from the synthesized template: the deployed JSON without white space. */
function deployedInlinePolicySize(template: any, roleLogicalId: string): number {
  const resources: Record<string, any> = template.Resources;
  const documents = [
    ...(resources[roleLogicalId].Properties.Policies ?? []).map((p: any) => p.PolicyDocument),
    ...Object.values(resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy' && r.Properties.Roles.some((x: any) => x.Ref === roleLogicalId))
      .map((r) => r.Properties.PolicyDocument),
  ];
  return documents.reduce((sum, doc) => sum + JSON.stringify(deployed(doc, resources)).length, 0);
}

function synthesize(stack: Stack): { template: any; templateBytes: number } {
  const assembly = (stack.node.root as App).synth();
  const artifact = assembly.getStackByName(stack.stackName);
  return { template: artifact.template, templateBytes: fs.statSync(artifact.templateFullPath).size };
}

function newApp(): App {
  return new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'scale-test-')) });
}

describe('40 schedules with realistic selections in one stack', () => {
  const app = newApp();
  // A stack this large sets suppressTemplateIndentation: aws-cdk-lib warns once a template passes 80 %
  // of CloudFormation's 1 MB, and the indented template of 40 schedules is close to the limit itself.
  const stack = new Stack(app, STACK, { env: { account: ACCOUNT, region: REGION }, suppressTemplateIndentation: true });
  const schedules = Array.from({ length: SCHEDULES }, (_, i) =>
    new InstanceSnapshotSchedule(stack, `NightlyApplicationServers${String(i).padStart(2, '0')}`, { instanceTags: realisticTags(i) }));
  const { template, templateBytes } = synthesize(stack);
  const roles = rolesWithInlinePolicies(stack);

  test('GIVEN 40 schedules WHEN synthesized THEN the stack stays under CloudFormation\'s 500 resources, 11 per schedule and 8 shared', () => {
    const resources = Object.keys(template.Resources);
    expect(resources.length).toBeLessThan(500);
    expect(resources).toHaveLength(SCHEDULES * RESOURCES_PER_SCHEDULE + SHARED_RESOURCES);
    const cfnResources = stack.node.findAll().filter(CfnResource.isCfnResource);
    for (const schedule of schedules) {
      expect(cfnResources.filter((r) => r.node.path.startsWith(`${schedule.node.path}/`))).toHaveLength(RESOURCES_PER_SCHEDULE);
    }
    expect(cfnResources.filter((r) => r.node.path.startsWith(`${STACK}/InstanceSnapshotScheduleShared/`))).toHaveLength(SHARED_RESOURCES);
  });

  test('GIVEN 40 schedules WHEN synthesized without indentation THEN the template file stays under aws-cdk-lib\'s warning at 80 % of CloudFormation\'s 1 MB', () => {
    expect(templateBytes).toBeLessThan(800_000);
  });

  test('GIVEN 40 schedules WHEN the template is indented as aws-cdk-lib does by default THEN it still stays under CloudFormation\'s 1 MB', () => {
    expect(JSON.stringify(template, undefined, 1).length).toBeLessThan(1_000_000);
  });

  test('GIVEN 40 schedules WHEN synthesized THEN each has its own three roles and nothing else has one', () => {
    expect(roles).toHaveLength(SCHEDULES * 3);
    for (const schedule of schedules) {
      expect(roles.filter((r) => r.path.startsWith(`${schedule.node.path}/`)).map((r) => r.path.slice(schedule.node.path.length + 1)).sort())
        .toEqual(['SchedulerRole', 'WorkerRole', 'WorkflowRole']);
    }
  });

  test('GIVEN 40 schedules WHEN the upper bound of each role\'s inline policies is computed THEN every role stays under IAM\'s 10,240 characters', () => {
    const sizes = roles.map((r) => ({ path: r.path, size: policySizeUpperBound(stack, r.documents) }));
    expect(sizes.filter((s) => s.size >= ROLE_INLINE_POLICY_LIMIT)).toEqual([]);
    expect(ROLE_INLINE_POLICY_LIMIT).toBe(10_240);
  });

  test('GIVEN 40 schedules WHEN each role\'s deployed inline policies are measured from the template THEN every role stays under 10,240 characters, and under the library\'s bound', () => {
    for (const role of roles) {
      const measured = deployedInlinePolicySize(template, role.logicalId);
      const bound = policySizeUpperBound(stack, role.documents);
      expect({ path: role.path, fits: measured < 10_240 }).toEqual({ path: role.path, fits: true });
      expect({ path: role.path, boundHolds: measured <= bound }).toEqual({ path: role.path, boundHolds: true });
    }
  });

  test('GIVEN 40 schedules WHEN synthesized THEN no policyTooLarge warning (nor any other but the one about retention) is raised', () => {
    Annotations.fromStack(stack).hasNoWarning('*', Match.stringLikeRegexp('policyTooLarge'));
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.anyValue()).map((w) => String(w.entry.data));
    expect(warnings.filter((w) => !w.endsWith('[ack: cdk-instance-snapshots:noRetention]'))).toEqual([]);
    expect(warnings).toHaveLength(SCHEDULES);
  });
});

describe('40 schedules with retention, a lock and a Recycle Bin rule each', () => {
  const app = newApp();
  const stack = new Stack(app, STACK, { env: { account: ACCOUNT, region: REGION }, suppressTemplateIndentation: true });
  const schedules = Array.from({ length: SCHEDULES }, (_, i) => new InstanceSnapshotSchedule(stack, `NightlyApplicationServers${String(i).padStart(2, '0')}`, {
    instanceTags: realisticTags(i),
    excludeInstanceTags: { 'backup:policy': ['none'], 'Lifecycle': ['decommissioning', 'terminating'] },
    retention: Retention.anyOf(Retention.count(7), Retention.calendar({ daily: 14, weekly: 8, monthly: 12, yearly: 7 })),
    lock: SnapshotLock.governance(Duration.days(7)),
    recycleBinRetention: Duration.days(7),
    // A long explicit id: it is in three IAM conditions, the Recycle Bin rule and the request.
    scheduleId: `production/backup-schedules/nightly-application-servers-${String(i).padStart(2, '0')}`,
  }));
  const { template, templateBytes } = synthesize(stack);
  const roles = rolesWithInlinePolicies(stack);

  test('GIVEN 40 schedules with every lifecycle option WHEN synthesized THEN the stack stays under 500 resources, 12 per schedule and 8 shared', () => {
    expect(Object.keys(template.Resources)).toHaveLength(SCHEDULES * (RESOURCES_PER_SCHEDULE + 1) + SHARED_RESOURCES);
    expect(Object.keys(template.Resources).length).toBeLessThan(500);
    expect(schedules.every((s) => s.recycleBinRule !== undefined)).toBe(true);
  });

  test('GIVEN 40 schedules with every lifecycle option WHEN synthesized without indentation THEN the template stays under CloudFormation\'s 1 MB', () => {
    // Past aws-cdk-lib's 80 % warning: the README tells large stacks to suppress indentation.
    expect(templateBytes).toBeLessThan(1_000_000);
  });

  test('GIVEN 40 schedules with every lifecycle option WHEN each worker role\'s deployed inline policy is measured THEN it stays under 10,240 characters and the bound', () => {
    for (const role of roles.filter((r) => r.path.endsWith('/WorkerRole'))) {
      const measured = deployedInlinePolicySize(template, role.logicalId);
      const bound = policySizeUpperBound(stack, role.documents);
      expect({ path: role.path, fits: bound < ROLE_INLINE_POLICY_LIMIT, boundHolds: measured <= bound })
        .toEqual({ path: role.path, fits: true, boundHolds: true });
    }
  });

  test('GIVEN 40 schedules with every lifecycle option WHEN synthesized THEN the only warning is aws-cdk-lib\'s on the template size (over 80 % of 1 MB)', () => {
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.anyValue()).map((w) => String(w.entry.data));
    expect(warnings).toEqual([expect.stringMatching(/^Template size is approaching limit: \d+\/1000000\./)]);
    expect(templateBytes).toBeGreaterThan(800_000);
  });
});

describe('40 schedules with a copy rule each (another Region, a key of its own, a retention and a completion time)', () => {
  // A copy rule costs about 3 KB of template per schedule (the request in the definition, the worker
  // role's statements, the alarm's metrics, the workflow's copy states): these 40 come to about
  // 900 KB. With every lifecycle option as well they come to about 990 KB, and with three rules
  // each past 1 MB: such stacks split their schedules.
  const app = newApp();
  const stack = new Stack(app, STACK, { env: { account: ACCOUNT, region: REGION }, suppressTemplateIndentation: true });
  const schedules = Array.from({ length: SCHEDULES }, (_, i) => new InstanceSnapshotSchedule(stack, `NightlyApplicationServers${String(i).padStart(2, '0')}`, {
    instanceTags: realisticTags(i),
    copies: [{
      region: 'ap-southeast-4',
      kmsKeyArn: `arn:aws:kms:ap-southeast-4:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`,
      retention: Retention.count(7),
      completionDuration: Duration.hours(4),
    }],
  }));
  const { template, templateBytes } = synthesize(stack);
  const roles = rolesWithInlinePolicies(stack);

  test('GIVEN 40 schedules with copies WHEN synthesized THEN no resource is added: 11 per schedule and 8 shared', () => {
    expect(Object.keys(template.Resources)).toHaveLength(SCHEDULES * RESOURCES_PER_SCHEDULE + SHARED_RESOURCES);
    expect(schedules).toHaveLength(SCHEDULES);
  });

  test('GIVEN 40 schedules with copies WHEN synthesized without indentation THEN the template stays under CloudFormation\'s 1 MB', () => {
    expect(templateBytes).toBeLessThan(1_000_000);
  });

  test('GIVEN 40 schedules with copies WHEN each worker role\'s deployed inline policy is measured THEN it stays under 10,240 characters and the bound', () => {
    for (const role of roles.filter((r) => r.path.endsWith('/WorkerRole'))) {
      const measured = deployedInlinePolicySize(template, role.logicalId);
      const bound = policySizeUpperBound(stack, role.documents);
      expect({ path: role.path, fits: bound < ROLE_INLINE_POLICY_LIMIT, boundHolds: measured <= bound })
        .toEqual({ path: role.path, fits: true, boundHolds: true });
    }
  });
});

describe('the inline policy size warning', () => {
  /** One schedule whose selection is one key with `count` values of 250 characters and one of `lastLength`. */
  function bigSchedule(count: number, lastLength: number) {
    const stack = new Stack(newApp(), 'BigStack', { env: { account: ACCOUNT, region: REGION } });
    const values = [...Array.from({ length: count }, (_, i) => `${i}-`.padEnd(250, 'v')), 'z'.repeat(lastLength)];
    const props: InstanceSnapshotScheduleProps = { instanceTags: { Application: values } };
    const schedule = new InstanceSnapshotSchedule(stack, 'Big', props);
    const [worker] = rolesWithInlinePolicies(stack).filter((r) => r.path === schedule.workerRole.node.path);
    return { stack, size: policySizeUpperBound(stack, worker.documents), warnings: () => Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('policyTooLarge')) };
  }

  test('GIVEN one schedule with huge tag lists WHEN synthesized THEN its worker role gets the warning, naming the computed size', () => {
    const { size, warnings } = bigSchedule(60, 250);
    expect(size).toBeGreaterThan(10_240);
    expect(warnings().map((w) => ({ id: w.id, data: w.entry.data }))).toEqual([{
      id: '/BigStack/Big',
      data: `the inline policy of WorkerRole may reach ${size} characters once deployed, and IAM allows 10240 per role: `
        + 'fewer instanceTags values or a shorter scheduleId (by default the construct path) keep it deployable [ack: cdk-instance-snapshots:policyTooLarge]',
    }]);
  });

  test('GIVEN a single schedule whose policy bound is exactly 10,240 or one more WHEN synthesized THEN only the larger one warns', () => {
    // The bound grows by one character per character of a value: fit the last value to the limit.
    const count = 32;
    const lastLength = 100 + (ROLE_INLINE_POLICY_LIMIT - bigSchedule(count, 100).size);
    expect(lastLength).toBeGreaterThanOrEqual(1);
    expect(lastLength).toBeLessThan(256);

    const atLimit = bigSchedule(count, lastLength);
    expect(atLimit.size).toBe(10_240);
    expect(atLimit.warnings()).toEqual([]);

    const over = bigSchedule(count, lastLength + 1);
    expect(over.size).toBe(10_241);
    expect(over.warnings()).toHaveLength(1);
  });
});
