// Concurrent clients through real peer processes: their decode steps are batched on each peer,
// and every client still gets exactly the greedy tokens of local generation.
import assert from 'node:assert/strict'
import { e2eShape, localTokens } from '../helpers/local.ts'
import { startSwarm, stopPeers, type TestSwarm } from '../helpers/swarm.ts'
import { tinyModel } from '../helpers/models.ts'
import { Swarm } from '../../src/index.ts'

function metric (text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(name + ' '))
  assert.ok(line !== undefined, `metric ${name} present`)
  return Number(line.split(' ').pop())
}

describe('batching across clients (real peer processes)', function () {
  this.timeout(120_000)
  let swarm: TestSwarm | null = null
  after(async function () { if (swarm !== null) await stopPeers(swarm.peers) })

  it('six concurrent clients through two peers get the local tokens, their decode steps batched on both peers', async function () {
    const dir = tinyModel('e2e', e2eShape)
    const prompts = [[1, 20, 30, 40, 50], [1, 99, 98, 97], [5], [7, 7, 7, 7, 7, 7, 7, 7], [300, 2, 3], [1, 20, 30, 40, 50]]
    const n = 12
    const expected: number[][] = []
    for (const p of prompts) expected.push(await localTokens(dir, p, n))
    // one client process holds all six sessions: let one remote peer hold that many
    const flags = ['--metrics-port', '0', '--max-sessions-per-peer', '8', '--max-sessions-per-ip', '8']
    swarm = await startSwarm(dir, [[0, 2], [2, 4]], [flags, flags])
    const client = await Swarm.connect({ bootstrap: [swarm.bootstrap], modelDir: dir, threads: 1 })
    try {
      const got = await Promise.all(prompts.map(async (p) => {
        for await (const e of client.generate({ ids: p }, { maxNewTokens: n, ignoreEos: true })) if (e.event === 'done') return e.tokens
        throw new Error('no done event')
      }))
      assert.deepEqual(got, expected)
    } finally {
      await client.close()
    }
    for (const peer of swarm.peers) {
      await peer.waitFor(() => peer.events.filter((e) => e.event === 'session_closed').length >= prompts.length, 10_000)
      const url = peer.events.find((e) => e.event === 'ready')?.metricsUrl as string
      const text = await (await fetch(url)).text()
      // every decode step counted once: the n - 1 after each prefill, and the one-token prompt's
      assert.equal(metric(text, 'strata_peer_decode_batch_size_sum'), prompts.length * (n - 1) + 1)
      assert.ok(metric(text, 'strata_peer_decode_batch_size_count') < metric(text, 'strata_peer_decode_batch_size_sum'), 'some decode steps ran batched')
    }
  })
})
