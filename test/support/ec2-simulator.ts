/**
 * In-process simulator of the subset of the Amazon EC2 *query protocol* used by the
 * snapshot code: DescribeInstances, CreateSnapshots, DescribeSnapshots and DescribeVolumes; and of Lambda's
 * `Invoke` (REST-JSON, `POST /2015-03-31/functions/{name}/invocations`), which only records the
 * payload (the handler's continuation), so `AWS_ENDPOINT_URL_LAMBDA` can point here too.
 *
 * Point a real `EC2Client` at it with `endpoint: sim.endpoint` (or the env variable
 * `AWS_ENDPOINT_URL_EC2`). Requests are form-encoded POSTs (`Action=...&Version=2016-11-15&...`),
 * answers are EC2 style XML; errors use the EC2 `<Response><Errors><Error>` envelope and
 * the `x-amzn-requestid` header, which the SDK copies into `$metadata.requestId`.
 *
 * Only Node built-ins are used. Signatures are not checked.
 */
import { randomBytes, randomUUID, createHash } from 'crypto';
import * as http from 'http';
import { AddressInfo } from 'net';

export interface SimInstance {
  instanceId: string;
  /** default 'running' (pending|running|stopping|stopped|shutting-down|terminated) */
  state?: string;
  tags?: Record<string, string>;
  /** first one is the root volume (device /dev/xvda), others /dev/sdf, /dev/sdg... */
  volumeIds: string[];
  /** volumeId -> tags of that volume (DescribeVolumes) */
  volumeTags?: Record<string, Record<string, string>>;
  outpostArn?: string;
}

export interface SimSnapshot {
  snapshotId: string;
  volumeId: string;
  instanceId: string;
  description?: string;
  tags: Record<string, string>;
  outpostArn?: string;
  /** epoch ms; the same for all snapshots of one CreateSnapshots call */
  startTimeMs: number;
}

export interface SimCall {
  action: string;
  /** decoded form parameters, without `Action` and `Version` */
  params: Record<string, string>;
  /** epoch ms at which the request arrived */
  atMs: number;
  /** HTTP status of the answer */
  status: number;
  errorCode?: string;
}

export interface TokenBucketOptions {
  capacity: number;
  refillPerSec: number;
}

export interface Ec2SimulatorOptions {
  instances?: SimInstance[];
  /** token bucket applied to CreateSnapshots (RequestLimitExceeded, HTTP 503 like EC2) */
  createSnapshotsBucket?: TokenBucketOptions;
  /** token bucket applied to DescribeInstances, DescribeSnapshots and DescribeVolumes together */
  describeBucket?: TokenBucketOptions;
  /** minimum ms between two snapshots of one volume (EC2: 15000) -> SnapshotCreationPerVolumeRateExceeded (400); default 15000; 0 disables */
  perVolumeIntervalMs?: number;
  /**
   * artificial latency added to every response, ms, or a function of the call (answered with the
   * status and error code it got); default 0 (the request is processed on arrival, the answer is
   * sent after the delay)
   */
  latencyMs?: number | ((call: SimCall) => number);
  /** default '123456789012' */
  accountId?: string;
  /**
   * DescribeSnapshots lists a snapshot only this many ms after it was created (EC2's eventual
   * consistency); default 0. The per-volume rate check still sees it at once.
   */
  describeSnapshotsLagMs?: number;
}

/** One Lambda `Invoke` request received (and accepted) by the simulator. */
export interface SimInvocation {
  functionName: string;
  /** `X-Amz-Invocation-Type`: Event, RequestResponse or DryRun */
  invocationType: string;
  /** the request body, as sent */
  payload: string;
  atMs: number;
}

/** `callIndex`: 0-based index among all calls; `actionIndex`: 0-based index among calls of the same action. */
export type FaultRule = (call: { action: string; params: Record<string, string>; callIndex: number; actionIndex: number }) => SimFault | undefined;

export interface SimFault {
  status: number;
  code: string;
  message?: string;
  /** apply the call's effect then still answer with the error (e.g. a 500 after the snapshot was made) */
  afterEffect?: boolean;
}

const XMLNS = 'http://ec2.amazonaws.com/doc/2016-11-15/';
const DEFAULT_ACCOUNT_ID = '123456789012';
const DEFAULT_PER_VOLUME_INTERVAL_MS = 15_000;
const MAX_EXCLUDED_DATA_VOLUMES = 40;
const VOLUME_SIZE_GIB = 8;

const STATE_CODES: Record<string, number> = {
  'pending': 0,
  'running': 16,
  'shutting-down': 32,
  'terminated': 48,
  'stopping': 64,
  'stopped': 80,
};

const INSTANCE_FILTERS = new Set([
  'instance-id',
  'instance-state-name',
  'instance-state-code',
  'tag-key',
  'tag-value',
  'block-device-mapping.volume-id',
  'outpost-arn',
]);

const VOLUME_FILTERS = new Set([
  'volume-id',
  'attachment.instance-id',
  'status',
  'tag-key',
  'tag-value',
]);

const SNAPSHOT_FILTERS = new Set([
  'snapshot-id',
  'volume-id',
  'status',
  'owner-id',
  'description',
  'tag-key',
  'tag-value',
  'outpost-arn',
]);

/** An error answered to the client in the EC2 error envelope. */
class SimError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

interface InstanceRecord {
  instanceId: string;
  state: string;
  tags: Record<string, string>;
  volumeIds: string[];
  volumeTags: Record<string, Record<string, string>>;
  outpostArn?: string;
  launchTimeMs: number;
}

interface Filter {
  name: string;
  values: string[];
}

interface Page<T> {
  items: T[];
  nextToken?: string;
}

interface InvokeAnswer {
  status: number;
  body: string;
  requestId: string;
  errorCode?: string;
}

class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(private readonly options: TokenBucketOptions) {
    this.tokens = options.capacity;
    this.last = performance.now();
  }

  /** Takes one token; false when the bucket is empty. */
  take(): boolean {
    const now = performance.now();
    this.tokens = Math.min(this.options.capacity, this.tokens + ((now - this.last) / 1000) * this.options.refillPerSec);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }
}

export class Ec2Simulator {
  /** every request, in arrival order */
  readonly calls: SimCall[] = [];
  /** every snapshot created, in creation order */
  readonly snapshots: SimSnapshot[] = [];
  /** every accepted Lambda Invoke, in arrival order (also recorded in `calls` as action `Invoke`) */
  readonly invocations: SimInvocation[] = [];

  private readonly instances = new Map<string, InstanceRecord>();
  private readonly faults: FaultRule[] = [];
  private readonly createBucket?: TokenBucket;
  private readonly describeBucket?: TokenBucket;
  private readonly perVolumeIntervalMs: number;
  private readonly latencyMs: number | ((call: SimCall) => number);
  private readonly accountId: string;
  private readonly describeSnapshotsLagMs: number;
  /** action -> number of calls so far */
  private readonly actionCounts = new Map<string, number>();
  /** volumeId -> performance.now() of its last snapshot */
  private readonly lastSnapshotAt = new Map<string, number>();
  /** snapshotId -> index (in `calls`) of the CreateSnapshots call that made it */
  private readonly snapshotCall = new Map<string, number>();
  /** tag key -> value -> snapshots carrying it, in creation order (DescribeSnapshots narrows with it) */
  private readonly snapshotsByTag = new Map<string, Map<string, SimSnapshot[]>>();
  /** snapshot -> its place in `snapshots` */
  private readonly snapshotSeq = new Map<SimSnapshot, number>();
  /**
   * DescribeInstances: the filtered instances of the first page of a listing, reused by its later
   * pages (by request fingerprint), so a listing of N instances costs O(N), not O(N^2 / page).
   */
  private readonly listings = new Map<string, InstanceRecord[]>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private server?: http.Server;
  private url?: string;

  constructor(options: Ec2SimulatorOptions = {}) {
    this.createBucket = options.createSnapshotsBucket ? new TokenBucket(options.createSnapshotsBucket) : undefined;
    this.describeBucket = options.describeBucket ? new TokenBucket(options.describeBucket) : undefined;
    this.perVolumeIntervalMs = options.perVolumeIntervalMs ?? DEFAULT_PER_VOLUME_INTERVAL_MS;
    this.latencyMs = options.latencyMs ?? 0;
    this.accountId = options.accountId ?? DEFAULT_ACCOUNT_ID;
    this.describeSnapshotsLagMs = options.describeSnapshotsLagMs ?? 0;
    this.addInstances(options.instances ?? []);
  }

  /** 'http://127.0.0.1:PORT'; throws before start() */
  get endpoint(): string {
    if (this.url === undefined) {
      throw new Error('Ec2Simulator: endpoint is only known after start()');
    }
    return this.url;
  }

  /** Listens on 127.0.0.1 on a random port; resolves the endpoint URL. */
  async start(): Promise<string> {
    if (this.url !== undefined) {
      return this.url;
    }
    const server = http.createServer((req, res) => this.onRequest(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const { port } = server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
    return this.url;
  }

  /** Stops listening, drops pending (delayed) answers and closes all connections, including idle keep-alive ones. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) {
      return;
    }
    this.server = undefined;
    this.url = undefined;
    for (const timer of this.timers) {
      clearTimeout(timer);
    }
    this.timers.clear();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  addInstances(instances: SimInstance[]): void {
    for (const instance of instances) {
      if (this.instances.has(instance.instanceId)) {
        throw new Error(`Ec2Simulator: duplicate instance ${instance.instanceId}`);
      }
      const state = instance.state ?? 'running';
      if (STATE_CODES[state] === undefined) {
        throw new Error(`Ec2Simulator: unknown instance state ${state}`);
      }
      this.instances.set(instance.instanceId, {
        instanceId: instance.instanceId,
        state,
        tags: { ...(instance.tags ?? {}) },
        volumeIds: [...instance.volumeIds],
        volumeTags: Object.fromEntries(Object.entries(instance.volumeTags ?? {}).map(([v, tags]) => [v, { ...tags }])),
        outpostArn: instance.outpostArn,
        launchTimeMs: Date.now(),
      });
    }
  }

  /** state -> 'terminated'; CreateSnapshots then answers InvalidInstanceID.NotFound (400). */
  terminate(instanceId: string): void {
    const instance = this.instances.get(instanceId);
    if (!instance) {
      throw new Error(`Ec2Simulator: unknown instance ${instanceId}`);
    }
    instance.state = 'terminated';
  }

  /** Changes an instance's state (e.g. 'stopped', 'pending'); 'terminated' is `terminate`. */
  setInstanceState(instanceId: string, state: string): void {
    const instance = this.instances.get(instanceId);
    if (!instance) {
      throw new Error(`Ec2Simulator: unknown instance ${instanceId}`);
    }
    if (STATE_CODES[state] === undefined) {
      throw new Error(`Ec2Simulator: unknown instance state ${state}`);
    }
    instance.state = state;
  }

  /** Replaces an instance's tags (e.g. to untag it mid-run). */
  setInstanceTags(instanceId: string, tags: Record<string, string>): void {
    const instance = this.instances.get(instanceId);
    if (!instance) {
      throw new Error(`Ec2Simulator: unknown instance ${instanceId}`);
    }
    instance.tags = { ...tags };
  }

  /** Rules are consulted in order before normal handling; the first non-undefined answer wins. */
  addFault(rule: FaultRule): void {
    this.faults.push(rule);
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /**
   * instanceId -> list of snapshot sets, in creation order.
   * Without `tagKey` one set = the snapshots made by one CreateSnapshots call.
   * With `tagKey` one set = the snapshots of one (instanceId, value of tag `tagKey`) pair;
   * snapshots without that tag are left out.
   */
  setsByInstance(tagKey?: string): Map<string, SimSnapshot[][]> {
    const result = new Map<string, SimSnapshot[][]>();
    const groups = new Map<string, SimSnapshot[]>();
    for (const snapshot of this.snapshots) {
      let groupKey: string;
      if (tagKey === undefined) {
        groupKey = String(this.snapshotCall.get(snapshot.snapshotId));
      } else {
        const value = snapshot.tags[tagKey];
        if (value === undefined) {
          continue;
        }
        groupKey = value;
      }
      const key = `${snapshot.instanceId}\u0000${groupKey}`;
      let group = groups.get(key);
      if (!group) {
        group = [];
        groups.set(key, group);
        let sets = result.get(snapshot.instanceId);
        if (!sets) {
          sets = [];
          result.set(snapshot.instanceId, sets);
        }
        sets.push(group);
      }
      group.push(snapshot);
    }
    return result;
  }

  countCalls(action: string): number {
    return this.actionCounts.get(action) ?? 0;
  }

  /** The payloads of the accepted Lambda invocations, parsed as JSON. */
  invocationPayloads(): unknown[] {
    return this.invocations.map((i) => JSON.parse(i.payload));
  }

  // ---------------------------------------------------------------- HTTP

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const invoke = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/.exec(url.pathname);
      if (invoke) {
        const invocationType = String(req.headers['x-amz-invocation-type'] ?? 'RequestResponse');
        const { status, body, requestId, errorCode } = this.processInvoke(decodeURIComponent(invoke[1]), invocationType, Buffer.concat(chunks).toString('utf8'));
        this.send(res, status, body, requestId, {
          'content-type': 'application/json',
          ...(errorCode ? { 'x-amzn-errortype': errorCode } : {}),
        });
        return;
      }
      const params: Record<string, string> = {};
      for (const [key, value] of url.searchParams) {
        setParam(params, key, value);
      }
      for (const [key, value] of new URLSearchParams(Buffer.concat(chunks).toString('utf8'))) {
        setParam(params, key, value);
      }
      const { status, body, requestId } = this.process(params);
      this.send(res, status, body, requestId);
    });
  }

  /** Answers the call processed last (processing is synchronous, so that is this request's). */
  private send(res: http.ServerResponse, status: number, body: string, requestId: string, headers?: Record<string, string>): void {
    const latencyMs = typeof this.latencyMs === 'function' ? this.latencyMs(this.calls[this.calls.length - 1]) : this.latencyMs;
    const write = (): void => {
      if (res.destroyed) {
        return;
      }
      res.writeHead(status, {
        'content-type': 'text/xml;charset=UTF-8',
        'server': 'AmazonEC2',
        ...headers,
        'content-length': Buffer.byteLength(body),
        'x-amzn-requestid': requestId,
      });
      res.end(body);
    };
    if (latencyMs <= 0) {
      write();
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      write();
    }, latencyMs);
    this.timers.add(timer);
  }

  /** Records a call in `calls` and asks the fault rules about it. */
  private begin(action: string, params: Record<string, string>): { call: SimCall; callIndex: number; fault?: SimFault } {
    const callIndex = this.calls.length;
    const actionIndex = this.countCalls(action);
    const call: SimCall = { action, params, atMs: Date.now(), status: 0 };
    this.calls.push(call);
    this.actionCounts.set(action, actionIndex + 1);
    try {
      for (const rule of this.faults) {
        const fault = rule({ action, params: { ...params }, callIndex, actionIndex });
        if (fault !== undefined) {
          return { call, callIndex, fault };
        }
      }
    } catch (e) {
      return { call, callIndex, fault: { status: 500, code: 'InternalError', message: `Ec2Simulator bug: a fault rule threw ${e instanceof Error ? e.stack ?? e.message : String(e)}` } };
    }
    return { call, callIndex };
  }

  /** Lambda Invoke: records the invocation (nothing runs) and answers like Lambda (202 for Event, 204 for DryRun). */
  private processInvoke(functionName: string, invocationType: string, payload: string): InvokeAnswer {
    const requestId = randomUUID();
    const { call, fault } = this.begin('Invoke', { FunctionName: functionName, InvocationType: invocationType });
    const accept = (): number => {
      if (invocationType === 'DryRun') {
        return 204;
      }
      if (invocationType !== 'Event') {
        throw new SimError(400, 'InvalidParameterValueException', 'Ec2Simulator runs no function: only Event and DryRun invocations are supported.');
      }
      this.invocations.push({ functionName, invocationType, payload, atMs: Date.now() });
      return 202;
    };
    try {
      if (fault !== undefined) {
        if (fault.afterEffect) {
          accept();
        }
        throw new SimError(fault.status, fault.code, fault.message ?? `Simulated fault ${fault.code}`);
      }
      call.status = accept();
      return { status: call.status, body: '', requestId };
    } catch (e) {
      const error = e instanceof SimError ? e : new SimError(500, 'ServiceException', String(e));
      call.status = error.status;
      call.errorCode = error.code;
      return { status: error.status, body: JSON.stringify({ Type: 'User', message: error.message }), requestId, errorCode: error.code };
    }
  }

  /** Handles one request synchronously and records it in `calls`. */
  private process(allParams: Record<string, string>): { status: number; body: string; requestId: string } {
    const { Action: action = '', Version: _version, ...params } = allParams;
    const requestId = randomUUID();
    const { call, callIndex, fault } = this.begin(action, params);
    try {
      if (fault !== undefined) {
        if (fault.afterEffect) {
          try {
            this.dispatch(action, params, callIndex);
          } catch (e) {
            if (!(e instanceof SimError)) {
              throw e;
            }
          }
        }
        throw new SimError(fault.status, fault.code, fault.message ?? `Simulated fault ${fault.code}`);
      }
      const inner = this.dispatch(action, params, callIndex);
      call.status = 200;
      const body = `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${XMLNS}">`
        + `${text('requestId', requestId)}${inner}</${action}Response>`;
      return { status: 200, body, requestId };
    } catch (e) {
      const error = e instanceof SimError
        ? e
        : new SimError(500, 'InternalError', `Ec2Simulator bug: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      call.status = error.status;
      call.errorCode = error.code;
      const body = '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        + `${text('Code', error.code)}${text('Message', error.message)}</Error></Errors>`
        + `${text('RequestID', requestId)}</Response>`;
      return { status: error.status, body, requestId };
    }
  }

  private dispatch(action: string, params: Record<string, string>, callIndex: number): string {
    switch (action) {
      case 'DescribeInstances':
        this.throttle(this.describeBucket);
        return this.describeInstances(params);
      case 'DescribeSnapshots':
        this.throttle(this.describeBucket);
        return this.describeSnapshots(params);
      case 'DescribeVolumes':
        this.throttle(this.describeBucket);
        return this.describeVolumes(params);
      case 'CreateSnapshots':
        this.throttle(this.createBucket);
        return this.createSnapshots(params, callIndex);
      default:
        throw new SimError(400, 'InvalidAction', `The action ${action || '(none)'} is not valid for this web service.`);
    }
  }

  private throttle(bucket: TokenBucket | undefined): void {
    if (bucket && !bucket.take()) {
      throw new SimError(503, 'RequestLimitExceeded', 'Request limit exceeded.');
    }
  }

  // ---------------------------------------------------------------- actions

  private describeInstances(params: Record<string, string>): string {
    const ids = listParam(params, 'InstanceId');
    const maxResults = parseMaxResults(params);
    if (ids.length > 0 && maxResults !== undefined) {
      throw new SimError(400, 'InvalidParameterCombination', 'The parameter instancesSet cannot be used with the parameter maxResults');
    }
    const filters = parseFilters(params, INSTANCE_FILTERS);
    checkDryRun(params);
    const fingerprint = requestFingerprint('DescribeInstances', params);
    const cached = params.NextToken ? this.listings.get(fingerprint) : undefined;
    if (cached && ids.length === 0) {
      const page = paginate('DescribeInstances', params, cached, maxResults);
      return node('reservationSet', ...page.items.map((i) => this.reservationXml(i))) + text('nextToken', page.nextToken);
    }
    let instances = [...this.instances.values()];
    if (ids.length > 0) {
      const missing = ids.filter((id) => !this.instances.has(id));
      if (missing.length > 0) {
        throw new SimError(400, 'InvalidInstanceID.NotFound', missing.length === 1
          ? `The instance ID '${missing[0]}' does not exist`
          : `The instance IDs '${missing.join(', ')}' do not exist`);
      }
      instances = instances.filter((i) => ids.includes(i.instanceId));
    }
    instances = instances.filter((i) => matchesAll(filters, (name) => instanceValues(i, name)));
    if (ids.length === 0) {
      this.listings.delete(fingerprint);
      this.listings.set(fingerprint, instances);
      if (this.listings.size > 64) this.listings.delete(this.listings.keys().next().value!);
    }
    const page = paginate('DescribeInstances', params, instances, maxResults);
    const reservations = page.items.map((i) => this.reservationXml(i));
    return node('reservationSet', ...reservations) + text('nextToken', page.nextToken);
  }

  private createSnapshots(params: Record<string, string>, callIndex: number): string {
    const instanceId = params['InstanceSpecification.InstanceId'];
    if (!instanceId) {
      throw new SimError(400, 'MissingParameter', 'The request must contain the parameter InstanceSpecification.InstanceId');
    }
    const excludeBoot = parseBool(params, 'InstanceSpecification.ExcludeBootVolume');
    const excluded = listParam(params, 'InstanceSpecification.ExcludeDataVolumeId');
    if (excluded.length > MAX_EXCLUDED_DATA_VOLUMES) {
      throw new SimError(400, 'InvalidParameterValue',
        `The number of excluded data volumes (${excluded.length}) exceeds the maximum of ${MAX_EXCLUDED_DATA_VOLUMES}.`);
    }
    const tags = parseSnapshotTags(params);
    const copyTags = params.CopyTagsFromSource;
    if (copyTags !== undefined && copyTags !== 'volume') {
      throw new SimError(400, 'InvalidParameterValue', `Value (${copyTags}) for parameter CopyTagsFromSource is invalid.`);
    }
    const location = params.Location;
    if (location !== undefined && location !== 'regional' && location !== 'local') {
      throw new SimError(400, 'InvalidParameterValue', `Value (${location}) for parameter Location is invalid.`);
    }
    const instance = this.instances.get(instanceId);
    if (!instance || instance.state === 'terminated') {
      throw new SimError(400, 'InvalidInstanceID.NotFound', `The instance ID '${instanceId}' does not exist`);
    }
    const rootVolumeId = instance.volumeIds[0];
    if (rootVolumeId !== undefined && excluded.includes(rootVolumeId)) {
      throw new SimError(400, 'InvalidParameterValue',
        `The root volume ${rootVolumeId} cannot be excluded using ExcludeDataVolumeIds; use ExcludeBootVolume instead.`);
    }
    const outpostArn = params.OutpostArn;
    if (outpostArn !== undefined && outpostArn !== instance.outpostArn) {
      throw new SimError(400, 'InvalidParameterCombination',
        `The OutpostArn ${outpostArn} does not match the Outpost of instance ${instanceId}.`);
    }
    checkDryRun(params);

    const volumeIds = instance.volumeIds.filter((v, index) => !(index === 0 && excludeBoot) && !excluded.includes(v));
    const now = performance.now();
    if (this.perVolumeIntervalMs > 0) {
      for (const volumeId of volumeIds) {
        const last = this.lastSnapshotAt.get(volumeId);
        if (last !== undefined && now - last < this.perVolumeIntervalMs) {
          throw new SimError(400, 'SnapshotCreationPerVolumeRateExceeded',
            'The maximum per volume CreateSnapshot request rate has been exceeded. Use an increasing or variable sleep interval between requests.');
        }
      }
    }

    const startTimeMs = Date.now();
    const created: SimSnapshot[] = volumeIds.map((volumeId) => ({
      snapshotId: newId('snap-'),
      volumeId,
      instanceId,
      description: params.Description,
      tags: { ...tags },
      outpostArn,
      startTimeMs,
    }));
    for (const snapshot of created) {
      this.snapshotSeq.set(snapshot, this.snapshots.length);
      this.snapshots.push(snapshot);
      for (const [key, value] of Object.entries(snapshot.tags)) {
        let byValue = this.snapshotsByTag.get(key);
        if (!byValue) this.snapshotsByTag.set(key, byValue = new Map());
        let list = byValue.get(value);
        if (!list) byValue.set(value, list = []);
        list.push(snapshot);
      }
      this.snapshotCall.set(snapshot.snapshotId, callIndex);
      this.lastSnapshotAt.set(snapshot.volumeId, now);
    }
    return node('snapshotSet', ...created.map((s) => node('item',
      text('description', s.description),
      tagSetXml(s.tags),
      text('encrypted', false),
      text('volumeId', s.volumeId),
      text('state', 'pending'),
      text('volumeSize', VOLUME_SIZE_GIB),
      text('startTime', new Date(s.startTimeMs).toISOString()),
      text('progress', ''),
      text('ownerId', this.accountId),
      text('snapshotId', s.snapshotId),
      text('outpostArn', s.outpostArn),
    )));
  }

  private describeSnapshots(params: Record<string, string>): string {
    const ids = listParam(params, 'SnapshotId');
    const owners = listParam(params, 'Owner');
    const maxResults = parseMaxResults(params);
    if (ids.length > 0 && maxResults !== undefined) {
      throw new SimError(400, 'InvalidParameterCombination', 'The parameter snapshotSet cannot be used with the parameter maxResults');
    }
    const filters = parseFilters(params, SNAPSHOT_FILTERS);
    checkDryRun(params);
    let snapshots = this.narrowByTag(filters);
    if (ids.length > 0) {
      const known = new Set(snapshots.map((s) => s.snapshotId));
      const missing = ids.filter((id) => !known.has(id));
      if (missing.length > 0) {
        throw new SimError(400, 'InvalidSnapshot.NotFound', `The snapshot '${missing[0]}' does not exist.`);
      }
      snapshots = snapshots.filter((s) => ids.includes(s.snapshotId));
    }
    if (owners.length > 0 && !owners.some((o) => o === 'self' || o === this.accountId)) {
      snapshots = [];
    }
    if (this.describeSnapshotsLagMs > 0) {
      const visibleBefore = Date.now() - this.describeSnapshotsLagMs;
      snapshots = snapshots.filter((s) => s.startTimeMs <= visibleBefore);
    }
    snapshots = snapshots.filter((s) => matchesAll(filters, (name) => this.snapshotValues(s, name)));
    const page = paginate('DescribeSnapshots', params, snapshots, maxResults);
    const items = page.items.map((s) => node('item',
      text('snapshotId', s.snapshotId),
      text('volumeId', s.volumeId),
      text('status', 'completed'),
      text('startTime', new Date(s.startTimeMs).toISOString()),
      text('progress', '100%'),
      text('ownerId', this.accountId),
      text('volumeSize', VOLUME_SIZE_GIB),
      text('description', s.description),
      text('encrypted', false),
      tagSetXml(s.tags),
      text('outpostArn', s.outpostArn),
      text('storageTier', 'standard'),
    ));
    return node('snapshotSet', ...items) + text('nextToken', page.nextToken);
  }

  /** The volumes of every instance (a terminated instance's volumes are gone); MaxResults 5-500 like EC2. */
  private describeVolumes(params: Record<string, string>): string {
    const ids = listParam(params, 'VolumeId');
    const maxResults = parseMaxResults(params, 500);
    if (ids.length > 0 && maxResults !== undefined) {
      throw new SimError(400, 'InvalidParameterCombination', 'The parameter volumeSet cannot be used with the parameter maxResults');
    }
    const filters = parseFilters(params, VOLUME_FILTERS);
    checkDryRun(params);
    let volumes = [...this.instances.values()]
      .filter((i) => i.state !== 'terminated')
      .flatMap((i) => i.volumeIds.map((volumeId, index) => ({ volumeId, index, instance: i, tags: i.volumeTags[volumeId] ?? {} })));
    if (ids.length > 0) {
      const missing = ids.filter((id) => !volumes.some((v) => v.volumeId === id));
      if (missing.length > 0) {
        throw new SimError(400, 'InvalidVolume.NotFound', `The volume '${missing[0]}' does not exist.`);
      }
      volumes = volumes.filter((v) => ids.includes(v.volumeId));
    }
    volumes = volumes.filter((v) => matchesAll(filters, (name) => {
      switch (name) {
        case 'volume-id': return [v.volumeId];
        case 'attachment.instance-id': return [v.instance.instanceId];
        case 'status': return ['in-use'];
        default: return tagValues(v.tags, name);
      }
    }));
    const page = paginate('DescribeVolumes', params, volumes, maxResults);
    const items = page.items.map((v) => node('item',
      text('volumeId', v.volumeId),
      text('size', VOLUME_SIZE_GIB),
      text('availabilityZone', 'us-east-1a'),
      text('status', 'in-use'),
      text('createTime', new Date(v.instance.launchTimeMs).toISOString()),
      node('attachmentSet', node('item',
        text('volumeId', v.volumeId),
        text('instanceId', v.instance.instanceId),
        text('device', deviceName(v.index)),
        text('status', 'attached'),
        text('attachTime', new Date(v.instance.launchTimeMs).toISOString()),
        text('deleteOnTermination', v.index === 0),
      )),
      tagSetXml(v.tags),
      text('volumeType', 'gp3'),
      text('encrypted', false),
    ));
    return node('volumeSet', ...items) + text('nextToken', page.nextToken);
  }

  // ---------------------------------------------------------------- helpers

  private reservationXml(i: InstanceRecord): string {
    const terminated = i.state === 'terminated';
    const mappings = terminated ? [] : i.volumeIds.map((volumeId, index) => node('item',
      text('deviceName', deviceName(index)),
      node('ebs',
        text('volumeId', volumeId),
        text('status', 'attached'),
        text('attachTime', new Date(i.launchTimeMs).toISOString()),
        text('deleteOnTermination', index === 0),
      ),
    ));
    const instance = node('item',
      text('instanceId', i.instanceId),
      text('imageId', 'ami-0123456789abcdef0'),
      node('instanceState', text('code', STATE_CODES[i.state] ?? 0), text('name', i.state)),
      text('instanceType', 't3.micro'),
      text('launchTime', new Date(i.launchTimeMs).toISOString()),
      text('rootDeviceType', 'ebs'),
      text('rootDeviceName', deviceName(0)),
      node('blockDeviceMapping', ...mappings),
      tagSetXml(i.tags),
      text('outpostArn', i.outpostArn),
    );
    return node('item',
      text('reservationId', 'r-' + hashHex(i.instanceId, 17)),
      text('ownerId', this.accountId),
      node('groupSet'),
      node('instancesSet', instance),
    );
  }

  /**
   * The snapshots that can match: with a `tag:` filter of exact values, only those carrying one of
   * them (the most selective such filter), in creation order; otherwise all.
   */
  private narrowByTag(filters: Filter[]): SimSnapshot[] {
    let best: SimSnapshot[] | undefined;
    for (const f of filters) {
      if (!f.name.startsWith('tag:') || f.values.some((v) => /[*?\\]/.test(v))) continue;
      const byValue = this.snapshotsByTag.get(f.name.slice(4));
      const found = f.values.flatMap((v) => byValue?.get(v) ?? []);
      if (!best || found.length < best.length) best = found;
    }
    if (!best) return [...this.snapshots];
    return [...new Set(best)].sort((a, b) => this.snapshotSeq.get(a)! - this.snapshotSeq.get(b)!);
  }

  private snapshotValues(s: SimSnapshot, name: string): string[] {
    switch (name) {
      case 'snapshot-id': return [s.snapshotId];
      case 'volume-id': return [s.volumeId];
      case 'status': return ['completed'];
      case 'owner-id': return [this.accountId];
      case 'description': return s.description === undefined ? [] : [s.description];
      case 'outpost-arn': return s.outpostArn === undefined ? [] : [s.outpostArn];
      default: return tagValues(s.tags, name);
    }
  }
}

// ------------------------------------------------------------------ free helpers

function setParam(params: Record<string, string>, key: string, value: string): void {
  if (key === '__proto__') {
    return;
  }
  params[key] = value;
}

/** `Prefix.1`, `Prefix.2`, ... in index order */
function listParam(params: Record<string, string>, prefix: string): string[] {
  const re = new RegExp(`^${escapeRegExp(prefix)}\\.(\\d+)$`);
  const found: Array<[number, string]> = [];
  for (const [key, value] of Object.entries(params)) {
    const m = re.exec(key);
    if (m) {
      found.push([Number(m[1]), value]);
    }
  }
  return found.sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}

/** indices N for which `Prefix.N.<suffix>` exists, sorted */
function listIndices(params: Record<string, string>, prefix: string): number[] {
  const re = new RegExp(`^${escapeRegExp(prefix)}\\.(\\d+)\\.`);
  const indices = new Set<number>();
  for (const key of Object.keys(params)) {
    const m = re.exec(key);
    if (m) {
      indices.add(Number(m[1]));
    }
  }
  return [...indices].sort((a, b) => a - b);
}

function parseFilters(params: Record<string, string>, known: Set<string>): Filter[] {
  return listIndices(params, 'Filter').map((n) => {
    const name = params[`Filter.${n}.Name`];
    if (name === undefined || name === '') {
      throw new SimError(400, 'MissingParameter', `The request must contain the parameter Filter.${n}.Name`);
    }
    if (!known.has(name) && !(name.startsWith('tag:') && name.length > 4)) {
      throw new SimError(400, 'InvalidParameterValue', `The filter '${name}' is invalid`);
    }
    return { name, values: listParam(params, `Filter.${n}.Value`) };
  });
}

/** A filter's values, compiled once per request: exact values in a set, wildcard ones as regular expressions. */
const compiledFilters = new WeakMap<Filter, { exact: Set<string>; patterns: RegExp[] }>();

function compile(filter: Filter): { exact: Set<string>; patterns: RegExp[] } {
  let compiled = compiledFilters.get(filter);
  if (!compiled) {
    compiled = { exact: new Set(), patterns: [] };
    for (const pattern of filter.values) {
      if (/[*?\\]/.test(pattern)) compiled.patterns.push(wildcardRegExp(pattern));
      else compiled.exact.add(pattern);
    }
    compiledFilters.set(filter, compiled);
  }
  return compiled;
}

/** Filters are ANDed; the values of one filter are ORed; `*` and `?` are wildcards (`\` escapes). */
function matchesAll(filters: Filter[], valuesOf: (name: string) => string[]): boolean {
  return filters.every((f) => {
    const { exact, patterns } = compile(f);
    return valuesOf(f.name).some((v) => exact.has(v) || patterns.some((re) => re.test(v)));
  });
}

function instanceValues(i: InstanceRecord, name: string): string[] {
  switch (name) {
    case 'instance-id': return [i.instanceId];
    case 'instance-state-name': return [i.state];
    case 'instance-state-code': return [String(STATE_CODES[i.state] ?? 0)];
    case 'block-device-mapping.volume-id': return i.state === 'terminated' ? [] : [...i.volumeIds];
    case 'outpost-arn': return i.outpostArn === undefined ? [] : [i.outpostArn];
    default: return tagValues(i.tags, name);
  }
}

function tagValues(tags: Record<string, string>, name: string): string[] {
  if (name === 'tag-key') {
    return Object.keys(tags);
  }
  if (name === 'tag-value') {
    return Object.values(tags);
  }
  if (name.startsWith('tag:')) {
    const value = tags[name.slice(4)];
    return value === undefined ? [] : [value];
  }
  return [];
}

function wildcardRegExp(pattern: string): RegExp {
  let source = '';
  for (let k = 0; k < pattern.length; k++) {
    const c = pattern[k];
    if (c === '\\' && k + 1 < pattern.length) {
      source += escapeRegExp(pattern[++k]);
    } else if (c === '*') {
      source += '.*';
    } else if (c === '?') {
      source += '.';
    } else {
      source += escapeRegExp(c);
    }
  }
  return new RegExp(`^${source}$`, 's');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function parseBool(params: Record<string, string>, key: string): boolean {
  const value = params[key];
  if (value === undefined || value === 'false') {
    return false;
  }
  if (value === 'true') {
    return true;
  }
  throw new SimError(400, 'InvalidParameterValue', `Value (${value}) for parameter ${key} is invalid. Expecting a boolean.`);
}

function checkDryRun(params: Record<string, string>): void {
  if (parseBool(params, 'DryRun')) {
    throw new SimError(412, 'DryRunOperation', 'Request would have succeeded, but DryRun flag is set.');
  }
}

function parseMaxResults(params: Record<string, string>, max = 1000): number | undefined {
  const raw = params.MaxResults;
  if (raw === undefined) {
    return undefined;
  }
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 5 || value > max) {
    throw new SimError(400, 'InvalidParameterValue',
      `Value ( ${raw} ) for parameter maxResults is invalid. Expecting a value between 5 and ${max}.`);
  }
  return value;
}

/** Tags of all `TagSpecification.N` entries (ResourceType must be 'snapshot'). */
function parseSnapshotTags(params: Record<string, string>): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const n of listIndices(params, 'TagSpecification')) {
    const resourceType = params[`TagSpecification.${n}.ResourceType`];
    if (resourceType !== 'snapshot') {
      throw new SimError(400, 'InvalidParameterValue',
        `'${resourceType ?? ''}' is not a valid taggable resource type for this operation.`);
    }
    for (const m of listIndices(params, `TagSpecification.${n}.Tag`)) {
      const key = params[`TagSpecification.${n}.Tag.${m}.Key`];
      if (key === undefined || key === '') {
        throw new SimError(400, 'InvalidParameterValue', `Tag ${m} of TagSpecification ${n} has no key.`);
      }
      tags[key] = params[`TagSpecification.${n}.Tag.${m}.Value`] ?? '';
    }
  }
  return tags;
}

/**
 * Offset pagination with an opaque token bound to the action and to the other
 * parameters (a token reused with different filters answers InvalidPaginationToken).
 */
/** The request without its paging and dry-run parameters: what a pagination token is bound to. */
function requestFingerprint(action: string, params: Record<string, string>): string {
  const { NextToken: _token, MaxResults: _max, DryRun: _dryRun, ...rest } = params;
  return hashHex(action + '\n' + JSON.stringify(Object.entries(rest).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))), 16);
}

function paginate<T>(action: string, params: Record<string, string>, items: T[], maxResults: number | undefined): Page<T> {
  const token = params.NextToken;
  const fingerprint = requestFingerprint(action, params);
  let offset = 0;
  if (token !== undefined && token !== '') {
    const decoded = decodeToken(token);
    if (!decoded || decoded.f !== fingerprint) {
      throw new SimError(400, 'InvalidPaginationToken', 'The specified pagination token is not valid or is expired.');
    }
    offset = decoded.o;
  }
  const end = maxResults === undefined ? items.length : offset + maxResults;
  const nextToken = end < items.length
    ? Buffer.from(JSON.stringify({ f: fingerprint, o: end })).toString('base64url')
    : undefined;
  return { items: items.slice(offset, end), nextToken };
}

function decodeToken(token: string): { f: string; o: number } | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (typeof value === 'object' && value !== null) {
      const { f, o } = value as { f?: unknown; o?: unknown };
      if (typeof f === 'string' && typeof o === 'number' && Number.isInteger(o) && o >= 0) {
        return { f, o };
      }
    }
  } catch {
    // fall through
  }
  return undefined;
}

function deviceName(index: number): string {
  return index === 0 ? '/dev/xvda' : `/dev/sd${String.fromCharCode('f'.charCodeAt(0) + index - 1)}`;
}

function newId(prefix: string): string {
  return prefix + randomBytes(9).toString('hex').slice(0, 17);
}

function hashHex(input: string, length: number): string {
  return createHash('sha256').update(input).digest('hex').slice(0, length);
}

function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\'': '&apos;' })[c] ?? c);
}

/** `<name>value</name>`, or nothing when value is undefined */
function text(name: string, value: string | number | boolean | undefined): string {
  return value === undefined ? '' : `<${name}>${escapeXml(String(value))}</${name}>`;
}

function node(name: string, ...children: string[]): string {
  return children.length === 0 ? `<${name}/>` : `<${name}>${children.join('')}</${name}>`;
}

/** omitted when there are no tags, like EC2 */
function tagSetXml(tags: Record<string, string>): string {
  const entries = Object.entries(tags);
  if (entries.length === 0) {
    return '';
  }
  return node('tagSet', ...entries.map(([key, value]) => node('item', text('key', key), text('value', value))));
}
