// A TypeScript consumer, typechecked (tsc --noEmit) against the declarations the package ships.
import { Swarm, LocalModel, NoRouteError, type GenerationEvent, type SwarmOptions } from 'strata'
import { PeerServer, type PeerConfig, type PeerEvent } from 'strata/peer'
import { createGateway, gatewayRoutes, type GatewayOptions, type HealthReport } from 'strata/gateway'
import { INFERENCE_PROTOCOL, type WireTensor } from 'strata/protocol'

const options: SwarmOptions = { bootstrap: ['/ip4/127.0.0.1/tcp/1/p2p/x'], modelDir: './model' }

export async function generate (): Promise<string> {
  const swarm = await Swarm.connect(options)
  let text = ''
  try {
    for await (const e of swarm.generate({ text: 'Hello' }, { maxNewTokens: 4, temperature: 0 })) {
      const event: GenerationEvent = e
      if (event.event === 'token') text += event.text
    }
  } catch (err) {
    if (err instanceof NoRouteError) return ''
    throw err
  } finally {
    await swarm.close()
  }
  return text
}

export async function embedPeer (config: PeerConfig): Promise<string> {
  const peer = await PeerServer.start(config)
  peer.on('event', (e: PeerEvent) => { console.log(e.event) })
  const id: string = peer.peerId
  await peer.stop()
  return id
}

export function gateway (opts: GatewayOptions): void {
  const app = createGateway(opts)
  void app.register(gatewayRoutes(opts))
  const blocks = (r: HealthReport): number => r.numBlocks
  void blocks
}

export const local: Promise<LocalModel> = LocalModel.load('./model')
// the declarations are real types, not `any`: this must be an error (else tsc fails on the unused directive)
// @ts-expect-error maxNewTokens is a number
export const wrong = LocalModel.prototype.generate({ ids: [1] }, { maxNewTokens: 'four' })
export const protocol: string = INFERENCE_PROTOCOL
export type Tensor = WireTensor
