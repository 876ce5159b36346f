/**
 * The run's ledger: the cursor the workflow carries between worker steps (checked on the way in),
 * and how outcomes are counted into it, within bounds that keep it small for any fleet.
 */
import { CapturedLog } from './support/fault-harness';
import { finishRun, Ledger, MAX_FAILURE_CODES, MAX_FAILURE_RECORDS, newCursor, OTHER_CODE, parseCursor, RunCursor, startRetryPass } from '../lambda/ledger';
import { InvalidRunRequestError } from '../src/private/request-contract';

const RUN = { scheduleId: 'Stack/Nightly', scheduledTime: '2026-11-24T02:30:00Z', executionName: 'exec-0001' };

/** A cursor as the workflow hands it over: JSON. */
function wire(cursor: RunCursor): Record<string, any> {
  return JSON.parse(JSON.stringify(cursor));
}

function rejection(value: unknown): InvalidRunRequestError {
  try {
    parseCursor(value);
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidRunRequestError);
    return e as InvalidRunRequestError;
  }
  throw new Error('parseCursor accepted the cursor');
}

describe('parseCursor', () => {
  test('GIVEN a new cursor and one in the middle of a run, through JSON THEN each is accepted unchanged', () => {
    const fresh = wire(newCursor(1_795_000_000_000));
    const busy = wire({
      ...newCursor(1_795_000_000_000),
      phase: 'wait',
      pass: 2,
      after: 'i-0123456789abcdef0',
      upto: 'i-0fffffffffffffff0',
      steps: 4,
      counts: { selected: 3, created: 2, alreadyDone: 0, dryRunOk: 0, skipped: 0, failed: 1, notAttempted: 0, lockFailed: 0 },
      failuresByCode: { IncorrectState: 1 },
      failures: [{ instanceId: 'i-0123456789abcdef0', outcome: 'failed', code: 'IncorrectState', message: 'busy' }],
      apiCalls: { DescribeInstances: 4 },
      bucket: { tokens: -2.5, atEpochMs: 1_795_000_001_000 },
    });

    expect(parseCursor(fresh)).toEqual(fresh);
    expect(parseCursor(busy)).toEqual(busy);
  });

  const valid = () => wire(newCursor(0));
  const codes = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, k) => [`Code${k}`, 1]));

  test.each<[string, unknown, string]>([
    ['not an object', 'cursor', 'the cursor must be an object'],
    ['null', null, 'the cursor must be an object'],
    ['a list', [valid()], 'the cursor must be an object'],
    ['a list of instances still to do (a forged widening)', { ...valid(), pending: ['i-0123456789abcdef0'] }, 'unknown fields ["pending"]'],
    ['an instance list under another name', { ...valid(), instanceIds: ['i-0123456789abcdef0'], request: {} }, 'unknown fields ["instanceIds","request"]'],
    ['another version', { ...valid(), v: 2 }, 'v must be 1'],
    ['an unknown phase', { ...valid(), phase: 'continue' }, 'phase must be one of ["snapshot","wait","prune","copy","copy-wait","done"]'],
    ['pass 0', { ...valid(), pass: 0 }, 'pass must be a whole number >= 1'],
    ['a fractional pass', { ...valid(), pass: 1.5 }, 'pass must be a whole number >= 1'],
    ['a position that is not an instance id', { ...valid(), after: 'vol-0123456789abcdef0' }, 'after must be \'\' or an instance id'],
    ['a position past every instance id', { ...valid(), after: 'i-zzzzzzzz' }, 'after must be \'\' or an instance id'],
    ['a position that is not text', { ...valid(), after: 7 }, 'after must be \'\' or an instance id'],
    ['negative steps', { ...valid(), steps: -1 }, 'steps must be a whole number'],
    ['no start time', { ...valid(), startedAtMs: undefined }, 'startedAtMs must be a number'],
    ['a count missing', { ...valid(), counts: { selected: 1 } }, 'counts must hold selected, created, alreadyDone, dryRunOk, skipped, failed, notAttempted'],
    ['a count that is text', { ...valid(), counts: { ...valid().counts, created: '5' } }, 'counts must hold'],
    ['failure codes that are not numbers', { ...valid(), failuresByCode: { IncorrectState: 'many' } }, 'failuresByCode and apiCalls must map names to numbers'],
    ['more failure codes than the ledger keeps', { ...valid(), failuresByCode: codes(MAX_FAILURE_CODES + 2) }, 'failuresByCode and apiCalls must map names to numbers'],
    ['api calls that are a list', { ...valid(), apiCalls: [1, 2] }, 'failuresByCode and apiCalls must map names to numbers'],
    ['more failure records than the ledger keeps', { ...valid(), failures: Array(MAX_FAILURE_RECORDS + 1).fill({}) }, `failures must be a list of at most ${MAX_FAILURE_RECORDS}`],
    ['a bucket without its time', { ...valid(), bucket: { tokens: 5 } }, 'bucket must hold tokens and atEpochMs'],
    ['a window end that is not an instance id', { ...valid(), upto: 'everything' }, 'upto must be an instance id after `after`'],
    ['a window end before the position', { ...valid(), after: 'i-00000000000000009', upto: 'i-00000000000000002' }, 'upto must be an instance id after `after`'],
    ['a window end at the position', { ...valid(), after: 'i-00000000000000009', upto: 'i-00000000000000009' }, 'upto must be an instance id after `after`'],
  ])('GIVEN %s THEN it is rejected as a cursor this workflow did not write, naming the problem', (_name, value, problem) => {
    const error = rejection(value);

    expect(error.violations).toHaveLength(1);
    expect(error.violations[0].prop).toBe('cursor');
    expect(error.violations[0].message).toMatch(/^cursor is not one this workflow wrote \(/);
    expect(error.violations[0].message).toContain(problem);
  });

  test('GIVEN several problems THEN every one is named in one violation', () => {
    const error = rejection({ ...valid(), v: 3, pass: 0, extra: true });

    expect(error.message).toContain('unknown fields ["extra"]; v must be 1; pass must be a whole number >= 1');
  });

  test('GIVEN a huge forged field THEN the error shows a cut value, not the whole cursor', () => {
    const error = rejection({ ...valid(), pending: Array.from({ length: 10_000 }, (_, k) => `i-${k.toString(16).padStart(17, '0')}`) });

    expect(error.message.length).toBeLessThan(1_000);
    expect(error.message).toMatch(/\.\.\.$/);
  });
});

describe('Ledger.record', () => {
  function ledger(cursor = newCursor(0)) {
    const log = new CapturedLog();
    return { cursor, log, ledger: new Ledger(cursor, log) };
  }

  test.each<[Parameters<Ledger['record']>[1], string, string, string]>([
    ['created', 'created', 'info', 'snapshot set created'],
    ['already-done', 'alreadyDone', 'info', 'snapshot set of this occurrence already exists'],
    ['dry-run-ok', 'dryRunOk', 'info', 'dry run: snapshot set would have been created'],
    ['skipped', 'skipped', 'warn', 'instance skipped'],
    ['failed', 'failed', 'error', 'instance failed'],
    ['not-attempted', 'notAttempted', 'error', 'instance not attempted'],
  ])('GIVEN outcome %s THEN counts.%s goes up by one and one %s line says so', (outcome, count, level, message) => {
    const { cursor, log, ledger: l } = ledger();

    l.record('i-0123456789abcdef0', outcome, { code: 'Code', detail: 'why' });

    expect(cursor.counts).toEqual({ ...newCursor(0).counts, [count]: 1 });
    expect(log.lines).toEqual([{ level, message, attributes: expect.objectContaining({ instanceId: 'i-0123456789abcdef0', outcome, pass: 1 }) }]);
  });

  test('GIVEN a failure and a not-attempted instance THEN both are kept by code and as records, the message as detail cut to 300 characters', () => {
    const { cursor, ledger: l } = ledger();

    l.record('i-00000001', 'failed', { code: 'IncorrectState', detail: 'x'.repeat(1_000) });
    l.record('i-00000002', 'not-attempted', { code: 'InstancePending', detail: 'starting' });
    l.record('i-00000003', 'failed');

    expect(cursor.failuresByCode).toEqual({ IncorrectState: 1, InstancePending: 1, UnknownError: 1 });
    expect(cursor.failures).toEqual([
      { instanceId: 'i-00000001', outcome: 'failed', code: 'IncorrectState', message: 'x'.repeat(300) },
      { instanceId: 'i-00000002', outcome: 'not-attempted', code: 'InstancePending', message: 'starting' },
      { instanceId: 'i-00000003', outcome: 'failed', code: 'UnknownError', message: '' },
    ]);
    expect(l.unfinishedInPass()).toBe(3);
  });

  test(`GIVEN more distinct error codes than ${MAX_FAILURE_CODES} THEN the first ${MAX_FAILURE_CODES} are counted by name, the rest under ${OTHER_CODE}, and known codes keep counting`, () => {
    const { cursor, ledger: l } = ledger();

    for (let k = 0; k < MAX_FAILURE_CODES + 6; k++) l.record(`i-${k.toString(16).padStart(8, '0')}`, 'failed', { code: `Code${k}` });
    l.record('i-0000ffff', 'failed', { code: 'Code0' });

    expect(Object.keys(cursor.failuresByCode)).toHaveLength(MAX_FAILURE_CODES + 1);
    expect(cursor.failuresByCode.Code0).toBe(2);
    expect(cursor.failuresByCode[`Code${MAX_FAILURE_CODES - 1}`]).toBe(1);
    expect(cursor.failuresByCode[`Code${MAX_FAILURE_CODES}`]).toBeUndefined();
    expect(cursor.failuresByCode[OTHER_CODE]).toBe(6);
    expect(cursor.counts.failed).toBe(MAX_FAILURE_CODES + 7);
    // What the ledger writes, the next step accepts.
    expect(() => parseCursor(wire(cursor))).not.toThrow();
  });

  test(`GIVEN more failures than ${MAX_FAILURE_RECORDS} THEN only the first ${MAX_FAILURE_RECORDS} are kept as records, every one is counted`, () => {
    const { cursor, ledger: l } = ledger();

    for (let k = 0; k < 5_000; k++) l.record(`i-${k.toString(16).padStart(8, '0')}`, 'failed', { code: 'IncorrectState', detail: 'd'.repeat(300) });

    expect(cursor.failures).toHaveLength(MAX_FAILURE_RECORDS);
    expect(cursor.failures[MAX_FAILURE_RECORDS - 1].instanceId).toBe(`i-${(MAX_FAILURE_RECORDS - 1).toString(16).padStart(8, '0')}`);
    expect(cursor.failuresByCode).toEqual({ IncorrectState: 5_000 });
    // The cursor stays small for any fleet.
    expect(JSON.stringify(cursor).length).toBeLessThan(10_000);
    expect(() => parseCursor(wire(cursor))).not.toThrow();
  });

  test('GIVEN calls counted by action THEN attempts add up per action', () => {
    const { cursor, ledger: l } = ledger();

    l.countCall('CreateSnapshots');
    l.countCall('CreateSnapshots', 3);
    l.countCall('DescribeInstances');

    expect(cursor.apiCalls).toEqual({ CreateSnapshots: 4, DescribeInstances: 1 });
  });
});

describe('passes and the end of the run', () => {
  function afterFirstPass(): RunCursor {
    const cursor = newCursor(1_000);
    const l = new Ledger(cursor, new CapturedLog());
    cursor.counts.selected = 4;
    cursor.after = 'i-00000004';
    cursor.upto = 'i-00000008';
    l.record('i-00000001', 'created');
    l.record('i-00000002', 'already-done');
    l.record('i-00000003', 'skipped', { code: 'NoVolumesToSnapshot' });
    l.record('i-00000004', 'failed', { code: 'IncorrectState' });
    return cursor;
  }

  test('GIVEN a pass with failures WHEN a retry pass starts THEN what that pass left undone is cleared, and what the run did is kept', () => {
    const cursor = afterFirstPass();

    startRetryPass(cursor);

    expect(cursor).toEqual(expect.objectContaining({ pass: 2, after: '', phase: 'snapshot', failuresByCode: {}, failures: [] }));
    expect(cursor.upto).toBeUndefined();
    expect(cursor.counts).toEqual({ selected: 4, created: 1, alreadyDone: 1, dryRunOk: 0, skipped: 0, failed: 0, notAttempted: 0, lockFailed: 0 });
  });

  test.each<[string, (c: RunCursor) => void, string]>([
    ['nothing left undone', (c) => { c.counts.failed = 0; c.failuresByCode = {}; c.failures = []; }, 'succeeded'],
    ['a failure', () => undefined, 'failed'],
    ['an instance not attempted', (c) => { c.counts.failed = 0; c.counts.notAttempted = 1; }, 'failed'],
  ])('GIVEN %s WHEN the run finishes THEN its result is %s and the summary (also as text) says what the run did', (_name, change, result) => {
    const cursor = afterFirstPass();
    change(cursor);

    finishRun(cursor, RUN, 61_000);

    expect(cursor.phase).toBe('done');
    expect(cursor.result).toBe(result);
    expect(cursor.summary).toEqual({
      ...RUN,
      result,
      counts: cursor.counts,
      failuresByCode: cursor.failuresByCode,
      failures: cursor.failures,
      passes: 1,
      steps: 0,
      apiCalls: {},
      durationMs: 60_000,
    });
    expect(JSON.parse(cursor.summaryText!)).toEqual(cursor.summary);
    expect(() => parseCursor(wire(cursor))).not.toThrow();
  });
});
