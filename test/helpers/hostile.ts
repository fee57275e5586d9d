// A hostile client for tests: a bare libp2p node (own key, own source address) that speaks the
// session protocol of src/protocol/ directly, opens sessions and holds them without stepping.
import assert from 'node:assert/strict'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { MessageChannel } from '../../src/protocol/channel.ts'
import { INFERENCE_PROTOCOL, type Message } from '../../src/protocol/messages.ts'
import type { PeerProcess } from '../../src/cli/local-swarm.ts'

export interface SessionTarget { peerId: string, multiaddrs: string[], modelId: string, blocks: [number, number] }

export interface HeldSession { channel: MessageChannel, sessionId: string }

export class HostileNode {
  readonly held: HeldSession[] = []
  /** error messages of refused opens, "code: message" */
  readonly refusals: string[] = []

  private constructor (readonly node: Libp2p) {}

  /** A node with a fresh key whose TCP connections leave from `localAddress` (any 127.x.y.z works on loopback). */
  static async start (localAddress: string): Promise<HostileNode> {
    const node = await createLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      addresses: { listen: [] },
      // net.connect's localAddress: libp2p passes dialOpts through to it
      transports: [tcp({ dialOpts: { localAddress } as Record<string, unknown> })],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()]
    })
    return new HostileNode(node)
  }

  /** Sends up to `count` valid opens, each on its own stream; keeps the opened ones, never steps. */
  async openMany (target: SessionTarget, count: number, maxLength: number): Promise<number> {
    const id = peerIdFromString(target.peerId)
    await this.node.peerStore.merge(id, { multiaddrs: target.multiaddrs.map((a) => multiaddr(a)) })
    let opened = 0
    for (let i = 0; i < count; i++) {
      const channel = new MessageChannel(await this.node.dialProtocol(id, INFERENCE_PROTOCOL, { signal: AbortSignal.timeout(10_000) }))
      const sessionId = `hostile-${this.node.peerId.toString().slice(-6)}-${i}`
      await channel.send({ kind: 'open', sessionId, modelId: target.modelId, start: target.blocks[0], end: target.blocks[1], maxLength, wireDtype: 'f32' })
      const reply = await channel.receive(AbortSignal.timeout(10_000))
      if (reply.kind === 'opened') {
        this.held.push({ channel, sessionId })
        opened++
      } else if (reply.kind === 'error') {
        this.refusals.push(`${reply.code}: ${reply.message}`)
        channel.abort('refused')
      } else {
        throw new Error(`unexpected reply ${reply.kind} to open`)
      }
    }
    return opened
  }

  /** Waits for the peer to end every held session; resolves with what it said (or 'closed'). */
  async heldSessionsEnded (timeoutMs: number): Promise<Array<Message | 'closed'>> {
    const signal = AbortSignal.timeout(timeoutMs)
    return await Promise.all(this.held.map(async ({ channel }) => {
      try {
        return await channel.receive(signal)
      } catch {
        if (signal.aborted) throw new Error(`a held session was not closed within ${timeoutMs} ms`)
        return 'closed' as const
      }
    }))
  }

  async stop (): Promise<void> {
    for (const h of this.held) h.channel.abort('test over')
    await this.node.stop()
  }
}

/** How a test names a peer process as a session target. */
export function targetOf (peer: PeerProcess): SessionTarget {
  const ready = peer.events.find((e) => e.event === 'ready')
  assert.ok(ready !== undefined)
  return { peerId: peer.peerId, multiaddrs: peer.multiaddrs, modelId: ready.modelId, blocks: peer.blocks }
}

/** An unlabelled Prometheus sample's value in `text` (0 when absent). */
export function metric (text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(name + ' '))
  return line === undefined ? 0 : Number(line.split(' ').pop())
}

/** The peer's /metrics text (it was started with --metrics-port). */
export async function metricsOf (peer: PeerProcess): Promise<string> {
  const url = peer.events.find((e) => e.event === 'ready')?.metricsUrl as string
  return await (await fetch(url)).text()
}
