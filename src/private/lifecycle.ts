import { Duration, Token } from 'aws-cdk-lib';
import { MAX_LIFECYCLE_SECONDS, RetentionSpec, show } from './request-contract';

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
