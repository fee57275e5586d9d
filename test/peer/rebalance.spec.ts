import assert from 'node:assert/strict'
import { pino } from 'pino'
import type { BlockRange, SpanInfo } from '../../src/loadbalance/index.ts'
import { nextCheckDelayMs, rebalanceDecision, Rebalancer, rebalanceDefaults, type RebalanceHost } from '../../src/peer/rebalance.ts'
import type { PeerRecord } from '../../src/routing/index.ts'

const silent = pino({ level: 'silent' })

function record (peerId: string, start: number, end: number, overrides: Partial<PeerRecord> = {}): PeerRecord {
  return {
    peerId, modelId: 'm', multiaddrs: [], start, end, state: 'online', throughput: 100, cacheTokensLeft: 1000,
    arch: 'llama', dtype: 'f32', version: '0.1.0', expiresAt: Date.now() + 60_000, seq: 1, ...overrides
  }
}

function self (start: number, end: number): SpanInfo {
  return { peerId: 'me', start, end, throughput: 100, state: 'online' }
}

describe('peer: rebalancing decision', () => {
  it('moves a redundant peer into a gap', () => {
    const d = rebalanceDecision([record('a', 0, 3)], self(0, 3), 6, 0.75)
    assert.equal(d.move, true)
    assert.deepEqual(d.to, { start: 3, end: 6 })
    assert.match(d.reason, /weakest block 0\.0 -> 100\.0/)
  })

  it('stays in a balanced swarm, and when leaving would open a gap', () => {
    assert.equal(rebalanceDecision([record('a', 3, 6)], self(0, 3), 6, 0.75).move, false)
    assert.equal(rebalanceDecision([record('a', 0, 3), record('b', 3, 6)], self(0, 3), 6, 0.75).move, false)
  })

  it('a lone peer stays where it is', () => {
    assert.equal(rebalanceDecision([], self(0, 2), 6, 0.75).move, false)
  })

  it('sees itself as it is now, not as its own (stale) record says', () => {
    // the record says "me" serves [3, 6); it actually serves [0, 3), next to a peer on [0, 3)
    const d = rebalanceDecision([record('me', 3, 6), record('a', 0, 3)], self(0, 3), 6, 0.75)
    assert.deepEqual(d.to, { start: 3, end: 6 })
  })

  it('does not count draining peers, does count joining ones', () => {
    assert.equal(rebalanceDecision([record('a', 0, 3), record('b', 3, 6, { state: 'draining' })], self(0, 3), 6, 0.75).move, true)
    assert.equal(rebalanceDecision([record('a', 0, 3), record('b', 3, 6, { state: 'joining' })], self(0, 3), 6, 0.75).move, false)
  })

  it('only an online peer moves', () => {
    assert.equal(rebalanceDecision([record('a', 0, 3)], { ...self(0, 3), state: 'joining' }, 6, 0.75).move, false)
  })

  it('waits intervalMs ± jitter', () => {
    const cfg = { ...rebalanceDefaults, intervalMs: 1000, jitter: 0.5 }
    assert.equal(nextCheckDelayMs(cfg, () => 0), 500)
    assert.equal(nextCheckDelayMs(cfg, () => 0.5), 1000)
    assert.ok(nextCheckDelayMs(cfg, () => 0.999999) < 1500)
  })
})

describe('peer: Rebalancer', () => {
  /** A host whose swarm is `records` and that moves at once (optionally slowly). */
  function host (records: () => Promise<PeerRecord[]>, moveMs = 0): RebalanceHost & { moves: BlockRange[], span: SpanInfo } {
    const h = {
      span: self(0, 3),
      moves: [] as BlockRange[],
      self: () => h.span,
      numBlocks: 6,
      records: async () => await records(),
      move: async (to: BlockRange) => {
        await new Promise((resolve) => setTimeout(resolve, moveMs))
        h.moves.push(to)
        h.span = { ...h.span, ...to }
      },
      log: silent
    }
    return h
  }

  it('check() moves when the decision says so, and not again once balanced', async () => {
    const h = host(async () => [record('a', 0, 3)])
    const r = new Rebalancer(h)
    assert.equal((await r.check()).move, true)
    assert.equal((await r.check()).move, false)
    assert.deepEqual(h.moves, [{ start: 3, end: 6 }])
    await r.stop()
  })

  it('never moves back onto blocks it left within noReturnMs (the simulator\'s rule)', async () => {
    // the swarm first needs it on [3, 6); once there, two more peers arrive on [3, 6): [0, 3) is weakest
    let swarm = [record('a', 0, 3)]
    for (const [noReturnMs, expected] of [[rebalanceDefaults.noReturnMs, false], [0, true]] as const) {
      swarm = [record('a', 0, 3)]
      const h = host(async () => swarm)
      const r = new Rebalancer(h, { ...rebalanceDefaults, noReturnMs })
      assert.equal((await r.check()).move, true)
      assert.deepEqual(h.span, { ...self(3, 6) })
      swarm = [record('a', 0, 3), record('b', 3, 6), record('c', 3, 6)]
      const back = await r.check()
      assert.equal(back.move, expected, back.reason)
      if (!expected) assert.match(back.reason, /left recently/)
      await r.stop()
    }
  })

  it('passes the sessions in the records to the balancer as demand', () => {
    // throughput alone is balanced; the peers of [6, 8) hold 30 sessions each, the others 1
    const records = [0, 2, 4, 6].flatMap((start) => ['x', 'y'].map((p) => record(`${p}${start}`, start, start + 2, { throughput: 10, sessions: start === 6 ? 30 : 1, maxSessions: 64 })))
    const me = { peerId: 'x0', start: 0, end: 2, throughput: 10, state: 'online' as const }
    assert.deepEqual(rebalanceDecision(records, me, 8, 0.75).to, { start: 6, end: 8 })
    const blind = records.map(({ sessions: _, ...r }) => r)
    assert.equal(rebalanceDecision(blind, me, 8, 0.75).move, false)
  })

  it('checks on its own at randomised times, survives a failed check, and stop() waits for a running move', async () => {
    let calls = 0
    const h = host(async () => {
      if (++calls === 1) throw new Error('DHT unreachable')
      return [record('a', 0, 3)]
    }, 100)
    const r = new Rebalancer(h, { ...rebalanceDefaults, intervalMs: 20 })
    r.start()
    const deadline = Date.now() + 5_000
    while (calls < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
    assert.ok(calls >= 2, 'checks again after a failure')
    await r.stop()
    assert.deepEqual(h.moves, [{ start: 3, end: 6 }], 'the move under way when stopping completed')
    const after = calls
    await new Promise((resolve) => setTimeout(resolve, 100))
    assert.equal(calls, after, 'no checks after stop()')
  })
})
