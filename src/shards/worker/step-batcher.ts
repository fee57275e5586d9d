// Groups the steps of different sessions on one engine into batched graph calls.
//
// - A step that finds the engine idle, with no other session expected back, runs at once: a lone
//   client never waits and no timer is set for it.
// - Steps that arrive while the engine computes wait; when it is free, all the one-position
//   (decode) steps that waited run as ONE batch, multi-position (prefill) steps one by one after.
// - Sessions whose step just ran are "expected back": their clients answer within a turnaround
//   (network, head, the rest of the chain). Steps already waiting hold for them, up to half the
//   last engine call's time, so the clients of one batch stay together instead of settling into
//   two half-size batches that take turns. A session whose last turnaround was longer than that
//   limit is not waited for.
import type { BatchStep } from '../span-engine.ts'

export interface StepRunner {
  /** one-position steps of several sessions as one graph call: per step, its output row or why it failed */
  batch: (steps: BatchStep[]) => Promise<Array<Float32Array | Error>>
  /** one step of any length, alone */
  single: (step: BatchStep) => Promise<Float32Array>
}

interface Waiting extends BatchStep {
  done: PromiseWithResolvers<Float32Array>
}

/** the longest a waiting step holds for expected sessions, ms */
const MAX_HOLD_MS = 50

export class StepBatcher {
  private readonly waiting: Waiting[] = []
  private busy = false
  private holdTimer: ReturnType<typeof setTimeout> | null = null
  /** per session, when its last step ended, ms */
  private readonly lastDone = new Map<string, number>()
  /** sessions whose step ran and whose next one has not come yet */
  private readonly expected = new Set<string>()
  /** per session, ms from its result to its next step, last time */
  private readonly turnaround = new Map<string, number>()
  /** how long waiting steps may hold for expected sessions: half the last engine call, ms */
  private holdLimit = 0

  /** called with the size of every decode batch (1: a decode step run alone) */
  onBatch: ((size: number) => void) | null = null

  constructor (private readonly runner: StepRunner, private readonly hiddenSize: number) {}

  async step (step: BatchStep): Promise<Float32Array> {
    const since = this.lastDone.get(step.sessionId)
    if (since !== undefined) this.turnaround.set(step.sessionId, performance.now() - since)
    this.expected.delete(step.sessionId)
    const done = Promise.withResolvers<Float32Array>()
    this.waiting.push({ ...step, done })
    this.pump()
    return await done.promise
  }

  /** The session is closed: nobody waits for it any more. */
  forget (sessionId: string): void {
    this.expected.delete(sessionId)
    this.lastDone.delete(sessionId)
    this.turnaround.delete(sessionId)
    this.pump()
  }

  private pump (): void {
    if (this.busy || this.waiting.length === 0) return
    if (this.holdTimer !== null) {
      // A hold is on. Only its timer ends it by time, so that steps arriving in one synchronous
      // burst meet one decision (the limit passing between two of them would split the burst).
      if (this.awaitsExpected()) return
      clearTimeout(this.holdTimer)
      this.holdTimer = null
    } else {
      const now = performance.now()
      const until = this.holdUntil(now)
      if (until > now) {
        this.holdTimer = setTimeout(() => { this.holdTimer = null; this.pump() }, until - now)
        return
      }
    }
    void this.dispatch()
  }

  /** Whether an expected session that is quick enough to wait for has not come back yet. */
  private awaitsExpected (): boolean {
    for (const id of this.expected) if ((this.turnaround.get(id) ?? 0) <= this.holdLimit) return true
    return false
  }

  /** Until when waiting steps hold for expected sessions (≤ now: run them now). */
  private holdUntil (now: number): number {
    let until = 0
    for (const id of this.expected) {
      const since = this.lastDone.get(id) ?? 0
      if (since + this.holdLimit <= now) this.expected.delete(id)
      else if ((this.turnaround.get(id) ?? 0) <= this.holdLimit) until = Math.max(until, since + this.holdLimit)
    }
    return until
  }

  private async dispatch (): Promise<void> {
    this.busy = true
    const steps = this.waiting.splice(0)
    const t0 = performance.now()
    const decode = steps.filter((s) => s.hidden.length === this.hiddenSize)
    const together = decode.length > 1
    const outcomes = new Map<Waiting, Float32Array | Error>()
    if (together) {
      this.onBatch?.(decode.length)
      try {
        const rows = await this.runner.batch(decode.map(({ sessionId, hidden, position }) => ({ sessionId, hidden, position })))
        decode.forEach((s, i) => outcomes.set(s, rows[i]))
      } catch (err) {
        for (const s of decode) outcomes.set(s, err as Error)
      }
    }
    for (const s of steps) {
      if (outcomes.has(s)) continue
      if (s.hidden.length === this.hiddenSize) this.onBatch?.(1)
      outcomes.set(s, await this.runner.single(s).catch((err: Error) => err))
    }
    // bookkeeping before anyone hears back, so that a caller's next step finds the engine free
    const now = performance.now()
    this.holdLimit = Math.min(MAX_HOLD_MS, (now - t0) / 2)
    for (const s of steps) {
      this.lastDone.set(s.sessionId, now)
      this.expected.add(s.sessionId)
    }
    this.busy = false
    for (const [s, out] of outcomes) {
      if (out instanceof Error) s.done.reject(out)
      else s.done.resolve(out)
    }
    this.pump()
  }
}
