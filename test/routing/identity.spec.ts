import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { IdentityFileError, loadOrCreateIdentity } from '../../src/routing/identity.ts'
import { createSwarmNode } from '../../src/routing/node.ts'

describe('routing/identity', () => {
  let dir: string

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'strata-identity-'))
  })

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('creates an Ed25519 identity and keeps the same peer id after reloading', async () => {
    const file = path.join(dir, 'nested', 'peer.key')
    const first = await loadOrCreateIdentity(file)
    assert.equal(first.type, 'Ed25519')
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    const again = await loadOrCreateIdentity(file)
    assert.equal(peerIdFromPrivateKey(again).toString(), peerIdFromPrivateKey(first).toString())
    assert.deepEqual(await readFile(file), Buffer.from(privateKeyToProtobuf(first)))
  })

  it('writes the key 0600 and its new directory 0700 even under a permissive umask', async () => {
    const previous = process.umask(0)
    try {
      const file = path.join(dir, 'keys', 'peer.key')
      await loadOrCreateIdentity(file)
      assert.equal((await stat(file)).mode & 0o777, 0o600)
      assert.equal((await stat(path.dirname(file))).mode & 0o777, 0o700)
    } finally {
      process.umask(previous)
    }
  })

  it('gives a swarm node the same peer id across restarts', async () => {
    const file = path.join(dir, 'peer.key')
    const ids: string[] = []
    for (let i = 0; i < 2; i++) {
      const node = await createSwarmNode({ privateKey: await loadOrCreateIdentity(file) })
      ids.push(node.peerId.toString())
      await node.stop()
    }
    assert.equal(ids[0], ids[1])
  })

  it('gives concurrent creators the same identity', async () => {
    const file = path.join(dir, 'peer.key')
    const keys = await Promise.all(Array.from({ length: 8 }, async () => await loadOrCreateIdentity(file)))
    const ids = new Set(keys.map((k) => peerIdFromPrivateKey(k).toString()))
    assert.equal(ids.size, 1)
  })

  it('rejects a corrupt file and a non-Ed25519 key', async () => {
    const corrupt = path.join(dir, 'corrupt.key')
    await writeFile(corrupt, 'not a key')
    await assert.rejects(loadOrCreateIdentity(corrupt), IdentityFileError)
    const secp = path.join(dir, 'secp.key')
    await writeFile(secp, privateKeyToProtobuf(await generateKeyPair('secp256k1')))
    await assert.rejects(loadOrCreateIdentity(secp), IdentityFileError)
  })
})
