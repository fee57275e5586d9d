// The bytes each token id stands for, read from tokenizer.json: what log-probability responses
// show per token, and what constrained decoding matches against a grammar. Byte-level BPE
// (GPT-2, Llama 3, Qwen: ByteLevel decoder) and SentencePiece-style vocabularies (▁ for spaces,
// <0xNN> byte fallback) are understood; special tokens have no bytes.
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { bytesToUnicode } from './tokenizer-gen.ts'
import { TokenizerError } from './tokenizer.ts'

export class TokenVocabulary {
  private readonly textCache = new Map<number, string>()

  private constructor (
    /** bytes per id; null for special tokens and ids the tokenizer does not define */
    private readonly byteTable: Array<Uint8Array | null>,
    /** the written form of special tokens (e.g. "<s>") */
    private readonly specials: Map<number, string>
  ) {}

  /** DIR/tokenizer.json's vocabulary, with `size` ids (the model's vocab); null without a tokenizer.json. */
  static load (modelDir: string, size: number): TokenVocabulary | null {
    const file = path.join(modelDir, 'tokenizer.json')
    if (!existsSync(file)) return null
    let json: { model?: { vocab?: unknown }, added_tokens?: unknown, decoder?: unknown, pre_tokenizer?: unknown }
    try {
      json = JSON.parse(readFileSync(file, 'utf8'))
    } catch (err) {
      throw new TokenizerError(`${file}: ${(err as Error).message}`)
    }
    const pieces = vocabPieces(json.model?.vocab, file)
    const byteLevel = mentionsByteLevel(json.decoder) || mentionsByteLevel(json.pre_tokenizer)
    const fromPiece = byteLevel ? byteLevelBytes() : sentencePieceBytes
    const table: Array<Uint8Array | null> = new Array(size).fill(null)
    for (const [piece, id] of pieces) if (id >= 0 && id < size) table[id] = fromPiece(piece)
    const specials = new Map<number, string>()
    for (const t of Array.isArray(json.added_tokens) ? json.added_tokens : []) {
      const { id, content, special } = t as { id?: unknown, content?: unknown, special?: unknown }
      if (typeof id !== 'number' || typeof content !== 'string' || id < 0 || id >= size) continue
      if (special === true) {
        table[id] = null
        specials.set(id, content)
      } else {
        table[id] = new TextEncoder().encode(content)
      }
    }
    return new TokenVocabulary(table, specials)
  }

  get size (): number { return this.byteTable.length }

  /** the bytes of a token; null for special tokens and undefined ids */
  bytes (id: number): Uint8Array | null {
    return this.byteTable[id] ?? null
  }

  /**
   * A token as text, as OpenAI's logprobs show it: its UTF-8 text, "bytes:\xNN…" when its bytes
   * are not whole UTF-8 characters, the written form of a special token.
   */
  text (id: number): string {
    let t = this.textCache.get(id)
    if (t !== undefined) return t
    const b = this.bytes(id)
    if (b === null) t = this.specials.get(id) ?? ''
    else {
      try {
        t = new TextDecoder('utf-8', { fatal: true }).decode(b)
      } catch {
        t = 'bytes:' + Array.from(b, (x) => '\\x' + x.toString(16).padStart(2, '0')).join('')
      }
    }
    this.textCache.set(id, t)
    return t
  }

  /** the UTF-8 bytes of text(id), as the chat logprobs' `bytes` field lists them */
  textBytes (id: number): number[] {
    return Array.from(this.bytes(id) ?? new TextEncoder().encode(this.text(id)))
  }
}

function vocabPieces (vocab: unknown, file: string): Array<[string, number]> {
  // BPE / WordPiece: {piece: id}; Unigram: [[piece, score], …] with ids in order
  if (Array.isArray(vocab)) return vocab.map((e, i) => [String(Array.isArray(e) ? e[0] : e), i])
  if (vocab !== null && typeof vocab === 'object') return Object.entries(vocab as Record<string, number>).filter(([, id]) => Number.isInteger(id))
  throw new TokenizerError(`${file}: model.vocab is missing`)
}

function mentionsByteLevel (v: unknown): boolean {
  if (v === null || typeof v !== 'object') return false
  const o = v as { type?: unknown, decoders?: unknown, pretokenizers?: unknown }
  if (o.type === 'ByteLevel') return true
  return [o.decoders, o.pretokenizers].some((list) => Array.isArray(list) && list.some(mentionsByteLevel))
}

function byteLevelBytes (): (piece: string) => Uint8Array | null {
  const map = new Map<string, number>(bytesToUnicode().map((ch, b) => [ch, b]))
  return (piece) => {
    const out = new Uint8Array(piece.length)
    let n = 0
    for (const ch of piece) {
      const b = map.get(ch)
      if (b === undefined) return null
      out[n++] = b
    }
    return out.slice(0, n)
  }
}

function sentencePieceBytes (piece: string): Uint8Array {
  const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece)
  if (m !== null) return Uint8Array.of(parseInt(m[1], 16))
  return new TextEncoder().encode(piece.replaceAll('\u2581', ' '))
}
