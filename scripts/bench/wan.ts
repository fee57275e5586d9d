// Section "wan": a 3-hop swarm over emulated wide-area links. Every peer sits behind a delay
// proxy (delay-proxy.ts: added round trip, capped bandwidth) and announces the proxy's address
// (`peer --announce`), so the client and the other peers reach it only through that link.
// Reports time to first token and decode tok/s against the round-trip time, and what
// latency-aware chain planning buys when one of two replicas sits behind a slow link, against
// naive planning (which, blind to latency, picks either replica: on average the mean of both).
import type { WireDtype } from '../../src/protocol/tensor.ts'
import { Swarm } from '../../src/client/swarm.ts'
import { freePort, startPeer, stopPeers, type PeerProcess } from '../../src/cli/local-swarm.ts'
import { startDelayProxy, type DelayProxy, type LinkShape } from './delay-proxy.ts'
import { ensureBenchModel, QUICK_SHAPE, type BenchShape } from './model-cache.ts'
import { renderTable } from './report.ts'
import { log, median, round, randomTokens } from './util.ts'

export interface WanBenchOptions {
  cacheDir: string
  threads: number
  rtts: number[]
  mbps: number
  promptTokens: number
  decodeTokens: number
  repeats: number
}

interface Speed { ttftMs: number, decodeTokensPerSecond: number, msPerToken: number }

export interface WanBenchResult {
  section: 'wan'
  shape: BenchShape
  settings: { threads: number, mbps: number, promptTokens: number, decodeTokens: number, repeats: number, wire: WireDtype }
  /** 3 peers in a chain, each behind a link of this round trip */
  byRtt: Array<{ rttMs: number } & Speed & { identicalToFirst: boolean }>
  /** peer A [0, L/2) on a fast link; replicas B-fast and B-slow of [L/2, L) */
  replicas: {
    fastRttMs: number
    slowRttMs: number
    /** the chain the planner chose, per run, and its speed */
    latencyAware: Speed & { choseFastReplicaRuns: number, runs: number }
    /** the slow replica alone (the fast one stopped): what naive planning gets half the time */
    slowReplicaOnly: Speed
    /** naive planning's expectation: the mean ms/token of the two chains */
    naiveExpectedMsPerToken: number
    /** naive / latency-aware ms per token */
    speedup: number
  }
}

export interface LinkedPeer { peer: PeerProcess, proxy: DelayProxy, address: string }

/** A peer listening on a private port, reachable (and announced) only through a delay proxy. */
export async function linkedPeer (modelDir: string, blocks: string, link: LinkShape, label: string, threads: number, bootstrap?: string): Promise<LinkedPeer> {
  const port = await freePort()
  const proxy = await startDelayProxy(port, link)
  const flags = ['--blocks', blocks, '--threads', String(threads), '--network-mbps', String(link.mbps === Infinity ? 100_000 : link.mbps),
    '--listen', `/ip4/127.0.0.1/tcp/${port}`, '--announce', `/ip4/127.0.0.1/tcp/${proxy.port}`, ...(bootstrap !== undefined ? ['--bootstrap', bootstrap] : [])]
  try {
    const peer = await startPeer(modelDir, flags, label, 300_000)
    return { peer, proxy, address: `/ip4/127.0.0.1/tcp/${proxy.port}/p2p/${peer.peerId}` }
  } catch (err) {
    await proxy.close()
    throw err
  }
}

export async function stopLinked (peers: LinkedPeer[]): Promise<void> {
  await stopPeers(peers.map((p) => p.peer))
  await Promise.all(peers.map(async (p) => { await p.proxy.close() }))
}

/** Time to first token, decode speed and the first hop's peer, per generation; medians. */
async function measureChain (bootstrap: string, modelDir: string, o: WanBenchOptions, prompt: number[]): Promise<Speed & { tokens: number[], routes: string[][] }> {
  const swarm = await Swarm.connect({ bootstrap: [bootstrap], modelDir, threads: o.threads, stepTimeoutMs: 60_000 })
  try {
    const runs: Array<{ ttft: number, decodeSeconds: number, tokens: number[], route: string[] }> = []
    for (let i = 0; i <= o.repeats; i++) {
      const t0 = performance.now()
      let t1 = 0
      let tokens: number[] = []
      let route: string[] = []
      for await (const e of swarm.generate({ ids: prompt }, { maxNewTokens: o.decodeTokens + 1, ignoreEos: true })) {
        if (e.event === 'token' && e.index === 0) t1 = performance.now()
        if (e.event === 'token') route = e.route.map((h) => h.peer)
        if (e.event === 'done') tokens = e.tokens
      }
      if (i > 0) runs.push({ ttft: t1 - t0, decodeSeconds: (performance.now() - t1) / 1000, tokens, route }) // the first is a warm-up
    }
    const decode = median(runs.map((r) => r.decodeSeconds))
    return {
      ttftMs: round(median(runs.map((r) => r.ttft)), 1),
      decodeTokensPerSecond: round(o.decodeTokens / decode, 2),
      msPerToken: round((1000 * decode) / o.decodeTokens, 1),
      tokens: runs[0].tokens,
      routes: runs.map((r) => r.route)
    }
  } finally {
    await swarm.close()
  }
}

export async function benchWan (o: WanBenchOptions): Promise<WanBenchResult> {
  // network effects are the subject: the small shape keeps compute a few ms per token
  const shape = QUICK_SHAPE
  const { dir } = await ensureBenchModel(o.cacheDir, shape)
  const prompt = randomTokens(o.promptTokens, 3, shape.vocab, 99)
  const L = shape.layers
  const cut = (i: number): number => Math.round((i * L) / 3)
  const byRtt: WanBenchResult['byRtt'] = []
  let first: number[] | null = null
  for (const rttMs of o.rtts) {
    log(`wan: 3 hops behind ${rttMs} ms RTT, ${o.mbps} Mbit/s links …`)
    const link = { rttMs, mbps: o.mbps }
    const peers: LinkedPeer[] = []
    try {
      peers.push(await linkedPeer(dir, `0:${cut(1)}`, link, 'wan0', o.threads))
      for (let i = 1; i < 3; i++) peers.push(await linkedPeer(dir, `${cut(i)}:${cut(i + 1)}`, link, `wan${i}`, o.threads, peers[0].address))
      const r = await measureChain(peers[0].address, dir, o, prompt)
      first ??= r.tokens
      byRtt.push({ rttMs, ttftMs: r.ttftMs, decodeTokensPerSecond: r.decodeTokensPerSecond, msPerToken: r.msPerToken, identicalToFirst: r.tokens.join() === first.join() })
    } finally {
      await stopLinked(peers)
    }
  }

  const fastRttMs = Math.min(...o.rtts)
  const slowRttMs = Math.max(...o.rtts)
  log(`wan: replicas of blocks [${L / 2}, ${L}) behind ${fastRttMs} ms and ${slowRttMs} ms …`)
  const peers: LinkedPeer[] = []
  try {
    const fast = { rttMs: fastRttMs, mbps: o.mbps }
    peers.push(await linkedPeer(dir, `0:${L / 2}`, fast, 'wanA', o.threads))
    const slow = await linkedPeer(dir, `${L / 2}:${L}`, { rttMs: slowRttMs, mbps: o.mbps }, 'wanB-slow', o.threads, peers[0].address)
    peers.push(slow)
    const fastB = await linkedPeer(dir, `${L / 2}:${L}`, fast, 'wanB-fast', o.threads, peers[0].address)
    peers.push(fastB)
    const aware = await measureChain(peers[0].address, dir, o, prompt)
    const choseFast = aware.routes.filter((r) => r.includes(fastB.peer.peerId)).length
    log('wan: the fast replica stopped: the slow one alone …')
    await stopLinked([fastB])
    peers.pop()
    const slowOnly = await measureChain(peers[0].address, dir, o, prompt)
    const naive = (aware.msPerToken + slowOnly.msPerToken) / 2
    return {
      section: 'wan',
      shape,
      settings: { threads: o.threads, mbps: o.mbps, promptTokens: o.promptTokens, decodeTokens: o.decodeTokens, repeats: o.repeats, wire: 'f32' },
      byRtt,
      replicas: {
        fastRttMs,
        slowRttMs,
        latencyAware: { ttftMs: aware.ttftMs, decodeTokensPerSecond: aware.decodeTokensPerSecond, msPerToken: aware.msPerToken, choseFastReplicaRuns: choseFast, runs: aware.routes.length },
        slowReplicaOnly: { ttftMs: slowOnly.ttftMs, decodeTokensPerSecond: slowOnly.decodeTokensPerSecond, msPerToken: slowOnly.msPerToken },
        naiveExpectedMsPerToken: round(naive, 1),
        speedup: round(naive / aware.msPerToken, 2)
      }
    }
  } finally {
    await stopLinked(peers)
  }
}

export function renderWan (r: WanBenchResult): string {
  const s = r.replicas
  return [
    renderTable(['RTT per link (ms)', 'time to first token (ms)', 'decode tok/s', 'ms/token', 'same tokens'],
      r.byRtt.map((b) => [String(b.rttMs), String(b.ttftMs), String(b.decodeTokensPerSecond), String(b.msPerToken), b.identicalToFirst ? 'yes' : 'NO'])),
    '',
    `3 hops, client-relayed, ${r.settings.mbps} Mbit/s links, ${r.settings.promptTokens}-token prompt, ${r.settings.decodeTokens} decode tokens, median of ${r.settings.repeats}; model ${r.shape.layers}×${r.shape.hidden}.`,
    '',
    renderTable(['planning', 'chain', 'decode tok/s', 'ms/token'], [
      ['latency-aware (strata)', `fast replica in ${s.latencyAware.choseFastReplicaRuns}/${s.latencyAware.runs} runs`, String(s.latencyAware.decodeTokensPerSecond), String(s.latencyAware.msPerToken)],
      ['slow replica only', `${s.slowRttMs} ms link`, String(s.slowReplicaOnly.decodeTokensPerSecond), String(s.slowReplicaOnly.msPerToken)],
      ['naive (either replica)', 'expected', round(1000 / s.naiveExpectedMsPerToken, 2).toString(), String(s.naiveExpectedMsPerToken)]
    ]),
    '',
    `latency-aware planning: ${s.speedup}× naive's expected ms per token (replicas behind ${s.fastRttMs} ms and ${s.slowRttMs} ms)`
  ].join('\n')
}
