// Seeded randomness for the simulator: the same seed replays the same swarm on every machine.

/** Returns a float in [0, 1). */
export type Random = () => number

/** mulberry32: a 32-bit state generator, tiny and fast, statistically fine for simulation. */
export function mulberry32(seed: number): Random {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Exponentially distributed wait with the given mean (memoryless arrivals and lifetimes). */
export function exponential(random: Random, mean: number): number {
  return -Math.log(1 - random()) * mean
}

/** Log-normal with the given median; sigma is the spread of ln(x). Hardware speeds look like this. */
export function logNormal(random: Random, median: number, sigma: number): number {
  return median * Math.exp(sigma * standardNormal(random))
}

/** Integer in [min, maxExclusive). */
export function uniformInt(random: Random, min: number, maxExclusive: number): number {
  return min + Math.floor(random() * (maxExclusive - min))
}

/** Box–Muller; 1 - random() keeps the logarithm away from 0. */
function standardNormal(random: Random): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
}
