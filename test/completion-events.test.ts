/**
 * The pure parts of EBS completion events (lambda/completion-events.ts): recognising and parsing
 * the event, sorting its snapshots into this schedule's sets, and the notification's text.
 */
import { completionEvent, snapshotArn, snapshotId, volumeArn, volumeId } from './support/completion-event';
import {
  CompletionEvent,
  describeBatches,
  describedSnapshot,
  DescribedSnapshot,
  failureNotification,
  isFailedSet,
  isSnapshotsCompletionEvent,
  MAX_SUBJECT_LENGTH,
  parseCompletionEvent,
  resourceIdOf,
  snsSubject,
  sortSnapshots,
} from '../lambda/completion-events';
import { EXECUTION_ID_TAG, INSTANCE_ID_TAG, InvalidRunRequestError, SCHEDULE_TAG, SCHEDULED_TIME_TAG } from '../src/private/request-contract';

const SCHEDULE = 'Stack/Nightly';
const [S1, S2, S3, S4, S5] = [1, 2, 3, 4, 5].map(snapshotId);

function ours(id: string, instanceId: string, scheduledTime = '2026-11-24T02:30:00Z', scheduleId = SCHEDULE): DescribedSnapshot {
  return {
    snapshotId: id,
    tags: { [SCHEDULE_TAG]: scheduleId, [INSTANCE_ID_TAG]: instanceId, [SCHEDULED_TIME_TAG]: scheduledTime, [EXECUTION_ID_TAG]: 'd32c5kddcf5bb8c3', Name: 'db' },
  };
}

describe('isSnapshotsCompletionEvent', () => {
  test.each<[string, boolean, unknown]>([
    ['a failed set\'s event', true, completionEvent([1])],
    ['a succeeded set\'s event (the rule filters those out; the shape is the same)', true, completionEvent([1], { result: 'succeeded' })],
    ['a single-snapshot notification', false, { ...completionEvent([1]), 'detail-type': 'EBS Snapshot Notification' }],
    ['another source with the same detail type', false, { ...completionEvent([1]), source: 'my.app' }],
    ['a workflow step', false, { action: 'snapshot-step', request: '{}' }],
    ['null', false, null],
    ['a string', false, 'aws.ec2'],
    ['an array', false, [completionEvent([1])]],
  ])('GIVEN %s THEN %s', (_name, expected, event) => {
    expect(isSnapshotsCompletionEvent(event)).toBe(expected);
  });
});

describe('resourceIdOf', () => {
  test.each<[unknown, 'snap' | 'vol', string | undefined]>([
    [snapshotArn(S1), 'snap', S1],
    ['arn:aws-cn:ec2:cn-north-1:123456789012:snapshot/snap-0123abcd', 'snap', 'snap-0123abcd'],
    [S1, 'snap', S1],
    [volumeArn(volumeId(7)), 'vol', volumeId(7)],
    [volumeArn(volumeId(7)), 'snap', undefined],
    [snapshotArn(S1), 'vol', undefined],
    ['snap-xyz', 'snap', undefined],
    ['not-an-arn/snap-0123abcd', 'snap', undefined],
    ['', 'snap', undefined],
    [42, 'snap', undefined],
    [undefined, 'vol', undefined],
  ])('GIVEN %j as a %s THEN %j', (value, prefix, expected) => {
    expect(resourceIdOf(value, prefix)).toBe(expected);
  });
});

describe('parseCompletionEvent', () => {
  test('GIVEN EC2\'s event THEN its identity, result, cause and each snapshot with its volume and status', () => {
    expect(parseCompletionEvent(completionEvent([1, 2]))).toEqual({
      id: '7bf73129-1428-4cd3-a780-95db273d1602',
      time: '2026-11-24T02:41:07Z',
      account: '123456789012',
      region: 'eu-central-1',
      event: 'createSnapshots',
      result: 'failed',
      cause: 'Snapshot creation failed for one or more volumes',
      snapshots: [
        { snapshotId: S1, volumeId: volumeId(1), status: 'error' },
        { snapshotId: S2, volumeId: volumeId(2), status: 'error' },
      ],
    });
  });

  test('GIVEN a snapshot named twice, once by id, and entries without source or status THEN each snapshot is kept once, with what is known', () => {
    const event = completionEvent([], { snapshots: [{ snapshot_id: snapshotArn(S1) }, { snapshot_id: S1, status: 'error' }, { snapshot_id: S2, source: 'elsewhere' }] });

    expect(parseCompletionEvent(event).snapshots).toEqual([{ snapshotId: S1 }, { snapshotId: S2 }]);
  });

  test('GIVEN no cause and no identity THEN they are empty strings, not undefined', () => {
    const { id: _id, time: _time, ...anonymous } = completionEvent([1], { cause: undefined });

    expect(parseCompletionEvent(anonymous)).toEqual(expect.objectContaining({ id: '', time: '', cause: '' }));
  });

  test.each<[string, string, unknown, string]>([
    ['no detail', 'detail', { ...completionEvent([1]), detail: undefined }, 'a completion event has a detail object, got: undefined'],
    ['no snapshots', 'detail.snapshots', completionEvent([], { snapshots: undefined }), 'a completion event names its snapshots, got: undefined'],
    ['an empty list of snapshots', 'detail.snapshots', completionEvent([]), 'a completion event names its snapshots, got: []'],
    ['a snapshot without its id', 'detail.snapshots', completionEvent([], { snapshots: [{ source: volumeArn(volumeId(1)) }] }),
      `each snapshot has a snapshot_id (a snapshot ARN or id), got: {"source":"${volumeArn(volumeId(1))}"}`],
    ['a volume where a snapshot belongs', 'detail.snapshots', completionEvent([], { snapshots: [{ snapshot_id: volumeArn(volumeId(1)) }] }),
      `each snapshot has a snapshot_id (a snapshot ARN or id), got: {"snapshot_id":"${volumeArn(volumeId(1))}"}`],
  ])('GIVEN %s THEN InvalidRunRequestError names %s', (_name, prop, event, message) => {
    const error = (() => {
      try {
        parseCompletionEvent(event);
        return undefined;
      } catch (e) {
        return e as InvalidRunRequestError;
      }
    })();

    expect(error).toBeInstanceOf(InvalidRunRequestError);
    expect(error!.violations).toEqual([{ prop, message }]);
  });
});

describe('isFailedSet', () => {
  test.each<[string, string, boolean]>([
    ['createSnapshots', 'failed', true],
    ['createSnapshots', 'succeeded', false],
    ['createSnapshot', 'failed', false],
    ['', '', false],
  ])('GIVEN event %j with result %j THEN %s', (event, result, expected) => {
    expect(isFailedSet({ ...parseCompletionEvent(completionEvent([1])), event, result })).toBe(expected);
  });
});

describe('describeBatches', () => {
  const ids = (n: number) => Array.from({ length: n }, (_, i) => snapshotId(i));
  test.each<[number, number[]]>([
    [0, []],
    [1, [1]],
    [200, [200]],
    [201, [200, 1]],
    [401, [200, 200, 1]],
  ])('GIVEN %i ids THEN batches of %j, in order', (n, sizes) => {
    const batches = describeBatches(ids(n));

    expect(batches.map((b) => b.length)).toEqual(sizes);
    expect(batches.flat()).toEqual(ids(n));
  });
});

describe('describedSnapshot', () => {
  test('GIVEN a DescribeSnapshots entry THEN its id and tags as a map (a tag without value is empty)', () => {
    expect(describedSnapshot({ SnapshotId: S1, Tags: [{ Key: SCHEDULE_TAG, Value: SCHEDULE }, { Key: 'Empty' }, { Value: 'no key' }] }))
      .toEqual({ snapshotId: S1, tags: { [SCHEDULE_TAG]: SCHEDULE, Empty: '' } });
  });
  test('GIVEN an entry without tags THEN no tags', () => {
    expect(describedSnapshot({ SnapshotId: S1 })).toEqual({ snapshotId: S1, tags: {} });
  });
});

describe('sortSnapshots', () => {
  const event = (ns: number[]): CompletionEvent => parseCompletionEvent(completionEvent(ns));

  test.each<[string, number[], DescribedSnapshot[], ReturnType<typeof sortSnapshots>]>([
    ['one set of this schedule', [1, 2], [ours(S2, 'i-0a'), ours(S1, 'i-0a')], {
      sets: [{ instanceId: 'i-0a', scheduledTime: '2026-11-24T02:30:00Z', executionName: 'd32c5kddcf5bb8c3', snapshotIds: [S1, S2] }],
      foreignSnapshotIds: [],
      missingSnapshotIds: [],
    }],
    ['another schedule\'s set, whose id only starts like ours', [1, 2], [ours(S1, 'i-0a', undefined, 'Stack/Nightly2'), ours(S2, 'i-0a', undefined, 'Stack/Nightly2')], {
      sets: [], foreignSnapshotIds: [S1, S2], missingSnapshotIds: [],
    }],
    ['snapshots this library did not make', [1], [{ snapshotId: S1, tags: { Name: 'manual' } }], {
      sets: [], foreignSnapshotIds: [S1], missingSnapshotIds: [],
    }],
    ['snapshots EC2 no longer knows', [1, 2], [], {
      sets: [], foreignSnapshotIds: [], missingSnapshotIds: [S1, S2],
    }],
    ['two instances and two occurrences of this schedule, a foreign snapshot and a gone one', [1, 2, 3, 4, 5], [
      ours(S3, 'i-0b'), ours(S1, 'i-0a', '2026-11-25T02:30:00Z'), ours(S2, 'i-0a'), ours(S5, 'i-0c', undefined, 'Other/Schedule'),
    ], {
      sets: [
        { instanceId: 'i-0a', scheduledTime: '2026-11-24T02:30:00Z', executionName: 'd32c5kddcf5bb8c3', snapshotIds: [S2] },
        { instanceId: 'i-0a', scheduledTime: '2026-11-25T02:30:00Z', executionName: 'd32c5kddcf5bb8c3', snapshotIds: [S1] },
        { instanceId: 'i-0b', scheduledTime: '2026-11-24T02:30:00Z', executionName: 'd32c5kddcf5bb8c3', snapshotIds: [S3] },
      ],
      foreignSnapshotIds: [S5],
      missingSnapshotIds: [S4],
    }],
    ['a snapshot of this schedule whose other tags were removed', [1], [{ snapshotId: S1, tags: { [SCHEDULE_TAG]: SCHEDULE } }], {
      sets: [{ instanceId: 'unknown', scheduledTime: 'unknown', executionName: 'unknown', snapshotIds: [S1] }],
      foreignSnapshotIds: [],
      missingSnapshotIds: [],
    }],
    ['a described snapshot the event does not name', [1], [ours(S1, 'i-0a'), ours(S2, 'i-0a')], {
      sets: [{ instanceId: 'i-0a', scheduledTime: '2026-11-24T02:30:00Z', executionName: 'd32c5kddcf5bb8c3', snapshotIds: [S1] }],
      foreignSnapshotIds: [],
      missingSnapshotIds: [],
    }],
  ])('GIVEN %s THEN the sets, the foreign and the missing snapshots', (_name, ns, described, expected) => {
    expect(sortSnapshots(SCHEDULE, event(ns), described)).toEqual(expected);
  });
});

describe('snsSubject', () => {
  test.each<[string, string, string]>([
    ['a short subject', 'Snapshot set failed: i-0a of Stack/Nightly', 'Snapshot set failed: i-0a of Stack/Nightly'],
    ['characters outside printable ASCII', 'Sicherung für Größe', 'Sicherung f?r Gr??e'],
    ['a line break', 'two\nlines', 'two?lines'],
    ['exactly the limit', 'x'.repeat(MAX_SUBJECT_LENGTH), 'x'.repeat(MAX_SUBJECT_LENGTH)],
    ['one more than the limit', 'y'.repeat(MAX_SUBJECT_LENGTH + 1), `${'y'.repeat(MAX_SUBJECT_LENGTH - 3)}...`],
  ])('GIVEN %s THEN %j', (_name, text, expected) => {
    const subject = snsSubject(text);

    expect(subject).toBe(expected);
    expect(subject.length).toBeLessThan(100);
  });
});

describe('failureNotification', () => {
  test('GIVEN one failed set THEN the subject names the instance and the schedule, the body every fact an operator acts on', () => {
    const event = parseCompletionEvent(completionEvent([1, 2]));
    const sorted = sortSnapshots(SCHEDULE, event, [ours(S1, 'i-0a'), ours(S2, 'i-0a')]);

    const { subject, message } = failureNotification(SCHEDULE, event, sorted);

    expect(subject).toBe('Snapshot set failed: i-0a of Stack/Nightly');
    expect(JSON.parse(message)).toEqual({
      summary: 'EC2 reported a snapshot set of schedule Stack/Nightly failed after CreateSnapshots returned',
      scheduleId: SCHEDULE,
      account: '123456789012',
      region: 'eu-central-1',
      cause: 'Snapshot creation failed for one or more volumes',
      eventId: '7bf73129-1428-4cd3-a780-95db273d1602',
      eventTime: '2026-11-24T02:41:07Z',
      sets: [{
        instanceId: 'i-0a',
        scheduledTime: '2026-11-24T02:30:00Z',
        executionName: 'd32c5kddcf5bb8c3',
        snapshotIds: [S1, S2],
        snapshots: [
          { snapshotId: S1, volumeId: volumeId(1), status: 'error' },
          { snapshotId: S2, volumeId: volumeId(2), status: 'error' },
        ],
      }],
    });
  });

  test('GIVEN two sets and a snapshot that is gone THEN the subject counts the sets and the body lists the gone snapshot', () => {
    const event = parseCompletionEvent(completionEvent([1, 2, 3]));
    const sorted = sortSnapshots(SCHEDULE, event, [ours(S1, 'i-0a'), ours(S2, 'i-0b')]);

    const { subject, message } = failureNotification(SCHEDULE, event, sorted);

    expect(subject).toBe('2 snapshot sets failed: Stack/Nightly');
    const body = JSON.parse(message);
    expect(body.summary).toBe('EC2 reported 2 snapshot sets of schedule Stack/Nightly failed after CreateSnapshots returned');
    expect(body.sets.map((s: { instanceId: string; snapshotIds: string[] }) => [s.instanceId, s.snapshotIds])).toEqual([['i-0a', [S1]], ['i-0b', [S2]]]);
    expect(body.snapshotsNotFound).toEqual([S3]);
  });

  test('GIVEN a schedule id of 256 characters THEN the subject is cut to SNS\'s limit and the body keeps the whole id', () => {
    const longId = `Stack/${'s'.repeat(250)}`;
    const event = parseCompletionEvent(completionEvent([1]));
    const sorted = sortSnapshots(longId, event, [ours(S1, 'i-0a', undefined, longId)]);

    const { subject, message } = failureNotification(longId, event, sorted);

    expect(subject).toHaveLength(MAX_SUBJECT_LENGTH);
    expect(subject.endsWith('...')).toBe(true);
    expect(JSON.parse(message).scheduleId).toBe(longId);
  });
});
