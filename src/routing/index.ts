// Public API of the routing layer: the swarm node, signed peer records, the info protocol,
// span announcement, peer discovery, chain planning and the fault-tolerant chain session.
// Other modules are internal.
export { createSwarmNode, waitForRoutingTable, waitForAnnounceableAddress, waitForRelaying, isRelaying, reachabilityOf, defaultListen, DHT_PROTOCOL, PROVIDER_TTL_MS } from './node.ts'
export type { SwarmNode, SwarmNodeOptions, SwarmServices, RelayMode, Reachability } from './node.ts'
export { relayLimits, tcpHostOf } from './reachability.ts'
export { BootstrapAddressError } from './bootstrap-keeper.ts'
export { loadOrCreateIdentity, IdentityFileError } from './identity.ts'
export {
  signRecord, verifyRecord,
  RecordError, RecordMalformedError, RecordSignatureError, RecordExpiredError, RecordSpanError, RecordModelError,
  MAX_RECORD_BYTES, MAX_RECORD_TTL_MS, MAX_MULTIADDRS, MAX_BLOCKS
} from './records.ts'
export type { PeerRecord, PeerState, VerifyRecordOptions } from './records.ts'
export {
  serveInfo, fetchInfo, INFO_PROTOCOL, MAX_INFO_FRAME_BYTES, DEFAULT_INFO_TIMEOUT_MS,
  InfoError, InfoFrameTooLargeError, InfoMissingError
} from './info.ts'
export type { ServeInfoOptions, FetchInfoOptions } from './info.ts'
export { announceSpan, Announcement, AnnounceError, findModelPeers, findBlockPeers } from './dht.ts'
export type { Span, AnnounceOptions, AnnounceRound, DiscoveredPeer, DiscoverOptions } from './dht.ts'
export { modelKey, blockKey } from './content-keys.ts'
export { planChain, NoRouteError } from './planner.ts'
export type { Candidate, PlannedHop, PlanOptions } from './planner.ts'
export { PeerFailure } from './remote-span.ts'
export type { FailureReason } from './remote-span.ts'
export { ChainSession, RerouteExhaustedError } from './chain-session.ts'
export { PushOptionsError } from './push-chain.ts'
export type { ChainOptions, CandidateSource, RerouteEvent, HopVerifier, VerifiedHop, HopCheck } from './chain-session.ts'
export { ReplicaAuditor } from './replica-auditor.ts'
export type { ReplicaAuditorOptions, HopReferee, HopInput, AuditEvent, AuditOutcome, AuditStats } from './replica-auditor.ts'
export { hopDifference, auditTolerance } from './hop-compare.ts'
export type { HopDifference } from './hop-compare.ts'
export { DhtCandidates } from './dht-candidates.ts'
export { withTimeout, delay } from './abort.ts'
export { componentLogger } from './logger.ts'
export type { Logger } from './logger.ts'
