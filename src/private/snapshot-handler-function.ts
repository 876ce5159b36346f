import * as path from 'path';
import { Annotations, Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { acknowledgeDescribeWildcard } from './nag-acknowledgements';

/** Where the build puts the esbuild bundle of lambda/snapshot-handler.ts (same from src/ and lib/). */
export const HANDLER_ASSET_DIR = path.join(__dirname, '..', '..', 'assets', 'lambda', 'snapshot-handler');

/** Fixed id of the one handler per stack. Changing it replaces the function in users' stacks. */
export const HANDLER_CONSTRUCT_ID = 'InstanceSnapshotScheduleHandler';

/**
 * The Lambda function, role and log group shared by every `InstanceSnapshotSchedule` of a stack.
 * Each schedule adds its own IAM policy to `role`; this construct holds only what every schedule
 * needs.
 */
export class SnapshotHandlerFunction extends Construct {
  /**
   * From this many schedules on, the role's inline policies may exceed IAM's 10,240 characters:
   * about 700 shared and 900 per schedule (more with long tags or paths).
   */
  public static readonly SCHEDULES_WARNING_THRESHOLD = 10;

  /** The stack's shared handler, created on first use. */
  public static of(scope: Construct): SnapshotHandlerFunction {
    const stack = Stack.of(scope);
    const existing = stack.node.tryFindChild(HANDLER_CONSTRUCT_ID);
    if (existing instanceof SnapshotHandlerFunction) {
      return existing;
    }
    if (existing) {
      throw new Error(`the construct id "${HANDLER_CONSTRUCT_ID}" is reserved by cdk-instance-snapshots in stack ${stack.node.path}, got: a ${existing.constructor.name}`);
    }
    return new SnapshotHandlerFunction(stack, HANDLER_CONSTRUCT_ID);
  }

  public readonly function: lambda.Function;
  public readonly role: iam.Role;
  public readonly logGroup: logs.LogGroup;

  private schedules = 0;

  private constructor(scope: Construct, id: string) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: logs.RetentionDays.THREE_MONTHS,
    });

    // No AWS managed policy: log permissions are scoped to this function's own log group.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'cdk-instance-snapshots handler: lists tagged instances and creates snapshot sets',
    });
    this.logGroup.grantWrite(this.role);

    this.function = new lambda.Function(this, 'Function', {
      description: 'cdk-instance-snapshots: crash-consistent EBS snapshot sets of tagged EC2 instances',
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(HANDLER_ASSET_DIR),
      role: this.role,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      // Large fleets: about 5 CreateSnapshots per second per Region, so one 15-minute invocation
      // starts about 4,600 sets; longer runs continue in a new invocation.
      timeout: Duration.minutes(15),
      memorySize: 512,
      environment: {
        POWERTOOLS_SERVICE_NAME: 'cdk-instance-snapshots',
        POWERTOOLS_METRICS_NAMESPACE: 'CdkInstanceSnapshots',
      },
    });

    // DescribeInstances, DescribeSnapshots and DescribeVolumes support no resource-level
    // permissions: EC2 offers no resource type for them, so `Resource: '*'` is the only form IAM
    // accepts.
    const describePolicy = new iam.Policy(this, 'DescribePolicy', {
      roles: [this.role],
      statements: [new iam.PolicyStatement({
        sid: 'DescribeHasNoResourceType',
        actions: ['ec2:DescribeInstances', 'ec2:DescribeSnapshots', 'ec2:DescribeVolumes'],
        resources: ['*'],
      })],
    });
    acknowledgeDescribeWildcard(describePolicy);

    // A run that does not fit in one invocation continues in a new one (same execution id).
    // A separate policy (not the role's default policy) so the function does not depend on a
    // policy that references the function: that would be a cycle.
    new iam.Policy(this, 'ContinuationPolicy', {
      roles: [this.role],
      statements: [new iam.PolicyStatement({
        sid: 'InvokeSelfToContinueLongRuns',
        actions: ['lambda:InvokeFunction'],
        resources: [this.function.functionArn],
      })],
    });
  }

  /** Counts the schedules that share this handler; warns once when their policies may be too large for one role. */
  public addSchedule(): void {
    this.schedules++;
    if (this.schedules === SnapshotHandlerFunction.SCHEDULES_WARNING_THRESHOLD) {
      Annotations.of(this).addWarningV2('cdk-instance-snapshots:tooManySchedules',
        `${this.schedules} InstanceSnapshotSchedules share this stack's handler role, and each adds an inline policy of about 900 characters: `
        + 'IAM allows 10,240 characters of inline policies per role, so the deployment may fail. Merge schedules that differ only in tags, or put some in another stack.');
    }
  }
}
