// The real generator: ClipGenEngine's `ClipGenModel`, and image files through the engine's
// PNG/JPEG codecs.
import ClipGenEngine
import Foundation

extension Pixmap {
  /// The pixels of an engine image.
  public init(_ image: RGBImage) { self.init(width: image.width, height: image.height, pixels: image.pixels) }

  /// This pixmap as an engine image.
  public var rgbImage: RGBImage { RGBImage(width: width, height: height, pixels: pixels) }
}

extension ClipGenModel: Generator {
  public var modelName: String { name }

  /// model.json's `defaults` as studio settings for one image.
  public var defaultSettings: GenerationSettings {
    let s = defaults.sampling
    return GenerationSettings(
      temperature: s.temperature, topK: s.topK, topP: s.topP, guidanceScale: s.guidanceScale, count: 1,
      candidates: defaults.candidates(forCount: 1))
  }

  /// The engine request for a studio request: text and image mixed by the engine's one rule
  /// (`Prompt.mixing`), the sampling settings, the seed and the counts.
  public func engineRequest(_ request: StudioRequest) -> GenerationRequest {
    let image = request.image.map { (image: $0.rgbImage, label: request.imageLabel) }
    let s = request.settings
    return GenerationRequest(
      prompt: .mixing(text: request.text, image: image, imageWeight: Float(request.imageWeight)), count: s.count,
      candidates: s.candidates, seed: s.seed,
      sampling: SamplingSettings(
        temperature: s.temperature, topK: s.topK, topP: s.topP, guidanceScale: s.guidanceScale),
      negative: request.negative.map { .text($0) }, keep: request.keep, region: request.region)
  }

  public func generate(_ request: StudioRequest, progress: (GeneratorEvent) -> Bool) throws -> GeneratorOutput {
    let result: GenerationResult
    do {
      var engine = engineRequest(request)
      if let i = request.interpolation {
        engine.prompt = try interpolated(from: engine.prompt, to: .text(i.to), t: i.t)
      }
      result = try generate(engine) { event in
        switch event {
        case .conditioned(let truncated): return progress(.conditioned(truncated: truncated))
        case .sampled(let done, let total, let tokens, let rate):
          return progress(.sampled(done: done, total: total, tokens: tokens, tokensPerSecond: rate))
        case .decoded(let index, let total, let image):
          return progress(.decoded(index: index, total: total, image: Pixmap(image)))
        case .scored: return true
        }
      }
    } catch GenerationError.cancelled {
      throw GenerationCancelled()
    }
    return GeneratorOutput(
      pictures: result.images.map {
        GeneratedPicture(image: Pixmap($0.image), tokens: $0.tokens, candidate: $0.candidate, clipScore: $0.clipScore)
      },
      truncated: result.promptTruncated, tokensPerSecond: result.tokensPerSecond, seconds: result.totalSeconds)
  }

  public func preview(tokens: [Int]) throws -> Pixmap { Pixmap(try previewImage(tokens: tokens)) }
}

/// PNG and JPEG through the engine; PNGs written with the engine's `writeAtomically`, so a full
/// disk leaves no half-written image.
public struct EngineImageFiles: ImageFiles {
  public init() {}

  /// Errors name the file and the reason ("cannot read …: No such file or directory").
  public func load(_ url: URL) throws -> Pixmap { Pixmap(try RGBImage.load(contentsOf: url)) }

  public func writePNG(_ image: Pixmap, to url: URL, text: [(key: String, value: String)]) throws {
    let data = try image.rgbImage.pngData(text: text)
    try writeAtomically(data, to: url)
  }
}
