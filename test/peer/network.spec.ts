import assert from 'node:assert/strict'
import { multiaddr } from '@multiformats/multiaddr'
import { measureEchoBandwidth, mbpsToBytesPerSecond, networkTokensPerSecond } from '../../src/peer/network.ts'
import { createSwarmNode, type SwarmNode } from '../../src/routing/index.ts'

describe('peer: network throughput', () => {
  const nodes: SwarmNode[] = []
  afterEach(async () => { await Promise.all(nodes.splice(0).map(async (n) => { await n.stop() })) })

  it('converts a link speed to tokens/s of hidden states', () => {
    assert.equal(mbpsToBytesPerSecond(8), 1e6)
    assert.equal(networkTokensPerSecond(1e6, 1000), 250)
  })

  it('measures the bandwidth to another node by echoing hidden-state-sized chunks off its ping handler', async () => {
    nodes.push(await createSwarmNode(), await createSwarmNode())
    const [a, b] = nodes
    const bytesPerSecond = await measureEchoBandwidth(a, multiaddr(b.getMultiaddrs()[0]), 64, { bytes: 256 * 1024, rounds: 3, signal: AbortSignal.timeout(10_000) })
    assert.ok(bytesPerSecond > 1e6, `${bytesPerSecond} B/s over loopback`)
  })

  it('gives up when aborted', async () => {
    nodes.push(await createSwarmNode(), await createSwarmNode())
    const [a, b] = nodes
    await assert.rejects(measureEchoBandwidth(a, multiaddr(b.getMultiaddrs()[0]), 64, { bytes: 1024, rounds: 1, signal: AbortSignal.abort() }))
  })
})
