// Creates onnxruntime sessions from built graphs. Graphs over 64 MiB of weights go through a
// temporary model + external-data directory, written one tensor at a time (protobuf cannot hold
// 2 GiB, and inline weights would sit in memory three times: JS, protobuf, onnxruntime); the
// directory is removed after loading.
import * as ort from 'onnxruntime-node'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { GraphBuilder } from './onnx/builder.ts'

/** graphs with more initializer bytes than this load through an external-data directory */
export const INLINE_LIMIT_BYTES = 64 * 1024 ** 2

export interface RuntimeOptions {
  /** intra-op threads for this session (default: onnxruntime's choice, all cores) */
  threads?: number
}

/** The onnxruntime options every strata session runs with. */
export function sessionOptions (opts: RuntimeOptions = {}): ort.InferenceSession.SessionOptions {
  return {
    executionMode: 'sequential',
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    // errors reach callers as exceptions; onnxruntime's own stderr logging would duplicate them
    logSeverityLevel: 4,
    // no busy-waiting between runs: a span computes for a moment per token and then waits for the
    // network; spinning threads would steal the cores other spans on this host need right then
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    ...(opts.threads !== undefined ? { intraOpNumThreads: opts.threads } : {})
  }
}

export async function createSession (graph: GraphBuilder, opts: RuntimeOptions = {}): Promise<ort.InferenceSession> {
  const options = sessionOptions(opts)
  if (graph.initializerBytes < INLINE_LIMIT_BYTES) return await ort.InferenceSession.create(graph.toBytes(), options)
  const dir = mkdtempSync(path.join(tmpdir(), 'strata-graph-'))
  try {
    return await ort.InferenceSession.create(graph.toDirectory(dir), options)
  } finally {
    // onnxruntime has read (or mapped) the weights by now; unlinking keeps mapped pages valid
    rmSync(dir, { recursive: true, force: true })
  }
}
