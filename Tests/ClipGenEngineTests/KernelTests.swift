// Kernels against direct (loop-by-loop) implementations of the PyTorch ops they mirror.
import Foundation
import Testing

@testable import ClipGenEngine

@Suite struct KernelTests {
  @Test(arguments: [1, 5])
  func linearMatchesDirectProduct(rows: Int) {
    var r = TestRandom(seed: 1)
    let w = r.tensor([7, 13])
    let b = r.tensor([7])
    let x = r.tensor([rows, 13])
    let y = Linear(weight: w, bias: b)(x)
    var expected = Tensor(zeros: [rows, 7])
    for i in 0..<rows {
      for o in 0..<7 {
        var s = b.scalars[o]
        for k in 0..<13 { s += x.scalars[i * 13 + k] * w.scalars[o * 13 + k] }
        expected.scalars[i * 7 + o] = s
      }
    }
    expectClose(y, expected, "linear rows=\(rows)")
  }

  @Test(arguments: [
    (k: 3, stride: 1, pad: [1, 1, 1, 1]), (k: 3, stride: 2, pad: [0, 0, 1, 1]), (k: 1, stride: 1, pad: [0, 0, 0, 0]),
    (k: 4, stride: 4, pad: [0, 0, 0, 0]),
  ])
  func conv2dMatchesDirectConvolution(k: Int, stride: Int, pad: [Int]) {
    var r = TestRandom(seed: 2)
    let (cin, cout, h, w) = (3, 5, 9, 8)
    let weight = r.tensor([cout, cin, k, k])
    let bias = r.tensor([cout])
    let x = r.tensor([cin, h, w])
    let conv = Conv2d(weight: weight, bias: bias, stride: stride, padding: (pad[0], pad[1], pad[2], pad[3]))
    let y = conv(x)
    let (oh, ow) = conv.outputSize(height: h, width: w)
    var expected = Tensor(zeros: [cout, oh, ow])
    for o in 0..<cout {
      for oy in 0..<oh {
        for ox in 0..<ow {
          var s = bias.scalars[o]
          for c in 0..<cin {
            for ki in 0..<k {
              for kj in 0..<k {
                let iy = oy * stride + ki - pad[0]
                let ix = ox * stride + kj - pad[1]
                if iy >= 0, iy < h, ix >= 0, ix < w {
                  s += x.scalars[(c * h + iy) * w + ix] * weight.scalars[((o * cin + c) * k + ki) * k + kj]
                }
              }
            }
          }
          expected.scalars[(o * oh + oy) * ow + ox] = s
        }
      }
    }
    expectClose(y, expected, "conv k=\(k) s=\(stride) pad=\(pad)")
  }

  @Test func layerNormAndGroupNormMatchDefinitions() {
    var r = TestRandom(seed: 3)
    let x = r.tensor([3, 10])
    let g = r.tensor([10])
    let b = r.tensor([10])
    var y = Tensor(zeros: [3, 10])
    x.withUnsafeBufferPointer { xp in
      y.withUnsafeMutableBufferPointer { yp in
        LayerNorm(weight: g, bias: b, eps: 1e-5).forward(xp.baseAddress!, rows: 3, into: yp.baseAddress!)
      }
    }
    for row in 0..<3 {
      let v = Array(x.scalars[row * 10..<(row + 1) * 10])
      let mean = v.reduce(0, +) / 10
      let variance = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 10
      for i in 0..<10 {
        let e = (v[i] - mean) / (variance + 1e-5).squareRoot() * g.scalars[i] + b.scalars[i]
        #expect(abs(y.scalars[row * 10 + i] - e) < 1e-5)
      }
    }
    // GroupNorm: 4 channels in 2 groups over 6 positions, with swish.
    let gx = r.tensor([4, 6])
    let gg = r.tensor([4])
    let gb = r.tensor([4])
    var gy = Tensor(zeros: [4, 6])
    gx.withUnsafeBufferPointer { xp in
      gy.withUnsafeMutableBufferPointer { yp in
        GroupNorm(groups: 2, weight: gg, bias: gb, eps: 1e-6).forward(
          xp.baseAddress!, spatial: 6, into: yp.baseAddress!, swish: true)
      }
    }
    for grp in 0..<2 {
      let v = Array(gx.scalars[grp * 12..<(grp + 1) * 12])
      let mean = v.reduce(0, +) / 12
      let variance = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 12
      for i in 0..<12 {
        let c = grp * 2 + i / 6
        let n = (v[i] - mean) / (variance + 1e-6).squareRoot() * gg.scalars[c] + gb.scalars[c]
        #expect(abs(gy.scalars[grp * 12 + i] - n / (1 + exp(-n))) < 1e-5)
      }
    }
  }

  @Test func activationsMatchDefinitions() {
    var xs: [Float] = [-3, -1, -0.5, 0, 0.25, 1, 2.5]
    var q = xs
    xs.withUnsafeMutableBufferPointer { Activation.gelu($0.baseAddress!, count: $0.count) }
    q.withUnsafeMutableBufferPointer { Activation.quickGELU($0.baseAddress!, count: $0.count) }
    // Values of torch.nn.functional.gelu and x*sigmoid(1.702x), computed in float64 by PyTorch 2.13.
    let gelu: [Float] = [-0.0040497, -0.1586553, -0.1542688, 0, 0.1496766, 0.8413447, 2.4844758]
    let quick: [Float] = [-0.0180713, -0.1542042, -0.1496116, 0, 0.1511996, 0.8457958, 2.4650138]
    for i in 0..<gelu.count {
      #expect(abs(xs[i] - gelu[i]) < 1e-5, "gelu[\(i)]")
      #expect(abs(q[i] - quick[i]) < 1e-5, "quickGELU[\(i)]")
    }
  }

  /// Attention against a direct per-head loop, both full causal and one query at a time from a cache.
  @Test func attentionMatchesDirectComputation() {
    var r = TestRandom(seed: 4)
    let (len, heads, hd) = (6, 3, 4)
    let d = heads * hd
    let q = r.tensor([len, d])
    let k = r.tensor([len, d])
    let v = r.tensor([len, d])
    func direct(_ i: Int, _ h: Int) -> [Float] {
      var scores = (0...i).map { j in
        (0..<hd).reduce(Float(0)) { $0 + q.scalars[i * d + h * hd + $1] * k.scalars[j * d + h * hd + $1] }
          / Float(hd).squareRoot()
      }
      let m = scores.max()!
      scores = scores.map { exp($0 - m) }
      let s = scores.reduce(0, +)
      return (0..<hd).map { c in (0...i).reduce(Float(0)) { $0 + scores[$1] / s * v.scalars[$1 * d + h * hd + c] } }
    }
    var out = Tensor(zeros: [len, d])
    var step = Tensor(zeros: [len, d])
    let scratch = FloatPointer.allocate(capacity: len * len)
    defer { scratch.deallocate() }
    q.withUnsafeBufferPointer { qp in
      k.withUnsafeBufferPointer { kp in
        v.withUnsafeBufferPointer { vp in
          out.withUnsafeMutableBufferPointer { op in
            scaledDotProductAttention(
              q: qp.baseAddress!, qStride: d, k: kp.baseAddress!, v: vp.baseAddress!, kvStride: d, out: op.baseAddress!,
              outStride: d, queries: len, keys: len, heads: heads, headDim: hd, causalOffset: 0, scratch: scratch)
          }
          step.withUnsafeMutableBufferPointer { sp in
            for i in 0..<len {
              // Only the first i+1 keys are "in the cache".
              scaledDotProductAttention(
                q: qp.baseAddress! + i * d, qStride: d, k: kp.baseAddress!, v: vp.baseAddress!, kvStride: d,
                out: sp.baseAddress! + i * d, outStride: d, queries: 1, keys: i + 1, heads: heads, headDim: hd,
                causalOffset: nil, scratch: scratch)
            }
          }
        }
      }
    }
    var expected = Tensor(zeros: [len, d])
    for i in 0..<len {
      for h in 0..<heads { for (c, val) in direct(i, h).enumerated() { expected.scalars[i * d + h * hd + c] = val } }
    }
    expectClose(out, expected, "causal attention")
    expectClose(step, expected, "cached attention")
  }

  @Test func upsampleRepeatsEachPixel() {
    let x = Tensor(shape: [1, 2, 2], scalars: [1, 2, 3, 4])
    var y = Tensor(zeros: [1, 4, 4])
    x.withUnsafeBufferPointer { xp in
      y.withUnsafeMutableBufferPointer {
        upsampleNearest2x(xp.baseAddress!, channels: 1, height: 2, width: 2, into: $0.baseAddress!)
      }
    }
    #expect(y.scalars == [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
  }
}
