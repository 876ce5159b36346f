/**
 * The selection: which instances a run snapshots, read again by every step. Listing goes through
 * filtered, paginated DescribeInstances (exact tag re-check after EC2's filter), plus the data
 * volumes excluded by tag (DescribeVolumes).
 */
import { DescribeInstancesCommand, DescribeVolumesCommand, EC2Client, Instance } from '@aws-sdk/client-ec2';
import { buildDescribeExcludedVolumesInput, buildDescribeInstancesInput, excludedByTag, matchesSelection } from './ec2-requests';
import type { SnapshotRunRequest } from '../src/private/request-contract';

/** Counts each request (retries included) by action. */
export type CallCounter = (action: string, attempts?: number) => void;

/** Sends one command and counts it, whether it succeeds or fails. */
export async function counted<T extends { $metadata?: { attempts?: number } }>(
  count: CallCounter,
  action: string,
  send: () => Promise<T>,
): Promise<T> {
  try {
    const out = await send();
    count(action, out.$metadata?.attempts);
    return out;
  } catch (e) {
    count(action, (e as { $metadata?: { attempts?: number } }).$metadata?.attempts);
    throw e;
  }
}

/**
 * Streams the selected instances page by page, each once (EC2 may list an instance on two pages
 * while its state changes), in EC2's order.
 */
export async function listSelectionPages(
  ec2: EC2Client,
  request: SnapshotRunRequest,
  count: CallCounter,
  onInstance: (instance: Instance) => void,
): Promise<void> {
  const seen = new Set<string>();
  let token: string | undefined;
  do {
    const page = await counted(count, 'DescribeInstances', () => ec2.send(new DescribeInstancesCommand(buildDescribeInstancesInput(request, token))));
    for (const instance of (page.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
      if (!instance.InstanceId || seen.has(instance.InstanceId) || !matchesSelection(request, instance)) continue;
      seen.add(instance.InstanceId);
      onInstance(instance);
    }
    token = page.NextToken;
  } while (token);
}

/** The selected instances, sorted by instance id (the order every pass follows). */
export async function listSelection(ec2: EC2Client, request: SnapshotRunRequest, count: CallCounter): Promise<Instance[]> {
  const instances: Instance[] = [];
  await listSelectionPages(ec2, request, count, (i) => instances.push(i));
  return sortById(instances);
}

/** Instances in instance-id order (plain code-unit order, the same on every machine). */
export function sortById(instances: Instance[]): Instance[] {
  return instances.sort((a, b) => (a.InstanceId! < b.InstanceId! ? -1 : a.InstanceId! > b.InstanceId! ? 1 : 0));
}

/** The instances after the cursor's position, in order. */
export function after(instances: readonly Instance[], position: string): Instance[] {
  return position === '' ? [...instances] : instances.filter((i) => i.InstanceId! > position);
}

/**
 * Data volumes excluded by tag: one paginated DescribeVolumes per key (a volume is excluded when it
 * carries ANY of the keys; EC2 ANDs filters, so the keys are asked separately).
 */
export async function listExcludedVolumes(ec2: EC2Client, request: SnapshotRunRequest, count: CallCounter): Promise<Set<string>> {
  const excluded = new Set<string>();
  for (const [key, values] of Object.entries(request.excludeDataVolumeTags ?? {})) {
    let token: string | undefined;
    do {
      const page = await counted(count, 'DescribeVolumes', () => ec2.send(new DescribeVolumesCommand(buildDescribeExcludedVolumesInput(key, values, token))));
      for (const id of excludedByTag({ [key]: values }, page.Volumes ?? [])) excluded.add(id);
      token = page.NextToken;
    } while (token);
  }
  return excluded;
}
