// CLIP's text and image encoders: OpenAI's `CLIP.encode_text` and `VisionTransformer`
// (`clip/model.py`), Hugging Face's `CLIPTextTransformer` + `text_projection` and
// `CLIPVisionTransformer` + `visual_projection` (`modeling_clip.py`). One implementation reads
// both key layouts (`CLIPLayout`). Rows of a batch run through each layer as one GEMM.
import Foundation

/// The text tower: token embedding + positional embedding, causal pre-LN blocks, `ln_final`, the
/// row at the end-of-text token, `text_projection`. Mirrors OpenAI's `CLIP.encode_text` (HF
/// `CLIPTextTransformer` followed by `text_projection`).
public struct CLIPTextEncoder: Sendable {
  public let config: CLIPConfig.Text
  /// Size of the projected embedding.
  public let projectionDim: Int
  let tokenEmbedding: Tensor  // [vocab, width]
  let positionalEmbedding: Tensor  // [context, width]
  let transformer: CLIPTransformer
  let finalNorm: LayerNorm
  let projection: Linear  // [projection, width], no bias

  init(reader: CLIPWeightReader, config c: CLIPConfig.Text, projectionDim: Int) throws {
    let w = c.hiddenSize
    config = c
    self.projectionDim = projectionDim
    tokenEmbedding = try reader.tensor(.tokenEmbedding, shape: [c.vocabSize, w])
    positionalEmbedding = try reader.tensor(.textPositionalEmbedding, shape: [c.maxPositionEmbeddings, w])
    transformer = try CLIPTransformer(
      reader: reader, tower: .text, width: w, intermediate: c.intermediateSize, layers: c.numHiddenLayers,
      heads: c.numAttentionHeads, eps: c.layerNormEps, activation: try CLIPActivation(named: c.hiddenAct))
    finalNorm = try reader.layerNorm({ .finalNorm($0) }, width: w, eps: c.layerNormEps)
    projection = try reader.linear(.textProjection, nil, out: projectionDim, in: w)
  }

  /// The position each row is pooled at: the first occurrence of its largest id (OpenAI's
  /// `argmax`; the end-of-text token has the highest id in CLIP's vocabulary).
  public static func poolingPositions(_ ids: [[Int32]]) -> [Int] {
    ids.map { row in
      var best = 0
      for (i, id) in row.enumerated() where id > row[best] { best = i }
      return best
    }
  }

  /// Projected, unnormalised text embeddings `[ids.count, projectionDim]`.
  ///
  /// Rows may differ in length (up to `maxPositionEmbeddings`); each is pooled at its largest id.
  /// Attention is causal, so positions after the last pooled one cannot change the result and are
  /// not computed: a short prompt padded to 77 costs only its own length.
  /// - Precondition: every row is non-empty, no longer than the context, and its ids are in
  ///   `0..<vocabSize` (the tokenizer guarantees all three).
  public func encode(_ ids: [[Int32]]) -> Tensor {
    let batch = ids.count
    let width = config.hiddenSize
    guard batch > 0 else { return Tensor(zeros: [0, projectionDim]) }
    for (b, row) in ids.enumerated() {
      precondition(!row.isEmpty, "CLIP text: row \(b) is empty")
      precondition(
        row.count <= config.maxPositionEmbeddings,
        "CLIP text: row \(b) has \(row.count) tokens, the context holds \(config.maxPositionEmbeddings)")
      if let bad = row.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
        preconditionFailure("CLIP text: row \(b) holds token id \(bad), outside the vocabulary of \(config.vocabSize)")
      }
    }
    let pooled = Self.poolingPositions(ids)
    let length = pooled.max()! + 1
    let rows = batch * length

    let x = FloatPointer.allocate(capacity: rows * width)
    let picked = FloatPointer.allocate(capacity: batch * width)
    defer {
      x.deallocate()
      picked.deallocate()
    }
    // x[b, t] = token_embedding[id] + positional_embedding[t]. Rows shorter than `length` are
    // padded with id 0; causality keeps the padding out of every pooled position.
    tokenEmbedding.withUnsafeBufferPointer { tok in
      positionalEmbedding.withUnsafeBufferPointer { pos in
        for b in 0..<batch {
          for t in 0..<length {
            let id = t < ids[b].count ? Int(ids[b][t]) : 0
            let dst = x + (b * length + t) * width
            dst.update(from: tok.baseAddress! + id * width, count: width)
            addInPlace(dst, pos.baseAddress! + t * width, count: width)
          }
        }
      }
    }
    transformer.forward(x, batch: batch, length: length, causal: true)
    // ln_final is per row, so only the pooled rows need it.
    for b in 0..<batch { (picked + b * width).update(from: x + (b * length + pooled[b]) * width, count: width) }
    finalNorm.forward(picked, rows: batch, into: picked)
    var out = Tensor(zeros: [batch, projectionDim])
    out.withUnsafeMutableBufferPointer { projection.forward(picked, rows: batch, into: $0.baseAddress!) }
    return out
  }
}

/// The image tower: patch conv (no bias), class token, positional embedding, `ln_pre`, pre-LN
/// blocks, `ln_post` on the class token, `proj`. Mirrors OpenAI's `VisionTransformer` (HF
/// `CLIPVisionTransformer` followed by `visual_projection`).
public struct CLIPImageEncoder: Sendable {
  public let config: CLIPConfig.Vision
  /// Size of the projected embedding.
  public let projectionDim: Int
  /// The patch conv as a linear map on flattened patches: weight `[width, channels·patch·patch]`.
  /// With stride = kernel the patches do not overlap, so the conv of a whole batch is one GEMM.
  let patchEmbedding: Linear
  let classEmbedding: Tensor  // [width]
  let positionalEmbedding: Tensor  // [grid² + 1, width]
  let preNorm: LayerNorm
  let transformer: CLIPTransformer
  let postNorm: LayerNorm
  let projection: Linear  // [projection, width], no bias

  init(reader: CLIPWeightReader, config c: CLIPConfig.Vision, projectionDim: Int) throws {
    let w = c.hiddenSize
    let p = c.patchSize
    config = c
    self.projectionDim = projectionDim
    let conv = try reader.tensor(.patchEmbedding, shape: [w, c.numChannels, p, p])
    patchEmbedding = Linear(weight: conv.reshaped([w, c.numChannels * p * p]), bias: nil)
    classEmbedding = try reader.tensor(.classEmbedding, shape: [w])
    positionalEmbedding = try reader.tensor(.visionPositionalEmbedding, shape: [c.gridSize * c.gridSize + 1, w])
    preNorm = try reader.layerNorm({ .preNorm($0) }, width: w, eps: c.layerNormEps)
    transformer = try CLIPTransformer(
      reader: reader, tower: .vision, width: w, intermediate: c.intermediateSize, layers: c.numHiddenLayers,
      heads: c.numAttentionHeads, eps: c.layerNormEps, activation: try CLIPActivation(named: c.hiddenAct))
    postNorm = try reader.layerNorm({ .postNorm($0) }, width: w, eps: c.layerNormEps)
    projection = try reader.linear(.visionProjection, nil, out: projectionDim, in: w)
  }

  /// Projected, unnormalised image embeddings `[batch, projectionDim]` from pixels
  /// `[batch, channels, imageSize, imageSize]` (or one image `[channels, imageSize, imageSize]`),
  /// already resized and normalised with CLIP's mean and std.
  /// - Precondition: the pixel tensor has that shape.
  public func encode(_ pixels: Tensor) -> Tensor {
    let c = config
    let s = c.imageSize
    let p = c.patchSize
    let g = c.gridSize
    let width = c.hiddenSize
    let image = pixels.shape.count == 3 ? [1] + pixels.shape : pixels.shape
    precondition(
      image.count == 4 && Array(image.dropFirst()) == [c.numChannels, s, s],
      "CLIP image: pixels of shape \(pixels.shape), expected [batch, \(c.numChannels), \(s), \(s)]")
    let batch = image[0]
    guard batch > 0 else { return Tensor(zeros: [0, projectionDim]) }
    let patches = g * g
    let patchSize = c.numChannels * p * p
    let tokens = patches + 1
    let rows = batch * tokens

    let unfolded = FloatPointer.allocate(capacity: batch * patches * patchSize)
    let embedded = FloatPointer.allocate(capacity: batch * patches * width)
    let x = FloatPointer.allocate(capacity: rows * width)
    let picked = FloatPointer.allocate(capacity: batch * width)
    defer {
      unfolded.deallocate()
      embedded.deallocate()
      x.deallocate()
      picked.deallocate()
    }
    // Patch (b, gy, gx) becomes one row laid out like the conv weight: (channel, ky, kx).
    pixels.withUnsafeBufferPointer { px in
      let src = px.baseAddress!
      for b in 0..<batch {
        for gy in 0..<g {
          for gx in 0..<g {
            var dst = unfolded + ((b * g + gy) * g + gx) * patchSize
            for ch in 0..<c.numChannels {
              let plane = src + (b * c.numChannels + ch) * s * s
              for ky in 0..<p {
                dst.update(from: plane + (gy * p + ky) * s + gx * p, count: p)
                dst += p
              }
            }
          }
        }
      }
    }
    patchEmbedding.forward(unfolded, rows: batch * patches, into: embedded)
    // x[b] = [class_embedding; patches] + positional_embedding.
    classEmbedding.withUnsafeBufferPointer { cls in
      positionalEmbedding.withUnsafeBufferPointer { pos in
        for b in 0..<batch {
          let xb = x + b * tokens * width
          xb.update(from: cls.baseAddress!, count: width)
          (xb + width).update(from: embedded + b * patches * width, count: patches * width)
          addInPlace(xb, pos.baseAddress!, count: tokens * width)
        }
      }
    }
    preNorm.forward(x, rows: rows, into: x)
    transformer.forward(x, batch: batch, length: tokens, causal: false)
    for b in 0..<batch { (picked + b * width).update(from: x + b * tokens * width, count: width) }
    postNorm.forward(picked, rows: batch, into: picked)
    var out = Tensor(zeros: [batch, projectionDim])
    out.withUnsafeMutableBufferPointer { projection.forward(picked, rows: batch, into: $0.baseAddress!) }
    return out
  }
}

/// A CLIP model (OpenAI's `CLIP`, HF `CLIPModel`): a text and an image encoder into one embedding
/// space. Immutable after loading, so one instance can serve any number of threads.
public final class CLIPModel: Sendable {
  public let config: CLIPConfig
  /// The key layout the weights were read in.
  public let layout: CLIPLayout
  public let text: CLIPTextEncoder
  public let vision: CLIPImageEncoder
  /// The learned temperature `logit_scale` (a log), when the checkpoint has one.
  public let logitScale: Float?

  /// Builds the model from `weights` stored in `layout`, with sizes from `config`.
  /// - Throws: `CLIPError` for an unusable config; `WeightError.missingTensor` or
  ///   `.shapeMismatch` naming the file and the stored tensor.
  public init(weights: WeightSource, config: CLIPConfig, layout: CLIPLayout) throws {
    try config.validate()
    let reader = CLIPWeightReader(weights: weights, layout: layout)
    self.config = config
    self.layout = layout
    text = try CLIPTextEncoder(reader: reader, config: config.text, projectionDim: config.projectionDim)
    vision = try CLIPImageEncoder(reader: reader, config: config.vision, projectionDim: config.projectionDim)
    logitScale = weights.contains("logit_scale") ? try weights.tensor("logit_scale", count: 1, as: [1]).scalars[0] : nil
  }

  /// OpenAI-named weights with sizes inferred from their shapes (`CLIPConfig.inferred(fromOpenAI:)`).
  public convenience init(openAIWeights weights: WeightSource) throws {
    try self.init(weights: weights, config: try CLIPConfig.inferred(fromOpenAI: weights), layout: .openAI)
  }

  /// Loads `directory/model.safetensors` with `directory/config.json` (see
  /// `load(weightsFile:configFile:layout:)`; a missing `config.json` counts as none).
  public static func load(directory: URL, layout: CLIPLayout? = nil) throws -> CLIPModel {
    let configURL = directory.appendingPathComponent("config.json")
    return try load(
      weightsFile: directory.appendingPathComponent("model.safetensors"),
      configFile: FileManager.default.fileExists(atPath: configURL.path) ? configURL : nil, layout: layout)
  }

  /// Loads a safetensors file, detecting the layout from its tensor names when `layout` is nil.
  /// Hugging Face weights need their `config.json`; for OpenAI weights a config, when given,
  /// overrides the sizes inferred from shapes.
  /// - Throws: `WeightError` naming the file (and tensor), `CLIPError` for the config or layout.
  public static func load(weightsFile: URL, configFile: URL?, layout: CLIPLayout? = nil) throws -> CLIPModel {
    let weights = try SafeTensorsFile(url: weightsFile)
    guard let layout = layout ?? CLIPLayout.detect(weights) else {
      throw CLIPError.unknownLayout(file: weightsFile.path)
    }
    let config: CLIPConfig
    switch (layout, configFile) {
    case (_, let url?): config = try CLIPConfig.load(contentsOf: url)
    case (.openAI, nil): config = try CLIPConfig.inferred(fromOpenAI: weights)
    case (.huggingFace, nil):
      throw CLIPError.unreadableConfig(
        file: weightsFile.deletingLastPathComponent().appendingPathComponent("config.json").path,
        reason: "missing (Hugging Face weights need their config.json)")
    }
    return try CLIPModel(weights: weights, config: config, layout: layout)
  }

  /// Projected, unnormalised text embeddings `[ids.count, projectionDim]`; see `CLIPTextEncoder.encode`.
  public func encodeText(_ ids: [[Int32]]) -> Tensor { text.encode(ids) }

  /// Projected, unnormalised image embeddings `[batch, projectionDim]` from CLIP-normalised pixels
  /// `[batch, 3, imageSize, imageSize]`; see `CLIPImageEncoder.encode`.
  public func encodeImage(_ pixels: Tensor) -> Tensor { vision.encode(pixels) }

  /// CLIP's logits `[images, texts]`: `exp(logit_scale)` × the cosine similarity of each image
  /// embedding with each text embedding (both unnormalised, `[n, projectionDim]`), as OpenAI's
  /// `CLIP.forward` computes `logits_per_image`. Without a stored `logit_scale`, the scale is 1.
  public func logits(images: Tensor, texts: Tensor) -> Tensor {
    let e = config.projectionDim
    precondition(images.shape.last == e && texts.shape.last == e, "CLIP logits: \(images.shape) vs \(texts.shape)")
    let (ni, nt) = (images.count / e, texts.count / e)
    let a = Self.normalized(images)
    let b = Self.normalized(texts)
    let scale = logitScale.map { Foundation.exp($0) } ?? 1
    var out = Tensor(zeros: [ni, nt])
    for i in 0..<ni {
      for j in 0..<nt {
        var dot: Float = 0
        for k in 0..<e { dot += a.scalars[i * e + k] * b.scalars[j * e + k] }
        out.scalars[i * nt + j] = scale * dot
      }
    }
    return out
  }

  /// Each row divided by its L2 norm (PyTorch `F.normalize(x, dim=-1)`, eps 1e-12), so dot
  /// products are cosine similarities.
  public static func normalized(_ embeddings: Tensor) -> Tensor {
    guard let width = embeddings.shape.last, width > 0 else { return embeddings }
    var out = embeddings
    out.withUnsafeMutableBufferPointer { buf in
      for r in 0..<(buf.count / width) {
        let row = buf.baseAddress! + r * width
        var sum: Double = 0
        for i in 0..<width { sum += Double(row[i]) * Double(row[i]) }
        let scale = Float(1 / max(sum.squareRoot(), 1e-12))
        for i in 0..<width { row[i] *= scale }
      }
    }
    return out
  }
}
