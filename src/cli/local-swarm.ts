// Local swarms of real `strata peer` processes (demo, chaos, end-to-end tests): start them,
// wait for their ready lines, watch their events, kill them.
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const STRATA_BIN = fileURLToPath(new URL('../../bin/strata.js', import.meta.url))

export interface PeerEventLine { event: string, [k: string]: any }

export class PeerProcess {
  readonly events: PeerEventLine[] = []
  stderr = ''
  peerId = ''
  multiaddrs: string[] = []
  blocks: [number, number] = [0, 0]
  readonly exited: Promise<number | null>
  private readonly waiters = new Set<() => void>()

  constructor (readonly proc: ChildProcess, readonly label: string) {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      try { this.events.push(JSON.parse(line)) } catch { return }
      for (const w of this.waiters) w()
    })
    proc.stderr!.on('data', (d: Buffer) => { this.stderr += d.toString() })
    this.exited = new Promise((resolve) => proc.on('exit', (code) => { for (const w of this.waiters) w(); resolve(code) }))
  }

  get running (): boolean { return this.proc.exitCode === null && this.proc.signalCode === null }

  /** Resolves with the first event matching `pred` (past or future); rejects after `timeoutMs`. */
  async waitFor (pred: (e: PeerEventLine) => boolean, timeoutMs = 30_000): Promise<PeerEventLine> {
    return await new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = this.events.find(pred)
        if (hit !== undefined) { done(); resolve(hit) } else if (!this.running) { done(); reject(new Error(`${this.label} exited (${this.proc.exitCode ?? this.proc.signalCode}) before the awaited event\n${this.stderr}`)) }
      }
      const timer = setTimeout(() => { done(); reject(new Error(`${this.label}: timed out after ${timeoutMs} ms waiting for an event\n${this.stderr}`)) }, timeoutMs)
      const done = (): void => { clearTimeout(timer); this.waiters.delete(check) }
      this.waiters.add(check)
      check()
    })
  }

  kill (signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.running) this.proc.kill(signal)
  }
}

/** Where a `strata` process runs: a Linux network namespace (needs root), another CLI entry point. */
export interface SpawnPlace {
  /** run inside this network namespace (`ip netns exec`) */
  netns?: string
  /** the CLI to run (default: this checkout's bin/strata.js; e.g. an installed package's bin) */
  bin?: string
}

/** Runs `strata <args>` where `place` says. */
export function spawnStrata (args: string[], place: SpawnPlace = {}): ChildProcess {
  const argv = [process.execPath, place.bin ?? STRATA_BIN, ...args]
  // `ip netns exec` execs the command: the child's pid is node's, so kill() reaches it
  return place.netns === undefined
    ? spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('ip', ['netns', 'exec', place.netns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Starts `strata peer … --json` where `place` says and waits for its ready line. */
export async function startPeer (modelDir: string, args: string[], label = 'peer', timeoutMs = 60_000, place: SpawnPlace = {}): Promise<PeerProcess> {
  return await startReady(spawnStrata(['peer', '--model', modelDir, '--json', ...args], place), label, timeoutMs)
}

/** Starts `strata relay … --json` where `place` says and waits for its ready line. */
export async function startRelay (args: string[], label = 'relay', timeoutMs = 60_000, place: SpawnPlace = {}): Promise<PeerProcess> {
  return await startReady(spawnStrata(['relay', '--json', ...args], place), label, timeoutMs)
}

async function startReady (proc: ChildProcess, label: string, timeoutMs: number): Promise<PeerProcess> {
  const p = new PeerProcess(proc, label)
  try {
    const ready = await p.waitFor((e) => e.event === 'ready', timeoutMs)
    p.peerId = ready.peerId
    p.multiaddrs = ready.multiaddrs
    p.blocks = ready.blocks ?? [0, 0]
    return p
  } catch (err) {
    p.kill()
    throw err
  }
}

export interface TestSwarm { bootstrap: string, peers: PeerProcess[] }

export interface SwarmStartOptions {
  /** flags every peer gets (after `extra[i]`) */
  flags?: string[]
  /** how long each peer may take to be ready (default 60 s) */
  timeoutMs?: number
  /** start the joining peers one after another (each loads its span alone) instead of together */
  oneAtATime?: boolean
}

/** `n` contiguous spans covering `layers` blocks, as even as whole blocks allow. */
export function evenSpans (layers: number, n: number): Array<[number, number]> {
  const cut = (i: number): number => Math.round((i * layers) / n)
  return Array.from({ length: n }, (_, i) => [cut(i), cut(i + 1)])
}

/**
 * Starts one peer per span: the first one is the bootstrap peer, the others join through it.
 * `extra[i]` adds flags to peer i.
 */
export async function startSwarm (modelDir: string, spans: Array<[number, number]>, extra: string[][] = [], o: SwarmStartOptions = {}): Promise<TestSwarm> {
  const peers: PeerProcess[] = []
  const start = async ([a, b]: [number, number], i: number, bootstrap: string[]): Promise<PeerProcess> =>
    await startPeer(modelDir, ['--blocks', `${a}:${b}`, ...bootstrap, ...(extra[i] ?? []), ...(o.flags ?? [])], `peer[${a},${b})`, o.timeoutMs)
  try {
    peers.push(await start(spans[0], 0, []))
    const bootstrap = peers[0].multiaddrs[0]
    const joining = spans.slice(1).map((span, i) => async () => await start(span, i + 1, ['--bootstrap', bootstrap]))
    if (o.oneAtATime === true) {
      for (const join of joining) peers.push(await join())
    } else {
      // settle every start before failing, so that no peer that came up late is left running
      const joined = await Promise.allSettled(joining.map(async (join) => await join()))
      for (const j of joined) if (j.status === 'fulfilled') peers.push(j.value)
      const failed = joined.find((j) => j.status === 'rejected')
      if (failed !== undefined) throw failed.reason
    }
    return { bootstrap, peers }
  } catch (err) {
    await stopPeers(peers)
    throw err
  }
}

export async function stopPeers (peers: PeerProcess[]): Promise<void> {
  for (const p of peers) p.kill('SIGKILL')
  await Promise.all(peers.map(async (p) => await p.exited))
}

/** A running `strata generate --json` whose events can be awaited one by one. */
export class GenerateProcess {
  readonly events: PeerEventLine[] = []
  stderr = ''
  readonly exited: Promise<number | null>
  private readonly peer: PeerProcess

  constructor (args: string[], place: SpawnPlace = {}) {
    const proc = spawnStrata(['generate', '--json', ...args], place)
    this.peer = new PeerProcess(proc, 'generate')
    this.events = this.peer.events
    this.exited = this.peer.exited
  }

  get errors (): string { return this.peer.stderr }

  async waitFor (pred: (e: PeerEventLine) => boolean, timeoutMs = 60_000): Promise<PeerEventLine> {
    return await this.peer.waitFor(pred, timeoutMs)
  }

  kill (): void { this.peer.kill('SIGKILL') }
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for a peer's --listen behind a proxy). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo
      s.close(() => { resolve(port) })
    })
  })
}
