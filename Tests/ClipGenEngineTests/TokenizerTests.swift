// CLIPTokenizer: a tiny hand-made vocabulary for the BPE mechanics and the load errors, and
// OpenAI's real vocabulary against open_clip's ids on TokenizerHardStrings.json.

import Foundation
import Testing

@testable import ClipGenEngine

/// A temporary folder with a small vocabulary whose special tokens are not 49406/49407.
private struct TinyVocabulary {
  static let specialBOS = 900
  static let specialEOS = 901

  let directory: URL
  var vocabularyURL: URL { directory.appendingPathComponent("vocab.json") }
  var mergesURL: URL { directory.appendingPathComponent("merges.txt") }

  /// Byte-level tokens for a few letters; merges that build "low</w>", "er</w>", "abc</w>".
  static let tokens: [String: Int] = {
    var vocab: [String: Int] = [:]
    let pieces = [
      "a", "b", "c", "e", "l", "o", "r", "w", "a</w>", "b</w>", "c</w>", "w</w>", "r</w>",
      "!</w>", "lo", "low</w>", "er</w>", "ab", "abc</w>",
    ]
    for (i, piece) in pieces.enumerated() { vocab[piece] = i }
    vocab["<|startoftext|>"] = specialBOS
    vocab["<|endoftext|>"] = specialEOS
    return vocab
  }()

  static let merges = "#version: 0.2\nl o\nlo w</w>\ne r</w>\na b\nab c</w>\n"

  init(vocabJSON: String? = nil, merges: String? = nil) throws {
    directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("clip-tiny-vocab-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let json = try vocabJSON ?? String(decoding: JSONEncoder().encode(Self.tokens), as: UTF8.self)
    try json.write(to: vocabularyURL, atomically: true, encoding: .utf8)
    try (merges ?? Self.merges).write(to: mergesURL, atomically: true, encoding: .utf8)
  }

  func load() throws -> CLIPTokenizer {
    try CLIPTokenizer(vocabularyURL: vocabularyURL, mergesURL: mergesURL)
  }

  func remove() { try? FileManager.default.removeItem(at: directory) }

  static func id(_ token: String) -> Int { tokens[token] ?? -1 }
}

/// Runs `body` expecting a TokenizerError; returns it.
private func loadError(_ body: () throws -> CLIPTokenizer) -> TokenizerError? {
  do {
    _ = try body()
    return nil
  } catch let error as TokenizerError {
    return error
  } catch {
    Issue.record("expected a TokenizerError, got \(error)")
    return nil
  }
}

@Suite("Tokenizer: tiny vocabulary")
struct TokenizerTinyVocabularyTests {
  @Test("special token ids come from the vocabulary")
  func specialIDs() throws {
    let tiny = try TinyVocabulary()
    defer { tiny.remove() }
    let tokenizer = try tiny.load()
    #expect(tokenizer.startOfTextID == TinyVocabulary.specialBOS)
    #expect(tokenizer.endOfTextID == TinyVocabulary.specialEOS)
    #expect(tokenizer.vocabularySize == TinyVocabulary.tokens.count)
    #expect(tokenizer.mergeCount == 5)
  }

  @Test("BPE merges by rank, and </w> marks the end of a word")
  func merging() throws {
    let tiny = try TinyVocabulary()
    defer { tiny.remove() }
    let tokenizer = try tiny.load()
    let id = TinyVocabulary.id
    // "low": l o w</w> -> lo w</w> -> low</w>
    #expect(tokenizer.encode("low") == [id("low</w>")])
    // "lower": l o w e r</w> -> lo w e r</w> -> lo w er</w>; "lo w" is no merge, only "lo w</w>" is.
    #expect(tokenizer.encode("lower") == [id("lo"), id("w"), id("er</w>")])
    // "abc": a b c</w> -> ab c</w> -> abc</w>; but "ab" alone ends in b</w>, which no merge takes.
    #expect(tokenizer.encode("abc") == [id("abc</w>")])
    #expect(tokenizer.encode("ab") == [id("a"), id("b</w>")])
    // Cleaning happens first: case, whitespace, punctuation split off.
    #expect(tokenizer.encode("  LOW\t\tabc! ") == [id("low</w>"), id("abc</w>"), id("!</w>")])
    #expect(tokenizer.encode("") == [])
  }

  @Test("a piece missing from the vocabulary becomes the unknown token, <|endoftext|>")
  func unknownPiece() throws {
    let tiny = try TinyVocabulary()
    defer { tiny.remove() }
    let tokenizer = try tiny.load()
    #expect(tokenizer.encode("z low") == [TinyVocabulary.specialEOS, TinyVocabulary.id("low</w>")])
  }

  @Test("the literal special tokens are recognised in text")
  func literalSpecialTokens() throws {
    let tiny = try TinyVocabulary()
    defer { tiny.remove() }
    let tokenizer = try tiny.load()
    #expect(
      tokenizer.encode("low<|endoftext|>abc <|StartOfText|>") == [
        TinyVocabulary.id("low</w>"), TinyVocabulary.specialEOS, TinyVocabulary.id("abc</w>"),
        TinyVocabulary.specialBOS,
      ])
  }

  @Test("tokenize pads with zeros and reports the count and the EOS position")
  func padding() throws {
    let tiny = try TinyVocabulary()
    defer { tiny.remove() }
    let tokenizer = try tiny.load()
    let row = tokenizer.tokenize("low abc", contextLength: 8)
    let low = Int32(TinyVocabulary.id("low</w>"))
    let abc = Int32(TinyVocabulary.id("abc</w>"))
    #expect(row.ids == [900, low, abc, 901, 0, 0, 0, 0])
    #expect(row.tokenCount == 4)
    #expect(!row.isTruncated)
    #expect(row.eotIndex == 3)
    #expect(tokenizer.tokenize("").ids.count == 77)
    #expect(tokenizer.tokenize("").ids.prefix(3) == [900, 901, 0])
  }

  @Test("tokenize truncates with open_clip's rule: keep the first N, last one EOS")
  func truncation() throws {
    let tiny = try TinyVocabulary()
    defer { tiny.remove() }
    let tokenizer = try tiny.load()
    let a = Int32(TinyVocabulary.id("a</w>"))
    let b = Int32(TinyVocabulary.id("b</w>"))
    let exact = tokenizer.tokenize("a b", contextLength: 4)
    #expect(exact.ids == [900, a, b, 901])
    #expect(exact.tokenCount == 4 && !exact.isTruncated && exact.eotIndex == 3)
    let cut = tokenizer.tokenize("a b a b", contextLength: 4)
    #expect(cut.ids == [900, a, b, 901])
    #expect(cut.tokenCount == 6 && cut.isTruncated && cut.eotIndex == 3)
    let tiny1 = tokenizer.tokenize("a", contextLength: 1)
    #expect(tiny1.ids == [901] && tiny1.isTruncated && tiny1.eotIndex == 0)
  }

  @Test("decode turns ids back into text, </w> as a space")
  func decoding() throws {
    let tiny = try TinyVocabulary()
    defer { tiny.remove() }
    let tokenizer = try tiny.load()
    #expect(tokenizer.decode(tokenizer.encode("Lower ABC!")) == "lower abc ! ")
    #expect(
      tokenizer.decode([TinyVocabulary.specialBOS, TinyVocabulary.id("low</w>"), 12345]) == "<|startoftext|>low ")
  }

  @Test("one tokenizer shared by concurrent tasks gives the same ids")
  func concurrentUse() async throws {
    let tiny = try TinyVocabulary()
    defer { tiny.remove() }
    let tokenizer = try tiny.load()
    let texts = ["low", "lower abc", "abc ab a b", "LOW LOWER", "lo w er"]
    let expected = texts.map { tokenizer.encode($0) }
    let results = await withTaskGroup(of: (Int, [Int]).self) { group in
      for round in 0..<64 {
        let index = round % texts.count
        group.addTask { (index, tokenizer.encode(texts[index])) }
      }
      var all: [(Int, [Int])] = []
      for await result in group { all.append(result) }
      return all
    }
    for (index, ids) in results { #expect(ids == expected[index]) }
  }

  @Test("a malformed merges line is reported with its file and line number")
  func malformedMerges() throws {
    let tiny = try TinyVocabulary(merges: "#version: 0.2\nl o\nlo w </w>\n")
    defer { tiny.remove() }
    let error = loadError { try tiny.load() }
    #expect(
      error
        == .malformedMerges(
          path: tiny.mergesURL.path, line: 3, reason: "expected two symbols separated by one space, found \"lo w </w>\""
        ))
    let message = error?.description ?? ""
    #expect(message.contains("merges.txt:3:"))
    #expect(message.contains(tiny.directory.lastPathComponent))
  }

  @Test("a vocabulary without <|endoftext|> is rejected, naming the file and token")
  func missingSpecialToken() throws {
    var tokens = TinyVocabulary.tokens
    tokens["<|endoftext|>"] = nil
    let json = String(decoding: try JSONEncoder().encode(tokens), as: UTF8.self)
    let tiny = try TinyVocabulary(vocabJSON: json)
    defer { tiny.remove() }
    let error = loadError { try tiny.load() }
    #expect(error == .missingSpecialToken(path: tiny.vocabularyURL.path, token: "<|endoftext|>"))
    #expect(error?.description.contains("vocab.json") == true)
  }

  @Test("an unreadable file is reported with its path")
  func unreadableFile() throws {
    let tiny = try TinyVocabulary()
    defer { tiny.remove() }
    let missing = tiny.directory.appendingPathComponent("nope.json")
    let error = loadError { try CLIPTokenizer(vocabularyURL: missing, mergesURL: tiny.mergesURL) }
    guard case .unreadableFile(let path, _)? = error else {
      Issue.record("expected unreadableFile, got \(String(describing: error))")
      return
    }
    #expect(path == missing.path)
    #expect(error?.description.hasPrefix(missing.path) == true)
    // A directory where the merges file should be.
    let asDirectory = loadError { try CLIPTokenizer(vocabularyURL: tiny.vocabularyURL, mergesURL: tiny.directory) }
    guard case .unreadableFile? = asDirectory else {
      Issue.record("expected unreadableFile, got \(String(describing: asDirectory))")
      return
    }
  }

  @Test("malformed vocab.json: bad JSON, a non-integer id, a repeated id, a negative id")
  func malformedVocabulary() throws {
    let cases: [(json: String, key: String?)] = [
      ("{\"a\": 0, ", nil),
      ("[1, 2, 3]", nil),
      ("{\"a\": 0, \"b\": \"one\"}", "b"),
      ("{\"a\": 0, \"b\": 0}", "b"),
      ("{\"a\": 0, \"b\": -4}", "b"),
    ]
    for (json, key) in cases {
      let tiny = try TinyVocabulary(vocabJSON: json)
      defer { tiny.remove() }
      let error = loadError { try tiny.load() }
      guard case .malformedVocabulary(let path, let foundKey, _)? = error else {
        Issue.record("\(json): expected malformedVocabulary, got \(String(describing: error))")
        continue
      }
      #expect(path == tiny.vocabularyURL.path)
      #expect(foundKey == key, "\(json)")
      #expect(error?.description.contains("vocab.json") == true)
    }
  }
}

@Suite("Tokenizer: text cleaning")
struct TokenizerCleaningTests {
  @Test(
    "open_clip's cleaning (ftfy, html.unescape twice, whitespace, lower)",
    arguments: [
      ("  Hello\t\tWORLD \n", "hello world"),
      ("it\u{2019}s \u{201C}quoted\u{201D}", "it's \"quoted\""),
      ("\u{FB01}sh \u{FB02}ower", "fish flower"),
      ("\u{FF2C}\u{FF2F}\u{FF35}\u{FF24}\u{3000}\u{FF4E}\u{FF4F}\u{FF49}\u{FF53}\u{FF45}", "loud noise"),
      ("cafe\u{301}", "caf\u{E9}"),
      ("caf\u{C3}\u{A9}", "caf\u{E9}"),
      ("\u{E2}\u{153}\u{201D} No problems", "\u{2714} no problems"),
      ("salt &amp;amp; pepper", "salt & pepper"),
      ("&lt;b&gt;", "<b>"),
      ("\u{1B}[31mred\u{1B}[0m", "red"),
      ("\u{39F}\u{394}\u{39F}\u{3A3}", "\u{3BF}\u{3B4}\u{3BF}\u{3C2}"),
      ("", ""),
    ])
  func cleaning(input: String, expected: String) {
    #expect(Array(CLIPTokenizer.cleanText(input).unicodeScalars) == Array(expected.unicodeScalars))
  }
}

// MARK: - OpenAI's vocabulary against open_clip

/// One string of TokenizerHardStrings.json with open_clip's answer.
private struct ExpectedCase: Decodable, Sendable {
  let name: String
  let text: String
  let ids: [Int32]
  let token_count: Int
  let truncated: Bool
  let bpe: [String]
}

private struct ExpectedFile: Decodable, Sendable {
  let open_clip_torch: String
  let ftfy: String
  let context_length: Int
  let cases: [ExpectedCase]
}

private struct HardString: Decodable {
  let name: String
  let text: String
}

private enum RealVocabulary {
  static let repoRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  static let folder = repoRoot.appendingPathComponent(".cache/clip-vocab")
  static let hardStrings = repoRoot.appendingPathComponent("Tests/ClipGenEngineTests/TokenizerHardStrings.json")
  static let regenerate = "python3 training/scripts/fetch_clip_vocab.py .cache/clip-vocab"

  /// Loaded once for all tests; nil when a file is missing.
  private static let loaded: Result<(CLIPTokenizer, ExpectedFile), any Error>? = {
    let needed = ["vocab.json", "merges.txt", "expected_ids.json"].map { folder.appendingPathComponent($0) }
    guard needed.allSatisfy({ FileManager.default.fileExists(atPath: $0.path) }) else { return nil }
    return Result {
      let tokenizer = try CLIPTokenizer(directory: folder)
      let expected = try JSONDecoder().decode(
        ExpectedFile.self, from: Data(contentsOf: folder.appendingPathComponent("expected_ids.json")))
      return (tokenizer, expected)
    }
  }()

  /// The tokenizer and open_clip's expectations, or nil after recording why not.
  static func load() throws -> (CLIPTokenizer, ExpectedFile)? {
    guard let loaded else {
      Issue.record(
        """
        The real CLIP vocabulary is missing (vocab.json, merges.txt or expected_ids.json under \
        \(folder.path)). Run `\(regenerate)` from the repository root (`make test` does).
        """)
      return nil
    }
    return try loaded.get()
  }
}

@Suite("Tokenizer: OpenAI vocabulary vs open_clip")
struct TokenizerRealVocabularyTests {
  @Test("the vocabulary has OpenAI's shape")
  func shape() throws {
    guard let (tokenizer, _) = try RealVocabulary.load() else { return }
    #expect(tokenizer.vocabularySize == 49408)
    #expect(tokenizer.mergeCount == 48894)
    #expect(tokenizer.startOfTextID == 49406)
    #expect(tokenizer.endOfTextID == 49407)
    #expect(tokenizer.tokenize("a photo of a cat").ids.prefix(8) == [49406, 320, 1125, 539, 320, 2368, 49407, 0])
  }

  @Test("every hard string gives open_clip's 77 ids and truncation flag")
  func hardStrings() throws {
    guard let (tokenizer, expected) = try RealVocabulary.load() else { return }
    let suite = try JSONDecoder().decode([HardString].self, from: Data(contentsOf: RealVocabulary.hardStrings))
    #expect(suite.count >= 40)
    let stale = suite.map(\.text) != expected.cases.map(\.text) || suite.map(\.name) != expected.cases.map(\.name)
    #expect(!stale, "expected_ids.json does not match TokenizerHardStrings.json; rerun `\(RealVocabulary.regenerate)`")
    #expect(expected.context_length == CLIPTokenizer.defaultContextLength)

    var mismatches: [String] = []
    for item in expected.cases {
      let row = tokenizer.tokenize(item.text)
      if row.ids != item.ids || row.isTruncated != item.truncated || row.tokenCount != item.token_count {
        let at = zip(row.ids, item.ids).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1
        let ours = tokenizer.encode(item.text).map { tokenizer.token(forID: $0) ?? "?" }
        mismatches.append(
          """
          \(item.name): first differing index \(at); tokenCount \(row.tokenCount) vs \(item.token_count), \
          truncated \(row.isTruncated) vs \(item.truncated)
            cleaned: \(String(reflecting: CLIPTokenizer.cleanText(item.text)))
            ours:      \(ours.joined(separator: " "))
            open_clip: \(item.bpe.joined(separator: " "))
          """)
      }
      if !row.isTruncated {
        #expect(
          row.eotIndex == item.token_count - 1 || item.text.lowercased().contains("<|endoftext|>"), "\(item.name)")
      }
    }
    print(
      "CLIPTokenizer: \(expected.cases.count - mismatches.count) of \(expected.cases.count) hard strings match open_clip"
    )
    #expect(
      mismatches.isEmpty,
      "\(mismatches.count) of \(expected.cases.count) strings differ from open_clip \(expected.open_clip_torch) (ftfy \(expected.ftfy)):\n\(mismatches.joined(separator: "\n"))"
    )
  }

  @Test("decode reverses encode on clean text")
  func roundTrip() throws {
    guard let (tokenizer, _) = try RealVocabulary.load() else { return }
    for text in ["a photo of a cat", "caf\u{E9} \u{4E00}\u{53EA}\u{732B} \u{1F431}!", "it's 42"] {
      let words = tokenizer.decode(tokenizer.encode(text)).split(separator: " ").joined()
      #expect(words == CLIPTokenizer.cleanText(text).split(separator: " ").joined())
    }
  }

  @Test("hostile prompts stay linear: a flood of combining marks, a 100 KB prompt, NUL bytes")
  func hostilePrompts() throws {
    let tiny = try TinyVocabulary()
    defer { tiny.remove() }
    let tokenizer = try tiny.load()
    let clock = ContinuousClock()
    // One grapheme with 63,000 combining marks took 26 s (quadratic canonical reordering).
    let flood = "a" + String(repeating: "\u{0301}\u{0316}", count: 31_500)
    var row: TokenizedText?
    let elapsed = clock.measure { row = tokenizer.tokenize(flood) }
    #expect(elapsed < .seconds(2), "\(elapsed)")
    #expect(row?.ids.first == 900)
    // Runs are cut to Unicode's stream-safe bound of 30 marks, and still normalised.
    let cleaned = FtfyFixer.nfc(Array(flood.unicodeScalars))
    #expect(cleaned.count <= 31)
    #expect(FtfyFixer.nfc(Array("e\u{0301}".unicodeScalars)) == ["\u{E9}"])
    let big = String(repeating: "low abc ", count: 12_800)  // 100 KB
    let bigElapsed = clock.measure { row = tokenizer.tokenize(big) }
    #expect(bigElapsed < .seconds(5), "\(bigElapsed)")
    #expect(row?.isTruncated == true)
    #expect(tokenizer.tokenize("low\u{0}abc\u{0}").ids.first == 900)
  }

  @Test("a 77-token prompt tokenises in well under a millisecond")
  func speed() throws {
    guard let (tokenizer, _) = try RealVocabulary.load() else { return }
    let prompt = String(
      repeating: "a photograph of an astronaut riding a horse on the moon, highly detailed, ", count: 6)
    let full = tokenizer.tokenize(prompt)
    #expect(full.isTruncated)
    let clock = ContinuousClock()
    let rounds = 200
    let elapsed = clock.measure {
      for _ in 0..<rounds { _ = tokenizer.tokenize(prompt) }
    }
    let perPrompt = elapsed / rounds
    print("CLIPTokenizer: \(perPrompt) per 77-token prompt (\(full.tokenCount) tokens before truncation)")
    let accented = "Ein Foto einer Straße in München, café crème, \u{201C}quoted\u{201D}, 東京 😀 — naïve résumé"
    let accentedTime = clock.measure { for _ in 0..<rounds { _ = tokenizer.tokenize(accented) } } / rounds
    print("CLIPTokenizer: \(accentedTime) per accented mixed-script prompt")
    // Generous enough for a debug build on a loaded 2-core machine; release is far below.
    #expect(perPrompt < .milliseconds(20))
  }
}
