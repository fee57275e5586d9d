// Public API of the OpenAI-compatible gateway: `import { gatewayRoutes } from 'strata/gateway'`.
//   in an existing fastify server:  app.register(gatewayRoutes({ backend: swarm, health }))
//   as its own server:              createGateway({ backend: swarm, health }).listen({ port })
//   a whole `strata serve`:         await GatewayServer.start({ modelDir, bootstrap })
// `backend` is a connected Swarm (or a LocalModel-like Backend); `health` a HealthMonitor over a
// SwarmHealthProbe of the same swarm.
import '../polyfill.ts'

export { createGateway, gatewayRoutes, DEFAULT_BODY_LIMIT, type Gateway, type GatewayOptions } from './gateway.ts'
export { GatewayServer, type ServeOptions } from './serve.ts'
export { HealthMonitor, SwarmHealthProbe, HealthProbeError, type HealthSource, type ProbeTarget } from './health-probe.ts'
export type { HealthReport, BlockHealth, PeerHealth } from './health.ts'
export type { Backend } from './run.ts'
export { GatewayMetrics } from './metrics.ts'
export { EventLog } from './events.ts'
export { DEFAULT_DRAIN_LIMITS, type DrainLimits } from './drain.ts'
export { ApiError, InvalidRequestError, ContextLengthError, ModelNotFoundError, SwarmUnavailableError, type ApiErrorBody } from './errors.ts'
