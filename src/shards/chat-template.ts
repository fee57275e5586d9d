// A model's chat template, found and rendered the way Hugging Face transformers does it.
//
// Where (transformers' `PreTrainedTokenizerBase.from_pretrained`): `chat_template.jinja` is the
// default template and `additional_chat_templates/<name>.jinja` are named ones; when any of these
// files exists they replace the `chat_template` of tokenizer_config.json entirely. Otherwise
// tokenizer_config.json's `chat_template` is a string, or a list of {name, template}. Of several
// named templates, "default" is used (strata passes no tools, so never "tool_use").
//
// How (transformers' `render_jinja_template`): Jinja with trim_blocks and lstrip_blocks (the
// defaults of @huggingface/jinja), the context holding `messages`, `add_generation_prompt`,
// `tools` and `documents` (none), the tokenizer's special tokens (`bos_token`, `eos_token`, …)
// and the functions `raise_exception` and `strftime_now`.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { Environment, Interpreter, Template } from '@huggingface/jinja'
import { ModelError } from './errors.ts'

export const CHAT_TEMPLATE_FILE = 'chat_template.jinja'
export const CHAT_TEMPLATE_DIR = 'additional_chat_templates'
const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json'

export interface ChatMessage { role: string, content: string }

/** The template is missing, unreadable or does not parse. */
export class ChatTemplateError extends ModelError {
  override name = 'ChatTemplateError'
}

/** The template refused the conversation (its `raise_exception`), e.g. roles that do not alternate. */
export class ChatTemplateRejection extends ChatTemplateError {
  override name = 'ChatTemplateRejection'
}

/** The special tokens transformers passes to templates (its special_tokens_map). */
const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const

export interface RenderOptions {
  /** end with the header of an assistant turn, for the model to write (default true) */
  addGenerationPrompt?: boolean
  /** the clock behind `strftime_now` (default: now) */
  now?: () => Date
}

export class ChatTemplate {
  private readonly template: Template

  /**
   * @param origin where the text came from (a file, or a key of tokenizer_config.json), for errors
   * @param context the special tokens passed to the template
   */
  constructor (readonly origin: string, readonly text: string, private readonly context: Record<string, unknown> = {}) {
    try {
      this.template = new Template(text)
    } catch (err) {
      throw new ChatTemplateError(`${origin}: the chat template does not parse: ${(err as Error).message}`)
    }
  }

  /** The prompt text for `messages`; it already holds the special tokens the template writes (BOS…). */
  render (messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
    const now = opts.now ?? (() => new Date())
    const variables: Record<string, unknown> = {
      // @huggingface/jinja's own globals, with raise_exception and strftime_now replaced
      true: true, false: false, none: null, True: true, False: false, None: null, range,
      raise_exception: (message: unknown) => { throw new ChatTemplateRejection(`the model's chat template refused the conversation: ${String(message)}`) },
      strftime_now: (format: unknown) => strftime(now(), String(format)),
      ...this.context,
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      tools: null,
      documents: null
    }
    const env = new Environment()
    for (const [name, value] of Object.entries(variables)) env.set(name, value)
    try {
      return String(new Interpreter(env).run(this.template.parsed).value)
    } catch (err) {
      if (err instanceof ChatTemplateError) throw err
      throw new ChatTemplateError(`${this.origin}: rendering the chat template failed: ${(err as Error).message}`)
    }
  }
}

/**
 * The chat template of a model directory, or null with `lookedAt` saying where it was looked for.
 * `tokenizerConfig` is the parsed tokenizer_config.json (or null when the file is absent).
 */
export function loadChatTemplate (modelDir: string, tokenizerConfig: Record<string, unknown> | null): { template: ChatTemplate | null, lookedAt: string } {
  const context = specialTokens(tokenizerConfig ?? {})
  const files = templateFiles(modelDir)
  const cfgFile = path.join(modelDir, TOKENIZER_CONFIG_FILE)
  const lookedAt = `${path.join(modelDir, CHAT_TEMPLATE_FILE)}, ${path.join(modelDir, CHAT_TEMPLATE_DIR)}/*.jinja and the chat_template key of ${cfgFile}${tokenizerConfig === null ? ' (no such file)' : ''}`
  const named = files.size > 0 ? files : configTemplates(tokenizerConfig?.chat_template, cfgFile)
  if (named.size === 0) return { template: null, lookedAt }
  const chosen = named.get('default')
  if (chosen === undefined) {
    throw new ChatTemplateError(`the model has several chat templates and none named "default" (${[...named.keys()].sort().join(', ')}), in ${lookedAt}`)
  }
  return { template: new ChatTemplate(chosen.origin, chosen.text, context), lookedAt }
}

interface TemplateText { text: string, origin: string }

/** chat_template.jinja as "default", additional_chat_templates/<name>.jinja as <name>. */
function templateFiles (modelDir: string): Map<string, TemplateText> {
  const found = new Map<string, TemplateText>()
  const main = path.join(modelDir, CHAT_TEMPLATE_FILE)
  if (existsSync(main)) found.set('default', { text: readText(main), origin: main })
  const dir = path.join(modelDir, CHAT_TEMPLATE_DIR)
  if (existsSync(dir) && statSync(dir).isDirectory()) {
    for (const entry of readdirSync(dir).sort()) {
      if (!entry.endsWith('.jinja')) continue
      const file = path.join(dir, entry)
      found.set(entry.slice(0, -'.jinja'.length), { text: readText(file), origin: file })
    }
  }
  return found
}

/** tokenizer_config.json's chat_template: a string ("default") or a list of {name, template}. */
function configTemplates (value: unknown, cfgFile: string): Map<string, TemplateText> {
  const found = new Map<string, TemplateText>()
  if (value === undefined || value === null) return found
  const origin = `${cfgFile} (chat_template)`
  if (typeof value === 'string') {
    found.set('default', { text: value, origin })
    return found
  }
  if (!Array.isArray(value)) throw new ChatTemplateError(`${origin}: must be a string or a list of {"name", "template"}, got ${typeof value}`)
  value.forEach((entry: unknown, i) => {
    const e = entry as { name?: unknown, template?: unknown } | null
    if (e === null || typeof e !== 'object' || typeof e.name !== 'string' || typeof e.template !== 'string') {
      throw new ChatTemplateError(`${origin}[${i}]: must be {"name": string, "template": string}`)
    }
    found.set(e.name, { text: e.template, origin: `${cfgFile} (chat_template "${e.name}")` })
  })
  return found
}

function specialTokens (config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const key of SPECIAL_TOKEN_KEYS) {
    const text = tokenText(config[key])
    if (text !== null) out[key] = text
  }
  const extra = config.additional_special_tokens ?? config.extra_special_tokens
  if (Array.isArray(extra)) out.additional_special_tokens = extra.map(tokenText).filter((t) => t !== null)
  return out
}

/** A special token as tokenizer_config.json writes it: a string or an AddedToken object. */
export function tokenText (v: unknown): string | null {
  if (typeof v === 'string') return v
  if (v !== null && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content
  return null
}

function readText (file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    throw new ChatTemplateError(`${file}: ${(err as Error).message}`)
  }
}

/** Python's range(), as @huggingface/jinja's global. */
function range (start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) { stop = start; start = 0 }
  if (step === 0) throw new Error('range() step must not be zero')
  const out: number[] = []
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i)
  return out
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday']
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December']

/** Python's datetime.strftime for the directives templates use, in the C locale and local time. */
export function strftime (d: Date, format: string): string {
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0')
  return format.replace(/%([aAbBdHIjmMpSyY%])/g, (_, c: string) => {
    switch (c) {
      case 'a': return DAYS[d.getDay()].slice(0, 3)
      case 'A': return DAYS[d.getDay()]
      case 'b': return MONTHS[d.getMonth()].slice(0, 3)
      case 'B': return MONTHS[d.getMonth()]
      case 'd': return pad(d.getDate())
      case 'H': return pad(d.getHours())
      case 'I': return pad(d.getHours() % 12 === 0 ? 12 : d.getHours() % 12)
      case 'j': return pad(Math.floor((Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()) - Date.UTC(d.getFullYear(), 0, 1)) / 86_400_000) + 1, 3)
      case 'm': return pad(d.getMonth() + 1)
      case 'M': return pad(d.getMinutes())
      case 'p': return d.getHours() < 12 ? 'AM' : 'PM'
      case 'S': return pad(d.getSeconds())
      case 'y': return pad(d.getFullYear() % 100)
      case 'Y': return String(d.getFullYear())
      default: return '%'
    }
  })
}
