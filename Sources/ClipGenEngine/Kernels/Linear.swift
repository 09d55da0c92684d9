// Dense layers through OpenBLAS: sgemv for a single row (about 5× faster than sgemm at M=1 on
// OpenBLAS 0.3.21), sgemm otherwise. Weights are PyTorch's nn.Linear layout, [out, in] row-major.
import COpenBLAS

/// `y = x · Wᵀ + b`, PyTorch `nn.Linear` semantics (weight `[out, in]`, optional bias `[out]`).
public struct Linear: Sendable {
  public let weight: Tensor
  public let bias: Tensor?
  public var inFeatures: Int { weight.shape[1] }
  public var outFeatures: Int { weight.shape[0] }

  public init(weight: Tensor, bias: Tensor?) {
    precondition(weight.shape.count == 2, "Linear weight must be 2-D, got \(weight.shape)")
    if let bias { precondition(bias.count == weight.shape[0], "Linear bias \(bias.shape) for weight \(weight.shape)") }
    self.weight = weight
    self.bias = bias
  }

  /// Computes `rows` output rows (`outFeatures` wide, packed) from `rows` packed input rows.
  public func forward(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
    let n = outFeatures
    let k = inFeatures
    weight.withUnsafeBufferPointer { w in
      if let bias {
        bias.withUnsafeBufferPointer { b in
          for r in 0..<rows { (y + r * n).update(from: b.baseAddress!, count: n) }
        }
      }
      let beta: Float = bias == nil ? 0 : 1
      if rows == 1 {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), 1, w.baseAddress, Int32(k), x, 1, beta, y, 1)
      } else {
        cblas_sgemm(
          CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(n), Int32(k), 1, x, Int32(k),
          w.baseAddress, Int32(k), beta, y, Int32(n))
      }
    }
  }

  /// Convenience for a packed `[rows, in]` tensor; returns `[rows, out]`.
  public func callAsFunction(_ x: Tensor) -> Tensor {
    let rows = x.count / inFeatures
    precondition(rows * inFeatures == x.count, "Linear: input \(x.shape) is not a multiple of \(inFeatures)")
    var out = Tensor(zeros: Array(x.shape.dropLast()) + [outFeatures])
    x.withUnsafeBufferPointer { xp in
      out.withUnsafeMutableBufferPointer { op in forward(xp.baseAddress!, rows: rows, into: op.baseAddress!) }
    }
    return out
  }
}

/// Row-major single-precision matrix multiply `C = alpha·op(A)·op(B) + beta·C`, a thin wrapper that
/// keeps the CBLAS argument order in one place.
@inline(__always)
func sgemm(
  transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
  c: UnsafeMutablePointer<Float>, ldc: Int
) {
  cblas_sgemm(
    CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Row-major `y = alpha·op(A)·x + beta·y` with A `[m, n]` (leading dimension `lda`).
@inline(__always)
func sgemv(
  trans: Bool = false, m: Int, n: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
  x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>
) {
  cblas_sgemv(
    CblasRowMajor, trans ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), alpha, a, Int32(lda), x, 1, beta, y, 1)
}

/// OpenBLAS's own description of the kernel it selected (e.g. "SkylakeX") and its thread count.
public enum BLASInfo {
  public static var coreName: String { String(cString: openblas_get_corename()) }
  public static var config: String { String(cString: openblas_get_config()) }
  public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
}
