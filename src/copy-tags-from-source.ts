/**
 * Which source tags EC2 copies onto the snapshots it creates.
 *
 * @see https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSnapshots.html
 */
export enum CopyTagsFromSource {
  /** Copy each source volume's tags onto that volume's snapshot. */
  VOLUME = 'VOLUME',
}
