// What a PyTorch checkpoint's pickle holds, as an immutable value tree: Python's plain types,
// tensors (rebuilt by reference to their storage, not read), and everything else kept opaque
// with its class name, so training state (optimizers, Lightning's hyper-parameters, numpy
// scalars) never stops a checkpoint from loading.
import ClipGenEngine
import Foundation

/// The dtype of a PyTorch storage class (`torch.FloatStorage` → `.f32`, …).
public enum PyTorchStorageType {
  /// The element type of `torch.<name>`, or nil for one the engine cannot convert (complex,
  /// quantised, float8).
  public static func dtype(ofStorageClass name: String) -> DType? {
    switch name {
    case "FloatStorage": return .f32
    case "DoubleStorage": return .f64
    case "HalfStorage": return .f16
    case "BFloat16Storage": return .bf16
    case "LongStorage": return .i64
    case "IntStorage": return .i32
    case "ShortStorage": return .i16
    case "CharStorage": return .i8
    case "ByteStorage": return .u8
    case "BoolStorage": return .bool
    default: return nil
    }
  }

  /// The element type of a `torch.<dtype>` global (`torch.float16` → `.f16`), for
  /// `_rebuild_tensor_v3` and untyped storages.
  public static func dtype(ofDTypeName name: String) -> DType? {
    switch name {
    case "float32", "float": return .f32
    case "float64", "double": return .f64
    case "float16", "half": return .f16
    case "bfloat16": return .bf16
    case "int64", "long": return .i64
    case "int32", "int": return .i32
    case "int16", "short": return .i16
    case "int8": return .i8
    case "uint8": return .u8
    case "bool": return .bool
    default: return nil
    }
  }
}

/// A tensor's storage as a checkpoint names it: `('storage', torch.FloatStorage, key, location,
/// numel)` in a zip checkpoint, or the legacy format's root key.
public struct PyTorchStorage: Sendable, Equatable {
  /// The record name under `data/` (zip) or the legacy root key.
  public let key: String
  /// `FloatStorage`, `HalfStorage`, … as pickled.
  public let className: String
  /// nil when the engine cannot convert this storage type.
  public let dtype: DType?
  /// Elements the storage holds, as pickled (nil when the pickle does not say).
  public let elementCount: Int?
  /// `cpu`, `cuda:0`, … (informational: the bytes are the same).
  public let location: String
}

/// A tensor as `torch._utils._rebuild_tensor_v2` describes it: a strided view of a storage.
public struct PyTorchTensorRecord: Sendable, Equatable {
  public let storage: PyTorchStorage
  /// In elements.
  public let storageOffset: Int
  public let shape: [Int]
  /// In elements; may be non-contiguous (a transposed view) or zero (an expanded one).
  public let strides: [Int]
  /// The element type after any dtype override (`_rebuild_tensor_v3`); nil when unsupported.
  public let dtype: DType?
  public let requiresGrad: Bool
  /// Rebuilt through `_rebuild_parameter` (an `nn.Parameter`).
  public let isParameter: Bool

  /// Elements the view holds (`Int.max` when the shape's product overflows: such a view is
  /// refused before anything reads it).
  public var elementCount: Int {
    var n = 1
    for size in shape {
      let (p, overflow) = n.multipliedReportingOverflow(by: max(size, 0))
      if overflow { return .max }
      n = p
    }
    return n
  }

  /// Row-major strides for `shape`.
  public static func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
      strides[i] = s
      s *= max(shape[i], 1)
    }
    return strides
  }

  /// Whether the elements are one row-major run of the storage.
  public var isContiguous: Bool {
    let expected = Self.contiguousStrides(shape)
    for i in shape.indices where shape[i] != 1 && strides[i] != expected[i] { return false }
    return true
  }
}

/// An instance of a class the reader does not rebuild: its class name and what the pickle gave
/// it (constructor arguments, `__setstate__` state, items appended or set on it).
public struct PickleObject: Sendable {
  /// `module.QualifiedName`, e.g. `pytorch_lightning.utilities.parsing.AttributeDict`.
  public let className: String
  public let arguments: [PickleValue]
  public let state: PickleValue?
  public let listItems: [PickleValue]
  public let dictItems: [(key: PickleValue, value: PickleValue)]
}

/// A value of a checkpoint's pickle.
public indirect enum PickleValue: Sendable {
  case none
  case bool(Bool)
  case int(Int)
  /// An integer too large for `Int` (kept as its little-endian two's complement bytes).
  case bigInt([UInt8])
  case float(Double)
  case string(String)
  case bytes([UInt8])
  case tuple([PickleValue])
  case list([PickleValue])
  /// Insertion order kept (state dicts are `OrderedDict`s).
  case dict([(key: PickleValue, value: PickleValue)])
  case set([PickleValue])
  /// A class or function reference (`module.name`).
  case global(module: String, name: String)
  case tensor(PyTorchTensorRecord)
  case storage(PyTorchStorage)
  case object(PickleObject)
  /// A reference back to a value still being built (a cycle), or a tensor kind the engine does
  /// not read (sparse, quantised, meta): described, not followed.
  case unsupported(String)

  /// The value under a string key of a dict (or of a dict-like object such as Lightning's
  /// `AttributeDict`).
  public subscript(key: String) -> PickleValue? {
    for (k, v) in dictEntries ?? [] {
      if case .string(let s) = k, s == key { return v }
    }
    return nil
  }

  /// Key-value pairs of a dict, of a dict-like object (items set on it), or of an object whose
  /// state is a dict (a TorchScript module's attributes).
  public var dictEntries: [(key: PickleValue, value: PickleValue)]? {
    switch self {
    case .dict(let d): return d
    case .object(let o):
      if !o.dictItems.isEmpty { return o.dictItems }
      if case .dict(let d)? = o.state { return d }
      if case .object? = o.state { return o.state?.dictEntries }
      return o.dictItems
    default: return nil
    }
  }

  /// A one-line description: the type, and the value for scalars (`int 3`, `dict (12 keys)`,
  /// `tensor f16 [512, 768]`).
  public var summary: String {
    switch self {
    case .none: return "None"
    case .bool(let b): return b ? "True" : "False"
    case .int(let i): return "\(i)"
    case .bigInt(let b): return "int (\(b.count * 8)-bit)"
    case .float(let f): return "\(f)"
    case .string(let s): return s.count > 60 ? "'\(s.prefix(57))...'" : "'\(s)'"
    case .bytes(let b): return "bytes (\(b.count))"
    case .tuple(let t): return "tuple (\(t.count))"
    case .list(let l): return "list (\(l.count))"
    case .dict(let d): return "dict (\(d.count) keys)"
    case .set(let s): return "set (\(s.count))"
    case .global(let m, let n): return "\(m).\(n)"
    case .tensor(let t):
      return "tensor \(t.dtype?.rawValue ?? t.storage.className) \(t.shape)"
    case .storage(let s): return "storage \(s.className) '\(s.key)'"
    case .object(let o):
      if let entries = dictEntries, !entries.isEmpty { return "\(o.className) (\(entries.count) keys)" }
      return o.className
    case .unsupported(let what): return what
    }
  }
}
