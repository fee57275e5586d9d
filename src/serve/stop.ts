// Stop sequences over streamed text: text is released as soon as it cannot be the start of a
// stop sequence; when one appears, the text is cut right before it.

export interface StopStep {
  /** text safe to emit now */
  text: string
  /** a stop sequence was found: `text` ends right before it and generation should end */
  stopped: boolean
}

export class StopMatcher {
  private pending = ''

  constructor (private readonly stops: readonly string[]) {}

  push (delta: string): StopStep {
    if (this.stops.length === 0) return { text: delta, stopped: false }
    const buffer = this.pending + delta
    let cut = -1
    for (const s of this.stops) {
      const at = buffer.indexOf(s)
      if (at >= 0 && (cut < 0 || at < cut)) cut = at
    }
    if (cut >= 0) {
      this.pending = ''
      return { text: buffer.slice(0, cut), stopped: true }
    }
    const hold = this.heldBack(buffer)
    this.pending = buffer.slice(buffer.length - hold)
    return { text: buffer.slice(0, buffer.length - hold), stopped: false }
  }

  /** the text still held back (generation ended without a stop sequence) */
  flush (): string {
    const rest = this.pending
    this.pending = ''
    return rest
  }

  /** length of the longest suffix of `buffer` that is a proper prefix of a stop sequence */
  private heldBack (buffer: string): number {
    let hold = 0
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, buffer.length); k > hold; k--) {
        if (buffer.endsWith(s.slice(0, k))) { hold = k; break }
      }
    }
    return hold
  }
}
