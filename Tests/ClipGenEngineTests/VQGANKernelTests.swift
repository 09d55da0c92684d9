// The VQGAN's bordered-layout kernels against the engine's plain kernels (`Conv2d`, `GroupNorm`,
// `upsampleNearest2x`), which KernelTests checks against loop-by-loop PyTorch semantics.
import Foundation
import Testing

@testable import ClipGenEngine

@Suite struct VQGANKernelTests {
  /// A bordered buffer (with slack) holding `x` `[C, H, W]`; its borders and slack hold `fill`,
  /// so a kernel that reads them where it should not shows up.
  static func bordered(_ x: Tensor, fill: Float = 0) -> (buffer: [Float], geometry: VQPlaneGeometry) {
    let g = VQPlaneGeometry(height: x.shape[1], width: x.shape[2])
    var buffer = [Float](repeating: fill, count: x.shape[0] * g.plane + g.slack)
    buffer.withUnsafeMutableBufferPointer { b in
      x.withUnsafeBufferPointer { VQKernels.pad($0.baseAddress!, g, channels: x.shape[0], into: b.baseAddress!) }
    }
    return (buffer, g)
  }

  static func interior(_ buffer: [Float], _ g: VQPlaneGeometry, channels: Int) -> Tensor {
    var out = Tensor(zeros: [channels, g.height, g.width])
    buffer.withUnsafeBufferPointer { b in
      out.withUnsafeMutableBufferPointer {
        VQKernels.unpad(b.baseAddress!, g, channels: channels, into: $0.baseAddress!)
      }
    }
    return out
  }

  /// Border values of a bordered buffer (all must be zero).
  static func borderMax(_ buffer: [Float], _ g: VQPlaneGeometry, channels: Int) -> Float {
    var m: Float = 0
    for c in 0..<channels {
      for y in 0..<(g.height + 2) {
        for x in 0..<(g.width + 2) where y == 0 || x == 0 || y == g.height + 1 || x == g.width + 1 {
          m = max(m, abs(buffer[c * g.plane + y * g.rowStride + x]))
        }
      }
    }
    return m
  }

  @Test(arguments: [
    (cin: 32, cout: 40, h: 10, w: 36, stride: 1, winograd: true),  // Winograd, even sizes
    (cin: 32, cout: 40, h: 9, w: 13, stride: 1, winograd: true),  // Winograd, odd sizes
    (cin: 32, cout: 32, h: 1, w: 1, stride: 1, winograd: true),  // Winograd, a single pixel
    (cin: 32, cout: 40, h: 47, w: 49, stride: 1, winograd: true),  // Winograd in blocks across workers
    (cin: 32, cout: 40, h: 9, w: 13, stride: 1, winograd: false),  // shifted GEMMs
    (cin: 3, cout: 32, h: 8, w: 11, stride: 1, winograd: true),  // im2col (few input channels)
    (cin: 32, cout: 3, h: 7, w: 21, stride: 1, winograd: true),  // direct (few output channels)
    (cin: 16, cout: 16, h: 10, w: 14, stride: 2, winograd: true),  // Downsample
  ])
  func conv3x3MatchesConv2d(cin: Int, cout: Int, h: Int, w: Int, stride: Int, winograd: Bool) {
    var r = TestRandom(seed: UInt64(cin * 100 + cout + h))
    let weight = r.tensor([cout, cin, 3, 3])
    let bias = r.tensor([cout])
    let x = r.tensor([cin, h, w])
    let reference =
      stride == 1
      ? Conv2d(weight: weight, bias: bias, padding: 1)(x)
      : Conv2d(weight: weight, bias: bias, stride: 2, padding: (0, 0, 1, 1))(x)
    let conv = VQConv3x3(weight: weight, bias: bias, stride: stride, winograd: winograd)
    if conv.path == .winograd && h > 40 {
      #expect(conv.winogradPlan(VQPlaneGeometry(height: h, width: w)).blocks > 1)
    }
    let (input, g) = Self.bordered(x)
    let og = conv.outputGeometry(g)
    #expect([og.height, og.width] == Array(reference.shape.dropFirst()))
    var out = [Float](repeating: .nan, count: cout * og.plane + og.slack)
    var scratch = [Float](repeating: 0, count: max(conv.scratchNeeded(g), 1))
    input.withUnsafeBufferPointer { i in
      out.withUnsafeMutableBufferPointer { o in
        scratch.withUnsafeMutableBufferPointer { s in
          conv.forward(i.baseAddress!, g, into: o.baseAddress!, scratch: s.baseAddress!)
        }
      }
    }
    expectClose(Self.interior(out, og, channels: cout), reference, "conv \(conv.path) \(cin)→\(cout) stride \(stride)")
    #expect(Self.borderMax(out, og, channels: cout) == 0, "borders must be zero after \(conv.path)")

    // Accumulating into a residual adds the residual.
    if stride == 1 {
      let residual = r.tensor([cout, h, w])
      var acc = Self.bordered(residual).buffer
      input.withUnsafeBufferPointer { i in
        acc.withUnsafeMutableBufferPointer { o in
          scratch.withUnsafeMutableBufferPointer { s in
            conv.forward(i.baseAddress!, g, into: o.baseAddress!, accumulate: true, scratch: s.baseAddress!)
          }
        }
      }
      var expected = reference
      for i in 0..<expected.count { expected.scalars[i] += residual.scalars[i] }
      expectClose(Self.interior(acc, og, channels: cout), expected, "accumulating conv \(conv.path)")
      #expect(Self.borderMax(acc, og, channels: cout) == 0)

      // Without finishing, a second GEMM can add in before one `finish` adds the combined bias
      // (the ResnetBlock shortcut); the conv's own bias must then not be added twice.
      var partial = [Float](repeating: 0, count: cout * og.plane + og.slack)
      input.withUnsafeBufferPointer { i in
        partial.withUnsafeMutableBufferPointer { o in
          scratch.withUnsafeMutableBufferPointer { s in
            conv.forward(i.baseAddress!, g, into: o.baseAddress!, finishOutput: false, scratch: s.baseAddress!)
            bias.withUnsafeBufferPointer { VQKernels.finish(o.baseAddress!, channels: cout, og, bias: $0.baseAddress!) }
          }
        }
      }
      expectClose(Self.interior(partial, og, channels: cout), reference, "unfinished conv \(conv.path) + finish")
    }
  }

  @Test func directConvWritesCompactOutput() {
    var r = TestRandom(seed: 9)
    let weight = r.tensor([5, 32, 3, 3])
    let bias = r.tensor([5])
    let x = r.tensor([32, 6, 19])
    let conv = VQConv3x3(weight: weight, bias: bias)
    #expect(conv.path == .direct)
    let (input, g) = Self.bordered(x)
    var out = Tensor(zeros: [5, 6, 19])
    var spare = [Float](repeating: 0, count: 5 * g.plane + g.slack)
    input.withUnsafeBufferPointer { i in
      out.withUnsafeMutableBufferPointer { o in
        spare.withUnsafeMutableBufferPointer { s in
          conv.forwardCompact(i.baseAddress!, g, into: o.baseAddress!, spare: s.baseAddress!, scratch: s.baseAddress!)
        }
      }
    }
    expectClose(out, Conv2d(weight: weight, bias: bias, padding: 1)(x), "direct conv, compact output")
  }

  @Test(arguments: [false, true])
  func groupNormMatchesEngineGroupNorm(swish: Bool) {
    var r = TestRandom(seed: 4)
    let (c, h, w) = (64, 5, 11)
    var x = r.tensor([c, h, w])
    for i in 0..<x.count { x.scalars[i] = x.scalars[i] * 3 + 0.5 }
    let gamma = r.tensor([c])
    let beta = r.tensor([c])
    var expected = Tensor(zeros: [c, h, w])
    x.withUnsafeBufferPointer { xp in
      expected.withUnsafeMutableBufferPointer {
        GroupNorm(groups: 32, weight: gamma, bias: beta, eps: 1e-6).forward(
          xp.baseAddress!, spatial: h * w, into: $0.baseAddress!, swish: swish)
      }
    }
    let (input, g) = Self.bordered(x, fill: 0)
    var out = [Float](repeating: .nan, count: c * g.plane + g.slack)
    var compact = Tensor(zeros: [c, h, w])
    let norm = VQGroupNorm(gamma: gamma.scalars, beta: beta.scalars, eps: 1e-6)
    input.withUnsafeBufferPointer { i in
      out.withUnsafeMutableBufferPointer { norm.forward(i.baseAddress!, g, swish: swish, into: $0.baseAddress!) }
      compact.withUnsafeMutableBufferPointer {
        norm.forward(i.baseAddress!, g, swish: swish, into: $0.baseAddress!, compact: true)
      }
    }
    expectClose(Self.interior(out, g, channels: c), expected, relative: 1e-5, "group norm swish=\(swish)")
    expectClose(compact, expected, relative: 1e-5, "group norm, compact output")
    #expect(Self.borderMax(out, g, channels: c) == 0)
  }

  @Test func upsampleMatchesEngineUpsample() {
    var r = TestRandom(seed: 5)
    let x = r.tensor([6, 5, 7])
    var expected = Tensor(zeros: [6, 10, 14])
    x.withUnsafeBufferPointer { xp in
      expected.withUnsafeMutableBufferPointer {
        upsampleNearest2x(xp.baseAddress!, channels: 6, height: 5, width: 7, into: $0.baseAddress!)
      }
    }
    let (input, g) = Self.bordered(x)
    let og = g.doubled()
    var out = [Float](repeating: .nan, count: 6 * og.plane + og.slack)
    input.withUnsafeBufferPointer { i in
      out.withUnsafeMutableBufferPointer { VQKernels.upsample2x(i.baseAddress!, g, channels: 6, into: $0.baseAddress!) }
    }
    #expect(Self.interior(out, og, channels: 6) == expected)
    #expect(Self.borderMax(out, og, channels: 6) == 0)
  }

  /// The engine's one vector exp (VectorMath.swift), over its whole range, and the swish built on
  /// it (a 16-lane pass plus a tail).
  @Test func expIsAccurate() {
    var worst: Float = 0
    var v: Float = -87
    while v < 88 {
      var lanes = SIMD16<Float>()
      for j in 0..<16 { lanes[j] = v + Float(j) * 0.0137 }
      let e = vectorExp(lanes)
      for j in 0..<16 where lanes[j] < 88 {
        let exact = Foundation.exp(Double(lanes[j]))
        worst = max(worst, Float(abs(Double(e[j]) - exact) / exact))
      }
      v += 16 * 0.0137
    }
    #expect(worst < 5e-7, "exp relative error \(worst)")
    #expect(vectorExp(SIMD16(repeating: -1000))[0] < 1e-37)
    #expect(vectorExp(SIMD16(repeating: 1000))[0] == vectorExp(SIMD16(repeating: 88))[0])
    let inputs: [Float] = [-200, -20, -1, 0, 1, 20, 200, .infinity] + (0..<16).map { Float($0) - 8 }
    var swished = [Float](repeating: 0, count: inputs.count)
    swished.withUnsafeMutableBufferPointer { o in
      VQKernels.affineSwishRow(inputs, into: o.baseAddress!, count: inputs.count, scale: 1, shift: 0)
    }
    for (x, y) in zip(inputs[8...], swished[8...]) {
      #expect(abs(y - x / (1 + Foundation.exp(-x))) < 1e-6)
    }
    #expect(abs(swished[0]) < 1e-30)
    #expect(abs(swished[2] - (-1 / (1 + Float(M_E)))) < 1e-6)
    #expect(swished[3] == 0)
    #expect(abs(swished[6] - 200) < 1e-4)
    #expect(swished[7] == .infinity)
  }
}
