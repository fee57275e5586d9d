// Constrained decoding for JSON: the tokens allowed next are those whose bytes the grammar
// accepts from the current state AND after which the document can still be finished within
// the tokens left. The vocabulary is a byte trie walked once per step from the current state, so
// a prefix shared by many tokens is matched once. Since every byte a closing path needs exists as
// a single-byte token (checked up front), a document can always be closed in time: sampling and
// greedy decoding both end with whole, valid JSON.
import type { TokenVocabulary } from '../shards/vocabulary.ts'
import { ConstraintError, type TokenConstraint } from './constraint.ts'
import { bytesToFinish, feed, initialState, isComplete, type GrammarState } from './json-grammar.ts'
import type { SchemaNode } from './json-schema.ts'

interface TrieNode { next: Map<number, TrieNode>, tokens: number[] }

/** The vocabulary as a byte trie; build once per model and share between requests. */
export class VocabularyTrie {
  readonly root: TrieNode = { next: new Map(), tokens: [] }
  readonly size: number

  constructor (readonly vocabulary: TokenVocabulary) {
    this.size = vocabulary.size
    const singles = new Set<number>()
    for (let id = 0; id < vocabulary.size; id++) {
      const bytes = vocabulary.bytes(id)
      if (bytes === null || bytes.length === 0) continue
      let node = this.root
      for (const b of bytes) {
        let child = node.next.get(b)
        if (child === undefined) node.next.set(b, child = { next: new Map(), tokens: [] })
        node = child
      }
      node.tokens.push(id)
      if (bytes.length === 1) singles.add(bytes[0])
    }
    // closing a document may need any printable ASCII byte or a UTF-8 continuation byte
    const missing: number[] = []
    for (let b = 0x20; b < 0x7f; b++) if (!singles.has(b)) missing.push(b)
    for (let b = 0x80; b < 0xc0; b++) if (!singles.has(b)) missing.push(b)
    if (missing.length > 0) {
      throw new ConstraintError(`JSON output needs a single-byte token for every printable byte; this vocabulary has none for ${missing.slice(0, 8).map((b) => `0x${b.toString(16)}`).join(', ')}${missing.length > 8 ? ', …' : ''}`)
    }
  }
}

export class JsonConstraint implements TokenConstraint {
  private state: GrammarState

  constructor (private readonly trie: VocabularyTrie, schema: SchemaNode) {
    this.state = initialState(schema)
  }

  /** tokens the shortest valid document takes at most (one per byte) */
  get minTokens (): number {
    return bytesToFinish(this.state)
  }

  get complete (): boolean {
    return isComplete(this.state)
  }

  allowed (remaining: number): Uint8Array {
    const mask = new Uint8Array(this.trie.size)
    // after this token, at most remaining - 1 tokens (bytes, in the worst case) may close the document
    const budget = remaining - 1
    const walk = (node: TrieNode, st: GrammarState): void => {
      for (const [b, child] of node.next) {
        const next = feed(st, b)
        if (next === null) continue
        if (child.tokens.length > 0 && bytesToFinish(next) <= budget) for (const t of child.tokens) mask[t] = 1
        if (child.next.size > 0) walk(child, next)
      }
    }
    walk(this.trie.root, this.state)
    return mask
  }

  accept (token: number): void {
    let st: GrammarState | null = this.state
    const bytes = this.trie.vocabulary.bytes(token)
    if (bytes === null) throw new ConstraintError(`token ${token} has no bytes: it cannot be part of JSON output`)
    for (const b of bytes) {
      st = feed(st, b)
      if (st === null) throw new ConstraintError(`token ${token} does not continue the JSON output`)
    }
    this.state = st
  }
}
