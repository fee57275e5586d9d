// What constrained decoding plugs into the token loop: a mask of the tokens that may come next.

export interface TokenConstraint {
  /**
   * Marks (1) the tokens that may be sampled next when at most `remaining` tokens, this one
   * included, may still be generated. Never all zeros while not complete and `remaining` ≥ the
   * tokens the output still needs.
   */
  allowed (remaining: number): Uint8Array
  /** moves past a sampled token (one `allowed` marked) */
  accept (token: number): void
  /** the output is whole: generation stops here */
  readonly complete: boolean
}

export class ConstraintError extends Error {
  override name = 'ConstraintError'
}
