// Where a joining peer serves when the operator did not say (--blocks): how many blocks fit its
// memory (or --num-blocks), placed by the load balancer where the swarm is weakest.
import { freemem } from 'node:os'
import type { ModelConfig } from '../shards/config.ts'
import type { PeerRecord } from '../routing/records.ts'
import { chooseBestSpan, spanLengthForMemory } from '../loadbalance/block-selection.ts'
import type { PeerConfig } from './config.ts'

/** f32 bytes of one block's weights */
export function blockBytes (m: ModelConfig): number {
  const qkv = m.hiddenSize * (m.numHeads + 2 * m.numKvHeads) * m.headDim
  const o = m.numHeads * m.headDim * m.hiddenSize
  const mlp = 3 * m.hiddenSize * m.intermediateSize
  return 4 * (qkv + o + mlp + 2 * m.hiddenSize)
}

export async function chooseSpan (model: ModelConfig, cfg: PeerConfig, swarmRecords: () => Promise<PeerRecord[]>): Promise<[number, number]> {
  const length = cfg.numBlocks ?? Math.max(1, spanLengthForMemory(freemem(), blockBytes(model), model.numLayers, 0.5))
  if (!Number.isInteger(length) || length < 1) throw new RangeError(`--num-blocks must be a positive integer, got ${length}`)
  const records = (cfg.bootstrap ?? []).length > 0 ? await swarmRecords().catch(() => []) : []
  const spans = records.map((r) => ({ peerId: r.peerId, start: r.start, end: r.end, throughput: r.throughput, state: r.state }))
  const { start, end } = chooseBestSpan(spans, model.numLayers, Math.min(length, model.numLayers))
  return [start, end]
}
