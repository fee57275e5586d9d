// The peer's direct listener on a real loopback port: sockets beyond the unauthenticated limit are
// closed on arrival, slow ones when the handshake time is up, expired tokens admit nothing, and
// a good hello is answered with the key's proof and handed over.
import assert from 'node:assert/strict'
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import { DirectListener } from '../../src/peer/direct.ts'
import { ackProves, helloFor } from '../../src/protocol/direct.ts'
import { componentLogger } from '../../src/routing/logger.ts'

describe('peer/direct: listener', function () {
  let listener: DirectListener | null = null
  const sockets: net.Socket[] = []
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy()
    await listener?.close()
    listener = null
  })

  const connect = (port: number): net.Socket => {
    const s = net.connect(port, '127.0.0.1')
    s.on('error', () => {})
    sockets.push(s)
    return s
  }
  /** polls `cond` (the listener's own count) every 5 ms */
  const until = async (cond: () => boolean): Promise<void> => {
    while (!cond()) await new Promise((resolve) => setTimeout(resolve, 5))
  }
  const closed = async (s: net.Socket): Promise<void> => {
    if (!s.destroyed) await new Promise<void>((resolve) => s.once('close', () => { resolve() }))
  }

  it('closes sockets over the unauthenticated limit on arrival; admits again once they are gone', async () => {
    listener = await DirectListener.start('127.0.0.1', 0, componentLogger('test'), { maxUnauthenticated: 2, handshakeTimeoutMs: 60_000 })
    const l = listener
    const silent = [connect(l.port), connect(l.port)]
    await until(() => l.handshaking === 2)
    const extra = connect(l.port)
    await closed(extra)
    assert.ok(silent.every((s) => !s.destroyed), 'the sockets within the limit are still open')
    for (const s of silent) s.destroy()
    await until(() => l.handshaking === 0)
    const key = randomBytes(32)
    let delivered = 0
    const { token } = l.offer(key, (socket) => { delivered++; sockets.push(socket) })
    const good = connect(l.port)
    good.write(helloFor(Buffer.from(token, 'base64'), key))
    const ack = await new Promise<Buffer>((resolve) => good.once('data', resolve))
    assert.ok(ackProves(ack, key))
    assert.equal(delivered, 1)
  })

  it('closes a socket that does not finish its handshake in time', async () => {
    listener = await DirectListener.start('127.0.0.1', 0, componentLogger('test'), { handshakeTimeoutMs: 200 })
    const s = connect(listener.port)
    s.write(Buffer.alloc(5)) // a partial hello, then nothing
    await closed(s)
    assert.equal(listener.handshaking, 0)
  })

  it('admits nothing with an expired or revoked token', async () => {
    listener = await DirectListener.start('127.0.0.1', 0, componentLogger('test'), { tokenTtlMs: 50 })
    const key = randomBytes(32)
    let delivered = 0
    const expired = listener.offer(key, () => { delivered++ })
    const revoked = listener.offer(key, () => { delivered++ })
    revoked.revoke()
    await new Promise((resolve) => setTimeout(resolve, 100))
    for (const token of [expired.token, revoked.token]) {
      const s = connect(listener.port)
      s.write(helloFor(Buffer.from(token, 'base64'), key))
      await closed(s)
    }
    assert.equal(delivered, 0)
  })
})
