import { Annotations, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/** IAM's limit on the inline policies of one role, in characters without white space. */
export const ROLE_INLINE_POLICY_LIMIT = 10_240;

/**
 * Longest text each CloudFormation value can resolve to: pseudo parameters at their longest,
 * anything else (an ARN, a name) at a generous 200 characters.
 */
const PSEUDO_LENGTHS: Record<string, number> = {
  'AWS::Partition': 'aws-iso-b'.length + 1,
  'AWS::Region': 'ap-southeast-5'.length + 2,
  'AWS::AccountId': 12,
  'AWS::URLSuffix': 'amazonaws.com.cn'.length,
  'AWS::StackName': 128,
};
const OTHER_REFERENCE_LENGTH = 200;

/** The largest size, in characters without white space, that IAM may count for these documents once deployed. */
export function policySizeUpperBound(scope: Construct, documents: iam.PolicyDocument[]): number {
  const stack = Stack.of(scope);
  return documents.reduce((sum, doc) => sum + measure(stack.resolve(doc.toJSON())), 0);
}

function measure(value: unknown): number {
  if (typeof value === 'string') return JSON.stringify(value).replace(/\s/g, '').length;
  if (typeof value !== 'object' || value === null) return JSON.stringify(value).length;
  if (Array.isArray(value)) return 2 + value.reduce((n: number, v) => n + measure(v) + 1, 0);
  const record = value as Record<string, unknown>;
  if ('Ref' in record) return 2 + (PSEUDO_LENGTHS[record.Ref as string] ?? OTHER_REFERENCE_LENGTH);
  if ('Fn::GetAtt' in record || 'Fn::ImportValue' in record) return 2 + OTHER_REFERENCE_LENGTH;
  if ('Fn::Join' in record) {
    const [sep, parts] = record['Fn::Join'] as [string, unknown[]];
    return parts.reduce((n: number, p) => n + (typeof p === 'string' ? p.length : measure(p) - 2), 2) + sep.length * Math.max(0, parts.length - 1);
  }
  return 2 + Object.entries(record).reduce((n, [k, v]) => n + JSON.stringify(k).length + 1 + measure(v) + 1, 0);
}

/**
 * Warns at synth time when a role's inline policies may exceed IAM's limit once deployed
 * (computed from the documents, tokens counted at their longest), and fails when they surely do.
 */
export function warnIfPolicyTooLarge(
  scope: Construct,
  roleName: string,
  documents: iam.PolicyDocument[],
  remedy = 'fewer instanceTags values or a shorter scheduleId (by default the construct path) keep it deployable',
): number {
  const size = policySizeUpperBound(scope, documents);
  if (size > ROLE_INLINE_POLICY_LIMIT) {
    Annotations.of(scope).addWarningV2('cdk-instance-snapshots:policyTooLarge',
      `the inline policy of ${roleName} may reach ${size} characters once deployed, and IAM allows ${ROLE_INLINE_POLICY_LIMIT} per role: `
      + remedy);
  }
  return size;
}
