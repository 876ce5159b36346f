/**
 * Jest snapshot serializer: masks 64-hex-character asset hashes (the Lambda bundle's S3 key
 * changes with any handler or dependency change), so template snapshots stay stable across
 * machines and dependency bumps and change only when the template really does.
 */
const ASSET_HASH = /[0-9a-f]{64}/g;
const MASK = '[ASSET HASH]';

module.exports = {
  test: (value: unknown) => typeof value === 'string' && /[0-9a-f]{64}/.test(value),
  serialize: (value: string) => JSON.stringify(value.replace(ASSET_HASH, MASK)),
};
