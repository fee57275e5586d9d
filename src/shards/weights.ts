// Tensor access for a Hugging Face model directory (single or sharded safetensors).
// Shard files open lazily, so a span touches only the shards holding its tensors.
import { existsSync, readFileSync, realpathSync } from 'node:fs'
import path from 'node:path'
import { SafetensorsFile, toFloat32, type RawTensor, type TensorEntry } from './safetensors.ts'
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
  private readonly opened = new Map<string, SafetensorsFile>()
  /** bytes of tensors handed over by location() */
  private bytesReferenced = 0
  /** names of the tensors looked up so far */
  private readonly used = new Set<string>()
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

  /** A tensor's header entry (dtype, shape, place), checked against `expectedShape`; reads no data. */
  entry (name: string, expectedShape?: number[]): TensorEntry {
    const file = this.fileFor(name)
    const e = file === null ? undefined : this.open(file).entries.get(name)
    if (e === undefined) throw new MissingTensorError(`tensor ${name} is missing from ${this.dir}`)
    this.used.add(name)
    if (expectedShape !== undefined && (e.shape.length !== expectedShape.length || e.shape.some((d, i) => d !== expectedShape[i]))) {
      throw new MissingTensorError(`tensor ${name} has shape [${e.shape.join(', ')}], expected [${expectedShape.join(', ')}]`)
    }
    return e
  }

  /**
   * Where a tensor's bytes lie (absolute file path, offset, length), for onnxruntime to read them
   * there; they count as read.
   */
  location (name: string, expectedShape?: number[]): { file: string, offset: number, byteLength: number } {
    const e = this.entry(name, expectedShape)
    this.bytesReferenced += e.byteLength
    // the real path: Hugging Face's cache links snapshot files to blobs elsewhere, and onnxruntime
    // refuses external data whose resolved path leaves the folder it was given
    return { file: realpathSync(path.join(this.dir, this.fileFor(name) as string)), offset: e.offset, byteLength: e.byteLength }
  }

  /** Reads a tensor's raw bytes into `into` (exactly its size), checked against `expectedShape`. */
  readInto (name: string, into: Uint8Array, expectedShape?: number[]): void {
    this.entry(name, expectedShape)
    this.open(this.fileFor(name) as string).readInto(name, into)
  }

  raw (name: string, expectedShape?: number[]): RawTensor {
    this.entry(name, expectedShape)
    return this.open(this.fileFor(name) as string).read(name)
  }

  /** The shard files (absolute paths, sorted) holding the tensors looked up so far: what a built graph read. */
  get usedFiles (): string[] {
    const files = new Set<string>()
    for (const name of this.used) files.add(this.fileFor(name) as string)
    return [...files].sort().map((f) => path.join(this.dir, f))
  }

  float32 (name: string, expectedShape?: number[]): Float32Array {
    return toFloat32(this.raw(name, expectedShape))
  }

  /** Total bytes read from all shard files so far, or handed over to be read there. */
  get bytesRead (): number {
    let n = this.bytesReferenced
    for (const f of this.opened.values()) n += f.bytesRead
    return n
  }

  close (): void {
    for (const f of this.opened.values()) f.close()
    this.opened.clear()
  }

  private fileFor (name: string): string | null {
    if (this.weightMap === null) return 'model.safetensors'
    return this.weightMap.get(name) ?? null
  }

  private open (file: string): SafetensorsFile {
    let f = this.opened.get(file)
    if (f === undefined) {
      f = new SafetensorsFile(path.join(this.dir, file))
      this.opened.set(file, f)
    }
    return f
  }
}
