// CLIP sizes: Hugging Face's `CLIPConfig` (`transformers/models/clip/configuration_clip.py`,
// read from a checkpoint's `config.json`) and OpenAI's `build_model` (`clip/model.py`), which
// infers the same sizes from tensor shapes when a checkpoint carries no config.
import Foundation

/// Errors from building or running a CLIP model that are not about reading a tensor (those are
/// `WeightError`s naming the file and tensor).
public enum CLIPError: Error, CustomStringConvertible, Equatable {
  /// A `config.json` that cannot be read or decoded.
  case unreadableConfig(file: String, reason: String)
  /// Sizes that cannot describe a CLIP model (e.g. a width not divisible by the head count).
  case invalidConfig(String)
  /// A `hidden_act` the engine does not implement.
  case unsupportedActivation(String)
  /// OpenAI-layout weights whose sizes cannot be inferred (e.g. a ResNet image tower).
  case cannotInferConfig(file: String, reason: String)
  /// Tensor names that match neither the Hugging Face nor the OpenAI layout.
  case unknownLayout(file: String)

  public var description: String {
    switch self {
    case .unreadableConfig(let file, let reason): return "\(file): cannot read CLIP config: \(reason)"
    case .invalidConfig(let reason): return "invalid CLIP config: \(reason)"
    case .unsupportedActivation(let name):
      return
        "unsupported CLIP hidden_act '\(name)' (supported: \(CLIPActivation.supportedNames.joined(separator: ", ")))"
    case .cannotInferConfig(let file, let reason): return "\(file): cannot infer CLIP sizes: \(reason)"
    case .unknownLayout(let file):
      return "\(file): not a CLIP checkpoint in Hugging Face or OpenAI layout (no token embedding found)"
    }
  }
}

/// The MLP non-linearity of a tower (`hidden_act`).
public enum CLIPActivation: String, Sendable, CaseIterable {
  /// OpenAI CLIP's `QuickGELU`, `x·σ(1.702·x)` (`"quick_gelu"`).
  case quickGELU = "quick_gelu"
  /// Exact GELU, `0.5·x·(1 + erf(x/√2))` (`"gelu"`).
  case gelu = "gelu"

  static var supportedNames: [String] { allCases.map(\.rawValue) }

  /// The activation for a `hidden_act` name; throws `CLIPError.unsupportedActivation` otherwise.
  public init(named name: String) throws {
    guard let a = CLIPActivation(rawValue: name) else { throw CLIPError.unsupportedActivation(name) }
    self = a
  }

  /// Applies the activation in place to `count` values.
  func apply(_ x: FloatPointer, count: Int) {
    switch self {
    case .quickGELU: Activation.quickGELU(x, count: count)
    case .gelu: Activation.gelu(x, count: count)
    }
  }
}

/// Sizes of a CLIP model, decoded from Hugging Face's `config.json` (`CLIPConfig`). Fields missing
/// from the file take the values of `openai/clip-vit-base-patch32` (ViT-B/32), as Hugging Face's
/// own defaults do.
public struct CLIPConfig: Codable, Sendable, Equatable {
  /// The text tower (`CLIPTextConfig`).
  public struct Text: Codable, Sendable, Equatable {
    /// Token embedding rows (49408 for OpenAI's BPE).
    public var vocabSize: Int
    /// Width of the residual stream.
    public var hiddenSize: Int
    /// Width of the MLP's hidden layer (4 × width in OpenAI's models).
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    /// Context length (77): positional embedding rows.
    public var maxPositionEmbeddings: Int
    /// `"quick_gelu"` or `"gelu"`.
    public var hiddenAct: String
    public var layerNormEps: Double

    enum CodingKeys: String, CodingKey {
      case vocabSize = "vocab_size"
      case hiddenSize = "hidden_size"
      case intermediateSize = "intermediate_size"
      case numHiddenLayers = "num_hidden_layers"
      case numAttentionHeads = "num_attention_heads"
      case maxPositionEmbeddings = "max_position_embeddings"
      case hiddenAct = "hidden_act"
      case layerNormEps = "layer_norm_eps"
    }

    public init(
      vocabSize: Int = 49408, hiddenSize: Int = 512, intermediateSize: Int = 2048, numHiddenLayers: Int = 12,
      numAttentionHeads: Int = 8, maxPositionEmbeddings: Int = 77, hiddenAct: String = "quick_gelu",
      layerNormEps: Double = 1e-5
    ) {
      self.vocabSize = vocabSize
      self.hiddenSize = hiddenSize
      self.intermediateSize = intermediateSize
      self.numHiddenLayers = numHiddenLayers
      self.numAttentionHeads = numAttentionHeads
      self.maxPositionEmbeddings = maxPositionEmbeddings
      self.hiddenAct = hiddenAct
      self.layerNormEps = layerNormEps
    }

    public init(from decoder: Decoder) throws {
      try self.init(layers: [decoder.container(keyedBy: CodingKeys.self)])
    }

    /// Each field from the first container that has it, else the ViT-B/32 default.
    init(layers: [KeyedDecodingContainer<CodingKeys>]) throws {
      let d = Text()
      vocabSize = try firstValue(layers, .vocabSize) ?? d.vocabSize
      hiddenSize = try firstValue(layers, .hiddenSize) ?? d.hiddenSize
      intermediateSize = try firstValue(layers, .intermediateSize) ?? d.intermediateSize
      numHiddenLayers = try firstValue(layers, .numHiddenLayers) ?? d.numHiddenLayers
      numAttentionHeads = try firstValue(layers, .numAttentionHeads) ?? d.numAttentionHeads
      maxPositionEmbeddings = try firstValue(layers, .maxPositionEmbeddings) ?? d.maxPositionEmbeddings
      hiddenAct = try firstValue(layers, .hiddenAct) ?? d.hiddenAct
      layerNormEps = try firstValue(layers, .layerNormEps) ?? d.layerNormEps
    }
  }

  /// The image tower (`CLIPVisionConfig`).
  public struct Vision: Codable, Sendable, Equatable {
    /// Width of the residual stream.
    public var hiddenSize: Int
    /// Width of the MLP's hidden layer.
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    /// Input side in pixels (square images).
    public var imageSize: Int
    /// Patch side in pixels (the patch conv's kernel and stride).
    public var patchSize: Int
    /// Input channels (3).
    public var numChannels: Int
    /// `"quick_gelu"` or `"gelu"`.
    public var hiddenAct: String
    public var layerNormEps: Double

    enum CodingKeys: String, CodingKey {
      case hiddenSize = "hidden_size"
      case intermediateSize = "intermediate_size"
      case numHiddenLayers = "num_hidden_layers"
      case numAttentionHeads = "num_attention_heads"
      case imageSize = "image_size"
      case patchSize = "patch_size"
      case numChannels = "num_channels"
      case hiddenAct = "hidden_act"
      case layerNormEps = "layer_norm_eps"
    }

    public init(
      hiddenSize: Int = 768, intermediateSize: Int = 3072, numHiddenLayers: Int = 12, numAttentionHeads: Int = 12,
      imageSize: Int = 224, patchSize: Int = 32, numChannels: Int = 3, hiddenAct: String = "quick_gelu",
      layerNormEps: Double = 1e-5
    ) {
      self.hiddenSize = hiddenSize
      self.intermediateSize = intermediateSize
      self.numHiddenLayers = numHiddenLayers
      self.numAttentionHeads = numAttentionHeads
      self.imageSize = imageSize
      self.patchSize = patchSize
      self.numChannels = numChannels
      self.hiddenAct = hiddenAct
      self.layerNormEps = layerNormEps
    }

    public init(from decoder: Decoder) throws {
      try self.init(layers: [decoder.container(keyedBy: CodingKeys.self)])
    }

    init(layers: [KeyedDecodingContainer<CodingKeys>]) throws {
      let d = Vision()
      hiddenSize = try firstValue(layers, .hiddenSize) ?? d.hiddenSize
      intermediateSize = try firstValue(layers, .intermediateSize) ?? d.intermediateSize
      numHiddenLayers = try firstValue(layers, .numHiddenLayers) ?? d.numHiddenLayers
      numAttentionHeads = try firstValue(layers, .numAttentionHeads) ?? d.numAttentionHeads
      imageSize = try firstValue(layers, .imageSize) ?? d.imageSize
      patchSize = try firstValue(layers, .patchSize) ?? d.patchSize
      numChannels = try firstValue(layers, .numChannels) ?? d.numChannels
      hiddenAct = try firstValue(layers, .hiddenAct) ?? d.hiddenAct
      layerNormEps = try firstValue(layers, .layerNormEps) ?? d.layerNormEps
    }

    /// Patches per side (`imageSize / patchSize`).
    public var gridSize: Int { imageSize / patchSize }
  }

  public var text: Text
  public var vision: Vision
  /// Size of the joint embedding both projections map into.
  public var projectionDim: Int

  enum CodingKeys: String, CodingKey {
    case text = "text_config"
    case vision = "vision_config"
    case projectionDim = "projection_dim"
    // Older Hugging Face files (e.g. openai/clip-vit-base-patch32) also carry these; where both are
    // present, `*_config_dict` values win, as in transformers' `CLIPConfig.__init__`.
    case textDict = "text_config_dict"
    case visionDict = "vision_config_dict"
  }

  /// ViT-B/32 unless told otherwise.
  public init(text: Text = Text(), vision: Vision = Vision(), projectionDim: Int = 512) {
    self.text = text
    self.vision = vision
    self.projectionDim = projectionDim
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    func nested<K>(_ keys: [CodingKeys], _: K.Type) throws -> [KeyedDecodingContainer<K>] {
      try keys.compactMap { key in
        try c.contains(key) && !c.decodeNil(forKey: key) ? c.nestedContainer(keyedBy: K.self, forKey: key) : nil
      }
    }
    text = try Text(layers: nested([.textDict, .text], Text.CodingKeys.self))
    vision = try Vision(layers: nested([.visionDict, .vision], Vision.CodingKeys.self))
    projectionDim = try c.decodeIfPresent(Int.self, forKey: .projectionDim) ?? 512
  }

  public func encode(to encoder: Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(text, forKey: .text)
    try c.encode(vision, forKey: .vision)
    try c.encode(projectionDim, forKey: .projectionDim)
  }

  /// Reads a Hugging Face `config.json`; errors name the file.
  public static func load(contentsOf url: URL) throws -> CLIPConfig {
    let data: Data
    do {
      data = try Data(contentsOf: url)
    } catch {
      throw CLIPError.unreadableConfig(file: url.path, reason: error.localizedDescription)
    }
    do {
      return try JSONDecoder().decode(CLIPConfig.self, from: data)
    } catch let e as DecodingError {
      throw CLIPError.unreadableConfig(file: url.path, reason: Self.describe(e))
    } catch {
      throw CLIPError.unreadableConfig(file: url.path, reason: "\(error)")
    }
  }

  private static func describe(_ e: DecodingError) -> String {
    func path(_ keys: [CodingKey]) -> String { keys.map(\.stringValue).joined(separator: ".") }
    switch e {
    case .typeMismatch(let type, let ctx): return "'\(path(ctx.codingPath))' is not a \(type)"
    case .valueNotFound(let type, let ctx): return "'\(path(ctx.codingPath))' is null, expected a \(type)"
    case .keyNotFound(let key, let ctx): return "missing '\(path(ctx.codingPath + [key]))'"
    case .dataCorrupted(let ctx): return "not valid JSON (\(ctx.debugDescription))"
    @unknown default: return "\(e)"
    }
  }

  /// Checks that the sizes describe a model the engine can run (widths divisible by head counts,
  /// whole patches, known activations).
  public func validate() throws {
    func positive(_ values: [(String, Int)]) throws {
      for (name, v) in values where v <= 0 { throw CLIPError.invalidConfig("\(name) is \(v), must be positive") }
    }
    try positive([
      ("text_config.vocab_size", text.vocabSize), ("text_config.hidden_size", text.hiddenSize),
      ("text_config.intermediate_size", text.intermediateSize), ("text_config.num_hidden_layers", text.numHiddenLayers),
      ("text_config.num_attention_heads", text.numAttentionHeads),
      ("text_config.max_position_embeddings", text.maxPositionEmbeddings),
      ("vision_config.hidden_size", vision.hiddenSize), ("vision_config.intermediate_size", vision.intermediateSize),
      ("vision_config.num_hidden_layers", vision.numHiddenLayers),
      ("vision_config.num_attention_heads", vision.numAttentionHeads), ("vision_config.image_size", vision.imageSize),
      ("vision_config.patch_size", vision.patchSize), ("vision_config.num_channels", vision.numChannels),
      ("projection_dim", projectionDim),
    ])
    if text.hiddenSize % text.numAttentionHeads != 0 {
      throw CLIPError.invalidConfig(
        "text hidden_size \(text.hiddenSize) is not divisible by num_attention_heads \(text.numAttentionHeads)")
    }
    if vision.hiddenSize % vision.numAttentionHeads != 0 {
      throw CLIPError.invalidConfig(
        "vision hidden_size \(vision.hiddenSize) is not divisible by num_attention_heads \(vision.numAttentionHeads)")
    }
    if vision.imageSize % vision.patchSize != 0 {
      throw CLIPError.invalidConfig(
        "image_size \(vision.imageSize) is not a multiple of patch_size \(vision.patchSize)")
    }
    _ = try CLIPActivation(named: text.hiddenAct)
    _ = try CLIPActivation(named: vision.hiddenAct)
  }

  /// Sizes inferred from OpenAI-named weights the way OpenAI's `build_model` does: widths, patch,
  /// vocabulary, context and projection from tensor shapes, layer counts from the `resblocks`
  /// indices present, heads = width / 64, MLP width from `c_fc`, QuickGELU, eps 1e-5. ViT image
  /// towers only (a ResNet tower throws `cannotInferConfig`).
  public static func inferred(fromOpenAI weights: WeightSource) throws -> CLIPConfig {
    let file = weights.sourceDescription
    func shape(_ name: String, rank: Int) throws -> [Int] {
      guard let s = weights.shape(of: name) else {
        if name.hasPrefix("visual."), weights.contains("visual.layer1.0.conv1.weight") {
          throw CLIPError.cannotInferConfig(
            file: file, reason: "ResNet image towers (ModifiedResNet) are not supported")
        }
        throw WeightError.missingTensor(file: file, tensor: name)
      }
      guard s.count == rank else {
        throw CLIPError.cannotInferConfig(
          file: file, reason: "tensor '\(name)' has shape \(s), expected \(rank) dimensions")
      }
      return s
    }
    func layerCount(_ prefix: String) throws -> Int {
      var indices = Set<Int>()
      for name in weights.tensorNames where name.hasPrefix(prefix) {
        if let i = Int(name.dropFirst(prefix.count).prefix { $0 != "." }) { indices.insert(i) }
      }
      guard !indices.isEmpty else {
        throw CLIPError.cannotInferConfig(file: file, reason: "no tensors named \(prefix)N.*")
      }
      guard indices == Set(0..<indices.count) else {
        throw CLIPError.cannotInferConfig(
          file: file, reason: "\(prefix)N indices are not 0..<\(indices.count): \(indices.sorted())")
      }
      return indices.count
    }
    let conv = try shape("visual.conv1.weight", rank: 4)
    let visionPositions = try shape("visual.positional_embedding", rank: 2)[0]
    let grid = Int((Double(visionPositions - 1)).squareRoot().rounded())
    guard grid * grid + 1 == visionPositions else {
      throw CLIPError.cannotInferConfig(
        file: file, reason: "visual.positional_embedding has \(visionPositions) rows, not a square grid plus one")
    }
    let visionWidth = conv[0]
    let textWidth = try shape("ln_final.weight", rank: 1)[0]
    let headWidth = 64
    for (tower, width) in [("text", textWidth), ("vision", visionWidth)] where width % headWidth != 0 {
      throw CLIPError.cannotInferConfig(
        file: file, reason: "\(tower) width \(width) is not a multiple of 64 (OpenAI's heads = width / 64 rule)")
    }
    let config = CLIPConfig(
      text: Text(
        vocabSize: try shape("token_embedding.weight", rank: 2)[0],
        hiddenSize: textWidth,
        intermediateSize: try shape("transformer.resblocks.0.mlp.c_fc.weight", rank: 2)[0],
        numHiddenLayers: try layerCount("transformer.resblocks."),
        numAttentionHeads: textWidth / headWidth,
        maxPositionEmbeddings: try shape("positional_embedding", rank: 2)[0]),
      vision: Vision(
        hiddenSize: visionWidth,
        intermediateSize: try shape("visual.transformer.resblocks.0.mlp.c_fc.weight", rank: 2)[0],
        numHiddenLayers: try layerCount("visual.transformer.resblocks."),
        numAttentionHeads: visionWidth / headWidth,
        imageSize: conv[3] * grid,
        patchSize: conv[3],
        numChannels: conv[1]),
      projectionDim: try shape("text_projection", rank: 2)[1])
    try config.validate()
    return config
  }
}

/// The value for `key` in the first container that has it (nil when none has).
private func firstValue<K: CodingKey, T: Decodable>(_ containers: [KeyedDecodingContainer<K>], _ key: K) throws -> T? {
  for c in containers {
    if let v = try c.decodeIfPresent(T.self, forKey: key) { return v }
  }
  return nil
}
