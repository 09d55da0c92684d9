// The streamed small-batch GEMM (CKernels `ck_gemm_nt_*`, both the AVX-512 and the portable path),
// half-precision conversion, `StreamedLinear` epilogues, weight loading from safetensors (mapped in
// place or copied) and the GPT prior with f16 weights against the float64 reference.
import Foundation
import Testing

@testable import ClipGenEngine

/// `y[r, j] = Σ_k x[r, k]·w[j, k]` in double.
private func referenceProduct(_ x: [Float], _ w: [Float], m: Int, n: Int, k: Int) -> [Double] {
  var y = [Double](repeating: 0, count: m * n)
  for r in 0..<m {
    for j in 0..<n {
      var s = 0.0
      for i in 0..<k { s += Double(x[r * k + i]) * Double(w[j * k + i]) }
      y[r * n + j] = s
    }
  }
  return y
}

@Suite(.serialized) struct StreamedLinearTests {
  /// Every row count 1…17 (register tiles 1…8 and a second block), column counts that leave
  /// remainders for every tile width, depths with and without a 16-lane tail; overwrite and
  /// accumulate; f32 and f16 weights; AVX-512 and AVX2 (where the CPU has them) and portable C.
  @Test(arguments: [2, 1, 0])
  func gemmMatchesDoubleReference(level: Int) {
    CPUKernels.cap(level)
    defer { CPUKernels.cap(nil) }
    var r = TestRandom(seed: 11)
    for (n, k) in [(1, 1), (7, 5), (25, 16), (50, 37), (97, 130)] {
      for m in 1...17 {
        let x = (0..<(m * k)).map { _ in r.uniform() }
        let w = (0..<(n * k)).map { _ in r.uniform() }
        let wHalf = CPUKernels.fromHalf(CPUKernels.toHalf(w))
        for precision in WeightPrecision.allCases {
          let matrix = WeightMatrix(Tensor(shape: [n, k], scalars: w), precision: precision)
          let ref = referenceProduct(x, precision == .f16 ? wHalf : w, m: m, n: n, k: k)
          let start = (0..<(m * n)).map { _ in r.uniform() }
          for accumulate in [false, true] {
            var y = start
            x.withUnsafeBufferPointer { xp in
              y.withUnsafeMutableBufferPointer { yp in
                // Two column ranges, as two threads would run them.
                let split = n / 2
                matrix.multiply(
                  xp.baseAddress!, rows: m, ldx: k, columns: 0..<split, into: yp.baseAddress!, ldy: n,
                  accumulate: accumulate)
                matrix.multiply(
                  xp.baseAddress!, rows: m, ldx: k, columns: split..<n, into: yp.baseAddress!, ldy: n,
                  accumulate: accumulate)
              }
            }
            var worst = 0.0
            for i in 0..<(m * n) {
              let expected = ref[i] + (accumulate ? Double(start[i]) : 0)
              worst = max(worst, abs(Double(y[i]) - expected))
            }
            // Sums of k products of values in [-1, 1] in float: error ≲ k·2⁻²⁴·√k·few.
            #expect(
              worst <= 1e-5 * Double(k),
              "m \(m) n \(n) k \(k) \(precision) accumulate \(accumulate) \(CPUKernels.name): \(worst)")
          }
        }
      }
    }
  }

  @Test func halfConversionMatchesSwiftFloat16() {
    // Every binary16 pattern converts exactly (NaNs stay NaN).
    let all = (0...UInt16.max).map { $0 }
    let floats = CPUKernels.fromHalf(all)
    for (bits, f) in zip(all, floats) {
      let expected = Float(Float16(bitPattern: bits))
      #expect(f.bitPattern == expected.bitPattern || (f.isNaN && expected.isNaN), "half \(bits)")
    }
    // Floats round to nearest even like Swift's Float16(_:), across normals, subnormals, ties,
    // overflow and the specials — through the vector path (16 at a time) and the scalar tail.
    var r = TestRandom(seed: 3)
    var values: [Float] = [
      0, -0, 1, -1, 65504, 65519.99, 65520, 1e6, -1e6, .infinity, -.infinity, 6.1e-5, 5.96e-8, 2.98e-8, 2.9802326e-8,
      1e-9,
    ]
    values += (0..<2000).map { i in r.uniform() * Float(pow(2.0, Double(i % 40 - 28))) }
    // Around and through the half-precision subnormal range.
    values += (0..<200).map { i in Float(bitPattern: 0x3300_0000 + UInt32(i) * 0x2_0000) }
    values += (0..<64).map { i in Float(Float16(bitPattern: UInt16(i * 977))) + Float(0x1p-12) }
    for level in [2, 1, 0] {
      CPUKernels.cap(level)
      let halves = CPUKernels.toHalf(values)
      for (v, h) in zip(values, halves) {
        #expect(h == Float16(v).bitPattern, "\(v) → \(h), Swift \(Float16(v).bitPattern) (\(CPUKernels.name))")
      }
      let back = CPUKernels.fromHalf(all)
      #expect(zip(back, floats).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) })
    }
    CPUKernels.cap(nil)
    #expect(CPUKernels.fromHalf(CPUKernels.toHalf([.nan]))[0].isNaN)
  }

  /// At every kernel level (level 0 sends f32 weights to OpenBLAS, sgemv at one row).
  @Test(arguments: [2, 1, 0])
  func epiloguesMatchLinearWithOpenBLAS(level: Int) {
    CPUKernels.cap(level)
    defer { CPUKernels.cap(nil) }
    var r = TestRandom(seed: 5)
    let (n, k) = (200, 72)
    let w = r.tensor([n, k])
    let b = r.tensor([n])
    let reference = Linear(weight: w, bias: b)
    for precision in WeightPrecision.allCases {
      let layer = StreamedLinear(weight: WeightMatrix(w, precision: precision), bias: b.scalars)
      let tolerance: Float = precision == .f32 ? 1e-5 : 3e-3
      for rows in [1, 3, 8, 16, 40] {  // 40: past the streamed limit (OpenBLAS for f32)
        let x = r.tensor([rows, k])
        let expected = reference(x)
        var store = Tensor(zeros: [rows, n])
        var gelu = Tensor(zeros: [rows, n])
        let residual = r.tensor([rows, n])
        var accumulated = residual
        x.withUnsafeBufferPointer { xp in
          store.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, rows: rows, into: $0.baseAddress!) }
          gelu.withUnsafeMutableBufferPointer {
            layer.forward(xp.baseAddress!, rows: rows, into: $0.baseAddress!, epilogue: .gelu)
          }
          accumulated.withUnsafeMutableBufferPointer {
            layer.forward(xp.baseAddress!, rows: rows, into: $0.baseAddress!, epilogue: .accumulate)
          }
        }
        expectClose(store, expected, relative: tolerance, "\(precision) rows \(rows) store \(CPUKernels.name)")
        let exactGELU = Tensor(
          shape: expected.shape,
          scalars: expected.scalars.map { v in
            Float(0.5 * Double(v) * (1 + erf(Double(v) / 2.0.squareRoot())))
          })
        expectClose(gelu, exactGELU, relative: tolerance, "\(precision) rows \(rows) gelu")
        let sum = Tensor(shape: expected.shape, scalars: zip(expected.scalars, residual.scalars).map { $0 + $1 })
        expectClose(accumulated, sum, relative: tolerance, "\(precision) rows \(rows) accumulate")
      }
    }
  }

  @Test func safetensorsWeightsAreMappedWhenStoredInThePrecisionAsked() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    var r = TestRandom(seed: 9)
    let w = r.tensor([30, 20])
    for storage in [SafeTensorsWriter.Storage.f32, .f16] {
      let url = dir.appendingPathComponent("w-\(storage.rawValue).safetensors")
      try SafeTensorsWriter.write([("a.weight", w)], storage: storage, to: url)
      let file = try SafeTensorsFile(url: url)
      let stored: WeightPrecision = storage == .f32 ? .f32 : .f16
      for wanted in [nil, WeightPrecision.f32, .f16] {
        let m = try WeightMatrix.load(file, "a.weight", rows: 30, columns: 20, precision: wanted)
        #expect(m.precision == (wanted ?? stored))
        #expect(m.isMapped == (m.precision == stored), "\(storage) as \(String(describing: wanted))")
        // Half precision is exactly the rounded values, however it was reached.
        let expected =
          m.precision == .f16 || storage == .f16
          ? Tensor(shape: w.shape, scalars: CPUKernels.fromHalf(CPUKernels.toHalf(w.scalars))) : w
        #expect(m.tensor() == expected, "\(storage) → \(m.precision)")
      }
      #expect(throws: WeightError.self) {
        try WeightMatrix.load(file, "a.weight", rows: 20, columns: 30, precision: nil)
      }
      #expect(throws: WeightError.self) {
        try WeightMatrix.load(file, "missing", rows: 30, columns: 20, precision: nil)
      }
    }
    // A non-finite value is rejected on the mapped path too, naming the tensor.
    var bad = w
    bad.scalars[17] = .nan
    let url = dir.appendingPathComponent("bad.safetensors")
    try SafeTensorsWriter.write([("a.weight", bad)], to: url)
    for precision in WeightPrecision.allCases {  // mapped as is, and converted from the mapping
      do {
        _ = try WeightMatrix.load(
          try SafeTensorsFile(url: url), "a.weight", rows: 30, columns: 20, precision: precision)
        Issue.record("NaN weight accepted (\(precision))")
      } catch {
        #expect("\(error)".contains("a.weight") && "\(error)".contains("17"))
      }
    }
  }

  /// f16 weights (products in f32) against the float64 reference: the tolerance is 2e-3 of the
  /// largest logit (f16 keeps 11 significant bits, a relative rounding of 4.9e-4 per weight;
  /// the f32 model is held to 1e-4 in GPTParityTests).
  @Test func gptWithHalfWeightsStaysCloseToReference() throws {
    let f = try GPTFixture()
    let half = try ConditionalGPT.load(directory: GPTFixture.modelDirectory, precision: .f16)
    #expect(half.weightPrecision == .f16 && f.model.weightPrecision == .f32)
    let ref = try f.io.tensor("logits")
    let out = half.logits(tokens: f.prefix, conditions: f.conditions)
    print("GPT f16 weights, full forward: max|diff|/max|ref| = \(gptRelativeError(out, ref))")
    expectParity(out, ref, relative: 2e-3, "f16 full-forward logits")
    // The decoding session (the streamed kernel at 2 rows) agrees with the f32 one just as closely.
    let d32 = GPTDecoder(model: f.model, batch: 2)
    let d16 = GPTDecoder(model: half, batch: 2)
    var a = d32.start(conditions: f.conditions)
    var b = d16.start(conditions: f.conditions)
    for step in 0..<20 {
      expectParity(b, a, relative: 2e-3, "f16 decoding step \(step)")
      let next = [f.prefix[0][step], f.prefix[1][step]]
      a = d32.step(tokens: next)
      b = d16.step(tokens: next)
    }
  }
}
