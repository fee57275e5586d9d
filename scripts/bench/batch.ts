// Section "batch": aggregate decode tokens/s of 1, 4, 8 and 16 clients generating at the same
// time through ONE peer process on 127.0.0.1 that hosts every block. The peer runs the decode
// steps that arrive while it computes as one batched graph call (WorkerSpanEngine); the ratio to
// one client is what batching buys. The clients are concurrent `generate` calls of one Swarm in
// this process (one libp2p node, one head engine: the model's vocabulary is small, so the peer's
// blocks are most of the work). Every client's greedy tokens are checked against local generation.
import path from 'node:path'
import { LocalModel } from '../../src/client/local-model.ts'
import { Swarm } from '../../src/client/swarm.ts'
import { startPeer, stopPeers, type PeerProcess } from '../../src/cli/local-swarm.ts'
import { ensureBenchModel, type BenchShape } from './model-cache.ts'
import { renderTable } from './report.ts'
import { log, median, round, randomTokens } from './util.ts'

export interface BatchBenchOptions {
  cacheRoot: string
  quick: boolean
  clients: number[]
  threads: number
  promptTokens: number
  decodeTokens: number
  repeats: number
}

export interface BatchRow {
  clients: number
  /** decode tokens of all clients per second of wall time (median over repeats) */
  aggregateTokensPerSecond: number
  /** aggregate ÷ the one-client figure of the same run */
  ratioToOne: number
  /** per client, median over clients and repeats */
  perClientTokensPerSecond: number
  /** decode steps per batched graph call on the peer (from its metrics) */
  meanBatchSize: number
  identicalToLocal: boolean
}

export interface BatchBenchResult {
  section: 'batch'
  settings: { threads: number, promptTokens: number, decodeTokens: number, repeats: number, shape: BenchShape }
  rows: BatchRow[]
}

const SHAPE: BenchShape = { layers: 8, hidden: 1024, heads: 16, kvHeads: 4, intermediate: 2816, vocab: 1024, seed: 7 }
const QUICK: BenchShape = { layers: 4, hidden: 512, heads: 8, kvHeads: 2, intermediate: 1408, vocab: 1024, seed: 7 }
/** distinct prompts; client i gets prompt i mod PROMPTS */
const PROMPTS = 4

export async function benchBatch (o: BatchBenchOptions): Promise<BatchBenchResult> {
  const shape = o.quick ? QUICK : SHAPE
  const { dir } = await ensureBenchModel(path.join(o.cacheRoot, o.quick ? 'bench-batch-quick' : 'bench-batch'), shape)
  const prompts = Array.from({ length: PROMPTS }, (_, i) => randomTokens(o.promptTokens, 3, shape.vocab, 11 + i))
  const gen = { maxNewTokens: o.decodeTokens + 1, ignoreEos: true }

  log('batch: local reference tokens …')
  const local = await LocalModel.load(dir, { threads: o.threads })
  const expected: number[][] = []
  try {
    for (const p of prompts) expected.push(await tokensOf(local.generate({ ids: p }, gen)))
  } finally {
    await local.close()
  }

  const most = Math.max(...o.clients)
  const peers: PeerProcess[] = []
  const rows: BatchRow[] = []
  try {
    const limits = ['--max-sessions', String(most), '--max-sessions-per-peer', String(most), '--max-sessions-per-ip', String(most), '--max-streams-per-peer', String(most + 4)]
    peers.push(await startPeer(dir, ['--blocks', `0:${shape.layers}`, '--threads', String(o.threads), '--network-mbps', '100000', '--metrics-port', '0', ...limits], 'batch-peer', 300_000))
    const metricsUrl = peers[0].events.find((e) => e.event === 'ready')?.metricsUrl as string
    const client = await Swarm.connect({ bootstrap: [peers[0].multiaddrs[0]], modelDir: dir, threads: 1, stepTimeoutMs: 120_000 })
    try {
      await tokensOf(client.generate({ ids: prompts[0].slice(0, 8) }, { maxNewTokens: 4, ignoreEos: true })) // warm-up
      for (const n of o.clients) {
        log(`batch: ${n} concurrent client${n === 1 ? '' : 's'} …`)
        const aggregates: number[] = []
        const perClient: number[] = []
        let identical = true
        const before = await batchStats(metricsUrl)
        for (let r = 0; r < o.repeats; r++) {
          const runs = await Promise.all(Array.from({ length: n }, async (_, i) => await timed(client.generate({ ids: prompts[i % PROMPTS] }, gen))))
          const first = Math.min(...runs.map((x) => x.firstTokenAt))
          const last = Math.max(...runs.map((x) => x.doneAt))
          aggregates.push(runs.reduce((s, x) => s + x.tokens.length - 1, 0) / ((last - first) / 1000))
          for (const x of runs) perClient.push((x.tokens.length - 1) / ((x.doneAt - x.firstTokenAt) / 1000))
          runs.forEach((x, i) => { if (x.tokens.join() !== expected[i % PROMPTS].join()) identical = false })
        }
        const after = await batchStats(metricsUrl)
        rows.push({
          clients: n,
          aggregateTokensPerSecond: round(median(aggregates), 2),
          ratioToOne: 0,
          perClientTokensPerSecond: round(median(perClient), 2),
          meanBatchSize: round((after.sum - before.sum) / Math.max(1, after.count - before.count), 2),
          identicalToLocal: identical
        })
      }
    } finally {
      await client.close()
    }
  } finally {
    await stopPeers(peers)
  }
  const one = rows.find((r) => r.clients === 1)?.aggregateTokensPerSecond ?? NaN
  for (const r of rows) r.ratioToOne = round(r.aggregateTokensPerSecond / one, 2)
  return { section: 'batch', settings: { threads: o.threads, promptTokens: o.promptTokens, decodeTokens: o.decodeTokens, repeats: o.repeats, shape }, rows }
}

async function tokensOf (events: AsyncIterable<{ event: string, tokens?: number[] }>): Promise<number[]> {
  for await (const e of events) if (e.event === 'done') return e.tokens ?? []
  throw new Error('generation ended without a done event')
}

/** When the first token came (the prefill is over) and when the generation ended. */
async function timed (events: AsyncIterable<{ event: string, index?: number, tokens?: number[] }>): Promise<{ firstTokenAt: number, doneAt: number, tokens: number[] }> {
  let firstTokenAt = 0
  for await (const e of events) {
    if (e.event === 'token' && e.index === 0) firstTokenAt = performance.now()
    if (e.event === 'done') return { firstTokenAt, doneAt: performance.now(), tokens: e.tokens ?? [] }
  }
  throw new Error('generation ended without a done event')
}

/** The peer's decode batch-size histogram: sum of sizes and number of batches so far. */
async function batchStats (url: string): Promise<{ sum: number, count: number }> {
  const text = await (await fetch(url)).text()
  const value = (name: string): number => Number(text.split('\n').find((l) => l.startsWith(name + ' '))?.split(' ').pop() ?? NaN)
  return { sum: value('strata_peer_decode_batch_size_sum'), count: value('strata_peer_decode_batch_size_count') }
}

export function renderBatch (r: BatchBenchResult): string {
  const s = r.settings.shape
  return [
    renderTable(['clients', 'aggregate tok/s', '× one client', 'per-client tok/s', 'mean batch on the peer', 'same tokens as local'],
      r.rows.map((row) => [String(row.clients), String(row.aggregateTokensPerSecond), String(row.ratioToOne), String(row.perClientTokensPerSecond), String(row.meanBatchSize), row.identicalToLocal ? 'yes' : 'NO'])),
    '',
    `one peer process hosting all ${s.layers} blocks (hidden ${s.hidden}, ${s.heads}/${s.kvHeads} heads, intermediate ${s.intermediate}, vocab ${s.vocab}, f32), ` +
    `${r.settings.threads} threads; clients = concurrent generate() calls of one Swarm; prompt ${r.settings.promptTokens} tokens, ${r.settings.decodeTokens} decode tokens each, median of ${r.settings.repeats}. ` +
    'aggregate = decode tokens of all clients ÷ wall time from the first first-token to the last done.'
  ].join('\n')
}
