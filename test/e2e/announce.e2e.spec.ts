// `peer --announce`: a peer reached only through an address it does not listen on (a forwarded
// port, a container's mapped port, a proxy) announces that address, and clients generate through it.
import assert from 'node:assert/strict'
import { Swarm } from '../../src/client/swarm.ts'
import { freePort, startPeer, stopPeers, type PeerProcess } from '../helpers/swarm.ts'
import { tinyModel } from '../helpers/models.ts'
import { e2eShape, localTokens } from '../helpers/local.ts'
import { startDelayProxy, type DelayProxy } from '../../scripts/bench/delay-proxy.ts'

describe('peer --announce (real process behind a forwarding proxy)', function () {
  this.timeout(90_000)
  const peers: PeerProcess[] = []
  let proxy: DelayProxy | null = null
  after(async function () {
    await stopPeers(peers)
    await proxy?.close()
  })

  it('announces the forwarded address only, and serves through it with local tokens', async function () {
    const dir = tinyModel('e2e', e2eShape)
    const port = await freePort()
    proxy = await startDelayProxy(port, { rttMs: 0, mbps: Infinity })
    const peer = await startPeer(dir, ['--blocks', '0:4', '--listen', `/ip4/127.0.0.1/tcp/${port}`, '--announce', `/ip4/127.0.0.1/tcp/${proxy.port}`], 'announced', 60_000)
    peers.push(peer)
    assert.ok(peer.multiaddrs.length > 0 && peer.multiaddrs.every((a) => a.startsWith(`/ip4/127.0.0.1/tcp/${proxy!.port}/`)), peer.multiaddrs.join(' '))
    const prompt = [1, 2, 3, 4]
    const swarm = await Swarm.connect({ bootstrap: [peer.multiaddrs[0]], modelDir: dir, threads: 1 })
    try {
      let tokens: number[] = []
      for await (const e of swarm.generate({ ids: prompt }, { maxNewTokens: 6, ignoreEos: true })) if (e.event === 'done') tokens = e.tokens
      assert.deepEqual(tokens, await localTokens(dir, prompt, 6))
    } finally {
      await swarm.close()
    }
    assert.ok(proxy.connections >= 1, 'the client came in through the announced address')
  })
})
