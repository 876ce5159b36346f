export * from './instance-snapshot-schedule';
