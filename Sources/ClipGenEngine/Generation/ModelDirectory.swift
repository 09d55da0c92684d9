// A clipgen model directory: `model.json` naming the CLIP, tokenizer, GPT prior and VQGAN files
// and their layouts. Everything a generation needs is loaded once, here.
import Foundation

/// The key layouts a component's weights can use, by the names model.json gives them.
public protocol ComponentLayout: RawRepresentable, CaseIterable, Sendable where RawValue == String {}
extension CLIPLayout: ComponentLayout {}
extension VQGANLayout: ComponentLayout {}

/// The GPT prior's one layout: HFAiLab/clip-gen's parameter names (model.json leaves it out).
public enum GPTLayout: String, ComponentLayout {
  case clipGen = "clip-gen"
}

/// `model.json`, the index of a clipgen model directory. Paths are relative to the directory.
public struct ModelManifest: Codable, Sendable {
  /// One network's files and the key layout of its weights, decoded as that network's layout enum
  /// (an unknown name is refused, naming the field and the names allowed).
  public struct Component<Layout: ComponentLayout>: Codable, Sendable {
    /// nil: the component's usual layout (`hf` for CLIP, `taming` for the VQGAN).
    public var layout: Layout?
    /// JSON configuration (optional for OpenAI-layout CLIP, whose sizes are read from the shapes).
    public var config: String?
    public var weights: String

    public init(layout: Layout? = nil, config: String? = nil, weights: String) {
      self.layout = layout
      self.config = config
      self.weights = weights
    }

    enum CodingKeys: String, CodingKey { case layout, config, weights }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      if let name = try c.decodeIfPresent(String.self, forKey: .layout) {
        guard let l = Layout(rawValue: name) else {
          let allowed = Layout.allCases.map { "'\($0.rawValue)'" }.joined(separator: " or ")
          throw DecodingError.dataCorruptedError(
            forKey: .layout, in: c, debugDescription: "'\(name)' is not a layout of this component (\(allowed))")
        }
        layout = l
      }
      config = try c.decodeIfPresent(String.self, forKey: .config)
      weights = try c.decode(String.self, forKey: .weights)
    }

    public func encode(to encoder: Encoder) throws {
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encodeIfPresent(layout?.rawValue, forKey: .layout)
      try c.encodeIfPresent(config, forKey: .config)
      try c.encode(weights, forKey: .weights)
    }
  }
  public struct Tokenizer: Codable, Sendable {
    public var vocab: String
    public var merges: String
    public var contextLength: Int?

    public init(vocab: String, merges: String, contextLength: Int? = nil) {
      self.vocab = vocab
      self.merges = merges
      self.contextLength = contextLength
    }

    enum CodingKeys: String, CodingKey {
      case vocab, merges
      case contextLength = "context_length"
    }
  }
  public struct Conditioning: Codable, Sendable {
    /// L2-normalise CLIP embeddings before the prior's `cond_proj` (the prior was trained so).
    public var normalize: Bool?

    public init(normalize: Bool? = nil) { self.normalize = normalize }
  }

  public var format: String
  public var version: Int
  public var name: String?
  public var clip: Component<CLIPLayout>
  public var tokenizer: Tokenizer
  public var gpt: Component<GPTLayout>
  public var vqgan: Component<VQGANLayout>
  public var conditioning: Conditioning?
  /// The sampling settings the model's author chose (`"defaults"`); a front end uses each one
  /// unless the user sets that value.
  public var defaults: SamplingDefaults?
  /// Example prompts that suit this model (`"sample_prompts"`), for welcome screens and recall.
  public var samplePrompts: [String]?
  /// What a conversion assumed because the checkpoints do not store it (`clipgen inspect` shows it).
  public var assumptions: [String]?

  public init(
    format: String = "clipgen", version: Int = 1, name: String? = nil, clip: Component<CLIPLayout>,
    tokenizer: Tokenizer, gpt: Component<GPTLayout>, vqgan: Component<VQGANLayout>, conditioning: Conditioning? = nil,
    defaults: SamplingDefaults? = nil,
    samplePrompts: [String]? = nil, assumptions: [String]? = nil
  ) {
    self.format = format
    self.version = version
    self.name = name
    self.clip = clip
    self.tokenizer = tokenizer
    self.gpt = gpt
    self.vqgan = vqgan
    self.conditioning = conditioning
    self.defaults = defaults
    self.samplePrompts = samplePrompts
    self.assumptions = assumptions
  }

  enum CodingKeys: String, CodingKey {
    case format, version, name, clip, tokenizer, gpt, vqgan, conditioning, defaults, assumptions
    case samplePrompts = "sample_prompts"
  }
}

/// `model.json`'s `"defaults"`: every field optional; a missing one falls back to the engine's
/// plain sampler (temperature 1, all tokens, top-p 1, no guidance, one candidate per image).
public struct SamplingDefaults: Codable, Sendable, Equatable {
  public var temperature: Float?
  /// 0 or absent: all tokens.
  public var topK: Int?
  public var topP: Float?
  public var guidance: Float?
  /// Candidates sampled per kept image; CLIP keeps the best (n images: n × this many sampled).
  public var candidates: Int?

  /// The most candidates per image a model may ask for by default.
  public static let maximumCandidates = 64

  public init(
    temperature: Float? = nil, topK: Int? = nil, topP: Float? = nil, guidance: Float? = nil, candidates: Int? = nil
  ) {
    self.temperature = temperature
    self.topK = topK
    self.topP = topP
    self.guidance = guidance
    self.candidates = candidates
  }

  enum CodingKeys: String, CodingKey {
    case temperature, candidates, guidance
    case topK = "top_k"
    case topP = "top_p"
  }

  /// The sampling settings these defaults describe.
  public var sampling: SamplingSettings {
    SamplingSettings(
      temperature: temperature ?? 1, topK: topK.flatMap { $0 > 0 ? $0 : nil }, topP: topP ?? 1,
      guidanceScale: guidance ?? 1)
  }

  /// Candidates to sample for `count` kept images.
  public func candidates(forCount count: Int) -> Int { max(count, count * (candidates ?? 1)) }

  /// Checks every value against the model it belongs to; the error names `file` and the field.
  public func validate(file: String, vocabularySize: Int, hasUnconditionalEmbedding: Bool) throws {
    func fail(_ reason: String) -> GenerationError { .invalidModel(path: file, reason: reason) }
    if let t = temperature, !(t.isFinite && t >= 0 && t <= 10) {
      throw fail("defaults.temperature must be in 0…10, got \(t)")
    }
    if let k = topK, k < 0 || k > vocabularySize {
      throw fail("defaults.top_k must be in 0…\(vocabularySize) (0: all tokens), got \(k)")
    }
    if let p = topP, !(p > 0 && p <= 1) { throw fail("defaults.top_p must be in (0, 1], got \(p)") }
    if let g = guidance {
      guard g.isFinite, g >= 0, g <= 100 else { throw fail("defaults.guidance must be in 0…100, got \(g)") }
      if g != 1 && !hasUnconditionalEmbedding {
        throw fail(
          "defaults.guidance is \(g), but the prior has no unconditional embedding (uncond_emb) to guide with; use 1")
      }
    }
    if let c = candidates, c < 1 || c > Self.maximumCandidates {
      throw fail("defaults.candidates must be in 1…\(Self.maximumCandidates), got \(c)")
    }
  }
}

/// Everything loaded from a model directory, ready to generate. Immutable; share it freely.
public final class ClipGenModel: Sendable {
  public let directory: URL
  public let manifest: ModelManifest
  public let clip: CLIPModel
  public let tokenizer: CLIPTokenizer
  public let gpt: ConditionalGPT
  public let vqgan: VQGAN
  public let imagePreprocessor: CLIPImagePreprocessor
  /// Token grid side lengths (the prior's block size is height·width).
  public let gridHeight: Int
  public let gridWidth: Int

  public var name: String { manifest.name ?? directory.lastPathComponent }
  public var normalizesCondition: Bool { manifest.conditioning?.normalize ?? true }
  public var contextLength: Int { manifest.tokenizer.contextLength ?? 77 }
  public var tokensPerImage: Int { gridHeight * gridWidth }
  /// The model's own sampling defaults (empty when model.json has none).
  public var defaults: SamplingDefaults { manifest.defaults ?? SamplingDefaults() }
  /// The model's example prompts (empty when model.json has none).
  public var samplePrompts: [String] { manifest.samplePrompts ?? [] }

  /// Loads `directory/model.json` and every file it names. Errors name the file (and the tensor
  /// or key) that is wrong. `gptPrecision` chooses how the prior's weights are stored for decoding
  /// (see `ConditionalGPT.init(weights:config:precision:)`; nil keeps the file's precision).
  /// - Parameter loading: told what is being loaded, part by part, with the file's size ("the
  /// prior, 1.4 GB"), so that a front end can show progress on a large model.
  public init(
    directory: URL, gptPrecision: WeightPrecision? = nil, loading: ((String) -> Void)? = nil
  ) throws {
    self.directory = directory
    let files = ModelFiles(directory: directory)
    manifest = try files.readManifest()
    func announce(_ part: String, _ relative: String) {
      loading?("\(part), \(files.sizeDescription(relative))")
    }
    announce("the CLIP encoders", manifest.clip.weights)
    tokenizer = try CLIPTokenizer(
      vocabularyURL: files.url(manifest.tokenizer.vocab), mergesURL: files.url(manifest.tokenizer.merges))
    clip = try files.loadCLIP(manifest.clip)
    try files.checkTokenizer(tokenizer, manifest.tokenizer, fits: clip.config.text)

    announce("the prior", manifest.gpt.weights)
    guard let gptConfig = try files.config(GPTConfig.self, manifest.gpt.config, component: "GPT") else {
      throw GenerationError.invalidModel(path: files.manifestURL.path, reason: "gpt.config is required")
    }
    gpt = try ConditionalGPT(
      weights: SafeTensorsFile(url: files.url(manifest.gpt.weights)), config: gptConfig, precision: gptPrecision)
    announce("the VQGAN decoder", manifest.vqgan.weights)
    guard let vqConfig = try files.config(VQGANConfig.self, manifest.vqgan.config, component: "VQGAN") else {
      throw GenerationError.invalidModel(path: files.manifestURL.path, reason: "vqgan.config is required")
    }
    vqgan = try VQGAN(
      weights: SafeTensorsFile(url: files.url(manifest.vqgan.weights)), config: vqConfig,
      layout: manifest.vqgan.layout ?? .taming)

    // The prior's sequence is one square grid of the VQGAN's latent size.
    let side = vqConfig.resolution >> (vqConfig.chMult.count - 1)
    gridHeight = side
    gridWidth = side
    try files.checkParts(gpt: gptConfig, vqgan: vqConfig, clip: clip.config, grid: side)
    try manifest.defaults?.validate(
      file: files.manifestURL.path, vocabularySize: gptConfig.vocabSize,
      hasUnconditionalEmbedding: gpt.hasUnconditionalEmbedding)
    if let prompts = manifest.samplePrompts, prompts.count > 1000 || prompts.contains(where: { $0.utf8.count > 4096 }) {
      throw GenerationError.invalidModel(
        path: files.manifestURL.path, reason: "sample_prompts must be at most 1000 prompts of at most 4096 bytes each")
    }
    imagePreprocessor = CLIPImagePreprocessor(size: clip.config.vision.imageSize)
  }
}

/// Reading a model directory's files, and checking that its parts fit each other: every error
/// names the file (and the field) that is wrong.
private struct ModelFiles {
  let directory: URL
  var manifestURL: URL { directory.appendingPathComponent("model.json") }

  func url(_ relative: String) -> URL { directory.appendingPathComponent(relative) }

  /// "1.4 GB" (or "? MB" when the file cannot be read; loading it will say why).
  func sizeDescription(_ relative: String) -> String {
    let size = (try? FileManager.default.attributesOfItem(atPath: url(relative).path)[.size] as? Int) ?? nil
    guard let size else { return "? MB" }
    return size >= 1 << 30
      ? String(format: "%.1f GB", Double(size) / Double(1 << 30)) : String(format: "%.0f MB", Double(size) / 1e6)
  }

  func readManifest() throws -> ModelManifest {
    let data: Data
    do {
      data = try Data(contentsOf: manifestURL)
    } catch {
      throw GenerationError.invalidModel(
        path: manifestURL.path,
        reason: "cannot read it (\(error.localizedDescription)); a model directory holds model.json")
    }
    let manifest: ModelManifest
    do {
      manifest = try JSONDecoder().decode(ModelManifest.self, from: data)
    } catch {
      throw GenerationError.invalidModel(path: manifestURL.path, reason: describeDecodingError(error))
    }
    guard manifest.format == "clipgen" else {
      throw GenerationError.invalidModel(
        path: manifestURL.path, reason: "format is '\(manifest.format)', expected 'clipgen'")
    }
    return manifest
  }

  /// A component's JSON configuration, or nil when model.json names none.
  func config<T: Decodable>(_ type: T.Type, _ relative: String?, component: String) throws -> T? {
    guard let relative else { return nil }
    let u = url(relative)
    do {
      return try JSONDecoder().decode(T.self, from: Data(contentsOf: u))
    } catch let e as DecodingError {
      throw GenerationError.invalidModel(path: u.path, reason: describeDecodingError(e))
    } catch {
      throw GenerationError.invalidModel(
        path: u.path, reason: "cannot read the \(component) config: \(error.localizedDescription)")
    }
  }

  func loadCLIP(_ part: ModelManifest.Component<CLIPLayout>) throws -> CLIPModel {
    let weights = try SafeTensorsFile(url: url(part.weights))
    switch part.layout ?? .huggingFace {
    case .huggingFace:
      guard let c = try config(CLIPConfig.self, part.config, component: "CLIP") else {
        throw GenerationError.invalidModel(
          path: manifestURL.path, reason: "clip.config is required for the 'hf' layout")
      }
      return try CLIPModel(weights: weights, config: c, layout: .huggingFace)
    case .openAI:
      let c =
        try config(CLIPConfig.self, part.config, component: "CLIP")
        ?? (try CLIPConfig.inferred(fromOpenAI: weights))
      return try CLIPModel(weights: weights, config: c, layout: .openAI)
    }
  }

  /// The tokenizer and the text encoder must fit each other: every id a row of the embedding
  /// table, every position one of the position table.
  func checkTokenizer(
    _ tokenizer: CLIPTokenizer, _ files: ModelManifest.Tokenizer, fits text: CLIPConfig.Text
  ) throws {
    let positions = text.maxPositionEmbeddings
    let context = files.contextLength ?? 77
    guard context >= 2, context <= positions else {
      throw GenerationError.invalidModel(
        path: manifestURL.path,
        reason:
          "tokenizer.context_length is \(context); it must be in 2…\(positions) (the CLIP text encoder's positions)")
    }
    guard tokenizer.largestID < text.vocabSize else {
      throw GenerationError.invalidModel(
        path: url(files.vocab).path,
        reason:
          "the vocabulary has ids up to \(tokenizer.largestID), but the CLIP text encoder's vocab_size is \(text.vocabSize)"
      )
    }
  }

  /// The prior against the VQGAN (grid and codebook) and CLIP (condition width).
  func checkParts(gpt: GPTConfig, vqgan: VQGANConfig, clip: CLIPConfig, grid side: Int) throws {
    guard side * side == gpt.blockSize else {
      throw GenerationError.invalidModel(
        path: manifestURL.path,
        reason: "the VQGAN's \(side)×\(side) token grid does not match the GPT block size \(gpt.blockSize)")
    }
    guard gpt.vocabSize == vqgan.nEmbed else {
      throw GenerationError.invalidModel(
        path: manifestURL.path,
        reason: "GPT vocab_size \(gpt.vocabSize) differs from the VQGAN codebook size \(vqgan.nEmbed)")
    }
    guard gpt.conditionWidth == clip.projectionDim else {
      throw GenerationError.invalidModel(
        path: manifestURL.path,
        reason: "GPT n_cond_embd \(gpt.conditionWidth) differs from the CLIP embedding size \(clip.projectionDim)")
    }
  }
}

/// A readable account of a JSON decoding error: which key, where.
package func describeDecodingError(_ error: Error) -> String {
  guard let e = error as? DecodingError else { return "\(error)" }
  func path(_ ctx: DecodingError.Context) -> String {
    let p = ctx.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    return p.isEmpty ? "top level" : p
  }
  switch e {
  case .keyNotFound(let key, let ctx): return "missing key '\(key.stringValue)' at \(path(ctx))"
  case .typeMismatch(let t, let ctx): return "key \(path(ctx)) is not a \(t)"
  case .valueNotFound(let t, let ctx): return "key \(path(ctx)) is null, expected \(t)"
  case .dataCorrupted(let ctx):
    return ctx.codingPath.isEmpty ? "invalid JSON: \(ctx.debugDescription)" : "\(path(ctx)): \(ctx.debugDescription)"
  @unknown default: return "\(e)"
  }
}
