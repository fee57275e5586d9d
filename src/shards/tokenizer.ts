// Text ⇄ token ids through the model's own tokenizer.json (Hugging Face tokenizers.js) and its
// chat template from tokenizer_config.json (rendered with @huggingface/jinja).
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { Tokenizer } from '@huggingface/tokenizers'
import { Template } from '@huggingface/jinja'
import { ModelError } from './errors.ts'

export interface ChatMessage { role: string, content: string }

export class TokenizerError extends ModelError {
  override name = 'TokenizerError'
}

export class TextTokenizer {
  private constructor (
    private readonly tokenizer: Tokenizer,
    private readonly config: Record<string, unknown>,
    private readonly chatTemplate: Template | null
  ) {}

  /** Loads DIR/tokenizer.json (+ tokenizer_config.json when present); null when there is none. */
  static load (modelDir: string): TextTokenizer | null {
    const file = path.join(modelDir, 'tokenizer.json')
    if (!existsSync(file)) return null
    const tokenizerJson = readJson(file)
    const cfgFile = path.join(modelDir, 'tokenizer_config.json')
    const config = existsSync(cfgFile) ? readJson(cfgFile) : {}
    let template: Template | null = null
    if (typeof config.chat_template === 'string') {
      try {
        template = new Template(config.chat_template)
      } catch (err) {
        throw new TokenizerError(`${cfgFile}: chat_template does not parse: ${(err as Error).message}`)
      }
    }
    try {
      return new TextTokenizer(new Tokenizer(tokenizerJson, config), config, template)
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

  get hasChatTemplate (): boolean {
    return this.chatTemplate !== null
  }

  /** Renders the chat template; the result already holds the special tokens the template adds. */
  applyChatTemplate (messages: ChatMessage[], addGenerationPrompt = true): string {
    if (this.chatTemplate === null) throw new TokenizerError('the model has no chat_template in tokenizer_config.json')
    return this.chatTemplate.render({
      messages,
      add_generation_prompt: addGenerationPrompt,
      bos_token: tokenText(this.config.bos_token),
      eos_token: tokenText(this.config.eos_token)
    })
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

function tokenText (v: unknown): string {
  if (typeof v === 'string') return v
  if (v !== null && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content
  return ''
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
