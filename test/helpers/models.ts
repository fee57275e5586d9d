// Tiny deterministic test models, generated once per test run into a temp directory.
import { mkdtempSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { makeModel, type MakeModelOptions } from '../../src/shards/make-model.ts'

const root = mkdtempSync(path.join(tmpdir(), 'strata-test-models-'))

export type TinyShape = Omit<MakeModelOptions, 'out'>

export const shapes = {
  /** GQA: 4 heads sharing 2 kv heads */
  gqa: { layers: 4, hidden: 64, heads: 4, kvHeads: 2, intermediate: 96, vocab: 300, seed: 1 },
  /** odd head counts: 3 heads, 1 kv head, head dim 16 */
  odd: { layers: 3, hidden: 48, heads: 3, kvHeads: 1, intermediate: 80, vocab: 280, seed: 2 },
  /** tied embeddings (no lm_head tensor) */
  tied: { layers: 2, hidden: 32, heads: 2, kvHeads: 2, intermediate: 64, vocab: 270, seed: 3, tieEmbeddings: true },
  /** F16 weights */
  f16: { layers: 3, hidden: 64, heads: 4, kvHeads: 1, intermediate: 128, vocab: 300, seed: 4, dtype: 'f16' as const },
  /** BF16 weights, multi-head (kv = heads) */
  bf16: { layers: 2, hidden: 80, heads: 5, kvHeads: 5, intermediate: 64, vocab: 290, seed: 5, dtype: 'bf16' as const },
  /** head dim 8 (llama2.c stories260K's): below the GQA kernel's multiple of 16, runs zero-padded */
  headDim8: { layers: 2, hidden: 32, heads: 4, kvHeads: 2, intermediate: 64, vocab: 270, seed: 6 },
  /** head dim 24: padded to 32 */
  headDim24: { layers: 2, hidden: 48, heads: 2, kvHeads: 1, intermediate: 64, vocab: 270, seed: 7 },
  /** Qwen2: q/k/v biases, tied embeddings */
  qwen2: { arch: 'qwen2' as const, layers: 3, hidden: 64, heads: 4, kvHeads: 2, intermediate: 96, vocab: 300, seed: 8, tieEmbeddings: true },
  /** Qwen3: per-head q/k RMSNorm; head_dim set apart from hidden / heads, as in the real ones */
  qwen3: { arch: 'qwen3' as const, layers: 3, hidden: 64, heads: 4, kvHeads: 2, headDim: 32, intermediate: 96, vocab: 300, seed: 9 },
  /** Mistral with a 4-position sliding window (tests run longer sequences than that) */
  mistral: { arch: 'mistral' as const, layers: 2, hidden: 64, heads: 4, kvHeads: 1, intermediate: 96, vocab: 300, seed: 10, slidingWindow: 4 },
  /** transformers-5 config form with llama3 rope scaling whose three frequency bands all occur at head dim 16 */
  llama3v5: {
    layers: 2, hidden: 64, heads: 4, kvHeads: 2, intermediate: 96, vocab: 300, seed: 12, maxPositions: 256, configForm: 'v5' as const, ropeTheta: 500000,
    ropeScaling: { rope_type: 'llama3' as const, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 }
  }
} satisfies Record<string, TinyShape>

/** Path of a generated model directory for `shape` (made on first use). */
export function tinyModel (name: string, shape: TinyShape): string {
  const out = path.join(root, name)
  if (!existsSync(path.join(out, 'config.json'))) makeModel({ ...shape, out })
  return out
}

export function tempDir (prefix: string): string {
  return mkdtempSync(path.join(root, prefix))
}
