import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';

/**
 * `LambdaInvoke` that grants the scheduler's role `lambda:InvokeFunction` on the function's
 * unqualified ARN only. The stock target also grants `<function arn>:*` (every version and
 * alias), which the schedule never invokes and which cdk-nag reports as a wildcard (IAM5).
 */
export class UnqualifiedLambdaInvoke extends targets.LambdaInvoke {
  private readonly fn: lambda.IFunction;

  constructor(fn: lambda.IFunction, props: targets.ScheduleTargetBaseProps) {
    super(fn, props);
    this.fn = fn;
  }

  protected addTargetActionToRole(role: iam.IRole): void {
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['lambda:InvokeFunction'],
      resources: [this.fn.functionArn],
    }));
  }
}
