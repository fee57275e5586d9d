// A small typed layer over onnx-proto for building graphs in code.
// Initializers either live inside the model (small models) or in an external data file next to
// it (protobuf caps a model at 2 GiB; a 1B-class span is bigger than that). Weights that lie as they are in a checkpoint (FileBytes) stay there, as external data.
import onnxProto from 'onnx-proto'
import type { onnx as O } from 'onnx-proto'
import { closeSync, openSync, readSync, writeSync, writeFileSync, mkdirSync } from 'node:fs'
import path from 'node:path'

const { onnx } = onnxProto
export const DataType = onnx.TensorProto.DataType
export type DataTypeId = O.TensorProto.DataType

export type Dim = number | string
export type AttrValue = number | number[] | string | { float: number } | { tensor: O.ITensorProto }

/**
 * Initializer bytes produced only when the graph is written, in chunks handed to `sink`: a span's
 * weights then pass through memory one tensor at a time on their way to the external-data file.
 */
export interface LazyBytes {
  byteLength: number
  produce: (sink: (chunk: Uint8Array) => void) => void
}

/** Initializer bytes that lie as they are in a file (a checkpoint): onnxruntime reads them there. */
export interface FileBytes {
  file: string
  offset: number
  byteLength: number
}

type InitializerData = Uint8Array | LazyBytes | FileBytes

interface PendingInitializer {
  name: string
  dataType: DataTypeId
  dims: number[]
  bytes: InitializerData
}

const isFile = (b: InitializerData): b is FileBytes => !(b instanceof Uint8Array) && 'file' in b

export class InitializerSizeError extends Error {
  constructor (name: string, expected: number, got: number) {
    super(`initializer ${name}: produced ${got} bytes, expected ${expected}`)
    this.name = 'InitializerSizeError'
  }
}

/** Produces all of an initializer's bytes into one buffer. */
function materialize (t: PendingInitializer): Uint8Array {
  if (t.bytes instanceof Uint8Array) return t.bytes
  if (isFile(t.bytes)) return readRange(t.bytes)
  const out = new Uint8Array(t.bytes.byteLength)
  let off = 0
  t.bytes.produce((chunk) => {
    if (off + chunk.byteLength > out.byteLength) throw new InitializerSizeError(t.name, out.byteLength, off + chunk.byteLength)
    out.set(chunk, off)
    off += chunk.byteLength
  })
  if (off !== out.byteLength) throw new InitializerSizeError(t.name, out.byteLength, off)
  return out
}

export class GraphBuilder {
  private readonly nodes: O.INodeProto[] = []
  private readonly inputs: O.IValueInfoProto[] = []
  private readonly outputs: O.IValueInfoProto[] = []
  private readonly initializers: PendingInitializer[] = []
  private counter = 0

  constructor (private readonly name: string) {}

  input (name: string, dataType: DataTypeId, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, dataType, dims))
    return name
  }

  output (name: string, dataType: DataTypeId, dims: Dim[]): string {
    this.outputs.push(valueInfo(name, dataType, dims))
    return name
  }

  /** Adds a constant tensor. `bytes` are little-endian raw values of `dataType` (or produce them later, or lie in a file). */
  initializer (name: string, dataType: DataTypeId, dims: number[], bytes: InitializerData): string {
    this.initializers.push({ name, dataType, dims, bytes })
    return name
  }

  floatInit (name: string, dims: number[], data: Float32Array): string {
    return this.initializer(name, DataType.FLOAT, dims, new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
  }

  int64Init (name: string, values: number[]): string {
    const data = new BigInt64Array(values.map(BigInt))
    return this.initializer(name, DataType.INT64, [values.length], new Uint8Array(data.buffer))
  }

  /** Adds a node; returns its output names (fresh ones unless given). */
  node (opType: string, inputs: string[], opts: { outputs?: string[] | number, attrs?: Record<string, AttrValue>, domain?: string, name?: string } = {}): string[] {
    const id = this.counter++
    const outputs = Array.isArray(opts.outputs)
      ? opts.outputs
      : Array.from({ length: opts.outputs ?? 1 }, (_, i) => `${opts.name ?? opType}_${id}_out${i}`)
    this.nodes.push({
      opType,
      domain: opts.domain ?? '',
      name: `${opts.name ?? opType}_${id}`,
      input: inputs,
      output: outputs,
      attribute: Object.entries(opts.attrs ?? {}).map(([k, v]) => attribute(k, v))
    })
    return outputs
  }

  /** Shorthand for single-output nodes. */
  op (opType: string, inputs: string[], opts: { output?: string, attrs?: Record<string, AttrValue>, domain?: string, name?: string } = {}): string {
    return this.node(opType, inputs, { ...opts, outputs: opts.output !== undefined ? [opts.output] : 1 })[0]
  }

  get initializerBytes (): number {
    return this.initializers.reduce((n, t) => n + t.bytes.byteLength, 0)
  }

  /** Bytes of the initializers that do not lie in a file: what serialising has to write. */
  get producedBytes (): number {
    return this.initializers.reduce((n, t) => n + (isFile(t.bytes) ? 0 : t.bytes.byteLength), 0)
  }

  /** The one directory every file-backed initializer lies in (null: none, or several). */
  get fileFolder (): string | null {
    const dirs = new Set(this.initializers.flatMap((t) => isFile(t.bytes) ? [path.dirname(path.resolve(t.bytes.file))] : []))
    return dirs.size === 1 ? [...dirs][0] : null
  }

  /**
   * The graph with its in-memory initializers but only the name, type and shape of lazy ones:
   * everything a built graph depends on besides the weights read at write time.
   */
  skeleton (): Uint8Array {
    const initializer = this.initializers.map((t) => t.bytes instanceof Uint8Array
      ? { name: t.name, dataType: t.dataType, dims: t.dims, rawData: t.bytes }
      : { name: t.name, dataType: t.dataType, dims: t.dims, docString: isFile(t.bytes) ? `${path.basename(t.bytes.file)}@${t.bytes.offset}` : '' })
    return encodeModel(this.graph(initializer))
  }

  /**
   * Serialises with the initializers inline, except file-backed ones inside `folder`: those stay
   * external data at their place in the file, `location` relative to `folder` (onnxruntime's
   * session.model_external_initializers_file_folder_path). Only below protobuf's 2 GiB limit.
   */
  toBytes (folder?: string): Uint8Array {
    const initializer = this.initializers.map((t): O.ITensorProto => {
      const b = t.bytes
      const location = folder !== undefined && isFile(b) ? path.relative(folder, path.resolve(b.file)) : null
      if (location === null || location.startsWith('..') || path.isAbsolute(location)) return { name: t.name, dataType: t.dataType, dims: t.dims, rawData: materialize(t) }
      return externalTensor(t, location, (b as FileBytes).offset)
    })
    return encodeModel(this.graph(initializer))
  }

  /**
   * Writes `model.onnx` plus `weights.bin` (external data, 64-byte aligned) into `dir`,
   * returning the model path. Tensors under 1 KiB stay inline. Lazy initializers are produced
   * here, one at a time, straight into the file. `onWrite` sees every byte written, in order, with
   * the name of the file it went to (e.g. to checksum the files without reading them back).
   */
  toDirectory (dir: string, onWrite?: (file: string, chunk: Uint8Array) => void): string {
    mkdirSync(dir, { recursive: true })
    const dataName = 'weights.bin'
    const fd = openSync(path.join(dir, dataName), 'w')
    let offset = 0
    const write = (chunk: Uint8Array): void => {
      let done = 0
      while (done < chunk.byteLength) done += writeSync(fd, chunk, done, chunk.byteLength - done)
      onWrite?.(dataName, chunk)
      offset += chunk.byteLength
    }
    const initializer: O.ITensorProto[] = []
    try {
      for (const t of this.initializers) {
        if (t.bytes.byteLength < 1024) {
          initializer.push({ name: t.name, dataType: t.dataType, dims: t.dims, rawData: materialize(t) })
          continue
        }
        const pad = (64 - (offset % 64)) % 64
        if (pad > 0) write(new Uint8Array(pad))
        const begin = offset
        if (t.bytes instanceof Uint8Array) write(t.bytes)
        else if (isFile(t.bytes)) write(readRange(t.bytes))
        else t.bytes.produce(write)
        if (offset - begin !== t.bytes.byteLength) throw new InitializerSizeError(t.name, t.bytes.byteLength, offset - begin)
        initializer.push(externalTensor(t, dataName, begin))
      }
    } finally {
      closeSync(fd)
    }
    const modelPath = path.join(dir, 'model.onnx')
    const model = encodeModel(this.graph(initializer))
    writeFileSync(modelPath, model)
    onWrite?.(path.basename(modelPath), model)
    return modelPath
  }

  private graph (initializer: O.ITensorProto[]): O.IGraphProto {
    return { name: this.name, node: this.nodes, input: this.inputs, output: this.outputs, initializer }
  }
}

function externalTensor (t: PendingInitializer, location: string, offset: number): O.ITensorProto {
  return {
    name: t.name,
    dataType: t.dataType,
    dims: t.dims,
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(t.bytes.byteLength) }
    ]
  }
}

function readRange (r: FileBytes): Uint8Array {
  const out = new Uint8Array(r.byteLength)
  const fd = openSync(r.file, 'r')
  try {
    for (let done = 0; done < r.byteLength;) {
      const n = readSync(fd, out, done, r.byteLength - done, r.offset + done)
      if (n === 0) throw new RangeError(`${r.file}: ${r.byteLength} bytes at offset ${r.offset} are past its end`)
      done += n
    }
  } finally {
    closeSync(fd)
  }
  return out
}

function encodeModel (graph: O.IGraphProto): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 10,
    producerName: 'strata',
    opsetImport: [{ domain: '', version: 21 }, { domain: 'com.microsoft', version: 1 }],
    graph
  })
  return onnx.ModelProto.encode(model).finish()
}

function valueInfo (name: string, elemType: DataTypeId, dims: Dim[]): O.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) }
      }
    }
  }
}

function attribute (name: string, v: AttrValue): O.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType
  if (typeof v === 'number') return { name, type: T.INT, i: v }
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) }
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v }
  if ('float' in v) return { name, type: T.FLOAT, f: v.float }
  return { name, type: T.TENSOR, t: v.tensor }
}
