// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length, a JSON header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
// {...}}`, then the raw little-endian data. The file is memory-mapped; the header and every offset
// are validated before any tensor is read.
import Foundation

/// Errors from reading weights; each names the file and, where there is one, the tensor.
public enum WeightError: Error, CustomStringConvertible, Equatable {
  case unreadable(file: String, reason: String)
  case corruptHeader(file: String, reason: String)
  case corruptTensor(file: String, tensor: String, reason: String)
  case missingTensor(file: String, tensor: String)
  case shapeMismatch(file: String, tensor: String, expected: [Int], found: [Int])
  case unsupportedDType(file: String, tensor: String, dtype: String)

  public var description: String {
    switch self {
    case .unreadable(let file, let reason): return "\(file): cannot read weights: \(reason)"
    case .corruptHeader(let file, let reason): return "\(file): corrupt safetensors header: \(reason)"
    case .corruptTensor(let file, let tensor, let reason): return "\(file): tensor '\(tensor)': \(reason)"
    case .missingTensor(let file, let tensor): return "\(file): missing tensor '\(tensor)'"
    case .shapeMismatch(let file, let tensor, let expected, let found):
      return "\(file): tensor '\(tensor)' has shape \(found), expected \(expected)"
    case .unsupportedDType(let file, let tensor, let dtype):
      return
        "\(file): tensor '\(tensor)' has unsupported dtype \(dtype) (supported: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)"
    }
  }
}

/// Element types of a safetensors file.
public enum DType: String, Sendable, CaseIterable {
  case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
  case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

  public var byteSize: Int {
    switch self {
    case .f64, .i64: return 8
    case .f32, .i32: return 4
    case .f16, .bf16, .i16: return 2
    case .i8, .u8, .bool: return 1
    }
  }
}

/// A read-only memory mapping of a whole file, unmapped when released. Immutable after init.
package final class MappedFile: @unchecked Sendable {
  package let bytes: UnsafeRawBufferPointer

  package init(path: String) throws {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw WeightError.unreadable(file: path, reason: String(cString: strerror(errno))) }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else {
      throw WeightError.unreadable(file: path, reason: String(cString: strerror(errno)))
    }
    if (st.st_mode & S_IFMT) == S_IFDIR { throw WeightError.unreadable(file: path, reason: "is a directory") }
    let size = Int(st.st_size)
    if size == 0 {
      bytes = UnsafeRawBufferPointer(start: nil, count: 0)
      return
    }
    guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
      throw WeightError.unreadable(file: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
    }
    bytes = UnsafeRawBufferPointer(start: p, count: size)
  }

  deinit {
    if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
  }
}

/// Any source of named tensors a model loads from: a safetensors file, several of them, a key-mapped
/// view, a PyTorch checkpoint.
public protocol WeightSource: Sendable {
  /// Shown in error messages (usually the file path).
  var sourceDescription: String { get }
  /// Every tensor name available.
  var tensorNames: [String] { get }
  /// The shape of a tensor, or nil when absent.
  func shape(of name: String) -> [Int]?
  /// A tensor converted to `Float`; throws `missingTensor` when absent.
  func tensor(_ name: String) throws -> Tensor
  /// The name under which `name` is stored in the underlying file (differs for renamed views),
  /// so that errors name what the user can find in the file.
  func storedName(_ name: String) -> String
}

extension WeightSource {
  public func contains(_ name: String) -> Bool { shape(of: name) != nil }
  public func storedName(_ name: String) -> String { name }

  /// A tensor checked against the expected shape (an error names the tensor and both shapes).
  public func tensor(_ name: String, shape expected: [Int]) throws -> Tensor {
    let t = try tensor(name)
    guard t.shape == expected else {
      throw WeightError.shapeMismatch(
        file: sourceDescription, tensor: storedName(name), expected: expected, found: t.shape)
    }
    return t
  }

  /// A tensor of `count` elements whatever its shape (e.g. `[1, 256, d]` vs `[256, d]`).
  public func tensor(_ name: String, count: Int, as shape: [Int]) throws -> Tensor {
    let t = try tensor(name)
    guard t.count == count else {
      throw WeightError.shapeMismatch(
        file: sourceDescription, tensor: storedName(name), expected: shape, found: t.shape)
    }
    return t.reshaped(shape)
  }
}

/// A memory-mapped safetensors file.
public final class SafeTensorsFile: WeightSource, @unchecked Sendable {
  /// One tensor's header entry; `byteRange` is absolute within the file.
  public struct Entry: Sendable, Equatable {
    public let dtype: DType
    public let shape: [Int]
    public let byteRange: Range<Int>
  }

  public let path: String
  public let entries: [String: Entry]
  public let metadata: [String: String]
  private let file: MappedFile

  public var sourceDescription: String { path }
  public var tensorNames: [String] { entries.keys.sorted() }
  public func shape(of name: String) -> [Int]? { entries[name]?.shape }

  public convenience init(url: URL) throws { try self.init(path: url.path) }

  public init(path: String) throws {
    self.path = path
    file = try MappedFile(path: path)
    let bytes = file.bytes
    guard bytes.count >= 8 else {
      throw WeightError.corruptHeader(
        file: path, reason: "file is \(bytes.count) bytes, shorter than the 8-byte header length")
    }
    // The length is an unsigned 64-bit field: anything over Int.max (found by fuzzing) is as
    // wrong as any other length past the end of the file.
    let storedLength = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
    let headerLength = Int(exactly: storedLength) ?? Int.max
    guard headerLength >= 2, headerLength <= bytes.count - 8, headerLength <= 100_000_000 else {
      throw WeightError.corruptHeader(
        file: path, reason: "header length \(storedLength) does not fit in a file of \(bytes.count) bytes (truncated?)")
    }
    let headerData = Data(bytes[8..<(8 + headerLength)])
    let json: Any
    do {
      json = try JSONSerialization.jsonObject(with: headerData)
    } catch {
      throw WeightError.corruptHeader(file: path, reason: "header is not valid JSON")
    }
    guard let dict = json as? [String: Any] else {
      throw WeightError.corruptHeader(file: path, reason: "header is not a JSON object")
    }
    let dataStart = 8 + headerLength
    let dataSize = bytes.count - dataStart
    var entries: [String: Entry] = [:]
    var metadata: [String: String] = [:]
    for (name, value) in dict {
      if name == "__metadata__" {
        guard let m = value as? [String: Any] else {
          throw WeightError.corruptHeader(file: path, reason: "__metadata__ is not an object")
        }
        for (k, v) in m {
          guard let s = v as? String else {
            throw WeightError.corruptHeader(file: path, reason: "__metadata__ value for '\(k)' is not a string")
          }
          metadata[k] = s
        }
        continue
      }
      let e = try Self.entry(name, value, file: path, dataSize: dataSize)
      entries[name] = Entry(
        dtype: e.dtype, shape: e.shape,
        byteRange: (dataStart + e.byteRange.lowerBound)..<(dataStart + e.byteRange.upperBound))
    }
    self.entries = entries
    self.metadata = metadata
  }

  /// One tensor's header entry, checked: a known dtype, a shape of non-negative sizes whose
  /// element and byte counts do not overflow, offsets (relative to the data) in order, inside the
  /// `dataSize` bytes of data and exactly as long as the shape needs.
  private static func entry(_ name: String, _ value: Any, file path: String, dataSize: Int) throws -> Entry {
    guard let info = value as? [String: Any] else {
      throw WeightError.corruptTensor(file: path, tensor: name, reason: "header entry is not an object")
    }
    guard let dtypeName = info["dtype"] as? String else {
      throw WeightError.corruptTensor(file: path, tensor: name, reason: "missing dtype")
    }
    guard let dtype = DType(rawValue: dtypeName) else {
      throw WeightError.unsupportedDType(file: path, tensor: name, dtype: dtypeName)
    }
    guard let shapeAny = info["shape"] as? [Any], let shape = integers(shapeAny), shape.allSatisfy({ $0 >= 0 }) else {
      throw WeightError.corruptTensor(file: path, tensor: name, reason: "shape is not a list of non-negative integers")
    }
    guard let offsetsAny = info["data_offsets"] as? [Any], let offsets = integers(offsetsAny), offsets.count == 2 else {
      throw WeightError.corruptTensor(file: path, tensor: name, reason: "data_offsets is not a pair of integers")
    }
    let (begin, end) = (offsets[0], offsets[1])
    var elements = 1
    for s in shape {
      let (p, overflow) = elements.multipliedReportingOverflow(by: s)
      guard !overflow else {
        throw WeightError.corruptTensor(file: path, tensor: name, reason: "shape \(shape) overflows")
      }
      elements = p
    }
    guard begin >= 0, begin <= end else {
      throw WeightError.corruptTensor(file: path, tensor: name, reason: "data_offsets [\(begin), \(end)] are reversed")
    }
    guard end <= dataSize else {
      throw WeightError.corruptTensor(
        file: path, tensor: name,
        reason: "data_offsets end \(end) is past the end of the data (\(dataSize) bytes; file truncated?)")
    }
    let (bytes, bytesOverflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
    guard !bytesOverflow else {
      throw WeightError.corruptTensor(file: path, tensor: name, reason: "shape \(shape) of \(dtypeName) overflows")
    }
    guard end - begin == bytes else {
      throw WeightError.corruptTensor(
        file: path, tensor: name, reason: "holds \(end - begin) bytes but shape \(shape) of \(dtypeName) needs \(bytes)"
      )
    }
    return Entry(dtype: dtype, shape: shape, byteRange: begin..<end)
  }

  private static func integers(_ values: [Any]) -> [Int]? {
    var out: [Int] = []
    for v in values {
      guard let n = v as? NSNumber, n.doubleValue == n.doubleValue.rounded(), abs(n.doubleValue) < 9e15 else {
        return nil
      }
      out.append(n.intValue)
    }
    return out
  }

  /// Raw bytes of a tensor (valid while this file object lives).
  public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer, Entry) throws -> R) throws -> R {
    guard let e = entries[name] else { throw WeightError.missingTensor(file: path, tensor: name) }
    return try body(UnsafeRawBufferPointer(rebasing: file.bytes[e.byteRange]), e)
  }

  public func tensor(_ name: String) throws -> Tensor {
    try withRawBytes(name) { raw, e in
      let n = e.shape.reduce(1, *)
      var out = [Float](repeating: 0, count: n)
      out.withUnsafeMutableBufferPointer { dst in
        convertToFloat(raw, dtype: e.dtype, count: n, into: dst.baseAddress!)
      }
      if e.dtype == .f32 || e.dtype == .f16 || e.dtype == .bf16 || e.dtype == .f64 {
        if let bad = out.firstIndex(where: { !$0.isFinite }) {
          throw WeightError.corruptTensor(
            file: path, tensor: name, reason: "value \(out[bad]) at index \(bad) is not finite")
        }
      }
      return Tensor(shape: e.shape, scalars: out)
    }
  }

  /// An integer tensor (I64, I32, I16, I8, U8, BOOL) as `Int`s, with its shape.
  public func integers(_ name: String) throws -> (shape: [Int], values: [Int]) {
    try withRawBytes(name) { raw, e in
      let n = e.shape.reduce(1, *)
      var out = [Int](repeating: 0, count: n)
      switch e.dtype {
      case .i64:
        for i in 0..<n { out[i] = Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))) }
      case .i32:
        for i in 0..<n { out[i] = Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))) }
      case .i16:
        for i in 0..<n { out[i] = Int(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))) }
      case .i8: for i in 0..<n { out[i] = Int(raw.load(fromByteOffset: i, as: Int8.self)) }
      case .u8, .bool: for i in 0..<n { out[i] = Int(raw[i]) }
      default:
        throw WeightError.corruptTensor(
          file: path, tensor: name, reason: "expected an integer tensor, found \(e.dtype.rawValue)")
      }
      return (e.shape, out)
    }
  }
}

/// Converts `count` little-endian values of `dtype` to `Float`.
package func convertToFloat(_ raw: UnsafeRawBufferPointer, dtype: DType, count n: Int, into dst: FloatPointer) {
  switch dtype {
  case .f32:
    for i in 0..<n {
      dst[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
    }
  case .f16:
    for i in 0..<n {
      dst[i] = Float(
        Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))))
    }
  case .bf16:
    for i in 0..<n {
      let bits = UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) << 16
      dst[i] = Float(bitPattern: bits)
    }
  case .f64:
    for i in 0..<n {
      dst[i] = Float(
        Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))))
    }
  case .i64:
    for i in 0..<n { dst[i] = Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))) }
  case .i32:
    for i in 0..<n { dst[i] = Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))) }
  case .i16:
    for i in 0..<n { dst[i] = Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))) }
  case .i8: for i in 0..<n { dst[i] = Float(raw.load(fromByteOffset: i, as: Int8.self)) }
  case .u8, .bool: for i in 0..<n { dst[i] = Float(raw[i]) }
  }
}

/// Writes safetensors files (F32 or F16 storage), atomically.
public enum SafeTensorsWriter {
  public enum Storage: String, Sendable { case f32 = "F32", f16 = "F16" }

  /// Serialises tensors in the given order; names must be unique.
  public static func data(
    _ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:], storage: Storage = .f32
  ) -> Data {
    var header = "{"
    var parts: [String] = []
    if !metadata.isEmpty {
      let m = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }.joined(
        separator: ",")
      parts.append("\"__metadata__\":{\(m)}")
    }
    var offset = 0
    let size = storage == .f32 ? 4 : 2
    for (name, t) in tensors {
      let bytes = t.count * size
      parts.append(
        "\(jsonString(name)):{\"dtype\":\"\(storage.rawValue)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}"
      )
      offset += bytes
    }
    header += parts.joined(separator: ",") + "}"
    while (header.utf8.count) % 8 != 0 { header += " " }
    var out = Data()
    var len = UInt64(header.utf8.count).littleEndian
    withUnsafeBytes(of: &len) { out.append(contentsOf: $0) }
    out.append(contentsOf: Array(header.utf8))
    out.reserveCapacity(out.count + offset)
    for (_, t) in tensors {
      switch storage {
      case .f32:
        t.withUnsafeBufferPointer { p in
          var le = p.map { $0.bitPattern.littleEndian }
          le.withUnsafeMutableBytes { out.append(contentsOf: $0) }
        }
      case .f16:
        var le = t.scalars.map { Float16($0).bitPattern.littleEndian }
        le.withUnsafeMutableBytes { out.append(contentsOf: $0) }
      }
    }
    return out
  }

  /// Writes to `url` through a temporary file and a rename, so a failure never leaves half a file.
  public static func write(
    _ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:], storage: Storage = .f32, to url: URL
  ) throws {
    try writeAtomically(data(tensors, metadata: metadata, storage: storage), to: url)
  }

  private static func jsonString(_ s: String) -> String {
    let d = (try? JSONSerialization.data(withJSONObject: [s], options: [.fragmentsAllowed])) ?? Data("[\"\"]".utf8)
    let arr = String(decoding: d, as: UTF8.self)
    return String(arr.dropFirst().dropLast())
  }
}
