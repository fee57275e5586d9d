// A small internet on one machine, from Linux network namespaces (needs root, iproute2, nftables):
//
//   <p>-pub: the "internet", a bridge with 198.20.0.1/24 and 198.20.0.2/24 (relays, public peers
//            and clients; two addresses so that a public node other than the first relay has
//            its own)
//   <p>-rN:  home router N: wan 198.20.0.(10+N) on that bridge, lan 10.N.0.1/24; forwards lan→wan
//            only, masquerading (nftables), and lets nothing in but replies
//   <p>-hN:  home N: 10.N.0.2/24, default route via its router
//
// 198.20.0.0/24 is outside every range libp2p treats as private, so the pub side counts as public
// (the RFC 5737 documentation ranges count as private there). The namespaces have no link to the
// host's network: no packet leaves them.
import { execFileSync, spawnSync } from 'node:child_process'

export const PUBLIC_HOST = '198.20.0.1'
/** a second public address in the same namespace */
export const PUBLIC_HOST_2 = '198.20.0.2'

/** Why namespace tests cannot run here, or null when they can. */
export function netnsUnavailable (): string | null {
  if (process.platform !== 'linux') return 'not Linux'
  if (process.getuid?.() !== 0) return 'not root (network namespaces need it)'
  if (spawnSync('ip', ['netns', 'list']).status !== 0) return '`ip netns` is unavailable (install iproute2)'
  if (spawnSync('nft', ['--version']).status !== 0) return 'nftables is unavailable (apt-get install nftables)'
  return null
}

function ip (...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

export class NatTopology {
  readonly pub: string
  readonly homes: string[] = []
  private readonly names: string[] = []

  private constructor (readonly prefix: string) {
    this.pub = `${prefix}-pub`
  }

  /** Builds the public namespace and `homes` NATed homes; tears down what it made on failure. */
  static create (homes: number): NatTopology {
    const t = new NatTopology(`strata${process.pid}${Math.random().toString(36).slice(2, 6)}`)
    try {
      t.add(t.pub)
      ip('-n', t.pub, 'link', 'add', 'br0', 'type', 'bridge')
      ip('-n', t.pub, 'addr', 'add', `${PUBLIC_HOST}/24`, 'dev', 'br0')
      ip('-n', t.pub, 'addr', 'add', `${PUBLIC_HOST_2}/24`, 'dev', 'br0')
      ip('-n', t.pub, 'link', 'set', 'br0', 'up')
      for (let i = 1; i <= homes; i++) t.addHome(i)
      return t
    } catch (err) {
      t.destroy()
      throw err
    }
  }

  /** the router's public address of home `n` (1-based) */
  routerAddress (n: number): string { return `198.20.0.${10 + n}` }
  /** the private address of home `n` */
  homeAddress (n: number): string { return `10.${n}.0.2` }

  private add (ns: string): void {
    ip('netns', 'add', ns)
    this.names.push(ns)
    ip('-n', ns, 'link', 'set', 'lo', 'up')
  }

  private addHome (n: number): void {
    const router = `${this.prefix}-r${n}`
    const home = `${this.prefix}-h${n}`
    this.add(router)
    this.add(home)
    ip('link', 'add', 'wan', 'netns', router, 'type', 'veth', 'peer', 'name', `v${n}`, 'netns', this.pub)
    ip('-n', this.pub, 'link', 'set', `v${n}`, 'master', 'br0')
    ip('-n', this.pub, 'link', 'set', `v${n}`, 'up')
    ip('-n', router, 'addr', 'add', `${this.routerAddress(n)}/24`, 'dev', 'wan')
    ip('-n', router, 'link', 'set', 'wan', 'up')
    ip('link', 'add', 'lan', 'netns', router, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', home)
    ip('-n', router, 'addr', 'add', `10.${n}.0.1/24`, 'dev', 'lan')
    ip('-n', router, 'link', 'set', 'lan', 'up')
    ip('-n', home, 'addr', 'add', `${this.homeAddress(n)}/24`, 'dev', 'eth0')
    ip('-n', home, 'link', 'set', 'eth0', 'up')
    ip('-n', home, 'route', 'add', 'default', 'via', `10.${n}.0.1`)
    execFileSync('ip', ['netns', 'exec', router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'])
    execFileSync('ip', ['netns', 'exec', router, 'nft', '-f', '-'], {
      input: `table ip strata_nat {
  chain nat_out { type nat hook postrouting priority srcnat; oifname "wan" masquerade; }
  chain filter_fwd { type filter hook forward priority filter; policy drop; iifname "lan" oifname "wan" accept; ct state established,related accept; }
}
`
    })
    this.homes.push(home)
  }

  /** Drops new inbound TCP connections to `port` in namespace `ns` (a firewalled host). */
  blockInbound (ns: string, port: number): void {
    execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], {
      input: `table inet strata_fw_${port} {
  chain input { type filter hook input priority filter; tcp dport ${port} ct state new drop; }
}
`
    })
  }

  /** Deletes every namespace made (their interfaces and rules go with them). */
  destroy (): void {
    for (const ns of this.names.reverse()) spawnSync('ip', ['netns', 'delete', ns])
    this.names.length = 0
  }
}
