import { Duration, Token } from 'aws-cdk-lib';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';

/**
 * CloudWatch's limits on a metric alarm (PutMetricAlarm): a period is a multiple of 60 seconds
 * (10, 20 and 30 only for high-resolution metrics) and at most 1 day; the period times the
 * evaluation periods is at most 7 days, and at most 1 day when the period is under an hour.
 *
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
 */
export const ALARM_LIMITS = {
  periodStepSeconds: 60,
  maxPeriodSeconds: 86_400,
  maxEvaluationSeconds: 604_800,
  shortPeriodSeconds: 3_600,
  maxShortEvaluationSeconds: 86_400,
} as const;

/**
 * Added to the schedule's interval: daylight-saving changes move a daily run by an hour, and the
 * metric comes when a run ends, so runs whose durations differ move it too.
 */
export const HEARTBEAT_SLACK = Duration.hours(2);

/** How the heartbeat alarm evaluates: `evaluationPeriods` periods that must all breach (missing data breaches). */
export interface HeartbeatPeriods {
  readonly period: Duration;
  readonly evaluationPeriods: number;
}

/**
 * The longest time between two runs, when the expression tells it: a `rate(...)`, or a cron that
 * runs every day (day of month, month, day of week and year all `*` or `?`: at least one run a day).
 * Anything else (weekly or monthly crons, one-time `at(...)`, tokens) is unknown.
 */
export function scheduleInterval(expression: scheduler.ScheduleExpression): Duration | undefined {
  const text = expression.expressionString;
  if (Token.isUnresolved(text)) return undefined;
  const rate = /^rate\((\d+) (minutes?|hours?|days?)\)$/.exec(text.trim());
  if (rate) {
    const value = Number(rate[1]);
    if (rate[2].startsWith('minute')) return Duration.minutes(value);
    if (rate[2].startsWith('hour')) return Duration.hours(value);
    return Duration.days(value);
  }
  const cron = /^cron\((.*)\)$/.exec(text.trim());
  if (cron) {
    const [, , dayOfMonth, month, dayOfWeek, year] = cron[1].trim().split(/\s+/);
    const any = (field: string | undefined) => field === '*' || field === '?';
    if (any(dayOfMonth) && month === '*' && any(dayOfWeek) && (year === undefined || year === '*')) {
      return Duration.days(1);
    }
  }
  return undefined;
}

/** The default heartbeat period: the interval plus slack and the flexible window, in whole minutes, if CloudWatch can evaluate it. */
export function defaultHeartbeatPeriod(expression: scheduler.ScheduleExpression, timeWindow?: scheduler.TimeWindow): Duration | undefined {
  const interval = scheduleInterval(expression);
  if (!interval) return undefined;
  const flexible = timeWindow?.maxWindow?.toSeconds() ?? 0;
  if (Token.isUnresolved(flexible)) return undefined;
  const seconds = Math.ceil((interval.toSeconds() + HEARTBEAT_SLACK.toSeconds() + flexible) / 60) * 60;
  return seconds <= ALARM_LIMITS.maxEvaluationSeconds ? Duration.seconds(seconds) : undefined;
}

/** Why a heartbeat period cannot be evaluated by CloudWatch, or undefined when it can. */
export function heartbeatPeriodProblem(period: Duration): string | undefined {
  const seconds = period.toMilliseconds({ integral: false }) / 1000;
  if (!Number.isInteger(seconds) || seconds % ALARM_LIMITS.periodStepSeconds !== 0 || seconds < 60 || seconds > ALARM_LIMITS.maxEvaluationSeconds) {
    return `heartbeatPeriod must be whole minutes from 1 minute to 7 days (CloudWatch evaluates an alarm over at most 7 days), got: ${period.toHumanString()}`;
  }
  return undefined;
}

/**
 * Splits a heartbeat period (whole minutes, at most 7 days) into alarm periods CloudWatch accepts:
 * one period when it is at most a day, otherwise the fewest periods of at most a day each whose sum
 * covers it (each a multiple of 60 seconds).
 */
export function heartbeatPeriods(heartbeat: Duration): HeartbeatPeriods {
  const minutes = heartbeat.toSeconds() / 60;
  const evaluationPeriods = Math.ceil(heartbeat.toSeconds() / ALARM_LIMITS.maxPeriodSeconds);
  return { period: Duration.minutes(Math.ceil(minutes / evaluationPeriods)), evaluationPeriods };
}
