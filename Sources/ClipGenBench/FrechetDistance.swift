// The Fréchet distance between two sets of feature vectors, each taken as a Gaussian (mean and
// covariance): ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) — FID's formula, here over the model's CLIP
// image features (`clipgen score --fd`), as the training kit's evaluation reports it.
import Foundation

public enum FrechetDistance {
  /// The distance between the Gaussians fitted to `a` and `b` (each a list of equally long
  /// vectors; at least two of each). Computed in double precision; Tr (Σ₁Σ₂)^½ is the sum of the
  /// square roots of the eigenvalues of Σ₁^½ Σ₂ Σ₁^½ (symmetric, positive semi-definite).
  public static func between(_ a: [[Float]], _ b: [[Float]]) throws -> Double {
    guard a.count >= 2, b.count >= 2 else {
      throw FrechetError("the Fréchet distance needs at least two images on each side (got \(a.count) and \(b.count))")
    }
    let d = a[0].count
    guard d > 0, (a + b).allSatisfy({ $0.count == d }) else {
      throw FrechetError("feature vectors of different lengths")
    }
    let (m1, s1) = moments(a, d)
    let (m2, s2) = moments(b, d)
    var meanTerm = 0.0
    for i in 0..<d { meanTerm += (m1[i] - m2[i]) * (m1[i] - m2[i]) }
    var trace = 0.0
    for i in 0..<d { trace += s1[i * d + i] + s2[i * d + i] }
    let root1 = symmetricSquareRoot(s1, d)
    let inner = multiply(multiply(root1, s2, d), root1, d)
    let crossTrace = symmetricEigenvalues(inner, d).reduce(0) { $0 + max(0, $1).squareRoot() }
    return max(0, meanTerm + trace - 2 * crossTrace)
  }

  /// Mean and unbiased covariance (row-major d×d).
  static func moments(_ x: [[Float]], _ d: Int) -> ([Double], [Double]) {
    var mean = [Double](repeating: 0, count: d)
    for v in x { for i in 0..<d { mean[i] += Double(v[i]) } }
    for i in 0..<d { mean[i] /= Double(x.count) }
    var cov = [Double](repeating: 0, count: d * d)
    for v in x {
      for i in 0..<d {
        let di = Double(v[i]) - mean[i]
        for j in i..<d { cov[i * d + j] += di * (Double(v[j]) - mean[j]) }
      }
    }
    let n = Double(x.count - 1)
    for i in 0..<d {
      for j in i..<d {
        cov[i * d + j] /= n
        cov[j * d + i] = cov[i * d + j]
      }
    }
    return (mean, cov)
  }

  static func multiply(_ a: [Double], _ b: [Double], _ d: Int) -> [Double] {
    var c = [Double](repeating: 0, count: d * d)
    for i in 0..<d {
      for k in 0..<d where a[i * d + k] != 0 {
        let aik = a[i * d + k]
        for j in 0..<d { c[i * d + j] += aik * b[k * d + j] }
      }
    }
    return c
  }

  /// S^½ of a symmetric positive semi-definite matrix (negative eigenvalues from rounding: 0).
  static func symmetricSquareRoot(_ s: [Double], _ d: Int) -> [Double] {
    let (values, vectors) = jacobi(s, d)
    var r = [Double](repeating: 0, count: d * d)
    for k in 0..<d {
      let root = max(0, values[k]).squareRoot()
      guard root > 0 else { continue }
      for i in 0..<d {
        let vik = vectors[i * d + k] * root
        for j in 0..<d { r[i * d + j] += vik * vectors[j * d + k] }
      }
    }
    return r
  }

  static func symmetricEigenvalues(_ s: [Double], _ d: Int) -> [Double] { jacobi(s, d).values }

  /// Eigenvalues and eigenvectors (columns of `vectors`) of a symmetric matrix by cyclic Jacobi
  /// rotations, until the off-diagonal mass is below 1e-22 of the total (or 100 sweeps).
  static func jacobi(_ s: [Double], _ d: Int) -> (values: [Double], vectors: [Double]) {
    var a = s
    var v = [Double](repeating: 0, count: d * d)
    for i in 0..<d { v[i * d + i] = 1 }
    let total = a.reduce(0) { $0 + $1 * $1 }
    for _ in 0..<100 {
      var off = 0.0
      for i in 0..<d { for j in (i + 1)..<max(i + 1, d) { off += a[i * d + j] * a[i * d + j] } }
      if off <= 1e-22 * max(total, 1e-300) { break }
      for p in 0..<d {
        for q in (p + 1)..<max(p + 1, d) where a[p * d + q] != 0 {
          let apq = a[p * d + q]
          let theta = (a[q * d + q] - a[p * d + p]) / (2 * apq)
          let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
          let c = 1 / (t * t + 1).squareRoot()
          let sn = t * c
          for k in 0..<d {  // columns p, q
            let akp = a[k * d + p]
            let akq = a[k * d + q]
            a[k * d + p] = c * akp - sn * akq
            a[k * d + q] = sn * akp + c * akq
          }
          for k in 0..<d {  // rows p, q
            let apk = a[p * d + k]
            let aqk = a[q * d + k]
            a[p * d + k] = c * apk - sn * aqk
            a[q * d + k] = sn * apk + c * aqk
          }
          for k in 0..<d {
            let vkp = v[k * d + p]
            let vkq = v[k * d + q]
            v[k * d + p] = c * vkp - sn * vkq
            v[k * d + q] = sn * vkp + c * vkq
          }
        }
      }
    }
    return ((0..<d).map { a[$0 * d + $0] }, v)
  }
}

public struct FrechetError: Error, CustomStringConvertible {
  public var description: String
  init(_ description: String) { self.description = description }
}
