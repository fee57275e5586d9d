import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { makeModel } from '../../src/shards/make-model.ts'
import { LocalModel } from '../../src/client/local-model.ts'
import { ReferenceLlama } from './reference.ts'
import { shapes, tempDir } from '../helpers/models.ts'

async function greedy (dir: string, prompt: number[], n: number): Promise<number[]> {
  const model = await LocalModel.load(dir, { threads: 1 })
  try {
    for await (const e of model.generate({ ids: prompt }, { maxNewTokens: n, ignoreEos: true })) if (e.event === 'done') return e.tokens
  } finally {
    await model.close()
  }
  throw new Error('no done event')
}

describe('a checkpoint in the transformers-5 config form computes as in the older form', function () {
  // llama3 rope scaling with a non-default theta: reading rope_parameters wrong would change the
  // tokens; BF16 weights, as most real checkpoints are
  const { configForm: _, ...llama3 } = shapes.llama3v5
  const shape = { ...llama3, dtype: 'bf16' as const }
  const prompt = [1, 40, 41, 42, 43, 44, 45, 46, 47, 48]
  let v4: string
  let v5: string
  before(function () {
    v4 = tempDir('form-v4-')
    v5 = tempDir('form-v5-')
    makeModel({ ...shape, out: v4, configForm: 'v4' })
    makeModel({ ...shape, out: v5, configForm: 'v5' })
  })

  it('the two directories differ only in config.json, which uses each generation\'s keys', function () {
    assert.deepEqual(readFileSync(path.join(v4, 'model.safetensors')), readFileSync(path.join(v5, 'model.safetensors')))
    const c4 = JSON.parse(readFileSync(path.join(v4, 'config.json'), 'utf8'))
    const c5 = JSON.parse(readFileSync(path.join(v5, 'config.json'), 'utf8'))
    assert.equal(c4.rope_theta, 500000)
    assert.equal(c4.rope_scaling.rope_type, 'llama3')
    assert.equal(c4.torch_dtype, 'bfloat16')
    assert.equal(c5.rope_parameters.rope_theta, 500000)
    assert.equal(c5.rope_parameters.rope_type, 'llama3')
    assert.equal(c5.dtype, 'bfloat16')
    for (const key of ['rope_theta', 'rope_scaling', 'torch_dtype']) assert.ok(!(key in c5), key)
  })

  it('greedy tokens are the same in both forms and equal the Float64 reference', async function () {
    const n = 12
    const [a, b] = [await greedy(v4, prompt, n), await greedy(v5, prompt, n)]
    assert.deepEqual(b, a)
    assert.deepEqual(a, new ReferenceLlama(v5).greedy(prompt, n))
    // and the scaling matters: the same weights with plain rope generate something else
    const plain = tempDir('form-plain-')
    makeModel({ ...shape, out: plain, ropeScaling: undefined, ropeTheta: 10000 })
    assert.notDeepEqual(new ReferenceLlama(plain).greedy(prompt, n), a)
  })
})
