// `strata serve`: connects to the swarm as a client and serves the HTTP gateway.
import type { AddressInfo } from 'node:net'
import { Swarm } from '../client/swarm.ts'
import type { Logger } from '../routing/logger.ts'
import type { WeightFormat } from '../shards/span-graph.ts'
import type { DraftModelOptions } from '../client/draft-model.ts'
import { createGateway, type Gateway } from './gateway.ts'
import { HealthMonitor, SwarmHealthProbe } from './health-probe.ts'

export interface ServeOptions {
  modelDir: string
  bootstrap: string[]
  /** default: derived from config.json, as peers do */
  modelId?: string
  /** default 8080; 0 picks a free port */
  port?: number
  /** default 127.0.0.1 */
  host?: string
  bodyLimit?: number
  threads?: number
  /** see SwarmOptions.headFormat */
  headFormat?: WeightFormat
  /** accept config.json keys strata does not know (the CLI warns) */
  allowUnknownConfig?: boolean
  /** share of hop steps cross-checked against replicas (default 0: off); see SwarmOptions.auditRate */
  auditRate?: number
  /** server-to-server push between peers (default false); see SwarmOptions.push */
  push?: boolean
  /** steps over peers' direct data paths when offered (default true; see SwarmOptions.direct) */
  direct?: boolean
  /** see SwarmOptions.auditReferee */
  auditReferee?: 'auto' | 'replicas'
  /** speculative decoding for every request: draft tokens per step (default 0: off) */
  speculate?: number
  /** see SwarmOptions.draftModel */
  draftModel?: DraftModelOptions
  logger?: Logger
}

export class GatewayServer {
  private constructor (private readonly swarm: Swarm, private readonly app: Gateway, readonly url: string) {}

  static async start (opts: ServeOptions): Promise<GatewayServer> {
    const swarm = await Swarm.connect({ bootstrap: opts.bootstrap, modelDir: opts.modelDir, modelId: opts.modelId, threads: opts.threads, headFormat: opts.headFormat, allowUnknownConfig: opts.allowUnknownConfig, auditRate: opts.auditRate, auditReferee: opts.auditReferee, speculate: opts.speculate, draftModel: opts.draftModel, push: opts.push, direct: opts.direct, logger: opts.logger })
    try {
      const probe = new SwarmHealthProbe(swarm.node, { modelId: swarm.modelId, numBlocks: swarm.config.numLayers }, opts.logger)
      const app = createGateway({ backend: swarm, health: new HealthMonitor(probe), bodyLimit: opts.bodyLimit, logger: opts.logger })
      await app.listen({ port: opts.port ?? 8080, host: opts.host ?? '127.0.0.1' })
      const address = app.server.address() as AddressInfo
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
      return new GatewayServer(swarm, app, `http://${host}:${address.port}`)
    } catch (err) {
      await swarm.close()
      throw err
    }
  }

  get modelId (): string { return this.swarm.modelId }

  /** Stops accepting requests, cuts open streams (their chains close), leaves the swarm. */
  async close (): Promise<void> {
    await this.app.close()
    await this.swarm.close()
  }
}
