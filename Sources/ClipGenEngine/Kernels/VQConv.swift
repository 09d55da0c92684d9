// The VQGAN's convolutions on zero-bordered planes (see VQKernels.swift for the layout): 3×3 as
// Winograd F(2×2, 3×3), im2col + GEMM or direct, chosen per shape; 1×1 as one GEMM.
import COpenBLAS
import Foundation
import Synchronization

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
        concurrentPerform(workers) { part in
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
      concurrentPerform(min(VQKernels.workerCount, plan.blocks)) { worker in
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
        concurrentPerform(count, body)
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
