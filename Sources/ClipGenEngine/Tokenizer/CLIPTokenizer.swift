// OpenAI CLIP's byte-level BPE tokenizer, as open_clip's `SimpleTokenizer` runs it
// (open_clip/tokenizer.py), reading Hugging Face's `vocab.json` + `merges.txt`
// (openai/clip-vit-base-patch32 layout).

import Foundation
import Synchronization

/// The result of ``CLIPTokenizer/tokenize(_:contextLength:)``: the fixed-length id row CLIP's
/// text encoder reads.
public struct TokenizedText: Sendable, Equatable {
  /// Exactly `contextLength` ids: BOS, the BPE ids, EOS, then zeros.
  public let ids: [Int32]
  /// Length of `[BOS] + encode(text) + [EOS]` before truncation.
  public let tokenCount: Int
  /// True when `tokenCount` exceeded the context length and the row was cut.
  public let isTruncated: Bool
  /// Index of the first EOS id in `ids`: where CLIP pools the text features (OpenAI's
  /// `argmax` over the ids finds it because EOS is the largest id in the real vocabulary).
  public let eotIndex: Int
}

/// CLIP's tokenizer: open_clip's text cleaning, CLIP's split pattern, byte-level BPE.
///
/// Given OpenAI's vocabulary it produces the ids of OpenAI's CLIP tokenizer as open_clip
/// implements it (ftfy included):
///
/// 1. **Cleaning** (open_clip's `_clean_lower`): `ftfy.fix_text` (see ``cleanText(_:)`` for
///    the fixes covered), `html.unescape` twice, `" ".join(text.split())`, `lower()`.
/// 2. **Splitting** with CLIP's pattern, case-insensitively:
///    `<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`.
///    The two special tokens are recognised in the text itself, as in OpenAI's CLIP and
///    Hugging Face's CLIPTokenizer; only their exact spelling becomes the special id (any other
///    case-insensitive match is one ordinary piece, as in open_clip). (open_clip renamed them
///    `<start_of_text>` and `<end_of_text>`, so unmodified open_clip splits `<|endoftext|>`
///    into ordinary pieces.) Letter/number/space classes come from the pinned `regex` module's
///    Unicode tables and lowercasing from the reference Python's, both generated into
///    `TokenizerTables`; NFC uses Foundation, so characters assigned after Python's Unicode
///    version (14.0 for Python 3.11) may normalise differently.
/// 3. **BPE** on each piece's UTF-8 bytes, mapped to printable characters with GPT-2's
///    byte-to-unicode table, `</w>` appended to the last symbol, merging the pair with the
///    lowest merge rank until none applies. Results are cached per piece.
///
/// A BPE piece missing from the vocabulary (never the case with OpenAI's files, where every
/// byte and every merge result is an entry) becomes `<|endoftext|>`, the unknown token of
/// Hugging Face's CLIPTokenizer.
///
/// The type is immutable apart from its piece cache, which sits behind a `Mutex`; one
/// instance can be shared by any number of tasks.
public final class CLIPTokenizer: Sendable {
  /// The context length of every OpenAI CLIP model.
  public static let defaultContextLength = 77
  /// The start-of-text token's spelling in Hugging Face vocabularies.
  public static let startOfTextToken = "<|startoftext|>"
  /// The end-of-text token's spelling in Hugging Face vocabularies.
  public static let endOfTextToken = "<|endoftext|>"

  /// Id of `<|startoftext|>` (BOS), 49406 in OpenAI's vocabulary.
  public let startOfTextID: Int
  /// Id of `<|endoftext|>` (EOS), 49407 in OpenAI's vocabulary.
  public let endOfTextID: Int
  /// Number of entries in `vocab.json` (49408 for OpenAI's CLIP).
  public let vocabularySize: Int
  /// The largest id in the vocabulary (a model's embedding table must have more rows).
  public let largestID: Int
  /// Number of merge rules read from `merges.txt` (48894 for OpenAI's CLIP).
  public let mergeCount: Int

  /// Token string of each vocabulary id.
  private let tokenByID: [Int: String]
  /// Vocabulary id of each token string.
  private let idByToken: [String: Int]
  /// BPE works on internal symbol numbers: every vocabulary entry, byte symbol and merge
  /// operand has one. `vocabularyIDOfSymbol[s]` is its id, or -1 when not in the vocabulary.
  private let vocabularyIDOfSymbol: [Int32]
  /// Symbol of each byte's printable character, and of that character + `</w>`.
  private let byteSymbol: [Int32]
  private let byteEndSymbol: [Int32]
  /// (left symbol, right symbol) packed into 64 bits -> rank and merged symbol.
  private let merges: [UInt64: Merge]
  /// Printable character -> byte (the inverse of GPT-2's byte-to-unicode table).
  private let byteOfCharacter: [UInt32: UInt8]
  /// The special tokens recognised in text, longest first.
  private let specialTokens: [SpecialToken]
  /// BPE ids of each piece seen so far, keyed by its UTF-8 bytes (exact, unlike `String`
  /// keys, which compare by canonical equivalence).
  private let cache = Mutex<[[UInt8]: [Int32]]>([:])
  private static let cacheLimit = 100_000

  private struct Merge: Sendable {
    let rank: Int32
    let result: Int32
  }

  private struct SpecialToken: Sendable {
    let scalars: [Unicode.Scalar]
    let id: Int
  }

  /// Loads a tokenizer from the two files of a Hugging Face CLIP checkpoint folder.
  /// - Parameter directory: a folder holding `vocab.json` and `merges.txt`.
  /// - Throws: ``TokenizerError`` naming the file and entry or line at fault.
  public convenience init(directory: URL) throws {
    try self.init(
      vocabularyURL: directory.appendingPathComponent("vocab.json"),
      mergesURL: directory.appendingPathComponent("merges.txt"))
  }

  /// Loads a tokenizer from Hugging Face's `vocab.json` and `merges.txt`.
  /// - Parameters:
  ///   - vocabularyURL: a JSON object mapping each token string to its integer id.
  ///   - mergesURL: one merge per line, two symbols separated by one space, in priority
  ///     order; an optional first line starting with `#version` is skipped.
  /// - Throws: ``TokenizerError`` naming the file and entry or line at fault: an unreadable
  ///   file, invalid JSON, a non-integer or negative or repeated id, a merge line that is not
  ///   two symbols, or a vocabulary without `<|startoftext|>` or `<|endoftext|>`.
  public init(vocabularyURL: URL, mergesURL: URL) throws {
    let vocabulary = try Self.readVocabulary(vocabularyURL)
    let mergeLines = try Self.readMerges(mergesURL)

    let path = vocabularyURL.path
    let tokenByID = try Self.invert(vocabulary, path: path)
    guard let bos = vocabulary[Self.startOfTextToken] else {
      throw TokenizerError.missingSpecialToken(path: path, token: Self.startOfTextToken)
    }
    guard let eos = vocabulary[Self.endOfTextToken] else {
      throw TokenizerError.missingSpecialToken(path: path, token: Self.endOfTextToken)
    }
    startOfTextID = bos
    endOfTextID = eos
    vocabularySize = vocabulary.count
    largestID = vocabulary.values.max() ?? 0
    mergeCount = mergeLines.count
    idByToken = vocabulary

    self.tokenByID = tokenByID

    // Symbol numbering: vocabulary entries in id order first, then anything else BPE meets.
    var symbolOf: [String: Int32] = [:]
    var vocabularyIDOfSymbol: [Int32] = []
    symbolOf.reserveCapacity(vocabulary.count + 512)
    func symbol(_ token: String) -> Int32 {
      if let s = symbolOf[token] { return s }
      let s = Int32(vocabularyIDOfSymbol.count)
      symbolOf[token] = s
      vocabularyIDOfSymbol.append(vocabulary[token].map { Int32(truncatingIfNeeded: $0) } ?? -1)
      return s
    }
    for (_, token) in tokenByID.sorted(by: { $0.key < $1.key }) { _ = symbol(token) }

    let byteCharacters = ByteLevelAlphabet.characters
    byteSymbol = byteCharacters.map { symbol(String(Character($0))) }
    byteEndSymbol = byteCharacters.map { symbol(String(Character($0)) + "</w>") }
    var byteOfCharacter: [UInt32: UInt8] = [:]
    for (byte, character) in byteCharacters.enumerated() { byteOfCharacter[character.value] = UInt8(byte) }
    self.byteOfCharacter = byteOfCharacter

    var merges: [UInt64: Merge] = [:]
    merges.reserveCapacity(mergeLines.count)
    for (rank, pair) in mergeLines.enumerated() {
      let left = symbol(pair.left)
      let right = symbol(pair.right)
      let result = symbol(pair.left + pair.right)
      // A repeated pair keeps its later rank, as open_clip's dict does.
      merges[Self.pairKey(left, right)] = Merge(rank: Int32(rank), result: result)
    }
    self.merges = merges
    self.vocabularyIDOfSymbol = vocabularyIDOfSymbol

    specialTokens = [
      SpecialToken(scalars: Array(Self.startOfTextToken.unicodeScalars), id: bos),
      SpecialToken(scalars: Array(Self.endOfTextToken.unicodeScalars), id: eos),
    ].sorted { $0.scalars.count > $1.scalars.count }
  }

  // MARK: - Public API

  /// The BPE ids of `text` after open_clip's cleaning, without BOS or EOS.
  public func encode(_ text: String) -> [Int] {
    let cleaned = CLIPTextCleaner.clean(text)
    var ids: [Int] = []
    ids.reserveCapacity(cleaned.count / 3 + 4)
    var utf8: [UInt8] = []
    splitPieces(cleaned) { piece in
      switch piece {
      case .special(let id):
        ids.append(id)
      case .text(let range):
        utf8.removeAll(keepingCapacity: true)
        for scalar in cleaned[range] { utf8.append(contentsOf: scalar.utf8) }
        for id in bpe(utf8) { ids.append(Int(id)) }
      }
    }
    return ids
  }

  /// The id row CLIP's text encoder reads, built with open_clip's rule:
  /// `[BOS] + encode(text) + [EOS]`; when that is longer than `contextLength`, keep the first
  /// `contextLength` ids and overwrite the last with EOS (so the row always ends its text
  /// with EOS); pad with zeros.
  /// - Parameters:
  ///   - text: the prompt, as typed.
  ///   - contextLength: row length, 77 for every OpenAI CLIP; must be at least 1.
  public func tokenize(_ text: String, contextLength: Int = CLIPTokenizer.defaultContextLength)
    -> TokenizedText
  {
    precondition(contextLength >= 1, "CLIPTokenizer.tokenize: contextLength must be at least 1")
    var row = [startOfTextID] + encode(text) + [endOfTextID]
    let tokenCount = row.count
    let isTruncated = tokenCount > contextLength
    if isTruncated {
      row.removeLast(tokenCount - contextLength)
      row[contextLength - 1] = endOfTextID
    }
    let eotIndex = row.firstIndex(of: endOfTextID) ?? row.count - 1
    var ids = row.map { Int32(truncatingIfNeeded: $0) }
    ids.append(contentsOf: repeatElement(0, count: contextLength - ids.count))
    return TokenizedText(ids: ids, tokenCount: tokenCount, isTruncated: isTruncated, eotIndex: eotIndex)
  }

  /// Text for `ids`, as open_clip's `decode`: the tokens' bytes as UTF-8 (invalid sequences
  /// become U+FFFD), each `</w>` a space. Special tokens appear literally; ids not in the
  /// vocabulary are skipped. Pass the ids without padding.
  public func decode(_ ids: [Int]) -> String {
    var bytes: [UInt8] = []
    for id in ids {
      guard let token = tokenByID[id] else { continue }
      for scalar in token.unicodeScalars {
        if let byte = byteOfCharacter[scalar.value] { bytes.append(byte) }
      }
    }
    // "</w>" is ASCII, so replacing it before decoding equals Python's replacing it after.
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    var i = 0
    while i < bytes.count {
      if bytes[i] == 0x3C, i + 3 < bytes.count, bytes[i + 1] == 0x2F, bytes[i + 2] == 0x77, bytes[i + 3] == 0x3E {
        out.append(0x20)
        i += 4
      } else {
        out.append(bytes[i])
        i += 1
      }
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// The token string of a vocabulary id (byte-level form, e.g. `"cat</w>"`), if any.
  public func token(forID id: Int) -> String? { tokenByID[id] }

  /// The vocabulary id of a token string (byte-level form), if any.
  public func id(forToken token: String) -> Int? { idByToken[token] }

  /// open_clip's cleaning alone (`_clean_lower`), for display and debugging.
  ///
  /// The `ftfy.fix_text` part (ftfy 6.3.1, default configuration) covers, in ftfy's order and
  /// per line until nothing changes: HTML entities in "auto" mode (skipped for the rest of the
  /// text once a line contains `<`), mojibake repair (`fix_encoding` with ftfy's badness
  /// heuristic, all ten single-byte encodings it tries, `restore_byte_a0`,
  /// `replace_lossy_sequences`, `decode_inconsistent_utf8` and the utf-8-variants decoder),
  /// C1 controls read as Windows-1252, Latin ligatures (ﬁ → fi), fullwidth and halfwidth
  /// forms, curly quotes, line breaks, ANSI terminal escapes, control characters, and NFC.
  /// Then `html.unescape` twice (all HTML5 named references, numeric references with the
  /// HTML5 remapping rules), whitespace collapsed (Python's `str.split`), and Python's
  /// `str.lower` (Final_Sigma included).
  public static func cleanText(_ text: String) -> String {
    var string = String()
    string.unicodeScalars.append(contentsOf: CLIPTextCleaner.clean(text))
    return string
  }

  // MARK: - Splitting

  private enum Piece {
    case special(Int)
    case text(Range<Int>)
  }

  /// Which alternative of the split pattern takes a character; `.none` characters are
  /// dropped like whitespace (only U+0345, which case-insensitive matching moves out of
  /// `[^\s\p{L}\p{N}]` because it folds to a Greek letter).
  private enum ScalarClass: UInt8 {
    case letter = 0, number, space, other, none
  }

  /// Class of a code point, from the table generated with the pinned `regex` module (whose
  /// Unicode data is newer than Swift's), ASCII answered directly.
  @inline(__always)
  private static func classify(_ s: Unicode.Scalar) -> ScalarClass {
    let v = s.value
    if v < 0x80 {
      if (v | 0x20) >= 0x61 && (v | 0x20) <= 0x7A { return .letter }
      if v >= 0x30 && v <= 0x39 { return .number }
      if v == 0x20 || (v >= 0x09 && v <= 0x0D) { return .space }
      return .other
    }
    let starts = TokenizerTables.splitClassStarts
    var low = 0
    var high = starts.count  // invariant: starts[low] <= v < starts[high]
    while high - low > 1 {
      let mid = (low + high) / 2
      if starts[mid] <= v { low = mid } else { high = mid }
    }
    return ScalarClass(rawValue: TokenizerTables.splitClassCodes[low]) ?? .other
  }

  /// The split pattern's case-insensitive letter match (the `regex` module's simple case
  /// folding, which also folds U+017F LONG S to `s`, U+212A KELVIN SIGN to `k` and U+0130
  /// to `i`).
  @inline(__always)
  private static func matchesIgnoringCase(_ s: Unicode.Scalar, _ pattern: Unicode.Scalar) -> Bool {
    if s == pattern { return true }
    let p = pattern.value
    guard (p | 0x20) >= 0x61 && (p | 0x20) <= 0x7A else { return false }
    switch s.value {
    case p ^ 0x20: return true
    case 0x017F: return (p | 0x20) == 0x73
    case 0x212A: return (p | 0x20) == 0x6B
    case 0x0130: return (p | 0x20) == 0x69
    default: return false
    }
  }

  private static let contractions: [[Unicode.Scalar]] = ["s", "t", "re", "ve", "m", "ll", "d"].map {
    Array($0.unicodeScalars)
  }

  private func matches(_ text: [Unicode.Scalar], at start: Int, _ pattern: [Unicode.Scalar]) -> Bool {
    guard start + pattern.count <= text.count else { return false }
    for (k, p) in pattern.enumerated() where !Self.matchesIgnoringCase(text[start + k], p) { return false }
    return true
  }

  /// `re.findall(pattern, text)`: each match, in order; unmatched (whitespace) is dropped.
  private func splitPieces(_ text: [Unicode.Scalar], _ emit: (Piece) -> Void) {
    let n = text.count
    var i = 0
    scan: while i < n {
      for special in specialTokens where matches(text, at: i, special.scalars) {
        // The pattern matches case-insensitively, but open_clip turns a match into the
        // special id only through an exact lookup; any other spelling ("<|ſtartoftext|>")
        // is one ordinary piece.
        let end = i + special.scalars.count
        if text[i..<end].elementsEqual(special.scalars) {
          emit(.special(special.id))
        } else {
          emit(.text(i..<end))
        }
        i = end
        continue scan
      }
      if text[i] == "'" {
        for contraction in Self.contractions where matches(text, at: i + 1, contraction) {
          emit(.text(i..<(i + 1 + contraction.count)))
          i += 1 + contraction.count
          continue scan
        }
      }
      switch Self.classify(text[i]) {
      case .letter:
        var j = i + 1
        while j < n, Self.classify(text[j]) == .letter { j += 1 }
        emit(.text(i..<j))
        i = j
      case .number:
        emit(.text(i..<(i + 1)))
        i += 1
      case .other:
        var j = i + 1
        while j < n, Self.classify(text[j]) == .other { j += 1 }
        emit(.text(i..<j))
        i = j
      case .space, .none:
        i += 1
      }
    }
  }

  // MARK: - BPE

  @inline(__always)
  private static func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
    UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
  }

  /// Vocabulary ids of one piece, given its UTF-8 bytes (cached).
  private func bpe(_ utf8: [UInt8]) -> [Int32] {
    if let hit = cache.withLock({ $0[utf8] }) { return hit }
    let ids = mergePiece(utf8)
    cache.withLock { cache in
      if cache.count < Self.cacheLimit { cache[utf8] = ids }
    }
    return ids
  }

  /// open_clip's `bpe`: start from one symbol per byte (`</w>` on the last), then merge every
  /// occurrence of the lowest-ranked adjacent pair, left to right, until no pair has a rank.
  private func mergePiece(_ utf8: [UInt8]) -> [Int32] {
    guard let last = utf8.last else { return [] }
    var word = utf8.map { byteSymbol[Int($0)] }
    word[word.count - 1] = byteEndSymbol[Int(last)]
    while word.count > 1 {
      var best = Merge(rank: .max, result: -1)
      var bestLeft: Int32 = 0
      var bestRight: Int32 = 0
      for i in 0..<(word.count - 1) {
        if let merge = merges[Self.pairKey(word[i], word[i + 1])], merge.rank < best.rank {
          best = merge
          bestLeft = word[i]
          bestRight = word[i + 1]
        }
      }
      if best.result < 0 { break }
      var write = 0
      var read = 0
      while read < word.count {
        if read + 1 < word.count, word[read] == bestLeft, word[read + 1] == bestRight {
          word[write] = best.result
          read += 2
        } else {
          word[write] = word[read]
          read += 1
        }
        write += 1
      }
      word.removeLast(word.count - write)
    }
    let unknown = Int32(truncatingIfNeeded: endOfTextID)
    return word.map { vocabularyIDOfSymbol[Int($0)] >= 0 ? vocabularyIDOfSymbol[Int($0)] : unknown }
  }

  // MARK: - Loading

  private static func readData(_ url: URL) throws -> Data {
    do {
      return try Data(contentsOf: url)
    } catch {
      throw TokenizerError.unreadableFile(path: url.path, reason: error.localizedDescription)
    }
  }

  private static func readVocabulary(_ url: URL) throws -> [String: Int] {
    let data = try readData(url)
    let vocabulary: [String: Int]
    do {
      vocabulary = try JSONDecoder().decode([String: Int].self, from: data)
    } catch let DecodingError.typeMismatch(_, context) {
      throw TokenizerError.malformedVocabulary(
        path: url.path, key: context.codingPath.last?.stringValue,
        reason: "expected an integer id (\(context.debugDescription))")
    } catch let DecodingError.dataCorrupted(context) {
      let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
      throw TokenizerError.malformedVocabulary(
        path: url.path, key: context.codingPath.last?.stringValue,
        reason: "not a JSON object of token ids: \(underlying ?? context.debugDescription)")
    } catch {
      throw TokenizerError.malformedVocabulary(
        path: url.path, key: nil, reason: "not a JSON object of token ids: \(error)")
    }
    if let bad = vocabulary.first(where: { $0.value < 0 || $0.value > Int(Int32.max) }) {
      throw TokenizerError.malformedVocabulary(
        path: url.path, key: bad.key, reason: "id \(bad.value) is outside 0...\(Int32.max)")
    }
    return vocabulary
  }

  /// id -> token; two tokens sharing an id is an error naming the later one (by spelling).
  private static func invert(_ vocabulary: [String: Int], path: String) throws -> [Int: String] {
    var tokenByID: [Int: String] = [:]
    tokenByID.reserveCapacity(vocabulary.count)
    for (token, id) in vocabulary {
      if let other = tokenByID[id] {
        let (first, second) = other < token ? (other, token) : (token, other)
        throw TokenizerError.malformedVocabulary(
          path: path, key: second, reason: "id \(id) is also the id of \"\(first)\"")
      }
      tokenByID[id] = token
    }
    return tokenByID
  }

  private static func readMerges(_ url: URL) throws -> [(left: String, right: String)] {
    let data = try readData(url)
    guard let text = String(data: data, encoding: .utf8) else {
      throw TokenizerError.unreadableFile(path: url.path, reason: "not valid UTF-8")
    }
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
      line.last == "\r" ? line.dropLast() : line
    }
    while lines.last?.isEmpty == true { lines.removeLast() }  // trailing newlines
    var merges: [(left: String, right: String)] = []
    merges.reserveCapacity(lines.count)
    for (index, line) in lines.enumerated() {
      if index == 0 && line.hasPrefix("#version") { continue }
      let parts = line.split(separator: " ", omittingEmptySubsequences: false)
      guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
        let shown = line.count > 60 ? String(line.prefix(60)) + "…" : String(line)
        throw TokenizerError.malformedMerges(
          path: url.path, line: index + 1,
          reason: "expected two symbols separated by one space, found \"\(shown)\"")
      }
      merges.append((String(parts[0]), String(parts[1])))
    }
    return merges
  }
}

/// GPT-2's reversible byte -> printable character table, as CLIP uses it: the printable
/// Latin-1 bytes (`!`...`~`, `¡`...`¬`, `®`...`ÿ`) stand for themselves; every other byte b
/// becomes U+0100 + n, n counting those bytes in order.
package enum ByteLevelAlphabet {
  package static let characters: [Unicode.Scalar] = {
    var table = [Unicode.Scalar](repeating: "\0", count: 256)
    var next: UInt32 = 256
    for byte in 0..<256 {
      switch byte {
      case 0x21...0x7E, 0xA1...0xAC, 0xAE...0xFF:
        table[byte] = Unicode.Scalar(UInt8(byte))
      default:
        table[byte] = Unicode.Scalar(next) ?? "?"  // U+0100...U+0143, always valid
        next += 1
      }
    }
    return table
  }()
}
