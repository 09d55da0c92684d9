// Normalisations, activations and softmax on buffer pointers, with SIMD accumulators where it
// pays. Each matches the PyTorch op named in its documentation.
import Foundation

public typealias FloatPointer = UnsafeMutablePointer<Float>

/// `nn.LayerNorm(dim, eps)` over the last dimension, applied to `rows` packed rows. `x` and `out`
/// may be the same buffer.
public struct LayerNorm: Sendable {
  public let weight: Tensor
  public let bias: Tensor
  public let eps: Float
  public var dim: Int { weight.count }

  public init(weight: Tensor, bias: Tensor, eps: Float) {
    precondition(weight.count == bias.count, "LayerNorm weight \(weight.shape) vs bias \(bias.shape)")
    self.weight = weight
    self.bias = bias
    self.eps = eps
  }

  public func forward(_ x: UnsafePointer<Float>, rows: Int, into out: FloatPointer) {
    let d = dim
    weight.withUnsafeBufferPointer { g in
      bias.withUnsafeBufferPointer { b in
        for r in 0..<rows {
          let xr = x + r * d
          let (mean, variance) = meanAndVariance(xr, count: d)
          let inv = 1 / (variance + eps).squareRoot()
          let o = out + r * d
          for i in 0..<d { o[i] = (xr[i] - mean) * inv * g[i] + b[i] }
        }
      }
    }
  }
}

/// `nn.GroupNorm(groups, channels, eps)` on one image laid out `[C, spatial]`, optionally
/// followed by swish (`x·σ(x)`, taming's `nonlinearity`). `x` and `out` may be the same buffer.
public struct GroupNorm: Sendable {
  public let groups: Int
  public let weight: Tensor
  public let bias: Tensor
  public let eps: Float
  public var channels: Int { weight.count }

  public init(groups: Int, weight: Tensor, bias: Tensor, eps: Float) {
    precondition(weight.count % groups == 0, "GroupNorm: \(weight.count) channels in \(groups) groups")
    self.groups = groups
    self.weight = weight
    self.bias = bias
    self.eps = eps
  }

  public func forward(_ x: UnsafePointer<Float>, spatial: Int, into out: FloatPointer, swish: Bool = false) {
    let perGroup = channels / groups
    weight.withUnsafeBufferPointer { g in
      bias.withUnsafeBufferPointer { b in
        concurrentPerform(groups) { grp in
          let base = grp * perGroup * spatial
          let (mean, variance) = meanAndVariance(x + base, count: perGroup * spatial)
          let inv = 1 / (variance + eps).squareRoot()
          for c in grp * perGroup..<(grp + 1) * perGroup {
            let scale = inv * g[c]
            let shift = b[c] - mean * scale
            let xc = x + c * spatial
            let oc = out + c * spatial
            if swish {
              for i in 0..<spatial {
                let v = xc[i] * scale + shift
                oc[i] = v / (1 + Foundation.exp(-v))
              }
            } else {
              for i in 0..<spatial { oc[i] = xc[i] * scale + shift }
            }
          }
        }
      }
    }
  }
}

/// Mean and biased variance (as PyTorch's norms use), accumulated in double for stability.
@inline(__always)
func meanAndVariance(_ x: UnsafePointer<Float>, count n: Int) -> (Float, Float) {
  var s = SIMD8<Float>()
  var i = 0
  let raw = UnsafeRawPointer(x)
  while i + 8 <= n {
    s += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
    i += 8
  }
  var sum = Double(s.sum())
  while i < n { sum += Double(x[i]); i += 1 }
  let mean = Float(sum / Double(n))
  var v = SIMD8<Float>()
  let m8 = SIMD8<Float>(repeating: mean)
  i = 0
  while i + 8 <= n {
    let d = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - m8
    v += d * d
    i += 8
  }
  var sq = Double(v.sum())
  while i < n { let d = Double(x[i] - mean); sq += d * d; i += 1 }
  return (mean, Float(sq / Double(n)))
}

public enum Activation {
  /// Exact GELU, `0.5·x·(1 + erf(x/√2))` (PyTorch `F.gelu`, approximate="none").
  public static func gelu(_ x: FloatPointer, count: Int) {
    for i in 0..<count {
      let v = x[i]
      x[i] = 0.5 * v * (1 + Foundation.erf(v * 0.70710678118654752))
    }
  }

  /// OpenAI CLIP's QuickGELU, `x·σ(1.702·x)`.
  public static func quickGELU(_ x: FloatPointer, count: Int) {
    for i in 0..<count {
      let v = x[i]
      x[i] = v / (1 + Foundation.exp(-1.702 * v))
    }
  }

  /// Swish / SiLU, `x·σ(x)` (taming's `nonlinearity`).
  public static func swish(_ x: FloatPointer, count: Int) {
    for i in 0..<count {
      let v = x[i]
      x[i] = v / (1 + Foundation.exp(-v))
    }
  }
}

/// Numerically stable softmax of `count` values in place. Entries equal to `-infinity` get 0.
@inline(__always)
public func softmaxInPlace(_ x: FloatPointer, count n: Int) {
  var m = -Float.infinity
  for i in 0..<n where x[i] > m { m = x[i] }
  if m == -Float.infinity {
    for i in 0..<n { x[i] = 0 }
    return
  }
  var sum: Float = 0
  for i in 0..<n {
    let e = Foundation.exp(x[i] - m)
    x[i] = e
    sum += e
  }
  let inv = 1 / sum
  for i in 0..<n { x[i] *= inv }
}

/// `a += b` elementwise (residual connections).
@inline(__always)
public func addInPlace(_ a: FloatPointer, _ b: UnsafePointer<Float>, count n: Int) {
  var i = 0
  let ra = UnsafeMutableRawPointer(a)
  let rb = UnsafeRawPointer(b)
  while i + 16 <= n {
    let s =
      ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
      + rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
    ra.storeBytes(of: s, toByteOffset: i * 4, as: SIMD16<Float>.self)
    i += 16
  }
  while i < n { a[i] += b[i]; i += 1 }
}
