// Creates onnxruntime sessions from built graphs, so that a span's weights are in memory once and
// loading costs little more than reading them:
//
// - f32 weights of F32 checkpoints are not copied at all: the graph's initializers point at their
//   place in the checkpoint's safetensors files (ONNX external data, relative to the model
//   directory, which onnxruntime is given as session.model_external_initializers_file_folder_path)
//   and onnxruntime maps them there.
// - initializers JS produces (quantized weights; 16-bit weights widened to f32) over 64 MiB are
//   written as model.onnx + weights.bin, produced one tensor at a time: into the span cache when
//   there is one (span-cache.ts), else into a temporary directory — on a RAM-backed filesystem
//   (/dev/shm) when there is one with room — unlinked right after loading. Inline weights would
//   sit in memory three times (JS, protobuf, onnxruntime), and protobuf cannot hold 2 GiB at all.
//
// Span graphs load WITH pre-packing (quantized: MatMulNBits' fast int8-activation kernels need it;
// f32: onnxruntime re-lays out each constant matrix once and then multiplies any number of rows
// with one kernel, so a row gets the same bits alone or in a batch of sessions — without
// pre-packing a single row goes through another kernel that differs in the last bits; see
// span-engine.ts stepBatch). Pre-packing mapped f32 weights also decodes faster, for a longer load
// and about the same peak memory (README, "Batching across clients").
import * as ort from 'onnxruntime-node'
import { mkdtempSync, rmSync, statfsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { GraphBuilder } from './onnx/builder.ts'

/** graphs with more initializer bytes than this load through an external-data directory */
export const INLINE_LIMIT_BYTES = 64 * 1024 ** 2
/** RAM-backed scratch space (Linux); used for the temporary weights file when it has room */
const RAM_DIR = '/dev/shm'

export interface RuntimeOptions {
  /** intra-op threads for this session (default: onnxruntime's choice, all cores) */
  threads?: number
}

export interface LoadOptions {
  /** let onnxruntime re-lay out constant weights at load (needed by quantized kernels) */
  prepack: boolean
}

/** The onnxruntime options every strata session runs with. */
export function sessionOptions (opts: RuntimeOptions = {}, load: LoadOptions = { prepack: true }): ort.InferenceSession.SessionOptions {
  return {
    executionMode: 'sequential',
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    // errors reach callers as exceptions; onnxruntime's own stderr logging would duplicate them
    logSeverityLevel: 4,
    extra: {
      session: {
        // no busy-waiting between runs: a span computes for a moment per token and then waits for
        // the network; spinning threads would steal the cores other spans on this host need right then
        intra_op: { allow_spinning: '0' },
        inter_op: { allow_spinning: '0' },
        disable_prepacking: load.prepack ? '0' : '1'
      }
    },
    ...(opts.threads !== undefined ? { intraOpNumThreads: opts.threads } : {})
  }
}

/** Where a temporary graph of `bytes` goes: /dev/shm when it exists with room to spare, else the temp dir. */
export function scratchDir (bytes: number): string {
  try {
    const st = statfsSync(RAM_DIR)
    if (st.bavail * st.bsize > 2 * bytes) return RAM_DIR
  } catch { /* no RAM-backed filesystem here */ }
  return tmpdir()
}

/** How long the stages of a session's creation took. */
export interface LoadTimings {
  /** writing JS-produced initializers (quantizing included) into the model bytes or a temporary directory */
  serializeSeconds: number
  /** onnxruntime creating the session (mapping and pre-packing the weights) */
  sessionSeconds: number
}

/** An onnxruntime session and how long it took to create. */
export class OrtSession {
  constructor (private readonly session: ort.InferenceSession, readonly timings: LoadTimings) {}

  async run (feeds: Record<string, ort.Tensor>, fetches?: readonly string[]): Promise<ort.InferenceSession.ReturnType> {
    return fetches === undefined ? await this.session.run(feeds) : await this.session.run(feeds, fetches)
  }

  async release (): Promise<void> {
    await this.session.release()
  }
}

export async function createSession (graph: GraphBuilder, opts: RuntimeOptions, load: LoadOptions): Promise<OrtSession> {
  const options = sessionOptions(opts, load)
  const t0 = performance.now()
  let session: ort.InferenceSession
  let t1: number
  // weights that lie in the checkpoint stay there (all in one folder, as checkpoints are):
  // onnxruntime maps them from that folder; otherwise they are copied like produced ones
  const folder = graph.fileFolder
  const toWrite = folder === null ? graph.initializerBytes : graph.producedBytes
  if (toWrite < INLINE_LIMIT_BYTES) {
    if (folder !== null) (options.extra as { session: Record<string, string> }).session.model_external_initializers_file_folder_path = folder
    const bytes = folder === null ? graph.toBytes() : graph.toBytes(folder)
    t1 = performance.now()
    session = await ort.InferenceSession.create(bytes, options)
  } else {
    const dir = mkdtempSync(path.join(scratchDir(toWrite), 'strata-graph-'))
    try {
      const model = graph.toDirectory(dir)
      t1 = performance.now()
      session = await ort.InferenceSession.create(model, options)
    } finally {
      // onnxruntime has read or mapped the weights by now; unlinking keeps mapped pages valid
      rmSync(dir, { recursive: true, force: true })
    }
  }
  return new OrtSession(session, { serializeSeconds: (t1 - t0) / 1000, sessionSeconds: (performance.now() - t1) / 1000 })
}

/** A session from a graph already on disk (a span cache entry, written in `serializeSeconds`). */
export async function sessionFromFile (modelPath: string, opts: RuntimeOptions, load: LoadOptions, serializeSeconds = 0): Promise<OrtSession> {
  const t = performance.now()
  const session = await ort.InferenceSession.create(modelPath, sessionOptions(opts, load))
  return new OrtSession(session, { serializeSeconds, sessionSeconds: (performance.now() - t) / 1000 })
}
