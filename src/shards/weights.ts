// Tensor access for a Hugging Face model directory (single or sharded safetensors).
// Shard files open lazily, so a span touches only the shards holding its tensors.
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { SafetensorsFile, toFloat32, type RawTensor } from './safetensors.ts'
import { MissingTensorError, SafetensorsError } from './errors.ts'

export const tensorNames = {
  embed: 'model.embed_tokens.weight',
  finalNorm: 'model.norm.weight',
  lmHead: 'lm_head.weight',
  block: (i: number) => ({
    inputNorm: `model.layers.${i}.input_layernorm.weight`,
    q: `model.layers.${i}.self_attn.q_proj.weight`,
    k: `model.layers.${i}.self_attn.k_proj.weight`,
    v: `model.layers.${i}.self_attn.v_proj.weight`,
    o: `model.layers.${i}.self_attn.o_proj.weight`,
    postNorm: `model.layers.${i}.post_attention_layernorm.weight`,
    gate: `model.layers.${i}.mlp.gate_proj.weight`,
    up: `model.layers.${i}.mlp.up_proj.weight`,
    down: `model.layers.${i}.mlp.down_proj.weight`
  }),
  /** tensors only some families have: q/k/v biases (Qwen2), per-head q/k norms (Qwen3) */
  blockExtras: (i: number) => ({
    qBias: `model.layers.${i}.self_attn.q_proj.bias`,
    kBias: `model.layers.${i}.self_attn.k_proj.bias`,
    vBias: `model.layers.${i}.self_attn.v_proj.bias`,
    qNorm: `model.layers.${i}.self_attn.q_norm.weight`,
    kNorm: `model.layers.${i}.self_attn.k_norm.weight`
  })
}

export class ModelWeights {
  private readonly files = new Map<string, SafetensorsFile>()
  /** tensor name → shard file name */
  private readonly weightMap: Map<string, string> | null

  constructor (readonly dir: string) {
    const index = path.join(dir, 'model.safetensors.index.json')
    if (existsSync(index)) {
      let parsed: unknown
      try {
        parsed = JSON.parse(readFileSync(index, 'utf8'))
      } catch (err) {
        throw new SafetensorsError(index, `not valid JSON: ${(err as Error).message}`)
      }
      const map = (parsed as { weight_map?: unknown } | null)?.weight_map
      if (map === null || typeof map !== 'object') throw new SafetensorsError(index, 'missing weight_map')
      this.weightMap = new Map()
      for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
        if (typeof file !== 'string' || file.includes('/') || file.includes('\\')) throw new SafetensorsError(index, `bad shard name for ${name}`)
        this.weightMap.set(name, file)
      }
    } else if (existsSync(path.join(dir, 'model.safetensors'))) {
      this.weightMap = null
    } else {
      throw new SafetensorsError(dir, 'no model.safetensors or model.safetensors.index.json')
    }
  }

  has (name: string): boolean {
    const file = this.fileFor(name)
    return file !== null && this.open(file).has(name)
  }

  raw (name: string, expectedShape?: number[]): RawTensor {
    const file = this.fileFor(name)
    if (file === null || !this.open(file).has(name)) throw new MissingTensorError(`tensor ${name} is missing from ${this.dir}`)
    const t = this.open(file).read(name)
    if (expectedShape !== undefined && (t.shape.length !== expectedShape.length || t.shape.some((d, i) => d !== expectedShape[i]))) {
      throw new MissingTensorError(`tensor ${name} has shape [${t.shape.join(', ')}], expected [${expectedShape.join(', ')}]`)
    }
    return t
  }

  float32 (name: string, expectedShape?: number[]): Float32Array {
    return toFloat32(this.raw(name, expectedShape))
  }

  /** Total bytes read from all shard files so far. */
  get bytesRead (): number {
    let n = 0
    for (const f of this.files.values()) n += f.bytesRead
    return n
  }

  close (): void {
    for (const f of this.files.values()) f.close()
    this.files.clear()
  }

  private fileFor (name: string): string | null {
    if (this.weightMap === null) return 'model.safetensors'
    return this.weightMap.get(name) ?? null
  }

  private open (file: string): SafetensorsFile {
    let f = this.files.get(file)
    if (f === undefined) {
      f = new SafetensorsFile(path.join(this.dir, file))
      this.files.set(file, f)
    }
    return f
  }
}
