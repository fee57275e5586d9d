// Microbenchmark: one step/result round trip between two Node processes, through
//   libp2p   strata's MessageChannel over a libp2p stream (TCP + noise + yamux), as sessions run today;
//   tcp-gcm  a plain TCP socket carrying length-prefixed AES-256-GCM frames (node:crypto), read with
//            'data' events (tcp-gcm) or the socket's async iterator (tcp-gcm-iter), with and without
//            Nagle (setNoDelay);
//   tcp      the same frames unencrypted (the wire's floor);
//   direct   strata's DirectChannel (src/protocol/direct.ts), the direct data path sessions use.
// Messages are real step/result messages of hidden (1, 1, H) f32: H = 2048 → 8 KiB, 4096 → 16 KiB.
// Each mode runs back to back and with the client sleeping `idle` ms between round trips (the
// real case: every process waits while others compute). Medians of `rounds` round trips.
//
//   npx tsx scripts/bench/hop-transport.ts [--rounds 600] [--idle 3]
import '../../src/polyfill.ts'
import { fork, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import { createCipheriv, createDecipheriv } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { MessageChannel } from '../../src/protocol/channel.ts'
import { DirectChannel } from '../../src/protocol/direct.ts'
import { decodeMessage, encodeMessage, type Message } from '../../src/protocol/messages.ts'
import { createSwarmNode } from '../../src/routing/node.ts'

const PROTOCOL = '/strata/bench-echo/1.0.0'
const KEY = Buffer.alloc(32, 7)

interface Frames { send: (frame: Uint8Array) => void, next: () => Promise<Uint8Array> }

/** length-prefixed frames over a socket, optionally AES-256-GCM sealed with counter nonces */
function framed (socket: net.Socket, encrypt: boolean, iterate: boolean, dir: number): Frames {
  let sent = 0n
  let received = 0n
  const nonce = (d: number, n: bigint): Buffer => { const b = Buffer.alloc(12); b.writeUInt32BE(d, 0); b.writeBigUInt64BE(n, 4); return b }
  const seal = (plain: Uint8Array): Buffer => {
    if (!encrypt) return Buffer.concat([u32(plain.length), plain])
    const c = createCipheriv('aes-256-gcm', KEY, nonce(dir, sent++))
    const body = c.update(plain)
    c.final()
    return Buffer.concat([u32(body.length + 16), body, c.getAuthTag()])
  }
  const open = (frame: Buffer): Buffer => {
    if (!encrypt) return frame
    const d = createDecipheriv('aes-256-gcm', KEY, nonce(1 - dir, received++))
    d.setAuthTag(frame.subarray(frame.length - 16))
    const out = d.update(frame.subarray(0, frame.length - 16))
    d.final()
    return out
  }
  let buf: Buffer = Buffer.alloc(0)
  const queue: Uint8Array[] = []
  let wake: (() => void) | null = null
  const onData = (chunk: Buffer): void => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0)
      if (buf.length < 4 + len) break
      queue.push(open(buf.subarray(4, 4 + len)))
      buf = buf.subarray(4 + len)
    }
    if (queue.length > 0 && wake !== null) { const w = wake; wake = null; w() }
  }
  if (iterate) {
    void (async () => { for await (const chunk of socket) onData(chunk as Buffer) })().catch(() => {})
  } else {
    socket.on('data', onData)
  }
  return {
    send: (frame) => { socket.write(seal(frame)) },
    next: async () => {
      while (queue.length === 0) await new Promise<void>((resolve) => { wake = resolve })
      return queue.shift()!
    }
  }
}

function u32 (n: number): Buffer { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b }

/** the peer's answer to a step: a result of the same shape */
function answer (msg: Message): Message {
  if (msg.kind !== 'step') throw new Error(`expected step, got ${msg.kind}`)
  return { kind: 'result', stepId: msg.stepId, position: msg.position + 1, hidden: msg.hidden }
}

async function server (): Promise<void> {
  const node = await createSwarmNode({ listen: ['/ip4/127.0.0.1/tcp/0'], announcePrivate: true })
  await node.handle(PROTOCOL, async (stream) => {
    const ch = new MessageChannel(stream)
    for (;;) {
      let m: Message
      try { m = await ch.receive() } catch { return }
      await ch.send(answer(m))
    }
  }, { runOnLimitedConnection: true })
  const tcpServer = net.createServer((socket) => {
    socket.once('data', (hello) => {
      const [mode, nodelay] = hello.toString().split(',')
      if (mode === 'direct') {
        const ch = new DirectChannel(socket, KEY, 'peer')
        socket.write('ok')
        void (async () => { for (;;) await ch.send(answer(await ch.receive())) })().catch(() => {})
        return
      }
      socket.setNoDelay(nodelay === '1')
      const f = framed(socket, mode !== 'tcp', mode === 'tcp-gcm-iter', 1)
      socket.write('ok')
      void (async () => {
        for (;;) f.send(encodeMessage(answer(decodeMessage(await f.next()))))
      })().catch(() => {})
    })
  })
  await new Promise<void>((resolve) => tcpServer.listen(0, '127.0.0.1', resolve))
  process.on('disconnect', () => process.exit(0))
  process.send!({ peerId: node.peerId.toString(), addr: node.getMultiaddrs()[0].toString(), port: (tcpServer.address() as net.AddressInfo).port })
}

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }

async function client (): Promise<void> {
  const args = process.argv.slice(2)
  const opt = (name: string, d: number): number => { const i = args.indexOf(name); return i >= 0 ? Number(args[i + 1]) : d }
  const rounds = opt('--rounds', 600)
  const idle = opt('--idle', 3)
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--serve'], { execArgv: ['--import', 'tsx'], stdio: 'inherit' })
  const info = await new Promise<{ peerId: string, addr: string, port: number }>((resolve) => child.once('message', resolve as never))
  const { multiaddr } = await import('@multiformats/multiaddr')
  const node = await createSwarmNode({ listen: [] })
  const rows: Array<Record<string, string | number>> = []
  try {
    for (const hidden of [2048, 4096]) {
      const step = (i: number): Message => ({ kind: 'step', stepId: i, position: i, hidden: { dtype: 'f32', shape: [1, 1, hidden], data: new Float32Array(hidden).fill(0.5) } })
      const run = async (name: string, rt: (i: number) => Promise<void>): Promise<void> => {
        for (const pause of [0, idle]) {
          const times: number[] = []
          for (let i = 0; i < rounds + 50; i++) {
            if (pause > 0) await sleep(pause)
            const t0 = performance.now()
            await rt(i)
            if (i >= 50) times.push(performance.now() - t0)
          }
          rows.push({ mode: name, hidden, bytes: encodeMessage(step(0)).length, idleMs: pause, medianMs: Number(median(times).toFixed(3)), p90Ms: Number([...times].sort((a, b) => a - b)[Math.floor(times.length * 0.9)].toFixed(3)) })
        }
      }
      const stream = await node.dialProtocol(multiaddr(info.addr), PROTOCOL)
      const ch = new MessageChannel(stream)
      await run('libp2p', async (i) => { await ch.send(step(i)); await ch.receive() })
      await ch.close()
      {
        const socket = net.connect(info.port, '127.0.0.1')
        await new Promise<void>((resolve) => socket.once('connect', resolve))
        socket.write('direct,1')
        await new Promise<void>((resolve) => socket.once('data', () => { resolve() }))
        const direct = new DirectChannel(socket, KEY, 'client')
        await run('direct', async (i) => { await direct.send(step(i)); await direct.receive() })
        direct.abort('done')
      }
      for (const [mode, nodelay] of [['tcp', '1'], ['tcp-gcm', '1'], ['tcp-gcm', '0'], ['tcp-gcm-iter', '1']] as const) {
        const socket = net.connect(info.port, '127.0.0.1')
        await new Promise<void>((resolve) => socket.once('connect', resolve))
        socket.setNoDelay(nodelay === '1')
        socket.write(`${mode},${nodelay}`)
        await new Promise<void>((resolve) => socket.once('data', () => { resolve() }))
        const f = framed(socket, mode !== 'tcp', mode === 'tcp-gcm-iter', 0)
        await run(`${mode}${nodelay === '1' ? '' : ' (Nagle)'}`, async (i) => { f.send(encodeMessage(step(i))); decodeMessage(await f.next()) })
        socket.destroy()
      }
    }
  } finally {
    await node.stop()
    child.kill()
  }
  console.table(rows)
  console.log(JSON.stringify(rows))
}

if (process.argv.includes('--serve')) await server()
else await client()
