// Yamux window updates at half the window, as go-yamux and rust-yamux send them.
//
// @chainsafe/libp2p-yamux (8.0.1) answers every data frame it receives with a window-update
// frame. An inference step is one request and one reply, so each hop of each token carried four
// frames instead of two: every step and every result was answered by a 12-byte frame that the
// receiver encrypts and writes, in the same synchronous call that delivers the message (so the
// message reaches its reader only after that extra write), and that wakes the sender's process
// to read it. On loopback that cost ~0.6 ms per hop per token (measured: the time from a
// frame's arrival to its reader fell from ~0.4 ms to <0.05 ms with this change).
//
// Here a stream sends a window update only once less than half of its receive window is left,
// or when the update carries flags (SYN/ACK while the stream opens). The sender keeps at least
// half a window (128 KiB or more) to write into, so nothing stalls; bulk transfers still get
// updates every half window. Paused streams keep the library's behaviour (no updates).
import { YamuxStream, StreamState } from '@chainsafe/libp2p-yamux/stream'

/** the library's private fields this reads (present in 8.x; checked at install) */
interface WindowFields { recvWindow: number, recvWindowCapacity: number, state: StreamState }

const PATCHED = Symbol.for('strata.yamuxHalfWindowUpdates')

/** Installs half-window updates for every yamux stream in this process (idempotent). */
export function installHalfWindowUpdates (): void {
  const proto = YamuxStream.prototype as unknown as Record<symbol, unknown> & { sendWindowUpdate: () => void }
  if (proto[PATCHED] === true) return
  const sendEveryTime = proto.sendWindowUpdate
  proto.sendWindowUpdate = function (this: WindowFields) {
    if (this.state === StreamState.Established && typeof this.recvWindowCapacity === 'number' && this.recvWindowCapacity * 2 > this.recvWindow) return
    sendEveryTime.call(this)
  }
  proto[PATCHED] = true
}
