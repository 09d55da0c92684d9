// The seam between the studio and the engine. The studio asks a `Generator` for images and
// shows what it reports; `ClipGenModel` is the real one (EngineGenerator.swift). Unit tests of
// the app state may script one; the studio binary and its end-to-end test use the engine.
import ClipGenEngine
import Foundation

/// The sampling settings the studio exposes, with the seed and the image counts.
public struct GenerationSettings: Sendable, Equatable, Codable {
  /// Logits are divided by this; 0 is greedy.
  public var temperature: Float = 1.0
  /// Keep only the k most likely tokens (nil: all).
  public var topK: Int? = nil
  /// Nucleus sampling threshold (1: off).
  public var topP: Float = 1.0
  /// Classifier-free guidance scale (1: off; needs a model with an unconditional embedding).
  public var guidanceScale: Float = 1.0
  public var seed: UInt64 = 0
  /// Images to keep.
  public var count: Int = 1
  /// Candidates to sample; CLIP keeps the best `count`.
  public var candidates: Int = 1

  public init(
    temperature: Float = 1.0, topK: Int? = nil, topP: Float = 1.0, guidanceScale: Float = 1.0, seed: UInt64 = 0,
    count: Int = 1, candidates: Int = 1
  ) {
    self.temperature = temperature
    self.topK = topK
    self.topP = topP
    self.guidanceScale = guidanceScale
    self.seed = seed
    self.count = count
    self.candidates = max(candidates, count)
  }

  /// Candidates these settings (as a model's defaults) sample for `count` kept images: the same
  /// number per image, by the engine's rule (`SamplingDefaults.candidates(forCount:)`, which the
  /// CLI uses too).
  public func defaultCandidates(forCount count: Int) -> Int {
    SamplingDefaults(candidates: max(1, candidates / max(1, self.count))).candidates(forCount: count)
  }

  /// These settings with the image count changed to `count`: candidates follow when they were at
  /// the model's default, else they are only kept at least `count`.
  public func withCount(_ count: Int, defaults: GenerationSettings) -> GenerationSettings {
    var s = self
    s.candidates =
      isModelDefault(.candidates, defaults: defaults)
      ? defaults.defaultCandidates(forCount: count) : max(candidates, count)
    s.count = count
    return s
  }

  /// Whether `field` holds the model's default value (the settings form says so beside it).
  public func isModelDefault(_ field: SettingsForm.Field, defaults d: GenerationSettings) -> Bool {
    switch field {
    case .temperature: return temperature == d.temperature
    case .topK: return (topK ?? 0) == (d.topK ?? 0)
    case .topP: return topP == d.topP
    case .guidance: return guidanceScale == d.guidanceScale
    case .candidates: return candidates == d.defaultCandidates(forCount: count)
    case .seed, .count: return false
    }
  }

  /// The settings to start a session with: the model's defaults, keeping each value the user had
  /// set away from the defaults it was saved against (`savedDefaults`). A model whose defaults
  /// changed thus brings its new values, and nothing set against other defaults slips in unseen.
  public static func restored(
    _ saved: GenerationSettings, savedDefaults: GenerationSettings, modelDefaults: GenerationSettings
  ) -> GenerationSettings {
    var s = modelDefaults.withCount(max(1, saved.count), defaults: modelDefaults)
    s.seed = saved.seed
    let changed = { (f: SettingsForm.Field) in !saved.isModelDefault(f, defaults: savedDefaults) }
    if changed(.temperature) { s.temperature = saved.temperature }
    if changed(.topK) { s.topK = saved.topK }
    if changed(.topP) { s.topP = saved.topP }
    if changed(.guidance) { s.guidanceScale = saved.guidanceScale }
    if changed(.candidates) { s.candidates = max(saved.candidates, s.count) }
    return s
  }

  /// "T 1.0 · k all · p 1.0" — the sampling part, as labels show it.
  public var samplingLabel: String {
    var s = "T \(formatSetting(temperature)) · k \(topK.map(String.init) ?? "all")"
    if topP < 1 { s += " · p \(formatSetting(topP))" }
    if guidanceScale != 1 { s += " · cfg \(formatSetting(guidanceScale))" }
    return s
  }
}

/// A setting as people write it: "1", "0.7", "0.05".
public func formatSetting(_ v: Float) -> String {
  let r = (Double(v) * 1000).rounded() / 1000
  if r == r.rounded() { return String(format: "%.1f", r) }
  var s = String(format: "%.3f", r)
  while s.hasSuffix("0") { s.removeLast() }
  return s
}

/// What the studio asks a generator for: text and/or an image, and the settings.
public struct StudioRequest: Sendable {
  /// The text to condition on (with the style applied); empty for image-only prompts.
  public var text: String
  /// An image to condition on through CLIP's image encoder, with its label and weight (0…1;
  /// the text gets 1 − weight).
  public var image: Pixmap?
  public var imageLabel: String
  public var imageWeight: Double
  public var settings: GenerationSettings
  /// Text guidance steers away from, in place of the unconditional embedding.
  public var negative: String?
  /// Tokens to keep instead of sampling (a re-roll of the rows below them; with `region`, the
  /// whole grid of the image being edited).
  public var keep: [Int] = []
  /// A region edit: only these tokens are sampled again (`GenerationRequest.region`).
  public var region: TokenRegion?
  /// An interpolation frame: the prompt `t` of the way (0…1) from this request's prompt to
  /// `to` (`ClipGenModel.interpolated`).
  public var interpolation: GenerationParameters.Interpolation?

  public init(
    text: String, image: Pixmap? = nil, imageLabel: String = "", imageWeight: Double = 0.5,
    settings: GenerationSettings,
    negative: String? = nil
  ) {
    self.text = text
    self.negative = negative
    self.image = image
    self.imageLabel = imageLabel
    self.imageWeight = imageWeight
    self.settings = settings
  }
}

/// Progress a generator reports; the handler returns false to cancel.
public enum GeneratorEvent: Sendable {
  /// The prompt was embedded (`truncated`: the text was longer than the context and cut).
  case conditioned(truncated: Bool)
  /// `done` of `total` tokens sampled per candidate; `tokens[c]` is candidate c's grid so far.
  case sampled(done: Int, total: Int, tokens: [[Int]], tokensPerSecond: Double)
  /// Candidate `index` of `total` decoded.
  case decoded(index: Int, total: Int, image: Pixmap)
}

/// One finished image.
public struct GeneratedPicture: Sendable {
  public var image: Pixmap
  public var tokens: [Int]
  public var candidate: Int
  public var clipScore: Float?

  public init(image: Pixmap, tokens: [Int], candidate: Int, clipScore: Float?) {
    self.image = image
    self.tokens = tokens
    self.candidate = candidate
    self.clipScore = clipScore
  }
}

/// What a generation produced.
public struct GeneratorOutput: Sendable {
  public var pictures: [GeneratedPicture]
  public var truncated: Bool
  public var tokensPerSecond: Double
  public var seconds: Double

  public init(pictures: [GeneratedPicture], truncated: Bool, tokensPerSecond: Double, seconds: Double) {
    self.pictures = pictures
    self.truncated = truncated
    self.tokensPerSecond = tokensPerSecond
    self.seconds = seconds
  }
}

/// The generator stopped because the progress handler asked it to.
public struct GenerationCancelled: Error {
  public init() {}
}

/// Something that turns prompts into images, reporting progress as it samples.
public protocol Generator: AnyObject, Sendable {
  /// The model's name, for the header and the history.
  var modelName: String { get }
  /// The token grid's shape (rows × columns).
  var gridHeight: Int { get }
  var gridWidth: Int { get }
  /// Generates, calling `progress` (on the calling thread) as it goes; throws
  /// `GenerationCancelled` when `progress` returned false.
  func generate(_ request: StudioRequest, progress: (GeneratorEvent) -> Bool) throws -> GeneratorOutput
  /// Decodes a partly sampled token grid for the live preview.
  func preview(tokens: [Int]) throws -> Pixmap
  /// The settings the model's author chose (model.json's `defaults`), for one image.
  var defaultSettings: GenerationSettings { get }
}

extension Generator {
  public var defaultSettings: GenerationSettings { GenerationSettings() }
}

/// Reading and writing image files (PNG and JPEG in, PNG with text chunks out).
public protocol ImageFiles: Sendable {
  func load(_ url: URL) throws -> Pixmap
  func writePNG(_ image: Pixmap, to url: URL, text: [(key: String, value: String)]) throws
}
