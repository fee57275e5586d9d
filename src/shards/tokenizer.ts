// Text ⇄ token ids through the model's own tokenizer.json (Hugging Face tokenizers.js), and
// conversations → prompt ids through its chat template (see chat-template.ts).
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { Tokenizer } from '@huggingface/tokenizers'
import { ModelError } from './errors.ts'
import { ChatTemplateError, loadChatTemplate, type ChatMessage, type ChatTemplate, type RenderOptions } from './chat-template.ts'

export type { ChatMessage }

export class TokenizerError extends ModelError {
  override name = 'TokenizerError'
}

export class TextTokenizer {
  private constructor (
    private readonly tokenizer: Tokenizer,
    /** null: none found; an error: found but unusable (it fails chat use only, not plain text) */
    private readonly chatTemplate: ChatTemplate | ChatTemplateError | null,
    /** where the chat template was looked for */
    private readonly templateLookedAt: string
  ) {}

  /**
   * Loads DIR/tokenizer.json (+ tokenizer_config.json and the chat template when present); null
   * when there is no tokenizer.json.
   */
  static load (modelDir: string): TextTokenizer | null {
    const file = path.join(modelDir, 'tokenizer.json')
    if (!existsSync(file)) return null
    const tokenizerJson = readJson(file)
    const cfgFile = path.join(modelDir, 'tokenizer_config.json')
    const config = existsSync(cfgFile) ? readJson(cfgFile) : null
    let template: ChatTemplate | ChatTemplateError | null
    let lookedAt = ''
    try {
      ({ template, lookedAt } = loadChatTemplate(modelDir, config))
    } catch (err) {
      if (!(err instanceof ChatTemplateError)) throw err
      template = err
    }
    try {
      return new TextTokenizer(new Tokenizer(tokenizerJson, config ?? {}), template, lookedAt)
    } catch (err) {
      throw new TokenizerError(`${file}: ${(err as Error).message}`)
    }
  }

  /** Token ids for `text`, with the tokenizer's special tokens (e.g. BOS) unless told otherwise. */
  encode (text: string, addSpecialTokens = true): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids
  }

  decode (ids: readonly number[], skipSpecialTokens = true): string {
    return this.tokenizer.decode([...ids], { skip_special_tokens: skipSpecialTokens })
  }

  /** a template was found (it may still fail to parse or render: applyChatTemplate says why) */
  get hasChatTemplate (): boolean {
    return this.chatTemplate !== null
  }

  /** Renders the chat template; the result already holds the special tokens the template adds. */
  applyChatTemplate (messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
    if (this.chatTemplate === null) throw new ChatTemplateError(`the model has no chat template: looked in ${this.templateLookedAt}`)
    if (this.chatTemplate instanceof ChatTemplateError) throw this.chatTemplate
    return this.chatTemplate.render(messages, opts)
  }

  /**
   * Prompt ids for a conversation: the rendered template encoded without adding special tokens
   * again (templates write BOS themselves: a second one is a classic bug), as transformers does.
   */
  encodeChat (messages: readonly ChatMessage[], opts: RenderOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, opts), false)
  }

  /** Incremental decoding for streaming: see StreamDecoder. */
  streamDecoder (): StreamDecoder {
    const ids: number[] = []
    let emitted = ''
    const release = (text: string): string => {
      if (!text.startsWith(emitted)) return ''
      const delta = text.slice(emitted.length)
      emitted = text
      return delta
    }
    return {
      push: (token) => {
        ids.push(token)
        const text = this.decode(ids)
        // hold back an incomplete UTF-8 sequence (decoded as U+FFFD) until its last byte arrives
        return text.endsWith('\uFFFD') ? '' : release(text)
      },
      flush: () => release(this.decode(ids))
    }
  }
}

/**
 * Feed tokens with `push`, get the new text they complete; at the end of the stream `flush`
 * gives what is still held back (an incomplete UTF-8 sequence, as U+FFFD). All pieces together
 * equal decode(all tokens) whenever decoding more tokens only appends text.
 */
export interface StreamDecoder {
  push (token: number): string
  flush (): string
}

function readJson (file: string): Record<string, unknown> {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8'))
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object')
    return v
  } catch (err) {
    throw new TokenizerError(`${file}: ${(err as Error).message}`)
  }
}
