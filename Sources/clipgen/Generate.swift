// `clipgen generate PROMPT …`: PNGs with their parameters in a text chunk, plus manifest.json.
import ArgumentParser
import ClipGenEngine
import Foundation

struct Generate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Generate images from a text prompt, an image, or both.",
    discussion: """
      Writes one PNG per image (the generation parameters in a 'parameters' text chunk) and \
      manifest.json into --out. The same seed and settings give byte-identical images.
      """)

  @Argument(help: "The text prompt (optional when --image is given).")
  var prompt: String?

  @Option(help: "Model directory (holds model.json). Default: $CLIPGEN_MODEL, then ./samples/model.")
  var model: String?

  @Option(help: "An image (PNG or JPEG) to condition on, through the CLIP image encoder.")
  var image: String?

  @Option(
    help: """
      What transparent pixels of --image become: flattened onto white (the default, as the training \
      kit does), black, grey, #rrggbb or r,g,b; 'ignore' keeps the colours stored under them (OpenAI CLIP's convert("RGB")).
      """)
  var alphaBackground: AlphaRule = .default

  @Option(help: "Refuse an --image with more pixels than this, from its header (a decompression-bomb guard).")
  var maxImagePixels: Int = RGBImage.maximumPixels

  @Option(help: "The share of --image when mixed with a text prompt, 0…1 (the text gets the rest).")
  var imageWeight: Float = 0.5

  @Option(
    help: """
      A negative prompt: guidance steers away from this text instead of from the unconditional \
      embedding, so it also works on models without one (default guidance with it: the model's, or 3).
      """)
  var negative: String?

  @Option(name: .customLong("n"), help: "Number of images to write.")
  var count: Int = 1

  @Option(
    help: """
      Candidates to sample; CLIP keeps the n that match the prompt best \
      (default: n × the model's candidates per image, else n).
      """)
  var candidates: Int?

  @Option(help: "Random seed (default 0; with --from, the image's own seed and stream).")
  var seed: UInt64?

  @Option(
    help: """
      Re-roll an image clipgen made: its prompt, settings and token grid come from the PNG's \
      record (what you give on the command line overrides them); see --keep-rows.
      """)
  var from: String?

  @Option(
    help: """
      With --from: keep this many token rows from the top of the image and sample the rest again \
      (with the image's own seed the result is the image itself; give --seed for a new continuation).
      """)
  var keepRows: Int = 0

  @Option(
    help: """
      With --from: sample the tokens in this rectangle again, x,y,width,height in tokens from the \
      top left, keeping every other token; of the candidates, the one under which the prior finds \
      the kept tokens after the region most likely is kept (without --seed, streams other than the \
      image's own, which would give the region back unchanged).
      """)
  var region: String?

  @OptionGroup(title: "Sampling")
  var sampling: SamplingOptions

  @Option(help: "Output directory.")
  var out: String = "out"

  @Flag(help: "No progress on stderr.")
  var quiet = false

  func validate() throws {
    if (prompt ?? "").isEmpty && image == nil && from == nil {
      throw ValidationError("give a PROMPT, an --image, or both (or --from IMAGE.png)")
    }
    if keepRows != 0 && from == nil { throw ValidationError("--keep-rows needs --from IMAGE.png") }
    if keepRows < 0 { throw ValidationError("--keep-rows must be 0 or more") }
    if let region {
      if from == nil { throw ValidationError("--region needs --from IMAGE.png") }
      if keepRows != 0 { throw ValidationError("give --region or --keep-rows, not both") }
      if TokenRegion(region) == nil {
        throw ValidationError("--region must be x,y,width,height in tokens, got '\(region)'")
      }
    }
    if count < 1 { throw ValidationError("--n must be at least 1") }
    if maxImagePixels < 1 { throw ValidationError("--max-image-pixels must be positive") }
    if !(0...1).contains(imageWeight) {
      throw ValidationError("--image-weight must be between 0 and 1, got \(imageWeight)")
    }
    if let c = candidates, c < count { throw ValidationError("--candidates (\(c)) must be at least --n (\(count))") }
  }

  func run() throws {
    guard let modelURL = model.map({ URL(fileURLWithPath: $0) }) ?? defaultModelDirectory() else {
      throw CLIError("no model: pass --model DIR (a directory with model.json) or set CLIPGEN_MODEL")
    }
    let loaded: ClipGenModel
    do { loaded = try ClipGenModel(directory: modelURL, gptPrecision: self.sampling.weights.precision) } catch {
      throw CLIError("cannot load the model: \(error)")
    }

    let source = try from.map(Self.readRecord)
    if let s = source, s.record.imagePrompt != nil, image == nil {
      throw CLIError("\(from!) was conditioned on the image \(s.record.imagePrompt!); pass it again with --image PATH")
    }
    let tokenRegion = region.flatMap(TokenRegion.init)
    let keep =
      tokenRegion != nil ? source?.tokens ?? [] : Array((source?.tokens ?? []).prefix(keepRows * loaded.gridWidth))
    if let s = source, keepRows * loaded.gridWidth > s.tokens.count {
      throw CLIError(
        "\(from!) has \(s.tokens.count / max(1, loaded.gridWidth)) token rows; --keep-rows \(keepRows) is more")
    }
    let prompt = self.prompt ?? source?.record.prompt
    let seed = self.seed ?? source?.record.seed ?? 0
    // A re-roll continues the image's own stream; a region edit draws from the streams after it.
    let ownStream = source?.record.candidate ?? 0
    let firstStream = self.seed == nil ? ownStream + (tokenRegion != nil ? 1 : 0) : 0

    let imagePart = try loadImagePrompt()
    let negativeText = (negative ?? source?.record.negativePrompt).flatMap {
      $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0
    }
    let (sampling, fromModel) = self.sampling.settings(
      defaults: loaded.defaults, negative: negativeText != nil, candidates: candidates, base: source?.record.sampling)
    let request = GenerationRequest(
      prompt: .mixing(text: prompt, image: imagePart, imageWeight: imageWeight), count: count,
      candidates: candidates
        ?? (source != nil && tokenRegion == nil ? count : loaded.defaults.candidates(forCount: count)), seed: seed,
      sampling: sampling, negative: negativeText.map { .text($0) }, keep: keep, firstStream: firstStream,
      region: tokenRegion)
    var record = GenerationParameters(
      prompt: prompt ?? "", imagePrompt: imagePart?.label, imageWeight: imageWeight, negativePrompt: negativeText,
      seed: seed, sampling: sampling, count: count, candidates: request.candidates, model: loaded.name)
    record.keptTokens = keep.isEmpty ? nil : keep.count - (tokenRegion.map { $0.width * $0.height } ?? 0)
    record.region = tokenRegion
    let result = try generateWithProgress(request, with: loaded, quiet: quiet)

    let outURL = URL(fileURLWithPath: out)
    let images = try writeImages(result, record: record, firstStream: firstStream, to: outURL)
    let manifest = Manifest(
      model: loaded.name, modelDirectory: modelURL.path, prompt: request.prompt.summary,
      promptTruncated: result.promptTruncated, seed: seed, count: count, candidates: request.candidates,
      sampling: sampling, fromModelDefaults: fromModel, priorWeights: loaded.gpt.weightPrecision.rawValue,
      images: images,
      timing: .init(
        samplingSeconds: result.samplingSeconds, decodingSeconds: result.decodingSeconds,
        totalSeconds: result.totalSeconds, tokensPerSecond: result.tokensPerSecond))
    try manifest.write(
      to: outURL, quiet: quiet, what: "\(result.images.count) image(s)", seconds: result.totalSeconds)
  }

  /// --image, loaded as CLIP sees it, with the label the record names it by.
  func loadImagePrompt() throws -> (image: RGBImage, label: String)? {
    guard let path = image else { return nil }
    do {
      let url = URL(fileURLWithPath: path)
      return (
        try RGBImage.load(contentsOf: url, maximumPixels: maxImagePixels, alpha: alphaBackground), url.lastPathComponent
      )
    } catch { throw CLIError("\(error)") }
  }

  /// Writes each image as `image-NN.png` into `outURL` (created if need be) with its record;
  /// returns the manifest's entries.
  func writeImages(
    _ result: GenerationResult, record: GenerationParameters, firstStream: Int, to outURL: URL
  ) throws -> [ManifestImage] {
    do {
      try FileManager.default.createDirectory(at: outURL, withIntermediateDirectories: true)
    } catch {
      throw CLIError("\(outURL.path): cannot create the output directory: \(error.localizedDescription)")
    }
    var images: [ManifestImage] = []
    for (rank, generated) in result.images.enumerated() {
      let name = String(format: "image-%02d.png", rank)
      let parameters = record.forImage(
        candidate: firstStream + generated.candidate, clipScore: generated.clipScore, tokens: generated.tokens)
      do {
        let text = try parameters.pngText(
          width: generated.image.width, height: generated.image.height, steps: generated.tokens.count)
        try generated.image.writePNG(to: outURL.appendingPathComponent(name), text: text)
      } catch { throw CLIError("\(error)") }
      images.append(ManifestImage(file: name, tokens: generated.tokens, parameters: parameters))
    }
    return images
  }

  /// The record and token grid of a PNG clipgen wrote (its `clipgen` text chunk).
  static func readRecord(_ path: String) throws -> (record: GenerationParameters, tokens: [Int]) {
    let text: [(key: String, value: String)]
    do { text = try RGBImage.readPNGText(try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
      throw CLIError("\(path): \(error)")
    }
    guard let json = text.first(where: { $0.key == "clipgen" })?.value,
      let record = try? JSONDecoder().decode(GenerationParameters.self, from: Data(json.utf8))
    else { throw CLIError("\(path): no clipgen record in this PNG (only images clipgen made can be re-rolled)") }
    guard let tokens = record.tokens, !tokens.isEmpty else {
      throw CLIError("\(path): its clipgen record has no token grid (made by an older clipgen)")
    }
    return (record, tokens)
  }
}

/// `manifest.json`: the generation, and each image's file, token grid and record.
struct Manifest: Encodable {
  struct Timing: Encodable {
    var samplingSeconds, decodingSeconds, totalSeconds, tokensPerSecond: Double
    enum CodingKeys: String, CodingKey {
      case samplingSeconds = "sampling_s"
      case decodingSeconds = "decoding_s"
      case totalSeconds = "total_s"
      case tokensPerSecond = "tokens_per_s"
    }
  }
  var model, modelDirectory, prompt: String
  var promptTruncated: Bool
  var seed: UInt64
  var count, candidates: Int
  var sampling: SamplingSettings
  /// The settings taken from model.json's defaults (the rest were given on the command line).
  var fromModelDefaults: [String]
  /// How the prior's weights were held while sampling (f16 or f32).
  var priorWeights: String
  var images: [ManifestImage]
  var timing: Timing

  enum CodingKeys: String, CodingKey {
    case model, prompt, seed, candidates, sampling, images, timing
    case modelDirectory = "model_dir"
    case promptTruncated = "prompt_truncated"
    case count = "n"
    case fromModelDefaults = "from_model_defaults"
    case priorWeights = "prior_weights"
  }
}

extension Manifest {
  /// Writes `manifest.json` into `directory` (atomically) and, unless `quiet`, says on stderr
  /// what was written there ("wrote WHAT and manifest.json to DIR in S s").
  func write(to directory: URL, quiet: Bool, what: String, seconds: Double) throws {
    do {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
      try writeAtomically(
        try encoder.encode(self) + Data("\n".utf8), to: directory.appendingPathComponent("manifest.json"))
    } catch { throw CLIError("\(error)") }
    if !quiet {
      let time = String(format: "%.1f", seconds)
      FileHandle.standardError.write(Data("wrote \(what) and manifest.json to \(directory.path) in \(time) s\n".utf8))
    }
  }
}

/// One image of the manifest: its record's fields, then `file` and `tokens`.
struct ManifestImage: Encodable {
  var file: String
  var tokens: [Int]
  var parameters: GenerationParameters

  enum CodingKeys: String, CodingKey { case file, tokens }

  func encode(to encoder: Encoder) throws {
    try parameters.encode(to: encoder)
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(file, forKey: .file)
    try c.encode(tokens, forKey: .tokens)
  }
}

/// One self-overwriting status line on stderr (only on a terminal).
final class ProgressLine {
  let enabled: Bool
  private var last = Date.distantPast
  init(enabled: Bool) { self.enabled = enabled }
  func update(_ text: String) {
    guard enabled, Date().timeIntervalSince(last) > 0.1 else { return }
    last = Date()
    FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
  }
  func finish() { if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) } }
}

/// `--alpha-background white|black|grey|#rrggbb|r,g,b|ignore`.
extension PriorWeights: ExpressibleByArgument {}

extension AlphaRule: ExpressibleByArgument {
  public init?(argument: String) { self.init(parsing: argument) }
  public var defaultValueDescription: String { self == .default ? "white" : "\(self)" }
}
