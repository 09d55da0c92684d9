// Fused kernels for the GPT prior's hot path: bias + exact-erf GELU in one pass (the epilogue of
// `StreamedLinear`), and single-query attention over a key/value cache with a vectorised softmax.
import CKernels
import Foundation

// MARK: - GELU

/// Exact GELU `0.5·x·(1 + erf(x/√2))` on 16 lanes. erf uses Abramowitz & Stegun 7.1.26
/// (|error| ≤ 1.5e-7): with `z = |x|/√2`, `t = 1/(1 + 0.3275911·z)`, `erfc(z) ≈ t·P(t)·e^(−z²)`; for
/// negative x, `1 + erf(−z) = erfc(z)` is used directly, so there is no cancellation.
@inline(__always)
func simdGELU(_ x: SIMD16<Float>) -> SIMD16<Float> {
  let z = x.replacing(with: -x, where: x .< 0) * (0.70710678118654752 as Float)
  let t = 1 / (1 + (0.3275911 as Float) * z)
  var poly = SIMD16<Float>(repeating: 1.061405429)
  poly = poly * t - (1.453152027 as Float)
  poly = poly * t + (1.421413741 as Float)
  poly = poly * t - (0.284496736 as Float)
  poly = poly * t + (0.254829592 as Float)
  let erfc = poly * t * vectorExp(-(z * z))
  let onePlusErf = erfc.replacing(with: (2 as Float) - erfc, where: x .>= 0)
  return (0.5 as Float) * x * onePlusErf
}

/// `x[i] = gelu(x[i] + bias[i])` in place (bias optional).
func geluWithBias(_ x: FloatPointer, bias: UnsafePointer<Float>?, count n: Int) {
  let raw = UnsafeMutableRawPointer(x)
  var i = 0
  while i + 16 <= n {
    var v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
    if let bias { v += UnsafeRawPointer(bias).loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) }
    raw.storeBytes(of: simdGELU(v), toByteOffset: i * 4, as: SIMD16<Float>.self)
    i += 16
  }
  if i < n {
    var v = SIMD16<Float>()
    for j in 0..<(n - i) { v[j] = x[i + j] + (bias?[i + j] ?? 0) }
    let g = simdGELU(v)
    for j in 0..<(n - i) { x[i + j] = g[j] }
  }
}

// MARK: - Attention of one new position over the cache

/// Softmax of `n` values in place with the vectorised exp (matches `softmaxInPlace` to ~1e-7).
@inline(__always)
func gptSoftmaxInPlace(_ x: FloatPointer, count n: Int) {
  var m = -Float.infinity
  for i in 0..<n where x[i] > m { m = x[i] }
  let raw = UnsafeMutableRawPointer(x)
  let m16 = SIMD16<Float>(repeating: m)
  var s16 = SIMD16<Float>()
  var i = 0
  while i + 16 <= n {
    let e = vectorExp(raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) - m16)
    raw.storeBytes(of: e, toByteOffset: i * 4, as: SIMD16<Float>.self)
    s16 += e
    i += 16
  }
  var sum = s16.sum()
  if i < n {
    var v = SIMD16<Float>(repeating: -Float.infinity)
    for j in 0..<(n - i) { v[j] = x[i + j] }
    let e = vectorExp(v - m16)
    for j in 0..<(n - i) {
      x[i + j] = e[j]
      sum += e[j]
    }
  }
  let inv = 1 / sum
  for j in 0..<n { x[j] *= inv }
}

/// Attention of one query per sequence over its first `visible` cached positions, for `batch`
/// sequences × `heads` heads of layer `layer` (CKernels `ck_attend_*`, with keys and values in the
/// cache's precision, each head's a contiguous slab). Query rows are `queryStride` apart (the
/// packed qkv rows). Writes `[batch, heads·headDim]` to `out`; `scratch` holds
/// `batch·heads·visible` floats. (Sequence, head) pairs are spread over the CPU's threads.
func gptDecodeAttention(
  queries: UnsafePointer<Float>, queryStride: Int, cache: ConditionalGPT.CacheBuffers, layer: Int, visible: Int,
  batch: Int, heads: Int, headDim hd: Int, out: FloatPointer, scratch: FloatPointer
) {
  let width = heads * hd
  let scale = 1 / Float(hd).squareRoot()
  let items = batch * heads
  let body = { (item: Int) in
    let b = item / heads
    let h = item % heads
    let q = queries + b * queryStride + h * hd
    let offset = cache.offset(layer: layer, sequence: b, head: h, position: 0, batch: batch, heads: heads, headDim: hd)
    let s = scratch + item * visible
    let o = out + b * width + h * hd
    switch cache.precision {
    case .f32:
      let k = cache.keys.assumingMemoryBound(to: Float.self) + offset
      let v = cache.values.assumingMemoryBound(to: Float.self) + offset
      ck_attend_f32(q, k, v, hd, Int32(visible), Int32(hd), scale, s, o)
    case .f16:
      let k = cache.keys.assumingMemoryBound(to: UInt16.self) + offset
      let v = cache.values.assumingMemoryBound(to: UInt16.self) + offset
      ck_attend_f16(q, k, v, hd, Int32(visible), Int32(hd), scale, s, o)
    }
  }
  // Below ~64K multiply-adds a second thread costs more than it saves.
  let threads = ProcessInfo.processInfo.activeProcessorCount
  if threads > 1 && items > 1 && items * visible * hd >= 1 << 16 {
    let chunks = min(items, threads * 4)
    concurrentPerform(chunks) { chunk in
      for item in (items * chunk / chunks)..<(items * (chunk + 1) / chunks) { body(item) }
    }
  } else {
    for item in 0..<items { body(item) }
  }
}
