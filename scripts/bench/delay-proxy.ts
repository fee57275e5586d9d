// A TCP proxy that makes a loopback link look like a wide-area one (this kernel has no netem):
// each chunk is held for half the round trip, then released no faster than the link's rate, in
// order, in each direction separately. Bench-only.
import net from 'node:net'

export interface LinkShape {
  /** added round-trip time, ms (half each way) */
  rttMs: number
  /** bandwidth each way, Mbit/s (Infinity: unlimited) */
  mbps: number
}

export interface DelayProxy {
  /** the port to dial instead of the target's */
  port: number
  /** connections accepted so far */
  readonly connections: number
  close: () => Promise<void>
}

/**
 * One direction of a link: chunks leave at max(arrival + delay, when the link is free again), in
 * arrival order. One queue and one timer per direction: a timer per chunk would reorder bytes,
 * since Node fires timers on a millisecond clock sampled once per loop turn, so a chunk that
 * arrived later could fire first (seen as noise failing to authenticate, a dropped connection).
 * The far side's end follows the last chunk.
 */
function pipeDelayed (from: net.Socket, to: net.Socket, link: LinkShape): void {
  const oneWayMs = link.rttMs / 2
  const bytesPerMs = link.mbps === Infinity ? Infinity : (link.mbps * 1e6) / 8 / 1000
  const queue: Array<{ chunk: Buffer | null, at: number }> = []
  let linkFreeAt = 0
  let queued = 0
  let timer: ReturnType<typeof setTimeout> | null = null
  const release = (): void => {
    timer = null
    const now = performance.now()
    while (queue.length > 0 && queue[0].at <= now) {
      const { chunk } = queue.shift()!
      if (chunk === null) {
        to.end()
        continue
      }
      queued -= chunk.length
      if (!to.destroyed) to.write(chunk)
    }
    // back-pressure: stop reading while a lot is in flight, as a real link's buffers would fill
    if (queued <= 8 * 1024 ** 2 && from.isPaused()) from.resume()
    if (queue.length > 0) timer = setTimeout(release, Math.max(0, queue[0].at - now))
  }
  const enqueue = (chunk: Buffer | null, at: number): void => {
    queue.push({ chunk, at })
    timer ??= setTimeout(release, Math.max(0, at - performance.now()))
  }
  from.on('data', (chunk: Buffer) => {
    const now = performance.now()
    const sendAt = Math.max(now + oneWayMs, linkFreeAt)
    linkFreeAt = sendAt + chunk.length / bytesPerMs
    queued += chunk.length
    if (queued > 8 * 1024 ** 2) from.pause()
    enqueue(chunk, linkFreeAt)
  })
  from.on('end', () => { enqueue(null, Math.max(performance.now() + oneWayMs, linkFreeAt)) })
}

/** Listens on 127.0.0.1 and forwards every connection to `targetPort` over an emulated link. */
export async function startDelayProxy (targetPort: number, link: LinkShape, host = '127.0.0.1'): Promise<DelayProxy> {
  const sockets = new Set<net.Socket>()
  let connections = 0
  const server = net.createServer((client) => {
    connections++
    const upstream = net.connect({ host, port: targetPort, noDelay: true })
    client.setNoDelay(true)
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('close', () => { sockets.delete(s) })
      s.on('error', () => { client.destroy(); upstream.destroy() })
    }
    pipeDelayed(client, upstream, link)
    pipeDelayed(upstream, client, link)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => { resolve() })
  })
  return {
    port: (server.address() as net.AddressInfo).port,
    get connections () { return connections },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}
