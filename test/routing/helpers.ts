// Shared fixtures for routing tests: records, keys, and nodes that are always stopped.
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createSwarmNode, type SwarmNode, type SwarmNodeOptions } from '../../src/routing/node.ts'
import { signRecord, type PeerRecord } from '../../src/routing/records.ts'
import type { PrivateKey } from '@libp2p/interface'

export const MODEL = 'tiny-llama-test'

export interface TestIdentity {
  key: PrivateKey
  peerId: string
}

export async function newIdentity (): Promise<TestIdentity> {
  const key = await generateKeyPair('Ed25519')
  return { key, peerId: peerIdFromPrivateKey(key).toString() }
}

/** A valid record of `peerId`, expiring in a minute, with `overrides` applied. */
export function makeRecord (peerId: string, overrides: Partial<PeerRecord> = {}): PeerRecord {
  return {
    peerId,
    modelId: MODEL,
    arch: 'llama',
    multiaddrs: ['/ip4/127.0.0.1/tcp/4001'],
    start: 0,
    end: 4,
    state: 'online',
    throughput: 12.5,
    cacheTokensLeft: 4096,
    dtype: 'f32',
    version: '0.1.0',
    expiresAt: Date.now() + 60_000,
    seq: 1,
    ...overrides
  }
}

/** A signer that re-signs the record on every call, bumping seq (as a peer daemon would). */
export function recordSigner (id: TestIdentity, record: () => Partial<PeerRecord>): () => Uint8Array {
  let seq = 0
  return () => signRecord(makeRecord(id.peerId, { ...record(), seq: ++seq }), id.key)
}

/** Creates nodes on 127.0.0.1 and stops every one of them in `stopAll`. */
export class NodePool {
  private readonly nodes: SwarmNode[] = []

  async create (opts: SwarmNodeOptions = {}): Promise<SwarmNode> {
    const node = await createSwarmNode({ listen: ['/ip4/127.0.0.1/tcp/0'], ...opts })
    this.nodes.push(node)
    return node
  }

  async stopAll (): Promise<void> {
    await Promise.all(this.nodes.splice(0).map(async (n) => await n.stop()))
  }
}

/** The first listen address of `node`, with its /p2p/ id. */
export function addrOf (node: SwarmNode): string {
  return node.getMultiaddrs()[0].toString()
}
