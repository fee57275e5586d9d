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
// manifest.json listing each file's size and CRC-32 (computed as the files are written); an entry
// whose files do not match (a crash mid-copy, a flipped bit, a truncated file) is removed and built
// again. The check reads the whole entry, so it runs on another thread while onnxruntime loads it.
// CRC-32 rather than a cryptographic hash: the cache guards against accidents, not against someone
// who can write to it, and zlib's CRC-32 reads ~2× faster than sha256 here, so a multi-GiB f32
// entry is checked within the time onnxruntime takes to pre-pack it.
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { crc32 } from 'node:zlib'
import type { GraphBuilder } from './onnx/builder.ts'
import { QUANTIZER_VERSION } from './quantize.ts'

const MANIFEST = 'manifest.json'
const FILES = ['model.onnx', 'weights.bin'] as const
/** bump when the entry layout changes (2: CRC-32 in the manifest instead of sha256) */
const LAYOUT_VERSION = 2

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

interface FileCheck {
  size: number
  crc32: number
}

interface Manifest {
  version: number
  key: string
  files: Record<string, FileCheck>
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
   * The stored entry for `id`, if any: its model path at once, and `intact`, which settles once
   * its files are checked against its manifest (sizes and CRC-32, read on a worker thread, so that
   * the check overlaps onnxruntime loading the entry). Null when there is none.
   */
  find (id: string): { model: string, intact: Promise<boolean> } | null {
    const entry = path.join(this.dir, id)
    if (!existsSync(entry)) return null
    return { model: path.join(entry, FILES[0]), intact: this.intact(entry, id) }
  }

  /** Builds the entry for `id` from `graph` (replacing a stored one), returning its model path. */
  async store (id: string, graph: GraphBuilder): Promise<string> {
    const entry = path.join(this.dir, id)
    rmSync(entry, { recursive: true, force: true })
    await this.write(entry, id, graph)
    return path.join(entry, FILES[0])
  }

  private async write (entry: string, id: string, graph: GraphBuilder): Promise<void> {
    mkdirSync(this.dir, { recursive: true })
    const tmp = `${entry}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
    try {
      const files: Record<string, FileCheck> = Object.fromEntries(FILES.map((f) => [f, { size: 0, crc32: 0 }]))
      graph.toDirectory(tmp, (file, chunk) => {
        const check = files[file]
        check.size += chunk.byteLength
        check.crc32 = crc32(chunk, check.crc32)
      })
      const manifest: Manifest = { version: LAYOUT_VERSION, key: id, files }
      writeFileSync(path.join(tmp, MANIFEST), JSON.stringify(manifest, null, 1) + '\n')
      renameSync(tmp, entry)
    } catch (err) {
      // another process stored the same entry first: theirs is as good (same key, same build)
      if (!existsSync(entry)) throw err
    } finally {
      rmSync(tmp, { recursive: true, force: true })
    }
  }

  private async intact (entry: string, id: string): Promise<boolean> {
    let manifest: Manifest
    try {
      manifest = JSON.parse(readFileSync(path.join(entry, MANIFEST), 'utf8')) as Manifest
    } catch {
      return false
    }
    if (manifest?.version !== LAYOUT_VERSION || manifest.key !== id || typeof manifest.files !== 'object' || manifest.files === null) return false
    const want = FILES.map((f) => manifest.files[f])
    try {
      if (want.some((w, i) => w === undefined || statSync(path.join(entry, FILES[i])).size !== w.size)) return false
      const got = await checkFiles(FILES.map((f) => path.join(entry, f)))
      return got.every((g, i) => g.size === want[i].size && g.crc32 === want[i].crc32)
    } catch {
      return false
    }
  }
}

// The check runs on a thread of its own: onnxruntime-node creates a session synchronously, so a
// check on the loading thread would only start once the session is built.
const CHECK_FILES = `
const { parentPort, workerData } = require('node:worker_threads')
const { openSync, readSync, closeSync } = require('node:fs')
const { crc32 } = require('node:zlib')
const buf = Buffer.allocUnsafe(16 * 1024 * 1024)
parentPort.postMessage(workerData.map((file) => {
  const fd = openSync(file, 'r')
  let size = 0
  let sum = 0
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, size)) > 0; size += n) sum = crc32(buf.subarray(0, n), sum)
  } finally {
    closeSync(fd)
  }
  return { size, crc32: sum }
}))
`

/** Size and CRC-32 of each of `files`, read on a worker thread. */
async function checkFiles (files: string[]): Promise<FileCheck[]> {
  return await new Promise((resolve, reject) => {
    const worker = new Worker(CHECK_FILES, { eval: true, workerData: files })
    worker.once('message', resolve)
    worker.once('error', reject)
    worker.once('exit', (code) => reject(new Error(`file check thread exited with code ${code}`)))
  })
}
