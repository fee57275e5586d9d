// Creates onnxruntime sessions from built graphs.
//
// Weights that need no conversion in JS are not copied: the graph points at their place in the
// checkpoint's safetensors files (external data relative to the model directory, given to
// onnxruntime as session.model_external_initializers_file_folder_path), so loading reads each byte
// once, in onnxruntime. Graphs whose JS-produced weights (quantized, rounded) exceed 64 MiB are
// written as model.onnx + weights.bin into a temporary directory — on a RAM-backed filesystem
// (/dev/shm) when there is one with room — unlinked right after loading: inline weights would sit
// in memory three times (JS, protobuf, onnxruntime), and protobuf cannot hold 2 GiB at all.
//
// Unquantized (f32 / f16) graphs load WITHOUT pre-packing: onnxruntime then maps external weights
// instead of copying them, and MatMul multiplies the f32 weights where they are — no second,
// re-laid-out copy, so memory holds the weights once. Measured: the same output bits, decode speed unchanged, prefill ~5%
// slower. Quantized graphs keep pre-packing: MatMulNBits' fast int8-activation kernels need it.
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

export async function createSession (graph: GraphBuilder, opts: RuntimeOptions, load: LoadOptions): Promise<ort.InferenceSession> {
  const options = sessionOptions(opts, load)
  // weights that lie in the checkpoint stay there (all in one folder, as checkpoints are):
  // onnxruntime reads them from that folder; otherwise they are copied like produced ones
  const folder = graph.fileFolder
  const toWrite = folder === null ? graph.initializerBytes : graph.producedBytes
  if (toWrite < INLINE_LIMIT_BYTES) {
    if (folder === null) return await ort.InferenceSession.create(graph.toBytes(), options)
    const extra = options.extra as { session: Record<string, string> }
    extra.session.model_external_initializers_file_folder_path = folder
    return await ort.InferenceSession.create(graph.toBytes(folder), options)
  }
  const dir = mkdtempSync(path.join(scratchDir(toWrite), 'strata-graph-'))
  try {
    return await ort.InferenceSession.create(graph.toDirectory(dir), options)
  } finally {
    // onnxruntime has read or mapped the weights by now; unlinking keeps mapped pages valid
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A session from a graph already on disk (a quantized-span cache entry). */
export async function sessionFromFile (modelPath: string, opts: RuntimeOptions, load: LoadOptions): Promise<ort.InferenceSession> {
  return await ort.InferenceSession.create(modelPath, sessionOptions(opts, load))
}
