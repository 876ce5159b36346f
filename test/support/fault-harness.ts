/**
 * Shared set-up of the fault tests: a simulator, the handler's own EC2 clients (lambda/clients.ts)
 * pointed at it with small retry delays, a run request, a captured log, and checks on the sets.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { Ec2Simulator, Ec2SimulatorOptions, SimInstance } from './ec2-simulator';
import { createEc2Clients, Ec2ClientsOptions } from '../../lambda/clients';
import { RunLog } from '../../lambda/ledger';
import { DEFAULT_SETTINGS, RunSettings, StepEnvironment } from '../../lambda/snapshot-step';
import { DEFAULT_CREATE_SNAPSHOTS_PER_SECOND, INSTANCE_ID_TAG, Occurrence, parseOccurrence, REQUEST_VERSION, SCHEDULED_TIME_TAG, SnapshotRunRequest } from '../../src/private/request-contract';

export const CREDENTIALS = { accessKeyId: 'AKIDFAULTTEST', secretAccessKey: 'fault-test-secret' };
export const REGION = 'us-east-1';

/** Small delays everywhere, so a faulty run takes milliseconds. */
export const FAST_SETTINGS: RunSettings = {
  ...DEFAULT_SETTINGS,
  concurrency: 4,
  perVolumeRetryDelayMs: 60,
  throttleBackoffBaseMs: 2,
  throttleBackoffMaxMs: 20,
  settleWindowMs: 100,
  lookIntervalMs: 10,
  reserveMs: 0,
};

export function instanceId(n: number): string {
  return `i-${n.toString(16).padStart(17, '0')}`;
}

/** `n` instances tagged Backup=nightly with 1 to 3 volumes each (or `volumes` each), every fourth one stopped. */
export function fleet(n: number, options: { from?: number; volumes?: number } = {}): SimInstance[] {
  return Array.from({ length: n }, (_, k) => {
    const i = (options.from ?? 0) + k;
    return {
      instanceId: instanceId(i),
      state: i % 4 === 3 ? 'stopped' : 'running',
      tags: { Backup: 'nightly' },
      volumeIds: Array.from({ length: options.volumes ?? 1 + (i % 3) }, (__, v) => `vol-${(i * 4 + v).toString(16).padStart(17, '0')}`),
    };
  });
}

export function runRequest(overrides: Partial<SnapshotRunRequest> = {}): SnapshotRunRequest {
  return {
    version: REQUEST_VERSION,
    scheduleId: 'Stack/Nightly',
    instanceTags: { Backup: ['nightly'] },
    excludeBootVolume: false,
    excludeDataVolumeIds: [],
    snapshotTags: { Purpose: 'fault-test' },
    dryRun: false,
    ...overrides,
  };
}

export interface LogLine {
  readonly level: 'info' | 'warn' | 'error';
  readonly message: string;
  readonly attributes: Record<string, unknown>;
}

export class CapturedLog implements RunLog {
  readonly lines: LogLine[] = [];
  info(message: string, attributes: Record<string, unknown> = {}): void { this.lines.push({ level: 'info', message, attributes }); }
  warn(message: string, attributes: Record<string, unknown> = {}): void { this.lines.push({ level: 'warn', message, attributes }); }
  error(message: string, attributes: Record<string, unknown> = {}): void { this.lines.push({ level: 'error', message, attributes }); }
}

/** A no-wait backoff for the describe client (the SDK would wait up to seconds between attempts). */
export const NO_WAIT_BACKOFF = { computeNextBackoffDelay: () => 1, setDelayBase: () => undefined };

export const SCHEDULED_TIME = '2026-11-24T02:30:00Z';

/** The occurrence of a test run (schedule `Stack/Nightly`, 2026-11-24T02:30:00Z, execution `exec-0001`). */
export function testOccurrence(scheduledTime = SCHEDULED_TIME, executionName = 'exec-0001', scheduleId = 'Stack/Nightly'): Occurrence {
  return parseOccurrence(scheduleId, { scheduledTime }, executionName);
}

/** A step environment whose log the test reads. */
export type HarnessEnvironment = StepEnvironment & { log: CapturedLog };

export class FaultHarness {
  readonly sim: Ec2Simulator;
  private readonly clients: EC2Client[] = [];

  constructor(options: Ec2SimulatorOptions) {
    this.sim = new Ec2Simulator(options);
  }

  async start(): Promise<this> {
    await this.sim.start();
    return this;
  }

  async stop(): Promise<void> {
    for (const c of this.clients.splice(0)) c.destroy();
    await this.sim.stop();
  }

  /**
   * The handler's clients (lambda/clients.ts) against the simulator, with small backoffs and the
   * shipping rate limiter (EC2's 100 + 5/s) unless overridden. Like a Lambda cold start, each call
   * builds new ones (fresh rate limiter).
   */
  clientsFor(options: Ec2ClientsOptions = {}): { ec2: EC2Client; ec2Create: EC2Client; ec2Delete: EC2Client } {
    const clients = createEc2Clients({
      throttleBackoffBaseMs: 2,
      throttleBackoffMaxMs: 20,
      describeBackoff: NO_WAIT_BACKOFF,
      ...options,
      config: { endpoint: this.sim.endpoint, region: REGION, credentials: CREDENTIALS, ...options.config },
    });
    this.clients.push(clients.ec2, clients.ec2Create, clients.ec2Delete);
    return clients;
  }

  /**
   * A step environment: the worker's clients, a captured log, fast settings, unlimited time, and
   * the CreateSnapshots rate the clients pace to (EC2's default unless `clients` sets one).
   */
  environment(overrides: Partial<StepEnvironment> & { clients?: Ec2ClientsOptions } = {}): HarnessEnvironment {
    const { clients, ...rest } = overrides;
    const { ec2, ec2Create } = this.clientsFor(clients);
    return {
      ec2,
      ec2Create,
      log: new CapturedLog(),
      settings: FAST_SETTINGS,
      createSnapshotsPerSecond: clients?.createSnapshotsPerSec || DEFAULT_CREATE_SNAPSHOTS_PER_SECOND,
      remainingMs: () => 900_000,
      ...rest,
    } as HarnessEnvironment;
  }

  /** instance id -> number of snapshot sets (one set = one CreateSnapshots call that made snapshots). */
  setCounts(): Map<string, number> {
    return new Map([...this.sim.setsByInstance()].map(([id, sets]) => [id, sets.length]));
  }

  /** Asserts that each of `instanceIds` has exactly one set of the occurrence, and nothing else has any. */
  expectExactlyOneSetEach(instanceIds: string[], scheduledTime = SCHEDULED_TIME): void {
    const sets = this.sim.setsByInstance();
    const offenders = instanceIds.filter((id) => (sets.get(id)?.length ?? 0) !== 1).map((id) => `${id}: ${sets.get(id)?.length ?? 0}`);
    expect(offenders).toEqual([]);
    for (const id of instanceIds) {
      const set = sets.get(id)![0];
      expect(set.every((s) => s.tags[SCHEDULED_TIME_TAG] === scheduledTime && s.tags[INSTANCE_ID_TAG] === id)).toBe(true);
    }
    expect([...sets.keys()].filter((id) => !instanceIds.includes(id))).toEqual([]);
  }

  /** CreateSnapshots calls the simulator received for one instance, in arrival order. */
  createCalls(id?: string) {
    return this.sim.calls.filter((c) => c.action === 'CreateSnapshots' && (id === undefined || c.params['InstanceSpecification.InstanceId'] === id));
  }

  /** Instance ids of the CreateSnapshots calls, in arrival order. */
  createOrder(): string[] {
    return this.createCalls().map((c) => c.params['InstanceSpecification.InstanceId']);
  }
}

export function ids(instances: SimInstance[]): string[] {
  return instances.map((i) => i.instanceId);
}
