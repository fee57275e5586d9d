// GET /healthz on a peer's metrics port: what the container HEALTHCHECK asks.
import assert from 'node:assert/strict'
import type { Server } from 'node:http'
import { PeerMetrics, type PeerHealth } from '../../src/peer/metrics.ts'

describe('peer /healthz next to /metrics', function () {
  let server: Server | null = null
  afterEach(async function () {
    await new Promise((resolve) => server === null ? resolve(null) : server.close(resolve))
    server = null
  })

  it('answers 200 while the peer serves and 503 while it joins or drains', async function () {
    let health: PeerHealth = { serving: false, state: 'joining', peerId: '12D3KooWtest', blocks: [0, 4], openSessions: 0 }
    const metrics = new PeerMetrics({ openSessions: () => 0, kvUsedBytes: () => 0, kvCapacityBytes: () => 1 },
      () => ({ peerId: '12D3KooWtest', modelId: 'm', start: 0, end: 4, version: '0' }))
    const bound = await metrics.listen(0, '127.0.0.1', () => health)
    server = bound.server
    const url = `http://127.0.0.1:${bound.port}/healthz`

    let res = await fetch(url)
    assert.equal(res.status, 503)
    assert.deepEqual(await res.json(), { status: 'not serving', ...health })

    health = { ...health, serving: true, state: 'online', openSessions: 2 }
    res = await fetch(url)
    assert.equal(res.status, 200)
    assert.deepEqual(await res.json(), { status: 'serving', ...health })

    health = { ...health, serving: false, state: 'draining' }
    assert.equal((await fetch(url)).status, 503)
    // the metrics are still there; anything else is a 404 naming both routes
    assert.equal((await fetch(`http://127.0.0.1:${bound.port}/metrics`)).status, 200)
    res = await fetch(`http://127.0.0.1:${bound.port}/health`)
    assert.equal(res.status, 404)
    assert.match(await res.text(), /\/metrics or GET \/healthz/)
  })
})
