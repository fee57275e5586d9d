import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { pino } from 'pino'
import { computeKey, ThroughputCache } from '../../src/peer/throughput-cache.ts'
import { defaultCacheDir } from '../../src/shards/cache-dir.ts'
import { tempDir } from '../helpers/models.ts'

const silent = pino({ level: 'silent' })

describe('peer: throughput cache', () => {
  it('keeps a figure per hardware, model, weight format and threads across instances', () => {
    const dir = path.join(tempDir('tp-cache-'), 'nested', 'strata')
    const key = computeKey('model-a', 'f32', undefined)
    new ThroughputCache(dir, silent).set(key, 1234.5)
    const again = new ThroughputCache(dir, silent)
    assert.equal(again.get(key)?.blockTokensPerSecond, 1234.5)
    assert.equal(again.get(computeKey('model-b', 'f32', undefined)), undefined)
    assert.equal(again.get(computeKey('model-a', 'int8', undefined)), undefined)
    assert.equal(again.get(computeKey('model-a', 'f32', 1)), undefined)
    assert.equal(again.get({ ...key, cpu: 'another CPU' }), undefined)
    again.set(computeKey('model-a', 'f32', 1), 99)
    assert.equal(new ThroughputCache(dir, silent).get(key)?.blockTokensPerSecond, 1234.5, 'other entries are kept')
  })

  it('describes this machine in the key', () => {
    const key = computeKey('m', 'f16', 2)
    assert.ok(key.cpu.length > 0)
    assert.ok(key.cores >= 1)
    assert.deepEqual([key.modelId, key.weightFormat, key.threads], ['m', 'f16', 2])
    assert.equal(computeKey('m', 'f16', undefined).threads, 'auto')
  })

  it('treats an unreadable or foreign file as empty and replaces it on the next write', () => {
    const dir = tempDir('tp-cache-')
    const cache = new ThroughputCache(dir, silent)
    const key = computeKey('m', 'f32', undefined)
    for (const junk of ['{not json', '{"version":99,"entries":{}}', '[]', JSON.stringify({ version: 1, entries: { x: { blockTokensPerSecond: -1, measuredAt: 0 } } })]) {
      writeFileSync(cache.file, junk)
      assert.equal(cache.get(key), undefined, junk)
    }
    cache.set(key, 10)
    assert.equal(JSON.parse(readFileSync(cache.file, 'utf8')).version, 1)
    assert.equal(cache.get(key)?.blockTokensPerSecond, 10)
  })

  it('lives in $STRATA_CACHE_DIR, else $XDG_CACHE_HOME/strata, else ~/.cache/strata', () => {
    assert.equal(defaultCacheDir({ STRATA_CACHE_DIR: '/x/y' }), '/x/y')
    assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/c' }), path.join('/c', 'strata'))
    assert.match(defaultCacheDir({}), /\.cache[/\\]strata$/)
  })
})
