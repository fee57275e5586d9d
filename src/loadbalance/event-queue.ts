// A min-heap of timed events for the discrete-event simulator. Events due at the same time come out
// in the order they were pushed, which keeps runs deterministic.

interface Entry<T> {
  time: number
  seq: number
  event: T
}

export class EventQueue<T> {
  private readonly heap: Array<Entry<T>> = []
  private pushed = 0

  push(time: number, event: T): void {
    this.heap.push({ time, seq: this.pushed++, event })
    this.siftUp(this.heap.length - 1)
  }

  /** The earliest event, or undefined when empty. */
  pop(): { time: number; event: T } | undefined {
    const top = this.heap[0]
    if (top === undefined) return undefined
    const last = this.heap.pop() as Entry<T>
    if (this.heap.length > 0) {
      this.heap[0] = last
      this.siftDown(0)
    }
    return { time: top.time, event: top.event }
  }

  private before(i: number, j: number): boolean {
    const a = this.heap[i]
    const b = this.heap[j]
    return a.time < b.time || (a.time === b.time && a.seq < b.seq)
  }

  private swap(i: number, j: number): void {
    [this.heap[i], this.heap[j]] = [this.heap[j], this.heap[i]]
  }

  private siftUp(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.before(i, parent)) return
      this.swap(i, parent)
      i = parent
    }
  }

  private siftDown(i: number): void {
    for (;;) {
      const left = 2 * i + 1
      const right = left + 1
      let smallest = i
      if (left < this.heap.length && this.before(left, smallest)) smallest = left
      if (right < this.heap.length && this.before(right, smallest)) smallest = right
      if (smallest === i) return
      this.swap(i, smallest)
      i = smallest
    }
  }
}
