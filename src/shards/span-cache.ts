// Built spans on disk. Quantizing a span in JS takes most of an int8/int4 load (widening 16-bit
// weights to f32 most of an F16/BF16 one), and the result depends only on the checkpoint files,
// the span and the graph, so the built graph
// (model.onnx + weights.bin, as onnxruntime loads it) is written once to
// `<cache dir>/spans/<key>/` and a restart or a rebalancing move back onto the span loads that.
//
// Key: sha256 over the identity of the shard files the span read (absolute path, size, mtime),
// the weight format, the span, the quantizer's version, and the graph skeleton (every node, attribute
// and small initializer, i.e. config-derived values such as norms and rope tables): a changed
// checkpoint or a changed graph builder never meets an old entry.
//
// An entry is built in a temporary directory next to it and renamed into place whole, its
// manifest.json listing each file's size and sha256; an entry whose files do not match (a crash
// mid-copy, a flipped bit, a truncated file) is removed and built again.
import { createHash, randomBytes } from 'node:crypto'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { GraphBuilder } from './onnx/builder.ts'
import { QUANTIZER_VERSION } from './quantize.ts'

const MANIFEST = 'manifest.json'
const FILES = ['model.onnx', 'weights.bin'] as const
/** bump when the entry layout changes */
const LAYOUT_VERSION = 1

export interface SpanCacheKey {
  /** the checkpoint files the span's tensors came from (absolute paths) */
  files: string[]
  format: string
  start: number
  end: number
  /** GraphBuilder.skeleton() of the span graph */
  skeleton: Uint8Array
}

/** hit: loaded from the cache; stored: built and written; rebuilt: an entry was invalid and was replaced */
export type SpanCacheOutcome = 'hit' | 'stored' | 'rebuilt'

interface Manifest {
  version: number
  key: string
  files: Record<string, { size: number, sha256: string }>
}

export class SpanCache {
  readonly dir: string

  constructor (cacheDir: string) {
    this.dir = path.join(cacheDir, 'spans')
  }

  /** The entry id for `key`: hashes the files' identity as of now (stat only, no reads). */
  keyOf (key: SpanCacheKey): string {
    const h = createHash('sha256')
    h.update(JSON.stringify({
      layout: LAYOUT_VERSION,
      quantizer: QUANTIZER_VERSION,
      files: key.files.map((f) => { const st = statSync(f); return [path.resolve(f), st.size, st.mtimeMs] }),
      format: key.format,
      span: [key.start, key.end]
    }))
    h.update(key.skeleton)
    return h.digest('hex').slice(0, 40)
  }

  /**
   * The model path of the valid entry for `id`, building it from `graph` when it is missing or
   * invalid (then the invalid one is removed first).
   */
  modelFor (id: string, graph: GraphBuilder): { model: string, outcome: SpanCacheOutcome } {
    const entry = path.join(this.dir, id)
    let outcome: SpanCacheOutcome = 'stored'
    if (existsSync(entry)) {
      if (this.valid(entry, id)) return { model: path.join(entry, FILES[0]), outcome: 'hit' }
      rmSync(entry, { recursive: true, force: true })
      outcome = 'rebuilt'
    }
    this.store(entry, id, graph)
    return { model: path.join(entry, FILES[0]), outcome }
  }

  /** Removes the entry `id` (onnxruntime refused to load it). */
  drop (id: string): void {
    rmSync(path.join(this.dir, id), { recursive: true, force: true })
  }

  private store (entry: string, id: string, graph: GraphBuilder): void {
    mkdirSync(this.dir, { recursive: true })
    const tmp = `${entry}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
    try {
      graph.toDirectory(tmp)
      const manifest: Manifest = { version: LAYOUT_VERSION, key: id, files: {} }
      for (const f of FILES) manifest.files[f] = fileDigest(path.join(tmp, f))
      writeFileSync(path.join(tmp, MANIFEST), JSON.stringify(manifest, null, 1) + '\n')
      try {
        renameSync(tmp, entry)
      } catch (err) {
        // another process stored the same entry first: keep theirs if it is whole
        if (!existsSync(entry) || !this.valid(entry, id)) throw err
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true })
    }
  }

  private valid (entry: string, id: string): boolean {
    let manifest: Manifest
    try {
      manifest = JSON.parse(readFileSync(path.join(entry, MANIFEST), 'utf8')) as Manifest
    } catch {
      return false
    }
    if (manifest?.version !== LAYOUT_VERSION || manifest.key !== id || typeof manifest.files !== 'object' || manifest.files === null) return false
    return FILES.every((f) => {
      const want = manifest.files[f]
      const file = path.join(entry, f)
      try {
        if (want === undefined || statSync(file).size !== want.size) return false
        return fileDigest(file).sha256 === want.sha256
      } catch {
        return false
      }
    })
  }
}

function fileDigest (file: string): { size: number, sha256: string } {
  const h = createHash('sha256')
  const buf = new Uint8Array(16 * 1024 * 1024)
  const fd = openSync(file, 'r')
  let size = 0
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, size)
      if (n === 0) break
      h.update(buf.subarray(0, n))
      size += n
    }
  } finally {
    closeSync(fd)
  }
  return { size, sha256: h.digest('hex') }
}
