export * from './copy-tags-from-source';
export * from './instance-snapshot-schedule';
export * from './log-level';
