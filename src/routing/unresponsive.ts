// Providers that did not answer a record probe in time. A host that vanished without a word stays
// a provider in the DHT for up to PROVIDER_TTL_MS, and a dial to it hangs until the prober gives
// up: without a memory, every discovery in those minutes would wait that long for it again (on
// loopback a dead port refuses at once; across the internet it is silent).
//
// Discovery does not wait for a marked peer. It checks it again in the background instead, one
// check at a time, and a check that succeeds clears the mark, so the next discovery includes the
// peer again. A client whose own network dropped for a moment therefore finds its peers again
// as soon as it is back, not a minute later.

/** a probe unanswered for this long marks its peer, ms */
export const UNRESPONSIVE_AFTER_MS = 1_000
/** how long a mark lasts without a successful check, ms */
export const UNRESPONSIVE_SKIP_MS = 60_000
/** marks kept at most (the oldest go first): memory stays bounded however many ids a flood of fake providers uses */
export const MAX_UNRESPONSIVE_MARKS = 4096

/** Peers of one node whose probes went unanswered, each until when it is skipped. */
export class UnresponsivePeers {
  private readonly until = new Map<string, number>()
  private readonly checking = new Set<string>()

  mark (peerId: string, now = Date.now()): void {
    this.until.delete(peerId)
    if (this.until.size >= MAX_UNRESPONSIVE_MARKS) this.until.delete(this.until.keys().next().value as string)
    this.until.set(peerId, now + UNRESPONSIVE_SKIP_MS)
  }

  /** peers marked now (expired marks included until they are next looked at) */
  get size (): number { return this.until.size }

  /** whether discovery should go on without waiting for `peerId` now */
  skips (peerId: string, now = Date.now()): boolean {
    const until = this.until.get(peerId)
    if (until === undefined) return false
    if (until > now) return true
    this.until.delete(peerId)
    return false
  }

  /** Checks a marked peer with `probe` unless a check is running; its mark goes when `probe` answers true. */
  recheck (peerId: string, probe: () => Promise<boolean>): void {
    if (this.checking.has(peerId)) return
    this.checking.add(peerId)
    void probe().then((answered) => {
      if (answered) this.until.delete(peerId)
    }, () => {}).finally(() => { this.checking.delete(peerId) })
  }
}

const byNode = new WeakMap<object, UnresponsivePeers>()

/** The memory of `node` (one per node, made on first use). */
export function unresponsivePeers (node: object): UnresponsivePeers {
  let peers = byNode.get(node)
  if (peers === undefined) {
    peers = new UnresponsivePeers()
    byNode.set(node, peers)
  }
  return peers
}
