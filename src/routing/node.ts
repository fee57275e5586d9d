// The libp2p node both the peer daemon and the client run: TCP + noise + yamux, identify, ping,
// and a strata-only Kademlia DHT, kept connected to a bootstrap list. For peers behind NAT:
// circuit relay v2 (dial and listen through relays; public nodes relay for others) and DCUtR
// (upgrade a relayed connection to a direct one), and AutoNAT v2 (others dial a node's public
// addresses back before it announces them). See reachability.ts for what is announced and
// public-addresses.ts for what AutoNAT does and does not settle. Yamux streams send window
// updates at half the window (yamux-window.ts).
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { autoNATv2 } from '@libp2p/autonat-v2'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { identify, type Identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper, type KadDHT, type SingleKadDHT } from '@libp2p/kad-dht'
import { ping, type Ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { bootstrapKeeper } from './bootstrap-keeper.ts'
import { componentLogger, type Logger } from './logger.ts'
import { publicAddresses } from './public-addresses.ts'
import { installHalfWindowUpdates } from './yamux-window.ts'
import { relayReservations } from './relay-reservations.ts'
import { RelayWhenPublic, relayWhenPublic } from './relay-when-public.ts'
import { announceable, hasPublicInterface, relayLimits, swarmScope, type AddressScope } from './reachability.ts'
import type { ConnectionGater, Libp2p, PrivateKey, Startable } from '@libp2p/interface'

/** Kademlia protocol id of strata swarms: never mixes with the public IPFS DHT. */
export const DHT_PROTOCOL = '/strata/kad/1.0.0'

const minute = 60_000

/**
 * DHT nodes drop provider records this long after they were last provided (ms). Announcers
 * re-provide well within it; a vanished peer's records linger at most this long (plus one sweep).
 */
export const PROVIDER_TTL_MS = 10 * minute
/** how often DHT nodes sweep expired provider records (ms) */
const PROVIDER_SWEEP_MS = minute

/**
 * What one node accepts from the network before any strata protocol sees it (libp2p's
 * connection manager and the yamux muxer). Per-remote-peer limits on the session protocol
 * itself live in peer/rate-limit.ts.
 */
export const connectionLimits = {
  /** connections at most; beyond it libp2p prunes the least valuable ones */
  maxConnections: 300,
  /** connections still in their handshake at once; more are refused */
  maxIncomingPendingConnections: 10,
  /** new inbound connections per second from one host (loopback exempt, see `allow`) */
  inboundConnectionsPerHostPerSecond: 5,
  /** a connection must finish noise + yamux negotiation within this, ms (a slow handshake is dropped) */
  inboundUpgradeTimeoutMs: 10_000,
  /** a new stream must name its protocol within this, ms */
  protocolNegotiationTimeoutMs: 10_000,
  /** streams one connection may hold open, all protocols together (yamux resets the rest) */
  inboundStreamsPerConnection: 256
}

export interface SwarmNodeOptions {
  /** multiaddrs to listen on (default ['/ip4/127.0.0.1/tcp/0'], or 0.0.0.0 with non-loopback bootstrap peers) */
  listen?: string[]
  /** bootstrap multiaddrs, with /p2p/<peer id> or without (then whoever answers there); kept connected (default none) */
  bootstrap?: string[]
  /** the node's identity (default a fresh Ed25519 key; see loadOrCreateIdentity) */
  privateKey?: PrivateKey
  /**
   * 'server': answer DHT queries and hold provider records (peers, bootstrap nodes);
   * 'client': only ask, stay out of others' routing tables (short-lived clients). Default 'server'.
   */
  dhtMode?: 'server' | 'client'
  /**
   * Relay for peers behind NAT: 'on', 'off', or 'auto' (default): on once AutoNAT has confirmed a
   * public address of the node's own (for the first node of a public swarm, which nobody can
   * check: when it binds a public interface).
   */
  relay?: RelayMode
  /**
   * Announce loopback and private addresses too. Default: only addresses members of the swarm
   * can dial (all of them in a loopback swarm, no loopback in a LAN swarm, public only otherwise).
   */
  announcePrivate?: boolean
  /**
   * Announce these addresses instead of the listening ones: where others reach this node through
   * a forwarded port, a container's mapped port or a proxy (the filter above still applies).
   */
  announce?: string[]
  /** run DCUtR: upgrade relayed connections to direct ones when possible (default true) */
  holePunch?: boolean
  /** decides which connections to refuse (default: none refused); a peer shuts out offenders with it */
  connectionGater?: ConnectionGater
  /** parent logger (default the strata root logger) */
  logger?: Logger
}

export type RelayMode = 'auto' | 'on' | 'off'

/** How a node reaches and is reached by its swarm, decided at start. */
export interface Reachability {
  /** scope of the swarm joined (from the bootstrap list, or the listen addresses for the first node) */
  scope: AddressScope
  /** the node has no public address of its own in a public swarm */
  behindNat: boolean
  /**
   * a server joining a public swarm reserves a slot on its bootstrap peers (which relay): the
   * address it announces behind NAT, or while AutoNAT has not confirmed (or refuses) its public
   * address; announceable() drops it once a direct address is confirmed
   */
  reservesRelay: boolean
  /** DHT server, client, or 'auto': server once a public address is confirmed (kad-dht switches on self:peer:update) */
  dht: 'server' | 'client' | 'auto'
  /** the node binds a public interface address: once confirmed, it announces it and is dialled directly */
  publicSelf: boolean
  /**
   * the first node of a public swarm: nobody can dial its public addresses back yet, so it
   * confirms them itself (public-addresses.ts); AutoNAT rechecks them as peers join
   */
  selfConfirmed: boolean
  /** AutoNAT v2 confirms the node's public addresses (every swarm beyond one host) */
  autoNat: boolean
  /** 'on': relays from the start; 'when-public': once AutoNAT confirms a public address; 'off' */
  relay: 'on' | 'off' | 'when-public'
}

/** Reachability of a node started with `opts`. */
export function reachabilityOf (opts: SwarmNodeOptions): Reachability {
  const listen = opts.listen ?? defaultListen(opts.bootstrap ?? [])
  const publicSelf = hasPublicInterface(listen)
  // the first node of a swarm on a public address starts a public swarm
  const scope = (opts.bootstrap ?? []).length === 0 && publicSelf ? 'public' : swarmScope(opts.bootstrap ?? [], listen)
  const mode = opts.relay ?? 'auto'
  const joins = (opts.bootstrap ?? []).length > 0
  const selfConfirmed = scope === 'public' && publicSelf && !joins
  const reservesRelay = scope === 'public' && joins && opts.dhtMode !== 'client'
  return {
    scope,
    behindNat: scope === 'public' && !publicSelf && joins,
    reservesRelay,
    // a node nobody can dial cannot answer DHT queries from strangers: it only asks (and provides)
    dht: opts.dhtMode === 'client' || (reservesRelay && !publicSelf) ? 'client' : reservesRelay ? 'auto' : 'server',
    publicSelf,
    selfConfirmed,
    autoNat: scope !== 'loopback',
    relay: mode === 'on' || (mode === 'auto' && selfConfirmed)
      ? 'on'
      : mode === 'auto' && scope !== 'loopback' && opts.dhtMode !== 'client' ? 'when-public' : 'off'
  }
}

/** Loopback for local swarms; every interface when the bootstrap peers are not on this host. */
export function defaultListen (bootstrap: string[]): string[] {
  return swarmScope(bootstrap, []) === 'loopback' ? ['/ip4/127.0.0.1/tcp/0'] : ['/ip4/0.0.0.0/tcp/0']
}

export interface SwarmServices extends Record<string, unknown> {
  identify: Identify
  ping: Ping
  dht: KadDHT
  dcutr?: unknown
  /** circuit-relay-v2's server (relay 'on'), or a RelayWhenPublic wrapping it (relay 'when-public') */
  relay?: unknown
}

export type SwarmNode = Libp2p<SwarmServices>

/** Creates and starts a swarm node. Stop it with `node.stop()`. */
export async function createSwarmNode (opts: SwarmNodeOptions = {}): Promise<SwarmNode> {
  installHalfWindowUpdates()
  const log = componentLogger('routing:node', opts.logger)
  const bootstrap = opts.bootstrap ?? []
  const reach = reachabilityOf(opts)
  const listen = opts.listen ?? defaultListen(bootstrap)
  // joining a public swarm: also listen through the bootstrap peers, which relay. Named relays, not a
  // search ('/p2p-circuit'): the search's random walk spins on an empty routing table, and
  // start fails with a clear error when a bootstrap peer refuses or cannot be reached.
  const relayListen = reach.reservesRelay ? bootstrap.map((b) => `${b}/p2p-circuit`) : []
  const services = {
    identify: identify(),
    ping: ping(),
    ...(opts.holePunch !== false ? { dcutr: dcutr() } : {}),
    ...(reach.autoNat ? { autoNAT: autoNATv2() } : {}),
    ...(reach.selfConfirmed ? { publicAddresses: publicAddresses() } : {}),
    ...(reach.relay === 'on' ? { relay: relayServer() } : {}),
    ...(reach.relay === 'when-public' ? { relay: relayWhenPublic(relayServer()) } : {}),
    dht: kadDHT({
      protocol: DHT_PROTOCOL,
      clientMode: reach.dht === 'auto' ? undefined : reach.dht === 'client',
      // keep every address: loopback/LAN swarms need private ones, internet swarms public ones
      peerInfoMapper: passthroughMapper,
      // look ourselves up as soon as the first peer is in the routing table (default after 1 s)
      initialQuerySelfInterval: 0,
      // don't hold every query until that self-query has finished (0.5–2 s while a swarm forms):
      // a lookup from the first peer finds the closest nodes anyway. This also lets queries
      // run with an empty table, so announce and discovery first wait for one peer themselves.
      allowQueryWithZeroPeers: true,
      logPrefix: 'libp2p:strata-kad',
      reprovide: {
        validity: PROVIDER_TTL_MS,
        interval: PROVIDER_SWEEP_MS,
        // our own records are refreshed by the announcer (dht.ts) long before this
        threshold: PROVIDER_TTL_MS / 4
      }
    }),
    ...(bootstrap.length > 0 ? { bootstrap: bootstrapKeeper({ list: bootstrap, log }) } : {}),
    ...(relayListen.length > 0 ? { relayReservations: relayReservations({ relays: relayListen, log }) } : {})
  }
  const node = await createLibp2p<SwarmServices & { bootstrap?: Startable }>({
    privateKey: opts.privateKey,
    connectionGater: opts.connectionGater,
    addresses: {
      listen: [...listen, ...relayListen],
      ...(opts.announce !== undefined && opts.announce.length > 0 ? { announce: opts.announce } : {}),
      announceFilter: opts.announcePrivate === true ? (addrs) => addrs : (addrs) => announceable(addrs, reach.scope)
    },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ maxInboundStreams: connectionLimits.inboundStreamsPerConnection })],
    connectionManager: {
      maxConnections: connectionLimits.maxConnections,
      maxIncomingPendingConnections: connectionLimits.maxIncomingPendingConnections,
      inboundConnectionThreshold: connectionLimits.inboundConnectionsPerHostPerSecond,
      inboundUpgradeTimeout: connectionLimits.inboundUpgradeTimeoutMs,
      inboundStreamProtocolNegotiationTimeout: connectionLimits.protocolNegotiationTimeoutMs,
      // local processes (tests, several peers on one host) are exempt from the per-host
      // inbound rate limit, which a busy swarm on one machine exceeds
      allow: ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128']
    },
    services
  })
  log.debug({ peerId: node.peerId.toString(), addrs: node.getMultiaddrs().map(String), ...reach }, 'swarm node started')
  return node
}

/** circuit-relay-v2's server with strata's limits (reachability.ts: relayLimits) */
function relayServer (): ReturnType<typeof circuitRelayServer> {
  return circuitRelayServer({
    reservations: {
      maxReservations: relayLimits.maxReservations,
      defaultDataLimit: relayLimits.dataBytes,
      defaultDurationLimit: relayLimits.durationMs
    }
  })
}

/** Whether the node relays for peers behind NAT right now. */
export function isRelaying (node: SwarmNode): boolean {
  const relay = node.services.relay
  return relay instanceof RelayWhenPublic ? relay.relaying : relay !== undefined
}

/** Resolves once the node relays for peers behind NAT (with relay 'when-public': once AutoNAT confirmed it); rejects on abort. */
export async function waitForRelaying (node: SwarmNode, signal: AbortSignal): Promise<void> {
  const relay = node.services.relay
  if (relay instanceof RelayWhenPublic) await waitUntil(relay, 'relay:start', () => relay.relaying, signal)
  else if (relay === undefined) throw new Error('this node does not relay (--relay off, or a loopback swarm)')
}

/**
 * Resolves once the node has an address to announce (joining a public swarm: once a relay slot
 * is reserved or AutoNAT confirmed a public address; otherwise once a listener is bound);
 * rejects on abort.
 */
export async function waitForAnnounceableAddress (node: SwarmNode, signal: AbortSignal): Promise<void> {
  await waitUntil(node, 'self:peer:update', () => node.getMultiaddrs().length > 0, signal)
}

/** Resolves once the node's DHT routing table holds at least `minPeers` peers; rejects on abort. */
export async function waitForRoutingTable (node: SwarmNode, minPeers: number, signal: AbortSignal): Promise<void> {
  const table = observableRoutingTable(node.services.dht)
  await waitUntil(table, 'peer:add', () => table.size >= minPeers, signal)
}

/** Resolves once `done()` holds, checked now and on each `event` of `target`; rejects on abort. */
async function waitUntil (target: EventTarget, event: string, done: () => boolean, signal: AbortSignal): Promise<void> {
  if (done()) return
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      target.removeEventListener(event, onEvent)
      signal.removeEventListener('abort', onAbort)
    }
    const onEvent = (): void => {
      if (done()) {
        cleanup()
        resolve()
      }
    }
    const onAbort = (): void => {
      cleanup()
      reject(signal.reason)
    }
    target.addEventListener(event, onEvent)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

type ObservableRoutingTable = SingleKadDHT['routingTable'] & EventTarget

// kad-dht's public type exposes only the table's size; the instance is an event emitter
// ('peer:add' / 'peer:remove'), which lets us wait without polling.
function observableRoutingTable (dht: KadDHT): ObservableRoutingTable {
  const table = (dht as Partial<SingleKadDHT>).routingTable
  if (table == null || typeof (table as Partial<EventTarget>).addEventListener !== 'function') {
    throw new TypeError('kad-dht routing table is not observable')
  }
  return table as ObservableRoutingTable
}
