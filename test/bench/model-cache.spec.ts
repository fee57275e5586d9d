import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { ensureBenchModel, NotABenchModelDirError } from '../../scripts/bench/model-cache.ts'
import { tempDir } from '../helpers/models.ts'

const shape = { layers: 1, hidden: 32, heads: 2, kvHeads: 1, intermediate: 64, vocab: 300, seed: 3 }

describe('bench model cache', function () {
  this.timeout(60_000)

  it('refuses to replace a directory that holds something else, and leaves it as it was', async function () {
    const dir = path.join(tempDir('bench-cache-'), 'mine')
    mkdirSync(dir)
    writeFileSync(path.join(dir, 'notes.txt'), 'keep me')
    await assert.rejects(ensureBenchModel(dir, shape), (err: Error) => err instanceof NotABenchModelDirError && err.message.includes(dir))
    assert.equal(readFileSync(path.join(dir, 'notes.txt'), 'utf8'), 'keep me')
  })

  it('generates into an absent directory, reuses it, and replaces it for another shape', async function () {
    const dir = path.join(tempDir('bench-cache-'), 'model')
    assert.equal((await ensureBenchModel(dir, shape)).generated, true)
    assert.equal((await ensureBenchModel(dir, shape)).generated, false)
    const other = await ensureBenchModel(dir, { ...shape, seed: 4 })
    assert.equal(other.generated, true)
    assert.equal(JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')).strata_seed, 4)
    assert.ok(existsSync(path.join(dir, '.complete')))
  })
})
