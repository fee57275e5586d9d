// A plain Node ESM program using the installed package: `node generate.mjs <model dir> <bootstrap>`.
// Generates through the swarm with the SDK, through the gateway (in a plain Node HTTP server) on the
// same Swarm, then locally; prints one JSON line.
import http from 'node:http'
import { Swarm, LocalModel } from 'strata'
import { PeerServer } from 'strata/peer'
import { createGateway, HealthMonitor, SwarmHealthProbe } from 'strata/gateway'
import { INFERENCE_PROTOCOL } from 'strata/protocol'

const [modelDir, bootstrap] = process.argv.slice(2)
const prompt = { ids: [1, 20, 30, 40] }
const opts = { maxNewTokens: 8, ignoreEos: true }

async function tokensOf (model) {
  for await (const e of model.generate(prompt, opts)) if (e.event === 'done') return e.tokens
  throw new Error('no done event')
}

const swarm = await Swarm.connect({ bootstrap: [bootstrap], modelDir })
let viaSwarm, viaGateway
try {
  viaSwarm = await tokensOf(swarm)
  const health = new HealthMonitor(new SwarmHealthProbe(swarm.node, { modelId: swarm.modelId, numBlocks: swarm.config.numLayers }))
  // the gateway mounted in a plain Node HTTP server
  const app = createGateway({ backend: swarm, health })
  await app.ready()
  const server = http.createServer(app.routing)
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const res = await fetch(`http://127.0.0.1:${server.address().port}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: prompt.ids, max_tokens: opts.maxNewTokens, temperature: 0, ignore_eos: true, return_token_ids: true })
    })
    viaGateway = (await res.json()).choices[0].token_ids
  } finally {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await app.close()
  }
} finally {
  await swarm.close()
}
const local = await LocalModel.load(modelDir)
let viaLocal
try {
  viaLocal = await tokensOf(local)
} finally {
  await local.close()
}
console.log(JSON.stringify({ viaSwarm, viaGateway, viaLocal, peerServer: typeof PeerServer.start, protocol: INFERENCE_PROTOCOL }))
