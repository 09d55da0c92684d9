// Where each CLIP parameter lives in the two published key layouts: Hugging Face's `CLIPModel`
// (`transformers/models/clip/modeling_clip.py`) and OpenAI's `CLIP` (`clip/model.py`). The model
// has one implementation; a layout is only a table from a parameter to stored tensor names, plus
// the two transforms the layouts need (a transpose, a concatenation).

/// A published naming of CLIP's tensors. The raw values are the names an engine model manifest
/// (`model.json`, `"clip": {"layout": …}`) uses.
public enum CLIPLayout: String, Sendable, CaseIterable {
  /// Hugging Face `CLIPModel`: `text_model.*`, `vision_model.*`, `text_projection.weight`,
  /// `visual_projection.weight`; separate `q_proj`/`k_proj`/`v_proj` per attention.
  case huggingFace = "hf"
  /// OpenAI `CLIP`: `token_embedding.weight`, `transformer.resblocks.N.*`, `visual.*`; packed
  /// `attn.in_proj_weight`; projections stored `[width, projection]` (used as `x @ P`).
  case openAI = "openai"

  /// The layout of a set of tensor names (nil when neither matches).
  public static func detect(_ weights: WeightSource) -> CLIPLayout? {
    if weights.contains("text_model.embeddings.token_embedding.weight")
      || weights.contains("vision_model.embeddings.patch_embedding.weight")
    {
      return .huggingFace
    }
    if weights.contains("token_embedding.weight") || weights.contains("visual.conv1.weight") { return .openAI }
    return nil
  }
}

/// The two transformer stacks.
enum CLIPTower: Sendable {
  case text, vision
}

/// One model parameter, named by what it is rather than by where a layout stores it. Shapes are
/// the engine's: linear weights `[out, in]` (PyTorch `nn.Linear`), so the projections are
/// `[projection, width]`.
enum CLIPParameter: Hashable, Sendable {
  enum Part: String, Sendable { case weight, bias }
  enum Block: Sendable { case norm1, attentionIn, attentionOut, norm2, fc1, fc2 }

  case tokenEmbedding
  case textPositionalEmbedding
  case finalNorm(Part)
  case textProjection
  case patchEmbedding
  case classEmbedding
  case visionPositionalEmbedding
  case preNorm(Part)
  case postNorm(Part)
  case visionProjection
  case block(CLIPTower, layer: Int, Block, Part)
}

/// How a layout stores one parameter.
enum CLIPStoredForm: Equatable {
  /// One tensor; when `transposed`, stored as the transpose of the engine's 2-D shape.
  case tensor(String, transposed: Bool = false)
  /// Several tensors stacked along the first dimension (HF's q, k, v → a packed in_proj).
  case concatenated([String])
}

extension CLIPLayout {
  /// Where this layout keeps `p`.
  func storage(of p: CLIPParameter) -> CLIPStoredForm {
    switch self {
    case .huggingFace: return huggingFaceStorage(p)
    case .openAI: return openAIStorage(p)
    }
  }

  private func huggingFaceStorage(_ p: CLIPParameter) -> CLIPStoredForm {
    switch p {
    case .tokenEmbedding: return .tensor("text_model.embeddings.token_embedding.weight")
    case .textPositionalEmbedding: return .tensor("text_model.embeddings.position_embedding.weight")
    case .finalNorm(let part): return .tensor("text_model.final_layer_norm.\(part.rawValue)")
    case .textProjection: return .tensor("text_projection.weight")
    case .patchEmbedding: return .tensor("vision_model.embeddings.patch_embedding.weight")
    case .classEmbedding: return .tensor("vision_model.embeddings.class_embedding")
    case .visionPositionalEmbedding: return .tensor("vision_model.embeddings.position_embedding.weight")
    // Hugging Face's spelling.
    case .preNorm(let part): return .tensor("vision_model.pre_layrnorm.\(part.rawValue)")
    case .postNorm(let part): return .tensor("vision_model.post_layernorm.\(part.rawValue)")
    case .visionProjection: return .tensor("visual_projection.weight")
    case .block(let tower, let layer, let block, let part):
      let prefix = "\(tower == .text ? "text_model" : "vision_model").encoder.layers.\(layer)."
      let suffix = part.rawValue
      switch block {
      case .norm1: return .tensor(prefix + "layer_norm1." + suffix)
      case .attentionIn: return .concatenated(["q", "k", "v"].map { prefix + "self_attn.\($0)_proj." + suffix })
      case .attentionOut: return .tensor(prefix + "self_attn.out_proj." + suffix)
      case .norm2: return .tensor(prefix + "layer_norm2." + suffix)
      case .fc1: return .tensor(prefix + "mlp.fc1." + suffix)
      case .fc2: return .tensor(prefix + "mlp.fc2." + suffix)
      }
    }
  }

  private func openAIStorage(_ p: CLIPParameter) -> CLIPStoredForm {
    switch p {
    case .tokenEmbedding: return .tensor("token_embedding.weight")
    case .textPositionalEmbedding: return .tensor("positional_embedding")
    case .finalNorm(let part): return .tensor("ln_final.\(part.rawValue)")
    case .textProjection: return .tensor("text_projection", transposed: true)
    case .patchEmbedding: return .tensor("visual.conv1.weight")
    case .classEmbedding: return .tensor("visual.class_embedding")
    case .visionPositionalEmbedding: return .tensor("visual.positional_embedding")
    case .preNorm(let part): return .tensor("visual.ln_pre.\(part.rawValue)")
    case .postNorm(let part): return .tensor("visual.ln_post.\(part.rawValue)")
    case .visionProjection: return .tensor("visual.proj", transposed: true)
    case .block(let tower, let layer, let block, let part):
      let prefix = "\(tower == .text ? "" : "visual.")transformer.resblocks.\(layer)."
      let suffix = part.rawValue
      switch block {
      case .norm1: return .tensor(prefix + "ln_1." + suffix)
      case .attentionIn: return .tensor(prefix + "attn.in_proj_" + suffix)
      case .attentionOut: return .tensor(prefix + "attn.out_proj." + suffix)
      case .norm2: return .tensor(prefix + "ln_2." + suffix)
      case .fc1: return .tensor(prefix + "mlp.c_fc." + suffix)
      case .fc2: return .tensor(prefix + "mlp.c_proj." + suffix)
      }
    }
  }
}

/// Reads parameters through a layout, checking each stored tensor's shape; errors name the file
/// and the stored tensor.
struct CLIPWeightReader {
  let weights: WeightSource
  let layout: CLIPLayout

  /// The parameter `p` with the engine's shape `shape`.
  func tensor(_ p: CLIPParameter, shape: [Int]) throws -> Tensor {
    switch layout.storage(of: p) {
    case .tensor(let name, let transposed):
      guard transposed else { return try stored(name, shape: shape) }
      precondition(shape.count == 2, "only 2-D parameters are stored transposed")
      return Self.transpose(try stored(name, shape: [shape[1], shape[0]]))
    case .concatenated(let names):
      precondition(shape[0] % names.count == 0, "\(shape) does not split into \(names.count) parts")
      var partShape = shape
      partShape[0] /= names.count
      var scalars: [Float] = []
      scalars.reserveCapacity(shape.reduce(1, *))
      for name in names { scalars += try stored(name, shape: partShape).scalars }
      return Tensor(shape: shape, scalars: scalars)
    }
  }

  /// A stored tensor of exactly `shape`, except that a `[1, …]` leading axis is tolerated (some
  /// exports keep embeddings as `[1, n, d]`).
  private func stored(_ name: String, shape: [Int]) throws -> Tensor {
    let t = try weights.tensor(name)
    if t.shape == shape { return t }
    if t.shape.first == 1, Array(t.shape.dropFirst()) == shape { return t.reshaped(shape) }
    throw WeightError.shapeMismatch(file: weights.sourceDescription, tensor: name, expected: shape, found: t.shape)
  }

  func linear(_ weight: CLIPParameter, _ bias: CLIPParameter?, out: Int, in inFeatures: Int) throws -> Linear {
    Linear(weight: try tensor(weight, shape: [out, inFeatures]), bias: try bias.map { try tensor($0, shape: [out]) })
  }

  func layerNorm(_ make: (CLIPParameter.Part) -> CLIPParameter, width: Int, eps: Double) throws -> LayerNorm {
    LayerNorm(
      weight: try tensor(make(.weight), shape: [width]), bias: try tensor(make(.bias), shape: [width]), eps: Float(eps))
  }

  private static func transpose(_ t: Tensor) -> Tensor {
    let (r, c) = (t.shape[0], t.shape[1])
    var out = [Float](repeating: 0, count: r * c)
    for i in 0..<r {
      for j in 0..<c { out[j * r + i] = t.scalars[i * c + j] }
    }
    return Tensor(shape: [c, r], scalars: out)
  }
}
