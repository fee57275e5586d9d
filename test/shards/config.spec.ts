import assert from 'node:assert/strict'
import { parseModelConfig, type ModelConfig } from '../../src/shards/config.ts'
import { inverseFrequencies } from '../../src/shards/rope.ts'
import { ModelConfigError } from '../../src/shards/errors.ts'
import { published, toTransformers5 } from './published-configs.ts'

/** what each published config must derive to */
const expected: Record<string, Partial<ModelConfig> & { rope: 'none' | 'llama3' }> = {
  'TinyLlama-1.1B-Chat-v1.0': { family: 'llama', hiddenSize: 2048, numLayers: 22, numHeads: 32, numKvHeads: 4, headDim: 64, intermediateSize: 5632, vocabSize: 32000, ropeTheta: 10000, maxPositions: 2048, tieWordEmbeddings: false, rope: 'none' },
  'Llama-3.2-1B': { family: 'llama', hiddenSize: 2048, numLayers: 16, numHeads: 32, numKvHeads: 8, headDim: 64, intermediateSize: 8192, vocabSize: 128256, ropeTheta: 500000, maxPositions: 131072, tieWordEmbeddings: true, rope: 'llama3' },
  'Llama-3.1-8B': { family: 'llama', hiddenSize: 4096, numLayers: 32, numHeads: 32, numKvHeads: 8, headDim: 128, intermediateSize: 14336, vocabSize: 128256, ropeTheta: 500000, maxPositions: 131072, tieWordEmbeddings: false, rope: 'llama3' },
  'SmolLM2-135M': { family: 'llama', hiddenSize: 576, numLayers: 30, numHeads: 9, numKvHeads: 3, headDim: 64, intermediateSize: 1536, vocabSize: 49152, ropeTheta: 100000, maxPositions: 8192, tieWordEmbeddings: true, rope: 'none' },
  'SmolLM2-360M': { family: 'llama', hiddenSize: 960, numLayers: 32, numHeads: 15, numKvHeads: 5, headDim: 64, intermediateSize: 2560, vocabSize: 49152, ropeTheta: 100000, maxPositions: 8192, tieWordEmbeddings: true, rope: 'none' },
  'SmolLM2-1.7B': { family: 'llama', hiddenSize: 2048, numLayers: 24, numHeads: 32, numKvHeads: 32, headDim: 64, intermediateSize: 8192, vocabSize: 49152, ropeTheta: 130000, maxPositions: 8192, tieWordEmbeddings: true, rope: 'none' },
  'Mistral-7B-v0.3': { family: 'mistral', hiddenSize: 4096, numLayers: 32, numHeads: 32, numKvHeads: 8, headDim: 128, intermediateSize: 14336, vocabSize: 32768, ropeTheta: 1e6, maxPositions: 32768, tieWordEmbeddings: false, slidingWindow: null, rope: 'none' },
  'Qwen2.5-0.5B': { family: 'qwen2', hiddenSize: 896, numLayers: 24, numHeads: 14, numKvHeads: 2, headDim: 64, intermediateSize: 4864, vocabSize: 151936, ropeTheta: 1e6, maxPositions: 32768, tieWordEmbeddings: true, qkvBias: true, qkNorm: false, slidingWindow: null, rope: 'none' },
  'Qwen2.5-7B': { family: 'qwen2', hiddenSize: 3584, numLayers: 28, numHeads: 28, numKvHeads: 4, headDim: 128, intermediateSize: 18944, vocabSize: 152064, ropeTheta: 1e6, maxPositions: 131072, tieWordEmbeddings: false, qkvBias: true, slidingWindow: null, rope: 'none' },
  'Qwen3-0.6B': { family: 'qwen3', hiddenSize: 1024, numLayers: 28, numHeads: 16, numKvHeads: 8, headDim: 128, intermediateSize: 3072, vocabSize: 151936, ropeTheta: 1e6, maxPositions: 40960, tieWordEmbeddings: true, qkvBias: false, qkNorm: true, rope: 'none' },
  'Qwen3-8B': { family: 'qwen3', hiddenSize: 4096, numLayers: 36, numHeads: 32, numKvHeads: 8, headDim: 128, intermediateSize: 12288, vocabSize: 151936, ropeTheta: 1e6, maxPositions: 40960, tieWordEmbeddings: false, qkNorm: true, rope: 'none' }
}

/**
 * Expected inverse frequency of pair i, written out from transformers' modeling_rope_utils
 * (`_compute_default_rope_parameters`, `_compute_llama3_parameters`) with the published numbers.
 */
function expectedInvFreq (name: string, i: number, headDim: number, theta: number): number {
  const base = 1 / theta ** (2 * i / headDim)
  if (expected[name].rope === 'none') return base
  const factor = name === 'Llama-3.2-1B' ? 32 : 8
  const lowWavelen = 8192 / 1 // original_max_position_embeddings / low_freq_factor
  const highWavelen = 8192 / 4 // … / high_freq_factor
  const wavelen = 2 * Math.PI / base
  if (wavelen < highWavelen) return base
  if (wavelen > lowWavelen) return base / factor
  const smooth = (8192 / wavelen - 1) / (4 - 1)
  return (1 - smooth) * base / factor + smooth * base
}

describe('config.json of published checkpoints, both generations', function () {
  for (const [name, raw] of Object.entries(published)) {
    for (const [form, config] of [['older form', raw], ['transformers-5 form', toTransformers5(raw)]] as const) {
      it(`${name} (${form}) is accepted with the right derived parameters`, function () {
        const cfg = parseModelConfig(config)
        const { rope, ...fields } = expected[name]
        for (const [k, v] of Object.entries(fields)) assert.deepEqual(cfg[k as keyof ModelConfig], v, `${name}: ${k}`)
        assert.equal(cfg.ropeScaling.type, rope)
        assert.equal(cfg.torchDtype, 'bfloat16')
        assert.deepEqual(cfg.unknownKeys, [])
        const inv = inverseFrequencies(cfg)
        assert.equal(inv.length, cfg.headDim / 2)
        for (let i = 0; i < inv.length; i++) {
          const want = expectedInvFreq(name, i, cfg.headDim, cfg.ropeTheta)
          assert.ok(Math.abs(inv[i] - want) <= 1e-12 * want, `${name}: inverse frequency ${i} is ${inv[i]}, expected ${want}`)
        }
      })
    }
  }

  it('both forms of every checkpoint derive identical parameters', function () {
    for (const [name, raw] of Object.entries(published)) assert.deepEqual(parseModelConfig(toTransformers5(raw)), parseModelConfig(raw), name)
  })

  it('llama3 scaling of Llama-3.1-8B: the three frequency bands', function () {
    const inv = inverseFrequencies(parseModelConfig(toTransformers5(published['Llama-3.1-8B'])))
    assert.equal(inv[0], 1) // fastest rotation untouched
    assert.ok(Math.abs(inv[63] - 500000 ** (-126 / 128) / 8) < 1e-18) // slowest divided by factor 8
    // a pair in the smoothed band (wavelength between 2048 and 8192) lies strictly between
    const i = Array.from(inv.keys()).find((k) => { const w = 2 * Math.PI * 500000 ** (2 * k / 128); return w > 2048 && w < 8192 })!
    const base = 500000 ** (-2 * i / 128)
    assert.ok(inv[i] < base && inv[i] > base / 8)
  })
})

describe('config.json fields that are refused, by name', function () {
  const llama = published['Llama-3.1-8B']
  const qwen = published['Qwen2.5-7B']
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['an unknown key', { ...llama, attn_logit_softcapping: 30 }, /attn_logit_softcapping: unknown key/],
    ['quantized weights', { ...llama, quantization_config: { quant_method: 'gptq' } }, /quantization_config: pre-quantized checkpoints/],
    ['custom modeling code', { ...llama, auto_map: { AutoModelForCausalLM: 'modeling_x.X' } }, /auto_map: the model needs its own modeling code/],
    ['dynamic rope (older form)', { ...llama, rope_scaling: { rope_type: 'dynamic', factor: 2 } }, /rope_scaling\.rope_type: "dynamic" is not supported/],
    ['yarn rope (v5 form)', toTransformers5({ ...qwen, rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 } }), /rope_parameters\.rope_type: "yarn" is not supported/],
    ['longrope', { ...llama, rope_scaling: { type: 'longrope', factor: 4 } }, /rope_scaling\.rope_type: "longrope"/],
    ['a rope key the type does not use', { ...llama, rope_scaling: { rope_type: 'linear', factor: 2, beta_fast: 32 } }, /rope_scaling\.beta_fast: not used by rope type "linear"/],
    ['partial rotary', toTransformers5({ ...llama, rope_scaling: null, partial_rotary_factor: 0.5 }), /partial_rotary_factor: 0\.5 is not supported/],
    ['both rope_parameters and rope_scaling', { ...toTransformers5(llama), rope_scaling: { rope_type: 'linear', factor: 2 } }, /rope_scaling: given together with rope_parameters/],
    ['rope_theta contradicting rope_parameters', { ...toTransformers5(llama), rope_theta: 10000 }, /rope_theta: 10000 contradicts rope_parameters\.rope_theta 500000/],
    ['dtype contradicting torch_dtype', { ...llama, dtype: 'float16' }, /dtype: "float16" contradicts torch_dtype "bfloat16"/],
    ['attention_bias on Llama', { ...llama, attention_bias: true }, /attention_bias: true is not supported/],
    ['mlp_bias', { ...llama, mlp_bias: true }, /mlp_bias: true is not supported/],
    ['hidden_act gelu', { ...llama, hidden_act: 'gelu' }, /hidden_act: "gelu" is not supported/],
    ['pretraining_tp 2', { ...llama, pretraining_tp: 2 }, /pretraining_tp: 2 is not supported/],
    ['interleaved rope', { ...published['SmolLM2-135M'], rope_interleaved: true }, /rope_interleaved: true is not supported/],
    ['Qwen2 sliding window switched on', { ...qwen, use_sliding_window: true }, /use_sliding_window: true is not supported/],
    ['Qwen2 mrope', { ...qwen, use_mrope: true }, /use_mrope: true is not supported/],
    ['Qwen3 sliding layers (v5)', { ...toTransformers5(published['Qwen3-0.6B']), layer_types: Array.from({ length: 28 }, (_, i) => i < 14 ? 'full_attention' : 'sliding_attention') }, /layer_types: "sliding_attention" is not supported/],
    ['an architecture that is not the model_type\'s', { ...llama, architectures: ['MistralForCausalLM'] }, /architectures: "MistralForCausalLM" is not supported for model_type "llama"/],
    ['an unsupported family', { ...llama, model_type: 'gemma' }, /model_type: "gemma" is not supported/],
    ['sliding_window on a Llama', { ...llama, sliding_window: 4096 }, /sliding_window: unknown key/]
  ]
  for (const [what, config, re] of cases) {
    it(what, function () {
      assert.throws(() => parseModelConfig(config), (err: Error) => err instanceof ModelConfigError && re.test(err.message), `expected ${re}`)
    })
  }

  it('unknown keys pass only when allowed, and are reported', function () {
    const cfg = parseModelConfig({ ...llama, attn_logit_softcapping: 30, some_new_switch: true }, { allowUnknownKeys: true })
    assert.deepEqual(cfg.unknownKeys, ['attn_logit_softcapping', 'some_new_switch'])
    // allowing unknown keys never lets a known, unimplemented value through
    assert.throws(() => parseModelConfig({ ...llama, mlp_bias: true }, { allowUnknownKeys: true }), /mlp_bias/)
    assert.throws(() => parseModelConfig({ ...llama, quantization_config: { bits: 4 } }, { allowUnknownKeys: true }), /quantization_config/)
  })

  it('Mistral-7B-v0.1 keeps its 4096-position sliding window; linear rope divides every frequency', function () {
    const v01 = parseModelConfig({ ...published['Mistral-7B-v0.3'], sliding_window: 4096, rope_theta: 10000.0, vocab_size: 32000 })
    assert.equal(v01.slidingWindow, 4096)
    const linear = parseModelConfig(toTransformers5({ ...published['TinyLlama-1.1B-Chat-v1.0'], rope_scaling: { type: 'linear', factor: 4 } }))
    const plain = inverseFrequencies(parseModelConfig(published['TinyLlama-1.1B-Chat-v1.0']))
    inverseFrequencies(linear).forEach((v, i) => assert.ok(Math.abs(v - plain[i] / 4) < 1e-15))
  })
})
