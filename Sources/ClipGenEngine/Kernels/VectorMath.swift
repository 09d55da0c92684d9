// The engine's one vectorised exp, shared by the GPT's GELU and softmax and the VQGAN's swish.

/// `exp(x)` on 16 lanes: Cephes' `expf` range reduction and polynomial (relative error ~1e-7).
/// Arguments are clamped to [-87, 88] so that `2ⁿ` stays a normal float (`exp(-87)` ≈ 1.6e-38
/// stands in for anything smaller). Rounding and `2ⁿ` use the 1.5·2²³ trick: adding it leaves n in
/// the low mantissa bits, so there are no calls and no float→int conversions.
@inline(__always)
func vectorExp(_ x: SIMD16<Float>) -> SIMD16<Float> {
  var c = x.replacing(with: 88, where: x .> 88)
  c = c.replacing(with: -87, where: c .< -87)
  let shifted = c * (1.44269504088896341 as Float) + (12_582_912 as Float)
  let n = shifted - (12_582_912 as Float)  // round(x / ln 2)
  // ln 2 split in two so that n·ln2 is subtracted without rounding error.
  let r = c - n * (0.693359375 as Float) + n * (2.12194440e-4 as Float)
  var y = SIMD16<Float>(repeating: 1.9875691500e-4)
  y = y * r + (1.3981999507e-3 as Float)
  y = y * r + (8.3334519073e-3 as Float)
  y = y * r + (4.1665795894e-2 as Float)
  y = y * r + (1.6666665459e-1 as Float)
  y = y * r + (5.0000001201e-1 as Float)
  y = y * (r * r) + r + (1 as Float)
  let bits = (unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
  return y * unsafeBitCast(bits, to: SIMD16<Float>.self)
}
