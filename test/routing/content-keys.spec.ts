import assert from 'node:assert/strict'
import { blockKey, modelKey } from '../../src/routing/content-keys.ts'

describe('routing/content-keys', () => {
  it('derives stable, distinct sha256 CIDs for a model and its blocks', () => {
    assert.equal(modelKey('m').toString(), modelKey('m').toString())
    assert.equal(modelKey('m').multihash.code, 0x12)
    const keys = new Set([
      modelKey('m'), modelKey('n'), blockKey('m', 0), blockKey('m', 1), blockKey('n', 0),
      // a model id that looks like another key's parts must not collide
      blockKey('m/1', 2), blockKey('m', 12)
    ].map(String))
    assert.equal(keys.size, 7)
  })
})
