// Model sizes read from tensor shapes, for checkpoints that carry no config: HFAiLab's GPT
// (`models/gpt.py`) and both VQGAN layouts (taming's `VQModel`, HFAiLab's `VQGAN`). What shapes
// cannot tell (the GPT's head count, the VQGAN's training resolution) comes from an argument.
import ClipGenEngine
import Foundation

/// The indices `N` of names `prefix + "N." + …`, checked to be `0..<count`.
func layerIndices(_ weights: WeightSource, prefix: String) throws -> Int {
  var indices = Set<Int>()
  for name in weights.tensorNames where name.hasPrefix(prefix) {
    if let i = Int(name.dropFirst(prefix.count).prefix { $0 != "." }) { indices.insert(i) }
  }
  guard indices == Set(0..<indices.count) else {
    throw ConversionError.cannotInferConfig(
      path: weights.sourceDescription, reason: "\(prefix)N indices are not 0..<\(indices.count): \(indices.sorted())")
  }
  return indices.count
}

/// A tensor's shape, required to have `rank` dimensions.
func requiredShape(_ weights: WeightSource, _ name: String, rank: Int? = nil) throws -> [Int] {
  guard let s = weights.shape(of: name) else {
    throw ConversionError.cannotInferConfig(path: weights.sourceDescription, reason: "tensor '\(name)' is missing")
  }
  if let rank, s.count != rank {
    throw ConversionError.cannotInferConfig(
      path: weights.sourceDescription, reason: "tensor '\(name)' has shape \(s), expected \(rank) dimensions")
  }
  guard s.allSatisfy({ $0 > 0 }) else {
    throw ConversionError.cannotInferConfig(
      path: weights.sourceDescription, reason: "tensor '\(name)' has shape \(s), with an empty dimension")
  }
  return s
}

extension GPTConfig {
  /// Sizes of an HFAiLab-named GPT from its shapes: vocabulary and width from `tok_emb`,
  /// positions from `pos_emb`, condition width from `cond_proj`, layers from the `blocks.N`
  /// present, the learned unconditional embedding when `uncond_emb` is there, LayerNorm eps 1e-5
  /// (PyTorch's default, which clip-gen uses).
  /// - Parameter heads: the attention head count, which no tensor shape records; nil means
  ///   `width / 64` (HFAiLab's gpt2_medium: 1024 / 64 = 16; gpt2_large: 1280 / 64 = 20).
  public static func inferred(from weights: WeightSource, heads: Int? = nil) throws -> GPTConfig {
    let path = weights.sourceDescription
    let tok = try requiredShape(weights, "tok_emb.weight", rank: 2)
    let width = tok[1]
    let pos = try requiredShape(weights, "pos_emb")
    guard pos.count == 3 && pos[0] == 1 && pos[2] == width || pos.count == 2 && pos[1] == width else {
      throw ConversionError.cannotInferConfig(
        path: path, reason: "pos_emb has shape \(pos), expected [1, positions, \(width)]")
    }
    let cond = try requiredShape(weights, "cond_proj.weight", rank: 2)
    let layers = try layerIndices(weights, prefix: "blocks.")
    let h: Int
    if let heads {
      h = heads
    } else {
      guard width % 64 == 0 else {
        throw ConversionError.cannotInferConfig(
          path: path,
          reason: "the head count is not stored and width \(width) is not a multiple of 64; give it explicitly")
      }
      h = width / 64
    }
    let config = GPTConfig(
      vocabSize: tok[0], layers: layers, embeddingWidth: width, heads: h, blockSize: pos[pos.count - 2],
      conditionWidth: cond[1], layerNormEps: 1e-5, hasUnconditionalEmbedding: weights.contains("uncond_emb"))
    if let problem = config.inconsistency { throw ConversionError.cannotInferConfig(path: path, reason: problem) }
    return config
  }
}

extension VQGANConfig {
  /// Sizes of a VQGAN from its shapes: codebook size and width, channels, `ch_mult`, res blocks
  /// per level and where attention sits, for either layout; GroupNorm eps 1e-6 (taming) or 1e-5
  /// (HFAiLab).
  /// - Parameter resolution: the training image side, which no shape records (it only names
  ///   the attention levels); 256 for taming's and HFAiLab's released models.
  /// - Throws: `ConversionError.cannotInferConfig` naming the file and the tensor that is missing
  ///   or inconsistent.
  public static func inferred(from weights: WeightSource, layout: VQGANLayout, resolution: Int = 256) throws
    -> VQGANConfig
  {
    let config: VQGANConfig
    switch layout {
    case .taming: config = try inferTaming(weights, resolution: resolution)
    case .hfai: config = try inferHFAI(weights, resolution: resolution)
    }
    if let problem = config.problems.first {
      throw ConversionError.cannotInferConfig(path: weights.sourceDescription, reason: problem)
    }
    return config
  }

  private static func inferTaming(_ w: WeightSource, resolution: Int) throws -> VQGANConfig {
    let path = w.sourceDescription
    let book = try requiredShape(w, "quantize.embedding.weight", rank: 2)
    let z = try requiredShape(w, "decoder.conv_in.weight", rank: 4)[1]
    let out = try requiredShape(w, "decoder.conv_out.weight", rank: 4)
    let levels = try layerIndices(w, prefix: "decoder.up.")
    guard levels > 0 else { throw ConversionError.cannotInferConfig(path: path, reason: "no decoder.up.N tensors") }
    let encoderIn = w.shape(of: "encoder.conv_in.weight")
    let ch = encoderIn?[0] ?? out[1]  // without an encoder, assume ch_mult[0] = 1
    guard ch > 0 else { throw ConversionError.cannotInferConfig(path: path, reason: "encoder.conv_in has 0 channels") }
    let blocks = try layerIndices(w, prefix: "decoder.up.0.block.")
    guard blocks >= 1 else {
      throw ConversionError.cannotInferConfig(path: path, reason: "no decoder.up.0.block.N tensors")
    }
    var mult: [Int] = []
    var attention: [Int] = []
    for i in 0..<levels {
      let c = try requiredShape(w, "decoder.up.\(i).block.0.conv2.weight", rank: 4)[0]
      guard c % ch == 0 else {
        throw ConversionError.cannotInferConfig(
          path: path, reason: "level \(i) has \(c) channels, not a multiple of ch \(ch)")
      }
      mult.append(c / ch)
      if w.contains("decoder.up.\(i).attn.0.q.weight") { attention.append(resolution >> i) }
    }
    return VQGANConfig(
      embedDim: book[1], nEmbed: book[0], ch: ch, outCh: out[0], chMult: mult, numResBlocks: blocks - 1,
      attnResolutions: attention.sorted(), inChannels: encoderIn?[1] ?? 3, resolution: resolution, zChannels: z,
      normEps: 1e-6)
  }

  /// HFAiLab's decoder is one flat `decoder.up.N` sequence, lowest resolution first: ResnetBlocks
  /// (`block.6` is their last conv), AttnBlocks (`attn.in_proj_weight`) and Upsamples (`conv`)
  /// between levels.
  private static func inferHFAI(_ w: WeightSource, resolution: Int) throws -> VQGANConfig {
    let path = w.sourceDescription
    let book = try requiredShape(w, "quantizer.embedding.weight", rank: 2)
    let z = try requiredShape(w, "decoder.conv_in.weight", rank: 4)[1]
    let out = try requiredShape(w, "decoder.final.2.weight", rank: 4)
    let encoderIn = w.shape(of: "encoder.conv_in.weight")
    let ch = encoderIn?[0] ?? out[1]
    guard ch > 0 else { throw ConversionError.cannotInferConfig(path: path, reason: "encoder.conv_in has 0 channels") }
    let count = try layerIndices(w, prefix: "decoder.up.")
    // Per level, lowest resolution first: (resnet output channels, has attention).
    var levels: [(channels: [Int], attention: Bool)] = [([], false)]
    for n in 0..<count {
      let p = "decoder.up.\(n)"
      if let s = w.shape(of: "\(p).block.6.weight") {
        levels[levels.count - 1].channels.append(s[0])
      } else if w.contains("\(p).attn.in_proj_weight") {
        levels[levels.count - 1].attention = true
      } else if w.contains("\(p).conv.weight") {
        levels.append(([], false))
      } else {
        throw ConversionError.cannotInferConfig(path: path, reason: "cannot tell what module '\(p)' is")
      }
    }
    let blocks = levels[0].channels.count
    guard blocks >= 1, levels.allSatisfy({ $0.channels.count == blocks }) else {
      throw ConversionError.cannotInferConfig(
        path: path, reason: "decoder levels have different numbers of res blocks: \(levels.map(\.channels.count))")
    }
    let n = levels.count
    var mult = [Int](repeating: 0, count: n)
    var attention: [Int] = []
    for (k, level) in levels.enumerated() {
      let i = n - 1 - k  // taming's level index
      guard let c = level.channels.last, c % ch == 0 else {
        throw ConversionError.cannotInferConfig(
          path: path, reason: "decoder level \(i) channels are not a multiple of ch \(ch)")
      }
      mult[i] = c / ch
      if level.attention { attention.append(resolution >> i) }
    }
    return VQGANConfig(
      embedDim: book[1], nEmbed: book[0], ch: ch, outCh: out[0], chMult: mult, numResBlocks: blocks - 1,
      attnResolutions: attention.sorted(), inChannels: encoderIn?[1] ?? 3, resolution: resolution, zChannels: z,
      normEps: 1e-5)
  }
}
