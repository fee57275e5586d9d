// The DHT benchmark's node hosts: child processes (dht-run.ts) that each run some of the swarm's
// nodes, driven over IPC. Nodes go to the host holding the fewest. Every request has a timeout;
// a host that exits fails its pending requests; close() ends every host and kill() is the
// synchronous last resort (SIGINT, errors).
import { fork, type ChildProcess } from 'node:child_process'
import type { AnnounceRound, Span } from '../../src/routing/dht.ts'

export const DHT_BENCH_MODEL = 'bench-dht-model'
export const DHT_BENCH_ARCH = 'llama'
/** bound on one announce round (a saturated swarm forms slowly), ms */
export const ANNOUNCE_ROUND_TIMEOUT_MS = 30_000

const CHILD = new URL('./dht-run.ts', import.meta.url)
/** bounds on a host's answers, ms */
const READY_TIMEOUT_MS = 60_000
const START_TIMEOUT_MS = 60_000
// a round asked for starts after the one running (a retry, say): two rounds and a margin
const ANNOUNCE_TIMEOUT_MS = 2 * ANNOUNCE_ROUND_TIMEOUT_MS + 30_000
const STOP_TIMEOUT_MS = 30_000
const LAG_TIMEOUT_MS = 10_000
const EXIT_TIMEOUT_MS = 10_000

export type HostRequest =
  | { req: number, op: 'start', bootstrap: string[], span: Span }
  | { req: number, op: 'announce', peerId: string }
  | { req: number, op: 'stop', peerId: string }
  | { req: number, op: 'lag', reset: boolean }

/** What a host sends: 'ready' once, then one reply per request. */
export type HostReply =
  | { ready: true }
  | { req: number, ok: true, result: unknown }
  | { req: number, ok: false, error: { name: string, message: string } }

export interface StartedNode { peerId: string, addrs: string[] }
/** How late a process's event loop ran its timers since it began, ms. */
export interface EventLoopLag { p50: number, p99: number, max: number }

type Request = HostRequest extends infer R ? R extends { req: number } ? Omit<R, 'req'> : never : never

export class DhtHostError extends Error {
  override name = 'DhtHostError'
}

class Host {
  readonly child: ChildProcess
  nodes = 0
  private nextReq = 0
  private readonly pending = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void, timer: NodeJS.Timeout }>()
  private exited?: string
  readonly ready: Promise<void>
  readonly gone: Promise<void>

  constructor (readonly index: number) {
    this.child = fork(CHILD, [], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const ready = Promise.withResolvers<void>()
    const timer = setTimeout(() => { ready.reject(new DhtHostError(`dht host ${index}: not ready within ${READY_TIMEOUT_MS} ms`)) }, READY_TIMEOUT_MS)
    this.ready = ready.promise.finally(() => { clearTimeout(timer) })
    this.gone = new Promise((resolve) => this.child.once('exit', () => { resolve() }))
    this.child.on('message', (m: HostReply) => {
      if ('ready' in m) { ready.resolve(); return }
      const p = this.pending.get(m.req)
      if (p === undefined) return
      this.pending.delete(m.req)
      clearTimeout(p.timer)
      if (m.ok) p.resolve(m.result)
      else p.reject(Object.assign(new DhtHostError(`dht host ${index}: ${m.error.message}`), { cause: m.error.name }))
    })
    this.child.once('exit', (code, signal) => {
      this.exited = `dht host ${index} exited (${signal ?? `code ${code}`})`
      ready.reject(new DhtHostError(this.exited))
      for (const p of this.pending.values()) {
        clearTimeout(p.timer)
        p.reject(new DhtHostError(this.exited))
      }
      this.pending.clear()
    })
    this.child.on('error', () => { /* 'exit' follows and fails what is pending */ })
  }

  async request<T> (msg: Request, timeoutMs: number): Promise<T> {
    if (this.exited !== undefined) throw new DhtHostError(this.exited)
    const req = this.nextReq++
    return await new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(req)
        reject(new DhtHostError(`dht host ${this.index}: no answer to ${msg.op} within ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(req, { resolve: resolve as (v: unknown) => void, reject, timer })
      this.child.send({ ...msg, req })
    })
  }
}

export class NodeHosts {
  private readonly hosts: Host[]
  /** host of each node started, by peer id */
  private readonly where = new Map<string, Host>()

  private constructor (hosts: Host[]) {
    this.hosts = hosts
  }

  /** Forks `count` hosts and waits until each is ready; kills them all if one fails. */
  static async spawn (count: number): Promise<NodeHosts> {
    const hosts = new NodeHosts(Array.from({ length: count }, (_, i) => new Host(i)))
    try {
      await Promise.all(hosts.hosts.map(async (h) => await h.ready))
    } catch (err) {
      hosts.kill()
      throw err
    }
    return hosts
  }

  get count (): number {
    return this.hosts.length
  }

  /** Starts a node serving its record of `span` (not yet announcing) on the least-loaded host. */
  async start (bootstrap: string[], span: Span): Promise<StartedNode & { host: number }> {
    const host = this.hosts.reduce((a, b) => b.nodes < a.nodes ? b : a)
    host.nodes++
    try {
      const started = await host.request<StartedNode>({ op: 'start', bootstrap, span }, START_TIMEOUT_MS)
      this.where.set(started.peerId, host)
      return { ...started, host: host.index }
    } catch (err) {
      host.nodes--
      throw err
    }
  }

  /** Runs the node's first announce round (announceSpan), or a new one; how it went. */
  async announce (peerId: string): Promise<AnnounceRound> {
    return await this.hostOf(peerId).request<AnnounceRound>({ op: 'announce', peerId }, ANNOUNCE_TIMEOUT_MS)
  }

  /** Stops the node's announcement, then the node. */
  async stop (peerId: string): Promise<void> {
    const host = this.hostOf(peerId)
    this.where.delete(peerId)
    host.nodes--
    await host.request({ op: 'stop', peerId }, STOP_TIMEOUT_MS)
  }

  /** Each host's event-loop lag since it began or the last reset, in host order; `reset` starts a new measurement. */
  async lags (reset: boolean): Promise<EventLoopLag[]> {
    return await Promise.all(this.hosts.map(async (h) => await h.request<EventLoopLag>({ op: 'lag', reset }, LAG_TIMEOUT_MS)))
  }

  /** Disconnects every host (each exits, closing its nodes' sockets); SIGKILLs any still there after a while. */
  async close (): Promise<void> {
    for (const h of this.hosts) if (h.child.connected) h.child.disconnect()
    const timer = setTimeout(() => { this.kill() }, EXIT_TIMEOUT_MS)
    await Promise.all(this.hosts.map(async (h) => await h.gone))
    clearTimeout(timer)
  }

  /** SIGKILLs every host still running. */
  kill (): void {
    for (const h of this.hosts) if (h.child.exitCode === null && h.child.signalCode === null) h.child.kill('SIGKILL')
  }

  private hostOf (peerId: string): Host {
    const host = this.where.get(peerId)
    if (host === undefined) throw new DhtHostError(`no host runs node ${peerId}`)
    return host
  }
}
