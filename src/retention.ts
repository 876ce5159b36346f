import { Duration } from 'aws-cdk-lib';
import { CALENDAR_FIELDS, isDuration, isTokenValue, MAX_LIFECYCLE_SECONDS, RETENTION_RULE_FIELDS, RetentionRules, showDuration } from './private/lifecycle';
import { LIFECYCLE_LIMITS, show } from './private/request-contract';

/** The shortest age `Retention.age()` takes: a set younger than a run or two is no backup yet. */
const MIN_AGE_SECONDS = 3_600;

const TOKEN_REASON = 'the worker evaluates retention from the rendered request, so tokens are not supported';

/**
 * Calendar retention: the newest snapshot set of each of the last N hours, days, ISO weeks, months
 * and years that have sets, counted in the schedule's time zone (restic's `forget --keep-hourly`,
 * `--keep-daily`, ...).
 *
 * Each granularity counts on its own; a set is kept when any of them keeps it. Periods without a
 * set are skipped, not counted: `daily: 7` keeps the sets of the last 7 days that have one, even
 * after an outage. At least one granularity; each a whole number from 1 to 10,000.
 */
export interface CalendarRetentionProps {
  /**
   * Keep the newest set of each of the last N hours that have a set.
   *
   * @default - no hourly rule
   */
  readonly hourly?: number;

  /**
   * Keep the newest set of each of the last N days that have a set.
   *
   * @default - no daily rule
   */
  readonly daily?: number;

  /**
   * Keep the newest set of each of the last N ISO weeks (Monday to Sunday) that have a set.
   *
   * @default - no weekly rule
   */
  readonly weekly?: number;

  /**
   * Keep the newest set of each of the last N calendar months that have a set.
   *
   * @default - no monthly rule
   */
  readonly monthly?: number;

  /**
   * Keep the newest set of each of the last N calendar years that have a set.
   *
   * @default - no yearly rule
   */
  readonly yearly?: number;
}

/**
 * Which snapshot sets of a schedule to keep, per instance. Every set that no rule keeps is deleted
 * by the next run (`ec2:DeleteSnapshot`, only on snapshots tagged with this schedule's id).
 *
 * A set is every snapshot of one instance from one scheduled occurrence; its age is counted from
 * the occurrence's scheduled time. Whatever the rules say, a run never deletes the set it has just
 * made, nor the newest completed set of an instance the schedule still selects; sets whose
 * snapshots are still pending, back an AMI or are locked are kept until that ends.
 *
 * ```ts
 * Retention.count(14);                                     // the newest 14 sets
 * Retention.age(Duration.days(30));                        // every set younger than 30 days
 * Retention.calendar({ daily: 7, weekly: 4, monthly: 12 }); // restic's --keep-daily 7 --keep-weekly 4 --keep-monthly 12
 * Retention.anyOf(Retention.count(3), Retention.age(Duration.days(7)));
 * ```
 */
export class Retention {
  /**
   * Keep the newest N sets of each instance (sets that failed are not counted).
   *
   * @param sets how many sets to keep: 1 to 1,000 (Data Lifecycle Manager's range)
   */
  public static count(sets: number): Retention {
    refuseToken('Retention.count()', sets);
    if (!isWholeIn(sets, LIFECYCLE_LIMITS.minCount, LIFECYCLE_LIMITS.maxCount)) {
      throw new Error(`retention: Retention.count() takes ${LIFECYCLE_LIMITS.minCount} to ${LIFECYCLE_LIMITS.maxCount} sets, got: ${show(sets)}`);
    }
    return new Retention({ count: sets });
  }

  /**
   * Keep every set younger than this age (failed sets too), counted from its scheduled time.
   *
   * @param age whole seconds, from 1 hour to 36,600 days (100 years)
   */
  public static age(age: Duration): Retention {
    refuseToken('Retention.age()', age);
    const seconds = isDuration(age) ? age.toMilliseconds({ integral: false }) / 1000 : NaN;
    if (!isWholeIn(seconds, MIN_AGE_SECONDS, MAX_LIFECYCLE_SECONDS)) {
      throw new Error(`retention: Retention.age() takes whole seconds from 1 hour to 36600 days (100 years), got: ${showDuration(age)}`);
    }
    return new Retention({ maxAgeSeconds: seconds });
  }

  /**
   * Keep the newest set of each of the last N hours, days, ISO weeks, months or years that have
   * sets, in the schedule's time zone (UTC for a schedule without one).
   *
   * @param props at least one granularity, each 1 to 10,000
   */
  public static calendar(props: CalendarRetentionProps): Retention {
    if (typeof props !== 'object' || props === null) {
      throw new Error(`retention: Retention.calendar() takes an object with hourly, daily, weekly, monthly or yearly, got: ${show(props)}`);
    }
    const rules: { -readonly [K in keyof RetentionRules]: number } = {};
    for (const field of CALENDAR_FIELDS) {
      const value: unknown = props[field];
      if (value === undefined) continue;
      refuseToken(`Retention.calendar() ${field}`, value);
      if (!isWholeIn(value, 1, LIFECYCLE_LIMITS.maxCalendarBuckets)) {
        throw new Error(`retention: Retention.calendar() takes ${field} of 1 to ${LIFECYCLE_LIMITS.maxCalendarBuckets}, got: ${show(value)}`);
      }
      rules[field] = value as number;
    }
    if (Object.keys(rules).length === 0) {
      throw new Error(`retention: Retention.calendar() needs at least one of ${CALENDAR_FIELDS.join(', ')}, got: ${show(props)}`);
    }
    return new Retention(rules);
  }

  /**
   * Keep a set when any of the rules keeps it.
   *
   * @param rules one or more retentions
   */
  public static anyOf(...rules: Retention[]): Retention {
    if (rules.length === 0) {
      throw new Error('retention: Retention.anyOf() needs at least one rule, got: none');
    }
    const merged: { -readonly [K in keyof RetentionRules]: number } = {};
    for (const rule of rules) {
      if (!(rule instanceof Retention)) {
        throw new Error(`retention: Retention.anyOf() takes rules made with Retention.count(), .age(), .calendar() or .anyOf(), got: ${show(rule)}`);
      }
      // The union of two rules of one kind is that rule with the larger value, exactly: the newest N
      // sets and the newest M sets are the newest max(N, M); the newest set of each of the last N
      // days and of each of the last M days is that of each of the last max(N, M) days (the buckets
      // are the same, counted from the newest); younger than A or younger than B is younger than
      // max(A, B). Rules of different kinds stay side by side, and the worker keeps a set when any
      // of them keeps it: so the merged rules keep exactly what any of the given ones keeps.
      for (const field of RETENTION_RULE_FIELDS) {
        const value = rule.rules[field];
        if (value !== undefined) merged[field] = Math.max(merged[field] ?? 0, value);
      }
    }
    return new Retention(merged);
  }

  private constructor(private readonly rules: RetentionRules) {}

  /**
   * The rules as the request contract holds them (without the schedule's time zone and gone-instance period).
   *
   * @internal
   */
  public _render(): RetentionRules {
    return { ...this.rules };
  }
}

function isWholeIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

function refuseToken(factory: string, value: unknown): void {
  if (isTokenValue(value)) {
    throw new Error(`retention: ${factory} takes a value written out in the app (${TOKEN_REASON}), got: an unresolved token`);
  }
}
