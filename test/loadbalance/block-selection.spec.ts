import assert from 'node:assert/strict'
import { blockThroughputs, chooseBestSpan, demandWeights, LeftSpans, shouldMove, spanLengthForMemory, type PeerState, type SpanInfo } from '../../src/loadbalance/index.ts'
import { mulberry32 } from '../../src/loadbalance/random.ts'

function span(peerId: string, start: number, end: number, throughput: number, state: PeerState = 'online'): SpanInfo {
  return { peerId, start, end, throughput, state }
}

const balanceQuality = 0.75

function ratio(spans: SpanInfo[], numBlocks: number): number {
  const t = blockThroughputs(spans, numBlocks)
  return Math.min(...t) / (t.reduce((a, b) => a + b, 0) / numBlocks)
}

/** Lets every peer check in turn and move at once where told, until a whole round moves nobody. */
function settle(spans: SpanInfo[], numBlocks: number, maxRounds: number): { spans: SpanInfo[]; moves: number; rounds: number } {
  let current = spans.map((s) => ({ ...s }))
  let moves = 0
  for (let round = 1; round <= maxRounds; round++) {
    let movedThisRound = false
    for (const self of current) {
      const decision = shouldMove(current, numBlocks, self, { balanceQuality })
      if (!decision.move) continue
      current = current.map((s) => (s.peerId === self.peerId ? { ...s, ...decision.to } : s))
      moves++
      movedThisRound = true
    }
    if (!movedThisRound) return { spans: current, moves, rounds: round }
  }
  throw new Error(`still moving after ${maxRounds} rounds (${moves} moves)`)
}

describe('loadbalance: blockThroughputs', () => {
  it('sums joining and online peers, ignores draining ones, clips to the model', () => {
    const spans = [
      span('a', 0, 4, 10),
      span('b', 2, 6, 5, 'joining'),
      span('c', 0, 6, 100, 'draining'),
      span('d', -2, 1, 1),
      span('e', 5, 9, 2)
    ]
    assert.deepEqual([...blockThroughputs(spans, 6)], [11, 10, 15, 15, 5, 7])
  })

  it('gives bit-identical sums whatever order the spans arrive in', () => {
    const random = mulberry32(7)
    const spans = Array.from({ length: 50 }, (_, i) => span(`p${i}`, i % 10, (i % 10) + 5, random() * 100))
    const reversed = [...spans].reverse()
    assert.deepEqual(blockThroughputs(spans, 20), blockThroughputs(reversed, 20))
  })
})

describe('loadbalance: demandWeights', () => {
  it('is all ones when nobody announces sessions', () => {
    assert.deepEqual([...demandWeights([span('a', 0, 4, 10), span('b', 2, 6, 10)], 6)], [1, 1, 1, 1, 1, 1])
  })

  it('weighs each block by its sessions over the mean block, never below 1, ignoring draining peers', () => {
    const spans = [
      { ...span('a', 0, 2, 10), sessions: 6 },
      { ...span('b', 2, 4, 10), sessions: 2 },
      { ...span('c', 0, 4, 10, 'draining'), sessions: 100 }
    ]
    // sessions per block 6 6 2 2, mean 4
    assert.deepEqual([...demandWeights(spans, 4)], [1.5, 1.5, 1, 1])
  })

  it('sends a newcomer to the crowded blocks among equally served ones', () => {
    const spans = [span('a', 0, 4, 10), { ...span('b', 4, 8, 10), sessions: 5 }]
    assert.deepEqual(chooseBestSpan(spans, 8, 4), { start: 4, end: 8 })
    assert.deepEqual(chooseBestSpan(spans.map(({ sessions: _, ...s }) => s), 8, 4), { start: 0, end: 4 })
  })
})

describe('loadbalance: LeftSpans', () => {
  it('remembers spans for the window, then forgets them', () => {
    const left = new LeftSpans(60)
    left.add({ start: 0, end: 4 }, 10)
    left.add({ start: 4, end: 8 }, 50)
    assert.deepEqual(left.recent(60), [{ start: 0, end: 4 }, { start: 4, end: 8 }])
    assert.deepEqual(left.recent(70.5), [{ start: 4, end: 8 }])
    assert.deepEqual(left.recent(200), [])
    assert.throws(() => new LeftSpans(-1), RangeError)
  })
})

describe('loadbalance: chooseBestSpan', () => {
  it('fills a gap in coverage first', () => {
    const spans = [span('a', 0, 3, 50), span('b', 5, 8, 100)]
    assert.deepEqual(chooseBestSpan(spans, 8, 2), { start: 3, end: 5 })
    // A longer window covers the whole gap and then leans towards the weaker neighbour.
    assert.deepEqual(chooseBestSpan(spans, 8, 4), { start: 1, end: 5 })
  })

  it('prefers covering more gaps over strengthening weak blocks', () => {
    // Blocks 2, 4 and 8 are uncovered; a 3-block span can reach two of them at most.
    const spans = [span('a', 0, 2, 1), span('b', 3, 4, 1), span('c', 5, 8, 1), span('d', 9, 10, 1)]
    assert.deepEqual(chooseBestSpan(spans, 10, 3), { start: 2, end: 5 })
  })

  it('joining a swarm with one weak block picks a window containing it', () => {
    // 40 tok/s everywhere except block 7 (30 tok/s).
    const spans = [span('a', 0, 12, 10), span('b', 0, 12, 10), span('c', 0, 12, 10), span('d', 0, 7, 10), span('e', 8, 12, 10)]
    const chosen = chooseBestSpan(spans, 12, 4)
    assert.ok(chosen.start <= 7 && 7 < chosen.end, JSON.stringify(chosen))
    assert.deepEqual(chosen, { start: 4, end: 8 }, 'ties go to the lowest start')
  })

  it('ignores draining peers when choosing', () => {
    const spans = [span('a', 0, 4, 10), span('b', 4, 8, 10), span('c', 0, 4, 10, 'draining')]
    assert.deepEqual(chooseBestSpan(spans, 8, 4), { start: 0, end: 4 })
    assert.deepEqual(chooseBestSpan([...spans, span('d', 0, 4, 10, 'joining')], 8, 4), { start: 4, end: 8 })
  })

  it('breaks ties by the lowest start and caps the span at the model', () => {
    assert.deepEqual(chooseBestSpan([], 10, 3), { start: 0, end: 3 })
    assert.deepEqual(chooseBestSpan([span('a', 0, 10, 1)], 10, 25), { start: 0, end: 10 })
  })

  it('whatever its own throughput, the newcomer leaves the best possible swarm (brute force)', () => {
    // "Best": the swarm's sorted block throughputs after joining are lexicographically largest:
    // highest minimum first, then the second-weakest block, and so on.
    const random = mulberry32(11)
    for (let trial = 0; trial < 500; trial++) {
      const numBlocks = 3 + Math.floor(random() * 10)
      const length = 1 + Math.floor(random() * numBlocks)
      // Coarse values, so that ties and gaps (zeros) are common.
      const spans = Array.from({ length: numBlocks }, (_, i) => span(`p${i}`, i, i + 1, Math.floor(random() * 4)))
      const own = [0.5, 1, 3, 100][trial % 4]
      const chosen = chooseBestSpan(spans, numBlocks, length)
      const best = bestSwarmAfterJoining(spans, numBlocks, length, own)
      assert.deepEqual(swarmAfterJoining(spans, numBlocks, chosen.start, length, own), best, `trial ${trial}`)
    }
  })

  it('rejects nonsense sizes', () => {
    assert.throws(() => chooseBestSpan([], 10, 0), RangeError)
    assert.throws(() => chooseBestSpan([], 10, 1.5), RangeError)
    assert.throws(() => chooseBestSpan([], 0, 1), RangeError)
  })
})

function swarmAfterJoining(spans: SpanInfo[], numBlocks: number, start: number, length: number, own: number): number[] {
  const t = blockThroughputs([...spans, span('newcomer', start, start + length, own)], numBlocks)
  return [...t].sort((a, b) => a - b)
}

function bestSwarmAfterJoining(spans: SpanInfo[], numBlocks: number, length: number, own: number): number[] {
  let best: number[] | undefined
  for (let start = 0; start + length <= numBlocks; start++) {
    const after = swarmAfterJoining(spans, numBlocks, start, length, own)
    const i = best === undefined ? -1 : after.findIndex((v, k) => v !== best![k])
    if (best === undefined || (i >= 0 && after[i] > best[i])) best = after
  }
  return best as number[]
}

describe('loadbalance: shouldMove', () => {
  it('a balanced swarm never moves', () => {
    const spans = [span('a', 0, 4, 10), span('b', 0, 4, 10), span('c', 4, 8, 10), span('d', 4, 8, 10)]
    for (const self of spans) {
      const decision = shouldMove(spans, 8, self, { balanceQuality })
      assert.equal(decision.move, false, decision.reason)
    }
  })

  it('a peer in a hugely over-served region moves to the under-served one', () => {
    // Blocks 0-3 get 30 tok/s, blocks 4-7 only 10.
    const spans = [span('a', 0, 4, 10), span('b', 0, 4, 10), span('c', 0, 4, 10), span('d', 4, 8, 10)]
    const decision = shouldMove(spans, 8, spans[0], { balanceQuality })
    assert.equal(decision.move, true, decision.reason)
    assert.deepEqual(decision.to, { start: 4, end: 8 })
    assert.ok(Math.abs(decision.gain - 2) < 1e-9, `gain ${decision.gain}`)
  })

  it('the only peer of a block stays even when the swarm is unbalanced', () => {
    const spans = [span('a', 0, 4, 10), span('b', 0, 4, 10), span('c', 0, 4, 10), span('d', 4, 8, 10)]
    const decision = shouldMove(spans, 8, spans[3], { balanceQuality })
    assert.equal(decision.move, false)
    assert.match(decision.reason, /uncover/)
  })

  it('moves only when the gain clears the hysteresis', () => {
    // Weakest block 10 tok/s (block 3); the small peer c moving there lifts it to 15: quality 10/15 = 0.67.
    const spans = [span('a', 0, 3, 100), span('b', 1, 4, 10), span('c', 0, 1, 5)]
    const strict = shouldMove(spans, 4, spans[2], { balanceQuality: 0.75 })
    assert.equal(strict.move, true, strict.reason)
    assert.deepEqual(strict.to, { start: 3, end: 4 })
    assert.ok(Math.abs(strict.gain - 1.5) < 1e-9, `gain ${strict.gain}`)
    const lenient = shouldMove(spans, 4, spans[2], { balanceQuality: 0.6 })
    assert.equal(lenient.move, false)
    assert.match(lenient.reason, /balanced enough/)
  })

  it('a peer that moves to close a gap reports an infinite gain', () => {
    const spans = [span('a', 0, 4, 10), span('b', 0, 4, 10)]
    const decision = shouldMove(spans, 8, spans[0], { balanceQuality })
    assert.equal(decision.move, true, decision.reason)
    assert.deepEqual(decision.to, { start: 4, end: 8 })
    assert.equal(decision.gain, Infinity)
  })

  it('never moves onto blocks it left recently (avoid)', () => {
    // a's best move is to [4, 8); every window but its own shares a block with [4, 6)
    const spans = [span('a', 0, 4, 10), span('b', 0, 4, 10), span('c', 0, 4, 10), span('d', 4, 8, 10)]
    const back = shouldMove(spans, 8, spans[0], { balanceQuality, avoid: [{ start: 4, end: 6 }] })
    assert.equal(back.move, false)
    assert.match(back.reason, /left recently/)
    // with [5, 7) avoided, [1, 5) still holds the weak block 4
    assert.deepEqual(shouldMove(spans, 8, spans[0], { balanceQuality, avoid: [{ start: 5, end: 7 }] }).to, { start: 1, end: 5 })
    // but a gap in coverage is closed even where it left recently
    const gap = [span('a', 0, 4, 10), span('b', 0, 4, 10)]
    assert.deepEqual(shouldMove(gap, 8, gap[0], { balanceQuality, avoid: [{ start: 4, end: 8 }] }).to, { start: 4, end: 8 })
    // a span it left elsewhere does not stop it
    assert.deepEqual(shouldMove(spans, 8, spans[0], { balanceQuality, avoid: [{ start: 0, end: 2 }] }).to, { start: 4, end: 8 })
  })

  it('weighs demand: a peer moves from idle blocks to the blocks whose peers hold many sessions', () => {
    // two peers of 10 tok/s on each quarter; the last quarter's peers hold 30 sessions each, the others 1
    const spans = [0, 2, 4, 6].flatMap((start) => ['x', 'y'].map((p) => ({ ...span(`${p}${start}`, start, start + 2, 10), sessions: start === 6 ? 30 : 1 })))
    const blind = spans.map(({ sessions: _, ...s }) => s)
    assert.equal(shouldMove(blind, 8, blind[0], { balanceQuality }).move, false, 'by throughput alone the swarm is balanced')
    const decision = shouldMove(spans, 8, spans[0], { balanceQuality })
    assert.equal(decision.move, true, decision.reason)
    assert.deepEqual(decision.to, { start: 6, end: 8 })
  })

  it('only online peers rebalance', () => {
    const spans = [span('a', 0, 4, 10), span('b', 0, 4, 10), span('c', 0, 4, 10), span('d', 4, 8, 10)]
    for (const state of ['joining', 'draining'] as const) {
      assert.equal(shouldMove(spans, 8, { ...spans[0], state }, { balanceQuality }).move, false)
    }
  })

  it('uses self as given, whether or not the swarm lists it, and replaces a stale announcement', () => {
    const others = [span('b', 0, 4, 10), span('c', 0, 4, 10), span('d', 4, 8, 10)]
    const self = span('a', 0, 4, 10)
    assert.equal(shouldMove(others, 8, self, { balanceQuality }).move, true)
    const stale = [span('a', 4, 8, 10), ...others]
    assert.equal(shouldMove(stale, 8, self, { balanceQuality }).move, true)
  })

  it('hysteresis prevents oscillation: a settled swarm makes no further moves', () => {
    const random = mulberry32(42)
    const numBlocks = 40
    const spans = Array.from({ length: 60 }, (_, i) => {
      const length = 2 + Math.floor(random() * 12)
      const start = Math.floor(random() * 5) // everybody crowds the first blocks
      return span(`p${String(i).padStart(2, '0')}`, start, start + length, 20 + random() * 200)
    })
    const before = ratio(spans, numBlocks)
    const settled = settle(spans, numBlocks, 20)
    assert.ok(settled.moves <= spans.length * 2, `${settled.moves} moves`)
    const after = ratio(settled.spans, numBlocks)
    assert.ok(after > before && after >= 0.5, `weakest/mean ${before.toFixed(3)} -> ${after.toFixed(3)}`)
    for (let round = 0; round < 3; round++) {
      for (const self of settled.spans) assert.equal(shouldMove(settled.spans, numBlocks, self, { balanceQuality }).move, false)
    }
  })
})

describe('loadbalance: spanLengthForMemory', () => {
  const GiB = 2 ** 30
  it('fits whole blocks into the memory left after the reserve', () => {
    assert.equal(spanLengthForMemory(10 * GiB, GiB, 80, 0.2), 8)
    assert.equal(spanLengthForMemory(10 * GiB, GiB, 80, 0), 10)
    assert.equal(spanLengthForMemory(10 * GiB, GiB, 4, 0.2), 4)
    assert.equal(spanLengthForMemory(0.5 * GiB, GiB, 80, 0.2), 0)
    assert.equal(spanLengthForMemory(-1, GiB, 80, 0.2), 0)
  })

  it('rejects nonsense parameters', () => {
    assert.throws(() => spanLengthForMemory(GiB, 0, 80, 0.2), RangeError)
    assert.throws(() => spanLengthForMemory(GiB, GiB, 80, 1), RangeError)
    assert.throws(() => spanLengthForMemory(GiB, GiB, 0, 0.2), RangeError)
  })
})
