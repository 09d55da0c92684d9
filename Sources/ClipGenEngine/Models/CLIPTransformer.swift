// CLIP's pre-LN transformer: OpenAI's `ResidualAttentionBlock` / `Transformer` (`clip/model.py`),
// Hugging Face's `CLIPEncoderLayer` / `CLIPEncoder` (`modeling_clip.py`). Both towers use it.

/// One pre-LN residual block, on packed rows `[batch·length, width]`:
/// `x += attn(ln_1(x))`, then `x += c_proj(act(c_fc(ln_2(x))))`. Mirrors OpenAI's
/// `ResidualAttentionBlock` (HF `CLIPEncoderLayer`).
struct CLIPEncoderLayer: Sendable {
  let norm1: LayerNorm
  let attention: MultiHeadSelfAttention
  let norm2: LayerNorm
  let fc1: Linear
  let fc2: Linear
  let activation: CLIPActivation

  init(
    reader: CLIPWeightReader, tower: CLIPTower, layer: Int, width: Int, intermediate: Int, heads: Int, eps: Double,
    activation: CLIPActivation
  ) throws {
    func p(_ block: CLIPParameter.Block, _ part: CLIPParameter.Part) -> CLIPParameter {
      .block(tower, layer: layer, block, part)
    }
    norm1 = try reader.layerNorm({ p(.norm1, $0) }, width: width, eps: eps)
    attention = MultiHeadSelfAttention(
      inProj: try reader.linear(p(.attentionIn, .weight), p(.attentionIn, .bias), out: 3 * width, in: width),
      outProj: try reader.linear(p(.attentionOut, .weight), p(.attentionOut, .bias), out: width, in: width),
      heads: heads)
    norm2 = try reader.layerNorm({ p(.norm2, $0) }, width: width, eps: eps)
    fc1 = try reader.linear(p(.fc1, .weight), p(.fc1, .bias), out: intermediate, in: width)
    fc2 = try reader.linear(p(.fc2, .weight), p(.fc2, .bias), out: width, in: intermediate)
    self.activation = activation
  }

  /// Updates `x` (`batch` sequences of `length` rows) in place. `scratch` holds the normalised
  /// rows and the branch output (`rows·width` each) and the MLP hidden rows (`rows·intermediate`).
  func forward(_ x: FloatPointer, batch: Int, length: Int, causal: Bool, scratch: CLIPScratch) {
    let rows = batch * length
    let width = norm1.dim
    norm1.forward(x, rows: rows, into: scratch.normed)
    attention.forward(scratch.normed, batch: batch, length: length, causal: causal, into: scratch.branch)
    addInPlace(x, scratch.branch, count: rows * width)
    norm2.forward(x, rows: rows, into: scratch.normed)
    fc1.forward(scratch.normed, rows: rows, into: scratch.hidden)
    activation.apply(scratch.hidden, count: rows * fc1.outFeatures)
    fc2.forward(scratch.hidden, rows: rows, into: scratch.branch)
    addInPlace(x, scratch.branch, count: rows * width)
  }
}

/// Working buffers for one forward pass of a `CLIPTransformer`, allocated once and shared by
/// every layer; freed by `deallocate()`.
struct CLIPScratch {
  let normed: FloatPointer
  let branch: FloatPointer
  let hidden: FloatPointer

  init(rows: Int, width: Int, intermediate: Int) {
    normed = .allocate(capacity: rows * width)
    branch = .allocate(capacity: rows * width)
    hidden = .allocate(capacity: rows * intermediate)
  }

  func deallocate() {
    normed.deallocate()
    branch.deallocate()
    hidden.deallocate()
  }
}

/// A stack of `CLIPEncoderLayer`s (OpenAI `Transformer`, HF `CLIPEncoder`).
struct CLIPTransformer: Sendable {
  let layers: [CLIPEncoderLayer]
  let width: Int
  let intermediate: Int

  init(
    reader: CLIPWeightReader, tower: CLIPTower, width: Int, intermediate: Int, layers count: Int, heads: Int,
    eps: Double, activation: CLIPActivation
  ) throws {
    layers = try (0..<count).map {
      try CLIPEncoderLayer(
        reader: reader, tower: tower, layer: $0, width: width, intermediate: intermediate, heads: heads, eps: eps,
        activation: activation)
    }
    self.width = width
    self.intermediate = intermediate
  }

  /// Runs every layer over `x` (`[batch·length, width]`) in place.
  func forward(_ x: FloatPointer, batch: Int, length: Int, causal: Bool) {
    let scratch = CLIPScratch(rows: batch * length, width: width, intermediate: intermediate)
    defer { scratch.deallocate() }
    for layer in layers { layer.forward(x, batch: batch, length: length, causal: causal, scratch: scratch) }
  }
}
