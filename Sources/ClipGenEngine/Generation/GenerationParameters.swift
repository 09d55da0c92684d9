// One generation record: what determined an image and where it came from. The CLI and the studio
// write it the same way into the PNG's `parameters` chunk and manifest.json; the studio's history
// keeps it too. Prompt mixing (text and image) is one function here, which both front ends call.
import Foundation

/// The engine's version, recorded with every image.
public enum ClipGenVersion {
  public static let string = "0.3.0"
}

extension Prompt {
  /// The prompt a front end builds from what a person gave: text, an image, or both mixed with
  /// the image's share `imageWeight` (0…1; the text gets 1 − imageWeight). One part alone gets
  /// weight 1, whatever `imageWeight` says.
  public static func mixing(text: String?, image: (image: RGBImage, label: String)?, imageWeight: Float) -> Prompt {
    let text = text.flatMap { $0.isEmpty ? nil : $0 }
    switch (text, image) {
    case (let t?, let i?):
      return Prompt(parts: [(.text(t), 1 - imageWeight), (.image(i.image, label: i.label), imageWeight)])
    case (let t?, nil): return .text(t)
    case (nil, let i?): return .image(i.image, label: i.label)
    case (nil, nil): return Prompt(parts: [])
    }
  }
}

/// Everything that determined one generated image. Encoded as JSON with snake_case keys, sorted,
/// so the same generation gives the same bytes from any front end.
public struct GenerationParameters: Codable, Sendable, Equatable {
  /// The text the model was given (a style applied); empty for an image-only prompt.
  public var prompt: String
  /// What the person typed, when a style turned it into `prompt`.
  public var typedPrompt: String?
  /// The style's name, if one was applied.
  public var style: String?
  /// The image prompt's file name, and its share of the mix (0…1; 1 when it stands alone).
  public var imagePrompt: String?
  public var imageWeight: Float?
  /// The negative prompt, when guidance steered away from it instead of the unconditional.
  public var negativePrompt: String?
  public var seed: UInt64
  /// The random stream this image was drawn from (candidate i of a generation).
  public var candidate: Int?
  /// How many leading tokens were kept from an earlier image instead of sampled (a re-roll).
  public var keptTokens: Int?
  /// The image's token grid, row by row (in each PNG; what a re-roll starts from).
  public var tokens: [Int]?
  public var temperature: Float
  /// nil: all tokens.
  public var topK: Int?
  public var topP: Float
  public var guidanceScale: Float
  /// Images kept, and candidates sampled for them (CLIP keeps the best).
  public var count: Int
  public var candidates: Int
  public var model: String
  /// Cosine similarity of this image's CLIP embedding with the prompt's.
  public var clipScore: Float?
  /// The rectangle of tokens a region edit sampled again (the rest kept from its source image).
  public var region: TokenRegion?
  /// A frame of an interpolation from `prompt` towards another prompt.
  public var interpolation: Interpolation?
  public var engine: String

  /// Where an interpolation frame lies: `t` of the way (0…1) from the record's prompt to `to`.
  public struct Interpolation: Codable, Sendable, Equatable {
    public var to: String
    public var t: Float
    public init(to: String, t: Float) {
      self.to = to
      self.t = t
    }
  }

  public init(
    prompt: String, typedPrompt: String? = nil, style: String? = nil, imagePrompt: String? = nil,
    imageWeight: Float? = nil, negativePrompt: String? = nil, seed: UInt64, sampling: SamplingSettings, count: Int,
    candidates: Int, model: String, candidate: Int? = nil, clipScore: Float? = nil
  ) {
    self.negativePrompt = negativePrompt.flatMap { $0.isEmpty ? nil : $0 }
    self.prompt = prompt
    self.typedPrompt = typedPrompt == prompt ? nil : typedPrompt
    self.style = style
    self.imagePrompt = imagePrompt
    self.imageWeight = imagePrompt == nil ? nil : prompt.isEmpty ? 1 : imageWeight ?? 0.5
    self.seed = seed
    self.candidate = candidate
    temperature = sampling.temperature
    topK = sampling.topK.flatMap { $0 > 0 ? $0 : nil }
    topP = sampling.topP
    guidanceScale = sampling.guidanceScale
    self.count = count
    self.candidates = max(candidates, count)
    self.model = model
    self.clipScore = clipScore
    engine = "clipgen \(ClipGenVersion.string)"
  }

  enum CodingKeys: String, CodingKey {
    case prompt, style, seed, candidate, temperature, count, candidates, model, engine, tokens, interpolation, region
    case typedPrompt = "typed_prompt"
    case imagePrompt = "image_prompt"
    case imageWeight = "image_weight"
    case negativePrompt = "negative_prompt"
    case topK = "top_k"
    case topP = "top_p"
    case guidanceScale = "guidance_scale"
    case clipScore = "clip_score"
    case keptTokens = "kept_tokens"
  }

  public var sampling: SamplingSettings {
    SamplingSettings(temperature: temperature, topK: topK, topP: topP, guidanceScale: guidanceScale)
  }

  /// This record for one image of the generation.
  public func forImage(candidate: Int, clipScore: Float?, tokens: [Int]? = nil) -> GenerationParameters {
    var p = self
    p.candidate = candidate
    p.tokens = tokens
    p.clipScore = clipScore.map { ($0 * 1e6).rounded() / 1e6 }
    return p
  }

  /// The record as one line of JSON, keys sorted.
  public func json() throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(self), as: UTF8.self)
  }

  /// The PNG text chunks an image of `width`×`height` carries: `parameters` in AUTOMATIC1111's
  /// plain form (what other tools show), the whole record as JSON in `clipgen`, and `Software`.
  public func pngText(width: Int, height: Int, steps: Int) throws -> [(key: String, value: String)] {
    [
      (key: "parameters", value: a1111(width: width, height: height, steps: steps).text),
      (key: "clipgen", value: try json()), (key: "Software", value: "clipgen"),
    ]
  }
}
