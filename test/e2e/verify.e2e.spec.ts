// Issue: `strata generate --verify` checks untrusted peers. A peer started with
// `--inject-fault corrupt` perturbs its outputs; without verification its wrong answers go
// straight into the tokens, with verification the client recomputes every hop locally, catches
// the peer, routes around it and still produces exactly the local tokens.
import assert from 'node:assert/strict'
import { runCli, jsonLines } from '../helpers/cli.ts'
import { GenerateProcess, startPeer, startSwarm, stopPeers, type PeerProcess, type TestSwarm } from '../helpers/swarm.ts'
import { tinyModel } from '../helpers/models.ts'
import { e2eShape, localTokens } from '../helpers/local.ts'

const N = 24

describe('generate --verify catches a peer computing wrong outputs (real processes)', function () {
  this.timeout(180_000)
  const dir = tinyModel('e2e', e2eShape)
  const prompt = [1, 7, 77, 177]
  const args = ['generate', '--model', dir, '--prompt-ids', prompt.join(','), '--max-new-tokens', String(N), '--ignore-eos', '--json']
  let expected: number[]
  // blocks [0, 2) honest, [2, 4) only on the corrupt peer; an honest replica joins in the last test
  let swarm: TestSwarm
  let corrupt: PeerProcess
  const extra: PeerProcess[] = []

  before(async function () {
    expected = await localTokens(dir, prompt, N)
    swarm = await startSwarm(dir, [[0, 2], [2, 4]], [[], ['--inject-fault', 'corrupt']])
    corrupt = swarm.peers[1]
  })
  after(async function () { await stopPeers([...swarm?.peers ?? [], ...extra]) })

  it('without --verify, the corrupt peer\'s outputs change the tokens', async function () {
    const r = await runCli([...args, '--bootstrap', swarm.bootstrap])
    assert.equal(r.code, 0, r.stderr)
    const events = jsonLines(r.stdout)
    const done = events[events.length - 1]
    assert.equal(done.event, 'done')
    assert.ok(events[0].route.some((h: { peer: string }) => h.peer === corrupt.peerId), 'the corrupt peer is routed')
    assert.notDeepEqual(done.tokens, expected)
    assert.equal(done.verifiedSteps, undefined)
  })

  it('with --verify and no honest replica: a clear error naming the blocks and the reason, no hang', async function () {
    // a hang would hit runCli's deadline and fail here
    const r = await runCli([...args, '--verify', '--bootstrap', swarm.bootstrap], 60_000)
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /strata: error: no peer serves blocks 2-3 .*excluded after failing: peer \S+ \(bad_output\)/)
    assert.ok(r.stderr.includes(corrupt.peerId.slice(-8)), 'the error names the corrupt peer')
    assert.ok(!jsonLines(r.stdout).some((e) => e.event === 'token'), 'no token came from the wrong outputs')
  })

  it('with --verify and an honest replica: the corrupt peer is routed around, tokens equal local generation', async function () {
    // The honest replica must not be chosen before the corrupt peer, or nothing is caught: it is
    // stopped (SIGSTOP) while the client discovers peers, so only the corrupt peer is reachable
    // for blocks [2, 4), and resumed as soon as the corrupt peer opens the session.
    const honest = await startPeer(dir, ['--blocks', '2:4', '--bootstrap', swarm.bootstrap], 'peer[2,4) honest')
    extra.push(honest)
    honest.proc.kill('SIGSTOP')
    const seen = corrupt.events.length
    const gen = new GenerateProcess([...args.slice(1), '--verify', '--bootstrap', swarm.bootstrap])
    await corrupt.waitFor((e) => e.event === 'session_opened' && corrupt.events.indexOf(e) >= seen, 60_000)
    honest.proc.kill('SIGCONT')
    const done = await gen.waitFor((e) => e.event === 'done', 120_000)
    assert.equal(await gen.exited, 0, gen.errors)
    assert.deepEqual(done.tokens, expected)
    assert.ok(done.reroutes >= 1, `reroutes ${done.reroutes}`)
    assert.ok(done.rerouteLog.some((r: { failedPeer: string, reason: string }) => r.failedPeer === corrupt.peerId && r.reason === 'bad_output'), JSON.stringify(done.rerouteLog))
    assert.deepEqual(done.rejectedPeers, [corrupt.peerId])
    // every token went through two hops, each verified (plus the prefill and its replay)
    assert.ok(done.verifiedSteps >= 2 * N, `verified steps ${done.verifiedSteps}`)
    for (const e of gen.events.filter((x) => x.event === 'token')) {
      assert.ok(!e.route.some((h: { peer: string }) => h.peer === corrupt.peerId), `token ${e.index} avoided the corrupt peer`)
    }
    const last = gen.events.filter((x) => x.event === 'token').pop()!
    assert.ok(last.route.some((h: { peer: string }) => h.peer === honest.peerId), 'the honest replica serves blocks [2, 4)')
  })
})
