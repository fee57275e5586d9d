// Announces the public addresses a node listens on, as a libp2p service.
//
// libp2p lists a public listen address only once something has confirmed it is reachable; its
// AutoNAT v1 service (@libp2p/autonat 3.0.28) would, but its dial-back reuses the connection
// the request came on, finds the remote address differs and closes that connection: in the
// namespace test the bootstrap node dropped every public client right after identify, and
// they redialled in a loop. So a node that binds a public interface address (reachability.ts:
// hasPublicInterface) confirms its own public TCP listen addresses; nodes without one are
// behind NAT and are reached through their relay slot.
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

/** libp2p service factory: `services: { publicAddresses: publicAddresses() }`. */
export function publicAddresses (): (components: PublicAddressComponents) => Startable {
  return (components) => new PublicAddresses(components)
}
