/**
 * EBS `EBS Multi-Volume Snapshots Completion Status` events as EventBridge delivers them (the shape
 * of the EBS user guide's examples: snapshot and volume ARNs with an empty account field).
 */
export const EVENT_REGION = 'eu-central-1';

export const snapshotArn = (id: string) => `arn:aws:ec2::${EVENT_REGION}:snapshot/${id}`;
export const volumeArn = (id: string) => `arn:aws:ec2::${EVENT_REGION}:volume/${id}`;

/** A snapshot id of the tests: `snap-` and 17 hex digits. */
export const snapshotId = (n: number) => `snap-${n.toString(16).padStart(17, '0')}`;
export const volumeId = (n: number) => `vol-${n.toString(16).padStart(17, '0')}`;

export function completionEvent(snapshots: number[], detail: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    'version': '0',
    'id': '7bf73129-1428-4cd3-a780-95db273d1602',
    'detail-type': 'EBS Multi-Volume Snapshots Completion Status',
    'source': 'aws.ec2',
    'account': '123456789012',
    'time': '2026-11-24T02:41:07Z',
    'region': EVENT_REGION,
    'resources': snapshots.map((n) => snapshotArn(snapshotId(n))),
    'detail': {
      'event': 'createSnapshots',
      'result': 'failed',
      'cause': 'Snapshot creation failed for one or more volumes',
      'request-id': '',
      'startTime': '2026-11-24T02:30:04Z',
      'endTime': '2026-11-24T02:41:06Z',
      'snapshots': snapshots.map((n) => ({ snapshot_id: snapshotArn(snapshotId(n)), source: volumeArn(volumeId(n)), status: 'error' })),
      ...detail,
    },
  };
}
