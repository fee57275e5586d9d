// Where a joining peer serves when the operator did not say (--blocks): how many blocks fit its
// memory (or --num-blocks), placed by the load balancer where the swarm is weakest.
import { freemem } from 'node:os'
import type { ModelConfig } from '../shards/config.ts'
import type { PeerRecord } from '../routing/records.ts'
import { chooseBestSpan, spanLengthForMemory } from '../loadbalance/block-selection.ts'
import type { PeerConfig } from './config.ts'
import { spanInfo } from './rebalance.ts'
import type { WeightFormat } from '../shards/span-graph.ts'

/**
 * Bytes one block's weights take once loaded: f32 and f16 checkpoints both compute in f32
 * (onnxruntime folds the f16 casts at load); int8/int4 keep a byte or half a byte per weight
 * plus one f32 scale per 32.
 */
export function blockBytes (m: ModelConfig, weightFormat?: WeightFormat): number {
  const qkv = m.hiddenSize * (m.numHeads + 2 * m.numKvHeads) * m.headDim
  const o = m.numHeads * m.headDim * m.hiddenSize
  const mlp = 3 * m.hiddenSize * m.intermediateSize
  const perWeight = weightFormat === 'int8' ? 1 + 4 / 32 : weightFormat === 'int4' ? 0.5 + 4 / 32 : 4
  return Math.ceil(perWeight * (qkv + o + mlp)) + 4 * 2 * m.hiddenSize
}

export async function chooseSpan (model: ModelConfig, cfg: PeerConfig, swarmRecords: () => Promise<PeerRecord[]>): Promise<[number, number]> {
  // without --num-blocks: what fits --max-memory-mb, or half of the free memory
  const memory = cfg.maxMemoryBytes ?? freemem()
  const reserve = cfg.maxMemoryBytes !== undefined ? 0.1 : 0.5
  const length = cfg.numBlocks ?? spanLengthForMemory(memory, blockBytes(model, cfg.weightFormat), model.numLayers, reserve)
  if (length < 1) throw new RangeError(`not enough memory for one block: a block needs ${blockBytes(model, cfg.weightFormat)} bytes, ${memory} available${cfg.maxMemoryBytes !== undefined ? ' (--max-memory-mb)' : ''}`)
  if (!Number.isInteger(length) || length < 1) throw new RangeError(`--num-blocks must be a positive integer, got ${length}`)
  const records = (cfg.bootstrap ?? []).length > 0 ? await swarmRecords().catch(() => []) : []
  const spans = records.map(spanInfo)
  const { start, end } = chooseBestSpan(spans, model.numLayers, Math.min(length, model.numLayers))
  return [start, end]
}
