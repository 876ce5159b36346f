import * as path from 'path';
import * as lambda from 'aws-cdk-lib/aws-lambda';

/**
 * Where the build puts the esbuild bundle of lambda/worker.ts (the same from src/ and lib/): the
 * code of a schedule's worker and of a vault's worker alike.
 */
export const WORKER_ASSET_DIR = path.join(__dirname, '..', '..', 'assets', 'lambda', 'worker');

/** The runtime of every worker function (the bundle targets it). */
export const WORKER_RUNTIME = lambda.Runtime.NODEJS_24_X;

/** The architecture of every worker function. */
export const WORKER_ARCHITECTURE = lambda.Architecture.ARM_64;

/** Powertools' service name on every worker. */
export const WORKER_SERVICE_NAME = 'cdk-instance-snapshots';
