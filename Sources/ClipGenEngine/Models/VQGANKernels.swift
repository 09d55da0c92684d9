// The VQGAN's compute kernels, on activations stored as zero-bordered planes.
//
// Every activation is `[C, H+2, W+2]`: each channel's plane carries a one-pixel border of zeros.
// A 3×3, stride-1, padding-1 convolution is then nine GEMMs over shifted views of the input, with
// no im2col copy: output pixel (y, x) sits at column `y·(W+2) + x` of a GEMM whose B matrix for tap
// (ki, kj) starts `ki·(W+2) + kj` values into each input plane. The two extra columns per row land
// exactly on the output's left/right border, which `finish` zeroes again (with the bias added in
// the same pass). The other layers (GroupNorm, upsampling, attention) read and write the same
// layout, so no layer ever copies an activation just to re-pad it.
import COpenBLAS
import Foundation

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

  /// `exp(x)` lane-wise: Cephes' `expf` range reduction and polynomial (relative error ~1e-7),
  /// with the argument clamped so that `2ⁿ` stays a normal float.
  @inline(__always)
  static func exp8(_ x: SIMD8<Float>) -> SIMD8<Float> {
    var x = x.clamped(lowerBound: SIMD8(repeating: -87.0), upperBound: SIMD8(repeating: 88.0))
    let fx = (x * 1.44269504088896341 + 0.5).rounded(.down)
    x = x - fx * 0.693359375 + fx * 2.12194440e-4
    var y = SIMD8<Float>(repeating: 1.9875691500e-4)
    y = y * x + 1.3981999507e-3
    y = y * x + 8.3334519073e-3
    y = y * x + 4.1665795894e-2
    y = y * x + 1.6666665459e-1
    y = y * x + 5.0000001201e-1
    y = y * (x * x) + x + 1
    let n = SIMD8<Int32>(fx, rounding: .towardZero) &+ 127
    return y * unsafeBitCast(n &<< 23, to: SIMD8<Float>.self)
  }

  /// Swish `x·σ(x)` lane-wise.
  @inline(__always)
  static func swish8(_ v: SIMD8<Float>) -> SIMD8<Float> { v / (1 + exp8(-v)) }

  @inline(__always)
  static func swish(_ v: Float) -> Float { v / (1 + Foundation.exp(-v)) }

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
        let s8 = SIMD8<Float>(repeating: scale)
        let t8 = SIMD8<Float>(repeating: shift)
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
          var x = 0
          if swish {
            while x + 8 <= w {
              store8(swish8(load8(r + x) * s8 + t8), o + x)
              x += 8
            }
            while x < w {
              o[x] = Self.swish(r[x] * scale + shift)
              x += 1
            }
          } else {
            while x + 8 <= w {
              store8(load8(r + x) * s8 + t8, o + x)
              x += 8
            }
            while x < w {
              o[x] = r[x] * scale + shift
              x += 1
            }
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
/// - `shifted`: nine GEMMs over shifted views of the input (most layers; no copies);
/// - `im2col`: a row-tiled im2col and one GEMM per tile (stride 2, or few input channels, where
///   nine GEMMs of depth `I` would be too shallow);
/// - `direct`: a SIMD loop for a handful of output channels (the decoder's `conv_out` to RGB),
///   where a GEMM with M = 3 runs at a small fraction of peak.
struct VQConv3x3: Sendable {
  enum Path: Sendable { case shifted, im2col, direct }

  let inChannels: Int
  let outChannels: Int
  let stride: Int
  let path: Path
  /// `shifted`: `[9][O][I]`; `im2col`: `[O][I·9]` (PyTorch's layout); `direct`: `[⌈O/4⌉][I][9][4]`.
  let weights: [Float]
  let bias: [Float]

  /// `weight` is PyTorch's `[O, I, 3, 3]`.
  init(weight: Tensor, bias: Tensor, stride: Int = 1) {
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

  /// Floats of im2col scratch this layer needs for an input of geometry `g`.
  func scratchNeeded(_ g: VQPlaneGeometry) -> Int {
    path == .im2col ? max(Self.colsBudget, inChannels * 9 * outputGeometry(g).rowStride) : 0
  }

  static let colsBudget = 1 << 21

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
          accumulate: accumulate)
      }
      if finishOutput { VQKernels.finish(dst, channels: outChannels, og, bias: nil) }
      return
    }
    weights.withUnsafeBufferPointer { wp in
      let w = wp.baseAddress!
      switch path {
      case .shifted:
        let n = g.height * g.rowStride
        for t in 0..<9 {
          let shift = (t / 3) * g.rowStride + t % 3
          sgemm(
            m: outChannels, n: n, k: inChannels, a: w + t * outChannels * inChannels, lda: inChannels,
            b: src + shift, ldb: g.plane, beta: (t == 0 && !accumulate) ? 0 : 1, c: dst + g.origin, ldc: og.plane)
        }
      case .im2col:
        im2colGEMM(src, g, w, into: dst, accumulate: accumulate, scratch: scratch)
      case .direct:
        break  // handled above
      }
    }
    if finishOutput {
      bias.withUnsafeBufferPointer { VQKernels.finish(dst, channels: outChannels, og, bias: $0.baseAddress!) }
    }
  }

  /// Convolves bordered `src` into a compact `[O, H, W]` output (the decoder's last layer). Layers
  /// without the direct path go through `spare` (a bordered buffer for `O` channels) and a copy.
  func forwardCompact(
    _ src: UnsafePointer<Float>, _ g: VQPlaneGeometry, into dst: FloatPointer, spare: FloatPointer, scratch: FloatPointer
  ) {
    precondition(stride == 1)
    if path == .direct {
      weights.withUnsafeBufferPointer { wp in
        direct(src, g, wp.baseAddress!, into: dst, rowStride: g.width, planeStride: g.height * g.width, origin: 0, accumulate: false)
      }
    } else {
      forward(src, g, into: spare, scratch: scratch)
      VQKernels.unpad(spare, g, channels: outChannels, into: dst)
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
      sgemm(
        m: outChannels, n: n, k: k, a: w, lda: k, b: cols, ldb: n, beta: accumulate ? 1 : 0,
        c: dst + og.origin + y0 * ors, ldc: og.plane)
      y0 += rows
    }
  }

  /// Direct convolution for `O ≤ 8`: per output row, 8 pixels × 4 output channels in SIMD
  /// accumulators, looping over input channels and taps. Adds the bias itself.
  private func direct(
    _ src: UnsafePointer<Float>, _ g: VQPlaneGeometry, _ w: UnsafePointer<Float>, into dst: FloatPointer,
    rowStride drs: Int, planeStride dps: Int, origin: Int, accumulate: Bool
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
              for l in 0..<lanes { d[l] = (accumulate ? d[l] : 0) + a[l] + b[oc] }
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
      sgemm(
        m: outChannels, n: g.plane, k: inChannels, a: w.baseAddress!, lda: inChannels, b: src, ldb: g.plane,
        beta: accumulate ? 1 : 0, c: dst, ldc: g.plane)
    }
    if finishOutput {
      bias.withUnsafeBufferPointer { VQKernels.finish(dst, channels: outChannels, g, bias: $0.baseAddress!) }
    }
  }
}
