// Generates a small but real byte-level BPE tokenizer.json (GPT-2 style) for test models:
// 3 special tokens, the 256 byte tokens, then merges learned from a built-in English text
// until the vocabulary is full.

const CORPUS = `The swarm runs large language models on many small computers. Each peer hosts a few
transformer blocks and the client chains them together. When a peer leaves, the client finds
another peer for the same blocks and replays what it had sent, so the story continues as if
nothing had happened. Once upon a time there was a little model that wanted to talk. It asked
the other peers for help, and they answered together. Hello world! How are you today? I am
fine, thank you. What is the weather like in the mountains? It is cold and bright, and the
river is running fast. The quick brown fox jumps over the lazy dog. Numbers like 1, 2, 3, 10,
42 and 2026 appear in text too. Questions, answers, stories and code: the model reads them all.`

export const SPECIAL_TOKENS = { unk: '<unk>', bos: '<s>', eos: '</s>' }
export const CHAT_TEMPLATE = "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"

/** GPT-2's reversible byte → printable unicode character map. */
export function bytesToUnicode (): string[] {
  const printable: number[] = []
  for (let b = 33; b <= 126; b++) printable.push(b)
  for (let b = 161; b <= 172; b++) printable.push(b)
  for (let b = 174; b <= 255; b++) printable.push(b)
  const map: string[] = new Array(256)
  let extra = 0
  for (let b = 0; b < 256; b++) {
    map[b] = printable.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++)
  }
  return map
}

export function minTokenizerVocab (): number {
  return 3 + 256
}

/** tokenizer.json contents for a vocabulary of exactly `vocabSize` ids (≥ 259). */
export function buildTokenizerJson (vocabSize: number): Record<string, unknown> {
  if (vocabSize < minTokenizerVocab()) throw new RangeError(`a byte-level tokenizer needs vocab ≥ ${minTokenizerVocab()}, got ${vocabSize}`)
  const byteChars = bytesToUnicode()
  const vocab: Record<string, number> = { [SPECIAL_TOKENS.unk]: 0, [SPECIAL_TOKENS.bos]: 1, [SPECIAL_TOKENS.eos]: 2 }
  byteChars.forEach((ch, b) => { vocab[ch] = 3 + b })
  const merges = learnMerges(byteChars, vocabSize - minTokenizerVocab())
  let next = minTokenizerVocab()
  for (const [a, b] of merges) vocab[a + b] = next++
  // fill the rest with whole-word tokens (never produced by encoding, but they decode to readable
  // words), so tokenizer and model agree on the vocabulary size and random models print words
  for (const word of fillerWords(byteChars)) {
    if (next >= vocabSize) break
    if (!(word in vocab)) vocab[word] = next++
  }
  for (let i = 0; next < vocabSize; i++) vocab[`<extra_${i}>`] = next++
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [0, 1, 2].map((id) => ({
      id, content: [SPECIAL_TOKENS.unk, SPECIAL_TOKENS.bos, SPECIAL_TOKENS.eos][id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: SPECIAL_TOKENS.bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: SPECIAL_TOKENS.bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { [SPECIAL_TOKENS.bos]: { id: SPECIAL_TOKENS.bos, ids: [1], tokens: [SPECIAL_TOKENS.bos] } }
    },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: merges.map(([a, b]) => `${a} ${b}`) }
  }
}

const SUFFIXES = ['', 's', 'ed', 'ing', 'er', 'ly', 'ness', 'ful', 'less', 'able', 'ish', 'ward', 'ment', 'ion', 'ous', 'ity']

/** " word", " words", " worded", … for every distinct corpus word, in byte-level characters. */
function fillerWords (byteChars: string[]): string[] {
  const words = [...new Set((CORPUS.toLowerCase().match(/\p{L}{3,}/gu) ?? []))]
  const space = byteChars[32]
  return SUFFIXES.flatMap((suffix) => words.map((w) => space + w + suffix))
}

/** Classic BPE training on the corpus words (GPT-2 split), most frequent pair first, ties by order. */
function learnMerges (byteChars: string[], count: number): Array<[string, string]> {
  const enc = new TextEncoder()
  const words = CORPUS.match(/'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu) ?? []
  const seqs = words.map((w) => Array.from(enc.encode(w), (b) => byteChars[b]))
  const merges: Array<[string, string]> = []
  while (merges.length < count) {
    const counts = new Map<string, number>()
    for (const s of seqs) for (let i = 0; i + 1 < s.length; i++) { const k = s[i] + '\u0000' + s[i + 1]; counts.set(k, (counts.get(k) ?? 0) + 1) }
    let best: string | null = null
    let bestCount = 1
    for (const [k, c] of counts) if (c > bestCount) { best = k; bestCount = c }
    if (best === null) break
    const [a, b] = best.split('\u0000') as [string, string]
    merges.push([a, b])
    for (const s of seqs) {
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) s.splice(i, 2, a + b)
    }
  }
  return merges
}
