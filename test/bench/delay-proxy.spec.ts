// The bench's wide-area link emulation: bytes arrive whole and in order however they were cut,
// each direction delayed, and the far side's end follows the last byte.
import assert from 'node:assert/strict'
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import { startDelayProxy } from '../../scripts/bench/delay-proxy.ts'

describe('bench delay proxy', function () {
  it('keeps every byte in order across many small writes spread over loop turns, and ends after the last', async function () {
    const received: Buffer[] = []
    const ended = Promise.withResolvers<void>()
    const sink = net.createServer((s) => {
      s.on('data', (d: Buffer) => received.push(d))
      s.on('end', () => { ended.resolve(); s.end() })
    })
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve))
    const proxy = await startDelayProxy((sink.address() as net.AddressInfo).port, { rttMs: 6, mbps: 5 })
    try {
      const socket = net.connect({ host: '127.0.0.1', port: proxy.port, noDelay: true })
      await new Promise((resolve) => socket.once('connect', resolve))
      const sent: Buffer[] = []
      for (let i = 0; i < 600; i++) {
        const chunk = randomBytes(1 + (i * 37) % 900)
        sent.push(chunk)
        socket.write(chunk)
        // separate reads at the proxy while the link is busy, at moments spread over each
        // millisecond: chunks queued for the link leave microseconds apart, and a timer per chunk
        // (on Node's millisecond loop clock, read once per loop turn) released them out of order
        await new Promise((resolve) => setImmediate(resolve))
        for (const t = performance.now(); performance.now() - t < (i % 7) * 0.05;);
      }
      const t0 = performance.now()
      socket.end()
      await ended.promise
      assert.ok(performance.now() - t0 >= 2, 'the end was delayed too')
      assert.ok(Buffer.concat(received).equals(Buffer.concat(sent)), 'the bytes arrived whole and in order')
      socket.destroy()
    } finally {
      await proxy.close()
      sink.close()
    }
  })
})
