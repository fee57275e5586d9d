// Chat templates: rendering the published templates of four families against the strings their
// documentation shows, finding the template where transformers does (and in its order), and
// encoding the rendered prompt with exactly one BOS.
//
// The template texts in test/fixtures/chat-templates are copies of the published ones:
// Llama-3.2-1B-Instruct and Qwen2.5-0.5B-Instruct as read out of their GGUF files (jlib's jinja
// test fixtures), Mistral's "v3" template (Mistral-7B-Instruct-v0.3; llama.cpp's
// test-chat-template.cpp), and SmolLM2-Instruct's (as quoted verbatim by several projects).
import assert from 'node:assert/strict'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ChatTemplate, ChatTemplateError, ChatTemplateRejection, loadChatTemplate, strftime, type ChatMessage } from '../../src/shards/chat-template.ts'
import { TextTokenizer } from '../../src/shards/tokenizer.ts'
import { shapes, tempDir, tinyModel } from '../helpers/models.ts'

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'chat-templates')
const fixture = (name: string): string => readFileSync(path.join(fixtures, name), 'utf8')

const system: ChatMessage = { role: 'system', content: 'You are terse.' }
const user = (content: string): ChatMessage => ({ role: 'user', content })
const assistant = (content: string): ChatMessage => ({ role: 'assistant', content })
const multiTurn = [user('A'), assistant('B'), user('C')]
/** 30 Nov 2026, local time, for Llama-3.2's strftime_now("%d %b %Y") */
const now = (): Date => new Date(2026, 10, 30, 12, 0, 0)

describe('chat templates: published templates render as documented', function () {
  describe('Llama-3.2 (bos_token, trimmed contents, date from strftime_now)', function () {
    const t = new ChatTemplate('llama-3.2.jinja', fixture('llama-3.2.jinja'), { bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>' })
    const header = '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 30 Nov 2026\n\n'

    it('system + user, generation prompt on', function () {
      assert.equal(t.render([system, user(' Hi\n')], { now }),
        header + 'You are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n')
    })

    it('multi-turn without a system message, generation prompt off', function () {
      assert.equal(t.render(multiTurn, { now, addGenerationPrompt: false }),
        header + '<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nA<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nB<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nC<|eot_id|>')
    })
  })

  describe('Qwen2.5 (ChatML with a default system prompt; tools absent)', function () {
    const t = new ChatTemplate('qwen2.5.jinja', fixture('qwen2.5.jinja'), { eos_token: '<|im_end|>', pad_token: '<|endoftext|>' })

    it('system + user, generation prompt on: the given system message replaces the default', function () {
      assert.equal(t.render([system, user('Hi')]),
        '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n')
    })

    it('without a system message: the default one; multi-turn, generation prompt off', function () {
      assert.equal(t.render(multiTurn, { addGenerationPrompt: false }),
        '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\nA<|im_end|>\n<|im_start|>assistant\nB<|im_end|>\n<|im_start|>user\nC<|im_end|>\n')
      assert.equal(t.render([user('Hi')]),
        '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n')
    })
  })

  describe('Mistral v0.3 ([INST], system folded into the last user turn, raise_exception)', function () {
    const t = new ChatTemplate('mistral-v0.3.jinja', fixture('mistral-v0.3.jinja'), { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' })

    it('system + user (the template has no generation prompt: on and off render alike)', function () {
      assert.equal(t.render([system, user('Hi')]), '<s>[INST] You are terse.\n\nHi[/INST]')
      assert.equal(t.render([system, user('Hi')], { addGenerationPrompt: false }), '<s>[INST] You are terse.\n\nHi[/INST]')
    })

    it('multi-turn: assistant turns trimmed and closed by eos_token', function () {
      assert.equal(t.render([system, user('A'), assistant('  B '), user('C')]), '<s>[INST] A[/INST] B</s>[INST] You are terse.\n\nC[/INST]')
      assert.equal(t.render(multiTurn), '<s>[INST] A[/INST] B</s>[INST] C[/INST]')
    })

    it('roles that do not alternate: the template\'s raise_exception becomes a ChatTemplateRejection', function () {
      assert.throws(() => t.render([user('A'), user('B')]),
        (err: Error) => err instanceof ChatTemplateRejection && /conversation roles must alternate user\/assistant/.test(err.message))
    })
  })

  describe('SmolLM2 (ChatML with its own default system prompt)', function () {
    const t = new ChatTemplate('smollm2.jinja', fixture('smollm2.jinja'), { bos_token: '<|im_start|>', eos_token: '<|im_end|>' })

    it('system + user, generation prompt on', function () {
      assert.equal(t.render([system, user('Hi')]), '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n')
    })

    it('multi-turn without a system message, generation prompt off', function () {
      assert.equal(t.render(multiTurn, { addGenerationPrompt: false }),
        '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' +
        '<|im_start|>user\nA<|im_end|>\n<|im_start|>assistant\nB<|im_end|>\n<|im_start|>user\nC<|im_end|>\n')
    })
  })

  it('strftime_now formats like Python\'s strftime (C locale)', function () {
    assert.equal(strftime(new Date(2026, 0, 5, 9, 7, 3), '%d %b %Y %H:%M:%S %a %A %B %j %y %I%p %%'), '05 Jan 2026 09:07:03 Mon Monday January 005 26 09AM %')
  })
})

describe('chat templates: found where transformers looks, in its order', function () {
  const cfgTemplate = "{{ 'config:' + messages[0]['content'] }}"
  const fileTemplate = "{{ 'file:' + messages[0]['content'] }}"
  const render = (dir: string, cfg: Record<string, unknown> | null): string => {
    const { template } = loadChatTemplate(dir, cfg)
    assert.ok(template !== null)
    return template.render([user('x')])
  }

  it('tokenizer_config.json\'s chat_template string', function () {
    assert.equal(render(tempDir('tpl-'), { chat_template: cfgTemplate }), 'config:x')
  })

  it('chat_template.jinja, which wins over tokenizer_config.json', function () {
    const dir = tempDir('tpl-')
    writeFileSync(path.join(dir, 'chat_template.jinja'), fileTemplate)
    assert.equal(render(dir, null), 'file:x')
    assert.equal(render(dir, { chat_template: cfgTemplate }), 'file:x')
  })

  it('a list of named templates: "default" is used', function () {
    const cfg = { chat_template: [{ name: 'tool_use', template: 'tools!' }, { name: 'default', template: cfgTemplate }] }
    assert.equal(render(tempDir('tpl-'), cfg), 'config:x')
  })

  it('additional_chat_templates/<name>.jinja beside chat_template.jinja', function () {
    const dir = tempDir('tpl-')
    mkdirSync(path.join(dir, 'additional_chat_templates'))
    writeFileSync(path.join(dir, 'additional_chat_templates', 'tool_use.jinja'), 'tools!')
    writeFileSync(path.join(dir, 'chat_template.jinja'), fileTemplate)
    assert.equal(render(dir, { chat_template: cfgTemplate }), 'file:x')
  })

  it('named templates without a "default", or of the wrong shape, are errors naming them', function () {
    const dir = tempDir('tpl-')
    assert.throws(() => loadChatTemplate(dir, { chat_template: [{ name: 'tool_use', template: 'a' }, { name: 'rag', template: 'b' }] }),
      (err: Error) => err instanceof ChatTemplateError && /none named "default" \(rag, tool_use\)/.test(err.message))
    assert.throws(() => loadChatTemplate(dir, { chat_template: 7 }), /tokenizer_config\.json \(chat_template\): must be a string or a list/)
    assert.throws(() => loadChatTemplate(dir, { chat_template: [{ name: 'default' }] }), /chat_template\)\[0\]: must be \{"name": string, "template": string\}/)
    // as in transformers, template files replace the config's templates even without a default
    mkdirSync(path.join(dir, 'additional_chat_templates'))
    writeFileSync(path.join(dir, 'additional_chat_templates', 'tool_use.jinja'), 'tools!')
    assert.throws(() => loadChatTemplate(dir, { chat_template: cfgTemplate }), /none named "default" \(tool_use\)/)
  })

  it('a template that does not parse is an error naming its file, for chat use only: plain text still encodes', function () {
    const dir = tempDir('tpl-')
    writeFileSync(path.join(dir, 'chat_template.jinja'), '{% for m in messages %}{{ m.content }')
    const fails = (err: Error): boolean => err instanceof ChatTemplateError && err.message.startsWith(path.join(dir, 'chat_template.jinja') + ': the chat template does not parse')
    assert.throws(() => loadChatTemplate(dir, null), fails)
    copyFileSync(path.join(tinyModel('gqa', shapes.gqa), 'tokenizer.json'), path.join(dir, 'tokenizer.json'))
    const tokenizer = TextTokenizer.load(dir)!
    assert.deepEqual(tokenizer.encode('Hi'), [1, ...tokenizer.encode('Hi', false)])
    assert.throws(() => tokenizer.encodeChat([user('x')]), fails)
  })

  it('no template anywhere: a clear error saying where strata looked', function () {
    const dir = tempDir('tpl-')
    copyFileSync(path.join(tinyModel('gqa', shapes.gqa), 'tokenizer.json'), path.join(dir, 'tokenizer.json'))
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>' }))
    const tokenizer = TextTokenizer.load(dir)!
    assert.equal(tokenizer.hasChatTemplate, false)
    assert.throws(() => tokenizer.encodeChat([user('x')]), (err: Error) => err instanceof ChatTemplateError &&
      err.message.includes(path.join(dir, 'chat_template.jinja')) && err.message.includes(path.join(dir, 'additional_chat_templates')) &&
      err.message.includes(`the chat_template key of ${path.join(dir, 'tokenizer_config.json')}`))
  })
})

describe('chat templates: the rendered prompt is encoded with exactly one BOS', function () {
  const dir = tinyModel('gqa', shapes.gqa)
  const tokenizer = TextTokenizer.load(dir)!
  const [bos, eos] = [1, 2]

  it('make-model\'s template (chat_template.jinja, opening with bos_token)', function () {
    const text = tokenizer.applyChatTemplate([system, user('Hi')])
    assert.equal(text, '<s><|system|>\nYou are terse.</s>\n<|user|>\nHi</s>\n<|assistant|>\n')
    const ids = tokenizer.encodeChat([system, user('Hi')])
    assert.equal(ids[0], bos)
    assert.equal(ids.filter((t) => t === bos).length, 1)
    assert.equal(ids.filter((t) => t === eos).length, 2, 'eos_token is one special token, not its characters')
    // what encoding with the tokenizer's own special tokens would give: the classic double BOS
    assert.deepEqual(tokenizer.encode(text).slice(0, 2), [bos, bos])
  })

  it('Mistral v0.3\'s template through a byte-level tokenizer', function () {
    const mistral = tempDir('tpl-')
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(dir, f), path.join(mistral, f))
    writeFileSync(path.join(mistral, 'chat_template.jinja'), fixture('mistral-v0.3.jinja'))
    const t = TextTokenizer.load(mistral)!
    const ids = t.encodeChat([user('A'), assistant('B'), user('C')])
    assert.deepEqual([ids[0], ids.filter((x) => x === bos).length, ids.filter((x) => x === eos).length], [bos, 1, 1])
    assert.equal(t.decode(ids, false), '<s>[INST] A[/INST] B</s>[INST] C[/INST]')
  })
})
