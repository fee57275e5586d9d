// Distances between hop outputs and the tolerance honest peers get (pure logic).
import assert from 'node:assert/strict'
import { auditTolerance, hopDifference } from '../../src/routing/hop-compare.ts'

describe('routing/hop-compare', function () {
  it('measures per position, relative to the position\'s largest value; the worst position counts', function () {
    const ref = Float32Array.from([10, -1, 0, 1, /* row 2 */ 0.5, 0.25, 0, 0])
    const out = Float32Array.from([10, -1, 0, 1.5, /* row 2 */ 0.5, 0.5, 0, 0])
    const d = hopDifference(out, ref, 4)
    assert.equal(d.maxAbs, 0.5)
    // row 1: 0.5 / 10; row 2: 0.25 / 0.5
    assert.equal(d.rel, 0.5)
    assert.deepEqual(hopDifference(ref, ref, 4), { maxAbs: 0, rel: 0 })
  })

  it('NaN, a wrong length or a zero row against a nonzero one never pass', function () {
    const ref = new Float32Array(4)
    assert.equal(hopDifference(Float32Array.from([Number.NaN, 0, 0, 0]), ref, 4).rel, Infinity)
    assert.equal(hopDifference(new Float32Array(8), ref, 4).rel, Infinity)
    assert.ok(hopDifference(Float32Array.from([1e-30, 0, 0, 0]), ref, 4).rel > 1)
  })

  it('tolerance by weight formats and wire: same format and f32 wire tight, f16 wire and quantized peers wider', function () {
    const f32 = auditTolerance('f32', 'f32', 'f32')
    assert.ok(f32 <= 1e-4)
    assert.equal(auditTolerance('f32', 'int8', 'int8'), f32, 'two int8 peers compute the same function')
    assert.ok(auditTolerance('f16', 'f32', 'f32') > f32)
    assert.ok(auditTolerance('f32', 'int8', 'f32') > auditTolerance('f16', 'f32', 'f32'))
    assert.ok(auditTolerance('f32', 'int4', 'f32') > auditTolerance('f32', 'int8', 'f32'))
    assert.equal(auditTolerance('f32', 'q3_k', 'f32'), auditTolerance('f32', 'int4', 'f32'), 'unknown formats get the widest')
    // the `corrupt` fault (+0.5 on every 7th value, measured ≥ 0.117 relative) stays above every tolerance but int4's
    assert.ok(auditTolerance('f32', 'int8', 'f32') < 0.117)
  })
})
