// DEFLATE decompression (RFC 1951), the gzip container (RFC 1952) and CRC-32, written from the
// RFCs so the engine needs no zlib module. PyTorch stores tensor data uncompressed; compressed
// entries are the small ones (TorchScript code, other tools' zips) and OpenAI's gzipped BPE file,
// so this favours simplicity over speed (about 50-100 MB/s).
import ClipGenEngine
import Foundation

/// Why compressed data could not be decoded.
struct InflateError: Error, CustomStringConvertible {
  let description: String
  init(_ d: String) { description = d }
}

/// A DEFLATE decoder: `Inflater.inflate(bytes)` returns the decompressed bytes.
enum Inflater {
  /// The most one stream may decompress to. PyTorch stores tensor data uncompressed; what is
  /// deflated (pickles, TorchScript code, a gzipped BPE vocabulary) is far smaller, so anything
  /// beyond this is a decompression bomb, refused before it fills memory.
  static let maximumOutput = 256 << 20
  /// DEFLATE's largest expansion: a 258-byte match per (at best) 2 bits, about 1032:1.
  static let maximumRatio = 1032

  /// Decompresses one raw DEFLATE stream (no zlib or gzip wrapper).
  /// - Parameters:
  ///   - input: the compressed bytes.
  ///   - expectedSize: the decompressed size when known (a zip entry's), to reserve memory and to
  ///     refuse output that grows past it.
  /// - Returns: the bytes, and how many input bytes the stream used.
  static func inflate(
    _ input: UnsafeRawBufferPointer, expectedSize: Int? = nil, maximumOutput: Int = Inflater.maximumOutput
  ) throws -> (
    bytes: [UInt8], consumed: Int
  ) {
    var state = InflateState(input: input)
    if let n = expectedSize {
      // A recorded size is only a claim: reserve no more than the input can produce.
      guard n <= maximumOutput else {
        throw InflateError("the recorded size \(n) is more than the \(maximumOutput >> 20) MiB this reader inflates")
      }
      guard n <= input.count * maximumRatio + 1024 else {
        throw InflateError("the recorded size \(n) is more than \(input.count) compressed bytes can hold")
      }
      state.out.reserveCapacity(n)
    }
    state.limit = min(expectedSize ?? maximumOutput, maximumOutput)
    try state.run()
    return (state.out, state.consumedBytes)
  }

  /// Decompresses a gzip file (one or more members), checking each member's CRC and length.
  static func gunzip(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
    var out: [UInt8] = []
    var pos = 0
    repeat {
      guard input.count - pos >= 18 else { throw InflateError("gzip data ends inside a member header (truncated)") }
      guard input[pos] == 0x1F, input[pos + 1] == 0x8B else { throw InflateError("not gzip data (no 1f 8b signature)") }
      guard input[pos + 2] == 8 else { throw InflateError("gzip compression method \(input[pos + 2]) is not deflate") }
      let flags = input[pos + 3]
      var p = pos + 10
      func need(_ n: Int) throws {
        guard p + n <= input.count else { throw InflateError("gzip header is truncated") }
      }
      if flags & 4 != 0 {  // FEXTRA
        try need(2)
        let xlen = Int(input[p]) | Int(input[p + 1]) << 8
        p += 2
        try need(xlen)
        p += xlen
      }
      for bit in [UInt8(8), 16] where flags & bit != 0 {  // FNAME, FCOMMENT: zero-terminated
        while true {
          try need(1)
          p += 1
          if input[p - 1] == 0 { break }
        }
      }
      if flags & 2 != 0 {  // FHCRC
        try need(2)
        p += 2
      }
      let (bytes, used) = try inflate(UnsafeRawBufferPointer(rebasing: input[p...]))
      p += used
      guard p + 8 <= input.count else { throw InflateError("gzip data ends before the member trailer (truncated)") }
      let crc = UInt32(input[p]) | UInt32(input[p + 1]) << 8 | UInt32(input[p + 2]) << 16 | UInt32(input[p + 3]) << 24
      let size =
        UInt32(input[p + 4]) | UInt32(input[p + 5]) << 8 | UInt32(input[p + 6]) << 16 | UInt32(input[p + 7]) << 24
      guard CRC32.checksum(bytes) == crc else { throw InflateError("gzip CRC-32 mismatch (corrupt data)") }
      guard UInt32(truncatingIfNeeded: bytes.count) == size else {
        throw InflateError("gzip length mismatch (corrupt data)")
      }
      guard out.count + bytes.count <= maximumOutput else {
        throw InflateError("gzip data inflates to more than \(maximumOutput >> 20) MiB (a decompression bomb?)")
      }
      out += bytes
      pos = p + 8
    } while pos < input.count && input[pos] == 0x1F
    return out
  }
}

/// A canonical Huffman code: code-length counts and symbols in code order (RFC 1951 §3.2.2).
private struct Huffman {
  var counts = [Int](repeating: 0, count: 16)
  var symbols: [Int]

  /// A code from lengths read out of compressed data: over-subscribed lengths are invalid;
  /// incomplete codes are allowed (e.g. a single distance code).
  init(checking lengths: ArraySlice<Int>) throws {
    self.init(lengths: lengths)
    var left = 1
    for len in 1..<16 {
      left <<= 1
      left -= counts[len]
      if left < 0 { throw InflateError("invalid Huffman code lengths (over-subscribed)") }
    }
  }

  init(lengths: ArraySlice<Int>) {
    symbols = [Int](repeating: 0, count: lengths.count)
    for l in lengths { counts[l] += 1 }
    counts[0] = 0
    var offsets = [Int](repeating: 0, count: 16)
    for len in 1..<15 { offsets[len + 1] = offsets[len] + counts[len] }
    for (symbol, l) in lengths.enumerated() where l != 0 {
      symbols[offsets[l]] = symbol
      offsets[l] += 1
    }
  }
}

private struct InflateState {
  let input: UnsafeRawBufferPointer
  var pos = 0
  var bitBuffer: UInt64 = 0
  var bitCount = 0
  var out: [UInt8] = []
  var limit: Int?

  init(input: UnsafeRawBufferPointer) { self.input = input }

  /// Whole bytes consumed (bits left in the buffer are handed back).
  var consumedBytes: Int { pos - bitCount / 8 }

  static let lengthBase = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258,
  ]
  static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
  static let distanceBase = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
    8193, 12289, 16385, 24577,
  ]
  static let distanceExtra = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
  ]
  static let codeLengthOrder = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

  mutating func bits(_ n: Int) throws -> Int {
    while bitCount < n {
      guard pos < input.count else { throw InflateError("compressed data ends early (truncated)") }
      bitBuffer |= UInt64(input[pos]) << UInt64(bitCount)
      pos += 1
      bitCount += 8
    }
    let v = Int(bitBuffer & ((1 << UInt64(n)) - 1))
    bitBuffer >>= UInt64(n)
    bitCount -= n
    return v
  }

  mutating func decode(_ h: Huffman) throws -> Int {
    var code = 0
    var first = 0
    var index = 0
    for len in 1..<16 {
      code |= try bits(1)
      let count = h.counts[len]
      if code - count < first { return h.symbols[index + (code - first)] }
      index += count
      first += count
      first <<= 1
      code <<= 1
    }
    throw InflateError("invalid Huffman code in compressed data")
  }

  mutating func emit(_ byte: UInt8) throws {
    if let limit, out.count >= limit {
      throw InflateError("decompressed data is longer than the recorded size \(limit)")
    }
    out.append(byte)
  }

  mutating func run() throws {
    var last = 0
    repeat {
      last = try bits(1)
      switch try bits(2) {
      case 0: try stored()
      case 1: try codes(Self.fixed.lengths, Self.fixed.distances)
      case 2:
        let (l, d) = try dynamicTables()
        try codes(l, d)
      default: throw InflateError("invalid DEFLATE block type 3")
      }
    } while last == 0
  }

  mutating func stored() throws {
    bitBuffer = 0
    bitCount = 0
    guard pos + 4 <= input.count else {
      throw InflateError("compressed data ends inside a stored block header (truncated)")
    }
    let len = Int(input[pos]) | Int(input[pos + 1]) << 8
    let nlen = Int(input[pos + 2]) | Int(input[pos + 3]) << 8
    pos += 4
    guard len == (~nlen & 0xFFFF) else { throw InflateError("stored block length check failed") }
    guard pos + len <= input.count else { throw InflateError("compressed data ends inside a stored block (truncated)") }
    if let limit, out.count + len > limit {
      throw InflateError("decompressed data is longer than the recorded size \(limit)")
    }
    out.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[pos..<(pos + len)]))
    pos += len
  }

  static let fixed: (lengths: Huffman, distances: Huffman) = {
    var l = [Int](repeating: 8, count: 288)
    for i in 144..<256 { l[i] = 9 }
    for i in 256..<280 { l[i] = 7 }
    return (Huffman(lengths: l[...]), Huffman(lengths: [Int](repeating: 5, count: 30)[...]))
  }()

  mutating func dynamicTables() throws -> (Huffman, Huffman) {
    let nlen = try bits(5) + 257
    let ndist = try bits(5) + 1
    let ncode = try bits(4) + 4
    guard nlen <= 286, ndist <= 30 else { throw InflateError("too many length or distance codes") }
    var codeLengths = [Int](repeating: 0, count: 19)
    for i in 0..<ncode { codeLengths[Self.codeLengthOrder[i]] = try bits(3) }
    let lencode = try Huffman(checking: codeLengths[...])
    var lengths = [Int](repeating: 0, count: nlen + ndist)
    var index = 0
    while index < nlen + ndist {
      var symbol = try decode(lencode)
      if symbol < 16 {
        lengths[index] = symbol
        index += 1
        continue
      }
      var value = 0
      switch symbol {
      case 16:
        guard index > 0 else { throw InflateError("repeat of a code length with none before it") }
        value = lengths[index - 1]
        symbol = 3 + (try bits(2))
      case 17: symbol = 3 + (try bits(3))
      default: symbol = 11 + (try bits(7))
      }
      guard index + symbol <= nlen + ndist else { throw InflateError("code length repeat runs past the table") }
      for _ in 0..<symbol {
        lengths[index] = value
        index += 1
      }
    }
    guard lengths[256] != 0 else { throw InflateError("no end-of-block code") }
    return (try Huffman(checking: lengths[0..<nlen]), try Huffman(checking: lengths[nlen...]))
  }

  mutating func codes(_ lengthCode: Huffman, _ distanceCode: Huffman) throws {
    while true {
      let symbol = try decode(lengthCode)
      if symbol < 256 {
        try emit(UInt8(symbol))
        continue
      }
      if symbol == 256 { return }
      let s = symbol - 257
      guard s < 29 else { throw InflateError("invalid length symbol \(symbol)") }
      let length = Self.lengthBase[s] + (try bits(Self.lengthExtra[s]))
      let d = try decode(distanceCode)
      guard d < 30 else { throw InflateError("invalid distance symbol \(d)") }
      let distance = Self.distanceBase[d] + (try bits(Self.distanceExtra[d]))
      guard distance <= out.count else {
        throw InflateError("distance \(distance) reaches before the start of the data")
      }
      if let limit, out.count + length > limit {
        throw InflateError("decompressed data is longer than the recorded size \(limit)")
      }
      let start = out.count - distance
      for i in 0..<length { out.append(out[start + i]) }
    }
  }
}

/// CRC-32 (ISO-HDLC, polynomial 0xEDB88320), as zip and gzip use it. Slicing by 8.
enum CRC32 {
  private static let tables: [[UInt32]] = {
    var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
    for i in 0..<256 {
      var c = UInt32(i)
      for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
      t[0][i] = c
    }
    for i in 0..<256 {
      for k in 1..<8 { t[k][i] = (t[k - 1][i] >> 8) ^ t[0][Int(t[k - 1][i] & 0xFF)] }
    }
    return t
  }()

  static func checksum(_ bytes: [UInt8]) -> UInt32 {
    bytes.withUnsafeBytes { checksum($0) }
  }

  static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    let n = bytes.count
    var i = 0
    tables.withUnsafeBufferPointer { t in
      let t0 = t[0], t1 = t[1], t2 = t[2], t3 = t[3], t4 = t[4], t5 = t[5], t6 = t[6], t7 = t[7]
      while i + 8 <= n {
        let lo = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ crc
        let hi = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
        crc =
          t7[Int(lo & 0xFF)] ^ t6[Int((lo >> 8) & 0xFF)] ^ t5[Int((lo >> 16) & 0xFF)] ^ t4[Int(lo >> 24)]
          ^ t3[Int(hi & 0xFF)] ^ t2[Int((hi >> 8) & 0xFF)] ^ t1[Int((hi >> 16) & 0xFF)] ^ t0[Int(hi >> 24)]
        i += 8
      }
      while i < n {
        crc = t0[Int((crc ^ UInt32(bytes[i])) & 0xFF)] ^ (crc >> 8)
        i += 1
      }
    }
    return crc ^ 0xFFFF_FFFF
  }
}
