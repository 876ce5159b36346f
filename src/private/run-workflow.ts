import { Duration } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { WORKFLOW } from './request-contract';

/** Times the workflow waits; the tests compress them. */
export const WORKFLOW_TIMING = {
  /**
   * After a worker step failed without an answer (crash, timeout, Lambda service error): wait this
   * long, so DescribeSnapshots shows every set the failed step made, then run the step again from
   * the same cursor. Longer than the worker's settle window.
   */
  recoveryWait: Duration.minutes(2),
  /** A failed step is run again at most this many times in one run. */
  maxRecoveries: 5,
  /** Between two passes over the selection, for pending snapshots to complete and starting instances to run. */
  retryPassWait: Duration.minutes(5),
  /** Between two copy steps: copies take minutes to hours; DescribeSnapshots has long caught up by then. */
  copyWait: Duration.minutes(5),
  /** Step Functions waits this long for one worker step (the worker itself stops within Lambda's 15 minutes). */
  stepTimeout: Duration.minutes(16),
};

/** Lambda errors raised before the function ran: repeating the call cannot repeat any work. */
const NOT_INVOKED_ERRORS = ['Lambda.TooManyRequestsException', 'Lambda.ResourceNotReadyException', 'Lambda.EC2ThrottledException'];

/**
 * `LambdaInvoke` whose role may invoke the function's unqualified ARN only. The stock task also
 * grants `<function arn>:*` (every version and alias), which the workflow never invokes and which
 * cdk-nag reports as a wildcard.
 */
class InvokeWorker extends tasks.LambdaInvoke {
  constructor(scope: Construct, id: string, props: tasks.LambdaInvokeProps) {
    super(scope, id, { ...props, retryOnServiceExceptions: false, payloadResponseOnly: true });
    (this as unknown as { taskPolicies: iam.PolicyStatement[] }).taskPolicies = [new iam.PolicyStatement({
      actions: ['lambda:InvokeFunction'],
      resources: [props.lambdaFunction.functionArn],
    })];
  }
}

export interface RunWorkflowProps {
  readonly worker: lambda.IFunction;
  readonly lockTable: dynamodb.ITable;
  /** The schedule's request as JSON text (the worker parses and checks it on every call). */
  readonly requestJson: string;
  /** The schedule copies its sets to other Regions: the workflow waits between copy steps. */
  readonly copies?: boolean;
}

/**
 * The run of one scheduled occurrence, as a Step Functions definition (JSONPath, so that it runs
 * unchanged in the offline interpreter the tests use):
 *
 * Prepare -> ClaimOccurrence -> SnapshotStep <-> RunProgress -> RunSucceeded | RunFailed
 *                 \-> duplicate: FindOwner -> Duplicate
 */
export function buildRunDefinition(scope: Construct, props: RunWorkflowProps): sfn.IChainable {
  const t = WORKFLOW_TIMING;
  const rejected = new sfn.Fail(scope, 'RunRejected', {
    error: 'InvalidRunRequest',
    causePath: '$.error.Cause',
    comment: 'Invalid execution or worker input: nothing was done.',
  });

  const prepare = new InvokeWorker(scope, 'Prepare', {
    comment: 'Checks the input and names the occurrence. No AWS call.',
    lambdaFunction: props.worker,
    payload: sfn.TaskInput.fromObject({
      action: WORKFLOW.actionPrepare,
      request: props.requestJson,
      input: sfn.JsonPath.entirePayload,
      executionName: sfn.JsonPath.stringAt('$$.Execution.Name'),
    }),
    taskTimeout: sfn.Timeout.duration(Duration.minutes(1)),
  });
  // Prepare has no side effect: every Lambda service error may be retried.
  prepare.addRetry({
    errors: [...NOT_INVOKED_ERRORS, 'Lambda.ServiceException', 'Lambda.AWSLambdaException', 'Lambda.SdkClientException', 'Lambda.Unknown', 'States.Timeout'],
    interval: Duration.seconds(2),
    backoffRate: 2,
    maxAttempts: 6,
    jitterStrategy: sfn.JitterType.FULL,
  });
  prepare.addCatch(rejected, { errors: [WORKFLOW.invalidInputError], resultPath: '$.error' });

  const claim = new tasks.DynamoPutItem(scope, 'ClaimOccurrence', {
    comment: 'The first execution to write the lock item runs the occurrence (its owner may write again).',
    table: props.lockTable,
    item: {
      [WORKFLOW.lockKeyAttribute]: tasks.DynamoAttributeValue.fromString(sfn.JsonPath.stringAt('$.occurrence.lockKey')),
      [WORKFLOW.lockOwnerAttribute]: tasks.DynamoAttributeValue.fromString(sfn.JsonPath.stringAt('$$.Execution.Id')),
      [WORKFLOW.lockExpiryAttribute]: tasks.DynamoAttributeValue.numberFromString(sfn.JsonPath.stringAt('$.occurrence.expiresAt')),
    },
    conditionExpression: 'attribute_not_exists(#key) OR #owner = :owner',
    expressionAttributeNames: { '#key': WORKFLOW.lockKeyAttribute, '#owner': WORKFLOW.lockOwnerAttribute },
    expressionAttributeValues: { ':owner': tasks.DynamoAttributeValue.fromString(sfn.JsonPath.stringAt('$$.Execution.Id')) },
    resultPath: sfn.JsonPath.DISCARD,
  });
  // Throttling and server errors are retried; the owner condition makes a repeated write harmless.
  claim.addRetry({
    errors: ['DynamoDB.ProvisionedThroughputExceededException', 'DynamoDB.ThrottlingException', 'DynamoDB.RequestLimitExceeded', 'DynamoDB.InternalServerErrorException', 'DynamoDB.AmazonDynamoDBException', 'States.Timeout'],
    interval: Duration.seconds(1),
    backoffRate: 2,
    maxAttempts: 8,
    jitterStrategy: sfn.JitterType.FULL,
  });

  const findOwner = new tasks.DynamoGetItem(scope, 'FindOwner', {
    comment: 'Another execution owns this occurrence: find it.',
    table: props.lockTable,
    key: { [WORKFLOW.lockKeyAttribute]: tasks.DynamoAttributeValue.fromString(sfn.JsonPath.stringAt('$.occurrence.lockKey')) },
    consistentRead: true,
    resultSelector: { 'owner.$': `$.Item.${WORKFLOW.lockOwnerAttribute}.S` },
    resultPath: '$.lock',
  });
  findOwner.addRetry({ errors: ['States.ALL'], interval: Duration.seconds(1), backoffRate: 2, maxAttempts: 4, jitterStrategy: sfn.JitterType.FULL });
  const duplicate = new sfn.Pass(scope, 'Duplicate', {
    comment: 'A repeated delivery: the owner runs the occurrence, this one does nothing.',
    parameters: {
      'status': 'duplicate',
      'scheduledTime.$': '$.occurrence.scheduledTime',
      'ownerExecution.$': '$.lock.owner',
    },
  });
  findOwner.addCatch(duplicate, { errors: ['States.ALL'], resultPath: '$.lock' });
  claim.addCatch(findOwner.next(duplicate), { errors: ['DynamoDB.ConditionalCheckFailedException'], resultPath: sfn.JsonPath.DISCARD });

  const step = new InvokeWorker(scope, 'SnapshotStep', {
    comment: 'Lists the selection, creates the missing sets from the cursor on, returns the next cursor.',
    lambdaFunction: props.worker,
    payload: sfn.TaskInput.fromObject({
      action: WORKFLOW.actionStep,
      request: props.requestJson,
      occurrence: sfn.JsonPath.objectAt('$.occurrence'),
      cursor: sfn.JsonPath.objectAt('$.cursor'),
    }),
    resultPath: '$.cursor',
    taskTimeout: sfn.Timeout.duration(t.stepTimeout),
  });
  // Only errors raised before the worker ran are retried at once. Any other failure may come after
  // the step created sets: it goes through RecoverStep, which waits for DescribeSnapshots to show
  // them before the step runs again from the same cursor.
  step.addRetry({ errors: NOT_INVOKED_ERRORS, interval: Duration.seconds(2), backoffRate: 2, maxAttempts: 6, jitterStrategy: sfn.JitterType.FULL });
  step.addCatch(rejected, { errors: [WORKFLOW.invalidInputError], resultPath: '$.error' });

  const recoveryWait = new sfn.Wait(scope, 'WaitBeforeStepAgain', {
    comment: 'The step failed without an answer: wait until its sets are visible, then run it again.',
    time: sfn.WaitTime.duration(t.recoveryWait),
  });
  const countRecovery = new sfn.Pass(scope, 'CountRecovery', {
    parameters: {
      'occurrence.$': '$.occurrence',
      'cursor.$': '$.cursor',
      'recoveries.$': 'States.MathAdd($.recoveries, 1)',
    },
  });
  const tooManyRecoveries = new sfn.Fail(scope, 'StepFailedTooOften', {
    error: 'WorkerStepFailed',
    causePath: '$.stepError.Cause',
    comment: `The worker step failed ${t.maxRecoveries} times in this run: see the worker's log.`,
  });
  const recoverable = new sfn.Choice(scope, 'RecoverStep')
    .when(sfn.Condition.numberGreaterThanEquals('$.recoveries', t.maxRecoveries), tooManyRecoveries)
    .otherwise(recoveryWait.next(countRecovery).next(step));
  step.addCatch(recoverable, { errors: ['States.ALL'], resultPath: '$.stepError' });

  const retryPassWait = new sfn.Wait(scope, 'WaitBeforeRetryPass', {
    comment: 'Some instances have no set yet: a new pass tries them again.',
    time: sfn.WaitTime.duration(t.retryPassWait),
  });
  const succeeded = new sfn.Succeed(scope, 'RunSucceeded', { outputPath: '$.cursor.summary' });
  const failed = new sfn.Fail(scope, 'RunFailed', {
    error: 'SnapshotRunFailed',
    causePath: '$.cursor.summaryText',
    comment: 'Some instances have no set of this occurrence, or old sets could not be deleted: the cause lists them by error code.',
  });
  const progress = new sfn.Choice(scope, 'RunProgress')
    .when(sfn.Condition.stringEquals('$.cursor.phase', WORKFLOW.phaseSnapshot), step)
    .when(sfn.Condition.stringEquals('$.cursor.phase', WORKFLOW.phasePrune), step)
    .when(sfn.Condition.stringEquals('$.cursor.phase', WORKFLOW.phaseWaitForRetryPass), retryPassWait.next(step));
  if (props.copies) {
    const copyWait = new sfn.Wait(scope, 'WaitForCopies', {
      comment: 'Copies to other Regions, or the sets they copy, are in progress: look again later.',
      time: sfn.WaitTime.duration(t.copyWait),
    });
    progress
      .when(sfn.Condition.stringEquals('$.cursor.phase', WORKFLOW.phaseCopy), step)
      .when(sfn.Condition.stringEquals('$.cursor.phase', WORKFLOW.phaseWaitForCopies), copyWait.next(step));
  }
  progress
    .when(sfn.Condition.stringEquals('$.cursor.result', WORKFLOW.resultSucceeded), succeeded)
    .otherwise(failed);

  return prepare.next(claim).next(step).next(progress);
}
