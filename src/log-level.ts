/**
 * How much the schedule's worker logs.
 */
export enum LogLevel {
  /** Everything, including each EC2 call's details. */
  DEBUG = 'DEBUG',
  /** Each instance's outcome, each step and the run's summary. */
  INFO = 'INFO',
  /** Only what went wrong or looks wrong. */
  WARN = 'WARN',
  /** Only errors. */
  ERROR = 'ERROR',
}
