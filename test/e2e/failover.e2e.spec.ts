// Issue: fault-tolerant generation. Peers are killed (SIGKILL) or shut down (SIGTERM) in the
// middle of a long generation; the tokens must equal the uninterrupted run's.
import assert from 'node:assert/strict'
import { GenerateProcess, startSwarm, stopPeers, type PeerProcess, type TestSwarm } from '../helpers/swarm.ts'
import { tinyModel } from '../helpers/models.ts'
import { e2eShape, localTokens } from '../helpers/local.ts'

const N = 150

describe('re-routing mid-generation keeps the output identical (real processes)', function () {
  this.timeout(180_000)
  const dir = tinyModel('e2e', e2eShape)
  const prompt = [1, 11, 22, 33]
  let expected: number[]
  let swarm: TestSwarm | null = null
  before(async function () { expected = await localTokens(dir, prompt, N) })
  afterEach(async function () { if (swarm !== null) await stopPeers(swarm.peers); swarm = null })

  function generate (bootstrap: string, extra: string[] = []): GenerateProcess {
    return new GenerateProcess(['--model', dir, '--prompt-ids', prompt.join(','), '--max-new-tokens', String(N), '--ignore-eos', '--bootstrap', bootstrap, ...extra])
  }

  /** The peer that served blocks [start, …) for token `index`. */
  async function servingPeer (gen: GenerateProcess, index: number, start: number): Promise<PeerProcess> {
    const e = await gen.waitFor((x) => x.event === 'token' && x.index === index)
    const hop = (e.route as Array<{ peer: string, start: number }>).find((h) => h.start === start)
    assert.ok(hop !== undefined, `a hop starts at block ${start}`)
    const peer = swarm!.peers.find((p) => p.peerId === hop.peer)
    assert.ok(peer !== undefined)
    return peer
  }

  async function finish (gen: GenerateProcess): Promise<Record<string, any>> {
    const done = await gen.waitFor((x) => x.event === 'done', 120_000)
    assert.equal(await gen.exited, 0, gen.errors)
    return done
  }

  it('kill -9 of the peer serving a span after some tokens', async function () {
    swarm = await startSwarm(dir, [[0, 2], [2, 4], [2, 4]])
    const gen = generate(swarm.bootstrap)
    const victim = await servingPeer(gen, 5, 2)
    victim.kill('SIGKILL')
    const done = await finish(gen)
    assert.deepEqual(done.tokens, expected)
    assert.ok(done.reroutes >= 1, `reroutes ${done.reroutes}`)
    const last = gen.events.filter((e) => e.event === 'token').pop()!
    assert.ok(!last.route.some((h: { peer: string }) => h.peer === victim.peerId), 'later tokens avoid the dead peer')
  })

  it('graceful shutdown (SIGTERM) of a serving peer mid-generation', async function () {
    swarm = await startSwarm(dir, [[0, 2], [2, 4], [2, 4]])
    const gen = generate(swarm.bootstrap)
    const victim = await servingPeer(gen, 5, 2)
    victim.kill('SIGTERM')
    const done = await finish(gen)
    assert.deepEqual(done.tokens, expected)
    assert.ok(done.reroutes >= 1)
    assert.equal(await victim.exited, 0, 'the drained peer exits cleanly')
    assert.ok(victim.events.some((e) => e.event === 'draining'))
  })

  it('a replacement whose span boundaries differ from the failed peer', async function () {
    // with [0,2) [2,4) [1,4) the chain is either [0,2)+[2,4) or [0,1)+[1,4); whichever second
    // hop dies, no other peer starts at its first block, so the replacement re-splits the model
    swarm = await startSwarm(dir, [[0, 2], [2, 4], [1, 4]])
    const gen = generate(swarm.bootstrap)
    const e = await gen.waitFor((x) => x.event === 'token' && x.index === 5)
    const before = (e.route as Array<{ peer: string, start: number, end: number }>)
    assert.equal(before.length, 2)
    const victim = swarm.peers.find((p) => p.peerId === before[1].peer)!
    victim.kill('SIGKILL')
    const done = await finish(gen)
    assert.deepEqual(done.tokens, expected)
    const after = gen.events.filter((x) => x.event === 'token').pop()!.route as Array<{ start: number, end: number }>
    const bounds = (r: Array<{ start: number, end: number }>): string => r.map((h) => `${h.start}-${h.end}`).join(' ')
    assert.notEqual(bounds(after), bounds(before))
    assert.equal(after.length, 2)
  })

  it('two failures in one generation', async function () {
    swarm = await startSwarm(dir, [[0, 2], [2, 4], [2, 4], [2, 4]])
    const gen = generate(swarm.bootstrap)
    const first = await servingPeer(gen, 5, 2)
    first.kill('SIGKILL')
    const second = await servingPeer(gen, gen.events.filter((e) => e.event === 'token').length + 5, 2)
    assert.notEqual(second.peerId, first.peerId)
    second.kill('SIGKILL')
    const done = await finish(gen)
    assert.deepEqual(done.tokens, expected)
    assert.ok(done.reroutes >= 2, `reroutes ${done.reroutes}`)
  })

  it('all replicas of a block gone: a clear error naming the blocks, no hang', async function () {
    swarm = await startSwarm(dir, [[0, 2], [2, 4]])
    const gen = generate(swarm.bootstrap)
    const victim = await servingPeer(gen, 3, 2)
    victim.kill('SIGKILL')
    const code = await Promise.race([gen.exited, new Promise((resolve) => setTimeout(() => resolve('hang'), 60_000))])
    assert.notEqual(code, 'hang', 'the client gave up in time')
    assert.notEqual(code, 0)
    assert.match(gen.errors, /no peer serves blocks 2-3/)
  })

  describe('in push mode (peers push to each other)', function () {
    for (const [name, spans, start, signal] of [
      ['kill -9 of the second peer', [[0, 2], [2, 4], [2, 4]], 2, 'SIGKILL'],
      ['kill -9 of the first peer (it was pushing to the second)', [[0, 2], [0, 2], [2, 4]], 0, 'SIGKILL'],
      ['graceful shutdown (SIGTERM) of the second peer', [[0, 2], [2, 4], [2, 4]], 2, 'SIGTERM']
    ] as Array<[string, Array<[number, number]>, number, NodeJS.Signals]>) {
      it(name, async function () {
        swarm = await startSwarm(dir, spans)
        const gen = generate(swarm.bootstrap, ['--push'])
        const victim = await servingPeer(gen, 5, start)
        victim.kill(signal)
        const done = await finish(gen)
        assert.deepEqual(done.tokens, expected)
        assert.ok(done.reroutes >= 1, `reroutes ${done.reroutes}`)
        const last = gen.events.filter((e) => e.event === 'token').pop()!
        assert.ok(!last.route.some((h: { peer: string }) => h.peer === victim.peerId), 'later tokens avoid the peer that left')
        // the new chain pushes too: its first peer forwarded steps in a session of its own
        const firstHop = swarm!.peers.find((p) => p.peerId === last.route[0].peer)!
        const sessions = firstHop.peerId === gen.events.find((e) => e.event === 'token')!.route[0].peer ? 2 : 1
        await firstHop.waitFor((e) => e.event === 'session_closed' && e.pushedOut > 0 && firstHop.events.filter((x) => x.event === 'session_closed' && x.pushedOut > 0).length >= sessions, 10_000)
      })
    }
  })
})
