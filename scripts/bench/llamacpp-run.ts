// Child process of the llama.cpp side-by-side bench: loads one GGUF file with node-llama-cpp's
// prebuilt CPU binary and times greedy generations from token ids, then exits (its memory goes
// with it). Protocol as local-run.ts: one LlamaJob in over IPC, { ok, result | error } back.
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

export interface LlamaJob {
  /** the folder node-llama-cpp is installed in (see llamacpp.ts) */
  installDir: string
  gguf: string
  threads: number
  prompt: number[]
  decodeTokens: number
  repeats: number
}

export interface LlamaRunResult {
  loadSeconds: number
  /** prompt → first token, per measured run */
  prefillSeconds: number[]
  /** first → last of decodeTokens + 1 tokens, per measured run */
  decodeSeconds: number[]
  /** greedy tokens of the first measured run */
  tokens: number[]
  deterministic: boolean
}

interface Sequence {
  evaluate: (tokens: number[], o: { temperature: number, yieldEogToken: boolean }) => AsyncGenerator<number>
  clearHistory: () => Promise<void>
}

async function run (job: LlamaJob): Promise<LlamaRunResult> {
  const require = createRequire(`${job.installDir}/package.json`)
  const { getLlama } = await import(pathToFileURL(require.resolve('node-llama-cpp')).href) as { getLlama: (o: object) => Promise<{ loadModel: (o: object) => Promise<{ createContext: (o: object) => Promise<{ getSequence: () => Sequence }> }> }> }
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error', maxThreads: job.threads })
  const t0 = performance.now()
  const model = await llama.loadModel({ modelPath: job.gguf, gpuLayers: 0, useMmap: true })
  const context = await model.createContext({ contextSize: job.prompt.length + job.decodeTokens + 16, batchSize: Math.max(512, job.prompt.length), threads: { ideal: job.threads, min: job.threads } })
  const loadSeconds = (performance.now() - t0) / 1000
  const seq = context.getSequence()
  const generate = async (prompt: number[], n: number): Promise<{ tokens: number[], prefill: number, decode: number }> => {
    await seq.clearHistory()
    const tokens: number[] = []
    const start = performance.now()
    let first = 0
    for await (const t of seq.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
      if (tokens.length === 0) first = performance.now()
      tokens.push(t)
      if (tokens.length >= n) break
    }
    return { tokens, prefill: (first - start) / 1000, decode: (performance.now() - first) / 1000 }
  }
  await generate(job.prompt.slice(0, 8), 4) // warm-up
  const runs: Array<Awaited<ReturnType<typeof generate>>> = []
  for (let i = 0; i < job.repeats; i++) runs.push(await generate(job.prompt, job.decodeTokens + 1))
  for (const r of runs) if (r.tokens.length !== job.decodeTokens + 1) throw new Error(`llama.cpp stopped after ${r.tokens.length} tokens`)
  return {
    loadSeconds,
    prefillSeconds: runs.map((r) => r.prefill),
    decodeSeconds: runs.map((r) => r.decode),
    tokens: runs[0].tokens,
    deterministic: runs.every((r) => r.tokens.join() === runs[0].tokens.join())
  }
}

process.once('message', (job: LlamaJob) => {
  run(job).then(
    (result) => { process.send?.({ ok: true, result }, () => process.exit(0)) },
    (err: Error) => { process.send?.({ ok: false, error: { name: err.name, message: err.message, stack: err.stack } }, () => process.exit(1)) }
  )
})
