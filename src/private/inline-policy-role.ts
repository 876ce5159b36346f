import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/** What an `InlinePolicyRole` takes: a role's props without inline policies, and the name of its one inline policy. */
export interface InlinePolicyRoleProps {
  readonly assumedBy: iam.IPrincipal;
  readonly description?: string;
  /** The name of the role's single inline policy. */
  readonly policyName: string;
  /** Statements known when the role is created; L2s and grants add theirs later. */
  readonly statements?: iam.PolicyStatement[];
}

/**
 * A role whose every permission lives in one inline policy of the role itself.
 *
 * aws-cdk-lib's L2s (the Scheduler target, the state machine and its tasks, `grant*` calls) add
 * their statements through `addToPrincipalPolicy`, which on a plain `iam.Role` creates a separate
 * `AWS::IAM::Policy` resource (`DefaultPolicy`). Here they go into the role's inline policy instead:
 * the same statements, one CloudFormation resource fewer per role (a stack holds at most 500), and
 * no window in which the role exists without its permissions.
 */
export class InlinePolicyRole extends iam.Role {
  /** The role's inline policy: every statement the role has. */
  public readonly document: iam.PolicyDocument;

  constructor(scope: Construct, id: string, props: InlinePolicyRoleProps) {
    const document = new iam.PolicyDocument({ statements: props.statements });
    super(scope, id, {
      assumedBy: props.assumedBy,
      description: props.description,
      inlinePolicies: { [props.policyName]: document },
    });
    this.document = document;
  }

  /** Adds the statement to the role's inline policy (never to a separate policy resource). */
  public addToPrincipalPolicy(statement: iam.PolicyStatement): iam.AddToPrincipalPolicyResult {
    this.document.addStatements(statement);
    // Whatever depends on the statement depends on the role, which carries it.
    return { statementAdded: true, policyDependable: this };
  }
}
