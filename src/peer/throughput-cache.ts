// Measured compute throughput, kept on disk so that a restarted peer announces at once instead of
// timing its span again. One JSON file, `<cache dir>/throughput.json`, keyed by everything the
// figure depends on: the CPU (model and core count), the model, the weight format and the thread
// count. A missing, unreadable or foreign file counts as empty; failing to write is only logged.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import path from 'node:path'
import type { Logger } from '../routing/logger.ts'

const FILE_NAME = 'throughput.json'
/** bump when the measuring method changes: older figures are then measured again */
const FORMAT_VERSION = 1
/** entries kept at most (the most recently measured) */
const MAX_ENTRIES = 64

export interface ComputeKey {
  /** CPU model name, e.g. "AMD EPYC 7B13" */
  cpu: string
  /** logical cores */
  cores: number
  modelId: string
  /** matrix weight format, e.g. 'f32', 'int8' */
  weightFormat: string
  /** compute threads, 'auto' for onnxruntime's default */
  threads: number | 'auto'
}

export interface CachedThroughput {
  /** tokens/s one block sustains */
  blockTokensPerSecond: number
  /** when it was measured, ms since the epoch */
  measuredAt: number
}

interface CacheFile {
  version: number
  entries: Record<string, CachedThroughput>
}

/** This machine's part of the key. */
export function computeKey (modelId: string, weightFormat: string, threads: number | undefined): ComputeKey {
  const cores = cpus()
  return { cpu: cores[0]?.model.trim() ?? 'unknown', cores: cores.length, modelId, weightFormat, threads: threads ?? 'auto' }
}

export class ThroughputCache {
  readonly file: string

  constructor (dir: string, private readonly log: Logger) {
    this.file = path.join(dir, FILE_NAME)
  }

  get (key: ComputeKey): CachedThroughput | undefined {
    return this.load().entries[entryId(key)]
  }

  /** Stores a figure (read-modify-write, replaced atomically by a rename). */
  set (key: ComputeKey, blockTokensPerSecond: number): void {
    const file = this.load()
    file.entries[entryId(key)] = { blockTokensPerSecond, measuredAt: Date.now() }
    const kept = Object.entries(file.entries).sort(([, a], [, b]) => b.measuredAt - a.measuredAt).slice(0, MAX_ENTRIES)
    const tmp = `${this.file}.${process.pid}.tmp`
    try {
      mkdirSync(path.dirname(this.file), { recursive: true })
      writeFileSync(tmp, JSON.stringify({ version: FORMAT_VERSION, entries: Object.fromEntries(kept) }, null, 1) + '\n')
      renameSync(tmp, this.file)
    } catch (err) {
      this.log.warn({ file: this.file, err: (err as Error).message }, 'could not write the throughput cache')
    }
  }

  private load (): CacheFile {
    let text: string
    try {
      text = readFileSync(this.file, 'utf8')
    } catch {
      return empty()
    }
    try {
      const parsed = JSON.parse(text) as Partial<CacheFile>
      if (parsed.version !== FORMAT_VERSION || typeof parsed.entries !== 'object' || parsed.entries === null) return empty()
      const entries = Object.fromEntries(Object.entries(parsed.entries).filter(([, e]) => isEntry(e)))
      return { version: FORMAT_VERSION, entries }
    } catch (err) {
      this.log.warn({ file: this.file, err: (err as Error).message }, 'ignoring an unreadable throughput cache')
      return empty()
    }
  }
}

function empty (): CacheFile {
  return { version: FORMAT_VERSION, entries: {} }
}

/** The key's fields in a fixed order. */
function entryId (k: ComputeKey): string {
  return JSON.stringify([k.cpu, k.cores, k.modelId, k.weightFormat, k.threads])
}

function isEntry (e: unknown): e is CachedThroughput {
  const c = e as Partial<CachedThroughput> | null
  return typeof c === 'object' && c !== null && typeof c.blockTokensPerSecond === 'number' && Number.isFinite(c.blockTokensPerSecond) &&
    c.blockTokensPerSecond > 0 && typeof c.measuredAt === 'number'
}
