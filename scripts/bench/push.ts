// Section "push": server-to-server push against client relaying. For each hidden size and peer
// count P, a P-block model (one block per peer; small intermediate and vocabulary, so compute is
// small) decodes locally, then through P peer processes on 127.0.0.1 relayed (client → peer →
// client → next peer …) and with push (client → peer → next peer … → client), in the same run, on
// the f32 wire. Per hop per token = (swarm ms/token − local ms/token) / P. The two modes' runs
// alternate (relayed, push, relayed, push, …) so drifting load on a shared machine hits both alike.
// Then the same comparison over emulated wide-area links (wan.ts's delay proxies: every peer
// reachable only through a link of the given round trip), 3 hops, where the traversals saved
// are round trips: relayed pays 3 RTT per token, push (3 + 1) / 2 = 2.
import path from 'node:path'
import { LocalModel } from '../../src/client/local-model.ts'
import { Swarm } from '../../src/client/swarm.ts'
import { startPeer, stopPeers, type PeerProcess } from '../../src/cli/local-swarm.ts'
import { ensureBenchModel, QUICK_SHAPE, type BenchShape } from './model-cache.ts'
import { linkedPeer, stopLinked, type LinkedPeer } from './wan.ts'
import { measure, timeDecode } from './swarm.ts'
import { renderTable } from './report.ts'
import { log, median, round, randomTokens } from './util.ts'

export interface PushBenchOptions {
  cacheRoot: string
  hiddens: number[]
  peerCounts: number[]
  threads: number
  decodeTokens: number
  repeats: number
  /** wide-area part: model directory (the quick shape), round trips per link, ms */
  wan: { cacheDir: string, rtts: number[], mbps: number, decodeTokens: number }
}

export type ChainMode = 'relayed' | 'push'

export interface PushRow {
  hidden: number
  peers: number
  localMsPerToken: number
  modes: Array<{ mode: ChainMode, tokensPerSecond: number, msPerToken: number, msPerHopPerToken: number, identicalToLocal: boolean }>
}

export interface PushBenchResult {
  section: 'push'
  settings: { threads: number, decodeTokens: number, repeats: number, shape: string }
  rows: PushRow[]
  /** 3 hops behind delay proxies: decode ms/token and time to first token per mode */
  wan: Array<{ rttMs: number, modes: Array<{ mode: ChainMode, msPerToken: number, tokensPerSecond: number, ttftMs: number, identical: boolean }> }>
}

const shapeFor = (hidden: number, layers: number): BenchShape => ({ layers, hidden, heads: hidden / 64, kvHeads: Math.max(1, hidden / 512), intermediate: 256, vocab: 512, seed: 5 })

export async function benchPush (o: PushBenchOptions): Promise<PushBenchResult> {
  const rows: PushRow[] = []
  for (const hidden of o.hiddens) {
    for (const P of o.peerCounts) {
      const { dir } = await ensureBenchModel(path.join(o.cacheRoot, `bench-push-${hidden}x${P}`), shapeFor(hidden, P))
      const prompt = randomTokens(8, 3, 512, 3)
      const gen = { maxNewTokens: o.decodeTokens + 1, ignoreEos: true }
      log(`push: hidden ${hidden}, ${P} blocks, local …`)
      const local = await LocalModel.load(dir, { threads: o.threads })
      const l = await measure((p) => local.generate({ ids: p }, gen), prompt, o.repeats)
      await local.close()
      const localMs = 1000 / l.tokensPerSecond
      const peers: PeerProcess[] = []
      const modes: PushRow['modes'] = []
      try {
        const flags = ['--threads', String(o.threads), '--network-mbps', '100000']
        peers.push(await startPeer(dir, ['--blocks', '0:1', ...flags], 'push-peer0', 300_000))
        const bootstrap = peers[0].multiaddrs[0]
        for (let b = 1; b < P; b++) peers.push(await startPeer(dir, ['--blocks', `${b}:${b + 1}`, '--bootstrap', bootstrap, ...flags], `push-peer${b}`, 300_000))
        const clients: Swarm[] = []
        try {
          for (const mode of ['relayed', 'push'] as const) {
            clients.push(await Swarm.connect({ bootstrap: [bootstrap], modelDir: dir, threads: o.threads, push: mode === 'push', stepTimeoutMs: 60_000 }))
          }
          log(`push: hidden ${hidden}, ${P} peers, relayed and push alternating …`)
          const runs: Array<Array<{ tokensPerSecond: number, tokens: number[] }>> = [[], []]
          for (const c of clients) await timeDecode((p) => c.generate({ ids: p }, gen), prompt.slice(0, 4)) // warm-up
          for (let i = 0; i < o.repeats; i++) {
            for (const [m, c] of clients.entries()) runs[m].push(await timeDecode((p) => c.generate({ ids: p }, gen), prompt))
          }
          for (const [m, mode] of (['relayed', 'push'] as const).entries()) {
            const tokensPerSecond = median(runs[m].map((r) => r.tokensPerSecond))
            const ms = 1000 / tokensPerSecond
            modes.push({ mode, tokensPerSecond: round(tokensPerSecond, 1), msPerToken: round(ms, 3), msPerHopPerToken: round((ms - localMs) / P, 3), identicalToLocal: runs[m].every((r) => r.tokens.join() === l.tokens.join()) })
          }
        } finally {
          await Promise.all(clients.map(async (c) => await c.close()))
        }
      } finally {
        await stopPeers(peers)
      }
      rows.push({ hidden, peers: P, localMsPerToken: round(localMs, 3), modes })
    }
  }
  const wan: PushBenchResult['wan'] = []
  const { dir } = await ensureBenchModel(o.wan.cacheDir, QUICK_SHAPE)
  const L = QUICK_SHAPE.layers
  const cut = (i: number): number => Math.round((i * L) / 3)
  const prompt = randomTokens(16, 3, QUICK_SHAPE.vocab, 99)
  const gen = { maxNewTokens: o.wan.decodeTokens + 1, ignoreEos: true }
  for (const rttMs of o.wan.rtts) {
    log(`push: 3 hops behind ${rttMs} ms RTT links, relayed and push alternating …`)
    const link = { rttMs, mbps: o.wan.mbps }
    const peers: LinkedPeer[] = []
    const clients: Swarm[] = []
    try {
      peers.push(await linkedPeer(dir, `0:${cut(1)}`, link, 'pushwan0', o.threads))
      for (let i = 1; i < 3; i++) peers.push(await linkedPeer(dir, `${cut(i)}:${cut(i + 1)}`, link, `pushwan${i}`, o.threads, peers[0].address))
      for (const mode of ['relayed', 'push'] as const) clients.push(await Swarm.connect({ bootstrap: [peers[0].address], modelDir: dir, threads: o.threads, push: mode === 'push', stepTimeoutMs: 60_000 }))
      const runs: Array<Array<{ ttft: number, decodeSeconds: number, tokens: number[] }>> = [[], []]
      for (let i = 0; i <= o.repeats; i++) {
        for (const [m, c] of clients.entries()) {
          const t0 = performance.now()
          let t1 = 0
          let tokens: number[] = []
          for await (const e of c.generate({ ids: prompt }, gen)) {
            if (e.event === 'token' && e.index === 0) t1 = performance.now()
            if (e.event === 'done') tokens = e.tokens
          }
          if (i > 0) runs[m].push({ ttft: t1 - t0, decodeSeconds: (performance.now() - t1) / 1000, tokens }) // the first is a warm-up
        }
      }
      wan.push({
        rttMs,
        modes: (['relayed', 'push'] as const).map((mode, m) => {
          const seconds = median(runs[m].map((r) => r.decodeSeconds))
          return { mode, msPerToken: round((1000 * seconds) / o.wan.decodeTokens, 1), tokensPerSecond: round(o.wan.decodeTokens / seconds, 2), ttftMs: round(median(runs[m].map((r) => r.ttft)), 1), identical: runs[m].every((r) => r.tokens.join() === runs[0][0].tokens.join()) }
        })
      })
    } finally {
      await Promise.all(clients.map(async (c) => await c.close()))
      await stopLinked(peers)
    }
  }
  return { section: 'push', wan, settings: { threads: o.threads, decodeTokens: o.decodeTokens, repeats: o.repeats, shape: 'one block per peer, heads hidden/64, intermediate 256, vocab 512' }, rows }
}

export function renderPush (r: PushBenchResult): string {
  return [
    renderTable(['hidden', 'peers', 'local ms/token', 'relayed tok/s', 'push tok/s', 'relayed ms/hop/token', 'push ms/hop/token', 'push / relayed', 'same tokens'],
      r.rows.map((row) => {
        const relayed = row.modes.find((m) => m.mode === 'relayed')!
        const push = row.modes.find((m) => m.mode === 'push')!
        return [String(row.hidden), String(row.peers), String(row.localMsPerToken), String(relayed.tokensPerSecond), String(push.tokensPerSecond),
          String(relayed.msPerHopPerToken), String(push.msPerHopPerToken), (push.tokensPerSecond / relayed.tokensPerSecond).toFixed(2),
          relayed.identicalToLocal && push.identicalToLocal ? 'yes' : 'NO']
      })),
    '',
    `${r.settings.shape}; f32 wire; ${r.settings.decodeTokens} decode tokens, median of ${r.settings.repeats}, ${r.settings.threads} threads; ms/hop/token = (swarm − local ms/token) / peers, same run.`,
    '',
    renderTable(['RTT per link (ms)', 'relayed ms/token', 'push ms/token', 'relayed TTFT (ms)', 'push TTFT (ms)', 'push / relayed tok/s', 'same tokens'],
      r.wan.map((w) => {
        const [relayed, push] = w.modes
        return [String(w.rttMs), String(relayed.msPerToken), String(push.msPerToken), String(relayed.ttftMs), String(push.ttftMs), (push.tokensPerSecond / relayed.tokensPerSecond).toFixed(2), relayed.identical && push.identical ? 'yes' : 'NO']
      })),
    '',
    `3 hops (quick shape ${QUICK_SHAPE.layers}×${QUICK_SHAPE.hidden}), every peer behind a delay proxy of that RTT; relayed pays ~3 RTT per token, push ~2.`
  ].join('\n')
}
