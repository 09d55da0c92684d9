// The text cleaning open_clip applies before CLIP's BPE (open_clip/tokenizer.py,
// `_clean_lower`): ftfy.fix_text, html.unescape twice, strip, collapse whitespace, lowercase.
//
// Everything works on arrays of Unicode scalars, never on `String` comparisons: Swift's
// `String ==` is canonical equivalence, Python's is code point equality, and the two differ
// exactly on the inputs (NFD text, `=` + U+0338 ...) this port has to get right.

import Foundation

/// open_clip's `_clean_lower`, step by step.
enum CLIPTextCleaner {
  /// `whitespace_clean(basic_clean(text)).lower()`.
  static func clean(_ text: String) -> [Unicode.Scalar] {
    var scalars = Array(text.unicodeScalars)
    scalars = FtfyFixer.fixText(scalars)
    scalars = HTMLUnescaper.unescape(HTMLUnescaper.unescape(scalars))
    scalars = PythonText.collapseWhitespace(scalars)  // strip + " ".join(split())
    return PythonText.lowercased(scalars)
  }
}

// MARK: - Python str semantics

/// The few `str` methods open_clip calls, with CPython's exact character sets.
enum PythonText {
  /// `str.isspace()`: bidirectional class WS, B or S, or category Zs.
  @inline(__always)
  static func isSpace(_ s: Unicode.Scalar) -> Bool {
    switch s.value {
    case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F,
      0x205F, 0x3000:
      return true
    default:
      return false
    }
  }

  /// `" ".join(text.split())` (which also strips both ends).
  static func collapseWhitespace(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(text.count)
    var pendingSpace = false
    for s in text {
      if isSpace(s) {
        pendingSpace = !out.isEmpty
      } else {
        if pendingSpace { out.append(" ") }
        pendingSpace = false
        out.append(s)
      }
    }
    return out
  }

  /// `str.lower()`: each code point's full lowercase mapping as the reference Python has it,
  /// with the Final_Sigma rule for U+03A3 that CPython implements.
  static func lowercased(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    if text.allSatisfy({ $0.isASCII }) {
      return text.map(asciiLowercased)
    }
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(text.count)
    for (i, s) in text.enumerated() {
      if s.isASCII {
        out.append(asciiLowercased(s))
      } else if s.value == 0x03A3 {
        out.append(isFinalSigma(text, at: i) ? "\u{03C2}" : "\u{03C3}")
      } else if let mapped = lowercaseMap[s.value] {
        out.append(contentsOf: mapped)
      } else {
        out.append(s)
      }
    }
    return out
  }

  @inline(__always)
  private static func asciiLowercased(_ s: Unicode.Scalar) -> Unicode.Scalar {
    s.value >= 0x41 && s.value <= 0x5A ? Unicode.Scalar(UInt8(s.value + 32)) : s
  }

  /// Python's per-code-point lowercase mapping (from `TokenizerTables`, generated with the
  /// reference Python, so characters newer than its Unicode version stay as they are).
  static let lowercaseMap: [UInt32: [Unicode.Scalar]] = {
    var map: [UInt32: [Unicode.Scalar]] = [:]
    map.reserveCapacity(TokenizerTables.lowercaseKeys.count + TokenizerTables.lowercaseMultiple.count)
    for (key, value) in zip(TokenizerTables.lowercaseKeys, TokenizerTables.lowercaseValues) {
      if let scalar = Unicode.Scalar(value) { map[key] = [scalar] }
    }
    for (key, values) in TokenizerTables.lowercaseMultiple {
      map[key] = values.compactMap(Unicode.Scalar.init)
    }
    return map
  }()

  /// `str.upper()`: each code point's full uppercase mapping.
  static func uppercased(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    text.flatMap { Array($0.properties.uppercaseMapping.unicodeScalars) }
  }

  /// CPython's `handle_capital_sigma`: \p{cased}\p{case-ignorable}* Σ !(\p{case-ignorable}* \p{cased}).
  private static func isFinalSigma(_ text: [Unicode.Scalar], at index: Int) -> Bool {
    var j = index - 1
    while j >= 0, text[j].properties.isCaseIgnorable { j -= 1 }
    guard j >= 0, text[j].properties.isCased else { return false }
    j = index + 1
    while j < text.count, text[j].properties.isCaseIgnorable { j += 1 }
    return j == text.count || !text[j].properties.isCased
  }
}

// MARK: - HTML character references

/// Python's `html.unescape` and ftfy's stricter `fixes.unescape_html`.
enum HTMLUnescaper {
  /// `html.entities.html5`, keyed by the entity name's ASCII bytes.
  static let html5: [[UInt8]: [Unicode.Scalar]] = {
    var table: [[UInt8]: [Unicode.Scalar]] = [:]
    for entry in TokenizerTables.html5Entities.split(separator: "\u{2}") {
      let parts = entry.split(separator: "\u{1}", maxSplits: 1, omittingEmptySubsequences: false)
      if parts.count == 2 { table[Array(parts[0].utf8)] = Array(parts[1].unicodeScalars) }
    }
    return table
  }()

  private static func ascii(_ s: Unicode.Scalar) -> UInt8? { s.isASCII ? UInt8(s.value) : nil }

  /// The bytes of `scalars` when all of them are ASCII.
  private static func asciiBytes(_ scalars: ArraySlice<Unicode.Scalar>) -> [UInt8]? {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(scalars.count)
    for s in scalars {
      guard let b = ascii(s) else { return nil }
      bytes.append(b)
    }
    return bytes
  }

  @inline(__always) private static func isDigit(_ s: Unicode.Scalar) -> Bool {
    s.value >= 0x30 && s.value <= 0x39
  }
  @inline(__always) private static func isHexDigit(_ s: Unicode.Scalar) -> Bool {
    isDigit(s) || (s.value | 0x20 >= 0x61 && s.value | 0x20 <= 0x66)
  }
  @inline(__always) private static func isAlnum(_ s: Unicode.Scalar) -> Bool {
    isDigit(s) || (s.value | 0x20 >= 0x61 && s.value | 0x20 <= 0x7A)
  }

  /// `html.unescape`: replaces every match of
  /// `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)`.
  static func unescape(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    guard text.contains("&") else { return text }
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(text.count)
    var i = 0
    let n = text.count
    while i < n {
      guard text[i] == "&" else {
        out.append(text[i])
        i += 1
        continue
      }
      if let (replacement, end) = charref(text, at: i + 1) {
        out.append(contentsOf: replacement)
        i = end
      } else {
        out.append("&")
        i += 1
      }
    }
    return out
  }

  /// Matches one reference body starting at `start` (just after `&`); returns its
  /// replacement and the index after it, or nil when the regex does not match there.
  private static func charref(_ text: [Unicode.Scalar], at start: Int) -> ([Unicode.Scalar], Int)? {
    let n = text.count
    guard start < n else { return nil }
    if text[start] == "#" {
      var j = start + 1
      var radix: UInt32 = 10
      if j < n, text[j] == "x" || text[j] == "X" {
        radix = 16
        j += 1
      }
      let digitsStart = j
      var value: UInt32 = 0  // saturates at 0x110000: anything larger is as invalid
      while j < n, radix == 16 ? isHexDigit(text[j]) : isDigit(text[j]) {
        let v = text[j].value
        let digit = isDigit(text[j]) ? v - 0x30 : (v | 0x20) - 0x61 + 10
        if value < 0x11_0000 { value = min(value * radix + digit, 0x11_0000) }
        j += 1
      }
      guard j > digitsStart else { return nil }
      if j < n, text[j] == ";" { j += 1 }
      return (numericReplacement(value), j)
    }
    // Named: [^\t\n\f <&#;]{1,32};?
    var j = start
    while j < n, j - start < 32 {
      switch text[j] {
      case "\t", "\n", "\u{0C}", " ", "<", "&", "#", ";": break
      default:
        j += 1
        continue
      }
      break
    }
    guard j > start else { return nil }
    if j < n, text[j] == ";" { j += 1 }
    let name = text[start..<j]
    if let bytes = asciiBytes(name), let value = html5[bytes] { return (value, j) }
    // The longest prefix (at least two characters) that is an entity name.
    var x = name.count - 1
    while x >= 2 {
      if let bytes = asciiBytes(name.prefix(x)), let value = html5[bytes] {
        return (value + Array(name.dropFirst(x)), j)
      }
      x -= 1
    }
    return (["&"] + Array(name), j)
  }

  /// `_replace_charref` for a numeric reference (values past U+10FFFF arrive as 0x110000).
  private static func numericReplacement(_ value: UInt32) -> [Unicode.Scalar] {
    if let mapped = TokenizerTables.invalidCharrefs[value] { return [Unicode.Scalar(mapped)!] }
    if (0xD800...0xDFFF).contains(value) || value > 0x10FFFF { return ["\u{FFFD}"] }
    if TokenizerTables.invalidCodepoints.contains(value) { return [] }
    return [Unicode.Scalar(value) ?? "\u{FFFD}"]
  }

  /// ftfy's `fixes.unescape_html`: only `&#?[0-9A-Za-z]{1,24};` is considered; HTML5 names
  /// that end in `;`, their all-caps spellings (for lowercase names whose caps form is not
  /// itself a reference), and numeric references whose result has no `;`.
  static func ftfyUnescape(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    guard text.contains("&") else { return text }
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(text.count)
    var i = 0
    let n = text.count
    while i < n {
      guard text[i] == "&" else {
        out.append(text[i])
        i += 1
        continue
      }
      var j = i + 1
      let numeric = j < n && text[j] == "#"
      if numeric { j += 1 }
      let nameStart = j
      while j < n, isAlnum(text[j]) { j += 1 }
      let length = j - nameStart
      guard length >= 1, length <= 24, j < n, text[j] == ";" else {
        out.append("&")
        i += 1
        continue
      }
      let entity = Array(text[i...j])  // "&...;"
      out.append(contentsOf: ftfyReplacement(entity, numeric: numeric))
      i = j + 1
    }
    return out
  }

  private static func ftfyReplacement(_ entity: [Unicode.Scalar], numeric: Bool) -> [Unicode.Scalar] {
    if numeric {
      let unescaped = unescape(entity)
      return unescaped.contains(";") ? entity : unescaped
    }
    let name = Array(entity.dropFirst().map { UInt8($0.value) })  // ASCII "name;"
    if let value = html5[name] { return value }
    // The all-caps spelling of a lowercase entity name.
    let lower = name.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 32 : $0 }
    let upperOfLower = lower.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 32 : $0 }
    if upperOfLower == name, let value = html5[lower], unescape(entity) == entity {
      return PythonText.uppercased(value)
    }
    return entity
  }
}

// MARK: - ftfy.fix_text

/// The parts of ftfy 6.3.1's `fix_text` (default configuration) that open_clip runs on every
/// caption: HTML entity decoding ("auto" mode), mojibake repair (`fix_encoding`, see
/// `MojibakeFixer`), C1 controls, Latin ligatures, character width, curly quotes, line
/// breaks, ANSI terminal escapes, control characters and NFC normalisation, applied per line
/// until nothing changes. `fix_surrogates` has no counterpart: a Swift string cannot hold a
/// lone surrogate.
enum FtfyFixer {
  /// ftfy's `max_decode_length`: lines longer than this are fixed in pieces.
  static let maxDecodeLength = 1_000_000

  static func fixText(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(text.count)
    var unescapeHTML = true  // "auto": switched off for good once a line contains "<"
    var pos = 0
    while pos < text.count {
      var end = text[pos...].firstIndex(of: "\n").map { $0 + 1 } ?? text.count
      if end - pos > maxDecodeLength { end = pos + maxDecodeLength }
      let segment = Array(text[pos..<end])
      if unescapeHTML, segment.contains("<") { unescapeHTML = false }
      out.append(contentsOf: fixSegment(segment, unescapeHTML: unescapeHTML))
      pos = end
    }
    return out
  }

  /// `fix_and_explain` on one segment: the fixers in ftfy's order until a fixed point.
  static func fixSegment(_ segment: [Unicode.Scalar], unescapeHTML: Bool) -> [Unicode.Scalar] {
    var text = segment
    while true {
      let original = text
      if unescapeHTML { text = HTMLUnescaper.ftfyUnescape(text) }
      text = MojibakeFixer.fixEncoding(text)
      text = MojibakeFixer.fixC1Controls(text)
      text = fixLatinLigatures(text)
      text = fixCharacterWidth(text)
      text = uncurlQuotes(text)
      text = fixLineBreaks(text)
      text = removeTerminalEscapes(text)
      text = removeControlCharacters(text)
      text = nfc(text)
      if text == original { return text }
    }
  }

  /// ftfy.chardata.LIGATURES.
  static let ligatures: [UInt32: String] = [
    0x0132: "IJ", 0x0133: "ij", 0x0149: "\u{02BC}n", 0x01F1: "DZ", 0x01F2: "Dz", 0x01F3: "dz",
    0x01C4: "D\u{017D}", 0x01C5: "D\u{017E}", 0x01C6: "d\u{017E}", 0x01C7: "LJ", 0x01C8: "Lj",
    0x01C9: "lj", 0x01CA: "NJ", 0x01CB: "Nj", 0x01CC: "nj", 0xFB00: "ff", 0xFB01: "fi",
    0xFB02: "fl", 0xFB03: "ffi", 0xFB04: "ffl", 0xFB05: "\u{017F}t", 0xFB06: "st",
  ]

  static func fixLatinLigatures(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    guard text.contains(where: { ligatures[$0.value] != nil }) else { return text }
    return text.flatMap { s in ligatures[s.value].map { Array($0.unicodeScalars) } ?? [s] }
  }

  /// ftfy.chardata.WIDTH_MAP: U+3000 to a space, and U+FF01..U+FFEF to their NFKC forms.
  static let widthMap: [UInt32: [Unicode.Scalar]] = {
    var map: [UInt32: [Unicode.Scalar]] = [0x3000: [" "]]
    for value in UInt32(0xFF01)..<0xFFF0 {
      guard let scalar = Unicode.Scalar(value) else { continue }
      let original = String(Character(scalar))
      let normalized = original.precomposedStringWithCompatibilityMapping
      if !normalized.unicodeScalars.elementsEqual(original.unicodeScalars) {
        map[value] = Array(normalized.unicodeScalars)
      }
    }
    return map
  }()

  static func fixCharacterWidth(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    guard text.contains(where: { $0.value == 0x3000 || ($0.value >= 0xFF01 && $0.value < 0xFFF0) })
    else { return text }
    return text.flatMap { widthMap[$0.value] ?? [$0] }
  }

  /// `uncurl_quotes`: U+201C..U+201F to `"`, U+02BC and U+2018..U+201B to `'`.
  static func uncurlQuotes(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    text.map { s in
      switch s.value {
      case 0x201C...0x201F: return "\""
      case 0x02BC, 0x2018...0x201B: return "'"
      default: return s
      }
    }
  }

  /// `fix_line_breaks`: CRLF, CR, U+2028, U+2029 and U+0085 become `\n`.
  static func fixLineBreaks(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    guard text.contains(where: { [0x0D, 0x85, 0x2028, 0x2029].contains($0.value) }) else { return text }
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(text.count)
    var i = 0
    while i < text.count {
      switch text[i].value {
      case 0x0D:
        out.append("\n")
        if i + 1 < text.count, text[i + 1] == "\n" { i += 1 }
      case 0x85, 0x2028, 0x2029:
        out.append("\n")
      default:
        out.append(text[i])
      }
      i += 1
    }
    return out
  }

  /// `remove_terminal_escapes`: removes every `\x1b[` (decimal digits or `;`)* ASCII letter.
  static func removeTerminalEscapes(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    guard text.contains("\u{1B}") else { return text }
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(text.count)
    var i = 0
    while i < text.count {
      if text[i] == "\u{1B}", i + 1 < text.count, text[i + 1] == "[" {
        var j = i + 2
        while j < text.count, text[j].properties.generalCategory == .decimalNumber || text[j] == ";" {
          j += 1
        }
        if j < text.count, (text[j].value | 0x20) >= 0x61, (text[j].value | 0x20) <= 0x7A {
          i = j + 1
          continue
        }
      }
      out.append(text[i])
      i += 1
    }
    return out
  }

  /// `remove_control_chars`: U+00..U+08, U+0B, U+0E..U+1F, U+7F, U+206A..U+206F, U+FEFF and
  /// U+FFF9..U+FFFC are dropped.
  @inline(__always)
  static func isRemovedControl(_ s: Unicode.Scalar) -> Bool {
    switch s.value {
    case 0x00...0x08, 0x0B, 0x0E...0x1F, 0x7F, 0x206A...0x206F, 0xFEFF, 0xFFF9...0xFFFC: return true
    default: return false
    }
  }

  static func removeControlCharacters(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    guard text.contains(where: isRemovedControl) else { return text }
    return text.filter { !isRemovedControl($0) }
  }

  /// Unicode NFC. Text whose code points are all below U+0300 is already NFC (no combining
  /// mark, no Hangul jamo, no singleton decomposition), which skips Foundation for ASCII.
  /// Runs of more than `maximumNonStarters` combining marks are cut to that many first (the
  /// bound of Unicode's Stream-Safe Text Format, UAX #15): canonical reordering is quadratic in
  /// a run's length, and one grapheme with 63,000 marks took 26 s. No real text comes near it.
  static func nfc(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    guard text.contains(where: { $0.value >= 0x300 }) else { return text }
    var string = String()
    string.unicodeScalars.append(contentsOf: streamSafe(text))
    return Array(string.precomposedStringWithCanonicalMapping.unicodeScalars)
  }

  static let maximumNonStarters = 30

  /// `text` with every run of combining marks (non-zero canonical combining class) cut to
  /// `maximumNonStarters`.
  static func streamSafe(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(text.count)
    var run = 0
    for s in text {
      if s.value >= 0x300, s.properties.canonicalCombiningClass != .notReordered {
        run += 1
        if run > maximumNonStarters { continue }
      } else {
        run = 0
      }
      out.append(s)
    }
    return out
  }
}
