// A clipgen model directory: `model.json` naming the CLIP, tokenizer, GPT prior and VQGAN files
// and their layouts. Everything a generation needs is loaded once, here.
import Foundation

/// `model.json`, the index of a clipgen model directory. Paths are relative to the directory.
public struct ModelManifest: Codable, Sendable {
  public struct Component: Codable, Sendable {
    /// Key layout of the weights: "hf" or "openai" for CLIP, "taming" or "hfai" for the VQGAN.
    public var layout: String?
    /// JSON configuration (optional for OpenAI-layout CLIP, whose sizes are read from the shapes).
    public var config: String?
    public var weights: String
  }
  public struct Tokenizer: Codable, Sendable {
    public var vocab: String
    public var merges: String
    public var contextLength: Int?
    enum CodingKeys: String, CodingKey {
      case vocab, merges
      case contextLength = "context_length"
    }
  }
  public struct Conditioning: Codable, Sendable {
    /// L2-normalise CLIP embeddings before the prior's `cond_proj` (the prior was trained so).
    public var normalize: Bool?
  }

  public var format: String
  public var version: Int
  public var name: String?
  public var clip: Component
  public var tokenizer: Tokenizer
  public var gpt: Component
  public var vqgan: Component
  public var conditioning: Conditioning?
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

  /// Loads `directory/model.json` and every file it names. Errors name the file (and the tensor
  /// or key) that is wrong. `gptPrecision` chooses how the prior's weights are stored for decoding
  /// (see `ConditionalGPT.init(weights:config:precision:)`; nil keeps the file's precision).
  public init(directory: URL, gptPrecision: WeightPrecision? = nil) throws {
    self.directory = directory
    let manifestURL = directory.appendingPathComponent("model.json")
    let data: Data
    do {
      data = try Data(contentsOf: manifestURL)
    } catch {
      throw GenerationError.invalidModel(path: manifestURL.path, reason: "cannot read it (\(error.localizedDescription)); a model directory holds model.json")
    }
    do {
      manifest = try JSONDecoder().decode(ModelManifest.self, from: data)
    } catch {
      throw GenerationError.invalidModel(path: manifestURL.path, reason: describeDecodingError(error))
    }
    guard manifest.format == "clipgen" else {
      throw GenerationError.invalidModel(path: manifestURL.path, reason: "format is '\(manifest.format)', expected 'clipgen'")
    }
    func url(_ relative: String) -> URL { directory.appendingPathComponent(relative) }
    func config<T: Decodable>(_ type: T.Type, _ relative: String?, component: String) throws -> T? {
      guard let relative else { return nil }
      let u = url(relative)
      do {
        return try JSONDecoder().decode(T.self, from: Data(contentsOf: u))
      } catch let e as DecodingError {
        throw GenerationError.invalidModel(path: u.path, reason: describeDecodingError(e))
      } catch {
        throw GenerationError.invalidModel(path: u.path, reason: "cannot read the \(component) config: \(error.localizedDescription)")
      }
    }

    tokenizer = try CLIPTokenizer(vocabularyURL: url(manifest.tokenizer.vocab), mergesURL: url(manifest.tokenizer.merges))

    let clipWeights = try SafeTensorsFile(url: url(manifest.clip.weights))
    switch manifest.clip.layout ?? "hf" {
    case "hf":
      guard let c = try config(CLIPConfig.self, manifest.clip.config, component: "CLIP") else {
        throw GenerationError.invalidModel(path: manifestURL.path, reason: "clip.config is required for the 'hf' layout")
      }
      clip = try CLIPModel(weights: clipWeights, config: c, layout: .huggingFace)
    case "openai":
      let c = try config(CLIPConfig.self, manifest.clip.config, component: "CLIP") ?? (try CLIPConfig.inferred(fromOpenAI: clipWeights))
      clip = try CLIPModel(weights: clipWeights, config: c, layout: .openAI)
    case let other:
      throw GenerationError.invalidModel(path: manifestURL.path, reason: "clip.layout '\(other)' is not 'hf' or 'openai'")
    }

    guard let gptConfig = try config(GPTConfig.self, manifest.gpt.config, component: "GPT") else {
      throw GenerationError.invalidModel(path: manifestURL.path, reason: "gpt.config is required")
    }
    gpt = try ConditionalGPT(
      weights: SafeTensorsFile(url: url(manifest.gpt.weights)), config: gptConfig, precision: gptPrecision)

    guard let vqConfig = try config(VQGANConfig.self, manifest.vqgan.config, component: "VQGAN") else {
      throw GenerationError.invalidModel(path: manifestURL.path, reason: "vqgan.config is required")
    }
    let vqLayout: VQGANLayout
    switch manifest.vqgan.layout ?? "taming" {
    case "taming": vqLayout = .taming
    case "hfai": vqLayout = .hfai
    case let other:
      throw GenerationError.invalidModel(path: manifestURL.path, reason: "vqgan.layout '\(other)' is not 'taming' or 'hfai'")
    }
    vqgan = try VQGAN(weights: SafeTensorsFile(url: url(manifest.vqgan.weights)), config: vqConfig, layout: vqLayout)

    // The prior's sequence is one square grid of the VQGAN's latent size.
    let side = vqConfig.resolution >> (vqConfig.chMult.count - 1)
    gridHeight = side
    gridWidth = side
    guard side * side == gptConfig.blockSize else {
      throw GenerationError.invalidModel(
        path: manifestURL.path,
        reason: "the VQGAN's \(side)×\(side) token grid does not match the GPT block size \(gptConfig.blockSize)")
    }
    guard gptConfig.vocabSize == vqConfig.nEmbed else {
      throw GenerationError.invalidModel(
        path: manifestURL.path,
        reason: "GPT vocab_size \(gptConfig.vocabSize) differs from the VQGAN codebook size \(vqConfig.nEmbed)")
    }
    guard gptConfig.conditionWidth == clip.config.projectionDim else {
      throw GenerationError.invalidModel(
        path: manifestURL.path,
        reason: "GPT n_cond_embd \(gptConfig.conditionWidth) differs from the CLIP embedding size \(clip.config.projectionDim)")
    }
    imagePreprocessor = CLIPImagePreprocessor(size: clip.config.vision.imageSize)
  }
}

/// A readable account of a JSON decoding error: which key, where.
func describeDecodingError(_ error: Error) -> String {
  guard let e = error as? DecodingError else { return "\(error)" }
  func path(_ ctx: DecodingError.Context) -> String {
    let p = ctx.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    return p.isEmpty ? "top level" : p
  }
  switch e {
  case .keyNotFound(let key, let ctx): return "missing key '\(key.stringValue)' at \(path(ctx))"
  case .typeMismatch(let t, let ctx): return "key \(path(ctx)) is not a \(t)"
  case .valueNotFound(let t, let ctx): return "key \(path(ctx)) is null, expected \(t)"
  case .dataCorrupted(let ctx): return "invalid JSON at \(path(ctx)): \(ctx.debugDescription)"
  @unknown default: return "\(e)"
  }
}
