// Data shared by the load balancer, the peer that announces itself and the simulator.

/**
 * `joining`: loading weights, not serving yet (still counted, so that peers joining at the same
 * time do not all pile onto the same gap). `online`: serving. `draining`: finishing its sessions
 * before leaving or moving; it takes no new sessions and the balancer ignores it.
 */
export type PeerState = 'joining' | 'online' | 'draining'

/** What one peer announces about the blocks it hosts. */
export interface SpanInfo {
  peerId: string
  /** First hosted block. */
  start: number
  /** One past the last hosted block (exclusive). */
  end: number
  /** Tokens/s the peer can push through its whole span: min(compute / span length, network). */
  throughput: number
  state: PeerState
  /**
   * Inference sessions open on the peer now (its record's `sessions`): the measured demand on its
   * blocks. Absent counts as none.
   */
  sessions?: number
}

/** A half-open range of blocks `[start, end)`. */
export interface BlockRange {
  start: number
  end: number
}
