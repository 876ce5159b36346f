export * from './copy-tags-from-source';
export * from './instance-snapshot-schedule';
export * from './log-level';
export * from './retention';
export * from './snapshot-copy';
export * from './snapshot-location';
export * from './snapshot-lock';
