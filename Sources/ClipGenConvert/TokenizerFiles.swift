// The tokenizer files of a converted model (Hugging Face's `vocab.json` + `merges.txt`), from a
// Hugging Face folder or from OpenAI's `bpe_simple_vocab_16e6.txt.gz`, whose vocabulary is
// derived from its merges exactly as OpenAI's `SimpleTokenizer` (clip/simple_tokenizer.py)
// builds it: the 256 byte characters, the same with `</w>`, one token per merge, then
// `<|startoftext|>` and `<|endoftext|>`.
import ClipGenEngine
import Foundation

/// Where a tokenizer comes from, and writing it as `vocab.json` + `merges.txt`.
public enum TokenizerFiles {
  /// The number of merges OpenAI's tokenizer reads from its file (`49152 - 256 - 2`).
  public static let openAIMergeCount = 48894

  /// Whether `url` is a folder holding `vocab.json` and `merges.txt`.
  public static func isHuggingFaceFolder(_ url: URL) -> Bool {
    let fm = FileManager.default
    return fm.fileExists(atPath: url.appendingPathComponent("vocab.json").path)
      && fm.fileExists(atPath: url.appendingPathComponent("merges.txt").path)
  }

  /// Writes `vocab.json` and `merges.txt` into `directory`, from a folder that has them (copied
  /// unchanged) or from OpenAI's gzipped BPE merges file; then loads them back with
  /// `CLIPTokenizer` to check them.
  /// - Returns: the tokenizer read back from the written files.
  /// - Throws: `ConversionError.tokenizer` naming the source.
  @discardableResult
  public static func write(from source: URL, to directory: URL) throws -> CLIPTokenizer {
    let vocabURL = directory.appendingPathComponent("vocab.json")
    let mergesURL = directory.appendingPathComponent("merges.txt")
    do {
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
      if isHuggingFaceFolder(source) {
        try writeAtomically(Data(contentsOf: source.appendingPathComponent("vocab.json")), to: vocabURL)
        try writeAtomically(Data(contentsOf: source.appendingPathComponent("merges.txt")), to: mergesURL)
      } else {
        let (vocab, merges) = try openAIFiles(fromBPE: source)
        try writeAtomically(vocab, to: vocabURL)
        try writeAtomically(merges, to: mergesURL)
      }
    } catch let e as ConversionError {
      throw e
    } catch {
      throw ConversionError.tokenizer(path: source.path, reason: "\(error)")
    }
    do {
      return try CLIPTokenizer(vocabularyURL: vocabURL, mergesURL: mergesURL)
    } catch {
      throw ConversionError.tokenizer(path: source.path, reason: "the written files do not load: \(error)")
    }
  }

  /// `vocab.json` and `merges.txt` contents for OpenAI's BPE file (gzipped or plain text).
  static func openAIFiles(fromBPE url: URL) throws -> (vocabulary: Data, merges: Data) {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
      throw ConversionError.tokenizer(path: url.path, reason: "no such file or directory")
    }
    if isDirectory.boolValue {
      throw ConversionError.tokenizer(
        path: url.path,
        reason: "a folder without vocab.json and merges.txt (give such a folder, or bpe_simple_vocab_16e6.txt.gz)")
    }
    let raw = try Data(contentsOf: url)
    let bytes: [UInt8]
    if raw.count >= 2, raw[raw.startIndex] == 0x1F, raw[raw.startIndex + 1] == 0x8B {
      do {
        bytes = try raw.withUnsafeBytes { try Inflater.gunzip($0) }
      } catch let e as InflateError {
        throw ConversionError.tokenizer(path: url.path, reason: "cannot decompress: \(e.description)")
      }
    } else {
      bytes = [UInt8](raw)
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
      throw ConversionError.tokenizer(path: url.path, reason: "not UTF-8 text")
    }
    // Line 0 is a version header; OpenAI reads lines 1...48894.
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    let merges = lines.dropFirst().prefix(openAIMergeCount).filter { !$0.isEmpty }
    guard !merges.isEmpty else { throw ConversionError.tokenizer(path: url.path, reason: "no merge lines") }
    for (i, m) in merges.enumerated() where m.split(separator: " ").count != 2 {
      throw ConversionError.tokenizer(path: url.path, reason: "line \(i + 2) is not a merge of two symbols: '\(m)'")
    }

    var tokens: [String] = []
    tokens.reserveCapacity(512 + merges.count + 2)
    let alphabet = ByteLevelAlphabet.characters
    // bytes_to_unicode's order: the printable bytes first, then the others by value.
    let printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
    let printableSet = Set(printable)
    let order = printable + (0..<256).filter { !printableSet.contains($0) }
    let base = order.map { String(Character(alphabet[$0])) }
    tokens += base
    tokens += base.map { $0 + "</w>" }
    tokens += merges.map { $0.replacingOccurrences(of: " ", with: "") }
    tokens += [CLIPTokenizer.startOfTextToken, CLIPTokenizer.endOfTextToken]

    var json = "{"
    for (id, token) in tokens.enumerated() {
      json += (id == 0 ? "" : ", ") + jsonQuoted(token) + ": \(id)"
    }
    json += "}\n"
    let mergesText = "#version: 0.2\n" + merges.joined(separator: "\n") + "\n"
    return (Data(json.utf8), Data(mergesText.utf8))
  }

  /// A JSON string literal.
  static func jsonQuoted(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
      switch u {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if u.value < 0x20 {
          out += String(format: "\\u%04x", u.value)
        } else {
          out.unicodeScalars.append(u)
        }
      }
    }
    return out + "\""
  }
}
