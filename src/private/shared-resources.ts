import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { WORKFLOW } from './request-contract';

/** Fixed id of the resources every schedule of a stack shares. Changing it replaces them in users' stacks. */
export const SHARED_CONSTRUCT_ID = 'InstanceSnapshotScheduleShared';

/**
 * What every `InstanceSnapshotSchedule` of a stack shares: the occurrence lock table and the
 * default log group. Everything that acts (worker, role, workflow) is per schedule.
 */
export class SharedResources extends Construct {
  /** The stack's shared resources, created on first use. */
  public static of(scope: Construct): SharedResources {
    const stack = Stack.of(scope);
    const existing = stack.node.tryFindChild(SHARED_CONSTRUCT_ID);
    if (existing instanceof SharedResources) {
      return existing;
    }
    if (existing) {
      throw new Error(`the construct id "${SHARED_CONSTRUCT_ID}" is reserved by cdk-instance-snapshots in stack ${stack.node.path}, got: a ${existing.constructor.name}`);
    }
    return new SharedResources(stack, SHARED_CONSTRUCT_ID);
  }

  /**
   * One item per scheduled occurrence (schedule id and scheduled time): the first execution to
   * write it runs the occurrence, any other ends as a duplicate. Items expire (TTL) after
   * Step Functions has forgotten the executions.
   */
  public readonly lockTable: dynamodb.Table;

  private defaultLogGroup?: logs.LogGroup;

  private constructor(scope: Construct, id: string) {
    super(scope, id);
    this.lockTable = new dynamodb.Table(this, 'OccurrenceLocks', {
      partitionKey: { name: WORKFLOW.lockKeyAttribute, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: WORKFLOW.lockExpiryAttribute,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // Locks only guard against duplicate deliveries; nothing of value is lost with the stack.
      removalPolicy: RemovalPolicy.DESTROY,
    });
  }

  /**
   * Where workers and workflows log unless a schedule brings its own log group. Created on first
   * use, so a stack whose schedules all bring one has no unused (retained) log group.
   */
  public get logGroup(): logs.LogGroup {
    this.defaultLogGroup ??= new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.THREE_MONTHS,
    });
    return this.defaultLogGroup;
  }
}

/** How long Step Functions waits for one worker step: Lambda's own limit plus a minute. */
export const WORKER_TIMEOUT = Duration.minutes(15);
