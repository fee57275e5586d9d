// Chain planning around banned peers, and the bans themselves.
import assert from 'node:assert/strict'
import { planChain, NoRouteError, type Candidate } from '../../src/routing/index.ts'
import { BanList } from '../../src/routing/bans.ts'

function peer (peerId: string, start: number, end: number): Candidate {
  return { peerId, multiaddrs: [], start, end, latencyMs: 1, throughput: 100, cacheTokensLeft: 1000, state: 'online' }
}

describe('planChain with banned peers', function () {
  const candidates = [peer('peer-aaaaaaaa', 0, 2), peer('peer-bbbbbbbb', 2, 4), peer('peer-cccccccc', 2, 4)]

  it('routes around a banned peer', function () {
    const hops = planChain(candidates, 0, 4, { banned: new Map([['peer-bbbbbbbb', 'bad_output']]), random: () => 0 })
    assert.deepEqual(hops.map((h) => h.peerId), ['peer-aaaaaaaa', 'peer-cccccccc'])
  })

  it('names the banned peers that would have served the missing blocks, and why', function () {
    const banned = new Map([['peer-bbbbbbbb', 'bad_output'], ['peer-cccccccc', 'timeout'], ['peer-unknown', 'closed']])
    assert.throws(() => planChain(candidates, 0, 4, { banned }), (err: unknown) => {
      assert.ok(err instanceof NoRouteError)
      assert.deepEqual(err.missingBlocks, [2, 3])
      assert.deepEqual(err.excluded, [{ peerId: 'peer-bbbbbbbb', reason: 'bad_output' }, { peerId: 'peer-cccccccc', reason: 'timeout' }])
      assert.equal(err.message, 'no peer serves blocks 2-3 (needed for blocks [0, 4)); excluded after failing: peer bbbbbbbb (bad_output), peer cccccccc (timeout)')
      return true
    })
  })

  it('says nothing about exclusions when no peer serves the blocks at all', function () {
    assert.throws(() => planChain(candidates.slice(0, 1), 0, 4), { name: 'NoRouteError', message: 'no peer serves blocks 2-3 (needed for blocks [0, 4))' })
  })
})

describe('BanList', function () {
  it('bans with exponential back-off, then lets the peer back', function () {
    let now = 0
    const bans = new BanList({ baseMs: 100, maxMs: 1000 }, () => now)
    assert.equal(bans.ban('p', 'timeout'), 100)
    assert.deepEqual([...bans.active()], [['p', 'timeout']])
    now = 100
    assert.equal(bans.active().size, 0)
    assert.equal(bans.ban('p', 'closed'), 200)
    assert.equal(bans.ban('p', 'closed'), 400)
    assert.equal(bans.ban('p', 'closed'), 800)
    assert.equal(bans.ban('p', 'closed'), 1000)
  })

  it('excludes a peer for good, whatever happens to it later', function () {
    let now = 0
    const bans = new BanList({ baseMs: 100, maxMs: 1000 }, () => now)
    bans.exclude('p', 'bad_output')
    assert.equal(bans.ban('p', 'timeout'), Infinity)
    now = 1e12
    assert.deepEqual([...bans.active()], [['p', 'bad_output']])
  })
})
