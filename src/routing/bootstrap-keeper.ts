// Keeps a node connected to its bootstrap peers, as a libp2p service.
//
// @libp2p/bootstrap dials its list once, a second after start, and never retries a failed first
// dial (e.g. a peer started just before its bootstrap node); libp2p's reconnect queue only acts on
// disconnects and gives up after five tries. Here every bootstrap peer is dialled as soon as the
// node has started and redialled with capped, jittered exponential back-off whenever it is not
// connected, for as long as the node runs. Once connected, nothing runs until it disconnects.
// A bootstrap address may name its peer id (…/p2p/<id>: only that peer is accepted) or not (a
// fixed address, e.g. a compose service: whoever answers there is the bootstrap peer; its id is
// learnt from the first connection, authenticated by noise like any other).
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { delay, withTimeout } from './abort.ts'
import type { Logger } from './logger.ts'
import type { Connection, DialTarget, Libp2pEvents, PeerId, PeerStore, Startable, TypedEventTarget, AbortOptions } from '@libp2p/interface'

export interface BootstrapKeeperInit {
  /** bootstrap multiaddrs, with or without /p2p/<peer id> */
  list: string[]
  log: Logger
  /** first retry delay, ms (default 200) */
  minBackoffMs?: number
  /** longest retry delay, ms (default 10 000) */
  maxBackoffMs?: number
  /** one dial attempt may take this long, ms (default 5 000) */
  dialTimeoutMs?: number
}

export interface BootstrapKeeperComponents {
  peerId: PeerId
  peerStore: PeerStore
  events: TypedEventTarget<Libp2pEvents>
  connectionManager: {
    openConnection(peer: DialTarget, options?: AbortOptions): Promise<Connection>
    getConnections(peerId?: PeerId): Connection[]
  }
}

/** Bootstrap peers get this peer-store tag so the connection pruner keeps them. */
const BOOTSTRAP_TAG = 'strata-bootstrap'
const BOOTSTRAP_TAG_VALUE = 50

interface Target {
  /** unknown until connected when the address names none */
  peerId?: PeerId
  addr: Multiaddr
  /** the address names the peer id: only that peer is accepted there */
  pinned: boolean
}

/** Invalid bootstrap multiaddr (unparseable, or without a /p2p/ peer id). */
export class BootstrapAddressError extends Error {
  override name = 'BootstrapAddressError'
}

class BootstrapKeeper implements Startable {
  private readonly components: BootstrapKeeperComponents
  private readonly targets: Target[]
  private readonly log: Logger
  private readonly minBackoffMs: number
  private readonly maxBackoffMs: number
  private readonly dialTimeoutMs: number
  /** peers (by id string) with a dial loop running */
  private readonly dialling = new Set<string>()
  private controller = new AbortController()

  constructor (components: BootstrapKeeperComponents, init: BootstrapKeeperInit) {
    this.components = components
    this.log = init.log
    this.minBackoffMs = init.minBackoffMs ?? 200
    this.maxBackoffMs = init.maxBackoffMs ?? 10_000
    this.dialTimeoutMs = init.dialTimeoutMs ?? 5_000
    this.targets = init.list.map(parseBootstrapAddr).filter((t) => t.peerId?.equals(components.peerId) !== true)
    this.onDisconnect = this.onDisconnect.bind(this)
  }

  start (): void {
    this.controller = new AbortController()
    this.components.events.addEventListener('peer:disconnect', this.onDisconnect)
  }

  afterStart (): void {
    for (const target of this.targets) {
      void this.keep(target)
    }
  }

  stop (): void {
    this.controller.abort()
    this.components.events.removeEventListener('peer:disconnect', this.onDisconnect)
  }

  private onDisconnect (evt: CustomEvent<PeerId>): void {
    const target = this.targets.find((t) => t.peerId?.equals(evt.detail) === true)
    if (target != null) {
      this.log.debug({ peer: evt.detail.toString() }, 'bootstrap peer disconnected, redialling')
      // an address without an id is redialled as an address: a restarted peer there may have a new id
      if (!target.pinned) target.peerId = undefined
      void this.keep(target)
    }
  }

  /** Dials `target` until connected (or the node stops); at most one loop per peer. */
  private async keep (target: Target): Promise<void> {
    const signal = this.controller.signal
    const id = target.peerId?.toString() ?? target.addr.toString()
    if (signal.aborted || this.dialling.has(id)) {
      return
    }
    this.dialling.add(id)
    try {
      if (target.peerId !== undefined) await this.remember(target.peerId, target.addr, signal)
      for (let attempt = 0; ; attempt++) {
        if (target.peerId !== undefined && this.components.connectionManager.getConnections(target.peerId).length > 0) {
          return
        }
        try {
          const connection = await withTimeout(this.dialTimeoutMs, signal, async (deadline) =>
            await this.components.connectionManager.openConnection(target.peerId ?? target.addr, { signal: deadline }))
          if (target.peerId === undefined) {
            // an address without an id: whoever answered there is the bootstrap peer from now on
            target.peerId = connection.remotePeer
            await this.remember(target.peerId, target.addr, signal)
          }
          this.log.debug({ peer: target.peerId.toString(), addr: target.addr.toString(), attempt }, 'connected to bootstrap peer')
          return
        } catch (err) {
          signal.throwIfAborted()
          this.log.debug({ peer: id, attempt, err: (err as Error).message }, 'bootstrap dial failed')
        }
        await delay(this.backoff(attempt), signal)
      }
    } catch (err) {
      if (!signal.aborted) {
        this.log.warn({ peer: id, err: (err as Error).message }, 'stopped dialling bootstrap peer')
      }
    } finally {
      this.dialling.delete(id)
    }
  }

  /** Records a bootstrap peer's address and tags it, so the connection pruner keeps it. */
  private async remember (peerId: PeerId, addr: Multiaddr, signal: AbortSignal): Promise<void> {
    await this.components.peerStore.merge(peerId, {
      multiaddrs: [addr],
      tags: { [BOOTSTRAP_TAG]: { value: BOOTSTRAP_TAG_VALUE } }
    }, { signal })
  }

  private backoff (attempt: number): number {
    const base = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** Math.min(attempt, 16))
    return base * (0.8 + 0.4 * Math.random())
  }
}

function parseBootstrapAddr (addr: string): Target {
  let ma: Multiaddr
  try {
    ma = multiaddr(addr)
  } catch (err) {
    throw new BootstrapAddressError(`invalid bootstrap multiaddr ${addr}: ${(err as Error).message}`)
  }
  const parts = ma.getComponents()
  if (!parts.some((c) => c.name === 'tcp')) {
    throw new BootstrapAddressError(`bootstrap multiaddr ${addr} has no /tcp/<port>: give e.g. /ip4/10.0.0.1/tcp/4001 or /dns4/host/tcp/4001, optionally ending in /p2p/<peer id>`)
  }
  const id = parts.findLast((c) => c.name === 'p2p')?.value
  let peerId: PeerId | undefined
  try {
    peerId = id == null ? undefined : peerIdFromString(id)
  } catch (err) {
    throw new BootstrapAddressError(`bootstrap multiaddr ${addr} names an invalid peer id: ${(err as Error).message}`)
  }
  return { peerId, addr: ma, pinned: peerId !== undefined }
}

/** libp2p service factory: `services: { bootstrap: bootstrapKeeper({ list, log }) }`. */
export function bootstrapKeeper (init: BootstrapKeeperInit): (components: BootstrapKeeperComponents) => Startable {
  return (components) => new BootstrapKeeper(components, init)
}
