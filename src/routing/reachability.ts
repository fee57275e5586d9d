// Which addresses a node may announce, whether it sits behind NAT, and the relay limits it grants.
//
// A swarm has a scope: the widest scope of its bootstrap addresses (or, for the first node, of
// its own listen addresses). A loopback swarm (tests, demos on one host) announces everything; a
// LAN swarm drops loopback addresses; a public swarm announces only public ones: addresses
// others can dial. libp2p lists a public listen address only once it is confirmed: by AutoNAT v2
// (another node dialled it back), or for the first node of a swarm by itself
// (public-addresses.ts). A node with such a direct address
// drops its relay (/p2p-circuit) addresses; a node without one is reached through the relay
// it reserved a slot on.
import { networkInterfaces } from 'node:os'
import { isLoopback, isPrivate, isLinkLocal } from '@libp2p/utils'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'

export type AddressScope = 'loopback' | 'private' | 'public'

const rank: Record<AddressScope, number> = { loopback: 0, private: 1, public: 2 }

/** A relay address (…/p2p-circuit…) has the scope of the relay's own transport address. */
export function isRelayed (ma: Multiaddr): boolean {
  return ma.getComponents().some((c) => c.name === 'p2p-circuit')
}

/** The IP of a direct TCP address (a listen address, a connection's remote end); null for a relayed or non-TCP one. */
export function tcpHostOf (ma: Multiaddr): string | null {
  const parts = ma.getComponents()
  if (parts.some((c) => c.name === 'p2p-circuit') || !parts.some((c) => c.name === 'tcp')) return null
  return parts.find((c) => c.name === 'ip4' || c.name === 'ip6')?.value ?? null
}

/** Scope of one address: who can dial it. Unspecified hosts (0.0.0.0, ::) count as private. */
export function addressScope (ma: Multiaddr): AddressScope {
  const [first] = ma.getComponents()
  if (first === undefined) return 'loopback'
  if ((first.name === 'ip4' || first.name === 'ip6') && (first.value === '0.0.0.0' || first.value === '::')) return 'private'
  if (isLoopback(ma)) return 'loopback'
  if (isPrivate(ma) || isLinkLocal(ma)) return 'private'
  return 'public'
}

/** The widest scope among `addrs` (loopback when there are none). */
export function widestScope (addrs: Multiaddr[]): AddressScope {
  let scope: AddressScope = 'loopback'
  for (const a of addrs) if (rank[addressScope(a)] > rank[scope]) scope = addressScope(a)
  return scope
}

/** Scope of the swarm a node joins: its bootstrap peers', or for the first node its own listen addresses'. */
export function swarmScope (bootstrap: string[], listen: string[]): AddressScope {
  return widestScope((bootstrap.length > 0 ? bootstrap : listen).map((a) => multiaddr(a)))
}

/**
 * Keeps the addresses usable by members of a swarm of `scope`: loopback ones only in a loopback
 * swarm, private ones only up to a LAN swarm. Relay addresses go when a direct one of the same
 * reach is left.
 */
export function announceable (addrs: Multiaddr[], scope: AddressScope): Multiaddr[] {
  if (scope === 'loopback') return addrs
  const usable = addrs.filter((a) => rank[addressScope(a)] >= rank[scope])
  return usable.some((a) => !isRelayed(a)) ? usable.filter((a) => !isRelayed(a)) : usable
}

/**
 * Whether a node listening on `listen` has a public address of its own: a public listen
 * address, or for a wildcard listen address a public address on one of its interfaces.
 * Without one, a node in a public swarm is behind NAT and reaches the swarm through a relay.
 */
export function hasPublicInterface (listen: string[], interfaces = networkInterfaces()): boolean {
  const local = Object.values(interfaces).flatMap((list) => list ?? [])
  return listen.some((l) => {
    const ma = multiaddr(l)
    const scope = addressScope(ma)
    if (scope === 'public') return true
    const host = ma.getComponents()[0]?.value
    if (host !== '0.0.0.0' && host !== '::') return false
    return local.some((i) => !i.internal && (host === '::' || i.family === 'IPv4') &&
      addressScope(multiaddr(`/${i.family === 'IPv4' ? 'ip4' : 'ip6'}/${i.address}`)) === 'public')
  })
}

/**
 * What a relay grants each relayed connection. circuit-relay-v2's defaults (128 KiB, 2 min) end
 * a relayed session after ~8 tokens of a 2048-wide f32 hidden state; an inference session moves
 * 2 × hidden × 4 bytes per token per hop, e.g. 16 KiB/token at 2048 wide, 64 KiB/token at 8192.
 * 1 GiB covers ~16 000 tokens of an 8192-wide model, and an hour covers a long chat session; a
 * client whose relayed connection hits either limit re-routes like after any peer failure.
 */
export const relayLimits = {
  /** bytes both ways per relayed connection */
  dataBytes: 1n << 30n,
  /** ms per relayed connection (circuit-relay-v2 enforces this value in ms) */
  durationMs: 60 * 60_000,
  /** reservations held at once (circuit-relay-v2 default: 15) */
  maxReservations: 128
}
