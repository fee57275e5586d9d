// A peer's persistent identity: an Ed25519 key stored as libp2p protobuf bytes, so the peer keeps
// its peer id (and its place in the swarm) across restarts.
import { randomBytes } from 'node:crypto'
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'

/** The identity file exists but does not hold a usable Ed25519 key. */
export class IdentityFileError extends Error {
  override name = 'IdentityFileError'
}

/**
 * Loads the key in `file`, or creates one there when the file does not exist: mode 0600 (and
 * 0700 for directories it creates), whatever the umask.
 */
export async function loadOrCreateIdentity (file: string): Promise<PrivateKey> {
  const existing = await readKey(file)
  if (existing != null) {
    return existing
  }
  const key = await generateKeyPair('Ed25519')
  // a directory created for the key is private too (an existing one is left as it is)
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
  // write to a temporary file, then link it into place: the identity file appears complete or
  // not at all, and if another process created it meanwhile, its key wins.
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600, flag: 'wx' })
  try {
    await link(tmp, file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw err
    }
    return await loadOrCreateIdentity(file)
  } finally {
    await unlink(tmp)
  }
  return key
}

async function readKey (file: string): Promise<PrivateKey | undefined> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined
    }
    throw err
  }
  let key: PrivateKey
  try {
    key = privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new IdentityFileError(`${file} does not hold a libp2p private key: ${(err as Error).message}`)
  }
  if (key.type !== 'Ed25519') {
    throw new IdentityFileError(`${file} holds a ${key.type} key; strata identities are Ed25519`)
  }
  return key
}
