// 2-D convolution as im2col + sgemm (PyTorch `nn.Conv2d` semantics, weight [O, I, kh, kw]), with a
// direct GEMM for 1×1 kernels, and nearest-neighbour ×2 upsampling.
import Foundation

/// `nn.Conv2d` with square stride and explicit (possibly asymmetric) zero padding, on one image
/// laid out `[C, H, W]`. Taming's downsample pads (0, 1, 0, 1) before a stride-2 conv.
public struct Conv2d: Sendable {
  public let weight: Tensor
  public let bias: Tensor?
  public let stride: Int
  /// Zero padding: top, left, bottom, right.
  public let padding: (top: Int, left: Int, bottom: Int, right: Int)

  public var outChannels: Int { weight.shape[0] }
  public var inChannels: Int { weight.shape[1] }
  public var kernelH: Int { weight.shape[2] }
  public var kernelW: Int { weight.shape[3] }

  public init(weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int) {
    self.init(weight: weight, bias: bias, stride: stride, padding: (padding, padding, padding, padding))
  }

  public init(weight: Tensor, bias: Tensor?, stride: Int = 1, padding: (top: Int, left: Int, bottom: Int, right: Int)) {
    precondition(weight.shape.count == 4, "Conv2d weight must be 4-D, got \(weight.shape)")
    self.weight = weight
    self.bias = bias
    self.stride = stride
    self.padding = padding
  }

  public func outputSize(height h: Int, width w: Int) -> (Int, Int) {
    (
      (h + padding.top + padding.bottom - kernelH) / stride + 1,
      (w + padding.left + padding.right - kernelW) / stride + 1
    )
  }

  /// Convolves `x` (`[inChannels, h, w]`) into `out` (`[outChannels, oh, ow]`).
  public func forward(_ x: UnsafePointer<Float>, height h: Int, width w: Int, into out: FloatPointer) {
    let (oh, ow) = outputSize(height: h, width: w)
    let spatial = oh * ow
    let k = inChannels * kernelH * kernelW
    weight.withUnsafeBufferPointer { wp in
      let wbase = wp.baseAddress!
      let oneByOne = kernelH == 1 && kernelW == 1 && stride == 1 && padding == (0, 0, 0, 0)
      if oneByOne {
        sgemm(m: outChannels, n: spatial, k: k, a: wbase, lda: k, b: x, ldb: spatial, c: out, ldc: spatial)
      } else {
        let cols = FloatPointer.allocate(capacity: k * spatial)
        defer { cols.deallocate() }
        im2col(x, height: h, width: w, outHeight: oh, outWidth: ow, into: cols)
        sgemm(m: outChannels, n: spatial, k: k, a: wbase, lda: k, b: cols, ldb: spatial, c: out, ldc: spatial)
      }
    }
    if let bias {
      bias.withUnsafeBufferPointer { b in
        for o in 0..<outChannels {
          let row = out + o * spatial
          let v = b[o]
          for i in 0..<spatial { row[i] += v }
        }
      }
    }
  }

  /// Convenience on a `[C, H, W]` tensor.
  public func callAsFunction(_ x: Tensor) -> Tensor {
    precondition(x.shape.count == 3 && x.shape[0] == inChannels, "Conv2d: input \(x.shape), weight \(weight.shape)")
    let (oh, ow) = outputSize(height: x.shape[1], width: x.shape[2])
    var out = Tensor(zeros: [outChannels, oh, ow])
    x.withUnsafeBufferPointer { xp in
      out.withUnsafeMutableBufferPointer { op in
        forward(xp.baseAddress!, height: x.shape[1], width: x.shape[2], into: op.baseAddress!)
      }
    }
    return out
  }

  /// Unfolds patches into a `[inChannels·kh·kw, oh·ow]` matrix; rows split across threads by channel.
  private func im2col(
    _ x: UnsafePointer<Float>, height h: Int, width w: Int, outHeight oh: Int, outWidth ow: Int, into cols: FloatPointer
  ) {
    let kh = kernelH
    let kw = kernelW
    let s = stride
    let pt = padding.top
    let pl = padding.left
    let spatial = oh * ow
    let work = { (c: Int) in
      let xc = x + c * h * w
      for ki in 0..<kh {
        for kj in 0..<kw {
          let row = cols + ((c * kh + ki) * kw + kj) * spatial
          for oy in 0..<oh {
            let iy = oy * s + ki - pt
            let dst = row + oy * ow
            if iy < 0 || iy >= h {
              dst.update(repeating: 0, count: ow)
              continue
            }
            let src = xc + iy * w
            if s == 1 {
              // Contiguous run: columns ox with 0 <= ox + kj - pl < w.
              let lo = max(0, pl - kj)
              let hi = min(ow, w + pl - kj)
              if lo > 0 { dst.update(repeating: 0, count: min(lo, ow)) }
              if hi > lo { (dst + lo).update(from: src + (lo + kj - pl), count: hi - lo) }
              if hi < ow { (dst + max(hi, 0)).update(repeating: 0, count: ow - max(hi, 0)) }
            } else {
              for ox in 0..<ow {
                let ix = ox * s + kj - pl
                dst[ox] = (ix >= 0 && ix < w) ? src[ix] : 0
              }
            }
          }
        }
      }
    }
    if inChannels * spatial * kh * kw >= 1 << 16 {
      concurrentPerform(inChannels, work)
    } else {
      for c in 0..<inChannels { work(c) }
    }
  }
}

/// Nearest-neighbour ×2 upsampling of `[C, H, W]` into `[C, 2H, 2W]` (`F.interpolate(scale_factor=2.0,
/// mode="nearest")`).
public func upsampleNearest2x(
  _ x: UnsafePointer<Float>, channels: Int, height h: Int, width w: Int, into out: FloatPointer
) {
  let ow = 2 * w
  concurrentPerform(channels) { c in
    let xc = x + c * h * w
    let oc = out + c * 4 * h * w
    for y in 0..<h {
      let src = xc + y * w
      let d0 = oc + (2 * y) * ow
      for xx in 0..<w {
        let v = src[xx]
        d0[2 * xx] = v
        d0[2 * xx + 1] = v
      }
      (d0 + ow).update(from: d0, count: ow)
    }
  }
}
