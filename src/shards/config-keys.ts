// The classification of every config.json key strata reads, per family. A key is either
//   used         — read and applied (or validated) by config.ts / config-rope.ts,
//   harmless     — bookkeeping or training-only, cannot change an inference forward pass,
//   mustBeDefault — a feature switch we accept only at its default value (anything else is refused),
//   refused      — never accepted (REFUSED_KEYS),
// and anything else is an unknown key, refused unless the user allows unknown keys.

export type Family = 'llama' | 'mistral' | 'qwen2' | 'qwen3'

export interface DefaultCheck {
  accepts: (v: unknown) => boolean
  /** what is supported, for the error message */
  supported: string
}

export interface FamilySpec {
  architecture: string
  /** keys config.ts reads for this family */
  used: ReadonlySet<string>
  /** feature switches accepted only at their default value */
  mustBeDefault: Readonly<Record<string, DefaultCheck>>
  /** tie_word_embeddings when the key is absent (transformers' per-family default) */
  tiedByDefault: boolean
}

/** Keys that never change inference math: provenance, training hyper-parameters, caching hints. */
export const HARMLESS_KEYS: ReadonlySet<string> = new Set([
  '_name_or_path', 'transformers_version', 'use_cache', 'initializer_range', 'attention_dropout',
  'pad_token_id', 'is_llama_config', 'output_attentions', 'output_hidden_states', 'return_dict',
  'torchscript', 'tokenizer_class', 'strata_seed'
])

/** Keys refused whatever their value, even with unknown keys allowed. */
export const REFUSED_KEYS: Readonly<Record<string, string>> = {
  quantization_config: 'pre-quantized checkpoints (GPTQ, AWQ, bitsandbytes, …) are not supported: use F32/F16/BF16 weights and --quantize',
  auto_map: 'the model needs its own modeling code (trust_remote_code), which strata does not run'
}

const COMMON_USED = [
  'architectures', 'model_type', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
  'head_dim', 'intermediate_size', 'vocab_size', 'rms_norm_eps', 'max_position_embeddings', 'tie_word_embeddings',
  'bos_token_id', 'eos_token_id', 'torch_dtype', 'dtype', 'rope_theta', 'rope_scaling', 'rope_parameters'
]

const isFalse = { accepts: (v: unknown) => v === false, supported: 'only false' }
const silu = { accepts: (v: unknown) => v === 'silu', supported: 'only "silu"' }
const one = { accepts: (v: unknown) => v === 1 || v === 1.0, supported: 'only 1' }

export const FAMILIES: Readonly<Record<Family, FamilySpec>> = {
  llama: {
    architecture: 'LlamaForCausalLM',
    used: new Set(COMMON_USED),
    // attention_bias on Llama puts biases on q, k, v and o; mlp_bias on the MLP: not implemented
    mustBeDefault: { attention_bias: isFalse, mlp_bias: isFalse, hidden_act: silu, pretraining_tp: one, rope_interleaved: isFalse, partial_rotary_factor: one },
    tiedByDefault: false
  },
  mistral: {
    architecture: 'MistralForCausalLM',
    used: new Set([...COMMON_USED, 'sliding_window']),
    mustBeDefault: { hidden_act: silu, partial_rotary_factor: one },
    tiedByDefault: false
  },
  qwen2: {
    architecture: 'Qwen2ForCausalLM',
    // sliding_window and max_window_layers only matter with use_sliding_window, which must be false
    used: new Set([...COMMON_USED, 'use_sliding_window', 'sliding_window', 'max_window_layers', 'layer_types']),
    mustBeDefault: { hidden_act: silu, use_mrope: isFalse, partial_rotary_factor: one, rope_interleaved: isFalse },
    tiedByDefault: false
  },
  qwen3: {
    architecture: 'Qwen3ForCausalLM',
    used: new Set([...COMMON_USED, 'use_sliding_window', 'sliding_window', 'max_window_layers', 'layer_types']),
    // attention_bias on Qwen3 adds q, k, v and o biases: not implemented
    mustBeDefault: { attention_bias: isFalse, hidden_act: silu, partial_rotary_factor: one, rope_interleaved: isFalse },
    tiedByDefault: false
  }
}

export function familyOf (modelType: string): Family | undefined {
  return Object.hasOwn(FAMILIES, modelType) ? modelType as Family : undefined
}
