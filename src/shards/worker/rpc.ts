// Messages between the main thread and an engine worker.
import type { BatchStep, SpanEngineOptions } from '../span-engine.ts'
import type { HeadEngineOptions } from '../head-engine.ts'

export type LoadRequest =
  | { kind: 'span', modelDir: string, options: SpanEngineOptions }
  | { kind: 'head', modelDir: string, options: HeadEngineOptions }

export type Call =
  | { op: 'load', load: LoadRequest }
  | { op: 'open', sessionId: string, maxLength: number, exitEnd?: number }
  | { op: 'step', sessionId: string, hidden: Float32Array, position: number }
  /** one-position steps of several sessions as one batch (SpanEngine.stepBatch) */
  | { op: 'stepBatch', steps: BatchStep[] }
  | { op: 'truncate', sessionId: string, length: number }
  | { op: 'close', sessionId: string }
  | { op: 'embed', tokens: number[] }
  | { op: 'logits', hidden: Float32Array, allRows?: boolean }
  | { op: 'dispose' }

export interface Request { id: number, call: Call }
export type Response =
  | { id: number, ok: true, value: unknown }
  | { id: number, ok: false, error: WireError }

/** A stepBatch answer: per step, its output row or why it failed. */
export type BatchResult = Array<{ ok: true, hidden: Float32Array } | { ok: false, error: WireError }>
export interface WireError { name: string, message: string }
