// The VQGAN's compute kernels, on activations stored as zero-bordered planes.
//
// Every activation is `[C, H+2, W+2]`: each channel's plane carries a one-pixel border of zeros,
// which is the convolutions' padding. 3×3 convolutions run as Winograd F(2×2, 3×3): 4×4 input tiles
// read straight from the bordered planes, 16 GEMMs per block of tiles, outputs (plus bias and the
// residual) written straight into the next bordered plane. The plain alternative is nine GEMMs
// over shifted views of the input: output (y, x) sits at column `y·(W+2) + x` of a GEMM whose B
// matrix for tap (ki, kj) starts `ki·(W+2) + kj` values into each input plane, and the two extra
// columns per row land on the output's border, which `finish` zeroes again. GroupNorm, upsampling
// and attention read and write the same layout, so no activation is ever copied to re-pad it.
//
// Threads: inside a VQGAN call OpenBLAS runs single-threaded and every kernel splits its own work
// across one worker per core (`VQKernels.withSingleThreadedBLAS`).
import COpenBLAS
import Foundation
import Synchronization

/// Height and width of an activation and the offsets of its bordered layout.
struct VQPlaneGeometry: Equatable {
  let height: Int
  let width: Int
  /// Row stride, `width + 2`.
  var rowStride: Int { width + 2 }
  /// Values per channel, `(height + 2)·(width + 2)`.
  var plane: Int { (height + 2) * (width + 2) }
  /// Offset of pixel (0, 0) within a plane.
  var origin: Int { width + 3 }
  /// Values past the last plane that shifted GEMMs may read (they feed discarded columns only).
  var slack: Int { 2 * (width + 2) + 16 }
  func doubled() -> VQPlaneGeometry { VQPlaneGeometry(height: 2 * height, width: 2 * width) }
  /// Output of taming's Downsample: pad (0, 1, 0, 1), 3×3 conv, stride 2.
  func downsampled() -> VQPlaneGeometry { VQPlaneGeometry(height: (height - 2) / 2 + 1, width: (width - 2) / 2 + 1) }
}

enum VQKernels {
  /// Threads the kernels split work across (one per core).
  static let workerCount = max(1, ProcessInfo.processInfo.activeProcessorCount)

  /// Runs `body` with OpenBLAS single-threaded, restoring its thread count after. Inside, the
  /// kernels split every GEMM themselves (`gemm`, Winograd blocks), so that one worker per core
  /// runs transforms, GEMMs and elementwise passes without barriers, and OpenBLAS's own threads
  /// do not spin (sched_yield) against ours during the non-GEMM passes. OpenBLAS's thread count
  /// is process-wide: other BLAS work running concurrently is single-threaded meanwhile.
  static func withSingleThreadedBLAS<R>(_ body: () throws -> R) rethrows -> R {
    let previous = openblas_get_num_threads()
    guard previous > 1, workerCount > 1 else { return try body() }
    openblas_set_num_threads(1)
    defer { openblas_set_num_threads(previous) }
    return try body()
  }

  /// Row-major `C = alpha·op(A)·op(B) + beta·C` with the columns of C (and of op(B)) split across
  /// the workers, each calling OpenBLAS on its share (single-threaded inside
  /// `withSingleThreadedBLAS`). Small products run on the calling thread.
  static func gemm(
    transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
    c: FloatPointer, ldc: Int
  ) {
    let workers = min(workerCount, max(1, n / 32), max(1, m * n * k / (1 << 21)))
    if workers == 1 {
      sgemm(
        transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta,
        c: c, ldc: ldc)
      return
    }
    let chunk = ((n + workers - 1) / workers + 15) / 16 * 16
    DispatchQueue.concurrentPerform(iterations: workers) { w in
      let j0 = w * chunk
      let cols = min(chunk, n - j0)
      guard cols > 0 else { return }
      sgemm(
        transA: transA, transB: transB, m: m, n: cols, k: k, alpha: alpha, a: a, lda: lda,
        b: transB ? b + j0 * ldb : b + j0, ldb: ldb, beta: beta, c: c + j0, ldc: ldc)
    }
  }

  /// Runs `body(0..<n)` across the CPU's threads when there is enough work to pay for the hand-off.
  @inline(__always)
  static func parallel(_ n: Int, work: Int, _ body: (Int) -> Void) {
    if n > 1 && work >= 1 << 15 {
      DispatchQueue.concurrentPerform(iterations: n, execute: body)
    } else {
      for i in 0..<n { body(i) }
    }
  }

  @inline(__always)
  static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
  }

  @inline(__always)
  static func store8(_ v: SIMD8<Float>, _ p: FloatPointer) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
  }

  /// `exp(x)`: Cephes' `expf` range reduction and polynomial (relative error ~1e-7), with the
  /// argument clamped so that `2ⁿ` stays a normal float. Rounding and `2ⁿ` use the 1.5·2²³ trick
  /// (adding it leaves n in the low mantissa bits): no calls and no float→int conversion, so loops
  /// over it vectorise in release builds and stay cheap in debug ones.
  @inline(__always)
  static func exp(_ x: Float) -> Float {
    var x = x > 88 ? 88 : x
    x = x < -87 ? -87 : x
    let t = x * 1.44269504088896341 + 12_582_912
    let n = t - 12_582_912  // round(x / ln 2)
    let r = x - n * 0.693359375 + n * 2.12194440e-4
    var y: Float = 1.9875691500e-4
    y = y * r + 1.3981999507e-3
    y = y * r + 8.3334519073e-3
    y = y * r + 4.1665795894e-2
    y = y * r + 1.6666665459e-1
    y = y * r + 5.0000001201e-1
    y = y * (r * r) + r + 1
    return y * Float(bitPattern: (t.bitPattern &- 0x4B40_0000 &+ 127) &<< 23)
  }

  /// `o[i] = swish(r[i]·scale + shift)`, swish = `v·σ(v)`.
  @inline(__always)
  static func affineSwishRow(_ r: UnsafePointer<Float>, into o: FloatPointer, count: Int, scale: Float, shift: Float) {
    for i in 0..<count {
      let v = r[i] * scale + shift
      o[i] = v / (1 + exp(-v))
    }
  }

  // MARK: - Winograd F(2×2, 3×3) transforms

  @inline(__always)
  static func load4(_ p: UnsafePointer<Float>) -> SIMD4<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self)
  }

  @inline(__always)
  static func store4(_ v: SIMD4<Float>, _ p: FloatPointer) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD4<Float>.self)
  }

  /// Input transform of one row of tiles: `top` points at the first of the four bordered input rows
  /// (column 0). Writes V_ξ for each tile to `out + ξ·positionStride + tile`. Four tiles at a time
  /// (one SSE register per value): the column transform Bᵀ·d runs on 8 contiguous columns at 2tx
  /// and at 2tx+2, whose even/odd lanes are each tile's four columns. Reads up to 9 columns past
  /// the last tile's first column (border, next row or slack).
  @inline(__always)
  static func winogradInputRow(
    _ top: UnsafePointer<Float>, rowStride rs: Int, tiles: Int, into out: FloatPointer, positionStride ps: Int
  ) {
    // Bᵀ rows: d0 − d2, d1 + d2, d2 − d1, d1 − d3 (on columns 2tx… in `a`, 2tx+2… in `b`); then ·B per
    // tile on its columns c0 = a even, c1 = a odd, c2 = b even, c3 = b odd.
    @inline(__always) func rows(_ p: UnsafePointer<Float>, _ i: Int) -> (
      SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>
    ) {
      let (r0, r1, r2, r3) = (p, p + rs, p + 2 * rs, p + 3 * rs)
      let a: SIMD8<Float>
      let b: SIMD8<Float>
      switch i {
      case 0: (a, b) = (load8(r0) - load8(r2), load8(r0 + 2) - load8(r2 + 2))
      case 1: (a, b) = (load8(r1) + load8(r2), load8(r1 + 2) + load8(r2 + 2))
      case 2: (a, b) = (load8(r2) - load8(r1), load8(r2 + 2) - load8(r1 + 2))
      default: (a, b) = (load8(r1) - load8(r3), load8(r1 + 2) - load8(r3 + 2))
      }
      let c0 = a.evenHalf, c1 = a.oddHalf, c2 = b.evenHalf, c3 = b.oddHalf
      return (c0 - c2, c1 + c2, c2 - c1, c1 - c3)
    }
    let full = tiles & ~3
    var tx = 0
    while tx < full {
      let p = top + 2 * tx
      let o = out + tx
      for i in 0..<4 {
        let v = rows(p, i)
        let base = o + 4 * i * ps
        store4(v.0, base)
        store4(v.1, base + ps)
        store4(v.2, base + 2 * ps)
        store4(v.3, base + 3 * ps)
      }
      tx += 4
    }
    if tx < tiles {
      let p = top + 2 * tx
      for i in 0..<4 {
        let v = rows(p, i)
        let base = out + 4 * i * ps + tx
        for l in 0..<(tiles - tx) {
          base[l] = v.0[l]
          base[ps + l] = v.1[l]
          base[2 * ps + l] = v.2[l]
          base[3 * ps + l] = v.3[l]
        }
      }
    }
  }

  /// Output transform of one row of tiles: M_ξ for each tile at `m + ξ·positionStride + tile` →
  /// the 2×2 outputs (plus `bias`) at `row0` (output row 2ty, column 0) and `row0 + rowStride`
  /// (when `secondRow`). With `accumulate` the outputs add to what is there. Four tiles at a time.
  @inline(__always)
  static func winogradOutputRow(
    _ m: UnsafePointer<Float>, positionStride ps: Int, tiles: Int, bias: Float, into row0: FloatPointer,
    rowStride rs: Int, secondRow: Bool, accumulate: Bool
  ) {
    let b4 = SIMD4<Float>(repeating: bias)
    var tx = 0
    while tx < tiles {
      let q = m + tx
      // Aᵀ·M per column j: (m0j + m1j + m2j, m1j − m2j − m3j).
      @inline(__always) func col(_ j: Int) -> (SIMD4<Float>, SIMD4<Float>) {
        let m1 = load4(q + (4 + j) * ps), m2 = load4(q + (8 + j) * ps)
        return (load4(q + j * ps) + m1 + m2, m1 - m2 - load4(q + (12 + j) * ps))
      }
      let s0 = col(0), s1 = col(1), s2 = col(2), s3 = col(3)
      let y00 = s0.0 + s1.0 + s2.0 + b4
      let y01 = s1.0 - s2.0 - s3.0 + b4
      let y10 = s0.1 + s1.1 + s2.1 + b4
      let y11 = s1.1 - s2.1 - s3.1 + b4
      let lanes = min(4, tiles - tx)
      let d0 = row0 + 2 * tx
      let d1 = d0 + rs
      if lanes == 4 {
        var r0 = interleave(y00, y01)
        if accumulate { r0 += load8(d0) }
        store8(r0, d0)
        if secondRow {
          var r1 = interleave(y10, y11)
          if accumulate { r1 += load8(d1) }
          store8(r1, d1)
        }
      } else {
        for l in 0..<lanes {
          d0[2 * l] = (accumulate ? d0[2 * l] : 0) + y00[l]
          d0[2 * l + 1] = (accumulate ? d0[2 * l + 1] : 0) + y01[l]
          if secondRow {
            d1[2 * l] = (accumulate ? d1[2 * l] : 0) + y10[l]
            d1[2 * l + 1] = (accumulate ? d1[2 * l + 1] : 0) + y11[l]
          }
        }
      }
      tx += 4
    }
  }

  /// (a0, b0, a1, b1, …).
  @inline(__always)
  static func interleave(_ a: SIMD4<Float>, _ b: SIMD4<Float>) -> SIMD8<Float> {
    SIMD8(a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3])
  }

  // MARK: - Borders

  /// Zeroes the border of every plane and adds `bias[c]` to the interior of channel `c`. Run after
  /// every GEMM that writes a bordered output (the GEMMs leave garbage on the left/right borders).
  static func finish(_ p: FloatPointer, channels: Int, _ g: VQPlaneGeometry, bias: UnsafePointer<Float>?) {
    let (h, w, rs) = (g.height, g.width, g.rowStride)
    parallel(channels, work: channels * g.plane) { c in
      let base = p + c * g.plane
      base.update(repeating: 0, count: rs)
      (base + (h + 1) * rs).update(repeating: 0, count: rs)
      let b = bias?[c] ?? 0
      for y in 1...h {
        let row = base + y * rs
        row[0] = 0
        row[w + 1] = 0
        if b != 0 {
          let r = row + 1
          var x = 0
          let b8 = SIMD8<Float>(repeating: b)
          while x + 8 <= w {
            store8(load8(r + x) + b8, r + x)
            x += 8
          }
          while x < w {
            r[x] += b
            x += 1
          }
        }
      }
    }
  }

  // MARK: - GroupNorm (+ swish)

  /// `nn.GroupNorm(groups, C, eps)` over a bordered `[C, H+2, W+2]` input (statistics over the
  /// interior only), optionally followed by swish. Writes a bordered output, or a compact
  /// `[C, H·W]` one when `compactOutput` is set. `src` and `dst` may not overlap.
  static func groupNorm(
    _ src: UnsafePointer<Float>, _ g: VQPlaneGeometry, channels: Int, groups: Int, gamma: UnsafePointer<Float>,
    beta: UnsafePointer<Float>, eps: Float, swish: Bool, into dst: FloatPointer, compactOutput: Bool = false
  ) {
    let (h, w, rs) = (g.height, g.width, g.rowStride)
    let perGroup = channels / groups
    let count = Double(perGroup * h * w)
    parallel(groups, work: channels * g.plane) { grp in
      let c0 = grp * perGroup
      // Two passes (mean, then squared deviations) with float SIMD partials per row, summed in double.
      var sum = 0.0
      for c in c0..<(c0 + perGroup) {
        for y in 0..<h {
          let r = src + c * g.plane + (y + 1) * rs + 1
          var acc = SIMD8<Float>()
          var x = 0
          while x + 8 <= w {
            acc += load8(r + x)
            x += 8
          }
          var s = acc.sum()
          while x < w {
            s += r[x]
            x += 1
          }
          sum += Double(s)
        }
      }
      let mean = Float(sum / count)
      let m8 = SIMD8<Float>(repeating: mean)
      var sq = 0.0
      for c in c0..<(c0 + perGroup) {
        for y in 0..<h {
          let r = src + c * g.plane + (y + 1) * rs + 1
          var acc = SIMD8<Float>()
          var x = 0
          while x + 8 <= w {
            let d = load8(r + x) - m8
            acc += d * d
            x += 8
          }
          var s = acc.sum()
          while x < w {
            let d = r[x] - mean
            s += d * d
            x += 1
          }
          sq += Double(s)
        }
      }
      let inv = 1 / (Float(sq / count) + eps).squareRoot()
      for c in c0..<(c0 + perGroup) {
        let scale = inv * gamma[c]
        let shift = beta[c] - mean * scale
        let dplane = compactOutput ? dst + c * h * w : dst + c * g.plane
        if !compactOutput {
          dplane.update(repeating: 0, count: rs)
          (dplane + (h + 1) * rs).update(repeating: 0, count: rs)
        }
        for y in 0..<h {
          let r = src + c * g.plane + (y + 1) * rs + 1
          let o: FloatPointer
          if compactOutput {
            o = dplane + y * w
          } else {
            let row = dplane + (y + 1) * rs
            row[0] = 0
            row[w + 1] = 0
            o = row + 1
          }
          if swish {
            affineSwishRow(r, into: o, count: w, scale: scale, shift: shift)
          } else {
            for x in 0..<w { o[x] = r[x] * scale + shift }
          }
        }
      }
    }
  }

  // MARK: - Resampling and copies

  /// Nearest-neighbour ×2 upsampling (`F.interpolate(scale_factor=2.0, mode="nearest")`) from a
  /// bordered input into a bordered output of twice the size.
  static func upsample2x(_ src: UnsafePointer<Float>, _ g: VQPlaneGeometry, channels: Int, into dst: FloatPointer) {
    let o = g.doubled()
    let (h, w, rs, ors) = (g.height, g.width, g.rowStride, o.rowStride)
    parallel(channels, work: channels * o.plane) { c in
      let s = src + c * g.plane
      let d = dst + c * o.plane
      d.update(repeating: 0, count: ors)
      (d + (o.height + 1) * ors).update(repeating: 0, count: ors)
      for y in 0..<h {
        let sr = s + (y + 1) * rs + 1
        let d0 = d + (2 * y + 1) * ors
        d0[0] = 0
        for x in 0..<w {
          let v = sr[x]
          d0[1 + 2 * x] = v
          d0[2 + 2 * x] = v
        }
        d0[2 * w + 1] = 0
        (d0 + ors).update(from: d0, count: ors)
      }
    }
  }

  /// Copies a compact `[C, H, W]` tensor into a bordered layout.
  static func pad(_ src: UnsafePointer<Float>, _ g: VQPlaneGeometry, channels: Int, into dst: FloatPointer) {
    let (h, w, rs) = (g.height, g.width, g.rowStride)
    for c in 0..<channels {
      let d = dst + c * g.plane
      d.update(repeating: 0, count: g.plane)
      for y in 0..<h { (d + (y + 1) * rs + 1).update(from: src + (c * h + y) * w, count: w) }
    }
  }

  /// Copies the interior of a bordered layout into a compact `[C, H, W]` tensor.
  static func unpad(_ src: UnsafePointer<Float>, _ g: VQPlaneGeometry, channels: Int, into dst: FloatPointer) {
    let (h, w, rs) = (g.height, g.width, g.rowStride)
    for c in 0..<channels {
      for y in 0..<h { (dst + (c * h + y) * w).update(from: src + c * g.plane + (y + 1) * rs + 1, count: w) }
    }
  }

  /// `dst` interior `+= src` (compact `[C, H·W]`) `+ bias[c]`.
  static func addCompact(
    _ src: UnsafePointer<Float>, bias: UnsafePointer<Float>, channels: Int, into dst: FloatPointer, _ g: VQPlaneGeometry
  ) {
    let (h, w, rs) = (g.height, g.width, g.rowStride)
    parallel(channels, work: channels * g.plane) { c in
      let b = bias[c]
      for y in 0..<h {
        let s = src + (c * h + y) * w
        let d = dst + c * g.plane + (y + 1) * rs + 1
        for x in 0..<w { d[x] += s[x] + b }
      }
    }
  }
}

// MARK: - Convolutions

/// `nn.Conv2d` with a 3×3 kernel, on bordered activations: stride 1 with padding 1, or taming's
/// Downsample (stride 2 after padding (0, 1, 0, 1)). Weights are re-laid out once at load for the
/// path that suits the layer's shape:
/// - `winograd`: Winograd F(2×2, 3×3) (Lavin & Gray 2015): 16 GEMMs on transformed 4×4 input tiles
///   instead of 9 full-size ones, 2.25× fewer multiplies; the transforms only add and halve, so
///   rounding stays that of a direct convolution (most layers);
/// - `shifted`: nine GEMMs over shifted views of the input (no copies; the same layers, kept as the
///   plain reference path);
/// - `im2col`: a row-tiled im2col and one GEMM per tile (stride 2, or few input channels, where
///   GEMMs of depth `I` would be too shallow);
/// - `direct`: a SIMD loop for a handful of output channels (the decoder's `conv_out` to RGB),
///   where a GEMM with M = 3 runs at a small fraction of peak.
struct VQConv3x3: Sendable {
  enum Path: Sendable { case winograd, shifted, im2col, direct }

  let inChannels: Int
  let outChannels: Int
  let stride: Int
  let path: Path
  /// `winograd`: `[16][O][I]` (G·g·Gᵀ per tile position); `shifted`: `[9][O][I]`; `im2col`:
  /// `[O][I·9]` (PyTorch's layout); `direct`: `[⌈O/4⌉][I][9][4]`.
  let weights: [Float]
  let bias: [Float]

  /// `weight` is PyTorch's `[O, I, 3, 3]`. `winograd` false picks the nine-GEMM path where
  /// Winograd would apply.
  init(weight: Tensor, bias: Tensor, stride: Int = 1, winograd: Bool = true) {
    let (o, i) = (weight.shape[0], weight.shape[1])
    inChannels = i
    outChannels = o
    self.stride = stride
    self.bias = bias.scalars
    let w = weight.scalars
    if stride == 1 && o <= 8 {
      path = .direct
      let groups = (o + 3) / 4
      var packed = [Float](repeating: 0, count: groups * i * 9 * 4)
      for oc in 0..<o {
        for c in 0..<i {
          for t in 0..<9 { packed[(((oc / 4) * i + c) * 9 + t) * 4 + oc % 4] = w[(oc * i + c) * 9 + t] }
        }
      }
      weights = packed
    } else if stride == 1 && i * 9 > 64 && winograd {
      path = .winograd
      var packed = [Float](repeating: 0, count: 16 * o * i)
      packed.withUnsafeMutableBufferPointer { u in
        w.withUnsafeBufferPointer { w in
          VQKernels.parallel(o, work: o * i * 64) { oc in
            for c in 0..<i {
              // U = G·g·Gᵀ with G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]], in double.
              let k = (oc * i + c) * 9
              var gg: (SIMD4<Double>, SIMD4<Double>, SIMD4<Double>) = (.zero, .zero, .zero)  // columns of G·g
              for r in 0..<3 {
                let (g0, g1, g2) = (Double(w[k + r]), Double(w[k + 3 + r]), Double(w[k + 6 + r]))
                let col = SIMD4<Double>(g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2)
                if r == 0 { gg.0 = col } else if r == 1 { gg.1 = col } else { gg.2 = col }
              }
              let rows = (gg.0, (gg.0 + gg.1 + gg.2) / 2, (gg.0 - gg.1 + gg.2) / 2, gg.2)  // columns of U
              for a in 0..<4 {
                u[((a * 4 + 0) * o + oc) * i + c] = Float(rows.0[a])
                u[((a * 4 + 1) * o + oc) * i + c] = Float(rows.1[a])
                u[((a * 4 + 2) * o + oc) * i + c] = Float(rows.2[a])
                u[((a * 4 + 3) * o + oc) * i + c] = Float(rows.3[a])
              }
            }
          }
        }
      }
      weights = packed
    } else if stride == 1 && i * 9 > 64 {
      path = .shifted
      var packed = [Float](repeating: 0, count: 9 * o * i)
      for t in 0..<9 {
        for oc in 0..<o {
          for c in 0..<i { packed[(t * o + oc) * i + c] = w[(oc * i + c) * 9 + t] }
        }
      }
      weights = packed
    } else {
      path = .im2col
      weights = w
    }
  }

  func outputGeometry(_ g: VQPlaneGeometry) -> VQPlaneGeometry { stride == 1 ? g : g.downsampled() }

  /// Floats of scratch this layer needs for an input of geometry `g`.
  func scratchNeeded(_ g: VQPlaneGeometry) -> Int {
    switch path {
    case .im2col: return max(Self.colsBudget, inChannels * 9 * outputGeometry(g).rowStride)
    case .winograd:
      let plan = winogradPlan(g)
      return min(VQKernels.workerCount, plan.blocks) * plan.scratchPerBlock
    case .shifted, .direct: return 0
    }
  }

  /// Floats of im2col tile (a multiple of whole output rows, at least one).
  static let colsBudget = 1 << 21
  /// How a Winograd convolution splits its tile rows into blocks. A block's transformed input plus
  /// GEMM output (`scratchPerBlock` floats, at most `winogradBudget` where rows allow) stays in
  /// cache between the transforms and the GEMMs; blocks hold at least `winogradMinimumTiles` tiles
  /// so that each GEMM stays wide. When the whole image has too few tiles to give every worker two
  /// such blocks, it is one block whose phases are split across the workers instead. (Tuned on the
  /// f16 decoder, 2 cores: 4 MB per worker and 64 tiles beat 2–16 MB and 16–256 tiles by 5–15%.)
  struct WinogradPlan {
    let tileRows: Int
    let rowsPerBlock: Int
    let blocks: Int
    let scratchPerBlock: Int
  }

  static let winogradBudget = 1 << 20
  static let winogradMinimumTiles = 64

  func winogradPlan(_ g: VQPlaneGeometry) -> WinogradPlan {
    let tileRows = (g.height + 1) / 2
    let tw = (g.width + 1) / 2
    let workers = VQKernels.workerCount
    var rows = tileRows
    if tileRows * tw >= 2 * workers * Self.winogradMinimumTiles {
      let byBudget = Self.winogradBudget / (16 * (inChannels + outChannels) * tw)
      let byBalance = (tileRows + 2 * workers - 1) / (2 * workers)
      let byWidth = (Self.winogradMinimumTiles + tw - 1) / tw
      rows = max(1, byWidth, min(byBudget, byBalance))
    }
    return WinogradPlan(
      tileRows: tileRows, rowsPerBlock: rows, blocks: (tileRows + rows - 1) / rows,
      scratchPerBlock: 16 * (inChannels + outChannels) * rows * tw)
  }

  /// Convolves bordered `src` into bordered `dst` (which must not overlap `src`), adding the bias.
  /// With `accumulate`, the result is added to what `dst` holds (a residual connection) and
  /// `extraBias` joins the bias. With `finishOutput` false the bias and border clean-up are left to
  /// the caller (who adds more into `dst` first).
  func forward(
    _ src: UnsafePointer<Float>, _ g: VQPlaneGeometry, into dst: FloatPointer, accumulate: Bool = false,
    finishOutput: Bool = true, scratch: FloatPointer
  ) {
    let og = outputGeometry(g)
    if path == .direct {
      weights.withUnsafeBufferPointer { wp in
        direct(
          src, g, wp.baseAddress!, into: dst, rowStride: og.rowStride, planeStride: og.plane, origin: og.origin,
          accumulate: accumulate, addBias: finishOutput)
      }
      if finishOutput { VQKernels.finish(dst, channels: outChannels, og, bias: nil) }
      return
    }
    weights.withUnsafeBufferPointer { wp in
      let w = wp.baseAddress!
      switch path {
      case .shifted:
        let n = g.height * g.rowStride
        let workers = VQKernels.workerCount
        let chunk = ((n + workers - 1) / workers + 15) / 16 * 16
        DispatchQueue.concurrentPerform(iterations: workers) { part in
          let j0 = part * chunk
          let cols = min(chunk, n - j0)
          guard cols > 0 else { return }
          for t in 0..<9 {
            let shift = (t / 3) * g.rowStride + t % 3
            sgemm(
              m: outChannels, n: cols, k: inChannels, a: w + t * outChannels * inChannels, lda: inChannels,
              b: src + shift + j0, ldb: g.plane, beta: (t == 0 && !accumulate) ? 0 : 1, c: dst + g.origin + j0,
              ldc: og.plane)
          }
        }
      case .winograd:
        winograd(src, g, w, into: dst, accumulate: accumulate, finishOutput: finishOutput, scratch: scratch)
      case .im2col:
        im2colGEMM(src, g, w, into: dst, accumulate: accumulate, scratch: scratch)
      case .direct:
        break  // handled above
      }
    }
    if finishOutput && path != .winograd {
      bias.withUnsafeBufferPointer { VQKernels.finish(dst, channels: outChannels, og, bias: $0.baseAddress!) }
    }
  }

  /// Convolves bordered `src` into a compact `[O, H, W]` output (the decoder's last layer). Layers
  /// without the direct path go through `spare` (a bordered buffer for `O` channels) and a copy.
  func forwardCompact(
    _ src: UnsafePointer<Float>, _ g: VQPlaneGeometry, into dst: FloatPointer, spare: FloatPointer,
    scratch: FloatPointer
  ) {
    precondition(stride == 1)
    if path == .direct {
      weights.withUnsafeBufferPointer { wp in
        direct(
          src, g, wp.baseAddress!, into: dst, rowStride: g.width, planeStride: g.height * g.width, origin: 0,
          accumulate: false, addBias: true)
      }
    } else {
      forward(src, g, into: spare, scratch: scratch)
      VQKernels.unpad(spare, g, channels: outChannels, into: dst)
    }
  }

  /// Winograd F(2×2, 3×3) over blocks of tile rows. Output tile (ty, tx) covers output pixels
  /// (2ty…2ty+1, 2tx…2tx+1) and reads the bordered input rows and columns 2ty…2ty+3, 2tx…2tx+3.
  /// Per block: input transform V = Bᵀ·d·B into `[16][I][tiles]`; 16 GEMMs M_ξ = U_ξ·V_ξ into
  /// `[16][O][tiles]`; output transform Y = Aᵀ·M·A written (plus bias, plus what `dst` holds when
  /// accumulating) straight into the bordered output; when finishing it also zeroes the border (and
  /// otherwise leaves the bias to the caller's `finish`).
  /// Odd sizes work: the extra tile row/column reads border or slack values and its outputs land
  /// on the border, which is zeroed after.
  private func winograd(
    _ src: UnsafePointer<Float>, _ g: VQPlaneGeometry, _ u: UnsafePointer<Float>, into dst: FloatPointer,
    accumulate: Bool, finishOutput: Bool, scratch: FloatPointer
  ) {
    let plan = winogradPlan(g)
    bias.withUnsafeBufferPointer { bp in
      if plan.blocks == 1 {
        // Few tiles (the lowest resolutions): one block, with each phase split across the workers.
        winogradBlock(
          src, g, u, into: dst, accumulate: accumulate, finishOutput: finishOutput, bias: bp.baseAddress!,
          firstTileRow: 0, tileRows: plan.tileRows, scratch: scratch, parallelPhases: true)
        return
      }
      // Each worker takes whole blocks (transform, 16 GEMMs, transform) in its own scratch.
      let next = VQBlockCounter()
      DispatchQueue.concurrentPerform(iterations: min(VQKernels.workerCount, plan.blocks)) { worker in
        while true {
          let block = next.take()
          guard block < plan.blocks else { return }
          let ty0 = block * plan.rowsPerBlock
          winogradBlock(
            src, g, u, into: dst, accumulate: accumulate, finishOutput: finishOutput, bias: bp.baseAddress!,
            firstTileRow: ty0, tileRows: min(plan.rowsPerBlock, plan.tileRows - ty0),
            scratch: scratch + worker * plan.scratchPerBlock, parallelPhases: false)
        }
      }
    }
  }

  /// One block of tile rows: input transform, 16 GEMMs, output transform. V is laid out
  /// `[I][16][tiles]` (the GEMMs read it with a row stride of 16·tiles), so each input channel's
  /// 16 transformed rows are written together; M is `[16][O][tiles]`, contiguous per GEMM (OpenBLAS
  /// clears a contiguous C with memset, a strided one much more slowly).
  private func winogradBlock(
    _ src: UnsafePointer<Float>, _ g: VQPlaneGeometry, _ u: UnsafePointer<Float>, into dst: FloatPointer,
    accumulate: Bool, finishOutput: Bool, bias: UnsafePointer<Float>, firstTileRow ty0: Int, tileRows rows: Int,
    scratch v: FloatPointer, parallelPhases: Bool
  ) {
    let (h, w, rs, plane) = (g.height, g.width, g.rowStride, g.plane)
    let (ci, co) = (inChannels, outChannels)
    let tw = (w + 1) / 2
    let lastTileRow = (h + 1) / 2
    let n = rows * tw
    let m = v + 16 * ci * n
    let phase: (Int, (Int) -> Void) -> Void = { count, body in
      if parallelPhases {
        DispatchQueue.concurrentPerform(iterations: count, execute: body)
      } else {
        for i in 0..<count { body(i) }
      }
    }
    phase(ci) { c in
      for r in 0..<rows {
        VQKernels.winogradInputRow(
          src + c * plane + 2 * (ty0 + r) * rs, rowStride: rs, tiles: tw, into: v + c * 16 * n + r * tw,
          positionStride: n)
      }
    }
    phase(16) { xi in
      sgemm(m: co, n: n, k: ci, a: u + xi * co * ci, lda: ci, b: v + xi * n, ldb: 16 * n, c: m + xi * co * n, ldc: n)
    }
    phase(co) { o in
      let dplane = dst + o * plane
      if finishOutput && ty0 == 0 { dplane.update(repeating: 0, count: rs) }
      for r in 0..<rows {
        let y = 2 * (ty0 + r)
        let row0 = dplane + (y + 1) * rs + 1
        VQKernels.winogradOutputRow(
          m + o * n + r * tw, positionStride: co * n, tiles: tw, bias: finishOutput ? bias[o] : 0, into: row0,
          rowStride: rs, secondRow: y + 1 < h, accumulate: accumulate)
        if finishOutput {
          row0[-1] = 0
          row0[w] = 0
          if y + 1 < h {
            row0[rs - 1] = 0
            row0[rs + w] = 0
          }
        }
      }
      if finishOutput && ty0 + rows == lastTileRow { (dplane + (h + 1) * rs).update(repeating: 0, count: rs) }
    }
  }

  /// Row tiles of the output: im2col into a `[I·9, rows·(OW+2)]` matrix (columns for the border
  /// positions are zero), then one GEMM straight into the bordered output.
  private func im2colGEMM(
    _ src: UnsafePointer<Float>, _ g: VQPlaneGeometry, _ w: UnsafePointer<Float>, into dst: FloatPointer,
    accumulate: Bool, scratch cols: FloatPointer
  ) {
    let og = outputGeometry(g)
    let k = inChannels * 9
    let ors = og.rowStride
    let rowsPerTile = max(1, min(og.height, Self.colsBudget / (k * ors)))
    var y0 = 0
    while y0 < og.height {
      let rows = min(rowsPerTile, og.height - y0)
      let n = rows * ors
      VQKernels.parallel(inChannels, work: k * n) { c in
        let plane = src + c * g.plane
        for t in 0..<9 {
          let (ki, kj) = (t / 3, t % 3)
          let row = cols + (c * 9 + t) * n
          if stride == 1 {
            // One contiguous run: the two extra columns per row read border (or next-row) values
            // that only reach the output's border, which `finish` clears.
            row.update(from: plane + (y0 + ki) * g.rowStride + kj, count: n)
          } else {
            for r in 0..<rows {
              let s = plane + (2 * (y0 + r) + ki + 1) * g.rowStride + kj + 1
              let d = row + r * ors
              for x in 0..<og.width { d[x] = s[2 * x] }
              d[og.width] = 0
              d[og.width + 1] = 0
            }
          }
        }
      }
      VQKernels.gemm(
        m: outChannels, n: n, k: k, a: w, lda: k, b: cols, ldb: n, beta: accumulate ? 1 : 0,
        c: dst + og.origin + y0 * ors, ldc: og.plane)
      y0 += rows
    }
  }

  /// Direct convolution for `O ≤ 8`: per output row, 8 pixels × 4 output channels in SIMD
  /// accumulators, looping over input channels and taps. Adds the bias itself when `addBias`.
  private func direct(
    _ src: UnsafePointer<Float>, _ g: VQPlaneGeometry, _ w: UnsafePointer<Float>, into dst: FloatPointer,
    rowStride drs: Int, planeStride dps: Int, origin: Int, accumulate: Bool, addBias: Bool
  ) {
    let (h, wd, rs, plane) = (g.height, g.width, g.rowStride, g.plane)
    let (ci, co) = (inChannels, outChannels)
    bias.withUnsafeBufferPointer { bp in
      let b = bp.baseAddress!
      VQKernels.parallel(h, work: h * wd * ci * 9 * co) { y in
        for og in 0..<((co + 3) / 4) {
          let wg = w + og * ci * 36
          var x0 = 0
          while x0 < wd {
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            for c in 0..<ci {
              let wc = wg + c * 36
              let p = src + c * plane + y * rs + x0
              for t in 0..<9 {
                // Reads up to 7 values past the row end; those lanes are never stored.
                let v = VQKernels.load8(p + (t / 3) * rs + t % 3)
                let wt = wc + t * 4
                a0 += v * wt[0]
                a1 += v * wt[1]
                a2 += v * wt[2]
                a3 += v * wt[3]
              }
            }
            let lanes = min(8, wd - x0)
            for j in 0..<min(4, co - og * 4) {
              let oc = og * 4 + j
              let d = dst + oc * dps + origin + y * drs + x0
              let a = j == 0 ? a0 : j == 1 ? a1 : j == 2 ? a2 : a3
              let bo = addBias ? b[oc] : 0
              for l in 0..<lanes { d[l] = (accumulate ? d[l] : 0) + a[l] + bo }
            }
            x0 += 8
          }
        }
      }
    }
  }
}

/// `nn.Conv2d` with a 1×1 kernel (or an `nn.Linear` applied per pixel) on bordered activations: one
/// GEMM over whole planes (the zero borders map to zero, before the bias).
struct VQConv1x1: Sendable {
  let inChannels: Int
  let outChannels: Int
  /// `[O, I]`.
  let weight: [Float]
  let bias: [Float]

  init(weight: Tensor, bias: Tensor) {
    outChannels = weight.shape[0]
    inChannels = weight.count / outChannels
    self.weight = weight.scalars
    self.bias = bias.scalars
  }

  func forward(
    _ src: UnsafePointer<Float>, _ g: VQPlaneGeometry, into dst: FloatPointer, accumulate: Bool = false,
    finishOutput: Bool = true
  ) {
    weight.withUnsafeBufferPointer { w in
      VQKernels.gemm(
        m: outChannels, n: g.plane, k: inChannels, a: w.baseAddress!, lda: inChannels, b: src, ldb: g.plane,
        beta: accumulate ? 1 : 0, c: dst, ldc: g.plane)
    }
    if finishOutput {
      bias.withUnsafeBufferPointer { VQKernels.finish(dst, channels: outChannels, g, bias: $0.baseAddress!) }
    }
  }
}

/// Hands out block numbers 0, 1, 2, … to whichever worker asks next.
final class VQBlockCounter: Sendable {
  private let next = Atomic<Int>(0)
  func take() -> Int { next.wrappingAdd(1, ordering: .relaxed).oldValue }
}
