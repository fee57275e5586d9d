// strata's public SDK: `import { Swarm } from 'strata'`.
import './polyfill.ts'

export { Swarm, AuditOptionsError, type SwarmOptions, type SwarmGenerateOptions } from './client/swarm.ts'
export { LocalModel, type LocalModelOptions } from './client/local-model.ts'
export type { GenerationEvent, TokenOutput, DoneOutput, Prompt, SpeculationSummary } from './client/session.ts'
export { GenerationError, type GenerateOptions, type RouteHop } from './client/generation.ts'
export { DraftModelMismatchError, type DraftModelOptions } from './client/draft-model.ts'
export { SamplingError, type SamplingOptions } from './client/sampling.ts'
export { NoRouteError, PeerFailure, PushOptionsError, RerouteExhaustedError, type RerouteEvent, type AuditEvent, type AuditOutcome, type AuditStats } from './routing/index.ts'
export { ModelError, ModelConfigError, GenerationConfigError, SafetensorsError } from './shards/errors.ts'
export { ChatTemplateError, ChatTemplateRejection, type ChatMessage } from './shards/chat-template.ts'
export { makeModel, type MakeModelOptions } from './shards/make-model.ts'
