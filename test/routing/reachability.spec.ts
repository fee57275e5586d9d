// Which addresses a node announces, by swarm scope; whether it is behind NAT.
import assert from 'node:assert/strict'
import { multiaddr } from '@multiformats/multiaddr'
import { addressScope, announceable, hasPublicInterface, swarmScope, tcpHostOf } from '../../src/routing/reachability.ts'
import { reachabilityOf } from '../../src/routing/index.ts'
import { hasConfirmedPublicAddress } from '../../src/routing/relay-when-public.ts'

const id = '12D3KooWFtrokdWLXBMZbrow2Myemdb1rMsrUYzvQ3zVSafqrrsr'
const relay = '12D3KooWN75k8Rdqy34YXBHbMqmaTgHkPJtumDu9Cqq9Q6rvepya'
const loop = `/ip4/127.0.0.1/tcp/4001/p2p/${id}`
const lan = `/ip4/192.168.1.5/tcp/4001/p2p/${id}`
const pub = `/ip4/198.20.0.1/tcp/4001/p2p/${id}`
const circuit = `/ip4/198.20.0.1/tcp/4001/p2p/${relay}/p2p-circuit/p2p/${id}`
const lanCircuit = `/ip4/10.0.0.1/tcp/4001/p2p/${relay}/p2p-circuit/p2p/${id}`
const strs = (xs: ReturnType<typeof multiaddr>[]): string[] => xs.map(String)

describe('reachability: announced addresses', function () {
  it('classifies addresses; a relay address has its relay\'s scope', function () {
    assert.equal(addressScope(multiaddr(loop)), 'loopback')
    assert.equal(addressScope(multiaddr(lan)), 'private')
    assert.equal(addressScope(multiaddr('/ip4/10.1.0.2/tcp/1')), 'private')
    assert.equal(addressScope(multiaddr('/ip4/0.0.0.0/tcp/0')), 'private')
    assert.equal(addressScope(multiaddr(pub)), 'public')
    assert.equal(addressScope(multiaddr(circuit)), 'public')
    assert.equal(addressScope(multiaddr(lanCircuit)), 'private')
  })

  it('the host of a direct TCP address; none for a relayed or non-TCP one', function () {
    assert.equal(tcpHostOf(multiaddr('/ip4/10.0.0.2/tcp/4001')), '10.0.0.2')
    assert.equal(tcpHostOf(multiaddr('/ip6/::1/tcp/4001/p2p/12D3KooWQC8iHVxiFrenTUeYAq2VMqLPYvCUuoCoFxMmhgdoQFHS')), '::1')
    assert.equal(tcpHostOf(multiaddr('/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWQC8iHVxiFrenTUeYAq2VMqLPYvCUuoCoFxMmhgdoQFHS/p2p-circuit')), null)
    assert.equal(tcpHostOf(multiaddr('/ip4/1.2.3.4/udp/4001/quic-v1')), null)
    assert.equal(tcpHostOf(multiaddr('/p2p-circuit')), null)
  })

  it('a loopback swarm announces everything (the local test swarms)', function () {
    const all = [loop, lan, pub].map((a) => multiaddr(a))
    assert.deepEqual(strs(announceable(all, 'loopback')), [loop, lan, pub])
  })

  it('a LAN swarm drops loopback addresses', function () {
    assert.deepEqual(strs(announceable([loop, lan].map((a) => multiaddr(a)), 'private')), [lan])
  })

  it('a public swarm gets public addresses only; relay addresses only when there is no direct one', function () {
    assert.deepEqual(strs(announceable([loop, lan, circuit, lanCircuit].map((a) => multiaddr(a)), 'public')), [circuit])
    assert.deepEqual(strs(announceable([loop, lan, pub, circuit].map((a) => multiaddr(a)), 'public')), [pub])
    assert.deepEqual(strs(announceable([loop, lan].map((a) => multiaddr(a)), 'public')), [])
  })

  it('the swarm scope comes from the bootstrap peers, or the listen addresses of the first node', function () {
    assert.equal(swarmScope([loop], ['/ip4/0.0.0.0/tcp/0']), 'loopback')
    assert.equal(swarmScope([lan], []), 'private')
    assert.equal(swarmScope([loop, pub], []), 'public')
    assert.equal(swarmScope([], ['/ip4/127.0.0.1/tcp/0']), 'loopback')
  })

  it('a wildcard listener is public when an interface has a public address', function () {
    const ifaces = (address: string): NodeJS.Dict<any[]> => ({ eth0: [{ address, family: 'IPv4', internal: false }], lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true }] })
    assert.equal(hasPublicInterface(['/ip4/0.0.0.0/tcp/0'], ifaces('10.1.0.2')), false)
    assert.equal(hasPublicInterface(['/ip4/0.0.0.0/tcp/0'], ifaces('198.20.0.1')), true)
    assert.equal(hasPublicInterface(['/ip4/198.20.0.1/tcp/4001'], ifaces('10.1.0.2')), true)
    assert.equal(hasPublicInterface(['/ip4/127.0.0.1/tcp/0'], ifaces('198.20.0.1')), false)
  })

  it('local swarms keep their old behaviour: loopback listener, no relay, no AutoNAT, not behind NAT', function () {
    const local = { scope: 'loopback', behindNat: false, reservesRelay: false, dht: 'server', publicSelf: false, selfConfirmed: false, autoNat: false, relay: 'off' }
    assert.deepEqual(reachabilityOf({}), local)
    assert.deepEqual(reachabilityOf({ bootstrap: [loop] }), local)
  })

  it('in a public swarm AutoNAT decides: a joining node relays once it confirms a public address; the first node confirms its own', function () {
    const natted = reachabilityOf({ bootstrap: [pub], listen: ['/ip4/10.1.0.2/tcp/0'] })
    assert.equal(natted.behindNat, true)
    assert.equal(natted.reservesRelay, true)
    assert.equal(natted.dht, 'client', 'nobody can dial it: it only asks the DHT')
    assert.equal(natted.autoNat, true)
    assert.equal(natted.relay, 'when-public')
    assert.equal(reachabilityOf({ bootstrap: [pub], listen: ['/ip4/10.1.0.2/tcp/0'], relay: 'on' }).relay, 'on')
    const joining = reachabilityOf({ bootstrap: [pub], listen: ['/ip4/198.20.0.2/tcp/0'] })
    // a public node that joins reserves a relay slot too, in case AutoNAT refuses its address, and
    // becomes a DHT server once AutoNAT confirms it
    assert.deepEqual(joining, { scope: 'public', behindNat: false, reservesRelay: true, dht: 'auto', publicSelf: true, selfConfirmed: false, autoNat: true, relay: 'when-public' })
    assert.equal(reachabilityOf({ bootstrap: [pub], listen: ['/ip4/198.20.0.2/tcp/0'], dhtMode: 'client' }).relay, 'off', 'short-lived clients never relay')
    const first = reachabilityOf({ listen: ['/ip4/198.20.0.1/tcp/0'] })
    assert.deepEqual(first, { scope: 'public', behindNat: false, reservesRelay: false, dht: 'server', publicSelf: true, selfConfirmed: true, autoNat: true, relay: 'on' })
    assert.equal(reachabilityOf({ listen: ['/ip4/198.20.0.1/tcp/0'], relay: 'off' }).relay, 'off')
  })

  it('relaying needs a confirmed public address of the node\'s own: not a relay address, not a private one', function () {
    const at = (a: string, verified: boolean): { multiaddr: ReturnType<typeof multiaddr>, verified: boolean } => ({ multiaddr: multiaddr(a), verified })
    assert.equal(hasConfirmedPublicAddress([at('/ip4/198.20.0.2/tcp/4002', false), at('/ip4/10.1.0.2/tcp/4002', true)]), false, 'unconfirmed public, confirmed private')
    assert.equal(hasConfirmedPublicAddress([at(`${pub}/p2p-circuit`, true)]), false, 'a relay slot is not a public address of its own')
    assert.equal(hasConfirmedPublicAddress([at('/ip4/198.20.0.2/tcp/4002', true)]), true)
  })
})
