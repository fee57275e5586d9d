// The replica auditor against real libp2p nodes serving the session protocol with a small
// history-dependent span function (each output row depends on every earlier input row, as
// attention does), so an audit only agrees when the replica was given the hop's whole history.
// The real engine is covered end to end in test/e2e/audit.e2e.spec.ts.
import assert from 'node:assert/strict'
import { MessageChannel } from '../../src/protocol/channel.ts'
import { INFERENCE_PROTOCOL } from '../../src/protocol/messages.ts'
import { ReplicaAuditor, type AuditEvent, type HopReferee } from '../../src/routing/replica-auditor.ts'
import type { Candidate } from '../../src/routing/planner.ts'
import type { HopCheck, VerifiedHop } from '../../src/routing/chain-session.ts'
import type { SwarmNode } from '../../src/routing/node.ts'
import { pino } from 'pino'
import { NodePool, addrOf } from './helpers.ts'

const H = 4

/** out_r = x_r + 0.5 · (x_0 + … + x_r) over the session's rows; a liar adds `lie` to its output from position `lieFrom` on. */
class FakeSpan {
  /** the session's input rows so far (its "KV cache"); a step at an earlier position truncates it */
  private rows: Float32Array[] = []
  constructor (private readonly lie = 0, private readonly lieFrom = Infinity) {}

  step (x: Float32Array, position: number): Float32Array {
    if (position > this.rows.length) throw new Error(`step at ${position} after ${this.rows.length} rows`)
    this.rows.length = position
    const out = new Float32Array(x.length)
    for (let r = 0; r < x.length / H; r++) {
      this.rows.push(x.slice(r * H, (r + 1) * H))
      for (let i = 0; i < H; i++) {
        let sum = 0
        for (const row of this.rows) sum += row[i]
        out[r * H + i] = x[r * H + i] + 0.5 * sum + (position + r >= this.lieFrom ? this.lie : 0)
      }
    }
    return out
  }
}

/** A node serving the fake span; counts the positions it computed. */
async function fakePeer (pool: NodePool, lie = 0, lieFrom = Infinity): Promise<{ node: SwarmNode, positions: () => number }> {
  const node = await pool.create()
  let positions = 0
  await node.handle(INFERENCE_PROTOCOL, async (stream) => {
    const ch = new MessageChannel(stream)
    const span = new FakeSpan(lie, lieFrom)
    const open = await ch.receive(AbortSignal.timeout(5000))
    if (open.kind !== 'open') return
    await ch.send({ kind: 'opened', sessionId: open.sessionId, start: open.start, end: open.end, maxLength: open.maxLength })
    for (;;) {
      const msg = await ch.receive(AbortSignal.timeout(10_000)).catch(() => null)
      if (msg === null || msg.kind !== 'step') break
      const n = msg.hidden.shape[1]
      positions += n
      await ch.send({ kind: 'result', stepId: msg.stepId, position: msg.position + n, hidden: { dtype: msg.hidden.dtype, shape: [1, n, H], data: span.step(msg.hidden.data, msg.position) } })
    }
    ch.abort('done')
  }, { runOnLimitedConnection: true })
  return { node, positions: () => positions }
}

function candidate (node: SwarmNode, latencyMs: number): Candidate {
  return { peerId: node.peerId.toString(), multiaddrs: [addrOf(node)], start: 0, end: 4, latencyMs, throughput: 10, cacheTokensLeft: 1000, state: 'online', dtype: 'f32' }
}

/** deterministic [0, 1) sequence */
function seeded (seed: number): () => number {
  let s = seed >>> 0
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32 }
}

/** steps: a 3-row prefill, then single rows */
function inputs (count: number): Array<{ position: number, hidden: Float32Array }> {
  const out = [{ position: 0, hidden: Float32Array.from({ length: 3 * H }, (_, i) => Math.sin(i + 1)) }]
  for (let p = 3; p < count + 2; p++) out.push({ position: p, hidden: Float32Array.from({ length: H }, (_, i) => Math.cos(p * H + i)) })
  return out
}

describe('routing/replica-auditor', function () {
  this.timeout(60_000)
  const pool = new NodePool()
  let client: SwarmNode
  before(async function () { client = await pool.create() })
  after(async function () { await pool.stopAll() })

  function auditor (candidates: Candidate[], opts: { rate?: number, random?: () => number, referee?: HopReferee, events?: AuditEvent[] } = {}): ReplicaAuditor {
    return new ReplicaAuditor(client, { candidates: async () => candidates }, {
      rate: opts.rate ?? 1, modelId: 'm', hiddenSize: H, maxLength: 64, wireDtype: 'f32', random: opts.random, referee: opts.referee,
      onEvent: (e) => opts.events?.push(e), log: pino({ level: 'silent' })
    })
  }

  /** Runs the steps through the audited peer's span (`peer`) and the auditor; the verdicts. */
  async function run (a: ReplicaAuditor, hop: VerifiedHop, peer: FakeSpan, steps = inputs(10), key = 'hop'): Promise<HopCheck[]> {
    const out: HopCheck[] = []
    for (const s of steps) out.push(await a.check(hop, key, s.hidden, s.position, peer.step(s.hidden, s.position)))
    await a.release(key)
    return out
  }

  it('honest replica at a sampled rate: every audit agrees, and the replica computes each position once', async function () {
    const [audited, replica] = [await fakePeer(pool), await fakePeer(pool)]
    const a = auditor([candidate(audited.node, 1), candidate(replica.node, 2)], { rate: 0.4, random: seeded(7) })
    const verdicts = await run(a, { peerId: audited.node.peerId.toString(), start: 0, end: 4 }, new FakeSpan())
    assert.ok(verdicts.every((v) => v.verdict === 'ok' || v.verdict === 'unchecked'))
    const sampled = verdicts.filter((v) => v.verdict === 'ok').length
    assert.ok(sampled >= 2 && sampled < verdicts.length, `sampled ${sampled} of ${verdicts.length}`)
    assert.deepEqual({ sampled: a.stats.sampled, agreed: a.stats.agreed, mismatches: a.stats.mismatches }, { sampled, agreed: sampled, mismatches: 0 })
    assert.equal(a.stats.maxAgreeingRel, 0)
    // caught up in batches, never replayed twice: positions up to the last sampled step, once each
    const lastSampled = verdicts.map((v) => v.verdict).lastIndexOf('ok')
    const steps = inputs(10)
    assert.equal(replica.positions(), steps[lastSampled].position + steps[lastSampled].hidden.length / H)
    assert.equal(audited.positions(), 0, 'the audited peer is never asked')
  })

  it('a lying peer: the replica disagrees, a third peer sides with the replica, the verdict is wrong', async function () {
    const [audited, replica, referee] = [await fakePeer(pool), await fakePeer(pool), await fakePeer(pool)]
    const events: AuditEvent[] = []
    const a = auditor([candidate(audited.node, 1), candidate(replica.node, 2), candidate(referee.node, 3)], { events })
    const peerId = audited.node.peerId.toString()
    const verdicts = await run(a, { peerId, start: 0, end: 4 }, new FakeSpan(0.25, 6))
    // rows 0..5 honest (steps 0..3), the lie starts with the step at position 6
    assert.deepEqual(verdicts.map((v) => v.verdict), ['ok', 'ok', 'ok', 'ok', 'wrong', 'wrong', 'wrong', 'wrong', 'wrong', 'wrong'])
    assert.match(verdicts[4].detail!, /position 6 differs from replica/)
    // once caught, its later steps are refused without asking anyone (one referee call in all)
    assert.match(verdicts[5].detail!, /caught computing wrong outputs earlier/)
    assert.equal(events.filter((e) => e.outcome === 'liar').length, 1)
    assert.deepEqual(a.stats.liars, [peerId])
    const liar = events.find((e) => e.outcome === 'liar')!
    assert.equal(liar.referee, referee.node.peerId.toString())
    assert.ok(referee.positions() > 0)
  })

  it('a lying replica is the one excluded; the peer\'s output stands', async function () {
    const [audited, replica, referee] = [await fakePeer(pool), await fakePeer(pool, 0.25, 4), await fakePeer(pool)]
    const a = auditor([candidate(audited.node, 1), candidate(replica.node, 2), candidate(referee.node, 3)])
    const verdicts = await run(a, { peerId: audited.node.peerId.toString(), start: 0, end: 4 }, new FakeSpan())
    assert.ok(verdicts.every((v) => v.verdict === 'ok'))
    const replicaId = replica.node.peerId.toString()
    assert.deepEqual(verdicts[2].liars, [replicaId])
    assert.deepEqual(a.stats.liars, [replicaId])
    // later audits go to the honest third peer
    assert.equal(a.stats.mismatches, 1)
    assert.equal(a.stats.agreed, verdicts.length - 1)
  })

  it('the local referee decides before third peers', async function () {
    const [audited, replica, third] = [await fakePeer(pool), await fakePeer(pool), await fakePeer(pool)]
    const referee: HopReferee = {
      format: 'f32',
      recompute: async (_hop, steps) => { const s = new FakeSpan(); let o: Float32Array = new Float32Array(0); for (const x of steps) o = s.step(x.hidden, x.position); return o }
    }
    const events: AuditEvent[] = []
    const a = auditor([candidate(audited.node, 1), candidate(replica.node, 2), candidate(third.node, 3)], { referee, events })
    const verdicts = await run(a, { peerId: audited.node.peerId.toString(), start: 0, end: 4 }, new FakeSpan(1, 3))
    assert.equal(verdicts[1].verdict, 'wrong')
    assert.equal(events.find((e) => e.outcome === 'liar')?.referee, 'local')
    assert.equal(third.positions(), 0)
  })

  it('no referee agrees with either side: unsettled, nobody excluded', async function () {
    const [audited, replica, third] = [await fakePeer(pool), await fakePeer(pool, 0.5, 0), await fakePeer(pool, 2, 0)]
    const a = auditor([candidate(audited.node, 1), candidate(replica.node, 2), candidate(third.node, 3)])
    const [first] = await run(a, { peerId: audited.node.peerId.toString(), start: 0, end: 4 }, new FakeSpan(1, 0), inputs(1))
    assert.equal(first.verdict, 'unsettled')
    assert.deepEqual(a.stats.liars, [])
  })

  it('no replica serves the hop: steps are unchecked and counted', async function () {
    const audited = await fakePeer(pool)
    const events: AuditEvent[] = []
    const a = auditor([candidate(audited.node, 1)], { events })
    const verdicts = await run(a, { peerId: audited.node.peerId.toString(), start: 0, end: 4 }, new FakeSpan(), inputs(3))
    assert.ok(verdicts.every((v) => v.verdict === 'unchecked'))
    assert.equal(a.stats.noReplica, 3)
    assert.ok(events.every((e) => e.outcome === 'no_replica'))
  })

  it('a step that goes back (truncation) restarts the shadow from the kept history, cutting a straddling step', async function () {
    const [audited, replica] = [await fakePeer(pool), await fakePeer(pool)]
    const a = auditor([candidate(audited.node, 1), candidate(replica.node, 2)])
    const peer = new FakeSpan()
    const hop = { peerId: audited.node.peerId.toString(), start: 0, end: 4 }
    const steps = inputs(4)
    for (const s of steps) assert.equal((await a.check(hop, 'k', s.hidden, s.position, peer.step(s.hidden, s.position))).verdict, 'ok')
    // back to position 1, inside the 3-row prefill, with other rows: the peer keeps row 0 only,
    // so must the replica's history (the prefill is cut, not dropped)
    const again = Float32Array.from({ length: 2 * H }, (_, i) => i / 7)
    assert.equal((await a.check(hop, 'k', again, 1, peer.step(again, 1))).verdict, 'ok')
    const next = Float32Array.from({ length: H }, (_, i) => -i)
    assert.equal((await a.check(hop, 'k', next, 3, peer.step(next, 3))).verdict, 'ok')
    await a.release('k')
  })

  it('rejects a rate outside [0, 1]', function () {
    assert.throws(() => auditor([], { rate: 1.5 }), RangeError)
    assert.throws(() => auditor([], { rate: Number.NaN }), RangeError)
  })
})
