// The fuzz targets: one per parser of bytes from outside. Each takes arbitrary bytes, runs them
// through the parser the way clipgen or the studio would (reading every tensor, decoding every
// pixel), and ignores the errors the parser throws: a clear error is the right answer to a bad
// file; a crash, a hang or an out-of-bounds access (AddressSanitizer) is a finding.
//
// `clipgen-fuzz` runs them under libFuzzer (`make fuzz`); the tests replay the committed corpora
// (Fuzz/corpus/TARGET) through them in-process, so every crash ever found stays a regression test.
import ClipGenConvert
import ClipGenEngine
import ClipGenStudio
import Foundation

/// One parser under fuzzing.
public enum FuzzTarget: String, CaseIterable, Sendable {
  /// A safetensors file: header, then every tensor converted to floats.
  case safetensors
  /// A PyTorch checkpoint (zip + pickle, TorchScript, legacy): inspected as `clipgen inspect`
  /// does, then every tensor read.
  case checkpoint
  /// One pickle program, run by the checkpoint reader's pickle machine.
  case pickle
  /// A PNG or JPEG: decoded, then preprocessed as CLIP sees an image prompt.
  case image
  /// A model directory whose model.json, config or tokenizer file is replaced by the input (its
  /// first byte chooses which): loaded as the engine loads a model.
  case model
  /// The CLIP tokenizer on arbitrary text (bytes decoded as UTF-8 with replacement).
  case tokenizer
  /// A styles.json file.
  case styles
  /// A studio theme file.
  case theme
  /// The terminal's replies to the studio's probe (DA1, CSI 14t / 16t) mixed with typeahead.
  case terminal

  /// Runs one input. Never throws: errors are the parser's correct answers.
  public func run(_ data: Data) {
    switch self {
    case .safetensors: FuzzFiles.shared.withFile(data, name: "fuzz.safetensors") { readAll($0) }
    case .checkpoint: FuzzFiles.shared.withFile(data, name: "fuzz.pt") { inspectCheckpoint($0) }
    case .pickle: runPickle(data)
    case .image: decodeImage(data)
    case .model: FuzzFiles.shared.withModel(data) { loadModel($0) }
    case .tokenizer: tokenize(data)
    case .styles: _ = try? StyleLibrary.parse(data, file: "styles.json")
    case .theme: _ = try? Theme.parse(String(decoding: data, as: UTF8.self), file: "fuzz.theme", defaultName: "fuzz")
    case .terminal: _ = TerminalReplies.parse([UInt8](data))
    }
  }
}

/// Reads every tensor of a weight source, up to a total that a fuzz input could legitimately
/// describe (a file of n bytes holds at most n / 1 bytes of values; expanded views are capped).
private func readAll(_ url: URL) {
  guard let source = try? WeightFiles.open(url) else { return }
  for name in source.tensorNames {
    guard let shape = source.shape(of: name) else { continue }
    var count = 1
    for d in shape {
      let (p, overflow) = count.multipliedReportingOverflow(by: max(d, 0))
      guard !overflow else { return }
      count = p
    }
    guard count <= 1 << 22 else { continue }  // the parser's own limits are fuzzed, not RAM
    _ = try? source.tensor(name)
  }
}

private func inspectCheckpoint(_ url: URL) {
  _ = try? WeightsInspection(url: url)
  readAll(url)
}

private func loadModel(_ directory: URL) {
  _ = try? ModelDirectoryInspection(directory: directory)
  _ = try? ClipGenModel(directory: directory)
}

private func runPickle(_ data: Data) {
  data.withUnsafeBytes { bytes in
    _ = try? PickleMachine(file: "fuzz.pt", entry: "data.pkl").load(bytes)
  }
}

private func decodeImage(_ data: Data) {
  // The pixel limit is lowered so that a fuzz input cannot make a legitimately huge image.
  guard let image = try? RGBImage(encoded: data, maximumPixels: 1 << 20) else { return }
  _ = CLIPImagePreprocessor(size: 32).preprocess(image)
}

private func tokenize(_ data: Data) {
  guard let tokenizer = FuzzFiles.shared.tokenizer else { return }
  let text = String(decoding: data, as: UTF8.self)
  let tokens = tokenizer.tokenize(text, contextLength: 77)
  _ = tokenizer.decode(tokens.ids.map(Int.init))
}

/// Scratch files for the targets that read files, in one directory per process.
final class FuzzFiles: @unchecked Sendable {
  // One fuzzing process runs one input at a time (libFuzzer is single-threaded); the replay
  // tests run a corpus from one test function. Nothing here is touched concurrently.
  static let shared = FuzzFiles()

  let directory: URL
  /// The fixture model the `model` target starts from (CLIPGEN_FUZZ_FIXTURES or the repository's
  /// Tests/ClipGenEngineTests/Fixtures, found from the working directory).
  let fixtureModel: URL?
  let tokenizer: CLIPTokenizer?

  /// The files a `model` input can replace, by its first byte modulo their count.
  static let modelFiles = [
    "model.json", "clip/config.json", "gpt/config.json", "vqgan/config.json", "tokenizer/vocab.json",
    "tokenizer/merges.txt",
  ]

  private init() {
    directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "clipgen-fuzz-\(getpid())", isDirectory: true)
    try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let env = ProcessInfo.processInfo.environment
    let fixtures = URL(
      fileURLWithPath: env["CLIPGEN_FUZZ_FIXTURES"] ?? "Tests/ClipGenEngineTests/Fixtures", isDirectory: true)
    let model = fixtures.appendingPathComponent("tiny_model", isDirectory: true)
    fixtureModel =
      FileManager.default.fileExists(atPath: model.appendingPathComponent("model.json").path) ? model : nil
    tokenizer = fixtureModel.flatMap {
      try? CLIPTokenizer(
        vocabularyURL: $0.appendingPathComponent("tokenizer/vocab.json"),
        mergesURL: $0.appendingPathComponent("tokenizer/merges.txt"))
    }
  }

  func withFile(_ data: Data, name: String, _ body: (URL) -> Void) {
    let url = directory.appendingPathComponent(name)
    guard (try? data.write(to: url)) != nil else { return }
    body(url)
  }

  /// A copy of the fixture model (weights linked, small files copied) with one file replaced by
  /// `data.dropFirst()`.
  func withModel(_ data: Data, _ body: (URL) -> Void) {
    guard let fixture = fixtureModel, let first = data.first else { return }
    let fm = FileManager.default
    let dir = directory.appendingPathComponent("model", isDirectory: true)
    if !fm.fileExists(atPath: dir.path) {
      for sub in ["clip", "gpt", "vqgan", "tokenizer"] {
        try? fm.createDirectory(at: dir.appendingPathComponent(sub), withIntermediateDirectories: true)
      }
      for sub in ["clip", "gpt", "vqgan"] {
        try? fm.createSymbolicLink(
          at: dir.appendingPathComponent("\(sub)/model.safetensors"),
          withDestinationURL: fixture.appendingPathComponent("\(sub)/model.safetensors").standardizedFileURL)
      }
    }
    for file in Self.modelFiles {
      try? fm.removeItem(at: dir.appendingPathComponent(file))
      try? fm.copyItem(at: fixture.appendingPathComponent(file), to: dir.appendingPathComponent(file))
    }
    let replaced = Self.modelFiles[Int(first) % Self.modelFiles.count]
    guard (try? data.dropFirst().write(to: dir.appendingPathComponent(replaced))) != nil else { return }
    body(dir)
  }
}
