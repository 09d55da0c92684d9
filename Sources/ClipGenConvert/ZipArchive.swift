// A read-only zip archive over a memory-mapped file (PKWARE APPNOTE 6.3): the end-of-central-
// directory record (and its ZIP64 form), the central directory, local headers; stored and
// deflated entries. `torch.save` writes stored entries whose data starts on a 64-byte boundary,
// so tensor bytes are read in place, without a copy.
import ClipGenEngine
import Foundation

/// One member of a zip archive.
struct ZipEntry: Sendable {
  let name: String
  /// 0 stored, 8 deflated.
  let method: UInt16
  let flags: UInt16
  let crc32: UInt32
  let compressedSize: Int
  let uncompressedSize: Int
  /// Absolute offset of the entry's data (after its local header) in the file.
  let dataOffset: Int
}

/// The entries of a zip file, read from its central directory; every size and offset is checked
/// against the file length before use.
final class ZipArchive: @unchecked Sendable {
  let path: String
  let file: MappedFile
  /// Entries in central-directory order.
  let entries: [ZipEntry]
  private let index: [String: Int]

  /// Whether `bytes` start like a zip file (a local file header, or an empty archive's end record).
  static func looksLikeZip(_ bytes: UnsafeRawBufferPointer) -> Bool {
    guard bytes.count >= 4 else { return false }
    let sig = UInt32(littleEndian: bytes.loadUnaligned(as: UInt32.self))
    return sig == 0x0403_4B50 || sig == 0x0605_4B50
  }

  init(path: String, file: MappedFile) throws {
    self.path = path
    self.file = file
    let r = ZipReader(bytes: file.bytes, path: path)
    let (count, directoryOffset, directorySize) = try r.centralDirectory()
    var entries: [ZipEntry] = []
    var index: [String: Int] = [:]
    entries.reserveCapacity(min(count, 1 << 20))
    var o = directoryOffset
    let end = directoryOffset + directorySize
    for i in 0..<count {
      let (entry, next) = try r.entry(number: i, at: o, directoryEnd: end)
      index[entry.name] = entries.count
      entries.append(entry)
      o = next
    }
    self.entries = entries
    self.index = index
  }

  func entry(_ name: String) -> ZipEntry? { index[name].map { entries[$0] } }

  /// Calls `body` with an entry's uncompressed bytes: in place for a stored entry (valid only
  /// inside `body`), decompressed into a temporary buffer for a deflated one.
  /// - Parameter verify: check the CRC-32 (always done for deflated entries).
  func withContents<R>(of entry: ZipEntry, verify: Bool = false, _ body: (UnsafeRawBufferPointer) throws -> R) throws
    -> R
  {
    let raw = UnsafeRawBufferPointer(rebasing: file.bytes[entry.dataOffset..<(entry.dataOffset + entry.compressedSize)])
    guard entry.flags & 1 == 0 else {
      throw CheckpointError.corruptArchive(file: path, reason: "entry '\(entry.name)' is encrypted")
    }
    switch entry.method {
    case 0:
      guard entry.compressedSize == entry.uncompressedSize else {
        throw CheckpointError.corruptArchive(
          file: path,
          reason:
            "stored entry '\(entry.name)' records \(entry.compressedSize) bytes but a size of \(entry.uncompressedSize)"
        )
      }
      if verify, CRC32.checksum(raw) != entry.crc32 {
        throw CheckpointError.corruptArchive(
          file: path, reason: "entry '\(entry.name)' fails its CRC-32 check (corrupt data)")
      }
      return try body(raw)
    case 8:
      let bytes: [UInt8]
      do {
        bytes = try Inflater.inflate(raw, expectedSize: entry.uncompressedSize).bytes
      } catch let e as InflateError {
        throw CheckpointError.corruptArchive(file: path, reason: "entry '\(entry.name)': \(e.description)")
      }
      guard bytes.count == entry.uncompressedSize, CRC32.checksum(bytes) == entry.crc32 else {
        throw CheckpointError.corruptArchive(
          file: path, reason: "entry '\(entry.name)' fails its size or CRC-32 check after decompression (corrupt data)")
      }
      return try bytes.withUnsafeBytes { try body($0) }
    default:
      throw CheckpointError.corruptArchive(
        file: path, reason: "entry '\(entry.name)' uses compression method \(entry.method) (supported: stored, deflate)"
      )
    }
  }

  /// An entry's bytes, copied out.
  func contents(of entry: ZipEntry, verify: Bool = true) throws -> [UInt8] {
    try withContents(of: entry, verify: verify) { Array($0) }
  }
}

/// Bounds-checked reading of a zip file's records (every offset is checked against the file
/// before it is read; the fuzz target `checkpoint` runs through here).
private struct ZipReader {
  let bytes: UnsafeRawBufferPointer
  let path: String
  var n: Int { bytes.count }

  func u16(_ o: Int) -> Int { Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt16.self))) }
  func u32(_ o: Int) -> Int { Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
  func u64(_ o: Int) throws -> Int {
    let v = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt64.self))
    guard v <= UInt64(Int.max / 2) else {
      throw CheckpointError.corruptArchive(file: path, reason: "a ZIP64 size or offset is out of range")
    }
    return Int(v)
  }

  /// The end-of-central-directory record: 22 bytes plus a comment of at most 65535 bytes, found
  /// from the end of the file.
  func endRecord() throws -> Int {
    if n >= 22 {
      var o = n - 22
      let lowest = max(0, n - 22 - 65535)
      while o >= lowest {
        if bytes[o] == 0x50, bytes[o + 1] == 0x4B, bytes[o + 2] == 5, bytes[o + 3] == 6, o + 22 + u16(o + 20) == n {
          return o
        }
        o -= 1
      }
    }
    if ZipArchive.looksLikeZip(bytes) {
      throw CheckpointError.truncated(
        file: path,
        reason:
          "the zip archive has no end-of-central-directory record; the file (\(n) bytes) is cut short — was the download or the save interrupted?"
      )
    }
    throw CheckpointError.corruptArchive(file: path, reason: "not a zip archive (no end-of-central-directory record)")
  }

  /// The central directory's entry count, offset and size (ZIP64 where the record says so),
  /// checked to lie inside the file.
  func centralDirectory() throws -> (count: Int, offset: Int, size: Int) {
    let eocd = try endRecord()
    var count = u16(eocd + 10)
    var directorySize = u32(eocd + 12)
    var directoryOffset = u32(eocd + 16)
    if count == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
      // ZIP64: a locator just before the record points at the ZIP64 end record.
      let locator = eocd - 20
      guard locator >= 0, u32(locator) == 0x0706_4B50 else {
        throw CheckpointError.corruptArchive(
          file: path, reason: "ZIP64 archive without a ZIP64 end-of-central-directory locator")
      }
      let record = try u64(locator + 8)
      guard record + 56 <= locator, u32(record) == 0x0606_4B50 else {
        throw CheckpointError.corruptArchive(
          file: path, reason: "ZIP64 end-of-central-directory record not found at offset \(record)")
      }
      count = try u64(record + 32)
      directorySize = try u64(record + 40)
      directoryOffset = try u64(record + 48)
    }
    guard directoryOffset <= n, directorySize <= n - directoryOffset else {
      throw CheckpointError.truncated(
        file: path,
        reason:
          "the central directory (offset \(directoryOffset), \(directorySize) bytes) lies past the end of the \(n)-byte file"
      )
    }
    return (count, directoryOffset, directorySize)
  }

  /// Central directory entry `i` at offset `o`, and the offset of the next one.
  func entry(number i: Int, at o: Int, directoryEnd end: Int) throws -> (ZipEntry, next: Int) {
    guard o + 46 <= end, u32(o) == 0x0201_4B50 else {
      throw CheckpointError.corruptArchive(file: path, reason: "central directory entry \(i) is damaged")
    }
    var compressed = u32(o + 20)
    var uncompressed = u32(o + 24)
    let nameLength = u16(o + 28)
    let extraLength = u16(o + 30)
    let commentLength = u16(o + 32)
    var localOffset = u32(o + 42)
    guard o + 46 + nameLength + extraLength + commentLength <= end else {
      throw CheckpointError.corruptArchive(file: path, reason: "central directory entry \(i) runs past the directory")
    }
    let name = String(
      decoding: UnsafeRawBufferPointer(rebasing: bytes[(o + 46)..<(o + 46 + nameLength)]), as: UTF8.self)
    // ZIP64 extra field: the 64-bit values of the fields that hold 0xFFFFFFFF, in this order.
    var e = o + 46 + nameLength
    let extraEnd = e + extraLength
    while e + 4 <= extraEnd {
      let id = u16(e)
      let size = u16(e + 2)
      guard e + 4 + size <= extraEnd else { break }
      if id == 0x0001 {
        var f = e + 4
        if uncompressed == 0xFFFF_FFFF, f + 8 <= e + 4 + size {
          uncompressed = try u64(f)
          f += 8
        }
        if compressed == 0xFFFF_FFFF, f + 8 <= e + 4 + size {
          compressed = try u64(f)
          f += 8
        }
        if localOffset == 0xFFFF_FFFF, f + 8 <= e + 4 + size { localOffset = try u64(f) }
      }
      e += 4 + size
    }
    guard localOffset + 30 <= n, u32(localOffset) == 0x0403_4B50 else {
      throw CheckpointError.truncated(
        file: path, reason: "entry '\(name)': its local header at offset \(localOffset) is missing or damaged")
    }
    let dataOffset = localOffset + 30 + u16(localOffset + 26) + u16(localOffset + 28)
    guard dataOffset <= n, compressed <= n - dataOffset else {
      throw CheckpointError.truncated(
        file: path,
        reason: "entry '\(name)' (\(compressed) bytes at offset \(dataOffset)) runs past the end of the \(n)-byte file")
    }
    let entry = ZipEntry(
      name: name, method: UInt16(u16(o + 10)), flags: UInt16(u16(o + 8)), crc32: UInt32(u32(o + 16)),
      compressedSize: compressed, uncompressedSize: uncompressed, dataOffset: dataOffset)
    return (entry, o + 46 + nameLength + extraLength + commentLength)
  }
}
