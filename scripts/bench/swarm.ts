// Section "swarm": the same model run locally and through a local swarm of peer processes on
// 127.0.0.1 (the blocks split into equal spans), measured in the same run: decode tokens/s of
// each, their ratio, the per-hop overhead per token, and the accuracy cost of an f16 wire
// (greedy-token agreement with the exact f32 wire).
import { LocalModel } from '../../src/client/local-model.ts'
import { Swarm } from '../../src/client/swarm.ts'
import { evenSpans, stopPeers } from '../../src/cli/local-swarm.ts'
import type { WireDtype } from '../../src/protocol/tensor.ts'
import { ensureBenchModel, QUICK_SHAPE, TINYLLAMA_SHAPE, type BenchShape } from './model-cache.ts'
import { log, median, round, randomTokens, startBenchSwarm } from './util.ts'

export interface SwarmBenchOptions {
  quick: boolean
  cacheDir: string
  peers: number
  threads: number
  promptTokens: number
  decodeTokens: number
  repeats: number
}

export interface SwarmBenchResult {
  section: 'swarm'
  shape: BenchShape
  peers: Array<{ start: number, end: number }>
  threads: number
  promptTokens: number
  decodeTokens: number
  local: { decodeTokensPerSecond: number, msPerToken: number }
  swarm: { decodeTokensPerSecond: number, msPerToken: number, identicalToLocal: boolean }
  /** swarm / local decode speed */
  ratio: number
  /** (swarm − local) ms per token, divided by the number of hops */
  overheadMsPerHopPerToken: number
  f16Wire: { decodeTokensPerSecond: number, prefixMatch: number, positionsEqual: number, positions: number }
}

export type Gen = (prompt: number[]) => AsyncIterable<{ event: string, index?: number, tokens?: number[] }>

/**
 * Decode speed (tokens after the first, which includes the prefill), the median time between two
 * tokens (robust to the odd scheduling hiccup that a mean takes in whole), and the tokens.
 */
export async function timeDecode (gen: Gen, prompt: number[]): Promise<{ tokensPerSecond: number, medianTokenMs: number, tokens: number[] }> {
  let t1 = 0
  let last = 0
  const gaps: number[] = []
  let tokens: number[] = []
  for await (const e of gen(prompt)) {
    if (e.event === 'token') {
      const now = performance.now()
      if (e.index === 0) t1 = now
      else gaps.push(now - last)
      last = now
    }
    if (e.event === 'done') tokens = e.tokens ?? []
  }
  const seconds = (performance.now() - t1) / 1000
  return { tokensPerSecond: (tokens.length - 1) / seconds, medianTokenMs: median(gaps), tokens }
}

export async function measure (gen: Gen, prompt: number[], repeats: number): Promise<{ tokensPerSecond: number, tokens: number[] }> {
  await timeDecode(gen, prompt.slice(0, 8)) // warm-up
  const runs = []
  for (let i = 0; i < repeats; i++) runs.push(await timeDecode(gen, prompt))
  return { tokensPerSecond: median(runs.map((r) => r.tokensPerSecond)), tokens: runs[0].tokens }
}

export async function benchSwarm (o: SwarmBenchOptions): Promise<SwarmBenchResult> {
  const shape = o.quick ? QUICK_SHAPE : TINYLLAMA_SHAPE
  const { dir } = await ensureBenchModel(o.cacheDir, shape)
  const prompt = randomTokens(o.promptTokens, 3, shape.vocab, 7)
  const genOpts = { maxNewTokens: o.decodeTokens, ignoreEos: true }

  log(`swarm: local baseline (${o.threads} threads)`)
  const local = await LocalModel.load(dir, { threads: o.threads })
  const localRun = await measure((p) => local.generate({ ids: p }, genOpts), prompt, o.repeats)
  await local.close()

  const spans = evenSpans(shape.layers, o.peers)
  log(`swarm: starting ${o.peers} peers ${spans.map(([a, b]) => `[${a},${b})`).join(' ')}`)
  const { bootstrap, peers } = await startBenchSwarm(dir, spans, o.threads)
  try {
    const runOver = async (wireDtype: WireDtype): Promise<{ tokensPerSecond: number, tokens: number[] }> => {
      const swarm = await Swarm.connect({ bootstrap: [bootstrap], modelDir: dir, threads: o.threads, wireDtype, stepTimeoutMs: 60_000 })
      try {
        return await measure((p) => swarm.generate({ ids: p }, genOpts), prompt, o.repeats)
      } finally {
        await swarm.close()
      }
    }
    log('swarm: f32 wire')
    const f32 = await runOver('f32')
    log('swarm: f16 wire')
    const f16 = await runOver('f16')
    const same = (a: number[], b: number[]): boolean => a.length === b.length && a.every((t, i) => t === b[i])
    let prefix = 0
    while (prefix < f32.tokens.length && f16.tokens[prefix] === f32.tokens[prefix]) prefix++
    const localMs = 1000 / localRun.tokensPerSecond
    const swarmMs = 1000 / f32.tokensPerSecond
    return {
      section: 'swarm',
      shape,
      peers: spans.map(([start, end]) => ({ start, end })),
      threads: o.threads,
      promptTokens: o.promptTokens,
      decodeTokens: o.decodeTokens,
      local: { decodeTokensPerSecond: round(localRun.tokensPerSecond, 2), msPerToken: round(localMs, 3) },
      swarm: { decodeTokensPerSecond: round(f32.tokensPerSecond, 2), msPerToken: round(swarmMs, 3), identicalToLocal: same(f32.tokens, localRun.tokens) },
      ratio: round(f32.tokensPerSecond / localRun.tokensPerSecond, 3),
      overheadMsPerHopPerToken: round((swarmMs - localMs) / o.peers, 3),
      f16Wire: { decodeTokensPerSecond: round(f16.tokensPerSecond, 2), prefixMatch: prefix, positionsEqual: f16.tokens.filter((t, i) => t === f32.tokens[i]).length, positions: f32.tokens.length }
    }
  } finally {
    await stopPeers(peers)
  }
}

export function renderSwarm (r: SwarmBenchResult): string {
  return [
    `| run | decode tok/s | ms/token |`,
    `|:--|--:|--:|`,
    `| local (1 process) | ${r.local.decodeTokensPerSecond} | ${r.local.msPerToken} |`,
    `| swarm, ${r.peers.length} peers, f32 wire | ${r.swarm.decodeTokensPerSecond} | ${r.swarm.msPerToken} |`,
    `| swarm, f16 wire | ${r.f16Wire.decodeTokensPerSecond} | ${round(1000 / r.f16Wire.decodeTokensPerSecond, 3)} |`,
    '',
    `swarm / local: ${r.ratio}×; overhead ${r.overheadMsPerHopPerToken} ms per hop per token; swarm tokens identical to local: ${r.swarm.identicalToLocal ? 'yes' : 'NO'}`,
    `f16 wire: first ${r.f16Wire.prefixMatch}/${r.f16Wire.positions} greedy tokens equal to the f32 wire (${r.f16Wire.positionsEqual} positions equal overall)`
  ].join('\n')
}
