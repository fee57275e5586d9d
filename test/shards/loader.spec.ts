import assert from 'node:assert/strict'
import { readFileSync, writeFileSync, rmSync, copyFileSync, mkdirSync, readdirSync, statSync, truncateSync } from 'node:fs'
import path from 'node:path'
import { SpanEngine } from '../../src/shards/span-engine.ts'
import { SafetensorsFile } from '../../src/shards/safetensors.ts'
import { ModelWeights, tensorNames } from '../../src/shards/weights.ts'
import { loadModelConfig, parseModelConfig } from '../../src/shards/config.ts'
import { makeModel } from '../../src/shards/make-model.ts'
import { GenerationConfigError, ModelConfigError, SafetensorsError } from '../../src/shards/errors.ts'
import { tempDir } from '../helpers/models.ts'

const shape = { layers: 8, hidden: 64, heads: 4, kvHeads: 2, intermediate: 96, vocab: 300, seed: 11 }

function blockBytes (dir: string, l: number): number {
  const f = new SafetensorsFile(path.join(dir, 'model.safetensors'))
  const names = Object.values(tensorNames.block(l))
  const n = names.reduce((s, name) => s + f.entries.get(name)!.byteLength, 0)
  f.close()
  return n
}

describe('model loading reads only what a span needs', function () {
  it('reads exactly the header and the tensors of blocks [2, 4) of 8', async function () {
    const dir = tempDir('lazy-')
    makeModel({ ...shape, out: dir })
    const file = path.join(dir, 'model.safetensors')
    const headerBytes = 8 + Number(readFileSync(file).readBigUInt64LE(0))
    const engine = await SpanEngine.load(dir, { start: 2, end: 4, threads: 1 })
    await engine.dispose()
    assert.equal(engine.bytesRead, headerBytes + blockBytes(dir, 2) + blockBytes(dir, 3))
    assert.ok(engine.bytesRead < statSync(file).size / 3)
  })

  it('loads a span from a sharded model whose other shards are unreadable', async function () {
    const dir = tempDir('sharded-')
    makeModel({ ...shape, out: dir, shardBytes: 64 * 1024 })
    const index = JSON.parse(readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8')).weight_map as Record<string, string>
    const needed = new Set(Object.values(tensorNames.block(5)).map((n) => index[n]))
    const shards = readdirSync(dir).filter((f) => f.endsWith('.safetensors'))
    assert.ok(shards.length > 4, `expected several shards, got ${shards.length}`)
    for (const f of shards) if (!needed.has(f)) writeFileSync(path.join(dir, f), 'garbage')
    const engine = await SpanEngine.load(dir, { start: 5, end: 6, threads: 1 })
    await engine.dispose()
    await assert.rejects(SpanEngine.load(dir, { start: 0, end: 1, threads: 1 }), SafetensorsError)
  })
})

describe('bad model files get clear errors', function () {
  let good: string
  before(function () {
    good = tempDir('good-')
    makeModel({ ...shape, layers: 2, out: good })
  })

  function variant (name: string): string {
    const dir = tempDir(`${name}-`)
    for (const f of readdirSync(good)) copyFileSync(path.join(good, f), path.join(dir, f))
    return dir
  }

  function editConfig (dir: string, edit: (c: Record<string, unknown>) => void): void {
    const c = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'))
    edit(c)
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(c))
  }

  it('missing and corrupt config.json', function () {
    const dir = variant('noconf')
    rmSync(path.join(dir, 'config.json'))
    assert.throws(() => loadModelConfig(dir), /config\.json: \(file\): not found/)
    writeFileSync(path.join(dir, 'config.json'), '{ "model_type": ')
    assert.throws(() => loadModelConfig(dir), /not valid JSON/)
  })

  it('EOS ids: generation_config.json\'s eos_token_id (an id or a list) decides, config.json\'s is the fallback', function () {
    const dir = variant('genconf')
    editConfig(dir, (c) => { c.eos_token_id = 2 })
    const gen = path.join(dir, 'generation_config.json')
    writeFileSync(gen, JSON.stringify({ bos_token_id: 1, eos_token_id: [2, 7, 9], temperature: 0.6 }))
    assert.deepEqual(loadModelConfig(dir).eosTokenIds, [2, 7, 9])
    writeFileSync(gen, JSON.stringify({ eos_token_id: 5 }))
    assert.deepEqual(loadModelConfig(dir).eosTokenIds, [5])
    writeFileSync(gen, JSON.stringify({ bos_token_id: 1 }))
    assert.deepEqual(loadModelConfig(dir).eosTokenIds, [2])
    rmSync(gen)
    editConfig(dir, (c) => { c.eos_token_id = [2, 3] })
    assert.deepEqual(loadModelConfig(dir).eosTokenIds, [2, 3])
    writeFileSync(gen, '{ "eos_token_id": ')
    assert.throws(() => loadModelConfig(dir), (err: Error) => err instanceof GenerationConfigError && /^generation_config\.json: \(file\): not valid JSON/.test(err.message))
    writeFileSync(gen, JSON.stringify({ eos_token_id: ['</s>'] }))
    assert.throws(() => loadModelConfig(dir), /generation_config\.json: eos_token_id: must be a token id or a list of token ids, got \["<\/s>"\]/)
  })

  it('unknown architectures and unsupported features name the field', function () {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ architectures: ['GPT2LMHeadModel'] }, /architectures: "GPT2LMHeadModel" is not supported/],
      [{ model_type: 'gpt2' }, /model_type: "gpt2" is not supported/],
      [{ rope_scaling: { type: 'yarn', factor: 4 } }, /rope_scaling\.rope_type: "yarn" is not supported/],
      [{ hidden_size: -3 }, /hidden_size: must be a positive integer/],
      [{ num_key_value_heads: 3 }, /num_key_value_heads: 3 does not divide/],
      [{ attention_bias: true }, /attention_bias: true is not supported \(only false\)/],
      [{ hidden_act: 'gelu' }, /hidden_act/],
      [{ head_dim: 23 }, /head_dim: 23 is odd/]
    ]
    const base = JSON.parse(readFileSync(path.join(good, 'config.json'), 'utf8'))
    for (const [patch, re] of cases) {
      assert.throws(() => parseModelConfig({ ...base, ...patch }), (err: Error) => err instanceof ModelConfigError && re.test(err.message), JSON.stringify(patch))
    }
    const llama3 = parseModelConfig({ ...base, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } })
    assert.equal(llama3.ropeScaling.type, 'llama3')
  })

  it('truncated safetensors file', async function () {
    const dir = variant('trunc')
    const file = path.join(dir, 'model.safetensors')
    truncateSync(file, statSync(file).size - 100)
    assert.throws(() => new ModelWeights(dir).raw(tensorNames.embed), /past the end of the data.*truncated or header lies/)
    truncateSync(file, 5)
    assert.throws(() => new ModelWeights(dir).raw(tensorNames.embed), /shorter than the 8-byte header length/)
  })

  function rewriteHeader (dir: string, edit: (h: Record<string, any>) => void): void {
    const file = path.join(dir, 'model.safetensors')
    const buf = readFileSync(file)
    const len = Number(buf.readBigUInt64LE(0))
    const header = JSON.parse(buf.subarray(8, 8 + len).toString())
    edit(header)
    let json = JSON.stringify(header)
    json += ' '.repeat(Math.max(0, len - json.length))
    assert.equal(json.length, len, 'test helper keeps the header length')
    writeFileSync(file, Buffer.concat([buf.subarray(0, 8), Buffer.from(json), buf.subarray(8 + len)]))
  }

  it('header that lies about sizes, wrong dtype, non-JSON header, absurd header length', function () {
    let dir = variant('lies')
    rewriteHeader(dir, (h) => { h[tensorNames.finalNorm].shape = [65] })
    assert.throws(() => new ModelWeights(dir).raw(tensorNames.embed), /needs 260 bytes but data_offsets span 256/)
    dir = variant('dtype')
    rewriteHeader(dir, (h) => { h[tensorNames.finalNorm].dtype = 'I64' })
    assert.throws(() => new ModelWeights(dir).raw(tensorNames.embed), /dtype "I64" is not supported/)
    dir = variant('json')
    const file = path.join(dir, 'model.safetensors')
    const buf = readFileSync(file)
    buf.write('!', 8)
    writeFileSync(file, buf)
    assert.throws(() => new ModelWeights(dir).raw(tensorNames.embed), /header is not valid JSON/)
    buf.writeBigUInt64LE(2n ** 60n, 0)
    writeFileSync(file, buf)
    assert.throws(() => new ModelWeights(dir).raw(tensorNames.embed), /exceeds the .*-byte limit/)
  })

  it('missing tensor and wrong tensor shape', async function () {
    const dir = variant('shape')
    editConfig(dir, (c) => { c.intermediate_size = 100 })
    await assert.rejects(SpanEngine.load(dir, { start: 0, end: 1 }), /has shape \[96, 64\], expected \[100, 64\]/)
    editConfig(dir, (c) => { c.intermediate_size = 96; c.num_hidden_layers = 3 })
    await assert.rejects(SpanEngine.load(dir, { start: 2, end: 3 }), /model\.layers\.2\.input_layernorm\.weight is missing/)
    await assert.rejects(SpanEngine.load(dir, { start: 2, end: 9 }), /not within the model's 3 blocks/)
  })

  it('no weights at all', function () {
    const dir = tempDir('empty-')
    mkdirSync(dir, { recursive: true })
    assert.throws(() => new ModelWeights(dir), /no model\.safetensors or model\.safetensors\.index\.json/)
  })
})
