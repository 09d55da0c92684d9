// Writing a safetensors file one tensor at a time, so converting a 1.4 GB checkpoint never holds
// more than one tensor in memory. Through a temporary file and a rename, like `writeAtomically`.
import ClipGenEngine
import Foundation

enum SafeTensorsStreamWriter {
  struct Entry {
    let name: String
    let shape: [Int]
    let storage: SafeTensorsWriter.Storage
    var byteCount: Int { shape.reduce(1, *) * (storage == .f32 ? 4 : 2) }
  }

  /// Writes `entries` in order; `tensor(i)` supplies the values of entry `i` (its shape must
  /// match); `progress(i, bytesWritten)` is called after each one.
  static func write(
    _ entries: [Entry], metadata: [String: String] = [:], to url: URL, tensor: (Int) throws -> Tensor,
    progress: (Int, Int) -> Void = { _, _ in }
  ) throws {
    var parts: [String] = []
    if !metadata.isEmpty {
      let m = metadata.sorted { $0.key < $1.key }
        .map { "\(TokenizerFiles.jsonQuoted($0.key)):\(TokenizerFiles.jsonQuoted($0.value))" }
      parts.append("\"__metadata__\":{\(m.joined(separator: ","))}")
    }
    var offset = 0
    for e in entries {
      parts.append(
        "\(TokenizerFiles.jsonQuoted(e.name)):{\"dtype\":\"\(e.storage.rawValue)\",\"shape\":[\(e.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + e.byteCount)]}"
      )
      offset += e.byteCount
    }
    var header = "{" + parts.joined(separator: ",") + "}"
    while header.utf8.count % 8 != 0 { header += " " }

    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    guard FileManager.default.createFile(atPath: tmp.path, contents: nil),
      let handle = FileHandle(forWritingAtPath: tmp.path)
    else {
      throw WeightError.unreadable(file: url.path, reason: "cannot create \(tmp.path)")
    }
    var written = 0
    do {
      var length = UInt64(header.utf8.count).littleEndian
      var head = Data(bytes: &length, count: 8)
      head.append(Data(header.utf8))
      try handle.write(contentsOf: head)
      for (i, e) in entries.enumerated() {
        let t = try tensor(i)
        guard t.shape == e.shape else {
          throw WeightError.shapeMismatch(file: url.path, tensor: e.name, expected: e.shape, found: t.shape)
        }
        let data: Data = t.withUnsafeBufferPointer { src in
          switch e.storage {
          case .f32:
            #if _endian(little)
              return Data(buffer: src)
            #else
              return Data(src.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } })
            #endif
          case .f16:
            var half = [UInt16](repeating: 0, count: src.count)
            for (k, v) in src.enumerated() { half[k] = Float16(v).bitPattern.littleEndian }
            return half.withUnsafeBytes { Data($0) }
          }
        }
        try handle.write(contentsOf: data)
        written += e.byteCount
        progress(i, written)
      }
      try handle.close()
      if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
      try FileManager.default.moveItem(at: tmp, to: url)
    } catch {
      try? handle.close()
      try? FileManager.default.removeItem(at: tmp)
      if error is WeightError || error is CheckpointError || error is ConversionError { throw error }
      throw WeightError.unreadable(file: url.path, reason: "cannot write: \(error.localizedDescription)")
    }
  }
}
