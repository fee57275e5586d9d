// Public API for embedding a peer in another Node program: `import { PeerServer } from 'strata/peer'`.
//   const peer = await PeerServer.start({ modelDir, blocks: [0, 4] })
//   peer.on('event', (e) => …)   // the same events `strata peer --json` prints
//   await peer.stop()             // drains open sessions, leaves the DHT
import '../polyfill.ts'

export { PeerServer, SOFTWARE_VERSION, type PeerEvent } from './server.ts'
export { peerDefaults, type PeerConfig, type Fault } from './config.ts'
