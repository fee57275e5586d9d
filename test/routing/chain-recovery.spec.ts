// Where a chain looks for a replacement when a hop's peer dies, against real libp2p nodes scripted
// to answer as peers would: a replica it already knows takes over without a DHT search; one it
// does not know is found by asking again.
import assert from 'node:assert/strict'
import { Arrivals, MessageChannel } from '../../src/protocol/channel.ts'
import { INFERENCE_PROTOCOL, type Message } from '../../src/protocol/messages.ts'
import { ChainSession, type CandidateSource } from '../../src/routing/chain-session.ts'
import type { Candidate } from '../../src/routing/planner.ts'
import { pino } from 'pino'
import type { SwarmNode } from '../../src/routing/node.ts'
import { NodePool, addrOf } from './helpers.ts'

const H = 4

/** A candidate list that says which answers were asked to be fresh. */
class RecordingSource implements CandidateSource {
  readonly asked: boolean[] = []
  constructor (private readonly cached: Candidate[], private readonly fresh: Candidate[]) {}
  async candidates (refresh: boolean): Promise<Candidate[]> {
    this.asked.push(refresh)
    return refresh ? this.fresh : this.cached
  }

  /** what a search gave last (a list that may be too old to reuse for a new chain) */
  known (): Candidate[] { return this.asked.at(-1) === true ? this.fresh : this.cached }
}

describe('routing/chain-session: recovery after a peer dies (real libp2p nodes)', function () {
  this.timeout(30_000)
  const pool = new NodePool()
  after(async function () { await pool.stopAll() })

  /**
   * A node serving blocks [0, 1): every step's output is its input plus one. It reads messages as
   * they come and answers them in order, each after `answerMs`; `ahead` is the most messages it
   * ever held unanswered (1 for a client that waits for each answer).
   */
  async function replica (answerMs = 0): Promise<{ node: SwarmNode, ahead: () => number }> {
    const node = await pool.create()
    let ahead = 0
    await node.handle(INFERENCE_PROTOCOL, async (stream) => {
      const ch = new MessageChannel(stream)
      const queue: Message[] = []
      const arrived = new Arrivals()
      let ended = false
      void (async () => {
        try {
          for (;;) {
            queue.push(await ch.receive(AbortSignal.timeout(10_000)))
            ahead = Math.max(ahead, queue.length)
            arrived.wakeAll()
          }
        } catch {
          ended = true
          arrived.wakeAll()
        }
      })()
      try {
        for (;;) {
          while (queue.length === 0 && !ended) await arrived.wait()
          const msg = queue[0]
          if (msg === undefined) break
          if (answerMs > 0) await new Promise((resolve) => setTimeout(resolve, answerMs))
          queue.shift()
          if (msg.kind === 'open') await ch.send({ kind: 'opened', sessionId: msg.sessionId, start: msg.start, end: msg.end, maxLength: msg.maxLength })
          else if (msg.kind === 'truncate') await ch.send({ kind: 'truncated', length: msg.length })
          else if (msg.kind === 'step') {
            const n = msg.hidden.data.length / H
            await ch.send({ kind: 'result', stepId: msg.stepId, position: msg.position + n, hidden: { dtype: 'f32', shape: [1, n, H], data: msg.hidden.data.map((x) => x + 1) } })
          } else if (msg.kind === 'close') break
        }
        await ch.close()
      } catch {
        ch.abort('done')
      }
    })
    return { node, ahead: () => ahead }
  }

  const candidate = (node: SwarmNode, latencyMs: number): Candidate => ({
    peerId: node.peerId.toString(), multiaddrs: [addrOf(node)], start: 0, end: 1, latencyMs, throughput: 10, cacheTokensLeft: 1000, state: 'online'
  })

  /** Opens a chain over `source`, steps twice, stops `first`, steps again: the output and what was asked of the source after the open. */
  async function failOver (source: RecordingSource, first: SwarmNode): Promise<{ output: Float32Array, askedAfterOpen: boolean[], reroutes: number }> {
    const chain = await ChainSession.open(await pool.create(), source, { modelId: 'm', numBlocks: 1, hiddenSize: H, maxLength: 16, direct: false, log: pino({ level: 'silent' }) })
    try {
      const opened = source.asked.length
      await chain.forward(new Float32Array(2 * H), 0)
      await chain.forward(new Float32Array(H), 2)
      await first.stop()
      const output = await chain.forward(Float32Array.from([1, 2, 3, 4]), 3)
      return { output, askedAfterOpen: source.asked.slice(opened), reroutes: chain.rerouteLog.length }
    } finally {
      await chain.close()
    }
  }

  it('a replica already among the candidates takes over without a DHT search', async function () {
    const { node: a } = await replica()
    const { node: b } = await replica()
    // a is the faster: the chain starts on it
    const known = [candidate(a, 1), candidate(b, 50)]
    const source = new RecordingSource(known, known)
    const { output, askedAfterOpen, reroutes } = await failOver(source, a)
    assert.deepEqual(output, Float32Array.from([2, 3, 4, 5]))
    assert.equal(reroutes, 1)
    assert.deepEqual(askedAfterOpen, [], 'the recovery planned from the known candidates only')
  })

  it('a replica the candidates do not list yet is found by asking again', async function () {
    const { node: a } = await replica()
    const { node: b } = await replica()
    const source = new RecordingSource([candidate(a, 1)], [candidate(a, 1), candidate(b, 50)])
    const { output, askedAfterOpen, reroutes } = await failOver(source, a)
    assert.deepEqual(output, Float32Array.from([2, 3, 4, 5]))
    assert.equal(reroutes, 1)
    assert.deepEqual(askedAfterOpen, [true], 'the known candidates held no route: the DHT was asked')
  })

  it('the replacement gets the history pipelined: in the original shapes and order, without waiting for each answer', async function () {
    const { node: a } = await replica()
    const b = await replica(2)
    const known = [candidate(a, 1), candidate(b.node, 50)]
    const chain = await ChainSession.open(await pool.create(), new RecordingSource(known, known), { modelId: 'm', numBlocks: 1, hiddenSize: H, maxLength: 32, direct: false, log: pino({ level: 'silent' }) })
    try {
      await chain.forward(new Float32Array(4 * H), 0)
      for (let p = 4; p < 12; p++) await chain.forward(new Float32Array(H).fill(p), p)
      // a speculative rollback: the history keeps the cut
      await chain.truncate(9)
      await a.stop()
      const output = await chain.forward(Float32Array.from([1, 2, 3, 4]), 9)
      assert.deepEqual(output, Float32Array.from([2, 3, 4, 5]))
      assert.equal(chain.rerouteLog.length, 1)
      assert.ok(b.ahead() > 1, `the replacement held ${b.ahead()} messages unanswered at most: the replay waited for each answer`)
    } finally {
      await chain.close()
    }
  })
})
