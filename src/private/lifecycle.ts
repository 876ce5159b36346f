import { Duration, Token } from 'aws-cdk-lib';
import { CopyRuleSpec, MAX_LIFECYCLE_SECONDS, RetentionSpec, show } from './request-contract';
import type { Retention } from '../retention';
import type { SnapshotCopyRule } from '../snapshot-copy';

/**
 * The rules of a `Retention`, as the request contract's `RetentionSpec` holds them. The time zone
 * and the gone-instance period come from the schedule and are added when the request is rendered.
 */
export type RetentionRules = Omit<RetentionSpec, 'timeZone' | 'goneInstanceSeconds'>;

/** The calendar fields of a retention, finest first. */
export const CALENDAR_FIELDS = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;

/** Every field of `RetentionRules`. */
export const RETENTION_RULE_FIELDS = ['count', 'maxAgeSeconds', ...CALENDAR_FIELDS] as const;

export { MAX_LIFECYCLE_SECONDS };

/** The gone-instance period when `goneInstanceRetention` is not given (a schedule's and a vault's). */
export const DEFAULT_GONE_INSTANCE_RETENTION = Duration.days(90);

/** What an error message shows of a duration: its human form, or that it is a token. */
export function showDuration(value: unknown): string {
  if (!isDuration(value)) return show(value);
  return value.isUnresolved() ? 'an unresolved token' : value.toHumanString();
}

/** True for an aws-cdk-lib `Duration` (duck-typed: the app may load another copy of aws-cdk-lib). */
export function isDuration(value: unknown): value is Duration {
  return typeof value === 'object' && value !== null
    && typeof (value as Duration).toMilliseconds === 'function' && typeof (value as Duration).isUnresolved === 'function';
}

/**
 * A duration as a whole number of `unitSeconds` within [min, max], or undefined when it is not one
 * (not a Duration, a token, a fraction of the unit or out of range).
 */
export function wholeUnits(value: unknown, unitSeconds: number, min: number, max: number): number | undefined {
  if (!isDuration(value) || value.isUnresolved()) return undefined;
  const units = value.toMilliseconds({ integral: false }) / 1000 / unitSeconds;
  return Number.isInteger(units) && units >= min && units <= max ? units : undefined;
}

/** True when the value is a token: a number, or a duration built from one. */
export function isTokenValue(value: unknown): boolean {
  if (isDuration(value)) return value.isUnresolved();
  return (typeof value === 'number' || typeof value === 'string') && Token.isUnresolved(value);
}

/** What a schedule adds to every retention it renders: its time zone and its gone-instance period. */
export interface RetentionContext {
  readonly timeZone: string;
  readonly goneInstanceSeconds: number;
}

/** A retention as the request contract holds it: its rules, with the schedule's time zone and gone-instance period. */
export function renderRetentionSpec(retention: Retention, context: RetentionContext): RetentionSpec {
  return { ...retention._render(), timeZone: context.timeZone, goneInstanceSeconds: context.goneInstanceSeconds };
}

/**
 * Copy rules as the request contract holds them (props checked by `validateProps` first): `copyTags`
 * true unless false, the rule's retention or else the schedule's, rendered like the schedule's own,
 * and the completion duration in minutes. Fields a rule leaves out are left out.
 */
export function renderCopyRules(
  rules: readonly SnapshotCopyRule[],
  scheduleRetention: Retention | undefined,
  context: RetentionContext,
): CopyRuleSpec[] {
  return rules.map((rule) => {
    const retention = rule.retention ?? scheduleRetention;
    const minutes = rule.completionDuration?.toMinutes({ integral: false });
    return {
      region: rule.region,
      ...(rule.kmsKeyArn !== undefined ? { kmsKeyArn: rule.kmsKeyArn } : {}),
      copyTags: rule.copyTags ?? true,
      ...(retention ? { retention: renderRetentionSpec(retention, context) } : {}),
      ...(minutes !== undefined ? { completionDurationMinutes: minutes } : {}),
    };
  });
}
