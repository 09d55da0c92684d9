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
    concurrentPerform(workers) { w in
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
      concurrentPerform(n, body)
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

  /// `o[i] = swish(r[i]·scale + shift)`, swish = `v·σ(v)`, 16 at a time with `vectorExp`.
  @inline(__always)
  static func affineSwishRow(_ r: UnsafePointer<Float>, into o: FloatPointer, count: Int, scale: Float, shift: Float) {
    var i = 0
    while i + 16 <= count {
      let v = UnsafeRawPointer(r + i).loadUnaligned(as: SIMD16<Float>.self) * scale + shift
      UnsafeMutableRawPointer(o + i).storeBytes(of: v / (1 + vectorExp(-v)), as: SIMD16<Float>.self)
      i += 16
    }
    if i < count {
      var v = SIMD16<Float>()
      for j in 0..<(count - i) { v[j] = r[i + j] * scale + shift }
      let s = v / (1 + vectorExp(-v))
      for j in 0..<(count - i) { o[i + j] = s[j] }
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
