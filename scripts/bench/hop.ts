// Section "hop": what one hop costs per token, apart from compute. For each hidden size a one-block
// model (small intermediate and vocabulary, so compute is small) decodes locally and through one
// peer process on 127.0.0.1 that hosts its block, in the same run; the difference in ms per token
// is the hop: client encode → transport → peer decode → worker → back, for the f32 and f16 wires,
// with session steps on the libp2p stream (--no-direct) and on the direct data path (the default,
// src/protocol/direct.ts), alternating, in the same run.
import path from 'node:path'
import type { WireDtype } from '../../src/protocol/tensor.ts'
import { LocalModel } from '../../src/client/local-model.ts'
import { Swarm } from '../../src/client/swarm.ts'
import { startPeer, stopPeers, type PeerProcess } from '../../src/cli/local-swarm.ts'
import { ensureBenchModel, type BenchShape } from './model-cache.ts'
import { timeDecode, type Gen } from './swarm.ts'
import { renderTable } from './report.ts'
import { log, median, round, randomTokens } from './util.ts'

export interface HopBenchOptions {
  cacheRoot: string
  hiddens: number[]
  threads: number
  decodeTokens: number
  repeats: number
}

export interface HopRow {
  hidden: number
  localMsPerToken: number
  swarm: Array<{ wire: WireDtype, direct: boolean, msPerToken: number, hopMs: number, identicalToLocal: boolean }>
}

export interface HopBenchResult {
  section: 'hop'
  settings: { threads: number, decodeTokens: number, repeats: number, shape: string }
  rows: HopRow[]
}

const shapeFor = (hidden: number): BenchShape => ({ layers: 1, hidden, heads: hidden / 64, kvHeads: Math.max(1, hidden / 512), intermediate: 256, vocab: 512, seed: 5 })

export async function benchHop (o: HopBenchOptions): Promise<HopBenchResult> {
  const rows: HopRow[] = []
  for (const hidden of o.hiddens) {
    const { dir } = await ensureBenchModel(path.join(o.cacheRoot, `bench-hop-${hidden}`), shapeFor(hidden))
    const prompt = randomTokens(8, 3, 512, 3)
    const gen = { maxNewTokens: o.decodeTokens + 1, ignoreEos: true }
    const local = await LocalModel.load(dir, { threads: o.threads })
    const peers: PeerProcess[] = []
    const clients: Swarm[] = []
    try {
      peers.push(await startPeer(dir, ['--blocks', '0:1', '--threads', String(o.threads), '--network-mbps', '100000'], 'hop-peer', 300_000))
      // every configuration is timed once per round, in turn, so load that comes and goes on a
      // shared machine hits them alike; medians over the rounds
      const configs: Array<{ wire: WireDtype, direct: boolean, client: Swarm }> = []
      for (const wire of ['f32', 'f16'] as const) {
        for (const direct of [false, true]) {
          const client = await Swarm.connect({ bootstrap: [peers[0].multiaddrs[0]], modelDir: dir, threads: o.threads, wireDtype: wire, stepTimeoutMs: 60_000, direct })
          clients.push(client)
          configs.push({ wire, direct, client })
        }
      }
      const gens: Gen[] = [(p) => local.generate({ ids: p }, gen), ...configs.map((c): Gen => (p) => c.client.generate({ ids: p }, gen))]
      for (const g of gens) await timeDecode(g, prompt.slice(0, 8)) // warm-up
      const runs: Array<Array<{ medianTokenMs: number, tokens: number[] }>> = gens.map(() => [])
      for (let r = 0; r < o.repeats; r++) {
        log(`hop: hidden ${hidden}, round ${r + 1}/${o.repeats}: local, then one peer (f32, f16 wire; libp2p stream, direct path) …`)
        for (const [i, g] of gens.entries()) runs[i].push(await timeDecode(g, prompt))
      }
      const msPerToken = (i: number): number => median(runs[i].map((x) => x.medianTokenMs))
      const localMs = msPerToken(0)
      const swarm: HopRow['swarm'] = configs.map((c, k) => ({
        wire: c.wire,
        direct: c.direct,
        msPerToken: round(msPerToken(k + 1), 3),
        hopMs: round(msPerToken(k + 1) - localMs, 3),
        identicalToLocal: runs[k + 1][0].tokens.join() === runs[0][0].tokens.join()
      }))
      rows.push({ hidden, localMsPerToken: round(localMs, 3), swarm })
    } finally {
      for (const c of clients) await c.close()
      await local.close()
      await stopPeers(peers)
    }
  }
  return { section: 'hop', settings: { threads: o.threads, decodeTokens: o.decodeTokens, repeats: o.repeats, shape: '1 block, heads hidden/64, intermediate 256, vocab 512' }, rows }
}

export function renderHop (r: HopBenchResult): string {
  return [
    renderTable(['hidden', 'local ms/token', 'hop f32, libp2p (ms)', 'hop f32, direct (ms)', 'hop f16, libp2p (ms)', 'hop f16, direct (ms)', 'same tokens (f32 wire)'],
      r.rows.map((row) => {
        const hop = (wire: WireDtype, direct: boolean): string => String(row.swarm.find((s) => s.wire === wire && s.direct === direct)!.hopMs)
        const exact = row.swarm.filter((s) => s.wire === 'f32').every((s) => s.identicalToLocal)
        return [String(row.hidden), String(row.localMsPerToken), hop('f32', false), hop('f32', true), hop('f16', false), hop('f16', true), exact ? 'yes' : 'NO']
      })),
    '',
    `${r.settings.shape}; ${r.settings.decodeTokens} decode tokens, median of ${r.settings.repeats} rounds (each configuration once per round, in turn), ${r.settings.threads} threads; ms/token = median time between two tokens (median over the rounds); hop cost = one-peer ms/token − local ms/token, same run; libp2p: session steps on the libp2p stream (--no-direct), direct: on the direct data path.`
  ].join('\n')
}
