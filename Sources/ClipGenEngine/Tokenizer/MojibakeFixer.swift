// ftfy 6.3.1's `fix_encoding` (ftfy/__init__.py `_fix_encoding_one_step_and_explain`, with
// ftfy/fixes.py and ftfy/chardata.py): find text that is UTF-8 decoded in a single-byte
// encoding ("cafÃ©") and decode it again. The decision rests on ftfy's "badness" heuristic
// (`BadnessMatcher`); the codec tables and character categories come from `TokenizerTables`,
// generated from ftfy itself. ftfy's regular expressions are all fixed-length alternations,
// so they are matched here directly, without a regex engine.

/// Mojibake repair with ftfy's default configuration (restore_byte_a0,
/// replace_lossy_sequences, decode_inconsistent_utf8, fix_c1_controls all on).
enum MojibakeFixer {
  // MARK: single-byte codecs

  /// One of ftfy's CHARMAP_ENCODINGS: its decoding table and the characters it can encode.
  struct Charmap: Sendable {
    let name: String
    let decode: [Unicode.Scalar]  // 256 entries
    let encode: [UInt32: UInt8]
    let isSloppy: Bool

    init(name: String, table: [UInt16]) {
      self.name = name
      self.decode = table.map { Unicode.Scalar(UInt32($0)) ?? "\u{FFFD}" }
      var encode: [UInt32: UInt8] = [:]
      for (byte, value) in table.enumerated() { encode[UInt32(value)] = UInt8(byte) }
      self.encode = encode
      self.isSloppy = name.hasPrefix("sloppy")
    }

    /// `chardata.possible_encoding`: every character is ASCII other than U+1A, or the
    /// decoding of a byte in 0x80...0xFF or of byte 0x1A.
    func canEncode(_ text: [Unicode.Scalar]) -> Bool {
      text.allSatisfy { s in
        if s.value < 0x80 && s.value != 0x1A { return true }
        guard let byte = encode[s.value] else { return false }
        return byte >= 0x80 || byte == 0x1A
      }
    }

    /// `text.encode(name)`; only called after `canEncode` said yes.
    func bytes(_ text: [Unicode.Scalar]) -> [UInt8] {
      text.map { s in s.value < 0x80 && s.value != 0x1A ? UInt8(s.value) : encode[s.value] ?? 0x1A }
    }
  }

  static let charmaps: [Charmap] = TokenizerTables.charmapEncodings.map {
    Charmap(name: $0.name, table: $0.table)
  }
  static let sloppyWindows1252: Charmap =
    charmaps.first { $0.name == "sloppy-windows-1252" } ?? Charmap(name: "latin-1", table: (0..<256).map { UInt16($0) })

  // MARK: fix_encoding

  /// `ftfy.fix_encoding`: one-step fixes until nothing changes.
  static func fixEncoding(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    var text = text
    while true {
      let previous = text
      text = fixEncodingOneStep(text)
      if text == previous { return text }
    }
  }

  static func fixEncodingOneStep(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    if text.isEmpty || text.allSatisfy({ $0.isASCII }) || !isBad(text) { return text }

    var possible: [String] = []
    for charmap in charmaps where charmap.canEncode(text) {
      possible.append(charmap.name)
      var bytes = charmap.bytes(text)
      if charmap.name != "macroman", BytePatterns.alteredUTF8.firstMatch(in: bytes) != nil {
        bytes = restoreByteA0(bytes)
      }
      if charmap.isSloppy {
        bytes = BytePatterns.lossyUTF8.replaceAll(in: bytes, with: [0xEF, 0xBF, 0xBD])
      }
      let decoded =
        bytes.contains(0xED) || bytes.contains(0xC0)
        ? UTF8Decoding.decodeVariants(bytes) : UTF8Decoding.decodeStrict(bytes)
      if let decoded { return decoded }
    }

    if !UTF8Detector.shared.matches(in: text).isEmpty {
      let fixed = decodeInconsistentUTF8(text)
      if fixed != text { return fixed }
    }

    // ftfy compares against "windows-1252", a name that never appears in its list (only
    // "sloppy-windows-1252" does), so Latin-1 text always gets this reinterpretation.
    if possible.contains("latin-1") {
      let bytes = text.map { UInt8($0.value) }
      if let fixed = decodeStrictWindows1252(bytes), fixed != text { return fixed }
    }

    if text.contains(where: isC1) { return fixC1Controls(text) }
    return text
  }

  /// `bytes.decode("windows-1252")` (strict): the five unassigned bytes fail.
  static func decodeStrictWindows1252(_ bytes: [UInt8]) -> [Unicode.Scalar]? {
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(bytes.count)
    for b in bytes {
      if b < 0x80 {
        out.append(Unicode.Scalar(b))
      } else if [0x81, 0x8D, 0x8F, 0x90, 0x9D].contains(b) {
        return nil
      } else {
        out.append(sloppyWindows1252.decode[Int(b)])
      }
    }
    return out
  }

  @inline(__always) static func isC1(_ s: Unicode.Scalar) -> Bool { s.value >= 0x80 && s.value <= 0x9F }

  /// `fixes.fix_c1_controls`: each C1 control read as its sloppy Windows-1252 byte.
  static func fixC1Controls(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    guard text.contains(where: isC1) else { return text }
    return text.map { isC1($0) ? sloppyWindows1252.decode[Int($0.value)] : $0 }
  }

  /// `fixes.restore_byte_a0`: `\xc3 ` before most words becomes `\xc3\xa0 ` (an "à"), then
  /// spaces inside sequences that would be UTF-8 with byte 0xA0 become 0xA0.
  static func restoreByteA0(_ bytes: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count + 4)
    var i = 0
    let exceptions: [[UInt8]] = [
      [0x20], Array("quele".utf8), Array("quela".utf8), Array("quilo".utf8), Array("s ".utf8),
    ]
    while i < bytes.count {
      if bytes[i] == 0xC3, i + 1 < bytes.count, bytes[i + 1] == 0x20 {
        let rest = bytes[(i + 2)...]
        if !exceptions.contains(where: { rest.starts(with: $0) }) {
          out.append(contentsOf: [0xC3, 0xA0, 0x20])
          i += 2
          continue
        }
      }
      out.append(bytes[i])
      i += 1
    }
    return BytePatterns.alteredUTF8.replaceAll(in: out) { match in
      match.map { $0 == 0x20 ? 0xA0 : $0 }
    }
  }

  /// `fixes.decode_inconsistent_utf8`: fix each UTF-8-looking run that is itself "bad" and
  /// shorter than the whole text.
  static func decodeInconsistentUTF8(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    let runs = UTF8Detector.shared.matches(in: text)
    guard !runs.isEmpty else { return text }
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(text.count)
    var last = 0
    for run in runs {
      out.append(contentsOf: text[last..<run.lowerBound])
      let piece = Array(text[run])
      out.append(contentsOf: piece.count < text.count && isBad(piece) ? fixEncoding(piece) : piece)
      last = run.upperBound
    }
    out.append(contentsOf: text[last...])
    return out
  }

  // MARK: the badness heuristic

  /// `badness.is_bad`: does any alternative of ftfy's BADNESS_RE match somewhere?
  static func isBad(_ text: [Unicode.Scalar]) -> Bool {
    BadnessMatcher.shared.matches(text)
  }
}

/// chardata.UTF8_DETECTOR_RE, `(?<![strict])([first2][cont]|[first3][cont]{2}|[first4][cont]{3})+`:
/// runs of characters that look like a UTF-8 lead byte and its continuation bytes, not
/// preceded by a strict continuation character.
struct UTF8Detector: Sendable {
  let firstOf2: Set<UInt32>
  let firstOf3: Set<UInt32>
  let firstOf4: Set<UInt32>
  let continuation: Set<UInt32>
  let continuationStrict: Set<UInt32>

  static let shared = UTF8Detector()

  init() {
    func clue(_ name: String) -> Set<UInt32> {
      Set((TokenizerTables.utf8Clues[name] ?? []).flatMap { $0 })
    }
    firstOf2 = clue("utf8_first_of_2")
    firstOf3 = clue("utf8_first_of_3")
    firstOf4 = clue("utf8_first_of_4")
    continuation = clue("utf8_continuation")
    continuationStrict = clue("utf8_continuation_strict")
  }

  /// Length of one lead + continuation unit at `i` (first alternative that fits), or nil.
  private func unit(_ text: [Unicode.Scalar], at i: Int) -> Int? {
    func continues(_ from: Int, _ count: Int) -> Bool {
      guard from + count <= text.count else { return false }
      return text[from..<(from + count)].allSatisfy { continuation.contains($0.value) }
    }
    let lead = text[i].value
    if firstOf2.contains(lead), continues(i + 1, 1) { return 2 }
    if firstOf3.contains(lead), continues(i + 1, 2) { return 3 }
    if firstOf4.contains(lead), continues(i + 1, 3) { return 4 }
    return nil
  }

  /// The non-overlapping matches, left to right, as `re.finditer` finds them. With nothing
  /// after the repeated group, taking the first alternative that fits at each step is what the
  /// backtracking engine does.
  func matches(in text: [Unicode.Scalar]) -> [Range<Int>] {
    var runs: [Range<Int>] = []
    var i = 0
    while i < text.count {
      if text[i].isASCII || (i > 0 && continuationStrict.contains(text[i - 1].value)) {
        i += 1
        continue
      }
      var end = i
      while end < text.count, let length = unit(text, at: end) { end += length }
      if end > i {
        runs.append(i..<end)
        i = end
      } else {
        i += 1
      }
    }
    return runs
  }
}

// MARK: - byte patterns

/// ftfy's byte-level regular expressions, all alternations of fixed-length byte classes.
struct BytePatterns: Sendable {
  /// Alternatives tried in order at each position; each is a sequence of byte sets.
  let alternatives: [[ByteSet]]

  struct ByteSet: Sendable {
    var bits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    init(_ ranges: ClosedRange<UInt8>...) {
      for r in ranges { for b in r { insert(b) } }
    }
    mutating func insert(_ b: UInt8) {
      let bit = UInt64(1) << UInt64(b & 63)
      switch b >> 6 {
      case 0: bits.0 |= bit
      case 1: bits.1 |= bit
      case 2: bits.2 |= bit
      default: bits.3 |= bit
      }
    }
    func contains(_ b: UInt8) -> Bool {
      let bit = UInt64(1) << UInt64(b & 63)
      switch b >> 6 {
      case 0: return bits.0 & bit != 0
      case 1: return bits.1 & bit != 0
      case 2: return bits.2 & bit != 0
      default: return bits.3 & bit != 0
      }
    }
  }

  /// Length of the first alternative matching at `i`, if any.
  func matchLength(in bytes: [UInt8], at i: Int) -> Int? {
    for alternative in alternatives where i + alternative.count <= bytes.count {
      var ok = true
      for (k, set) in alternative.enumerated() where !set.contains(bytes[i + k]) {
        ok = false
        break
      }
      if ok { return alternative.count }
    }
    return nil
  }

  func firstMatch(in bytes: [UInt8]) -> Int? {
    for i in bytes.indices where matchLength(in: bytes, at: i) != nil { return i }
    return nil
  }

  /// `re.sub` with a function of the matched bytes.
  func replaceAll(in bytes: [UInt8], _ transform: (ArraySlice<UInt8>) -> [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    var i = 0
    while i < bytes.count {
      if let length = matchLength(in: bytes, at: i) {
        out.append(contentsOf: transform(bytes[i..<(i + length)]))
        i += length
      } else {
        out.append(bytes[i])
        i += 1
      }
    }
    return out
  }

  func replaceAll(in bytes: [UInt8], with replacement: [UInt8]) -> [UInt8] {
    replaceAll(in: bytes) { _ in replacement }
  }

  private typealias S = ByteSet

  /// chardata.ALTERED_UTF8_RE: UTF-8 sequences whose 0xA0 byte became a space.
  static let alteredUTF8 = BytePatterns(alternatives: [
    [S(0xC2...0xC3, 0xC5...0xC5, 0xCE...0xCE, 0xD0...0xD0, 0xD9...0xD9), S(0x20...0x20)],
    [S(0xE2...0xE3), S(0x20...0x20), S(0x80...0x84, 0x86...0x9F, 0xA1...0xBF)],
    [S(0xE0...0xE3), S(0x80...0x84, 0x86...0x9F, 0xA1...0xBF), S(0x20...0x20)],
    [S(0xF0...0xF0), S(0x20...0x20), S(0x80...0xBF), S(0x80...0xBF)],
    [S(0xF0...0xF0), S(0x80...0xBF), S(0x20...0x20), S(0x80...0xBF)],
    [S(0xF0...0xF0), S(0x80...0xBF), S(0x80...0xBF), S(0x20...0x20)],
  ])

  /// chardata.LOSSY_UTF8_RE: UTF-8 sequences with bytes lost to 0x1A (or `?`).
  static let lossyUTF8: BytePatterns = {
    let sub = S(0x1A...0x1A)
    let subOrQ = S(0x1A...0x1A, 0x3F...0x3F)
    let subOrCont = S(0x1A...0x1A, 0x80...0xBF)
    let any = S(0x1A...0x1A, 0x3F...0x3F, 0x80...0xBF)
    let ed = S(0xED...0xED)
    return BytePatterns(alternatives: [
      [S(0xC2...0xDF), sub],
      [S(0xC2...0xC3), S(0x3F...0x3F)],
      [ed, S(0xA0...0xAF), subOrQ, ed, S(0xB0...0xBF), any],
      [ed, S(0xA0...0xAF), any, ed, S(0xB0...0xBF), subOrQ],
      [S(0xE0...0xEF), subOrQ, subOrCont],
      [S(0xE0...0xEF), subOrCont, subOrQ],
      [S(0xF0...0xF4), subOrQ, subOrCont, subOrCont],
      [S(0xF0...0xF4), subOrCont, subOrQ, subOrCont],
      [S(0xF0...0xF4), subOrCont, subOrCont, subOrQ],
      [sub],
    ])
  }()
}

// MARK: - UTF-8 decoding

/// Python's strict UTF-8 decoder and ftfy's "utf-8-variants" (CESU-8 surrogate pairs and
/// Java's two-byte NUL), both failing (nil) where Python raises UnicodeDecodeError.
enum UTF8Decoding {
  static func decodeStrict(_ bytes: [UInt8]) -> [Unicode.Scalar]? {
    decode(bytes, variants: false)
  }

  static func decodeVariants(_ bytes: [UInt8]) -> [Unicode.Scalar]? {
    decode(bytes, variants: true)
  }

  private static func decode(_ bytes: [UInt8], variants: Bool) -> [Unicode.Scalar]? {
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(bytes.count)
    let n = bytes.count
    var i = 0
    func cont(_ k: Int) -> UInt32? {
      guard k < n, bytes[k] & 0xC0 == 0x80 else { return nil }
      return UInt32(bytes[k] & 0x3F)
    }
    while i < n {
      let b0 = bytes[i]
      if b0 < 0x80 {
        out.append(Unicode.Scalar(b0))
        i += 1
        continue
      }
      if variants {
        if b0 == 0xC0 {
          guard i + 1 < n, bytes[i + 1] == 0x80 else { return nil }
          out.append("\u{0}")
          i += 2
          continue
        }
        if b0 == 0xED, i + 1 < n, bytes[i + 1] >= 0xA0 {
          // 11101101 1010abcd 10efghij 11101101 1011klmn 10opqrst
          guard i + 5 < n, bytes[i + 1] <= 0xAF, let c2 = cont(i + 2), bytes[i + 3] == 0xED,
            bytes[i + 4] >= 0xB0, bytes[i + 4] <= 0xBF, let c5 = cont(i + 5)
          else { return nil }
          let value =
            (UInt32(bytes[i + 1] & 0x0F) << 16) + (c2 << 10) + (UInt32(bytes[i + 4] & 0x0F) << 6) + c5
            + 0x10000
          guard let scalar = Unicode.Scalar(value) else { return nil }
          out.append(scalar)
          i += 6
          continue
        }
      }
      let value: UInt32
      switch b0 {
      case 0xC2...0xDF:
        guard let c1 = cont(i + 1) else { return nil }
        value = (UInt32(b0 & 0x1F) << 6) | c1
        i += 2
      case 0xE0...0xEF:
        guard let c1 = cont(i + 1), let c2 = cont(i + 2) else { return nil }
        if b0 == 0xE0 && c1 < 0x20 { return nil }  // overlong
        if b0 == 0xED && c1 >= 0x20 { return nil }  // surrogate
        value = (UInt32(b0 & 0x0F) << 12) | (c1 << 6) | c2
        i += 3
      case 0xF0...0xF4:
        guard let c1 = cont(i + 1), let c2 = cont(i + 2), let c3 = cont(i + 3) else { return nil }
        if b0 == 0xF0 && c1 < 0x10 { return nil }  // overlong
        if b0 == 0xF4 && c1 >= 0x10 { return nil }  // past U+10FFFF
        value = (UInt32(b0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3
        i += 4
      default:
        return nil
      }
      guard let scalar = Unicode.Scalar(value) else { return nil }
      out.append(scalar)
    }
    return out
  }
}
