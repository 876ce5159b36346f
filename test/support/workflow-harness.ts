/**
 * Runs the workflow that InstanceSnapshotSchedule synthesizes, as it deploys: the definition is
 * taken from the template (tokens resolved to fixed ARNs), checked with asl-validator, and executed
 * with aws-local-stepfunctions. Its Lambda tasks run the real worker (lambda/worker.ts) with the
 * real EC2 clients pointed at the EC2 simulator; its DynamoDB tasks run against an in-memory table
 * that evaluates the definition's own condition expression.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { EC2Client } from '@aws-sdk/client-ec2';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { App, Stack } from 'aws-cdk-lib';
import type { StateMachine as LocalStateMachine } from 'aws-local-stepfunctions' with { 'resolution-mode': 'import' };
import { CapturedLog, FaultHarness, NO_WAIT_BACKOFF, REGION, CREDENTIALS } from './fault-harness';
import { createEc2Clients, Ec2ClientsOptions } from '../../lambda/clients';
import { RunSettings } from '../../lambda/snapshot-step';
import { makeWorker, MetricsSink } from '../../lambda/worker';
import { InstanceSnapshotSchedule, InstanceSnapshotScheduleProps } from '../../src';

// The package is ESM with a CommonJS build; jest loads the CommonJS one.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { StateMachine } = require('aws-local-stepfunctions') as { StateMachine: typeof LocalStateMachine };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const aslValidator: (definition: unknown) => { isValid: boolean; errors: unknown[] } = require('asl-validator');

const ACCOUNT = '123456789012';
export const WORKER_ARN = `arn:aws:lambda:${REGION}:${ACCOUNT}:function:worker`;
export const STATE_MACHINE_ARN = `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:workflow`;

/** Resolves a CloudFormation value of the synthesized definition to fixed text. */
function resolveCfn(value: unknown, refs: Record<string, string>): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, any>;
  if (v['Fn::Join']) return v['Fn::Join'][1].map((p: unknown) => resolveCfn(p, refs)).join(v['Fn::Join'][0]);
  if (v.Ref) {
    if (v.Ref === 'AWS::Partition') return 'aws';
    if (v.Ref === 'AWS::Region') return REGION;
    if (v.Ref === 'AWS::AccountId') return ACCOUNT;
    return refs[v.Ref] ?? `ref-${v.Ref}`;
  }
  if (v['Fn::GetAtt']) return refs[`${v['Fn::GetAtt'][0]}.${v['Fn::GetAtt'][1]}`] ?? WORKER_ARN;
  throw new Error(`workflow harness: cannot resolve ${JSON.stringify(value)}`);
}

export interface SynthesizedWorkflow {
  readonly definition: any;
  readonly stack: Stack;
  readonly construct: InstanceSnapshotSchedule;
  /** The worker's environment as synthesized. */
  readonly workerEnvironment: Record<string, string>;
}

/** Synthesizes a stack with one schedule and returns its workflow definition, resolved and validated. */
export function synthesizeWorkflow(props: Partial<InstanceSnapshotScheduleProps> = {}): SynthesizedWorkflow {
  const app = new App();
  const stack = new Stack(app, 'Stack', { env: { account: ACCOUNT, region: REGION } });
  const construct = new InstanceSnapshotSchedule(stack, 'Nightly', { instanceTags: { Backup: ['nightly'] }, ...props });
  const template = app.synth().getStackByName('Stack').template;
  const resources = Object.entries<any>(template.Resources);
  const [, sm] = resources.find(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine')!;
  const [workerId, worker] = resources.find(([, r]) => r.Type === 'AWS::Lambda::Function')!;
  const [tableId] = resources.find(([, r]) => r.Type === 'AWS::DynamoDB::Table')!;
  const definition = JSON.parse(resolveCfn(sm.Properties.DefinitionString, { [`${workerId}.Arn`]: WORKER_ARN, [tableId]: 'locks' }));
  const check = aslValidator(JSON.parse(JSON.stringify(definition)));
  if (!check.isValid) throw new Error(`asl-validator rejects the synthesized definition: ${JSON.stringify(check.errors)}`);
  return { definition, stack, construct, workerEnvironment: worker.Properties.Environment.Variables };
}

/** An in-memory DynamoDB table that evaluates the conditions the workflow writes. */
export class FakeLockTable {
  readonly items = new Map<string, Record<string, { S?: string; N?: string }>>();
  puts = 0;

  putItem(params: any): Record<string, never> {
    this.puts++;
    const item = params.Item as Record<string, { S?: string; N?: string }>;
    const key = item.pk.S!;
    if (params.ConditionExpression !== undefined && !this.evaluate(params, this.items.get(key))) {
      const error = new Error('The conditional request failed');
      error.name = 'DynamoDB.ConditionalCheckFailedException';
      throw error;
    }
    this.items.set(key, item);
    return {};
  }

  getItem(params: any): { Item?: Record<string, { S?: string; N?: string }> } {
    const item = this.items.get(params.Key.pk.S);
    return item ? { Item: item } : {};
  }

  /** The one grammar the workflow uses: `attribute_not_exists(#a) OR #b = :c`. */
  private evaluate(params: any, existing: Record<string, { S?: string }> | undefined): boolean {
    const m = /^attribute_not_exists\((#\w+)\) OR (#\w+) = (:\w+)$/.exec(params.ConditionExpression);
    if (!m) throw new Error(`FakeLockTable: unsupported condition ${params.ConditionExpression}`);
    const names = params.ExpressionAttributeNames;
    if (!existing || existing[names[m[1]]] === undefined) return true;
    return existing[names[m[2]]]?.S === params.ExpressionAttributeValues[m[3]].S;
  }
}

export interface ExecutionResult {
  readonly output?: any;
  readonly error?: { name: string; cause: string };
  readonly events: any[];
}

/** The largest state (input or output of any state) of an execution, as JSON bytes. */
export function largestStateBytes(events: any[]): number {
  let max = 0;
  for (const e of events) {
    for (const value of [e.input, e.output, e.state?.input, e.state?.output]) {
      if (value !== undefined) max = Math.max(max, Buffer.byteLength(JSON.stringify(value)));
    }
  }
  return max;
}

export interface WorkerCall {
  readonly state: string;
  readonly input: any;
  output?: any;
  error?: Error;
}

/** Thrown by every EC2 call of a worker invocation after the test killed it. */
export class KilledError extends Error {
  constructor() {
    super('the worker was killed');
    this.name = 'KilledError';
  }
}

export interface WorkflowRunOptions {
  /**
   * Kill the worker call with this index after that many CreateSnapshots (or, when it prunes,
   * DeleteSnapshot) calls reached EC2: every
   * later EC2 call of the invocation fails, and the invocation ends as `Sandbox.Timedout` (its
   * answer is lost), as when Lambda kills a function.
   */
  readonly kill?: (index: number) => number | undefined;
  /** The execution's name (default: the scheduler execution id of the input). */
  readonly executionName?: string;
  /** Called before each worker call; may throw an error named like a Lambda service error instead of calling the worker. */
  readonly beforeWorker?: (call: WorkerCall, index: number) => void;
  /** Called after the worker answered; may throw (the answer is lost) after the worker did its work. */
  readonly afterWorker?: (call: WorkerCall, index: number) => void;
  /** Replaces the worker's input (a forged input). */
  readonly forgeInput?: (input: any, index: number) => any;
}

/** Milliseconds instead of the workflow's waits (2 and 5 minutes), scaled with the worker's settings. */
export interface WorkflowHarnessOptions {
  readonly settings: RunSettings;
  readonly recoveryWaitMs: number;
  readonly retryPassWaitMs: number;
  /** Between copy steps (default: retryPassWaitMs). */
  readonly copyWaitMs?: number;
  /** The client of a vault's event bus (a test mocks it). */
  readonly eventBridge?: EventBridgeClient;
  readonly clients?: Ec2ClientsOptions;
  /** Worker environment (e.g. REQUEST_SHA256); default: the synthesized one. */
  readonly workerEnv?: Record<string, string>;
}

/**
 * Runs executions of one synthesized workflow against one simulator and one lock table, as many
 * at once as a test starts (duplicate deliveries run concurrently, as they would in AWS).
 */
export class WorkflowHarness {
  readonly table = new FakeLockTable();
  readonly log = new CapturedLog();
  readonly workerCalls: WorkerCall[] = [];
  /** The metrics the worker published, one record per step (the final step's with the run's counts). */
  readonly published: Array<{ dimensions: Record<string, string>; values: Record<string, number> }> = [];
  private readonly metrics = ((): MetricsSink => {
    let pending = { dimensions: {} as Record<string, string>, values: {} as Record<string, number> };
    return {
      clearDefaultDimensions: () => undefined,
      addDimension: (name: string, value: string) => { pending.dimensions[name] = value; },
      addMetric: (name: string, _unit: unknown, value: number) => { pending.values[name] = value; },
      publishStoredMetrics: () => { this.published.push(pending); pending = { dimensions: {}, values: {} }; },
    } as MetricsSink;
  })();
  private readonly stateMachine: LocalStateMachine;
  private readonly executions = new Map<string, { input: string; result: Promise<ExecutionResult>; closed: boolean }>();
  private readonly clients: EC2Client[] = [];

  constructor(readonly workflow: SynthesizedWorkflow, readonly faults: FaultHarness, private readonly options: WorkflowHarnessOptions) {
    this.stateMachine = new StateMachine(workflow.definition, { validationOptions: { checkArn: true, checkPaths: true } });
  }

  dispose(): void {
    for (const c of this.clients.splice(0)) c.destroy();
  }

  private worker(killAfterCreates?: number) {
    const logger = new Logger({ serviceName: 'workflow-test', logLevel: 'SILENT' });
    const capture = this.log;
    // Everything the worker logs goes to the captured log as well.
    for (const level of ['info', 'warn', 'error'] as const) {
      const original = logger[level].bind(logger);
      (logger as any)[level] = (message: string, attributes: Record<string, unknown> = {}) => {
        capture[level](message, attributes);
        original(message, attributes);
      };
    }
    return makeWorker({
      settings: this.options.settings,
      env: this.options.workerEnv ?? this.workflow.workerEnvironment,
      logger,
      metrics: this.metrics,
      ...(this.options.eventBridge ? { createEventBridgeClient: () => this.options.eventBridge! } : {}),
      createClients: (clientOptions) => {
        const built = createEc2Clients({
          throttleBackoffBaseMs: 2,
          throttleBackoffMaxMs: 20,
          describeBackoff: NO_WAIT_BACKOFF,
          ...clientOptions,
          ...this.options.clients,
          config: { endpoint: this.faults.sim.endpoint, region: clientOptions.config?.region ?? REGION, credentials: CREDENTIALS },
        });
        this.clients.push(built.ec2, built.ec2Create, built.ec2Delete);
        if (killAfterCreates !== undefined) {
          let creates = 0;
          for (const client of [built.ec2, built.ec2Create, built.ec2Delete]) {
            client.middlewareStack.add((next, context) => async (args) => {
              if (creates >= killAfterCreates) throw new KilledError();
              if (context.commandName === 'CreateSnapshotsCommand' || context.commandName === 'DeleteSnapshotCommand') creates++;
              return next(args);
            }, { step: 'initialize', name: 'killSwitch' });
          }
        }
        return built;
      },
    });
  }


  /**
   * StartExecution as Step Functions answers it: a repeated start with the same name and input
   * while the execution runs returns that execution; once it has closed, or with another input,
   * the start fails with ExecutionAlreadyExists (then EventBridge Scheduler gives up or retries).
   */
  async startExecution(name: string, input: Record<string, unknown>, options: Omit<WorkflowRunOptions, 'executionName'> = {}): Promise<ExecutionResult & { startError?: string }> {
    const text = JSON.stringify(input);
    const existing = this.executions.get(name);
    if (existing) {
      if (existing.closed || existing.input !== text) return { startError: 'ExecutionAlreadyExists', events: [] };
      return existing.result;
    }
    const entry = { input: text, closed: false, result: this.run(input, { ...options, executionName: name }) };
    this.executions.set(name, entry);
    void entry.result.then(() => { entry.closed = true; });
    return entry.result;
  }

  /** Starts one execution; resolves with its output, or with the error it failed with. */
  async run(input: Record<string, unknown>, options: WorkflowRunOptions = {}): Promise<ExecutionResult> {
    const name = options.executionName ?? String(input.schedulerExecutionId ?? 'manual-run');
    const lambda = (state: string) => async (payload: any) => {
      const index = this.workerCalls.length;
      const call: WorkerCall = { state, input: options.forgeInput ? options.forgeInput(payload, index) : payload };
      this.workerCalls.push(call);
      options.beforeWorker?.(call, index);
      const killAfter = options.kill?.(index);
      const worker = this.worker(killAfter);
      try {
        call.output = JSON.parse(JSON.stringify(await worker(JSON.parse(JSON.stringify(call.input)), { getRemainingTimeInMillis: () => 900_000 })));
      } catch (e) {
        call.error = e as Error;
        if (killAfter === undefined) throw e;
      }
      if (killAfter !== undefined) {
        const killed = new Error('Task timed out: the function was killed');
        killed.name = 'Sandbox.Timedout';
        call.error = killed;
        throw killed;
      }
      options.afterWorker?.(call, index);
      return call.output;
    };
    const execution = this.stateMachine.run(input as any, {
      overrides: {
        taskResourceLocalHandlers: {
          Prepare: lambda('Prepare'),
          SnapshotStep: lambda('SnapshotStep'),
          ClaimOccurrence: (p: any) => this.table.putItem(p),
          FindOwner: (p: any) => this.table.getItem(p) as any,
        },
        waitTimeOverrides: {
          WaitBeforeStepAgain: this.options.recoveryWaitMs,
          WaitBeforeRetryPass: this.options.retryPassWaitMs,
          WaitForCopies: this.options.copyWaitMs ?? this.options.retryPassWaitMs,
        },
        retryIntervalOverrides: { Prepare: 1, SnapshotStep: 1, ClaimOccurrence: 1, FindOwner: 1 },
      },
      context: { Execution: { Id: `${STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:${name}`, Name: name, StartTime: new Date().toISOString() } },
    });
    const events: any[] = [];
    const collect = (async () => { for await (const e of execution.eventLogs) events.push(e); })();
    try {
      const output = await execution.result;
      await collect;
      return { output, events };
    } catch (e: any) {
      await collect.catch(() => undefined);
      // ExecutionError wraps the error the execution failed with (a Fail state's error and cause).
      const failure = e.cause instanceof Error ? e.cause : e;
      return { error: { name: failure.name, cause: failure.message }, events };
    }
  }
}

export { FaultHarness };
