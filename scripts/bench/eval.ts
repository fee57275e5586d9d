// Section "eval": what quantized peers and a lossy wire cost in the terms users know —
// perplexity of the same text scored locally (f32) and through a local swarm of peer processes
// with f32, int8 and int4 weights, and f32 vs f16 hidden states on the wire — plus what the
// gateway's features cost: the JSON token mask per generated token, and n choices (each choice
// replays the prompt on its own chain).
import { LocalModel } from '../../src/client/local-model.ts'
import { Swarm } from '../../src/client/swarm.ts'
import { JsonConstraint, VocabularyTrie } from '../../src/client/json-constraint.ts'
import { ANY_OBJECT, parseJsonSchema, type SchemaNode } from '../../src/client/json-schema.ts'
import { TokenVocabulary } from '../../src/shards/vocabulary.ts'
import { evenSpans, stopPeers } from '../../src/cli/local-swarm.ts'
import type { WireDtype } from '../../src/protocol/tensor.ts'
import type { ScoreResult } from '../../src/client/scoring.ts'
import { ensureBenchModel, QUICK_SHAPE, TINYLLAMA_SHAPE, type BenchShape } from './model-cache.ts'
import { renderTable } from './report.ts'
import { log, median, round, startBenchSwarm } from './util.ts'

export const EVAL_TEXT = `Once upon a time there was a little model that wanted to talk. It asked the other peers for help,
and they answered together. Each peer hosts a few transformer blocks and the client chains them
together. When a peer leaves, the client finds another peer for the same blocks and replays what it
had sent, so the story continues as if nothing had happened. The quick brown fox jumps over the lazy
dog. What is the weather like in the mountains? It is cold and bright, and the river is running fast.`

export interface EvalBenchOptions { quick: boolean, cacheDir: string, peers: number, threads: number }

interface ScoreRow { run: string, perplexity: number, meanNll: number, deltaNll: number, maxAbsDeltaLogprob: number, tokensPerSecond: number }

export interface EvalBenchResult {
  section: 'eval'
  shape: BenchShape
  tokens: number
  rows: ScoreRow[]
  mask: Array<{ format: string, vocab: number, tokens: number, meanMs: number, p95Ms: number }>
  choices: { promptTokens: number, newTokens: number, n1Ms: number, n3Ms: number, n3SequentialMs: number }
}

const PERSON = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' }, colour: { enum: ['red', 'green', 'blue'] }, tags: { type: 'array', items: { type: 'string' } } }, required: ['name', 'age'] }

export async function benchEval (o: EvalBenchOptions): Promise<EvalBenchResult> {
  const shape = o.quick ? QUICK_SHAPE : TINYLLAMA_SHAPE
  const { dir } = await ensureBenchModel(o.cacheDir, shape)
  log('eval: local f32')
  const local = await LocalModel.load(dir, { threads: o.threads })
  let base: ScoreResult
  try {
    base = await local.score({ text: EVAL_TEXT })
  } finally {
    await local.close()
  }
  const row = (run: string, r: ScoreResult): ScoreRow => ({
    run,
    perplexity: round(r.perplexity, 4),
    meanNll: round(r.meanNll, 5),
    deltaNll: round(r.meanNll - base.meanNll, 5),
    maxAbsDeltaLogprob: round(Math.max(...r.logprobs.map((l, i) => l === null ? 0 : Math.abs(l - base.logprobs[i]!))), 5),
    tokensPerSecond: round(r.tokensPerSecond, 1)
  })
  const rows: ScoreRow[] = [row('local f32', base)]
  let choices: EvalBenchResult['choices'] | null = null
  for (const format of ['f32', 'int8', 'int4'] as const) {
    const { bootstrap, peers } = await startBenchSwarm(dir, evenSpans(shape.layers, o.peers), o.threads, format === 'f32' ? [] : ['--quantize', format])
    try {
      for (const wire of (format === 'f32' ? ['f32', 'f16'] : ['f32']) as WireDtype[]) {
        log(`eval: swarm of ${o.peers} ${format} peers, ${wire} wire`)
        const swarm = await Swarm.connect({ bootstrap: [bootstrap], modelDir: dir, threads: o.threads, wireDtype: wire, stepTimeoutMs: 120_000 })
        try {
          rows.push(row(`swarm ${format} peers, ${wire} wire`, await swarm.score({ text: EVAL_TEXT })))
          if (format === 'f32' && wire === 'f32') choices = await timeChoices(swarm, base.tokens.slice(0, 64))
        } finally {
          await swarm.close()
        }
      }
    } finally {
      await stopPeers(peers)
    }
  }
  return { section: 'eval', shape, tokens: base.tokens.length, rows, mask: maskCost(dir, shape.vocab), choices: choices! }
}

/** wall time of one generation, of 3 concurrent ones (what n: 3 does), and of 3 in a row */
async function timeChoices (swarm: Swarm, prompt: number[]): Promise<EvalBenchResult['choices']> {
  const newTokens = 16
  const one = async (seed: number): Promise<void> => { for await (const _ of swarm.generate({ ids: prompt }, { maxNewTokens: newTokens, ignoreEos: true, temperature: 1, seed })); }
  const time = async (fn: () => Promise<unknown>): Promise<number> => { const t0 = performance.now(); await fn(); return performance.now() - t0 }
  await one(0) // warm-up
  const n1Ms = median([await time(async () => await one(1)), await time(async () => await one(2)), await time(async () => await one(3))])
  const n3Ms = await time(async () => await Promise.all([one(1), one(2), one(3)]))
  const n3SequentialMs = await time(async () => { await one(1); await one(2); await one(3) })
  return { promptTokens: prompt.length, newTokens, n1Ms: round(n1Ms, 1), n3Ms: round(n3Ms, 1), n3SequentialMs: round(n3SequentialMs, 1) }
}

/** time of one token mask (allowed()) along random walks through JSON documents */
function maskCost (dir: string, vocab: number): EvalBenchResult['mask'] {
  const vocabulary = TokenVocabulary.load(dir, vocab)!
  const trie = new VocabularyTrie(vocabulary)
  let seed = 1
  const rand = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed / 2 ** 32 }
  const out: EvalBenchResult['mask'] = []
  for (const [format, schema] of [['json_schema (person)', parseJsonSchema(PERSON)], ['json_object', ANY_OBJECT]] as Array<[string, SchemaNode]>) {
    const times: number[] = []
    for (let doc = 0; doc < 10; doc++) {
      const c = new JsonConstraint(trie, schema)
      const budget = 64
      for (let i = 0; i < budget && !c.complete; i++) {
        const t0 = performance.now()
        const mask = c.allowed(budget - i)
        times.push(performance.now() - t0)
        const ids = mask.reduce<number[]>((a, m, t) => { if (m === 1) a.push(t); return a }, [])
        c.accept(ids[Math.floor(rand() * ids.length)])
      }
    }
    times.sort((a, b) => a - b)
    out.push({ format, vocab, tokens: times.length, meanMs: round(times.reduce((a, b) => a + b, 0) / times.length, 3), p95Ms: round(times[Math.floor(times.length * 0.95)], 3) })
  }
  return out
}

export function renderEval (r: EvalBenchResult): string {
  return [
    `${r.tokens} tokens of English text, model ${r.shape.layers}×${r.shape.hidden} vocab ${r.shape.vocab} (random weights)`,
    '',
    renderTable(['run', 'perplexity', 'mean NLL', 'Δ NLL vs local f32', 'max abs Δ logprob', 'tok/s'],
      r.rows.map((x) => [x.run, String(x.perplexity), String(x.meanNll), String(x.deltaNll), String(x.maxAbsDeltaLogprob), String(x.tokensPerSecond)])),
    '',
    renderTable(['JSON mask', 'vocab', 'tokens', 'mean ms/token', 'p95 ms/token'], r.mask.map((m) => [m.format, String(m.vocab), String(m.tokens), String(m.meanMs), String(m.p95Ms)])),
    '',
    `n choices (${r.choices.promptTokens}-token prompt, ${r.choices.newTokens} new tokens each): n=1 ${r.choices.n1Ms} ms, ` +
      `n=3 concurrent ${r.choices.n3Ms} ms, 3 in a row ${r.choices.n3SequentialMs} ms`
  ].join('\n')
}
