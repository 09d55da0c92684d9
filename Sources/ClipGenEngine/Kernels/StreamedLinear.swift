// Dense layers for few rows at a time (autoregressive decoding), with weights streamed once per
// call: `y = x · Wᵀ + b` where W stays in PyTorch's `nn.Linear` layout `[out, in]`, stored as f32 or
// f16, either in memory we own or straight in a memory-mapped safetensors file. The products run in
// CKernels (`ck_gemm_nt_*`: AVX-512 with F16C, or portable C), split over output columns across
// threads; bias, GELU and residual epilogues are applied by the thread that wrote the columns.
import CKernels
import COpenBLAS
import Foundation

/// How a weight matrix is stored for the products.
public enum WeightPrecision: String, Sendable, Codable, CaseIterable {
  /// IEEE single precision: exact PyTorch weights.
  case f32
  /// IEEE half precision, products and sums in single precision: half the bytes to stream.
  case f16
}

/// How a front end asks for the prior's weights to be held while sampling.
public enum PriorWeights: String, Sendable, CaseIterable {
  /// Half precision (products in single precision): half the bytes streamed per token, the
  /// default of `clipgen generate` and the studio (f16 weights move the logits by ~1e-3 of their
  /// range and agree with f32 on the argmax at every position measured, `clipgen bench`).
  case f16
  /// Single precision: PyTorch's values exactly.
  case f32
  /// As the weight file stores them.
  case file

  /// The precision for `ClipGenModel(directory:gptPrecision:)` (nil: the file's).
  public var precision: WeightPrecision? {
    switch self {
    case .f16: return .f16
    case .f32: return .f32
    case .file: return nil
    }
  }
}

/// A read-only `[rows, columns]` row-major weight matrix in f32 or f16, owned or borrowed from a
/// memory mapping (kept alive by `owner`). Immutable after init.
public final class WeightMatrix: @unchecked Sendable {
  public let rows: Int
  public let columns: Int
  public let precision: WeightPrecision
  /// Whether the values are read in place from a memory-mapped file (not copied).
  public let isMapped: Bool
  let base: UnsafeRawPointer
  private let allocation: UnsafeMutableRawPointer?
  private let owner: AnyObject?

  public var byteCount: Int { rows * columns * (precision == .f32 ? 4 : 2) }

  /// Copies `tensor` (`[rows, columns]`) into storage of the given precision.
  public init(_ tensor: Tensor, precision: WeightPrecision) {
    precondition(tensor.shape.count == 2, "WeightMatrix: expected a 2-D tensor, got \(tensor.shape)")
    rows = tensor.shape[0]
    columns = tensor.shape[1]
    self.precision = precision
    let count = rows * columns
    let p = UnsafeMutableRawPointer.allocate(byteCount: max(count * (precision == .f32 ? 4 : 2), 64), alignment: 64)
    tensor.withUnsafeBufferPointer { src in
      switch precision {
      case .f32: p.copyMemory(from: src.baseAddress!, byteCount: count * 4)
      case .f16: ck_f32_to_f16(src.baseAddress!, p.assumingMemoryBound(to: UInt16.self), count)
      }
    }
    allocation = p
    base = UnsafeRawPointer(p)
    owner = nil
    isMapped = false
  }

  /// Converts `rows·columns` little-endian f32 values at `pointer` (any alignment) to owned f16.
  private init(converting pointer: UnsafeRawPointer, rows: Int, columns: Int) {
    self.rows = rows
    self.columns = columns
    precision = .f16
    let count = rows * columns
    let p = UnsafeMutableRawPointer.allocate(byteCount: max(count * 2, 64), alignment: 64)
    let half = p.assumingMemoryBound(to: UInt16.self)
    if Int(bitPattern: pointer) % 4 == 0 {
      ck_f32_to_f16(pointer.assumingMemoryBound(to: Float.self), half, count)
    } else {
      var row = [Float](repeating: 0, count: columns)
      for r in 0..<rows {
        row.withUnsafeMutableBytes {
          $0.copyMemory(from: UnsafeRawBufferPointer(start: pointer + r * columns * 4, count: columns * 4))
        }
        row.withUnsafeBufferPointer { ck_f32_to_f16($0.baseAddress!, half + r * columns, columns) }
      }
    }
    allocation = p
    base = UnsafeRawPointer(p)
    owner = nil
    isMapped = false
  }

  /// Tells the kernel the whole pages inside `bytes` (part of a read-only file mapping) are no
  /// longer needed, so they leave the resident set (they would be read again from the file).
  private static func releasePages(_ bytes: UnsafeRawBufferPointer) {
    guard let start = bytes.baseAddress else { return }
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let lo = (Int(bitPattern: start) + page - 1) / page * page
    let hi = (Int(bitPattern: start) + bytes.count) / page * page
    guard hi > lo, let p = UnsafeMutableRawPointer(bitPattern: lo) else { return }
    _ = madvise(p, hi - lo, Int32(MADV_DONTNEED))
  }

  /// Borrows `count` values at `pointer`, valid as long as `owner` lives (a mapped file).
  init(borrowing pointer: UnsafeRawPointer, rows: Int, columns: Int, precision: WeightPrecision, owner: AnyObject) {
    self.rows = rows
    self.columns = columns
    self.precision = precision
    base = pointer
    allocation = nil
    self.owner = owner
    isMapped = true
  }

  deinit { allocation?.deallocate() }

  /// Reads a weight matrix named `name` with shape `[rows, columns]` from `source`. From a
  /// safetensors file whose tensor is already stored in `precision` (F32 or F16), the values are
  /// used in place from the mapping; otherwise they are converted into a copy. `precision` nil keeps
  /// the file's precision (F16 stays f16, everything else becomes f32). Non-finite values are
  /// rejected either way.
  public static func load(
    _ source: WeightSource, _ name: String, rows: Int, columns: Int, precision: WeightPrecision?
  ) throws -> WeightMatrix {
    if let file = source as? SafeTensorsFile, let entry = file.entries[name] {
      guard entry.shape == [rows, columns] else {
        throw WeightError.shapeMismatch(file: file.path, tensor: name, expected: [rows, columns], found: entry.shape)
      }
      let stored: WeightPrecision? = entry.dtype == .f32 ? .f32 : entry.dtype == .f16 ? .f16 : nil
      let wanted = precision ?? stored ?? .f32
      if let stored, stored == wanted {
        let mapped = try file.withRawBytes(name) { raw, _ -> WeightMatrix? in
          guard let p = raw.baseAddress, Int(bitPattern: p) % (stored == .f32 ? 4 : 2) == 0 else { return nil }
          if let bad = firstNonFinite(p, count: rows * columns, precision: stored) {
            throw WeightError.corruptTensor(
              file: file.path, tensor: name, reason: "value at index \(bad) is not finite")
          }
          return WeightMatrix(borrowing: p, rows: rows, columns: columns, precision: stored, owner: file)
        }
        if let mapped { return mapped }
      }
      if entry.dtype == .f32 && wanted == .f16 {
        // Converted straight from the mapping, whose pages are then released: the f32 file never
        // sits in memory next to its f16 copy.
        return try file.withRawBytes(name) { raw, _ in
          let p = raw.baseAddress!
          if let bad = firstNonFinite(p, count: rows * columns, precision: .f32, aligned: Int(bitPattern: p) % 4 == 0) {
            throw WeightError.corruptTensor(
              file: file.path, tensor: name, reason: "value at index \(bad) is not finite")
          }
          let m = WeightMatrix(converting: p, rows: rows, columns: columns)
          releasePages(raw)
          return m
        }
      }
      return WeightMatrix(try file.tensor(name, shape: [rows, columns]), precision: wanted)
    }
    return WeightMatrix(try source.tensor(name, shape: [rows, columns]), precision: precision ?? .f32)
  }

  /// Index of the first NaN or infinity, checked on the exponent bits (all ones).
  private static func firstNonFinite(
    _ p: UnsafeRawPointer, count: Int, precision: WeightPrecision, aligned: Bool = true
  ) -> Int? {
    switch precision {
    case .f32 where !aligned:
      return (0..<count).first { (~p.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self) & 0x7F80_0000) == 0 }
    case .f32:
      let u = p.assumingMemoryBound(to: UInt32.self)
      var any: UInt32 = 0
      var i = 0
      // Branch-free scan in blocks; locate the culprit only when a block has one.
      while i < count {
        let end = min(i + 4096, count)
        for j in i..<end { any |= (~u[j] & 0x7F80_0000) == 0 ? 1 : 0 }
        if any != 0 { return (i..<end).first { (~u[$0] & 0x7F80_0000) == 0 } }
        i = end
      }
    case .f16:
      let u = p.assumingMemoryBound(to: UInt16.self)
      var any: UInt16 = 0
      var i = 0
      while i < count {
        let end = min(i + 4096, count)
        for j in i..<end { any |= (~u[j] & 0x7C00) == 0 ? 1 : 0 }
        if any != 0 { return (i..<end).first { (~u[$0] & 0x7C00) == 0 } }
        i = end
      }
    }
    return nil
  }

  /// The values as a float tensor (for tests and diagnostics).
  public func tensor() -> Tensor {
    var out = [Float](repeating: 0, count: rows * columns)
    out.withUnsafeMutableBufferPointer { dst in
      switch precision {
      case .f32: UnsafeMutableRawPointer(dst.baseAddress!).copyMemory(from: base, byteCount: rows * columns * 4)
      case .f16: ck_f16_to_f32(base.assumingMemoryBound(to: UInt16.self), dst.baseAddress!, rows * columns)
      }
    }
    return Tensor(shape: [rows, columns], scalars: out)
  }

  /// `y[r, j] (+)= Σ_k x[r, k]·W[j, k]` for `r < m`, `j` in `columns` (output columns, i.e. rows of W).
  @inline(__always)
  func multiply(
    _ x: UnsafePointer<Float>, rows m: Int, ldx: Int, columns range: Range<Int>, into y: FloatPointer, ldy: Int,
    accumulate: Bool
  ) {
    switch precision {
    case .f32:
      ck_gemm_nt_f32(
        Int32(m), Int32(range.lowerBound), Int32(range.upperBound), Int32(columns), x, ldx,
        base.assumingMemoryBound(to: Float.self), columns, y, ldy, accumulate ? 1 : 0)
    case .f16:
      ck_gemm_nt_f16(
        Int32(m), Int32(range.lowerBound), Int32(range.upperBound), Int32(columns), x, ldx,
        base.assumingMemoryBound(to: UInt16.self), columns, y, ldy, accumulate ? 1 : 0)
    }
  }
}

/// What happens to the product before it is stored.
public enum LinearEpilogue: Sendable {
  /// `y = x·Wᵀ + b`.
  case store
  /// `y = gelu(x·Wᵀ + b)`, exact-erf GELU.
  case gelu
  /// `y += x·Wᵀ + b` (a residual connection: `y` holds the residual stream).
  case accumulate
}

/// `y = x · Wᵀ + b` (PyTorch `nn.Linear`) for a few rows at a time, weights streamed once per call.
public struct StreamedLinear: Sendable {
  public let weight: WeightMatrix
  public let bias: [Float]?
  public var inFeatures: Int { weight.columns }
  public var outFeatures: Int { weight.rows }

  public init(weight: WeightMatrix, bias: [Float]?) {
    if let bias {
      precondition(bias.count == weight.rows, "StreamedLinear: bias of \(bias.count) for \(weight.rows) outputs")
    }
    self.weight = weight
    self.bias = bias
  }

  /// Loads `name.weight` (`[out, in]`) and `name.bias` (`[out]`, when `hasBias`).
  public static func load(
    _ source: WeightSource, _ name: String, out: Int, in inWidth: Int, precision: WeightPrecision?,
    weightName: String? = nil, biasName: String? = nil
  ) throws -> StreamedLinear {
    let w = try WeightMatrix.load(
      source, weightName ?? "\(name).weight", rows: out, columns: inWidth, precision: precision)
    let b = try source.tensor(biasName ?? "\(name).bias", shape: [out]).scalars
    return StreamedLinear(weight: w, bias: b)
  }

  /// Rows at or below which the streamed kernel beats OpenBLAS sgemm for f32 weights (sgemm
  /// re-packs the weights on every call; above this the packing pays for itself).
  static let smallRowLimit = 16

  /// Runs `rows` packed input rows (`inFeatures` wide) into `y` (`outFeatures` wide), applying
  /// `epilogue`. Large products are split over output columns across the CPU's threads.
  public func forward(_ x: UnsafePointer<Float>, rows: Int, into y: FloatPointer, epilogue: LinearEpilogue = .store) {
    let n = outFeatures
    let k = inFeatures
    if weight.precision == .f32 && (rows > Self.smallRowLimit || !CPUKernels.hasVectorProducts) {
      // Many rows (a prompt or a full forward), or a CPU without a vector path here: OpenBLAS.
      forwardBLAS(x, rows: rows, into: y, epilogue: epilogue)
      return
    }
    let chunks = Self.columnChunks(columns: n, work: rows * n * k)
    let bias = self.bias
    let w = weight
    let body = { (chunk: Int) in
      let lo = Self.chunkBound(chunk, of: chunks, columns: n)
      let hi = Self.chunkBound(chunk + 1, of: chunks, columns: n)
      guard hi > lo else { return }
      w.multiply(x, rows: rows, ldx: k, columns: lo..<hi, into: y, ldy: n, accumulate: epilogue == .accumulate)
      Self.finish(y, rows: rows, width: n, columns: lo..<hi, bias: bias, epilogue: epilogue)
    }
    if chunks == 1 {
      body(0)
    } else {
      concurrentPerform(chunks, body)
    }
  }

  private func forwardBLAS(_ x: UnsafePointer<Float>, rows: Int, into y: FloatPointer, epilogue: LinearEpilogue) {
    let n = outFeatures
    let k = inFeatures
    let w = weight.base.assumingMemoryBound(to: Float.self)
    let beta: Float = epilogue == .accumulate ? 1 : 0
    if rows == 1 {
      sgemv(m: n, n: k, a: w, lda: k, x: x, beta: beta, y: y)
    } else {
      sgemm(transB: true, m: rows, n: n, k: k, a: x, lda: k, b: w, ldb: k, beta: beta, c: y, ldc: n)
    }
    Self.finish(y, rows: rows, width: n, columns: 0..<n, bias: bias, epilogue: epilogue)
  }

  /// Bias and activation on columns `columns` of every row.
  @inline(__always)
  static func finish(
    _ y: FloatPointer, rows: Int, width n: Int, columns: Range<Int>, bias: [Float]?, epilogue: LinearEpilogue
  ) {
    let count = columns.count
    bias.withOptionalPointer { b in
      for r in 0..<rows {
        let row = y + r * n + columns.lowerBound
        let rb = b.map { $0 + columns.lowerBound }
        switch epilogue {
        case .gelu: geluWithBias(row, bias: rb, count: count)
        case .store, .accumulate: if let rb { addInPlace(row, rb, count: count) }
        }
      }
    }
  }

  /// How many column ranges to split a product into: one per thread when there is enough work
  /// (a few more than threads, so a thread delayed by other processes does not hold up the rest).
  static func columnChunks(columns: Int, work: Int) -> Int {
    let threads = ProcessInfo.processInfo.activeProcessorCount
    guard threads > 1, work >= 1 << 18 else { return 1 }
    return max(1, min(threads * 2, columns / 48))
  }

  /// Start of chunk `i` of `chunks` over `columns`, on a multiple of 24 (the kernels' tile width).
  @inline(__always)
  static func chunkBound(_ i: Int, of chunks: Int, columns: Int) -> Int {
    if i >= chunks { return columns }
    let raw = columns * i / chunks
    return raw - raw % 24
  }
}

extension Optional where Wrapped == [Float] {
  /// The array's base pointer (nil when the optional is nil) for the duration of `body`.
  @inline(__always)
  func withOptionalPointer<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
    switch self {
    case .some(let a): return a.withUnsafeBufferPointer { body($0.baseAddress) }
    case .none: return body(nil)
    }
  }
}

/// The CPU kernels in use, for reports: "avx512" or "portable".
public enum CPUKernels {
  public static var name: String { ["portable", "avx2", "avx512"][Int(ck_simd_level())] }

  /// Caps the kernel set (0 portable C, 1 AVX2, 2 AVX-512; nil: whatever the CPU has).
  /// Process-wide; for tests that compare the paths.
  static func cap(_ level: Int?) { ck_set_simd_level(Int32(level ?? -1)) }

  /// Whether the small-batch products have a vector path on this CPU.
  static var hasVectorProducts: Bool { ck_simd_level() >= 1 }

  /// binary16 conversions (round to nearest even), exposed for tests.
  static func toHalf(_ values: [Float]) -> [UInt16] {
    var out = [UInt16](repeating: 0, count: values.count)
    values.withUnsafeBufferPointer { s in
      out.withUnsafeMutableBufferPointer { ck_f32_to_f16(s.baseAddress!, $0.baseAddress!, s.count) }
    }
    return out
  }

  static func fromHalf(_ values: [UInt16]) -> [Float] {
    var out = [Float](repeating: 0, count: values.count)
    values.withUnsafeBufferPointer { s in
      out.withUnsafeMutableBufferPointer { ck_f16_to_f32(s.baseAddress!, $0.baseAddress!, s.count) }
    }
    return out
  }
}
