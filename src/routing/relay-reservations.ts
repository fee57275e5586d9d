// Keeps a node behind NAT reserved on the relays it listens through, as a libp2p service.
//
// circuit-relay-v2 reserves a slot when the node starts listening on `<relay>/p2p-circuit` and
// refreshes it before it expires, but when the connection to the relay closes (the relay
// restarted, or the refresh failed) it drops the slot and the node's relay address for good:
// nothing reserves again. Here, whenever a relay listener has lost its addresses and the node is
// connected to that relay again (the bootstrap keeper redials it), the same listener listens
// again, which reserves a new slot; a failed reservation is retried with capped back-off while
// connected.
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { delay } from './abort.ts'
import type { Logger } from './logger.ts'
import type { Connection, Libp2pEvents, Listener, PeerId, Startable, TypedEventTarget } from '@libp2p/interface'

export interface RelayReservationsInit {
  /** the circuit listen addresses, `<relay multiaddr with /p2p/<id>>/p2p-circuit` */
  relays: string[]
  log: Logger
  /** first retry delay after a failed reservation while connected, ms (default 500) */
  minBackoffMs?: number
  /** longest retry delay, ms (default 30 000) */
  maxBackoffMs?: number
}

export interface RelayReservationsComponents {
  events: TypedEventTarget<Libp2pEvents>
  connectionManager: { getConnections(peerId?: PeerId): Connection[] }
}

interface Relay {
  /** what the node listens on: `<relay>/p2p-circuit` */
  listenAddr: Multiaddr
  /** the relay's peer id, as a string */
  peer: string
  /** the listener holding (or that held) this relay's slot, once seen */
  listener?: Listener
  /** a reservation attempt loop is running */
  renewing: boolean
}

class RelayReservations implements Startable {
  private readonly relays: Relay[]
  private readonly log: Logger
  private readonly minBackoffMs: number
  private readonly maxBackoffMs: number
  private controller = new AbortController()

  constructor (private readonly components: RelayReservationsComponents, init: RelayReservationsInit) {
    this.log = init.log
    this.minBackoffMs = init.minBackoffMs ?? 500
    this.maxBackoffMs = init.maxBackoffMs ?? 30_000
    this.relays = init.relays.flatMap((a) => {
      const listenAddr = multiaddr(a)
      const peer = listenAddr.decapsulate('/p2p-circuit').getComponents().findLast((c) => c.name === 'p2p')?.value
      return peer === undefined ? [] : [{ listenAddr, peer, renewing: false }]
    })
    this.onListening = this.onListening.bind(this)
    this.onConnect = this.onConnect.bind(this)
  }

  readonly [Symbol.toStringTag] = 'strata/relay-reservations'

  start (): void {
    this.controller = new AbortController()
    this.components.events.addEventListener('transport:listening', this.onListening)
    this.components.events.addEventListener('peer:connect', this.onConnect)
  }

  stop (): void {
    this.controller.abort()
    this.components.events.removeEventListener('transport:listening', this.onListening)
    this.components.events.removeEventListener('peer:connect', this.onConnect)
  }

  /** a listener's addresses changed: remember which one holds which relay; renew lost slots */
  private onListening (evt: CustomEvent<Listener>): void {
    const listener = evt.detail
    const addrs = listener.getAddrs().map(String)
    for (const r of this.relays) {
      if (addrs.some((a) => a.includes(`/p2p/${r.peer}/p2p-circuit`))) r.listener = listener
      else if (r.listener === listener) {
        this.log.warn({ relay: r.listenAddr.toString() }, 'lost the relay slot: reserving again once connected to the relay')
        this.renew(r)
      }
    }
  }

  private onConnect (evt: CustomEvent<PeerId>): void {
    const peer = evt.detail.toString()
    for (const r of this.relays) if (r.peer === peer) this.renew(r)
  }

  private held (r: Relay): boolean {
    return r.listener === undefined || r.listener.getAddrs().length > 0
  }

  private connected (r: Relay): boolean {
    return this.components.connectionManager.getConnections().some((c) => c.remotePeer.toString() === r.peer && c.status === 'open' && c.limits === undefined)
  }

  /** Listens on the relay again until the slot is back, while connected to it. */
  private renew (r: Relay): void {
    if (r.renewing || this.held(r) || !this.connected(r)) return
    r.renewing = true
    const signal = this.controller.signal
    void (async () => {
      let backoff = this.minBackoffMs
      try {
        while (!signal.aborted && !this.held(r) && this.connected(r)) {
          try {
            await r.listener!.listen(r.listenAddr)
          } catch (err) {
            this.log.warn({ err, relay: r.listenAddr.toString(), retryMs: backoff }, 'could not reserve a relay slot again')
          }
          if (this.held(r)) {
            this.log.info({ relay: r.listenAddr.toString(), addrs: r.listener!.getAddrs().map(String) }, 'reserved a relay slot again')
            break
          }
          await delay(backoff, signal)
          backoff = Math.min(backoff * 2, this.maxBackoffMs)
        }
      } catch (err) {
        // delay() rejects only when the node stops
        if (!signal.aborted) this.log.error({ err }, 'relay slot renewal failed')
      } finally {
        r.renewing = false
      }
    })()
  }
}

/** libp2p service factory: `services: { relayReservations: relayReservations({ relays, log }) }`. */
export function relayReservations (init: RelayReservationsInit): (components: RelayReservationsComponents) => Startable {
  return (components) => new RelayReservations(components, init)
}
