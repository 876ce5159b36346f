/**
 * Copy planning: which source sets a destination Region wants, which of their snapshots to copy now
 * (whole completed sets, only what has no copy), and where the copies made so far stand.
 */
import { COPY_CATCH_UP_DAYS, CopyPlan, ListedCopy, planCopies } from '../lambda/copy-planning';
import { ListedSnapshot } from '../lambda/retention';
import { RetentionSpec } from '../src/private/request-contract';

const SCHEDULE = 'Stack/Nightly';
const I1 = 'i-0aaaaaaaaaaaaaaa1';
const I2 = 'i-0bbbbbbbbbbbbbbb2';
const I3 = 'i-0ccccccccccccccc3';
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const NOW = Date.parse('2026-11-24T12:00:00Z');

/** A scheduled time as the library writes it (canonical: no fraction for whole seconds). */
function iso(ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

/** `n` scheduled times `stepMs` apart, ending at `lastMs`, oldest first. */
function series(lastMs: number, stepMs: number, n: number): string[] {
  return Array.from({ length: n }, (_, k) => iso(lastMs - (n - 1 - k) * stepMs));
}

interface SetOptions {
  readonly volumes?: string[];
  /** One state for every snapshot, or one per volume. */
  readonly state?: string | string[];
  readonly startTimeMs?: number;
  /** Distinguishes the snapshots of a second CreateSnapshots call for the same occurrence. */
  readonly call?: string;
}

/** The source snapshots of one CreateSnapshots call: one per volume, all with the call's start time. */
function set(instanceId: string, scheduledTime: string, options: SetOptions = {}): ListedSnapshot[] {
  const volumes = options.volumes ?? ['vol-a', 'vol-b'];
  const state = options.state ?? 'completed';
  const states = typeof state === 'string' ? volumes.map(() => state) : state;
  const startTimeMs = options.startTimeMs ?? Date.parse(scheduledTime) + MINUTE;
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

/** One completed set of `instanceId` per scheduled time. */
function sets(times: string[], instanceId = I1): ListedSnapshot[] {
  return times.flatMap((t) => set(instanceId, t));
}

interface CopyOptions {
  readonly state?: string;
  /** Minutes after the source's start. */
  readonly after?: number;
  /** Distinguishes several copies of one source. */
  readonly n?: string;
}

/** A copy of `source` in the destination, with the tags the library writes on it. */
function copy(source: ListedSnapshot, options: CopyOptions = {}): ListedCopy {
  return {
    snapshotId: `copy-${options.n ?? '1'}-${source.snapshotId}`,
    volumeId: 'vol-ffffffff',
    state: options.state ?? 'completed',
    startTimeMs: source.startTimeMs + (options.after ?? 10) * MINUTE,
    scheduleId: source.scheduleId,
    instanceId: source.instanceId,
    scheduledTime: source.scheduledTime,
    sourceSnapshotId: source.snapshotId,
  };
}

function copies(sources: ListedSnapshot[], options: CopyOptions = {}): ListedCopy[] {
  return sources.map((s) => copy(s, options));
}

interface PlanOptions {
  /** The destination's retention (completed with UTC and a week's grace); absent: the catch-up window. */
  readonly retention?: Partial<RetentionSpec>;
  readonly live?: string[];
  readonly current?: string;
  readonly nowMs?: number;
  readonly completionDurationMinutes?: number;
}

function plan(sources: ListedSnapshot[], destination: ListedCopy[], options: PlanOptions = {}): CopyPlan {
  return planCopies({
    scheduleId: SCHEDULE,
    sources,
    copies: destination,
    retention: options.retention && { timeZone: 'UTC', goneInstanceSeconds: 7 * 86_400, ...options.retention },
    liveInstanceIds: new Set(options.live ?? [I1, I2, I3]),
    currentScheduledTime: options.current ?? iso(NOW),
    nowMs: options.nowMs ?? NOW,
    completionDurationMinutes: options.completionDurationMinutes,
  });
}

/** `toCopy` as `time instance volume`, in the order returned. */
function jobs(p: CopyPlan): string[] {
  return p.toCopy.map((j) => `${j.scheduledTime} ${j.instanceId} ${j.volumeId}`);
}

/** The scheduled times of the sets `toCopy` names, in the order returned. */
function copiedTimes(p: CopyPlan): string[] {
  return [...new Set(p.toCopy.map((j) => j.scheduledTime))];
}

describe('wanted sets', () => {
  // Ten daily sets, the newest two hours old.
  const times = series(NOW - 2 * HOUR, DAY, 10);
  const newest = (n: number) => times.slice(10 - n).reverse();

  test.each<[string, Partial<RetentionSpec> | undefined, string[]]>([
    ['count 3', { count: 3 }, newest(3)],
    ['age 2 days', { maxAgeSeconds: 2 * 86_400 }, newest(2)],
    ['age 2 days and count 4', { maxAgeSeconds: 2 * 86_400, count: 4 }, newest(4)],
    ['weekly 2 (weeks start on Monday)', { weekly: 2 }, ['2026-11-24T10:00:00Z', '2026-11-22T10:00:00Z']],
    ['monthly 2', { monthly: 2 }, ['2026-11-24T10:00:00Z']],
    ['no retention: the catch-up window', undefined, newest(COPY_CATCH_UP_DAYS)],
  ])('GIVEN ten daily sets and %s THEN exactly the sets it keeps are copied, newest first', (_name, retention, wanted) => {
    const p = plan(sets(times), [], { retention });

    expect(copiedTimes(p)).toEqual(wanted);
    expect(p.toCopy).toHaveLength(wanted.length * 2);
    expect(p.complete).toBe(0);
  });

  test('GIVEN daily 2 with several sets a day THEN the newest set of each of the last two days is copied', () => {
    const times2 = ['2026-11-22T02:00:00Z', '2026-11-22T14:00:00Z', '2026-11-23T02:00:00Z', '2026-11-23T14:00:00Z', '2026-11-24T02:00:00Z'];

    const p = plan(sets(times2), [], { retention: { daily: 2 } });

    expect(copiedTimes(p)).toEqual(['2026-11-24T02:00:00Z', '2026-11-23T14:00:00Z']);
  });

  test('GIVEN no retention THEN a set exactly COPY_CATCH_UP_DAYS old is not wanted and one a second younger is', () => {
    const edge = [iso(NOW - 8 * DAY), iso(NOW - 7 * DAY), iso(NOW - 7 * DAY + 1000), iso(NOW - HOUR)];

    const p = plan(sets(edge), []);

    expect(COPY_CATCH_UP_DAYS).toBe(7);
    expect(copiedTimes(p)).toEqual([edge[3], edge[2]]);
  });

  test('GIVEN no retention and a run of an old occurrence THEN its set is wanted too', () => {
    const old = iso(NOW - 10 * DAY);
    const sources = sets([iso(NOW - 12 * DAY), old, iso(NOW - HOUR)]);

    const p = plan(sources, [], { current: old });

    expect(copiedTimes(p)).toEqual([iso(NOW - HOUR), old]);
  });

  test('GIVEN a retention that no longer keeps the current occurrence by count THEN its set is still wanted (decideRetention protects it)', () => {
    const current = times[2];

    const p = plan(sets(times), [], { retention: { count: 1 }, current });

    expect(copiedTimes(p)).toEqual([times[9], current]);
  });

  test('GIVEN count 1 and a pending newest set THEN it waits, and an older pending set count does not keep is not wanted', () => {
    const sources = [
      ...sets(times.slice(0, 7)),
      ...set(I1, times[7], { state: 'pending' }),
      ...sets([times[8]]),
      ...set(I1, times[9], { state: ['completed', 'pending'] }),
    ];

    const p = plan(sources, [], { retention: { count: 1 } });

    // count keeps the pending newest set; the newest completed set is protected; times[7] goes.
    expect(p.waitingForSource).toEqual([{ instanceId: I1, scheduledTime: times[9] }]);
    expect(copiedTimes(p)).toEqual([times[8]]);
    expect(p.failedSources).toEqual([]);
  });

  test('GIVEN a gone instance after its grace period THEN only its sets the age rule keeps are wanted', () => {
    const old = series(NOW - 10 * DAY, DAY, 3);
    const sources = [...sets(old, I2), ...sets([iso(NOW - HOUR)])];

    const p = plan(sources, [], { retention: { count: 2 }, live: [I1] });

    expect(p.toCopy.map((j) => j.instanceId)).toEqual([I1, I1]);
    expect(plan(sources, [], { retention: { count: 2, maxAgeSeconds: 11.5 * 86_400 }, live: [I1] }).toCopy.map((j) => j.scheduledTime))
      .toEqual([iso(NOW - HOUR), iso(NOW - HOUR), old[2], old[2], old[1], old[1]]);
  });

  test('GIVEN two CreateSnapshots calls for one occurrence THEN only the set\'s snapshots are copied, not the duplicate call', () => {
    const t = iso(NOW - HOUR);
    const start = NOW - HOUR + MINUTE;
    const sources = [...set(I1, t, { startTimeMs: start, call: '1' }), ...set(I1, t, { startTimeMs: start + 5000, call: '2' })];

    const p = plan(sources, []);

    expect(p.toCopy.map((j) => j.sourceSnapshotId)).toEqual([`snap-${I1}-${t}-1-vol-a`, `snap-${I1}-${t}-1-vol-b`]);
  });

  test('GIVEN a second call that adds a volume THEN it is merged into the set and its snapshot copied too', () => {
    const t = iso(NOW - HOUR);
    const start = NOW - HOUR + MINUTE;
    const sources = [...set(I1, t, { startTimeMs: start, call: '1' }), ...set(I1, t, { startTimeMs: start + 5000, call: '2', volumes: ['vol-c'] })];

    const p = plan(sources, []);

    expect(jobs(p)).toEqual([`${t} ${I1} vol-a`, `${t} ${I1} vol-b`, `${t} ${I1} vol-c`]);
  });
});

describe('whole sets', () => {
  const t1 = iso(NOW - DAY);
  const t2 = iso(NOW - HOUR);

  test.each(['pending', 'recovering', 'recoverable', 'some-new-state'])(
    'GIVEN a set with one snapshot %s THEN none of the set is copied, it waits, and a completed set is copied',
    (state) => {
      const sources = [...sets([t1]), ...set(I1, t2, { volumes: ['vol-a', 'vol-b', 'vol-c'], state: ['completed', state, 'completed'] })];

      const p = plan(sources, []);

      expect(jobs(p)).toEqual([`${t1} ${I1} vol-a`, `${t1} ${I1} vol-b`]);
      expect(p.waitingForSource).toEqual([{ instanceId: I1, scheduledTime: t2 }]);
      expect(p.complete).toBe(0);
    },
  );

  test('GIVEN a waiting set whose completed snapshot already has a copy THEN it still waits and the copy counts', () => {
    const sources = set(I1, t2, { state: ['completed', 'pending'] });

    const p = plan(sources, [copy(sources[0], { state: 'pending' })]);

    expect(p.toCopy).toEqual([]);
    expect(p.waitingForSource).toEqual([{ instanceId: I1, scheduledTime: t2 }]);
    expect(p.inProgress).toBe(1);
  });
});

describe('failed sources', () => {
  const t1 = iso(NOW - DAY);
  const t2 = iso(NOW - HOUR);

  test.each<[string, string[]]>([
    ['one snapshot in error', ['completed', 'error']],
    ['every snapshot in error', ['error', 'error']],
    ['one in error and one pending', ['error', 'pending']],
  ])('GIVEN a wanted set with %s THEN it is reported failed, not waiting, and nothing of it is copied', (_name, states) => {
    const sources = [...sets([t1]), ...set(I1, t2, { state: states })];

    const p = plan(sources, copies(sources.slice(0, 2)), { retention: { maxAgeSeconds: 2 * 86_400 } });

    expect(p.failedSources).toEqual([{ instanceId: I1, scheduledTime: t2 }]);
    expect(p.waitingForSource).toEqual([]);
    expect(p.toCopy).toEqual([]);
    expect(p.complete).toBe(1);
    expect(p.completeInstances).toEqual([]);
  });

  test('GIVEN a failed set the retention does not keep THEN it is not reported', () => {
    const sources = [...sets([t1]), ...set(I1, t2, { state: 'error' })];

    const p = plan(sources, [], { retention: { count: 1 } });

    expect(p.failedSources).toEqual([]);
    expect(copiedTimes(p)).toEqual([t1]);
  });
});

describe('copies made so far', () => {
  const t = iso(NOW - HOUR);
  const sources = set(I1, t, { volumes: ['vol-a', 'vol-b', 'vol-c'] });
  const [a, b, c] = sources;

  test('GIVEN a set partly copied THEN only the snapshots without a copy are planned and pending copies are counted', () => {
    const p = plan(sources, [copy(a), copy(b, { state: 'pending' })]);

    expect(jobs(p)).toEqual([`${t} ${I1} vol-c`]);
    expect(p.toCopy[0]).toEqual({ instanceId: I1, scheduledTime: t, sourceSnapshotId: c.snapshotId, volumeId: 'vol-c' });
    expect(p.inProgress).toBe(1);
    expect(p.complete).toBe(0);
    expect(p.completeInstances).toEqual([]);
  });

  test('GIVEN every snapshot of the set copied THEN it is complete and nothing is planned', () => {
    const p = plan(sources, copies(sources));

    expect(p).toEqual({
      toCopy: [],
      waitingForSource: [],
      failedSources: [],
      inProgress: 0,
      overdue: [],
      complete: 1,
      failedCopies: [],
      duplicateCopies: [],
      completeInstances: [I1],
    });
  });

  test.each(['pending', 'recoverable', 'some-new-state'])('GIVEN every copy %s THEN they are in progress, not planned again', (state) => {
    const p = plan(sources, copies(sources, { state }));

    expect(p.toCopy).toEqual([]);
    expect(p.inProgress).toBe(3);
    expect(p.complete).toBe(0);
  });

  test.each<[string, CopyOptions[], string[], number, number]>([
    ['only a copy in error', [{ state: 'error' }], [`${t} ${I1} vol-a`], 0, 0],
    ['a copy in error and a completed one', [{ state: 'error' }, { n: '2' }], [], 0, 1],
    ['a copy in error and a pending one', [{ state: 'error' }, { n: '2', state: 'pending' }], [], 1, 0],
    ['two copies in error', [{ state: 'error' }, { n: '2', state: 'error' }], [`${t} ${I1} vol-a`], 0, 0],
  ])('GIVEN %s of a snapshot THEN the failed copies are listed and the snapshot is copied again only without another copy', (
    _name, made, planned, inProgress, complete,
  ) => {
    const p = plan(sources, [...made.map((o) => copy(a, o)), copy(b), copy(c)]);

    expect(jobs(p)).toEqual(planned);
    expect(p.failedCopies).toEqual(made.filter((o) => o.state === 'error').map((o) => `copy-${o.n ?? '1'}-${a.snapshotId}`));
    expect(p.inProgress).toBe(inProgress);
    expect(p.complete).toBe(complete);
  });

  test('GIVEN a copy in error of a set no longer wanted THEN it is not listed', () => {
    const old = set(I1, iso(NOW - 30 * DAY));

    const p = plan([...old, ...sources], [copy(old[0], { state: 'error' }), ...copies(sources)]);

    expect(p.failedCopies).toEqual([]);
    expect(p.complete).toBe(1);
  });

  test.each<[string, CopyOptions[], string[], number]>([
    ['an earlier and a later completed one', [{ n: '1', after: 10 }, { n: '2', after: 20 }], ['copy-2'], 0],
    ['three completed ones', [{ n: '3', after: 30 }, { n: '1', after: 10 }, { n: '2', after: 20 }], ['copy-2', 'copy-3'], 0],
    ['the earlier start wins, whatever the ids', [{ n: '9', after: 10 }, { n: '1', after: 20 }], ['copy-1'], 0],
    ['the same start: the smaller id wins', [{ n: '2', after: 10 }, { n: '1', after: 10 }], ['copy-2'], 0],
    ['a completed one and a later pending one', [{ n: '1', after: 10 }, { n: '2', after: 20, state: 'pending' }], [], 1],
    // The completed copy is kept until the pending one completes: a copy that may still fail never costs one that did not.
    ['a pending one and a later completed one', [{ n: '1', after: 10, state: 'pending' }, { n: '2', after: 20 }], [], 1],
    ['one in error and two completed ones', [{ n: '0', after: 5, state: 'error' }, { n: '1', after: 10 }, { n: '2', after: 20 }], ['copy-2'], 0],
  ])('GIVEN copies of one snapshot: %s THEN the completed copies after the kept one are duplicates', (_name, made, duplicates, inProgress) => {
    const p = plan(sources, [...made.map((o) => copy(a, o)), copy(b), copy(c)]);

    expect(p.duplicateCopies).toEqual(duplicates.map((d) => `${d}-${a.snapshotId}`));
    expect(p.inProgress).toBe(inProgress);
    expect(p.toCopy).toEqual([]);
    expect(p.complete).toBe(1);
  });

  test('GIVEN duplicates of a set no longer wanted, or of a source no longer listed THEN they are listed too', () => {
    const old = set(I1, iso(NOW - 30 * DAY));
    const deleted = set(I1, iso(NOW - 60 * DAY));

    const made = [old[0], deleted[0]].flatMap((s) => [copy(s), copy(s, { n: '2', after: 20 })]);

    const p = plan([...old, ...sources], made);

    expect(p.duplicateCopies).toEqual([`copy-2-${deleted[0].snapshotId}`, `copy-2-${old[0].snapshotId}`]);
    expect(p.inProgress).toBe(0);
  });
});

describe('overdue copies', () => {
  const t = iso(NOW - 3 * DAY);
  const sources = set(I1, t);
  const [a, b] = sources;
  const startedAgo = (minutes: number, n = '1'): ListedCopy => ({ ...copy(a, { state: 'pending', n }), startTimeMs: NOW - minutes * MINUTE });

  test.each<[string, boolean, number | undefined, number]>([
    ['no completion duration, started a week ago', false, undefined, 10_080],
    ['60 minutes, started 59 minutes ago', false, 60, 59],
    ['60 minutes, started exactly 60 minutes ago', false, 60, 60],
    ['60 minutes, started 61 minutes ago', true, 60, 61],
    ['2,880 minutes, started 2,881 minutes ago', true, 2_880, 2_881],
  ])('GIVEN a pending copy and %s THEN it is overdue: %s', (_name, isOverdue, completionDurationMinutes, minutes) => {
    const p = plan(sources, [startedAgo(minutes), copy(b)], { completionDurationMinutes });

    expect(p.inProgress).toBe(1);
    expect(p.overdue).toEqual(isOverdue
      ? [{ instanceId: I1, scheduledTime: t, copySnapshotId: `copy-1-${a.snapshotId}`, sourceSnapshotId: a.snapshotId }]
      : []);
  });

  test('GIVEN a completed copy started long ago THEN it is not overdue', () => {
    const p = plan(sources, [{ ...copy(a), startTimeMs: NOW - 10 * DAY }, copy(b)], { completionDurationMinutes: 15 });

    expect(p.overdue).toEqual([]);
    expect(p.complete).toBe(1);
  });

  test('GIVEN two pending copies of one snapshot, both late THEN both are in progress and overdue, earliest first', () => {
    const p = plan(sources, [startedAgo(100, '2'), startedAgo(200, '9'), copy(b)], { completionDurationMinutes: 15 });

    expect(p.inProgress).toBe(2);
    expect(p.overdue.map((o) => o.copySnapshotId)).toEqual([`copy-9-${a.snapshotId}`, `copy-2-${a.snapshotId}`]);
  });
});

describe('ownership', () => {
  const t = iso(NOW - HOUR);
  const sources = set(I1, t);
  const [a, b] = sources;

  test.each<[string, Partial<ListedSnapshot>]>([
    ['another schedule', { scheduleId: 'Stack/Weekly' }],
    ['the same schedule id in another case', { scheduleId: 'stack/nightly' }],
    ['no schedule tag', { scheduleId: undefined }],
    ['no instance tag', { instanceId: undefined }],
    ['an empty instance tag', { instanceId: '' }],
    ['no scheduled-time tag', { scheduledTime: undefined }],
    ['a scheduled time with a zero fraction (not canonical)', { scheduledTime: `${t.slice(0, -1)}.000Z` }],
    ['a scheduled time that is not a time', { scheduledTime: 'yesterday' }],
  ])('GIVEN a source snapshot with %s THEN it is not copied', (_name, change) => {
    const foreign = { ...set(I2, t, { volumes: ['vol-x'] })[0], ...change };

    const p = plan([...sources, foreign], []);

    expect(p.toCopy.map((j) => j.sourceSnapshotId)).toEqual([a.snapshotId, b.snapshotId]);
  });

  test.each<[string, Partial<ListedCopy>]>([
    ['another schedule', { scheduleId: 'Stack/Weekly' }],
    ['the same schedule id in another case', { scheduleId: 'stack/nightly' }],
    ['no schedule tag', { scheduleId: undefined }],
    ['no instance tag', { instanceId: undefined }],
    ['no scheduled-time tag', { scheduledTime: undefined }],
    ['a scheduled time with a zero fraction (not canonical)', { scheduledTime: `${t.slice(0, -1)}.000Z` }],
    ['no source snapshot id', { sourceSnapshotId: undefined }],
    ['an empty source snapshot id', { sourceSnapshotId: '' }],
    ['another instance than its source\'s', { instanceId: I2 }],
    ['another scheduled time than its source\'s', { scheduledTime: iso(NOW - DAY) }],
  ])('GIVEN copies with %s THEN they are not the source\'s copies: it is copied, and they are neither counted nor deleted', (_name, change) => {
    const made = [
      { ...copy(a), ...change },
      { ...copy(a, { n: '2', after: 20 }), ...change },
      { ...copy(a, { n: '3', state: 'error' }), ...change },
      { ...copy(a, { n: '4', state: 'pending' }), ...change },
    ];

    const p = plan(sources, [...made, copy(b)]);

    expect(p.toCopy.map((j) => j.sourceSnapshotId)).toEqual([a.snapshotId]);
    expect(p.failedCopies).toEqual([]);
    expect(p.duplicateCopies).toEqual([]);
    expect(p.inProgress).toBe(0);
    expect(p.complete).toBe(0);
  });

  test('GIVEN a copy of another snapshot THEN it does not count as a copy of this one', () => {
    const other = set(I1, iso(NOW - 30 * DAY))[0];

    const p = plan(sources, [{ ...copy(other), instanceId: I1, scheduledTime: t }, copy(b)]);

    expect(p.toCopy.map((j) => j.sourceSnapshotId)).toEqual([a.snapshotId]);
  });
});

describe('order of the plan', () => {
  const t1 = '2026-11-24T02:30:00Z';
  // Canonical with milliseconds: later than t1, though it sorts before it as text.
  const t2 = '2026-11-24T02:30:00.500Z';
  const t0 = '2026-11-23T02:30:00Z';

  test('GIVEN sets of several instances in any order THEN toCopy is newest set first, then instance id, then snapshot id', () => {
    const sources = [
      ...set(I2, t0, { volumes: ['vol-b', 'vol-a'] }),
      ...set(I3, t1),
      ...set(I1, t0),
      ...set(I2, t2, { volumes: ['vol-z', 'vol-c'] }),
      ...set(I1, t1),
      ...set(I1, t2),
    ].reverse();

    const p = plan(sources, []);

    expect(jobs(p)).toEqual([
      `${t2} ${I1} vol-a`, `${t2} ${I1} vol-b`, `${t2} ${I2} vol-c`, `${t2} ${I2} vol-z`,
      `${t1} ${I1} vol-a`, `${t1} ${I1} vol-b`, `${t1} ${I3} vol-a`, `${t1} ${I3} vol-b`,
      `${t0} ${I1} vol-a`, `${t0} ${I1} vol-b`, `${t0} ${I2} vol-a`, `${t0} ${I2} vol-b`,
    ]);
  });

  test('GIVEN waiting and failed sets in any order THEN each list is newest first, then instance id', () => {
    const sources = [
      ...set(I3, t1, { state: 'pending' }),
      ...set(I2, t0, { state: 'error' }),
      ...set(I1, t1, { state: 'pending' }),
      ...set(I2, t2, { state: 'pending' }),
      ...set(I3, t2, { state: 'error' }),
      ...set(I1, t1, { state: 'error', volumes: ['vol-c'], startTimeMs: Date.parse(t1) + 2 * MINUTE, call: '2' }),
      ...set(I1, t0, { state: 'error' }),
    ];

    const p = plan(sources, []);

    expect(p.waitingForSource).toEqual([{ instanceId: I2, scheduledTime: t2 }, { instanceId: I3, scheduledTime: t1 }]);
    expect(p.failedSources).toEqual([
      { instanceId: I3, scheduledTime: t2 },
      { instanceId: I1, scheduledTime: t1 },
      { instanceId: I1, scheduledTime: t0 },
      { instanceId: I2, scheduledTime: t0 },
    ]);
  });

  test('GIVEN failed and duplicate copies in any order THEN their ids are sorted', () => {
    const sources = [...set(I2, t1), ...set(I1, t2)];
    const made = [
      ...copies(sources, { state: 'error', n: '5' }),
      ...copies(sources, { n: '3' }),
      ...copies(sources, { n: '1', after: 20 }),
      ...copies(sources, { n: '2', after: 30 }),
    ].reverse();

    const p = plan(sources, made);

    expect(p.failedCopies).toEqual(sources.map((s) => `copy-5-${s.snapshotId}`).sort());
    expect(p.failedCopies).toHaveLength(4);
    expect(p.duplicateCopies).toEqual([...sources.map((s) => `copy-1-${s.snapshotId}`), ...sources.map((s) => `copy-2-${s.snapshotId}`)].sort());
    expect(p.duplicateCopies).toHaveLength(8);
  });
});

describe('complete instances', () => {
  test('GIVEN instances with complete, incomplete, failed and no wanted sets THEN those with all wanted sets complete are listed, sorted', () => {
    const I0 = 'i-00000000000000000';
    const I4 = 'i-0ddddddddddddddd4';
    const recent = [iso(NOW - DAY), iso(NOW - HOUR)];
    const old = iso(NOW - 20 * DAY);
    const complete1 = sets(recent, I1);
    const complete0 = sets(recent, I0);
    const partly2 = sets(recent, I2);
    const onlyOld3 = set(I3, old);
    const failed4 = [...set(I4, recent[0], { state: 'error' }), ...set(I4, recent[1])];
    const sources = [...complete1, ...partly2, ...onlyOld3, ...failed4, ...complete0];

    const p = plan(sources, [
      ...copies(complete1), ...copies(partly2.slice(0, 3)), ...copies(onlyOld3), ...copies(failed4.slice(2)), ...copies(complete0),
    ], { live: [I0, I1, I2, I3, I4] });

    expect(p.completeInstances).toEqual([I0, I1]);
    // I0 and I1: two each; I2: the older set; I4: the newer.
    expect(p.complete).toBe(6);
    expect(jobs(p)).toEqual([`${recent[1]} ${I2} vol-b`]);
    expect(p.failedSources).toEqual([{ instanceId: I4, scheduledTime: recent[0] }]);
  });
});

describe('scale', () => {
  test('GIVEN 10,000 instances with 8 sets of 3 volumes (240,000 snapshots) and copies in every stage THEN every set is planned', () => {
    const times = series(Date.parse('2026-11-08T02:30:00Z'), DAY, 8);
    const nowMs = Date.parse('2026-11-08T12:00:00Z');
    const live = new Set<string>();
    const sources: ListedSnapshot[] = [];
    const destination: ListedCopy[] = [];
    // count 2 keeps 8 and 7 November, weekly 2 keeps 8 November (W45) and 1 November (W44).
    const wanted = new Set([times[7], times[6], times[0]]);
    const idOf = (i: number) => `i-${i.toString(16).padStart(17, '0')}`;
    for (let i = 0; i < 10_000; i++) {
      const instanceId = idOf(i);
      live.add(instanceId);
      for (const t of times) {
        const startTimeMs = Date.parse(t) + MINUTE;
        for (let v = 0; v < 3; v++) {
          const source = { ...set(instanceId, t, { volumes: [`vol-${i}-${v}`], startTimeMs })[0], snapshotId: `snap-${i}-${t}-${v}` };
          sources.push(source);
          // i % 4: 0 every wanted set copied (and an old set, once in error); 1 the newest set being copied;
          // 2 nothing copied; 3 one snapshot of 1 November copied.
          const stage = i % 4;
          if (stage === 0 && wanted.has(t)) destination.push(copy(source));
          if (stage === 0 && t === times[3]) destination.push(copy(source, { state: v === 0 ? 'error' : 'completed' }));
          if (stage === 1 && t === times[7]) destination.push(copy(source, { state: 'pending' }));
          if (stage === 3 && t === times[0] && v === 0) destination.push(copy(source));
        }
      }
    }
    expect(sources).toHaveLength(240_000);

    const p = planCopies({
      scheduleId: SCHEDULE,
      sources,
      copies: destination,
      retention: { count: 2, weekly: 2, timeZone: 'Europe/Berlin', goneInstanceSeconds: 7 * 86_400 },
      liveInstanceIds: live,
      currentScheduledTime: times[7],
      nowMs,
      completionDurationMinutes: 60,
    });

    expect(p.complete).toBe(2_500 * 3);
    expect(p.completeInstances).toHaveLength(2_500);
    expect(p.completeInstances[0]).toBe(idOf(0));
    expect(p.inProgress).toBe(2_500 * 3);
    // The pending copies started at 02:41 and the copy is due within an hour.
    expect(p.overdue).toHaveLength(2_500 * 3);
    expect(p.toCopy).toHaveLength(2_500 * 6 + 2_500 * 9 + 2_500 * 8);
    expect(p.toCopy[0]).toEqual({ instanceId: idOf(2), scheduledTime: times[7], sourceSnapshotId: `snap-2-${times[7]}-0`, volumeId: 'vol-2-0' });
    expect(p.toCopy[p.toCopy.length - 1]).toEqual({
      instanceId: idOf(9_999), scheduledTime: times[0], sourceSnapshotId: `snap-9999-${times[0]}-2`, volumeId: 'vol-9999-2',
    });
    expect(new Set(p.toCopy.map((j) => j.scheduledTime))).toEqual(wanted);
    expect(p.failedCopies).toEqual([]);
    expect(p.duplicateCopies).toEqual([]);
    expect(p.waitingForSource).toEqual([]);
    expect(p.failedSources).toEqual([]);
  });
});
