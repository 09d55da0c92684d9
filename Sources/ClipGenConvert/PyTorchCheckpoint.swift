// PyTorch checkpoints read natively, without Python: `torch.save` zip files (`.pt`, `.pth`,
// `.bin`, Lightning `.ckpt`), TorchScript archives (`torch.jit.save`, e.g. OpenAI's released
// CLIP models) and the legacy pre-1.6 `torch.save` stream. The file is memory-mapped; the pickle
// (`data.pkl`) is run by `PickleMachine`; tensors are strided views of storages kept in
// `data/<key>` entries (torch/serialization.py) and are only read when asked for.
import ClipGenEngine
import Foundation
import Synchronization

/// Errors reading a checkpoint's container or pickle; each names the file.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
  /// Neither a zip, a TorchScript archive nor a legacy `torch.save` stream.
  case notACheckpoint(file: String, reason: String)
  /// The file ends before its structure does (an interrupted download or save).
  case truncated(file: String, reason: String)
  case corruptArchive(file: String, reason: String)
  /// The pickle is malformed at `offset` (bytes into `entry`).
  case corruptPickle(file: String, entry: String, offset: Int, reason: String)
  /// A pickle feature the reader does not implement (an unknown opcode is reported here).
  case unsupportedPickle(file: String, entry: String, offset: Int, reason: String)
  /// A tensor whose storage record is not in the archive.
  case missingStorage(file: String, tensor: String, record: String)
  /// No dictionary of tensors where one was expected.
  case noStateDict(file: String, reason: String)
  /// A legacy (pre-1.6) checkpoint this reader cannot take apart.
  case unsupportedLegacyFormat(file: String, reason: String)

  public var description: String {
    switch self {
    case .notACheckpoint(let file, let reason): return "\(file): not a PyTorch checkpoint: \(reason)"
    case .truncated(let file, let reason): return "\(file): truncated checkpoint: \(reason)"
    case .corruptArchive(let file, let reason): return "\(file): corrupt checkpoint archive: \(reason)"
    case .corruptPickle(let file, let entry, let offset, let reason):
      return "\(file): corrupt pickle in '\(entry)' at byte \(offset): \(reason)"
    case .unsupportedPickle(let file, let entry, let offset, let reason):
      return "\(file): cannot read the pickle in '\(entry)' at byte \(offset): \(reason)"
    case .missingStorage(let file, let tensor, let record):
      return "\(file): tensor '\(tensor)': its data record '\(record)' is missing from the archive"
    case .noStateDict(let file, let reason): return "\(file): no state dict found: \(reason)"
    case .unsupportedLegacyFormat(let file, let reason):
      return
        "\(file): legacy (pre-1.6) PyTorch checkpoint: \(reason). Re-save it in the zip format with a recent PyTorch: "
        + "python -c \"import torch; torch.save(torch.load('IN', map_location='cpu'), 'OUT.pt')\""
    }
  }
}

/// A PyTorch checkpoint as a `WeightSource`: the tensors of one state dict inside it, by name.
///
/// ```swift
/// let gpt = try PyTorchCheckpoint(path: "gpt_coco.pt")            // HFAiLab: {"model": sd, ...}
/// gpt.stateDictKey                                                 // "model"
/// let vq = try PyTorchCheckpoint(path: "last.ckpt")               // Lightning: {"state_dict": sd, ...}
/// let sd = try PyTorchCheckpoint(path: "x.pt", stateDict: .key("ema"), stripPrefix: "module.")
/// ```
///
/// Everything else in the file (optimizer state, hyper-parameters, epochs) is kept in `root`
/// as `PickleValue`s, classes the reader does not know as opaque objects.
public final class PyTorchCheckpoint: WeightSource, @unchecked Sendable {
  /// The container format.
  public enum Format: String, Sendable {
    /// `torch.save` since PyTorch 1.6 (a zip with `data.pkl` and `data/<key>` records).
    case zip = "PyTorch zip checkpoint (torch.save)"
    /// `torch.jit.save`: a zip whose `data.pkl` holds the module objects; tensors are their
    /// attributes.
    case torchScript = "TorchScript archive (torch.jit.save)"
    /// `torch.save` before 1.6 (`_use_new_zipfile_serialization=False`): pickles back to back,
    /// then the raw storages.
    case legacy = "legacy PyTorch checkpoint (pre-1.6 torch.save)"
  }

  /// Which dictionary of the checkpoint holds the weights.
  public enum StateDictSelection: Sendable, Equatable {
    /// The top level when it holds tensors, else `state_dict` (Lightning), `model` (HFAiLab),
    /// `model_state_dict`, `module`, `net`, `params`, `weights`, else the one entry that holds
    /// tensors. A TorchScript module's attributes.
    case automatic
    /// The top-level value itself.
    case root
    /// A key of the top-level dict; dots descend (`"ema.model"`).
    case key(String)
  }

  public let path: String
  public let format: Format
  /// The whole unpickled object.
  public let root: PickleValue
  /// The key of the chosen state dict (`"model"`, `"state_dict"`), nil for the top level.
  public let stateDictKey: String?
  /// The prefix removed from every tensor name (given, or `module.` found on every name).
  public let strippedPrefix: String?
  /// Tensor names in checkpoint order.
  public let tensorNames: [String]
  /// Names in the state dict whose values are tensors the engine cannot read, and why.
  public let unreadable: [String: String]
  /// Verify each storage record's CRC-32 when its tensor is read.
  public let verifiesChecksums: Bool

  private let records: [String: PyTorchTensorRecord]
  /// Storage records whose CRC-32 has been checked.
  private let verifiedRecords = Mutex<Set<String>>([])
  private let file: MappedFile
  private let archive: ZipArchive?
  /// `archive/` in `archive/data.pkl`.
  private let recordPrefix: String
  /// Legacy format: where each storage's bytes lie in the file.
  private let legacyStorages: [String: Range<Int>]

  public var sourceDescription: String { path }
  public func shape(of name: String) -> [Int]? { records[name]?.shape }
  /// How a tensor is stored (dtype, storage, offset, strides).
  public func record(of name: String) -> PyTorchTensorRecord? { records[name] }

  public convenience init(url: URL, stateDict: StateDictSelection = .automatic, stripPrefix: String? = nil) throws {
    try self.init(path: url.path, stateDict: stateDict, stripPrefix: stripPrefix)
  }

  /// Opens a checkpoint and indexes the tensors of one state dict (their data is read on demand).
  /// - Parameters:
  ///   - stateDict: which dictionary holds the weights.
  ///   - stripPrefix: removed from the start of every tensor name that has it (e.g. `model.`).
  ///   - verifyChecksums: check each storage's CRC-32 when a tensor is read (zip formats).
  /// - Throws: `CheckpointError` naming the file: truncated or corrupt archives, unknown pickle
  ///   opcodes, no state dict; `WeightError.unreadable` when the file cannot be opened.
  public init(
    path: String, stateDict: StateDictSelection = .automatic, stripPrefix: String? = nil, verifyChecksums: Bool = false
  ) throws {
    self.path = path
    verifiesChecksums = verifyChecksums
    let file = try MappedFile(path: path)
    self.file = file
    let bytes = file.bytes

    if ZipArchive.looksLikeZip(bytes) {
      let zip = try ZipArchive(path: path, file: file)
      guard
        let pickle = zip.entries.filter({ $0.name == "data.pkl" || $0.name.hasSuffix("/data.pkl") })
          .min(by: { $0.name.count < $1.name.count })
      else {
        throw CheckpointError.notACheckpoint(
          file: path, reason: "a zip archive without a data.pkl record (\(zip.entries.prefix(5).map(\.name)))")
      }
      let prefix = String(pickle.name.dropLast("data.pkl".count))
      if let order = zip.entry(prefix + "byteorder") {
        let text = String(decoding: try zip.contents(of: order), as: UTF8.self)
        guard text.hasPrefix("little") else {
          throw CheckpointError.notACheckpoint(
            file: path, reason: "saved on a big-endian machine (byteorder '\(text)')")
        }
      }
      let isTorchScript =
        zip.entry(prefix + "constants.pkl") != nil || zip.entries.contains { $0.name.hasPrefix(prefix + "code/") }
      let pickleBytes = try zip.contents(of: pickle)
      root = try pickleBytes.withUnsafeBytes { try PickleMachine(file: path, entry: pickle.name).load($0).value }
      archive = zip
      recordPrefix = prefix
      format = isTorchScript ? .torchScript : .zip
      legacyStorages = [:]
    } else if bytes.count >= 2, bytes[0] == 0x80, bytes[1] <= 5 {
      (root, legacyStorages) = try Self.readLegacy(bytes, path: path)
      archive = nil
      recordPrefix = ""
      format = .legacy
    } else {
      var reason = "the file is neither a zip archive nor a pickle"
      if bytes.count > 262,
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[257..<262]), as: UTF8.self) == "ustar"
      {
        reason = "a tar archive (PyTorch's pre-0.4 format); load and re-save it with PyTorch"
      } else if bytes.count >= 8, bytes[0] == 0x50, bytes[1] == 0x4B {
        reason = "a damaged zip archive"
      } else if bytes.isEmpty {
        reason = "the file is empty"
      }
      throw CheckpointError.notACheckpoint(file: path, reason: reason)
    }

    // The state dict.
    let (chosen, key) = try Self.select(stateDict, in: root, format: format, path: path)
    stateDictKey = key
    var collected: [(String, PyTorchTensorRecord)] = []
    var unreadable: [String: String] = [:]
    Self.collect(chosen, prefix: "", into: &collected, unreadable: &unreadable, depth: 0)
    guard !collected.isEmpty || !unreadable.isEmpty else {
      throw CheckpointError.noStateDict(
        file: path, reason: "\(key.map { "'\($0)'" } ?? "the top level") holds no tensors (\(chosen.summary))")
    }
    var strip = stripPrefix
    if strip == nil, collected.allSatisfy({ $0.0.hasPrefix("module.") }) { strip = "module." }
    if let p = strip, !p.isEmpty {
      collected = collected.map { ($0.0.hasPrefix(p) ? String($0.0.dropFirst(p.count)) : $0.0, $0.1) }
    }
    strippedPrefix = strip
    var records: [String: PyTorchTensorRecord] = [:]
    var names: [String] = []
    for (name, record) in collected where records[name] == nil {
      records[name] = record
      names.append(name)
    }
    self.records = records
    tensorNames = names
    self.unreadable = unreadable
  }

  // MARK: - Choosing the state dict

  static let stateDictKeys = ["state_dict", "model", "model_state_dict", "module", "net", "params", "weights"]

  private static func holdsTensors(_ v: PickleValue) -> Bool {
    guard let entries = v.dictEntries else { return false }
    return entries.contains {
      if case .tensor = $0.value { return true }
      return false
    }
  }

  private static func select(
    _ selection: StateDictSelection, in root: PickleValue, format: Format, path: String
  ) throws -> (PickleValue, String?) {
    func topKeys() -> String {
      let keys = (root.dictEntries ?? []).map { $0.key.summary }
      return keys.isEmpty
        ? "the top level is \(root.summary)" : "top-level keys: \(keys.prefix(12).joined(separator: ", "))"
    }
    switch selection {
    case .root: return (root, nil)
    case .key(let dotted):
      var v = root
      for part in dotted.split(separator: ".") {
        guard let next = v[String(part)] else {
          throw CheckpointError.noStateDict(file: path, reason: "no key '\(dotted)' (\(topKeys()))")
        }
        v = next
      }
      return (v, dotted)
    case .automatic:
      if format == .torchScript || holdsTensors(root) { return (root, nil) }
      for key in stateDictKeys {
        if let v = root[key], holdsTensors(v) { return (v, key) }
      }
      let candidates = (root.dictEntries ?? []).filter { holdsTensors($0.value) }
      if candidates.count == 1, case .string(let key) = candidates[0].key { return (candidates[0].value, key) }
      throw CheckpointError.noStateDict(
        file: path,
        reason: candidates.isEmpty
          ? "no dictionary of tensors at the top level or under \(stateDictKeys.joined(separator: "/")) (\(topKeys()))"
          : "several dictionaries of tensors; choose one (\(topKeys()))")
    }
  }

  /// Tensors of a state dict by dotted name; nested dicts and TorchScript submodules add their key
  /// as a prefix, lists their index.
  private static func collect(
    _ value: PickleValue, prefix: String, into out: inout [(String, PyTorchTensorRecord)],
    unreadable: inout [String: String], depth: Int
  ) {
    guard depth < 64 else { return }
    func visit(_ name: String, _ v: PickleValue) {
      switch v {
      case .tensor(let t): out.append((name, t))
      case .unsupported(let why) where why.hasPrefix("tensor") || why.hasPrefix("legacy"): unreadable[name] = why
      case .dict, .object: collect(v, prefix: name + ".", into: &out, unreadable: &unreadable, depth: depth + 1)
      case .list(let items), .tuple(let items):
        for (i, item) in items.enumerated() { visit("\(name).\(i)", item) }
      default: break
      }
    }
    if case .tensor(let t) = value, prefix.isEmpty {
      out.append(("", t))
      return
    }
    for (k, v) in value.dictEntries ?? [] {
      let key: String
      switch k {
      case .string(let s): key = s
      case .int(let i): key = String(i)
      default: continue
      }
      visit(prefix + key, v)
    }
  }

  // MARK: - Reading tensors

  /// A tensor converted to `Float` (non-contiguous views are gathered).
  /// - Throws: `WeightError.missingTensor`, `.unsupportedDType`, `.corruptTensor` (data outside
  ///   its storage, non-finite values), `CheckpointError.missingStorage`, naming file and tensor.
  public func tensor(_ name: String) throws -> Tensor {
    guard let r = records[name] else {
      if let why = unreadable[name] { throw WeightError.corruptTensor(file: path, tensor: name, reason: why) }
      throw WeightError.missingTensor(file: path, tensor: name)
    }
    guard let dtype = r.dtype else {
      throw WeightError.unsupportedDType(file: path, tensor: name, dtype: r.storage.className)
    }
    var out: [Float] = []
    try withStorage(of: r, tensor: name) { raw in
      // The shape and strides are checked against the storage before anything is allocated.
      try Self.checkBounds(r, dtype: dtype, storageBytes: raw.count, file: path, tensor: name)
      let count = r.elementCount
      out = [Float](repeating: 0, count: count)
      guard count > 0 else { return }
      out.withUnsafeMutableBufferPointer { dst in
        let base = dst.baseAddress!
        if r.isContiguous {
          let start = r.storageOffset * dtype.byteSize
          convertToFloat(
            UnsafeRawBufferPointer(rebasing: raw[start..<(start + count * dtype.byteSize)]), dtype: dtype, count: count,
            into: base)
        } else {
          Self.gather(raw, r, dtype: dtype, into: base)
        }
      }
    }
    if dtype == .f32 || dtype == .f16 || dtype == .bf16 || dtype == .f64 {
      if let bad = out.firstIndex(where: { !$0.isFinite }) {
        throw WeightError.corruptTensor(
          file: path, tensor: name, reason: "value \(out[bad]) at index \(bad) is not finite")
      }
    }
    return Tensor(shape: r.shape, scalars: out)
  }

  /// Calls `body` with the bytes of a tensor's whole storage (valid only inside `body`).
  private func withStorage<R>(of r: PyTorchTensorRecord, tensor: String, _ body: (UnsafeRawBufferPointer) throws -> R)
    throws -> R
  {
    if let archive {
      let name = recordPrefix + "data/" + r.storage.key
      guard let entry = archive.entry(name) else {
        throw CheckpointError.missingStorage(file: path, tensor: tensor, record: name)
      }
      // Each record is checked once, however many tensors view it or however often they are read.
      let verify = verifiesChecksums && !verifiedRecords.withLock { $0.contains(name) }
      let result = try archive.withContents(of: entry, verify: verify, body)
      if verify { verifiedRecords.withLock { _ = $0.insert(name) } }
      return result
    }
    guard let range = legacyStorages[r.storage.key] else {
      throw CheckpointError.missingStorage(file: path, tensor: tensor, record: "storage \(r.storage.key)")
    }
    return try body(UnsafeRawBufferPointer(rebasing: file.bytes[range]))
  }

  /// The most elements a view that repeats its storage may expand to when converted (64 Mi).
  static let maximumRepeatedElements = 1 << 26

  private static func checkBounds(
    _ r: PyTorchTensorRecord, dtype: DType, storageBytes: Int, file: String, tensor: String
  ) throws {
    var count = 1
    for size in r.shape {
      let (p, overflow) = count.multipliedReportingOverflow(by: size)
      guard !overflow, size >= 0 else {
        throw WeightError.corruptTensor(file: file, tensor: tensor, reason: "shape \(r.shape) overflows")
      }
      count = p
    }
    guard count > 0 else { return }
    guard r.strides.allSatisfy({ $0 >= 0 }), r.storageOffset >= 0 else {
      throw WeightError.corruptTensor(
        file: file, tensor: tensor, reason: "negative strides \(r.strides) or offset \(r.storageOffset)")
    }
    // A view may repeat its storage (stride 0, overlapping strides): PyTorch's expand. Converting
    // materialises it, so a small file could ask for any amount of memory; beyond what the
    // storage holds, at most `maximumRepeatedElements` are accepted.
    let stored = storageBytes / dtype.byteSize
    guard count <= max(stored, maximumRepeatedElements) else {
      throw WeightError.corruptTensor(
        file: file, tensor: tensor,
        reason:
          "shape \(r.shape) with strides \(r.strides) repeats its storage's \(stored) elements into \(count); more than \(maximumRepeatedElements) repeated elements are refused"
      )
    }
    var last = r.storageOffset
    for (size, stride) in zip(r.shape, r.strides) {
      let (m, o1) = (size - 1).multipliedReportingOverflow(by: stride)
      let (s, o2) = last.addingReportingOverflow(m)
      guard !o1, !o2 else {
        throw WeightError.corruptTensor(file: file, tensor: tensor, reason: "size and stride overflow")
      }
      last = s
    }
    let available = storageBytes / dtype.byteSize
    guard last < available else {
      throw WeightError.corruptTensor(
        file: file, tensor: tensor,
        reason:
          "shape \(r.shape) with strides \(r.strides) at offset \(r.storageOffset) reaches element \(last), but its storage '\(r.storage.key)' holds \(available) \(dtype.rawValue) elements (truncated?)"
      )
    }
  }

  /// Copies a strided view element by element, innermost dimension fastest.
  private static func gather(
    _ raw: UnsafeRawBufferPointer, _ r: PyTorchTensorRecord, dtype: DType, into dst: FloatPointer
  ) {
    let rank = r.shape.count
    let size = dtype.byteSize
    var index = [Int](repeating: 0, count: rank)
    var source = r.storageOffset
    let innerSize = r.shape[rank - 1]
    let innerStride = r.strides[rank - 1]
    var out = 0
    let total = r.elementCount
    while out < total {
      var s = source
      for _ in 0..<innerSize {
        convertToFloat(
          UnsafeRawBufferPointer(rebasing: raw[(s * size)..<((s + 1) * size)]), dtype: dtype, count: 1, into: dst + out)
        out += 1
        s += innerStride
      }
      // Advance the outer index (odometer).
      var d = rank - 2
      while d >= 0 {
        index[d] += 1
        source += r.strides[d]
        if index[d] < r.shape[d] { break }
        source -= r.strides[d] * r.shape[d]
        index[d] = 0
        d -= 1
      }
    }
  }

  // MARK: - The legacy format

  /// The magic number that opens a legacy checkpoint, 0x1950a86a20f9469cfc6c, little-endian.
  private static let legacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

  /// Element sizes of storage classes, including ones the engine cannot convert (so the storages
  /// after them can still be found).
  private static func elementSize(ofStorageClass name: String) -> Int? {
    if let d = PyTorchStorageType.dtype(ofStorageClass: name) { return d.byteSize }
    switch name {
    case "ComplexFloatStorage": return 8
    case "ComplexDoubleStorage": return 16
    case "QInt8Storage", "QUInt8Storage", "QUInt4x2Storage", "QUInt2x4Storage": return 1
    case "QInt32Storage": return 4
    default: return nil
    }
  }

  /// `torch.save(..., _use_new_zipfile_serialization=False)`: pickles of the magic number, the
  /// protocol version (1001), system info and the object; a pickled list of storage keys; then
  /// per key an int64 element count and the raw bytes.
  private static func readLegacy(_ bytes: UnsafeRawBufferPointer, path: String) throws -> (
    PickleValue, [String: Range<Int>]
  ) {
    let entry = "(legacy stream)"
    let machine = PickleMachine(file: path, entry: entry)
    let (magic, afterMagic) = try machine.load(bytes)
    guard case .bigInt(let m) = magic, m == legacyMagic else {
      throw CheckpointError.notACheckpoint(
        file: path, reason: "a pickle, but not one written by torch.save (no PyTorch magic number; \(magic.summary))")
    }
    let (version, afterVersion) = try machine.load(bytes, from: afterMagic)
    guard case .int(1001) = version else {
      throw CheckpointError.unsupportedLegacyFormat(
        file: path, reason: "protocol version \(version.summary), expected 1001")
    }
    let (info, afterInfo) = try machine.load(bytes, from: afterVersion)
    if case .bool(false)? = info["little_endian"] {
      throw CheckpointError.unsupportedLegacyFormat(file: path, reason: "saved on a big-endian machine")
    }
    let (root, afterRoot) = try machine.load(bytes, from: afterInfo)
    let (keysValue, afterKeys) = try machine.load(bytes, from: afterRoot)
    guard case .list(let keyValues) = keysValue else {
      throw CheckpointError.unsupportedLegacyFormat(file: path, reason: "the storage key list is \(keysValue.summary)")
    }
    // Storage classes by key, from the tensors in the object.
    var classes: [String: String] = [:]
    func walk(_ v: PickleValue, depth: Int) {
      guard depth < 64 else { return }
      switch v {
      case .tensor(let t): classes[t.storage.key] = t.storage.className
      case .storage(let s): classes[s.key] = s.className
      case .dict(let d): for (_, x) in d { walk(x, depth: depth + 1) }
      case .list(let l), .tuple(let l), .set(let l): for x in l { walk(x, depth: depth + 1) }
      case .object(let o):
        for x in o.arguments + o.listItems { walk(x, depth: depth + 1) }
        for (_, x) in o.dictItems { walk(x, depth: depth + 1) }
        if let s = o.state { walk(s, depth: depth + 1) }
      default: break
      }
    }
    walk(root, depth: 0)
    var storages: [String: Range<Int>] = [:]
    var pos = afterKeys
    for k in keyValues {
      guard case .string(let key) = k else { continue }
      guard let cls = classes[key], let size = elementSize(ofStorageClass: cls) else { break }
      guard pos + 8 <= bytes.count else {
        throw CheckpointError.truncated(
          file: path, reason: "the data of storage '\(key)' is missing (the file ends at \(bytes.count) bytes)")
      }
      let count = Int(Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: pos, as: Int64.self)))
      let (length, overflow) = count.multipliedReportingOverflow(by: size)
      guard count >= 0, !overflow, pos + 8 + length <= bytes.count else {
        throw CheckpointError.truncated(
          file: path,
          reason:
            "storage '\(key)' (\(count) elements at byte \(pos + 8)) runs past the end of the \(bytes.count)-byte file")
      }
      storages[key] = (pos + 8)..<(pos + 8 + length)
      pos += 8 + length
    }
    return (root, storages)
  }
}
