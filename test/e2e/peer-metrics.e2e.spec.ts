// A peer's Prometheus endpoint (--metrics-port) reflects the sessions it served.
import assert from 'node:assert/strict'
import { runCli } from '../helpers/cli.ts'
import { startSwarm, stopPeers, type TestSwarm } from '../helpers/swarm.ts'
import { tinyModel } from '../helpers/models.ts'

const shape = { layers: 4, hidden: 64, heads: 4, kvHeads: 2, intermediate: 96, vocab: 320, seed: 31 }

function metric (text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'))
  assert.ok(line !== undefined, `metric ${name} present`)
  return Number(line.split(' ').pop())
}

describe('peer metrics (real processes)', function () {
  this.timeout(90_000)
  let swarm: TestSwarm | null = null
  after(async function () { if (swarm !== null) await stopPeers(swarm.peers) })

  it('counts sessions, positions, steps and KV-cache memory', async function () {
    const dir = tinyModel('e2e', shape)
    swarm = await startSwarm(dir, [[0, 4]], [['--metrics-port', '0', '--cache-mb', '64']])
    const url = swarm.peers[0].events.find((e) => e.event === 'ready')?.metricsUrl as string
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    const r = await runCli(['generate', '--model', dir, '--prompt-ids', '1,2,3,4', '--max-new-tokens', '6', '--ignore-eos', '--json', '--bootstrap', swarm.bootstrap])
    assert.equal(r.code, 0, r.stderr)
    await swarm.peers[0].waitFor((e) => e.event === 'session_closed', 10_000)
    const text = await (await fetch(url)).text()
    assert.equal(metric(text, 'strata_peer_sessions_total{outcome="opened"}'), 1)
    assert.equal(metric(text, 'strata_peer_positions_total'), 4 + 5)
    assert.equal(metric(text, 'strata_peer_step_seconds_count{kind="decode"}'), 5)
    assert.equal(metric(text, 'strata_peer_step_seconds_count{kind="prefill"}'), 1)
    assert.equal(metric(text, 'strata_peer_kv_cache_capacity_bytes'), 64 * 1024 * 1024)
    assert.equal(metric(text, 'strata_peer_open_sessions'), 0)
    assert.equal(metric(text, 'strata_peer_kv_cache_bytes'), 0)
    assert.match(text, /strata_peer_info\{peer_id="[^"]+",model="[^"]+",start="0",end="4",version="[^"]+"\} 1/)
    assert.equal((await fetch(url.replace('/metrics', '/nope'))).status, 404)
  })
})
