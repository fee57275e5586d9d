// Local (single-process) reference generations for end-to-end comparisons.
import { LocalModel } from '../../src/client/local-model.ts'

/** the tiny model shape the end-to-end tests share */
export const e2eShape = { layers: 4, hidden: 64, heads: 4, kvHeads: 2, intermediate: 96, vocab: 320, seed: 31 }

/** Greedy tokens of the whole model run locally: what every swarm run must reproduce. */
export async function localTokens (dir: string, prompt: number[], n: number): Promise<number[]> {
  const model = await LocalModel.load(dir, { threads: 1 })
  try {
    for await (const e of model.generate({ ids: prompt }, { maxNewTokens: n, ignoreEos: true })) if (e.event === 'done') return e.tokens
  } finally {
    await model.close()
  }
  throw new Error('local generation ended without a done event')
}
