// The libp2p node both the peer daemon and the client run: TCP + noise + yamux, identify, ping,
// and a strata-only Kademlia DHT, kept connected to a bootstrap list.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify, type Identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper, type KadDHT, type SingleKadDHT } from '@libp2p/kad-dht'
import { ping, type Ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { bootstrapKeeper } from './bootstrap-keeper.ts'
import { componentLogger, type Logger } from './logger.ts'
import type { Libp2p, PrivateKey, Startable } from '@libp2p/interface'

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

export interface SwarmNodeOptions {
  /** multiaddrs to listen on (default ['/ip4/127.0.0.1/tcp/0']) */
  listen?: string[]
  /** bootstrap multiaddrs, each ending in /p2p/<peer id>; kept connected (default none) */
  bootstrap?: string[]
  /** the node's identity (default a fresh Ed25519 key; see loadOrCreateIdentity) */
  privateKey?: PrivateKey
  /**
   * 'server': answer DHT queries and hold provider records (peers, bootstrap nodes);
   * 'client': only ask, stay out of others' routing tables (short-lived clients). Default 'server'.
   */
  dhtMode?: 'server' | 'client'
  /** parent logger (default the strata root logger) */
  logger?: Logger
}

export interface SwarmServices extends Record<string, unknown> {
  identify: Identify
  ping: Ping
  dht: KadDHT
}

export type SwarmNode = Libp2p<SwarmServices>

/** Creates and starts a swarm node. Stop it with `node.stop()`. */
export async function createSwarmNode (opts: SwarmNodeOptions = {}): Promise<SwarmNode> {
  const log = componentLogger('routing:node', opts.logger)
  const bootstrap = opts.bootstrap ?? []
  const services = {
    identify: identify(),
    ping: ping(),
    dht: kadDHT({
      protocol: DHT_PROTOCOL,
      clientMode: opts.dhtMode === 'client',
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
    ...(bootstrap.length > 0 ? { bootstrap: bootstrapKeeper({ list: bootstrap, log }) } : {})
  }
  const node = await createLibp2p<SwarmServices & { bootstrap?: Startable }>({
    privateKey: opts.privateKey,
    addresses: { listen: opts.listen ?? ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      // local processes (tests, several peers on one host) are exempt from the per-host
      // inbound rate limit of 5 connections/s, which a busy swarm on one machine exceeds
      allow: ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128']
    },
    services
  })
  log.debug({ peerId: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) }, 'swarm node started')
  return node
}

/** Resolves once the node's DHT routing table holds at least `minPeers` peers; rejects on abort. */
export async function waitForRoutingTable (node: SwarmNode, minPeers: number, signal: AbortSignal): Promise<void> {
  const table = observableRoutingTable(node.services.dht)
  if (table.size >= minPeers) {
    return
  }
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      table.removeEventListener('peer:add', onAdd)
      signal.removeEventListener('abort', onAbort)
    }
    const onAdd = (): void => {
      if (table.size >= minPeers) {
        cleanup()
        resolve()
      }
    }
    const onAbort = (): void => {
      cleanup()
      reject(signal.reason)
    }
    table.addEventListener('peer:add', onAdd)
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
