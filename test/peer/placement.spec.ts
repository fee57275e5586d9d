import assert from 'node:assert/strict'
import { blockBytes, chooseSpan } from '../../src/peer/placement.ts'
import { parseModelConfig } from '../../src/shards/config.ts'

const model = parseModelConfig({ model_type: 'llama', hidden_size: 64, num_hidden_layers: 8, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 96, vocab_size: 300 })
const noSwarm = async (): Promise<never[]> => []

describe('placement on join', function () {
  it('hosts as many blocks as fit --max-memory-mb (10% kept in reserve)', async function () {
    const per = blockBytes(model)
    const span = await chooseSpan(model, { modelDir: 'unused', maxMemoryBytes: Math.floor((3.5 * per) / 0.9) }, noSwarm)
    assert.deepEqual(span, [0, 3])
  })

  it('quantized weights fit more blocks into the same memory', function () {
    assert.ok(blockBytes(model, 'int8') < blockBytes(model) / 3)
    assert.ok(blockBytes(model, 'int4') < blockBytes(model, 'int8'))
  })

  it('refuses clearly when not even one block fits', async function () {
    await assert.rejects(chooseSpan(model, { modelDir: 'unused', maxMemoryBytes: 1000 }, noSwarm), /not enough memory for one block.*--max-memory-mb/)
  })

  it('--num-blocks places the span where the swarm is weakest', async function () {
    const records = async (): Promise<any[]> => [{ peerId: 'a', start: 0, end: 4, throughput: 10, state: 'online' }]
    assert.deepEqual(await chooseSpan(model, { modelDir: 'unused', numBlocks: 4, bootstrap: ['x'] }, records), [4, 8])
  })
})
