// Issue #11 item 2: trust without local weights. `--audit-rate` cross-checks hop steps against
// replicas serving the same blocks. Honest replicas computing with other thread counts raise no
// alarm; a peer corrupting a fifth of its steps (`--inject-fault corrupt --fault-rate 0.2`) is
// caught, a third peer (or the gateway's own weights) referees, the liar is excluded and
// reported (--json, logs, /metrics), and the tokens equal local generation.
import assert from 'node:assert/strict'
import { jsonLines, runCli } from '../helpers/cli.ts'
import { spawn } from 'node:child_process'
import { GenerateProcess, PeerProcess, STRATA_BIN, startPeer, startSwarm, stopPeers, type TestSwarm } from '../helpers/swarm.ts'
import { tinyModel } from '../helpers/models.ts'
import { e2eShape, localTokens } from '../helpers/local.ts'

const N = 16

describe('generate --audit-rate cross-checks peers against replicas (real processes)', function () {
  this.timeout(240_000)
  const dir = tinyModel('e2e', e2eShape)
  const prompt = [1, 7, 77, 177]
  const args = ['--model', dir, '--prompt-ids', prompt.join(','), '--max-new-tokens', String(N), '--ignore-eos']
  let expected: number[]
  // every span twice, the replicas with another thread count; a liar joins in the second test.
  // The honest peers of [2, 4) announce a very slow link (--network-mbps), so the planner routes
  // that span through the liar once it is there (it always carries the hop: no timing tricks),
  // while audits, which pick replicas by span and format, still use them.
  let swarm: TestSwarm
  const extra: PeerProcess[] = []
  const slowLink = ['--network-mbps', '0.01']

  before(async function () {
    expected = await localTokens(dir, prompt, N)
    swarm = await startSwarm(dir, [[0, 2], [0, 2], [2, 4], [2, 4]], [['--threads', '1'], ['--threads', '2'], ['--threads', '1', ...slowLink], ['--threads', '2', ...slowLink]])
  })
  after(async function () { await stopPeers([...swarm?.peers ?? [], ...extra]) })

  it('bad audit and fault flags exit non-zero with a clear message', async function () {
    const cases: Array<[string[], RegExp]> = [
      [['generate', ...args, '--audit-rate', '1.5', '--bootstrap', swarm.bootstrap], /--audit-rate.*expected a number in \[0, 1\], got "1\.5"/],
      [['generate', ...args, '--audit-rate', '0.5'], /--audit-rate checks swarm peers: give --bootstrap too/],
      [['generate', ...args, '--audit-rate', '0.5', '--verify', '--bootstrap', swarm.bootstrap], /--verify recomputes every hop step locally; --audit-rate .*give one of them/],
      [['generate', ...args, '--audit-rate', '0.5', '--audit-referee', 'nobody', '--bootstrap', swarm.bootstrap], /--audit-referee.*Allowed choices are auto, replicas/],
      [['peer', '--model', dir, '--fault-rate', '0.5'], /--fault-rate needs --inject-fault corrupt or slow/],
      [['peer', '--model', dir, '--inject-fault', 'corrupt', '--fault-rate', '0'], /--fault-rate.*expected a number/]
    ]
    await Promise.all(cases.map(async ([a, re]) => {
      const r = await runCli(a, 60_000)
      assert.notEqual(r.code, 0, a.join(' '))
      assert.match(r.stderr, re, a.join(' '))
    }))
  })

  it('honest replicas with different thread counts: audits agree, no alarm, tokens equal local', async function () {
    const r = await runCli(['generate', ...args, '--json', '--audit-rate', '0.5', '--bootstrap', swarm.bootstrap], 120_000)
    assert.equal(r.code, 0, r.stderr)
    const done = jsonLines(r.stdout).at(-1)!
    assert.equal(done.event, 'done')
    assert.deepEqual(done.tokens, expected)
    const audit = done.audit
    assert.equal(audit.rate, 0.5)
    // two hops × (prefill + N steps) at rate 0.5: some are sampled, all of them agree
    assert.ok(audit.sampled >= 1, JSON.stringify(audit))
    assert.equal(audit.agreed, audit.sampled, JSON.stringify(audit))
    assert.equal(audit.mismatches, 0)
    assert.deepEqual(audit.liars, [])
    assert.deepEqual(done.rejectedPeers, [])
    assert.equal(done.reroutes, 0)
    assert.ok(audit.maxAgreeingRel < 1e-4, `honest spread ${audit.maxAgreeingRel}`)
  })

  it('a peer corrupting every 5th step is caught, a third peer referees, tokens equal local', async function () {
    const liar = await startPeer(dir, ['--blocks', '2:4', '--bootstrap', swarm.bootstrap, '--inject-fault', 'corrupt', '--fault-rate', '0.2'], 'peer[2,4) liar')
    extra.push(liar)
    // the client must find the liar's record (else it routes over the honest, slower replicas)
    await listed(swarm.bootstrap, liar.peerId)
    const gen = new GenerateProcess([...args, '--audit-rate', '1', '--audit-referee', 'replicas', '--bootstrap', swarm.bootstrap])
    const done = await gen.waitFor((e) => e.event === 'done', 150_000)
    assert.equal(await gen.exited, 0, gen.errors)
    assert.deepEqual(done.tokens, expected)
    assert.deepEqual(done.audit.liars, [liar.peerId], JSON.stringify(done.audit))
    assert.deepEqual(done.rejectedPeers, [liar.peerId])
    assert.ok(done.audit.mismatches >= 1)
    assert.ok(done.rerouteLog.some((r: { failedPeer: string, reason: string }) => r.failedPeer === liar.peerId && r.reason === 'bad_output'), JSON.stringify(done.rerouteLog))
    const tokens = gen.events.filter((x) => x.event === 'token')
    assert.ok(tokens[0].route.some((h: { peer: string }) => h.peer === liar.peerId), 'the liar carried the hop at first')
    assert.ok(!tokens.at(-1)!.route.some((h: { peer: string }) => h.peer === liar.peerId), 'the liar is routed around')
    assert.match(gen.errors, /audit: peer caught computing wrong outputs/)
  })

  it('serve --audit-rate: the gateway\'s weights referee, the liar shows in /metrics, the completion equals local', async function () {
    const liar = extra[0]
    const child = spawn(process.execPath, [STRATA_BIN, 'serve', '--model', dir, '--bootstrap', swarm.bootstrap, '--port', '0', '--json', '--audit-rate', '1'], { stdio: ['ignore', 'pipe', 'pipe'] })
    const serve = new PeerProcess(child, 'serve')
    extra.push(serve)
    const { url, model } = await serve.waitFor((e) => e.event === 'listening', 90_000)
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, prompt, max_tokens: N, temperature: 0, ignore_eos: true, return_token_ids: true })
    })
    const body = await res.json() as { choices: Array<{ token_ids: number[] }> }
    assert.equal(res.status, 200, JSON.stringify(body))
    assert.deepEqual(body.choices[0].token_ids, expected)
    const metrics = await (await fetch(`${url}/metrics`)).text()
    assert.match(metrics, /^strata_audit_liars_total 1$/m)
    assert.match(metrics, /^strata_audits_total\{outcome="liar"\} 1$/m)
    assert.match(metrics, /^strata_audits_total\{outcome="agree"\} [1-9]/m)
    assert.match(serve.stderr, /audit caught a peer computing wrong outputs/)
    assert.match(serve.stderr, /"referee":"local"/)
    assert.ok(serve.stderr.includes(`"liar":"${liar.peerId}"`), 'the log names the liar')
  })
})

/** Resolves once `strata health` lists `peerId`: its record is in the DHT for clients to find. */
async function listed (bootstrap: string, peerId: string): Promise<void> {
  const deadline = Date.now() + 60_000
  for (;;) {
    const r = await runCli(['health', '--json', '--bootstrap', bootstrap], 30_000)
    if (r.code === 0 && (JSON.parse(r.stdout) as { peers: Array<{ peerId: string }> }).peers.some((p) => p.peerId === peerId)) return
    if (Date.now() > deadline) throw new Error(`strata health did not list ${peerId} within 60 s`)
  }
}

