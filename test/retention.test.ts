/**
 * Retention decisions: which of a schedule's snapshot sets the rules no longer keep, which of those
 * must wait (pending, locked), and which snapshots are not the schedule's to judge at all.
 */
import { calendarBuckets, decideRetention, ListedSnapshot, RetentionDecision } from '../lambda/retention';
import { RetentionSpec } from '../src/private/request-contract';

const SCHEDULE = 'Stack/Nightly';
const I1 = 'i-0aaaaaaaaaaaaaaa1';
const I2 = 'i-0bbbbbbbbbbbbbbb2';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.parse('2026-11-24T12:00:00Z');

/** A scheduled time as the library writes it (canonical: no fraction for whole seconds). */
function iso(ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

interface SetOptions {
  readonly volumes?: string[];
  /** One state for every snapshot, or one per volume. */
  readonly state?: string | string[];
  readonly startTimeMs?: number;
  /** Distinguishes the snapshots of a second CreateSnapshots call for the same occurrence. */
  readonly call?: string;
}

/** The snapshots of one CreateSnapshots call: one per volume, all with the call's start time. */
function set(instanceId: string, scheduledTime: string, options: SetOptions = {}): ListedSnapshot[] {
  const volumes = options.volumes ?? ['vol-a', 'vol-b'];
  const state = options.state ?? 'completed';
  const states = typeof state === 'string' ? volumes.map(() => state) : state;
  const startTimeMs = options.startTimeMs ?? Date.parse(scheduledTime) + 60_000;
  return volumes.map((volumeId, k) => ({
    snapshotId: `snap-${instanceId}-${scheduledTime}-${options.call ?? '1'}-${volumeId}`,
    volumeId,
    state: states[k],
    startTimeMs,
    scheduleId: SCHEDULE,
    instanceId,
    scheduledTime,
  }));
}

/** One completed set of `I1` per scheduled time. */
function sets(times: string[], instanceId = I1): ListedSnapshot[] {
  return times.flatMap((t) => set(instanceId, t));
}

interface DecideOptions {
  readonly live?: string[];
  readonly current?: string;
  readonly nowMs?: number;
  readonly locks?: Record<string, number>;
  readonly inUse?: Record<string, string>;
}

function decide(snapshots: ListedSnapshot[], rules: Partial<RetentionSpec>, options: DecideOptions = {}): RetentionDecision {
  return decideRetention({
    scheduleId: SCHEDULE,
    rules: { timeZone: 'UTC', goneInstanceSeconds: 7 * 86_400, ...rules },
    snapshots,
    liveInstanceIds: new Set(options.live ?? [I1]),
    currentScheduledTime: options.current ?? iso(NOW),
    nowMs: options.nowMs ?? NOW,
    lockedUntilMs: options.locks ? new Map(Object.entries(options.locks)) : undefined,
    inUseBy: options.inUse ? new Map(Object.entries(options.inUse)) : undefined,
  });
}

/** The scheduled times of an instance's sets that keep a snapshot (neither deleted nor held), newest first. */
function keptTimes(snapshots: ListedSnapshot[], decision: RetentionDecision, instanceId = I1): string[] {
  const gone = new Set([...decision.toDelete, ...decision.held].flatMap((s) => s.snapshotIds));
  const times = new Set(snapshots.filter((s) => s.instanceId === instanceId && !gone.has(s.snapshotId)).map((s) => s.scheduledTime!));
  return [...times].sort().reverse();
}

/** `toDelete` as `time reason`, in the order returned. */
function deleted(decision: RetentionDecision): string[] {
  return decision.toDelete.map((s) => `${s.scheduledTime} ${s.reason}`);
}

/** `n` scheduled times `stepMs` apart, ending at `lastMs`, oldest first. */
function series(lastMs: number, stepMs: number, n: number): string[] {
  return Array.from({ length: n }, (_, k) => iso(lastMs - (n - 1 - k) * stepMs));
}

/** Daily times at 02:30 UTC from `first` to `last` (dates), oldest first. */
function daily(first: string, last: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(`${first}T02:30:00Z`); t <= Date.parse(`${last}T02:30:00Z`); t += DAY) out.push(iso(t));
  return out;
}

describe('ownership', () => {
  const owned = sets(['2026-11-21T02:30:00Z', '2026-11-22T02:30:00Z', '2026-11-23T02:30:00Z']);
  const lookAlike = (change: Partial<ListedSnapshot>): ListedSnapshot => ({ ...set(I1, '2026-11-20T02:30:00Z')[0], snapshotId: 'snap-foreign', ...change });

  test.each<[string, Partial<ListedSnapshot>]>([
    ['another schedule', { scheduleId: 'Stack/Weekly' }],
    ['the same schedule id in another case', { scheduleId: 'stack/nightly' }],
    ['the schedule id with a trailing space', { scheduleId: `${SCHEDULE} ` }],
    ['no schedule tag', { scheduleId: undefined }],
    ['no instance tag', { instanceId: undefined }],
    ['an empty instance tag', { instanceId: '' }],
    ['no scheduled-time tag', { scheduledTime: undefined }],
    ['a scheduled time with a zero fraction (not canonical)', { scheduledTime: '2026-11-20T02:30:00.000Z' }],
    ['a scheduled time with an offset', { scheduledTime: '2026-11-20T03:30:00+01:00' }],
    ['a date without a time', { scheduledTime: '2026-11-20' }],
    ['a date that does not exist', { scheduledTime: '2026-02-30T02:30:00Z' }],
    ['a scheduled time that is not a time', { scheduledTime: 'yesterday' }],
  ])('GIVEN a snapshot with %s among old sets THEN it is ignored and counted, never deleted', (_name, change) => {
    const snapshots = [...owned, lookAlike(change)];

    const decision = decide(snapshots, { count: 1 });

    expect(decision.ignored).toBe(1);
    expect([...decision.toDelete, ...decision.held].flatMap((s) => s.snapshotIds)).not.toContain('snap-foreign');
    expect(deleted(decision)).toEqual(['2026-11-21T02:30:00Z rules', '2026-11-22T02:30:00Z rules']);
    expect(decision.kept).toBe(1);
  });

  test('GIVEN only another schedule\'s snapshots THEN nothing is decided about them', () => {
    const foreign = sets(series(NOW - DAY, DAY, 5)).map((s) => ({ ...s, scheduleId: 'Other/Schedule' }));

    const decision = decide(foreign, { count: 1 });

    expect(decision).toEqual({ toDelete: [], held: [], kept: 0, ignored: 10 });
  });
});

describe('count', () => {
  const times = series(NOW - DAY, DAY, 5);

  test.each([
    [1, 1],
    [2, 2],
    [4, 4],
    [5, 5],
    [9, 5],
  ])('GIVEN 5 daily sets and count %d THEN the newest %d are kept and the rest deleted oldest first', (count, keep) => {
    const snapshots = sets(times);

    const decision = decide(snapshots, { count });

    expect(keptTimes(snapshots, decision)).toEqual(times.slice(5 - keep).reverse());
    expect(deleted(decision)).toEqual(times.slice(0, 5 - keep).map((t) => `${t} rules`));
    expect(decision.kept).toBe(keep);
  });

  test('GIVEN the newest sets are pending THEN they count toward N', () => {
    const snapshots = [...sets(times.slice(0, 3)), ...set(I1, times[3], { state: 'pending' }), ...set(I1, times[4], { state: 'pending' })];

    const decision = decide(snapshots, { count: 2 });

    // count keeps the two pending sets; the newest completed one is protected.
    expect(keptTimes(snapshots, decision)).toEqual([times[4], times[3], times[2]]);
    expect(deleted(decision)).toEqual([`${times[0]} rules`, `${times[1]} rules`]);
    expect(decision.held).toEqual([]);
  });

  test('GIVEN the newest set failed THEN it does not count toward N and is deleted as failed', () => {
    const snapshots = [...sets(times.slice(0, 4)), ...set(I1, times[4], { state: ['completed', 'error'] })];

    const decision = decide(snapshots, { count: 2 });

    expect(keptTimes(snapshots, decision)).toEqual([times[3], times[2]]);
    expect(deleted(decision)).toEqual([`${times[0]} rules`, `${times[1]} rules`, `${times[4]} failed`]);
  });

  test('GIVEN two sets with the same start time THEN the later scheduled time is the newer set', () => {
    const startTimeMs = NOW - HOUR;
    const older = set(I1, '2026-11-23T02:30:00Z', { startTimeMs }).map((s) => ({ ...s, snapshotId: `snap-0${s.volumeId}` }));
    const newer = set(I1, '2026-11-24T02:30:00Z', { startTimeMs }).map((s) => ({ ...s, snapshotId: `snap-9${s.volumeId}` }));

    const decision = decide([...newer, ...older], { count: 1 });

    expect(deleted(decision)).toEqual(['2026-11-23T02:30:00Z rules']);
    expect(decision.toDelete[0].snapshotIds).toEqual(['snap-0vol-a', 'snap-0vol-b']);
  });
});

describe('age', () => {
  test('GIVEN sets around the age limit THEN those younger than it are kept and one exactly at it is deleted', () => {
    const times = [iso(NOW - 3 * DAY), iso(NOW - 2 * DAY), iso(NOW - 2 * DAY + 1000), iso(NOW - DAY), iso(NOW - HOUR)];
    const snapshots = sets(times);

    const decision = decide(snapshots, { maxAgeSeconds: 2 * 86_400 });

    expect(keptTimes(snapshots, decision)).toEqual([times[4], times[3], times[2]]);
    expect(deleted(decision)).toEqual([`${times[0]} rules`, `${times[1]} rules`]);
  });

  test('GIVEN failed sets THEN the age rule keeps the young ones and the old ones are deleted as failed', () => {
    const young = iso(NOW - HOUR);
    const old = iso(NOW - 3 * DAY);
    const snapshots = [...set(I1, old, { state: 'error' }), ...sets([iso(NOW - 2 * DAY)]), ...set(I1, young, { state: ['error', 'completed'] })];

    const decision = decide(snapshots, { maxAgeSeconds: 86_400 });

    expect(keptTimes(snapshots, decision)).toEqual([young, iso(NOW - 2 * DAY)]);
    expect(deleted(decision)).toEqual([`${old} failed`]);
  });
});

describe('calendar rules', () => {
  test.each<[string, Partial<RetentionSpec>, string[], string[]]>([
    ['hourly 2', { hourly: 2 },
      ['2026-11-24T09:10:00Z', '2026-11-24T09:40:00Z', '2026-11-24T10:10:00Z', '2026-11-24T10:40:00Z', '2026-11-24T11:10:00Z', '2026-11-24T11:40:00Z'],
      ['2026-11-24T11:40:00Z', '2026-11-24T10:40:00Z']],
    ['hourly 3, hours without sets skipped', { hourly: 3 },
      ['2026-11-24T05:40:00Z', '2026-11-24T08:10:00Z', '2026-11-24T08:40:00Z', '2026-11-24T11:40:00Z'],
      ['2026-11-24T11:40:00Z', '2026-11-24T08:40:00Z', '2026-11-24T05:40:00Z']],
    ['daily 3', { daily: 3 },
      ['2026-11-20T02:00:00Z', '2026-11-20T14:00:00Z', '2026-11-21T02:00:00Z', '2026-11-22T02:00:00Z', '2026-11-22T14:00:00Z', '2026-11-23T22:00:00Z'],
      ['2026-11-23T22:00:00Z', '2026-11-22T14:00:00Z', '2026-11-21T02:00:00Z']],
    ['weekly 2 (weeks start on Monday)', { weekly: 2 },
      daily('2026-11-08', '2026-11-24'),
      ['2026-11-24T02:30:00Z', '2026-11-22T02:30:00Z']],
    ['monthly 2', { monthly: 2 },
      ['2026-09-15T02:30:00Z', '2026-09-30T02:30:00Z', '2026-10-01T02:30:00Z', '2026-10-31T23:30:00Z', '2026-11-01T00:30:00Z', '2026-11-20T02:30:00Z'],
      ['2026-11-20T02:30:00Z', '2026-10-31T23:30:00Z']],
    ['yearly 2', { yearly: 2 },
      ['2024-06-01T02:30:00Z', '2024-12-31T02:30:00Z', '2025-01-01T02:30:00Z', '2025-12-31T22:00:00Z', '2026-03-01T02:30:00Z', '2026-11-20T02:30:00Z'],
      ['2026-11-20T02:30:00Z', '2025-12-31T22:00:00Z']],
  ])('GIVEN %s THEN the newest set of each of the last buckets with sets is kept', (_name, rules, times, kept) => {
    const snapshots = sets(times);

    const decision = decide(snapshots, rules);

    expect(keptTimes(snapshots, decision)).toEqual(kept);
    expect(decision.toDelete.map((s) => s.scheduledTime)).toEqual(times.filter((t) => !kept.includes(t)));
    expect(decision.kept).toBe(kept.length);
  });

  test('GIVEN the newest set of a day failed THEN the day keeps its newest set that did not fail', () => {
    const snapshots = [...sets(['2026-11-22T02:00:00Z', '2026-11-23T02:00:00Z']), ...set(I1, '2026-11-22T14:00:00Z', { state: 'error' })];

    const decision = decide(snapshots, { daily: 2 });

    expect(keptTimes(snapshots, decision)).toEqual(['2026-11-23T02:00:00Z', '2026-11-22T02:00:00Z']);
    expect(deleted(decision)).toEqual(['2026-11-22T14:00:00Z failed']);
  });

  test.each<[string, string, string[]]>([
    ['UTC', 'UTC', ['2026-11-21T09:00:00Z', '2026-11-20T12:30:00Z']],
    // 12:30Z is 01:30 on 21 November in Auckland (UTC+13): the same day as 21 November 09:00Z.
    ['Pacific/Auckland', 'Pacific/Auckland', ['2026-11-21T09:00:00Z', '2026-11-20T09:00:00Z']],
  ])('GIVEN daily 2 in %s THEN days are the zone\'s days', (_name, timeZone, kept) => {
    const snapshots = sets(['2026-11-20T09:00:00Z', '2026-11-20T12:30:00Z', '2026-11-21T09:00:00Z']);

    const decision = decide(snapshots, { daily: 2, timeZone });

    expect(keptTimes(snapshots, decision)).toEqual(kept);
  });

  test.each<[string, string, Partial<RetentionSpec>, string[], string[]]>([
    // 25-hour day: 00:30 CEST (22:30Z the day before) and 23:30 CET (22:30Z) are both 25 October.
    ['Europe/Berlin falls back', 'Europe/Berlin', { daily: 2 },
      ['2026-10-24T21:30:00Z', '2026-10-24T22:30:00Z', '2026-10-25T22:30:00Z', '2026-10-25T23:30:00Z'],
      ['2026-10-25T23:30:00Z', '2026-10-25T22:30:00Z']],
    // 23-hour day: 00:30 CET (23:30Z the day before) and 23:30 CEST (21:30Z) are both 29 March.
    ['Europe/Berlin springs forward', 'Europe/Berlin', { daily: 2 },
      ['2026-03-28T22:30:00Z', '2026-03-28T23:30:00Z', '2026-03-29T21:30:00Z', '2026-03-29T22:30:00Z'],
      ['2026-03-29T22:30:00Z', '2026-03-29T21:30:00Z']],
    // 00:30 EDT (04:30Z) and 23:30 EST (04:30Z the next day) are both 1 November.
    ['America/New_York falls back', 'America/New_York', { daily: 2 },
      ['2026-10-31T23:30:00Z', '2026-11-01T04:30:00Z', '2026-11-02T04:30:00Z', '2026-11-02T05:30:00Z'],
      ['2026-11-02T05:30:00Z', '2026-11-02T04:30:00Z']],
    // 00:30 EST (05:30Z) and 23:30 EDT (03:30Z the next day) are both 8 March.
    ['America/New_York springs forward', 'America/New_York', { daily: 2 },
      ['2026-03-08T04:30:00Z', '2026-03-08T05:30:00Z', '2026-03-09T03:30:00Z', '2026-03-09T04:30:00Z'],
      ['2026-03-09T04:30:00Z', '2026-03-09T03:30:00Z']],
    // 01:15 and 01:45 happen twice on 1 November: in EDT (05:xxZ) and in EST (06:xxZ). Each is an hour of its own.
    ['America/New_York repeats an hour', 'America/New_York', { hourly: 2 },
      ['2026-11-01T04:45:00Z', '2026-11-01T05:15:00Z', '2026-11-01T05:45:00Z', '2026-11-01T06:15:00Z', '2026-11-01T06:45:00Z'],
      ['2026-11-01T06:45:00Z', '2026-11-01T05:45:00Z']],
    // 01:30 CET (00:30Z) is followed by 03:30 CEST (01:30Z): adjacent hours.
    ['Europe/Berlin skips an hour', 'Europe/Berlin', { hourly: 2 },
      ['2026-03-28T23:45:00Z', '2026-03-29T00:15:00Z', '2026-03-29T00:45:00Z', '2026-03-29T01:30:00Z'],
      ['2026-03-29T01:30:00Z', '2026-03-29T00:45:00Z']],
    // India is 5:30 ahead of UTC: 10:10Z (15:40) and 10:40Z (16:10) are two local hours in one UTC hour.
    ['Asia/Kolkata is half an hour off UTC', 'Asia/Kolkata', { hourly: 2 },
      ['2026-11-24T09:20:00Z', '2026-11-24T10:10:00Z', '2026-11-24T10:40:00Z'],
      ['2026-11-24T10:40:00Z', '2026-11-24T10:10:00Z']],
  ])('GIVEN %s THEN calendar buckets follow local time', (_name, timeZone, rules, times, kept) => {
    const snapshots = sets(times);

    const decision = decide(snapshots, { ...rules, timeZone });

    expect(keptTimes(snapshots, decision)).toEqual(kept);
    expect(decision.toDelete.map((s) => s.scheduledTime)).toEqual(times.filter((t) => !kept.includes(t)));
  });

  test('GIVEN weekly 2 across a year end THEN 2026-12-31 and 2027-01-01 are one ISO week (2026-W53)', () => {
    const times = ['2026-12-27T02:30:00Z', '2026-12-31T02:30:00Z', '2027-01-01T02:30:00Z'];
    const snapshots = sets(times);

    const decision = decide(snapshots, { weekly: 2 }, { nowMs: Date.parse('2027-01-02T00:00:00Z') });

    expect(keptTimes(snapshots, decision)).toEqual(['2027-01-01T02:30:00Z', '2026-12-27T02:30:00Z']);
    expect(deleted(decision)).toEqual(['2026-12-31T02:30:00Z rules']);
  });

  test.each([
    ['2026-12-27T12:00:00Z', 'UTC', '2026-W52'],
    ['2026-12-28T00:00:00Z', 'UTC', '2026-W53'],
    ['2026-12-31T12:00:00Z', 'UTC', '2026-W53'],
    ['2027-01-01T12:00:00Z', 'UTC', '2026-W53'],
    ['2027-01-03T23:30:00Z', 'UTC', '2026-W53'],
    ['2027-01-03T23:30:00Z', 'Pacific/Auckland', '2027-W01'],
    ['2024-12-30T12:00:00Z', 'UTC', '2025-W01'],
    ['2021-01-03T12:00:00Z', 'UTC', '2020-W53'],
    ['2026-11-24T12:00:00Z', 'UTC', '2026-W48'],
  ])('GIVEN %s in %s THEN its ISO week is %s', (time, timeZone, week) => {
    expect(calendarBuckets(Date.parse(time), timeZone).weekly).toBe(week);
  });

  test('GIVEN an instant THEN its buckets are its local hour, day, month and year', () => {
    expect(calendarBuckets(Date.parse('2026-12-31T23:30:00Z'), 'Pacific/Auckland')).toEqual({
      hourly: '2027-01-01T12+780', daily: '2027-01-01', weekly: '2026-W53', monthly: '2027-01', yearly: '2027',
    });
    expect(calendarBuckets(Date.parse('2026-11-01T06:15:00Z'), 'America/New_York').hourly).toBe('2026-11-01T01-300');
    expect(calendarBuckets(Date.parse('2026-11-01T05:15:00Z'), 'America/New_York').hourly).toBe('2026-11-01T01-240');
  });
});

describe('rules together', () => {
  const times = daily('2026-09-20', '2026-11-24');
  const snapshots = sets(times);
  const rules = { count: 3, maxAgeSeconds: 5 * 86_400, weekly: 2, monthly: 3 };

  test('GIVEN count, age, weekly and monthly THEN a set is kept when any of them keeps it', () => {
    const decision = decide(snapshots, rules);

    expect(keptTimes(snapshots, decision)).toEqual([
      '2026-11-24T02:30:00Z', '2026-11-23T02:30:00Z', '2026-11-22T02:30:00Z', // count (and weekly: 22 November is a Sunday)
      '2026-11-21T02:30:00Z', '2026-11-20T02:30:00Z', // age
      '2026-10-31T02:30:00Z', '2026-09-30T02:30:00Z', // monthly
    ]);
    expect(decision.kept).toBe(7);
    expect(decision.toDelete).toHaveLength(times.length - 7);
    expect(decision.toDelete.every((s) => s.reason === 'rules')).toBe(true);
  });

  test.each<[string, Partial<RetentionSpec>, number]>([
    ['count alone', { count: 3 }, 3],
    ['age alone', { maxAgeSeconds: 5 * 86_400 }, 5],
    ['weekly alone', { weekly: 2 }, 2],
    ['monthly alone', { monthly: 3 }, 3],
  ])('GIVEN %s THEN it keeps fewer sets than all of them together', (_name, rule, kept) => {
    expect(decide(snapshots, rule).kept).toBe(kept);
  });
});

describe('protections', () => {
  const times = series(NOW - DAY, DAY, 5);

  test.each<[string, Partial<RetentionSpec>, string[]]>([
    ['the newest sets failed and only an age rule', { maxAgeSeconds: 3600 }, ['completed', 'completed', 'completed', 'error', 'error']],
    ['the newest sets are pending and count 2', { count: 2 }, ['completed', 'completed', 'completed', 'pending', 'pending']],
    ['the newest set failed and count 1 over pending sets', { count: 1 }, ['completed', 'completed', 'completed', 'pending', 'error']],
    ['the newest sets are pending and daily 1', { daily: 1 }, ['completed', 'completed', 'completed', 'pending', 'pending']],
  ])('GIVEN a live instance where %s THEN its newest completed set is kept', (_name, rules, states) => {
    const snapshots = times.flatMap((t, k) => set(I1, t, { state: states[k] }));

    const decision = decide(snapshots, rules);

    expect(keptTimes(snapshots, decision)).toContain(times[2]);
    expect([...decision.toDelete, ...decision.held].map((s) => s.scheduledTime)).toEqual(expect.arrayContaining([times[0], times[1]]));
  });

  test('GIVEN the current occurrence failed and is older than count keeps THEN it is kept', () => {
    const current = times[1];
    const snapshots = times.flatMap((t) => set(I1, t, { state: t === current ? ['error', 'completed'] : 'completed' }));

    const decision = decide(snapshots, { count: 1 }, { current });

    expect(keptTimes(snapshots, decision)).toEqual([times[4], current]);
    expect(decision.kept).toBe(2);
    expect(deleted(decision)).toEqual([`${times[0]} rules`, `${times[2]} rules`, `${times[3]} rules`]);
  });

  test('GIVEN the current occurrence written with a zero fraction THEN its canonical set is kept', () => {
    const snapshots = sets(times);

    const decision = decide(snapshots, { count: 1 }, { current: times[0].replace('Z', '.000Z') });

    expect(keptTimes(snapshots, decision)).toEqual([times[4], times[0]]);
  });
});

describe('gone instances', () => {
  const rules = { count: 1, goneInstanceSeconds: 7 * 86_400 };

  test('GIVEN a gone instance within its grace period THEN it is treated as a live instance', () => {
    const times = series(NOW - 3 * DAY, DAY, 4);
    const snapshots = [...sets(times, I2).slice(0, 6), ...set(I2, times[3], { state: 'error' })];

    const decision = decide(snapshots, rules, { live: [I1] });

    expect(keptTimes(snapshots, decision, I2)).toEqual([times[2]]);
    expect(deleted(decision)).toEqual([`${times[0]} rules`, `${times[1]} rules`, `${times[3]} failed`]);
  });

  test('GIVEN a gone instance within its grace period whose newest sets failed THEN its newest completed set is protected', () => {
    const times = series(NOW - 3 * DAY, DAY, 4);
    const snapshots = [...sets(times.slice(0, 2), I2), ...set(I2, times[2], { state: 'error' }), ...set(I2, times[3], { state: 'error' })];

    const decision = decide(snapshots, { maxAgeSeconds: 3600 }, { live: [] });

    expect(keptTimes(snapshots, decision, I2)).toEqual([times[1]]);
    expect(deleted(decision)).toEqual([`${times[0]} rules`, `${times[2]} failed`, `${times[3]} failed`]);
  });

  test.each([
    ['one second before the grace period ends', 7 * DAY - 1000, ['rules', 'rules', 'rules'], 1],
    ['when the grace period ends', 7 * DAY, ['gone', 'gone', 'gone', 'gone'], 0],
    ['long after the grace period', 400 * DAY, ['gone', 'gone', 'gone', 'gone'], 0],
  ])('GIVEN a gone instance whose newest set is %s old THEN count and protection apply only within it', (_name, ageMs, reasons, kept) => {
    const snapshots = sets(series(NOW - ageMs, DAY, 4), I2);

    const decision = decide(snapshots, rules, { live: [I1] });

    expect(decision.toDelete.map((s) => s.reason)).toEqual(reasons);
    expect(decision.kept).toBe(kept);
  });

  test('GIVEN a gone instance after its grace period THEN the age rule still keeps its young sets and a failed one goes as failed', () => {
    const times = series(NOW - 8 * DAY, DAY, 4); // 11 to 8 days old
    const snapshots = [...set(I2, times[0], { state: 'error' }), ...sets(times.slice(1), I2)];

    const decision = decide(snapshots, { count: 3, maxAgeSeconds: 9 * 86_400 + 1, goneInstanceSeconds: 7 * 86_400 }, { live: [I1] });

    expect(keptTimes(snapshots, decision, I2)).toEqual([times[3], times[2]]);
    expect(deleted(decision)).toEqual([`${times[0]} failed`, `${times[1]} gone`]);
  });

  test('GIVEN the same sets for a live instance THEN nothing is gone', () => {
    const snapshots = sets(series(NOW - 30 * DAY, DAY, 4), I2);

    const decision = decide(snapshots, rules, { live: [I2] });

    expect(decision.toDelete.map((s) => s.reason)).toEqual(['rules', 'rules', 'rules']);
    expect(decision.kept).toBe(1);
  });
});

describe('vetoes', () => {
  const times = series(NOW - DAY, DAY, 3);

  test.each(['pending', 'recovering', 'recoverable', 'some-new-state'])(
    'GIVEN a set no rule keeps with a snapshot in state %s THEN it is held as pending, not deleted',
    (state) => {
      const snapshots = [...set(I1, times[0], { state: ['completed', state] }), ...sets(times.slice(1))];

      const decision = decide(snapshots, { count: 1 });

      expect(decision.held).toEqual([{
        instanceId: I1, scheduledTime: times[0], reason: 'pending', snapshotIds: set(I1, times[0]).map((s) => s.snapshotId),
      }]);
      expect(deleted(decision)).toEqual([`${times[1]} rules`]);
    },
  );

  test('GIVEN a failed set with a pending snapshot THEN it is held as pending', () => {
    const snapshots = [...set(I1, times[0], { state: ['error', 'pending'] }), ...sets(times.slice(1))];

    const decision = decide(snapshots, { count: 1 });

    expect(decision.held.map((s) => `${s.scheduledTime} ${s.reason}`)).toEqual([`${times[0]} pending`]);
  });

  test('GIVEN a set no rule keeps with locks in force THEN it is held until its last lock expires', () => {
    const [a, b] = set(I1, times[0]).map((s) => s.snapshotId);
    const snapshots = sets(times);

    const decision = decide(snapshots, { count: 1 }, { locks: { [a]: NOW + DAY, [b]: NOW + 3 * DAY, 'snap-elsewhere': NOW + 9 * DAY } });

    expect(decision.held).toEqual([{ instanceId: I1, scheduledTime: times[0], reason: 'locked', untilMs: NOW + 3 * DAY, snapshotIds: [a, b] }]);
    expect(deleted(decision)).toEqual([`${times[1]} rules`]);
  });

  test('GIVEN a set no rule keeps with a snapshot that backs an AMI THEN it is held whole as in use, naming the AMI', () => {
    const [a, b] = set(I1, times[0]).map((s) => s.snapshotId);

    const decision = decide(sets(times), { count: 1 }, { inUse: { [b]: 'ami-0123456789abcdef0', 'snap-elsewhere': 'ami-1' } });

    expect(decision.held).toEqual([{ instanceId: I1, scheduledTime: times[0], reason: 'in-use', imageId: 'ami-0123456789abcdef0', snapshotIds: [a, b] }]);
    expect(deleted(decision)).toEqual([`${times[1]} rules`]);
  });

  test('GIVEN a kept set with a snapshot that backs an AMI THEN it is simply kept (an AMI does not keep a set the rules drop, nor the reverse)', () => {
    const [a] = set(I1, times[times.length - 1]).map((s) => s.snapshotId);

    const decision = decide(sets(times), { count: times.length }, { inUse: { [a]: 'ami-0123456789abcdef0' } });

    expect(decision.held).toEqual([]);
    expect(decision.toDelete).toEqual([]);
  });

  test.each([
    ['pending', { state: ['pending', 'completed'] as string[] }, { locks: {} }, 'pending'],
    ['locked', {}, { locks: { LOCK: NOW + DAY } }, 'locked'],
  ])('GIVEN a set both %s and in use THEN it is held as %s', (_name, setOptions, vetoes, reason) => {
    const snapshots = [...set(I1, times[0], setOptions as SetOptions), ...sets(times.slice(1))];
    const [a, b] = snapshots.map((s) => s.snapshotId);
    const locks = Object.fromEntries(Object.entries(vetoes.locks).map(([, v]) => [a, v]));

    const decision = decide(snapshots, { count: 1 }, { locks, inUse: { [b]: 'ami-0123456789abcdef0' } });

    expect(decision.held.map((s) => s.reason)).toEqual([reason]);
  });

  test('GIVEN one lock in force and one expired THEN the set is held until the one in force expires', () => {
    const [a, b] = set(I1, times[0]).map((s) => s.snapshotId);

    const decision = decide(sets(times), { count: 1 }, { locks: { [a]: NOW + HOUR, [b]: NOW - HOUR } });

    expect(decision.held.map((s) => s.untilMs)).toEqual([NOW + HOUR]);
  });

  test.each([
    ['expired', NOW - 1000],
    ['expiring now', NOW],
  ])('GIVEN a lock %s THEN the set is deleted', (_name, until) => {
    const [a] = set(I1, times[0]).map((s) => s.snapshotId);

    const decision = decide(sets(times), { count: 1 }, { locks: { [a]: until } });

    expect(decision.held).toEqual([]);
    expect(deleted(decision)).toEqual([`${times[0]} rules`, `${times[1]} rules`]);
  });

  test('GIVEN a pending and locked set THEN it is held as pending', () => {
    const snapshots = [...set(I1, times[0], { state: 'pending' }), ...sets(times.slice(1))];
    const [a] = set(I1, times[0]).map((s) => s.snapshotId);

    const decision = decide(snapshots, { count: 1 }, { locks: { [a]: NOW + DAY } });

    expect(decision.held).toEqual([expect.objectContaining({ reason: 'pending' })]);
    expect(decision.held[0].untilMs).toBeUndefined();
  });

  test('GIVEN a lock on a kept set THEN it changes nothing', () => {
    const [a] = set(I1, times[2]).map((s) => s.snapshotId);

    const decision = decide(sets(times), { count: 1 }, { locks: { [a]: NOW + DAY } });

    expect(decision.held).toEqual([]);
    expect(decision.kept).toBe(1);
  });
});

describe('duplicates of one occurrence', () => {
  const t = '2026-11-23T02:30:00Z';
  const start = Date.parse(t) + 60_000;

  test('GIVEN a second call covering the same volumes THEN the later one is deleted as a duplicate and the set kept', () => {
    const first = set(I1, t, { startTimeMs: start });
    const second = set(I1, t, { startTimeMs: start + 5000, call: '2' });

    const decision = decide([...second, ...first], { count: 1 });

    expect(decision.toDelete).toEqual([{ instanceId: I1, scheduledTime: t, reason: 'duplicate', snapshotIds: second.map((s) => s.snapshotId) }]);
    expect(decision.kept).toBe(1);
  });

  test('GIVEN the earlier call is not completed THEN the completed call is the set and the earlier one is held as pending', () => {
    const first = set(I1, t, { startTimeMs: start, state: ['completed', 'pending'] });
    const second = set(I1, t, { startTimeMs: start + 5000, call: '2' });

    const decision = decide([...first, ...second], { count: 1 });

    expect(decision.toDelete).toEqual([]);
    expect(decision.held).toEqual([{ instanceId: I1, scheduledTime: t, reason: 'pending', snapshotIds: first.map((s) => s.snapshotId) }]);
  });

  test('GIVEN the earlier call failed THEN the completed call is the set and the failed one a duplicate', () => {
    const first = set(I1, t, { startTimeMs: start, state: ['completed', 'error'] });
    const second = set(I1, t, { startTimeMs: start + 5000, call: '2' });

    const decision = decide([...first, ...second], { count: 1 });

    expect(decision.toDelete).toEqual([{ instanceId: I1, scheduledTime: t, reason: 'duplicate', snapshotIds: first.map((s) => s.snapshotId) }]);
  });

  test('GIVEN a second call with a volume the first lacks THEN it is merged: nothing is deleted, and the set goes whole', () => {
    const first = set(I1, t, { startTimeMs: start, volumes: ['vol-a', 'vol-b'] });
    const second = set(I1, t, { startTimeMs: start + 5000, volumes: ['vol-b', 'vol-c'], call: '2' });
    const newer = sets(['2026-11-24T02:30:00Z']);

    expect(decide([...first, ...second], { count: 1 })).toEqual({ toDelete: [], held: [], kept: 1, ignored: 0 });
    const decision = decide([...second, ...newer, ...first], { count: 1 });
    expect(decision.toDelete).toEqual([{
      instanceId: I1, scheduledTime: t, reason: 'rules', snapshotIds: [...first, ...second].map((s) => s.snapshotId).sort(),
    }]);
  });

  test('GIVEN a merged call with a failed snapshot THEN the whole set is failed', () => {
    const first = set(I1, t, { startTimeMs: start, volumes: ['vol-a'] });
    const second = set(I1, t, { startTimeMs: start + 5000, volumes: ['vol-b'], state: 'error', call: '2' });
    const newer = sets(['2026-11-24T02:30:00Z']);

    const decision = decide([...first, ...second, ...newer], { count: 2 });

    expect(decision.toDelete).toEqual([{ instanceId: I1, scheduledTime: t, reason: 'failed', snapshotIds: [first[0].snapshotId, second[0].snapshotId] }]);
  });

  test('GIVEN a third call covered by the merged set THEN it is a duplicate', () => {
    const first = set(I1, t, { startTimeMs: start, volumes: ['vol-a'] });
    const second = set(I1, t, { startTimeMs: start + 5000, volumes: ['vol-b'], call: '2' });
    const third = set(I1, t, { startTimeMs: start + 9000, volumes: ['vol-a', 'vol-b'], call: '3' });

    const decision = decide([...third, ...second, ...first], { count: 1 });

    expect(decision.toDelete).toEqual([{ instanceId: I1, scheduledTime: t, reason: 'duplicate', snapshotIds: third.map((s) => s.snapshotId) }]);
  });

  test('GIVEN two calls of equal state THEN the earlier start wins, whatever the snapshot ids', () => {
    const first = set(I1, t, { startTimeMs: start, call: '9' });
    const second = set(I1, t, { startTimeMs: start + 1, call: '0' });

    const decision = decide([...second, ...first], { count: 1 });

    expect(decision.toDelete.flatMap((s) => s.snapshotIds)).toEqual(second.map((s) => s.snapshotId));
  });

  test('GIVEN snapshots of one volume with the same start time THEN they are one call, not a duplicate', () => {
    const first = set(I1, t, { startTimeMs: start, volumes: ['vol-a'] });
    const again = set(I1, t, { startTimeMs: start, volumes: ['vol-a'], call: '2' });

    expect(decide([...first, ...again], { count: 1 })).toEqual({ toDelete: [], held: [], kept: 1, ignored: 0 });
  });

  test('GIVEN a duplicate of the current occurrence THEN the duplicate is deleted and the set kept', () => {
    const first = set(I1, t, { startTimeMs: start });
    const second = set(I1, t, { startTimeMs: start + 5000, call: '2' });

    const decision = decide([...first, ...second], { count: 1 }, { current: t });

    expect(deleted(decision)).toEqual([`${t} duplicate`]);
    expect(decision.kept).toBe(1);
  });

  test('GIVEN a locked duplicate THEN it is held until its lock expires', () => {
    const first = set(I1, t, { startTimeMs: start });
    const second = set(I1, t, { startTimeMs: start + 5000, call: '2' });

    const decision = decide([...first, ...second], { count: 1 }, { locks: { [second[1].snapshotId]: NOW + DAY } });

    expect(decision.held).toEqual([{ instanceId: I1, scheduledTime: t, reason: 'locked', untilMs: NOW + DAY, snapshotIds: second.map((s) => s.snapshotId) }]);
    expect(decision.toDelete).toEqual([]);
  });
});

describe('order of the decision', () => {
  test('GIVEN sets of several instances in any order THEN they come by instance id (code units), oldest first, snapshot ids sorted', () => {
    const upper = 'i-0B';
    const lower = 'i-0a';
    const times = ['2026-11-21T02:30:00Z', '2026-11-22T02:30:00Z', '2026-11-23T02:30:00Z'];
    const snapshots = [...times].reverse().flatMap((t) => [
      ...set(lower, t, { volumes: ['vol-z', 'vol-a'] }),
      ...set(upper, t, { volumes: ['vol-z', 'vol-a'] }),
    ]);

    const decision = decide(snapshots, { count: 1 }, { live: [upper, lower] });

    expect(decision.toDelete.map((s) => `${s.instanceId} ${s.scheduledTime}`)).toEqual([
      `${upper} ${times[0]}`, `${upper} ${times[1]}`, `${lower} ${times[0]}`, `${lower} ${times[1]}`,
    ]);
    for (const s of decision.toDelete) expect(s.snapshotIds).toEqual([...s.snapshotIds].sort());
    expect(decision.toDelete[0].snapshotIds).toEqual([`snap-${upper}-${times[0]}-1-vol-a`, `snap-${upper}-${times[0]}-1-vol-z`]);
  });
});

describe('order of the decision, duplicates', () => {
  test('GIVEN an old occurrence and its duplicate both deleted THEN the earlier call comes first', () => {
    const t = '2026-11-20T02:30:00Z';
    const start = Date.parse(t) + 60_000;
    const snapshots = [
      ...set(I1, t, { startTimeMs: start + 5000, call: '0' }),
      ...set(I1, t, { startTimeMs: start, call: '9' }),
      ...sets(['2026-11-23T02:30:00Z']),
    ];

    const decision = decide(snapshots, { count: 1 });

    expect(decision.toDelete.map((s) => `${s.reason} ${s.snapshotIds[0]}`)).toEqual([
      `rules snap-${I1}-${t}-9-vol-a`, `duplicate snap-${I1}-${t}-0-vol-a`,
    ]);
  });
});

describe('scale', () => {
  test('GIVEN 10,000 instances with 8 sets of 3 volumes (240,000 snapshots) THEN every set is decided', () => {
    const times = daily('2026-11-01', '2026-11-08');
    const oldTimes = daily('2026-10-01', '2026-10-08');
    const live = new Set<string>();
    const snapshots: ListedSnapshot[] = [];
    for (let i = 0; i < 10_000; i++) {
      const instanceId = `i-${i.toString(16).padStart(17, '0')}`;
      const gone = i % 10 === 9;
      if (!gone) live.add(instanceId);
      for (const t of gone ? oldTimes : times) {
        const startTimeMs = Date.parse(t) + 60_000;
        for (let v = 0; v < 3; v++) {
          snapshots.push({
            snapshotId: `snap-${i}-${t}-${v}`, volumeId: `vol-${i}-${v}`, state: 'completed', startTimeMs, scheduleId: SCHEDULE, instanceId, scheduledTime: t,
          });
        }
      }
    }
    expect(snapshots).toHaveLength(240_000);

    const decision = decideRetention({
      scheduleId: SCHEDULE,
      rules: { count: 2, weekly: 2, timeZone: 'Europe/Berlin', goneInstanceSeconds: 7 * 86_400 },
      snapshots,
      liveInstanceIds: live,
      currentScheduledTime: times[7],
      nowMs: Date.parse('2026-11-08T12:00:00Z'),
    });

    // Live: count keeps 8 and 7 November, weekly keeps 8 November (W45) and 1 November (W44); 5 sets go.
    expect(decision.kept).toBe(9_000 * 3);
    expect(decision.toDelete.filter((s) => s.reason === 'rules')).toHaveLength(9_000 * 5);
    expect(decision.toDelete.filter((s) => s.reason === 'gone')).toHaveLength(1_000 * 8);
    expect(decision.toDelete.reduce((n, s) => n + s.snapshotIds.length, 0)).toBe((9_000 * 5 + 1_000 * 8) * 3);
    expect(decision.held).toEqual([]);
    expect(decision.ignored).toBe(0);
    expect(decision.toDelete[0]).toEqual({
      instanceId: `i-${'0'.repeat(17)}`, scheduledTime: times[1], reason: 'rules', snapshotIds: [0, 1, 2].map((v) => `snap-0-${times[1]}-${v}`),
    });
    expect(decision.toDelete[decision.toDelete.length - 1].scheduledTime).toBe(oldTimes[7]);
  });
});
