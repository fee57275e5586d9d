// The DHT at scale: many real libp2p nodes on 127.0.0.1, spread over several child processes
// (dht-hosts.ts / dht-run.ts, ~9 nodes each, so that no one event loop carries the swarm), each a
// peer that takes the span the swarm needs most (chooseBestSpan, as a daemon started without
// --blocks) and announces it exactly as the peer daemon does (announceSpan + a signed record on
// the info protocol, no model engine); and clients, in this process, that resolve the
// chain's candidates exactly as the real client does (DhtCandidates → findSwarmPeers). Measures:
//
//   lookups   — provider searches for random block keys from clients: latency to the first
//               provider and to the end of the search, hops to the first provider, peers asked;
//               and the client's full candidate resolution (latency, candidates, coverage)
//   join      — a new peer starts: time until a random client finds it under one of its blocks
//   leave     — a peer stops: time until a random client no longer finds it
//   churn     — a third of the peers stop while as many new ones join, while a client keeps
//               resolving candidates: how many resolutions covered every block, how many covered
//               every block that some peer, announced before the resolution began and still up
//               when it ended, was serving (the rest are misses of the DHT, not holes in the
//               swarm), and their latency
//
// Hops: kad-dht reports no path length, so it is derived from the query's events: a peer asked
// straight from the routing table is at hop 1; a peer first named in the `closer` list of a
// response from a peer at hop h is at hop h + 1. The hop of a search is that of the peer whose
// response first held a provider.
import { chooseBestSpan } from '../../src/loadbalance/block-selection.ts'
import { mulberry32 } from '../../src/loadbalance/random.ts'
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks'
import { findBlockPeers, type AnnounceRound, type Span } from '../../src/routing/dht.ts'
import { DhtCandidates } from '../../src/routing/dht-candidates.ts'
import { blockKey } from '../../src/routing/content-keys.ts'
import { createSwarmNode, PROVIDER_TTL_MS, waitForRoutingTable, type SwarmNode } from '../../src/routing/node.ts'
import { DHT_BENCH_ARCH as ARCH, DHT_BENCH_MODEL as MODEL, NodeHosts, type EventLoopLag } from './dht-hosts.ts'
import { renderTable } from './report.ts'
import { log, round } from './util.ts'

export interface DhtBenchOptions {
  /** peers in the swarm at the start (default 50) */
  peers: number
  /** client nodes (DHT client mode) that look up (default 4) */
  clients: number
  /** the model's block count (default 32) */
  numBlocks: number
  /** blocks each peer serves (default 8) */
  spanLength: number
  /** block-key searches measured (default 60) */
  lookups: number
  /** joins and leaves timed one at a time (default 5 each) */
  samples: number
  /** child processes hosting the peers (default: one per ~9 peers) */
  processes: number
  seed: number
}

export interface Dist { n: number, p50: number, p95: number, max: number, mean: number }

export interface DhtBenchResult {
  section: 'dht'
  settings: DhtBenchOptions & { bootstrapNodes: number, providerTtlMs: number }
  setup: { startMs: number, announceRoundMs: Dist, announcedFully: number }
  /**
   * how late event loops ran timers from the end of the setup to the end of the churn, ms: the
   * worst process (each figure its own maximum over the processes), then each host process and
   * this one (the clients')
   */
  eventLoopDelayMs: ProcessLags
  /** the same during the setup (every node starting and announcing) */
  setupEventLoopDelayMs: ProcessLags
  lookups: {
    firstProviderMs: Dist
    searchMs: Dist
    hops: Dist
    peersQueried: Dist
    providersFound: Dist
    candidatesMs: Dist
    candidates: Dist
    fullCoverage: number
    resolutions: number
  }
  join: { announcedMs: Dist, foundMs: Dist, found: number, tries: number }
  leave: { goneMs: Dist, gone: number, tries: number }
  churn: {
    left: number
    joined: number
    durationMs: number
    resolutions: number
    fullCoverage: number
    /** resolutions that covered every block served all through them by a peer announced before they began */
    servedCoverage: number
    /** resolutions during which the announced, running peers left some block unserved */
    swarmGaps: number
    departedOffered: number
    candidatesMs: Dist
    failures: string[]
  }
}

export type ProcessLags = EventLoopLag & { hosts: EventLoopLag[], clients: EventLoopLag }

interface BenchPeer {
  peerId: string
  span: Span
  addrs: string[]
  /** performance.now() when its first announce round ended, and when its stop was asked */
  announcedAt?: number
  stoppedAt?: number
  lastRound?: AnnounceRound
}

export async function benchDht (opts: Partial<DhtBenchOptions> = {}): Promise<DhtBenchResult> {
  const peersWanted = opts.peers ?? 50
  const o: DhtBenchOptions = { peers: peersWanted, clients: 4, numBlocks: 32, spanLength: 8, lookups: 60, samples: 5, processes: Math.max(1, Math.round(peersWanted / 9)), seed: 1, ...opts }
  const rand = mulberry32(o.seed)
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]
  /** spans of the peers running or starting, as the load balancer of a joining peer sees them */
  const claimed: Span[] = []
  // as a peer daemon started without --blocks: the window the swarm needs most
  const nextSpan = (): Span => {
    const span = chooseBestSpan(claimed.map((c, i) => ({ peerId: String(i), ...c, throughput: 10, state: 'online' as const })), o.numBlocks, o.spanLength)
    claimed.push(span)
    return span
  }
  const bootstrapNodes = 3
  /** peers running now */
  const peers: BenchPeer[] = []
  /** every peer ever started, for what the swarm served when */
  const history: BenchPeer[] = []
  const others: SwarmNode[] = []
  let bootstrap: string[] = []

  log(`dht: ${o.processes} host processes`)
  const hosts = await NodeHosts.spawn(o.processes)
  const onSignal = (signal: NodeJS.Signals): void => {
    hosts.kill()
    process.kill(process.pid, signal)
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  /** a node serving a signed record of `span`, not yet announcing */
  const startNode = async (span: Span): Promise<BenchPeer> => {
    const { peerId, addrs } = await hosts.start(bootstrap, span)
    const peer: BenchPeer = { peerId, span, addrs }
    history.push(peer)
    return peer
  }
  /** announces as the peer daemon does; resolves after the first round */
  const announce = async (peer: BenchPeer): Promise<BenchPeer> => {
    peer.lastRound = await hosts.announce(peer.peerId)
    peer.announcedAt ??= performance.now()
    peers.push(peer)
    return peer
  }
  const startPeer = async (span: Span): Promise<BenchPeer> => await announce(await startNode(span))
  const stopPeer = async (peer: BenchPeer): Promise<void> => {
    peers.splice(peers.indexOf(peer), 1)
    claimed.splice(claimed.findIndex((c) => c.start === peer.span.start), 1)
    peer.stoppedAt = performance.now()
    await hosts.stop(peer.peerId)
  }
  /** blocks that some peer announced by `from` and not stopped before `to` served */
  const servedBetween = (from: number, to: number): Uint8Array => {
    const served = new Uint8Array(o.numBlocks)
    for (const p of history) {
      if (p.announcedAt !== undefined && p.announcedAt <= from && (p.stoppedAt === undefined || p.stoppedAt >= to)) served.fill(1, p.span.start, p.span.end)
    }
    return served
  }

  const loopDelay = monitorEventLoopDelay({ resolution: 20 })
  loopDelay.enable()
  try {
    // ---- setup: bootstrap nodes first (they serve spans too), then the rest a few at a time
    const setupStarted = performance.now()
    log(`dht: starting ${o.peers} peers (${bootstrapNodes} bootstrap)`)
    // the first node has nobody to announce to yet: its round waits for a first DHT peer
    const first = await startNode(nextSpan())
    bootstrap = [first.addrs[0]]
    const firstAnnounced = announce(first)
    for (let i = 1; i < bootstrapNodes; i++) await startPeer(nextSpan())
    await firstAnnounced
    bootstrap = peers.map((p) => p.addrs[0])
    // clients join now, while the swarm is quiet: a swarm announcing on a contended machine can
    // starve a newcomer's bootstrap dial past its timeout
    const clients: SwarmNode[] = []
    for (let i = 0; i < o.clients; i++) {
      const c = await createSwarmNode({ listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap, dhtMode: 'client' })
      others.push(c)
      clients.push(c)
      await phase(`client ${i} joining`, async () => await waitForRoutingTable(c, 1, AbortSignal.timeout(120_000)))
    }
    for (let i = bootstrapNodes; i < o.peers; i += 8) {
      await Promise.all(Array.from({ length: Math.min(8, o.peers - i) }, async () => await startPeer(nextSpan())))
      log(`dht: ${peers.length} peers up`)
    }
    // the earliest peers announced into a smaller swarm: re-announce once it has formed, as
    // the periodic refresh would
    for (let i = 0; i < peers.length; i += 8) {
      await Promise.all(peers.slice(i, i + 8).map(async (p) => { p.lastRound = await hosts.announce(p.peerId) }))
    }
    const startMs = performance.now() - setupStarted
    const rounds = peers.map((p) => p.lastRound)
    const setup = {
      startMs: round(startMs, 0),
      announceRoundMs: dist(rounds.map((r) => r?.durationMs ?? NaN)),
      announcedFully: rounds.filter((r) => r != null && r.stored === r.keys).length
    }
    log(`dht: setup ${JSON.stringify(setup)}`)
    const setupLags = processLags(await hosts.lags(true), loopDelay)
    loopDelay.reset()

    // ---- lookups
    log(`dht: ${o.lookups} block-key searches and candidate resolutions`)
    const firstProvider: number[] = []
    const search: number[] = []
    const hops: number[] = []
    const asked: number[] = []
    const providers: number[] = []
    for (let i = 0; i < o.lookups; i++) {
      const client = pick(clients)
      const r = await phase(`block search ${i}`, async () => await traceSearch(client, Math.floor(rand() * o.numBlocks)))
      if (r.firstProviderMs != null) firstProvider.push(r.firstProviderMs)
      if (r.hops != null) hops.push(r.hops)
      search.push(r.searchMs)
      asked.push(r.peersQueried)
      providers.push(r.providers)
    }
    const resolutions = Math.max(10, Math.round(o.lookups / 3))
    const candidatesMs: number[] = []
    const candidateCounts: number[] = []
    let covered = 0
    for (let i = 0; i < resolutions; i++) {
      const r = await resolve(pick(clients), o.numBlocks)
      candidatesMs.push(r.ms)
      candidateCounts.push(r.peers.length)
      if (r.uncovered.length === 0) covered++
    }
    const lookups = {
      firstProviderMs: dist(firstProvider),
      searchMs: dist(search),
      hops: dist(hops),
      peersQueried: dist(asked),
      providersFound: dist(providers),
      candidatesMs: dist(candidatesMs),
      candidates: dist(candidateCounts),
      fullCoverage: covered,
      resolutions
    }
    log(`dht: lookups ${JSON.stringify(lookups)}`)

    // ---- join: a new peer, then a random client searches one of its blocks until it shows up
    log(`dht: ${o.samples} joins`)
    const announced: number[] = []
    const found: number[] = []
    for (let i = 0; i < o.samples; i++) {
      const started = performance.now()
      const peer = await startPeer(nextSpan())
      announced.push(performance.now() - started)
      const client = pick(clients)
      const block = peer.span.start + Math.floor(rand() * o.spanLength)
      const at = await pollUntil(30_000, async () => (await findBlockPeers(client, MODEL, block, { numBlocks: o.numBlocks, arch: ARCH })).some((p) => p.record.peerId === peer.peerId))
      if (at != null) found.push(at + announced[announced.length - 1])
    }
    const join = { announcedMs: dist(announced), foundMs: dist(found), found: found.length, tries: o.samples }
    log(`dht: join ${JSON.stringify(join)}`)

    // ---- leave: a peer stops, then a random client searches one of its blocks until it is gone
    log(`dht: ${o.samples} leaves`)
    const gone: number[] = []
    for (let i = 0; i < o.samples; i++) {
      const peer = pick(peers.slice(bootstrapNodes))
      const block = peer.span.start
      const client = pick(clients)
      await stopPeer(peer)
      // from the moment the peer is gone
      const at = await pollUntil(30_000, async () => !(await findBlockPeers(client, MODEL, block, { numBlocks: o.numBlocks, arch: ARCH })).some((p) => p.record.peerId === peer.peerId))
      if (at != null) gone.push(at)
    }
    const leave = { goneMs: dist(gone), gone: gone.length, tries: o.samples }
    log(`dht: leave ${JSON.stringify(leave)}`)

    // ---- churn: a third leave and as many join, one of each at a time, while a client resolves
    const churnCount = Math.floor(peers.length / 3)
    log(`dht: churn — ${churnCount} leave, ${churnCount} join`)
    const client = pick(clients)
    const departed = new Set<string>()
    const churnMs: number[] = []
    const failures: string[] = []
    let churnResolutions = 0
    let churnCovered = 0
    let servedCovered = 0
    let swarmGaps = 0
    let departedOffered = 0
    let churning = true
    const resolver = (async () => {
      // keeps resolving during the churn and for a few resolutions after it
      let after = 0
      while (churning || after++ < 5) {
        const departedBefore = new Set(departed)
        const from = performance.now()
        try {
          const r = await resolve(client, o.numBlocks)
          churnResolutions++
          churnMs.push(r.ms)
          const served = servedBetween(from, performance.now())
          if (served.includes(0)) swarmGaps++
          const missed = r.uncovered.filter((b) => served[b] === 1)
          if (r.uncovered.length === 0) churnCovered++
          if (missed.length === 0) servedCovered++
          if (r.uncovered.length > 0) {
            failures.push(`${round(r.ms, 0)} ms, uncovered ${ranges(r.uncovered)}` + (missed.length > 0 ? `, of which served ${ranges(missed)}` : ' (none served)'))
          }
          departedOffered += r.peers.filter((id) => departedBefore.has(id)).length
        } catch (err) {
          churnResolutions++
          failures.push((err as Error).message)
        }
      }
    })()
    const churnStarted = performance.now()
    const leavers = shuffle(peers.slice(bootstrapNodes), rand).slice(0, churnCount)
    try {
      for (const peer of leavers) {
        await stopPeer(peer)
        departed.add(peer.peerId)
        await startPeer(nextSpan())
      }
    } finally {
      churning = false
      await resolver
    }
    const churnDuration = performance.now() - churnStarted
    const churn = {
      left: leavers.length,
      joined: leavers.length,
      durationMs: round(churnDuration, 0),
      resolutions: churnResolutions,
      fullCoverage: churnCovered,
      servedCoverage: servedCovered,
      swarmGaps,
      departedOffered,
      candidatesMs: dist(churnMs),
      failures: failures.slice(0, 10)
    }
    log(`dht: churn ${JSON.stringify(churn)}`)

    const lags = processLags(await hosts.lags(false), loopDelay)
    return {
      section: 'dht',
      settings: { ...o, bootstrapNodes, providerTtlMs: PROVIDER_TTL_MS },
      setup,
      eventLoopDelayMs: lags,
      setupEventLoopDelayMs: setupLags,
      lookups,
      join,
      leave,
      churn
    }
  } finally {
    loopDelay.disable()
    log('dht: stopping nodes')
    await Promise.all(others.map(async (n) => await n.stop()))
    await hosts.close()
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
  }
}

/** The hosts' lags, this process's (the clients'), and the worst of each figure. */
function processLags (hosts: EventLoopLag[], own: IntervalHistogram): ProcessLags {
  const clients: EventLoopLag = { p50: round(own.percentile(50) / 1e6, 1), p99: round(own.percentile(99) / 1e6, 1), max: round(own.max / 1e6, 1) }
  const all = [...hosts, clients]
  return { p50: Math.max(...all.map((l) => l.p50)), p99: Math.max(...all.map((l) => l.p99)), max: Math.max(...all.map((l) => l.max)), hosts, clients }
}

interface SearchTrace { firstProviderMs?: number, searchMs: number, hops?: number, peersQueried: number, providers: number }

/** One provider search for block `block`'s key, traced through its query events. */
async function traceSearch (client: SwarmNode, block: number): Promise<SearchTrace> {
  const depth = new Map<string, number>()
  const queried = new Set<string>()
  const providerIds = new Set<string>()
  let hops: number | undefined
  let firstProviderMs: number | undefined
  const started = performance.now()
  for await (const event of client.services.dht.findProviders(blockKey(MODEL, block), { signal: AbortSignal.timeout(120_000) })) {
    if (event.name === 'SEND_QUERY') {
      const to = event.to.toString()
      queried.add(to)
      if (!depth.has(to)) depth.set(to, 1)
    } else if (event.name === 'PEER_RESPONSE') {
      const d = depth.get(event.from.toString()) ?? 1
      for (const c of event.closer) {
        if (!depth.has(c.id.toString())) depth.set(c.id.toString(), d + 1)
      }
    } else if (event.name === 'PROVIDER') {
      if (hops == null) {
        hops = event.from.equals(client.peerId) ? 0 : depth.get(event.from.toString()) ?? 1
        firstProviderMs = performance.now() - started
      }
      for (const p of event.providers) providerIds.add(p.id.toString())
    }
  }
  return { firstProviderMs, searchMs: performance.now() - started, hops, peersQueried: queried.size, providers: providerIds.size }
}

/** The real client's candidate resolution, uncached: its time, the peers offered, the blocks none of them serves. */
async function resolve (client: SwarmNode, numBlocks: number): Promise<{ ms: number, peers: string[], uncovered: number[] }> {
  const started = performance.now()
  const list = await new DhtCandidates(client, MODEL, numBlocks, ARCH, 0, 0).candidates(true)
  const ms = performance.now() - started
  const covered = new Uint8Array(numBlocks)
  for (const c of list) covered.fill(1, c.start, c.end)
  const uncovered = [...covered.keys()].filter((b) => covered[b] === 0)
  return { ms, peers: list.map((c) => c.peerId), uncovered }
}

/** Blocks as ranges: [3, 4, 5, 9] → "3–5, 9". */
function ranges (blocks: number[]): string {
  const out: string[] = []
  for (let i = 0; i < blocks.length;) {
    let j = i
    while (j + 1 < blocks.length && blocks[j + 1] === blocks[j] + 1) j++
    out.push(j === i ? String(blocks[i]) : `${blocks[i]}–${blocks[j]}`)
    i = j + 1
  }
  return out.join(', ')
}

/** Runs `check` until it holds; ms it took, or undefined after `timeoutMs`. */
async function pollUntil (timeoutMs: number, check: () => Promise<boolean>): Promise<number | undefined> {
  const started = performance.now()
  while (performance.now() - started < timeoutMs) {
    if (await check()) return performance.now() - started
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return undefined
}

/** Runs `fn`, naming `what` in its error. */
async function phase<T> (what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw new Error(`${what}: ${(err as Error).message}`)
  }
}

function dist (xs: number[]): Dist {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b)
  const q = (p: number): number => s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]
  const mean = s.length === 0 ? NaN : s.reduce((a, b) => a + b, 0) / s.length
  return { n: s.length, p50: round(q(0.5), 1), p95: round(q(0.95), 1), max: round(s[s.length - 1] ?? NaN, 1), mean: round(mean, 1) }
}

function shuffle<T> (xs: T[], rand: () => number): T[] {
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}


export function renderDht (r: DhtBenchResult): string {
  const ms = (d: Dist): string[] => [fmt(d.p50, 0), fmt(d.p95, 0), fmt(d.max, 0)]
  const n = (d: Dist): string[] => [fmt(d.p50, 1), fmt(d.p95, 1), fmt(d.max, 1)]
  const s = r.settings
  const head = `${s.peers} peers (${s.bootstrapNodes} bootstrap) in ${s.processes} processes + ${s.clients} clients, ${s.numBlocks} blocks, spans of ${s.spanLength}; ` +
    `swarm up and announced in ${(r.setup.startMs / 1000).toFixed(1)} s (${r.setup.announcedFully}/${s.peers} announce rounds stored every key)`
  const rows: string[][] = [
    ['announce round (ms)', ...ms(r.setup.announceRoundMs), String(r.setup.announceRoundMs.n)],
    ['block search: first provider (ms)', ...ms(r.lookups.firstProviderMs), String(r.lookups.firstProviderMs.n)],
    ['block search: complete (ms)', ...ms(r.lookups.searchMs), String(r.lookups.searchMs.n)],
    ['block search: hops to first provider', ...n(r.lookups.hops), String(r.lookups.hops.n)],
    ['block search: peers queried', ...n(r.lookups.peersQueried), String(r.lookups.peersQueried.n)],
    ['block search: providers found', ...n(r.lookups.providersFound), String(r.lookups.providersFound.n)],
    [`client candidates (ms), ${r.lookups.fullCoverage}/${r.lookups.resolutions} full coverage`, ...ms(r.lookups.candidatesMs), String(r.lookups.candidatesMs.n)],
    ['client candidates: peers offered', ...n(r.lookups.candidates), String(r.lookups.candidates.n)],
    ['new peer: announced (ms)', ...ms(r.join.announcedMs), `${r.join.announcedMs.n}`],
    [`new peer: found by a random client (ms), ${r.join.found}/${r.join.tries}`, ...ms(r.join.foundMs), `${r.join.foundMs.n}`],
    [`departed peer: no longer offered (ms), ${r.leave.gone}/${r.leave.tries}`, ...ms(r.leave.goneMs), `${r.leave.goneMs.n}`],
    [`churn: candidates (ms), ${r.churn.fullCoverage}/${r.churn.resolutions} full coverage, ${r.churn.servedCoverage}/${r.churn.resolutions} of served blocks`, ...ms(r.churn.candidatesMs), `${r.churn.candidatesMs.n}`]
  ]
  const table = renderTable(['measure', 'p50', 'p95', 'max', 'n'], rows, [false, true, true, true, true])
  const churn = `churn: ${r.churn.left} peers left and ${r.churn.joined} joined over ${(r.churn.durationMs / 1000).toFixed(1)} s; ` +
    `${r.churn.swarmGaps} resolutions ran while no announced peer served some block; ` +
    `departed peers offered afterwards: ${r.churn.departedOffered}` + (r.churn.failures.length > 0 ? `; incomplete: ${r.churn.failures.join('; ')}` : '')
  const lag = (l: EventLoopLag): string => `${l.p50}/${l.p99}/${l.max}`
  const lags = (l: ProcessLags): string => `worst process ${lag(l)} (hosts ${l.hosts.map(lag).join(', ')}; clients' process ${lag(l.clients)})`
  const loop = `event-loop delay, ms p50/p99/max: after the setup, ${lags(r.eventLoopDelayMs)}; during the setup, ${lags(r.setupEventLoopDelayMs)}`
  return `${head}\n\n${table}\n\n${churn}\n${loop}`
}

function fmt (x: number, d: number): string {
  return Number.isFinite(x) ? x.toFixed(d) : '–'
}
