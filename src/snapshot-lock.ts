import { Duration } from 'aws-cdk-lib';
import { isTokenValue, showDuration, wholeUnits } from './private/lifecycle';
import { LIFECYCLE_LIMITS, SnapshotLockSpec } from './private/request-contract';

const TOKEN_REASON = 'the worker locks the snapshots with the values of the rendered request, so tokens are not supported';

/**
 * An EBS snapshot lock (`LockSnapshot`) put on every snapshot of each new set, right after it is created.
 *
 * A locked snapshot cannot be deleted until its lock expires: not by the schedule's retention
 * (such a set is kept and deleted by the first run after the lock expires), not by anyone else.
 * The lock's duration starts when the snapshot is completed.
 *
 * - Governance mode: principals allowed `ec2:UnlockSnapshot` can remove the lock or change it.
 * - Compliance mode: once the cool-off period is over, nobody, not even the account's root user,
 *   can remove the lock or shorten it, and the snapshot cannot be deleted before it expires.
 *   Only the lock's duration can be extended. Use it for records you are required to keep.
 *
 * @see https://docs.aws.amazon.com/ebs/latest/userguide/ebs-snapshot-lock.html
 */
export class SnapshotLock {
  /**
   * Lock in governance mode: principals allowed `ec2:UnlockSnapshot` can still unlock the
   * snapshots or change the lock.
   *
   * @param duration how long each snapshot stays locked: whole days from 1 to 36,500 (EC2's range)
   */
  public static governance(duration: Duration): SnapshotLock {
    return new SnapshotLock({ mode: 'governance', durationDays: lockDays('SnapshotLock.governance()', duration) });
  }

  /**
   * Lock in compliance mode: after the cool-off period, the lock cannot be removed or shortened and
   * the snapshots cannot be deleted until it expires, not even by the account's root user.
   *
   * @param duration how long each snapshot stays locked: whole days from 1 to 36,500 (EC2's range)
   * @param coolOffPeriod how long the lock can still be removed or changed by principals allowed
   * `ec2:UnlockSnapshot`: whole hours from 1 to 72 (EC2's range). Without it, the lock is final as
   * soon as it is put on.
   */
  public static compliance(duration: Duration, coolOffPeriod?: Duration): SnapshotLock {
    const durationDays = lockDays('SnapshotLock.compliance()', duration);
    if (coolOffPeriod === undefined) {
      return new SnapshotLock({ mode: 'compliance', durationDays });
    }
    refuseToken('SnapshotLock.compliance()', coolOffPeriod);
    const { minCoolOffHours, maxCoolOffHours } = LIFECYCLE_LIMITS;
    const coolOffHours = wholeUnits(coolOffPeriod, 3_600, minCoolOffHours, maxCoolOffHours);
    if (coolOffHours === undefined) {
      throw new Error(`lock: SnapshotLock.compliance() takes a cool-off period of whole hours from ${minCoolOffHours} to ${maxCoolOffHours} `
        + `(EC2's range), got: ${showDuration(coolOffPeriod)}`);
    }
    return new SnapshotLock({ mode: 'compliance', durationDays, coolOffHours });
  }

  private constructor(private readonly spec: SnapshotLockSpec) {}

  /**
   * The lock as the request contract holds it.
   *
   * @internal
   */
  public _render(): SnapshotLockSpec {
    return { ...this.spec };
  }
}

function lockDays(factory: string, duration: Duration): number {
  refuseToken(factory, duration);
  const { minLockDays, maxLockDays } = LIFECYCLE_LIMITS;
  const days = wholeUnits(duration, 86_400, minLockDays, maxLockDays);
  if (days === undefined) {
    throw new Error(`lock: ${factory} takes a duration of whole days from ${minLockDays} to ${maxLockDays} (EC2's range), got: ${showDuration(duration)}`);
  }
  return days;
}

function refuseToken(factory: string, value: unknown): void {
  if (isTokenValue(value)) {
    throw new Error(`lock: ${factory} takes a duration written out in the app (${TOKEN_REASON}), got: an unresolved token`);
  }
}
