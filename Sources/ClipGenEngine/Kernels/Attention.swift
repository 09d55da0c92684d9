// Multi-head scaled dot-product attention on packed rows, PyTorch `nn.MultiheadAttention`
// semantics (packed in_proj, out_proj), and the preallocated key/value cache that autoregressive
// sampling writes into one position at a time.
import Foundation

/// Scaled dot-product attention over `heads` heads. Rows of `q` (`queries` of them) and of `k`/`v`
/// (`keys` of them) hold all heads side by side (`heads·headDim` values, at the given row strides).
/// With `causalOffset` set, query `i` sits at absolute position `causalOffset + i` and sees keys
/// `0…causalOffset+i` only. `scratch` must hold `queries·keys` floats.
public func scaledDotProductAttention(
  q: UnsafePointer<Float>, qStride: Int, k: UnsafePointer<Float>, v: UnsafePointer<Float>, kvStride: Int,
  out: FloatPointer, outStride: Int, queries lq: Int, keys lk: Int, heads: Int, headDim hd: Int,
  causalOffset: Int?, scratch: FloatPointer
) {
  let scale = 1 / Float(hd).squareRoot()
  for h in 0..<heads {
    let qh = q + h * hd
    let kh = k + h * hd
    let vh = v + h * hd
    let oh = out + h * hd
    if lq == 1 {
      // One query: two matrix-vector products.
      let visible = causalOffset.map { min(lk, $0 + 1) } ?? lk
      sgemv(m: visible, n: hd, alpha: scale, a: kh, lda: kvStride, x: qh, y: scratch)
      softmaxInPlace(scratch, count: visible)
      sgemv(trans: true, m: visible, n: hd, a: vh, lda: kvStride, x: scratch, y: oh)
      continue
    }
    sgemm(
      transB: true, m: lq, n: lk, k: hd, alpha: scale, a: qh, lda: qStride, b: kh, ldb: kvStride, c: scratch, ldc: lk)
    for i in 0..<lq {
      let row = scratch + i * lk
      var visible = lk
      if let off = causalOffset {
        visible = min(lk, off + i + 1)
        for j in visible..<lk { row[j] = 0 }
      }
      softmaxInPlace(row, count: visible)
    }
    sgemm(m: lq, n: hd, k: lk, a: scratch, lda: lk, b: vh, ldb: kvStride, c: oh, ldc: outStride)
  }
}

/// `nn.MultiheadAttention` self-attention with packed `in_proj_weight` `[3d, d]` (q, k, v stacked)
/// and `out_proj`, as used by OpenAI CLIP's `ResidualAttentionBlock` and PyTorch's
/// `nn.TransformerEncoderLayer`.
public struct MultiHeadSelfAttention: Sendable {
  public let inProj: Linear
  public let outProj: Linear
  public let heads: Int
  public var dim: Int { outProj.outFeatures }

  public init(inProj: Linear, outProj: Linear, heads: Int) {
    precondition(inProj.outFeatures == 3 * inProj.inFeatures, "in_proj must be [3d, d], got \(inProj.weight.shape)")
    precondition(inProj.inFeatures % heads == 0, "width \(inProj.inFeatures) is not divisible by \(heads) heads")
    self.inProj = inProj
    self.outProj = outProj
    self.heads = heads
  }

  /// Self-attention over `batch` sequences of `length` packed rows each (`x`: `[batch·length, d]`).
  public func forward(_ x: UnsafePointer<Float>, batch: Int, length: Int, causal: Bool, into out: FloatPointer) {
    let d = dim
    let rows = batch * length
    let qkv = FloatPointer.allocate(capacity: rows * 3 * d)
    let ctx = FloatPointer.allocate(capacity: rows * d)
    let scratch = FloatPointer.allocate(capacity: length * length)
    defer {
      qkv.deallocate()
      ctx.deallocate()
      scratch.deallocate()
    }
    inProj.forward(x, rows: rows, into: qkv)
    for b in 0..<batch {
      let base = qkv + b * length * 3 * d
      scaledDotProductAttention(
        q: base, qStride: 3 * d, k: base + d, v: base + 2 * d, kvStride: 3 * d, out: ctx + b * length * d, outStride: d,
        queries: length, keys: length, heads: heads, headDim: d / heads, causalOffset: causal ? 0 : nil,
        scratch: scratch)
    }
    outProj.forward(ctx, rows: rows, into: out)
  }
}

/// Preallocated keys and values for autoregressive decoding: `layers × batch × capacity × width`.
/// It belongs to one generation session, not to the weights; `length` counts the positions filled.
public struct KVCache {
  public let layers: Int
  public let batch: Int
  public let capacity: Int
  public let width: Int
  public private(set) var keys: [Float]
  public private(set) var values: [Float]
  /// Positions written so far (the same for every sequence in the batch).
  public var length: Int = 0

  public init(layers: Int, batch: Int, capacity: Int, width: Int) {
    self.layers = layers
    self.batch = batch
    self.capacity = capacity
    self.width = width
    keys = [Float](repeating: 0, count: layers * batch * capacity * width)
    values = keys
  }

  /// Offset of `(layer, sequence, position)` in `keys`/`values`.
  @inline(__always) public func offset(layer: Int, sequence: Int, position: Int) -> Int {
    ((layer * batch + sequence) * capacity + position) * width
  }

  /// Gives mutable access to both buffers at once.
  public mutating func withBuffers<R>(_ body: (FloatPointer, FloatPointer) throws -> R) rethrows -> R {
    try keys.withUnsafeMutableBufferPointer { k in
      try values.withUnsafeMutableBufferPointer { v in try body(k.baseAddress!, v.baseAddress!) }
    }
  }
}
