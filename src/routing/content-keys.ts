// DHT content keys under which peers provide a model and each of its blocks.
// key = CIDv1(raw, sha256(JSON ["strata/<kind>/v1", modelId, block?])): the JSON array keeps
// (modelId, block) pairs unambiguous whatever characters the model id holds.
import { createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import * as Digest from 'multiformats/hashes/digest'

const SHA2_256 = 0x12

/** The key every peer serving any block of `modelId` provides. */
export function modelKey (modelId: string): CID {
  return keyOf(['strata/model/v1', modelId])
}

/** The key peers serving block `block` of `modelId` provide. */
export function blockKey (modelId: string, block: number): CID {
  return keyOf(['strata/block/v1', modelId, block])
}

function keyOf (parts: Array<string | number>): CID {
  const hash = createHash('sha256').update(JSON.stringify(parts)).digest()
  return CID.createV1(raw.code, Digest.create(SHA2_256, hash))
}
