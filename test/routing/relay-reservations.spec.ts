// A node listening through a relay gets its slot back after the relay restarts: real libp2p nodes
// on loopback (circuit-relay-v2's server and transport, the bootstrap keeper redialling). The
// namespace e2e test (test/e2e/nat.e2e.spec.ts) does the same across NAT with real processes.
import assert from 'node:assert/strict'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import { bootstrapKeeper } from '../../src/routing/bootstrap-keeper.ts'
import { componentLogger } from '../../src/routing/logger.ts'
import { relayReservations } from '../../src/routing/relay-reservations.ts'
import { freePort } from '../helpers/swarm.ts'
import type { PrivateKey } from '@libp2p/interface'

async function relayNode (key: PrivateKey, port: number): Promise<Libp2p> {
  return await createLibp2p({
    privateKey: key,
    addresses: { listen: [`/ip4/127.0.0.1/tcp/${port}`] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), relay: circuitRelayServer() }
  })
}

async function relayedNode (relayAddr: string): Promise<Libp2p> {
  const log = componentLogger('test:relay-reservations')
  const circuit = `${relayAddr}/p2p-circuit`
  return await createLibp2p({
    addresses: { listen: [circuit] },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      bootstrap: bootstrapKeeper({ list: [relayAddr], log, maxBackoffMs: 500 }),
      relayReservations: relayReservations({ relays: [circuit], log })
    }
  })
}

/**
 * Resolves with the node's announced addresses (its own peer-store record, updated after a
 * 1 s debounce: 'self:peer:update') once `want` holds for them; rejects after `ms`.
 */
async function announced (node: Libp2p, want: (addrs: string[]) => boolean, ms: number): Promise<string[]> {
  return await new Promise((resolve, reject) => {
    const done = (addrs: string[]): void => {
      clearTimeout(timer)
      node.removeEventListener('self:peer:update', onUpdate)
      resolve(addrs)
    }
    const onUpdate = (evt: CustomEvent<{ peer: { addresses: Array<{ multiaddr: { toString: () => string } }> } }>): void => {
      const addrs = evt.detail.peer.addresses.map((a) => a.multiaddr.toString())
      if (want(addrs)) done(addrs)
    }
    const timer = setTimeout(() => { node.removeEventListener('self:peer:update', onUpdate); reject(new Error(`announced addresses not as wanted after ${ms} ms`)) }, ms)
    node.addEventListener('self:peer:update', onUpdate)
    node.peerStore.get(node.peerId).then((self) => {
      const addrs = self.addresses.map((a) => a.multiaddr.toString())
      if (want(addrs)) done(addrs)
    }, () => {})
  })
}

const relayedVia = (relayAddr: string) => (addrs: string[]): boolean => addrs.some((a) => a.startsWith(`${relayAddr}/p2p-circuit`))

describe('relay reservations', function () {
  this.timeout(60_000)
  const nodes: Libp2p[] = []
  afterEach(async function () {
    await Promise.all(nodes.splice(0).map(async (n) => { await n.stop() }))
  })

  // without relay-reservations.ts the node never gets a slot again (checked by hand: this test
  // then times out in the last wait, as the namespace e2e test does)
  it('a node reserves its slot again once the relay it listened through is back', async function () {
    const key = await generateKeyPair('Ed25519')
    const port = await freePort()
    const relay = await relayNode(key, port)
    nodes.push(relay)
    const relayAddr = `/ip4/127.0.0.1/tcp/${port}/p2p/${relay.peerId.toString()}`
    const node = await relayedNode(relayAddr)
    nodes.push(node)
    const first = await announced(node, relayedVia(relayAddr), 10_000)

    await relay.stop()
    await announced(node, (addrs) => !relayedVia(relayAddr)(addrs), 10_000)
    nodes.push(await relayNode(key, port))
    assert.deepEqual(await announced(node, relayedVia(relayAddr), 20_000), first)
  })
})
