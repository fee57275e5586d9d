// The no-return rule: a peer remembers the spans it left, and for `windowLength` after leaving one
// it does not move to any span sharing a block with it (shouldMove's `avoid`). A peer can then
// never oscillate between two places faster than that. Time is in whatever unit the caller uses
// (minutes in the simulator, ms in the live rebalancer), as long as it is the same throughout.
import type { BlockRange } from './types.ts'

export class LeftSpans {
  private readonly left: Array<{ span: BlockRange, at: number }> = []

  constructor(readonly windowLength: number) {
    if (!(windowLength >= 0)) throw new RangeError(`windowLength must be >= 0, got ${windowLength}`)
  }

  /** The peer left `span` at time `at`. */
  add(span: BlockRange, at: number): void {
    this.left.push({ span: { start: span.start, end: span.end }, at })
  }

  /**
   * Spans left less than the window before `now` (now - at < windowLength), to pass as `avoid`;
   * older ones are forgotten. A window of 0 remembers nothing, even within the same tick.
   */
  recent(now: number): BlockRange[] {
    while (this.left.length > 0 && this.left[0].at <= now - this.windowLength) this.left.shift()
    return this.left.map((l) => l.span)
  }
}
