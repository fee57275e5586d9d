// Confirms the public addresses of the first node of a public swarm, as a libp2p service.
//
// Every other node learns which of its addresses others can dial from AutoNAT v2
// (@libp2p/autonat-v2, see node.ts): a node it is connected to dials the address back on a new
// connection and reports; libp2p announces a public listen address only once that succeeded. The
// first node (a bootstrap/relay node started without --bootstrap) has nobody to ask, so it
// confirms the public TCP addresses it binds itself; AutoNAT runs on it too and serves the nodes
// that join. What was measured in the namespace test (test/e2e/nat.e2e.spec.ts):
// - a second public node joining through the first is dialled back and confirmed within about a
//   second of connecting (listening on its own address, its connection to the first node leaves
//   from the first node's address, so it also passes the anti-amplification data exchange), and
//   turns relaying on (relay-when-public.ts);
// - a public node whose port drops new inbound connections gets `success 0 failure 1` after the
//   dial-back times out (~6 s) and announces nothing (a peer fails to start with a clear error);
// - a node behind NAT has no candidate to test: its listen addresses are private, and js-libp2p's
//   identify drops every observed TCP address (identify.js, js-libp2p issue #2620: TCP dials do
//   not leave from the listening port, so the observed port is useless). It is reached through
//   its relay slot, and DCUtR between two such nodes has no address to punch to (README).
// AutoNAT v1 (@libp2p/autonat 3.0.28) was tried before and dropped: its dial-back reused the
// connection the request came on and closed it, so the bootstrap node dropped every public client
// right after identify.
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Libp2pEvents, Startable, TypedEventTarget } from '@libp2p/interface'
import { addressScope, isRelayed } from './reachability.ts'

export interface PublicAddressComponents {
  addressManager: {
    getAddressesWithMetadata(): Array<{ multiaddr: Multiaddr, verified: boolean }>
    confirmObservedAddr(addr: Multiaddr, options?: { type?: 'transport', ttl?: number }): void
  }
  events: TypedEventTarget<Libp2pEvents>
}

/** a confirmation lasts this long, ms (re-done whenever listeners change) */
const CONFIRMED_TTL_MS = 365 * 24 * 3_600_000

class PublicAddresses implements Startable {
  constructor (private readonly components: PublicAddressComponents) {
    this.confirm = this.confirm.bind(this)
  }

  start (): void {
    this.components.events.addEventListener('transport:listening', this.confirm)
  }

  afterStart (): void {
    this.confirm()
  }

  stop (): void {
    this.components.events.removeEventListener('transport:listening', this.confirm)
  }

  private confirm (): void {
    for (const { multiaddr, verified } of this.components.addressManager.getAddressesWithMetadata()) {
      if (!verified && !isRelayed(multiaddr) && addressScope(multiaddr) === 'public') {
        this.components.addressManager.confirmObservedAddr(multiaddr, { type: 'transport', ttl: CONFIRMED_TTL_MS })
      }
    }
  }
}

/** libp2p service factory for the first node of a public swarm: `services: { publicAddresses: publicAddresses() }`. */
export function publicAddresses (): (components: PublicAddressComponents) => Startable {
  return (components) => new PublicAddresses(components)
}
