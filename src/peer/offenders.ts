// Remotes that broke the wire protocol (malformed, oversized or unknown frames: nothing an honest
// strata client sends), shut out for a while: by peer id, and by IP address (an IPv4 address or
// an IPv6 /64) for direct connections — relayed ones carry the relay's address, and the host's
// own 127.0.0.1 and ::1 are shared by every local process (local swarms, tools), so they are
// banned by peer id only. As a libp2p connection gater, a banned address is refused at TCP
// accept, before any handshake costs CPU; a banned peer id right after the handshake.
import type { ConnectionGater, MultiaddrConnection, PeerId } from '@libp2p/interface'
import type { Holder } from './admission.ts'
import { remoteAddressOf } from './session-handler.ts'

/** 127.0.0.1 and ::1 (as remoteAddressOf writes its /64) */
const SHARED_LOCAL = new Set(['127.0.0.1', '0:0:0:0::/64'])

export class Offenders {
  private readonly peers = new Map<string, number>()
  private readonly ips = new Map<string, number>()

  /** `banMs` 0 bans nobody; at most `maxEntries` of each kind are remembered (the oldest go first) */
  constructor (readonly banMs: number, private readonly maxEntries = 4096) {}

  /** Shuts `holder` out until now + banMs. */
  ban (holder: Holder, now: number): void {
    if (this.banMs <= 0) return
    remember(this.peers, holder.peer, now + this.banMs, this.maxEntries)
    if (holder.ip !== '' && !SHARED_LOCAL.has(holder.ip)) remember(this.ips, holder.ip, now + this.banMs, this.maxEntries)
  }

  isPeerBanned (peer: string, now: number): boolean { return banned(this.peers, peer, now) }

  isIpBanned (ip: string, now: number): boolean { return ip !== '' && banned(this.ips, ip, now) }

  /** The libp2p connection gater enforcing the bans. */
  gater (): ConnectionGater {
    return {
      denyInboundConnection: (maConn: MultiaddrConnection) => this.isIpBanned(remoteAddressOf(maConn.remoteAddr), Date.now()),
      denyInboundEncryptedConnection: (peerId: PeerId) => this.isPeerBanned(peerId.toString(), Date.now()),
      denyInboundRelayedConnection: (_relay: PeerId, remote: PeerId) => this.isPeerBanned(remote.toString(), Date.now())
    }
  }
}

function remember (map: Map<string, number>, key: string, until: number, max: number): void {
  map.delete(key)
  map.set(key, until)
  for (const k of map.keys()) {
    if (map.size <= max) break
    map.delete(k)
  }
}

function banned (map: Map<string, number>, key: string, now: number): boolean {
  const until = map.get(key)
  if (until === undefined) return false
  if (until > now) return true
  map.delete(key)
  return false
}
