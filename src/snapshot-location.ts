/**
 * Where EC2 stores the snapshots of an instance in a Local Zone (`CreateSnapshots`' `Location`).
 *
 * @see https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSnapshots.html
 */
export enum SnapshotLocation {
  /** In the Local Zone's parent Region (EC2's default). */
  REGIONAL = 'REGIONAL',
  /** In the Local Zone, next to the instance. */
  LOCAL = 'LOCAL',
}
