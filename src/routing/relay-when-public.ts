// `--relay auto` for a node that joins a swarm: relays for peers behind NAT once AutoNAT has
// confirmed one of its public addresses (someone else dialled it back), and stops when no such
// address is left. Wraps circuit-relay-v2's server service, whose start() only registers the hop
// protocol: until then the node answers reservation requests with "protocol not supported".
import { serviceDependencies, type ComponentLogger, type Libp2pEvents, type Logger, type Startable, type TypedEventTarget } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { addressScope, isRelayed } from './reachability.ts'

export interface RelayWhenPublicComponents {
  addressManager: { getAddressesWithMetadata(): Array<{ multiaddr: Multiaddr, verified: boolean }> }
  events: TypedEventTarget<Libp2pEvents>
  logger: ComponentLogger
}

/** Whether `addrs` hold a verified public address of the node's own (not through a relay). */
export function hasConfirmedPublicAddress (addrs: Array<{ multiaddr: Multiaddr, verified: boolean }>): boolean {
  return addrs.some(({ multiaddr, verified }) => verified && !isRelayed(multiaddr) && addressScope(multiaddr) === 'public')
}

/** Events: 'relay:start' and 'relay:stop' when relaying begins and ends. */
export class RelayWhenPublic extends EventTarget implements Startable {
  private running = false
  private stopped = true
  /** serialises the inner service's start/stop */
  private pending = Promise.resolve()
  private readonly log: Logger

  constructor (private readonly components: RelayWhenPublicComponents, private readonly relay: Startable) {
    super()
    this.log = components.logger.forComponent('strata:relay-when-public')
    this.update = this.update.bind(this)
  }

  readonly [Symbol.toStringTag] = 'strata/relay-when-public'

  get [serviceDependencies] (): string[] { return ['@libp2p/autonat'] }

  /** the node relays for others now */
  get relaying (): boolean { return this.running }

  start (): void {
    this.stopped = false
    this.components.events.addEventListener('self:peer:update', this.update)
  }

  afterStart (): void { this.update() }

  async stop (): Promise<void> {
    this.stopped = true
    this.components.events.removeEventListener('self:peer:update', this.update)
    await this.pending
    if (this.running) await this.relay.stop()
    this.running = false
  }

  private update (): void {
    this.pending = this.pending.then(async () => {
      const want = !this.stopped && hasConfirmedPublicAddress(this.components.addressManager.getAddressesWithMetadata())
      if (want === this.running) return
      if (want) await this.relay.start()
      else await this.relay.stop()
      this.running = want
      this.log(want ? 'a public address is confirmed: relaying for peers behind NAT' : 'no confirmed public address left: not relaying')
      this.dispatchEvent(new Event(want ? 'relay:start' : 'relay:stop'))
    }).catch((err: unknown) => { this.log.error('could not %s relaying - %e', this.running ? 'stop' : 'start', err) })
  }
}

/** libp2p service factory wrapping a relay server factory: `relay: relayWhenPublic(circuitRelayServer(…))`. */
export function relayWhenPublic<C> (relay: (components: C) => unknown): (components: C & RelayWhenPublicComponents) => RelayWhenPublic {
  return (components) => {
    const service = relay(components)
    if (!isStartable(service)) throw new TypeError('relayWhenPublic: the wrapped relay service has no start/stop')
    return new RelayWhenPublic(components, service)
  }
}

// circuit-relay-v2 types its server as CircuitRelayService, which does not list start/stop
function isStartable (s: unknown): s is Startable {
  return typeof (s as Partial<Startable>)?.start === 'function' && typeof (s as Partial<Startable>)?.stop === 'function'
}
