import assert from 'node:assert/strict'
import { LocalPipeline } from '../../src/client/local.ts'
import { generateTokens, type Head } from '../../src/client/generation.ts'
import { WorkerHeadEngine } from '../../src/shards/worker/engine-client.ts'
import { ReferenceLlama } from './reference.ts'
import { tinyModel, shapes } from '../helpers/models.ts'

async function greedy (head: Head, dir: string, spans: Array<[number, number]>, prompt: number[], n: number): Promise<number[]> {
  const pipeline = await LocalPipeline.load(dir, head.config.numLayers, { spans, threads: 1, maxLength: 64 })
  try {
    const out: number[] = []
    for await (const e of generateTokens(head, pipeline, prompt, { maxNewTokens: n, ignoreEos: true })) out.push(e.token)
    return out
  } finally {
    await pipeline.close()
  }
}

describe('split spans (worker threads)', function () {
  const dir = tinyModel('gqa', shapes.gqa)
  const prompt = [1, 50, 60, 70, 80]
  let head: WorkerHeadEngine
  let whole: number[]
  before(async function () {
    head = await WorkerHeadEngine.load(dir, { threads: 1 })
    whole = await greedy(head, dir, [[0, 4]], prompt, 12)
  })
  after(async function () { await head?.dispose() })

  it('one span of all blocks matches the Float64 reference greedy tokens', function () {
    assert.deepEqual(whole, new ReferenceLlama(dir).greedy(prompt, 12))
  })

  const splits: Array<Array<[number, number]>> = [
    [[0, 1], [1, 4]], [[0, 2], [2, 4]], [[0, 3], [3, 4]],
    [[0, 1], [1, 2], [2, 4]], [[0, 1], [1, 3], [3, 4]], [[0, 2], [2, 3], [3, 4]]
  ]
  for (const spans of splits) {
    it(`spans ${spans.map(([a, b]) => `[${a},${b})`).join(' ')} give exactly the same tokens`, async function () {
      assert.deepEqual(await greedy(head, dir, spans, prompt, 12), whole)
    })
  }
})
