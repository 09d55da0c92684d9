// The VQGAN's configuration (taming-transformers' `ddconfig` plus the codebook size) and the two
// published weight layouts it loads: taming's own names (`taming/models/vqgan.py`, `VQModel`) and
// HFAiLab/clip-gen's re-implementation (`models/vqgan.py`, `models/codec.py`), which is the same
// network under flat `nn.Sequential` names with a packed `nn.MultiheadAttention` projection.
import Foundation

/// Sizes of a taming-transformers VQGAN, read from the model's `config.json`.
public struct VQGANConfig: Codable, Sendable, Equatable {
  /// Width of a codebook vector (the quantiser's latent channels).
  public var embedDim: Int
  /// Number of codebook vectors.
  public var nEmbed: Int
  /// Base channel count; level `i` has `ch · chMult[i]` channels.
  public var ch: Int
  /// Channels of the decoded image.
  public var outCh: Int
  /// Channel multiplier per resolution level; `chMult.count - 1` downsamplings (f = 2^that).
  public var chMult: [Int]
  /// ResnetBlocks per level in the encoder (the decoder has one more per level).
  public var numResBlocks: Int
  /// Side lengths (in the encoder's counting from `resolution` down) at which AttnBlocks follow the
  /// ResnetBlocks.
  public var attnResolutions: [Int]
  /// Channels of the encoder's input image.
  public var inChannels: Int
  /// Side of the training image; with `chMult` it decides which levels carry attention.
  public var resolution: Int
  /// Channels between encoder/decoder and the 1×1 quant convs.
  public var zChannels: Int
  /// GroupNorm epsilon: 1e-6 in taming, 1e-5 in HFAiLab's re-implementation (PyTorch's default).
  public var normEps: Float

  enum CodingKeys: String, CodingKey {
    case embedDim = "embed_dim"
    case nEmbed = "n_embed"
    case ch
    case outCh = "out_ch"
    case chMult = "ch_mult"
    case numResBlocks = "num_res_blocks"
    case attnResolutions = "attn_resolutions"
    case inChannels = "in_channels"
    case resolution
    case zChannels = "z_channels"
    case normEps = "norm_eps"
  }

  public init(
    embedDim: Int, nEmbed: Int, ch: Int, outCh: Int = 3, chMult: [Int], numResBlocks: Int, attnResolutions: [Int],
    inChannels: Int = 3, resolution: Int, zChannels: Int, normEps: Float = 1e-6
  ) {
    self.embedDim = embedDim
    self.nEmbed = nEmbed
    self.ch = ch
    self.outCh = outCh
    self.chMult = chMult
    self.numResBlocks = numResBlocks
    self.attnResolutions = attnResolutions
    self.inChannels = inChannels
    self.resolution = resolution
    self.zChannels = zChannels
    self.normEps = normEps
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    embedDim = try c.decode(Int.self, forKey: .embedDim)
    nEmbed = try c.decode(Int.self, forKey: .nEmbed)
    ch = try c.decode(Int.self, forKey: .ch)
    outCh = try c.decodeIfPresent(Int.self, forKey: .outCh) ?? 3
    chMult = try c.decode([Int].self, forKey: .chMult)
    numResBlocks = try c.decode(Int.self, forKey: .numResBlocks)
    attnResolutions = try c.decodeIfPresent([Int].self, forKey: .attnResolutions) ?? []
    inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? 3
    resolution = try c.decode(Int.self, forKey: .resolution)
    zChannels = try c.decode(Int.self, forKey: .zChannels)
    normEps = try c.decodeIfPresent(Float.self, forKey: .normEps) ?? 1e-6
  }

  /// The paper's f16 model: 16384 codes × 256 dims, 256² images, ch 128, ch_mult [1,1,2,2,4],
  /// 2 res blocks, attention at 16 (taming's `vqgan_imagenet_f16_16384`).
  public static let f16x16384 = VQGANConfig(
    embedDim: 256, nEmbed: 16384, ch: 128, chMult: [1, 1, 2, 2, 4], numResBlocks: 2, attnResolutions: [16],
    resolution: 256, zChannels: 256)

  /// Number of resolution levels.
  public var levels: Int { chMult.count }
  /// Image side / token-grid side.
  public var downsamplingFactor: Int { 1 << (chMult.count - 1) }

  /// Reasons this configuration cannot describe a network (empty when it can).
  public var problems: [String] {
    var p: [String] = []
    if chMult.isEmpty { p.append("ch_mult is empty") }
    for (name, v) in [
      ("embed_dim", embedDim), ("n_embed", nEmbed), ("ch", ch), ("out_ch", outCh), ("in_channels", inChannels),
      ("resolution", resolution), ("z_channels", zChannels),
    ] where v <= 0 {
      p.append("\(name) is \(v), must be positive")
    }
    // Upper bounds far above any published VQGAN, so that a hostile config.json cannot make the
    // sizes derived from these overflow or ask for absurd allocations.
    for (name, v, limit) in [
      ("embed_dim", embedDim, 8192), ("n_embed", nEmbed, 1 << 22), ("ch", ch, 8192), ("out_ch", outCh, 4),
      ("in_channels", inChannels, 4), ("resolution", resolution, 16384), ("z_channels", zChannels, 8192),
      ("num_res_blocks", numResBlocks, 32), ("ch_mult levels", chMult.count, 8),
    ] where v > limit {
      p.append("\(name) is \(v), more than the \(limit) any VQGAN uses")
    }
    if numResBlocks < 0 { p.append("num_res_blocks is \(numResBlocks)") }
    for m in chMult {
      let (channels, overflow) = ch.multipliedReportingOverflow(by: m)
      if m <= 0 || overflow || channels % 32 != 0 || channels > 8192 {
        p.append("ch·ch_mult = \(ch)·\(m) is not a positive multiple of 32 up to 8192 (GroupNorm has 32 groups)")
      }
    }
    if ch % 32 != 0 { p.append("ch \(ch) is not a multiple of 32 (GroupNorm has 32 groups)") }
    if !(normEps > 0) { p.append("norm_eps is \(normEps), must be positive") }
    return p
  }
}

/// Which published tensor names a VQGAN checkpoint uses. Both load into the same implementation.
public enum VQGANLayout: String, Sendable, CaseIterable {
  /// CompVis/taming-transformers `VQModel` (`encoder.down.0.block.0.norm1.weight`, …).
  case taming
  /// HFAiLab/clip-gen `VQGAN` (`encoder.down.0.block.0.weight`, …, `quantizer.embedding.weight`).
  case hfai

  /// Wraps `source` so that it answers taming's names.
  public func weights(_ source: WeightSource, config: VQGANConfig) -> WeightSource {
    switch self {
    case .taming:
      return source
    case .hfai:
      let names = VQGANLayout.hfaiNames(config)
      return KeyMappedWeights(base: PackedAttentionWeights(base: source), map: { names[$0] ?? $0 })
    }
  }

  /// Taming name → HFAiLab name for every tensor of a network with this configuration.
  ///
  /// HFAiLab's modules are flat `nn.Sequential`s numbered in construction order, and its ResnetBlock
  /// is `Sequential(GroupNorm, SiLU, Conv, GroupNorm, SiLU, Dropout, Conv)` plus `shortcut`; its
  /// AttnBlock is `norm` + `nn.MultiheadAttention(C, 1)`, whose packed `in_proj` rows are q, k, v
  /// (served by ``PackedAttentionWeights`` from a `#q`/`#k`/`#v` suffix). Its encoder's `final.3`
  /// is taming's `quant_conv`, its decoder's `quant_conv_in` taming's `post_quant_conv`.
  public static func hfaiNames(_ config: VQGANConfig) -> [String: String] {
    var map: [String: String] = [:]
    func param(_ taming: String, _ hfai: String) {
      map[taming + ".weight"] = hfai + ".weight"
      map[taming + ".bias"] = hfai + ".bias"
    }
    func resnet(_ taming: String, _ hfai: String) {
      param(taming + ".norm1", hfai + ".block.0")
      param(taming + ".conv1", hfai + ".block.2")
      param(taming + ".norm2", hfai + ".block.3")
      param(taming + ".conv2", hfai + ".block.6")
      param(taming + ".nin_shortcut", hfai + ".shortcut")
    }
    func attention(_ taming: String, _ hfai: String) {
      param(taming + ".norm", hfai + ".norm")
      for part in ["q", "k", "v"] {
        map["\(taming).\(part).weight"] = "\(hfai).attn.in_proj_weight#\(part)"
        map["\(taming).\(part).bias"] = "\(hfai).attn.in_proj_bias#\(part)"
      }
      param(taming + ".proj_out", hfai + ".attn.out_proj")
    }
    func mid(_ prefix: String) {
      resnet(prefix + ".mid.block_1", prefix + ".mid.0")
      attention(prefix + ".mid.attn_1", prefix + ".mid.1")
      resnet(prefix + ".mid.block_2", prefix + ".mid.2")
    }
    let levels = config.levels

    // Encoder: per level, blocks (each followed by its AttnBlock where the level has attention),
    // then a Downsample except at the last level.
    param("encoder.conv_in", "encoder.conv_in")
    var k = 0
    var res = config.resolution
    for i in 0..<levels {
      for j in 0..<config.numResBlocks {
        resnet("encoder.down.\(i).block.\(j)", "encoder.down.\(k)")
        k += 1
        if config.attnResolutions.contains(res) {
          attention("encoder.down.\(i).attn.\(j)", "encoder.down.\(k)")
          k += 1
        }
      }
      if i != levels - 1 {
        param("encoder.down.\(i).downsample.conv", "encoder.down.\(k).conv")
        k += 1
        res /= 2
      }
    }
    mid("encoder")
    param("encoder.norm_out", "encoder.final.0")
    param("encoder.conv_out", "encoder.final.2")
    param("quant_conv", "encoder.final.3")
    map["quantize.embedding.weight"] = "quantizer.embedding.weight"

    // Decoder: levels from the last to the first, numResBlocks + 1 blocks each, Upsample except at 0.
    param("post_quant_conv", "decoder.quant_conv_in")
    param("decoder.conv_in", "decoder.conv_in")
    mid("decoder")
    k = 0
    res = config.resolution / config.downsamplingFactor
    for i in (0..<levels).reversed() {
      for j in 0...config.numResBlocks {
        resnet("decoder.up.\(i).block.\(j)", "decoder.up.\(k)")
        k += 1
        if config.attnResolutions.contains(res) {
          attention("decoder.up.\(i).attn.\(j)", "decoder.up.\(k)")
          k += 1
        }
      }
      if i != 0 {
        param("decoder.up.\(i).upsample.conv", "decoder.up.\(k).conv")
        k += 1
        res *= 2
      }
    }
    param("decoder.norm_out", "decoder.final.0")
    param("decoder.conv_out", "decoder.final.2")
    return map
  }
}

/// Serves single-head `q`, `k`, `v` projections out of `nn.MultiheadAttention`'s packed
/// `in_proj_weight` `[3C, C]` / `in_proj_bias` `[3C]`: a name `X#q` (`#k`, `#v`) is the first
/// (second, third) third of the rows of `X`. Other names pass through.
struct PackedAttentionWeights: WeightSource {
  let base: WeightSource

  var sourceDescription: String { base.sourceDescription }
  var tensorNames: [String] { base.tensorNames }

  private func split(_ name: String) -> (stored: String, part: Int)? {
    guard let hash = name.lastIndex(of: "#") else { return nil }
    guard let part = ["q", "k", "v"].firstIndex(of: String(name[name.index(after: hash)...])) else { return nil }
    return (String(name[..<hash]), part)
  }

  func shape(of name: String) -> [Int]? {
    guard let (stored, _) = split(name) else { return base.shape(of: name) }
    guard var s = base.shape(of: stored), let rows = s.first, rows % 3 == 0 else { return nil }
    s[0] = rows / 3
    return s
  }

  func tensor(_ name: String) throws -> Tensor {
    guard let (stored, part) = split(name) else { return try base.tensor(name) }
    let packed = try base.tensor(stored)
    guard let rows = packed.shape.first, rows % 3 == 0 else {
      throw WeightError.corruptTensor(
        file: sourceDescription, tensor: stored,
        reason: "packed q/k/v projection of shape \(packed.shape) has no 3·C rows")
    }
    let n = packed.count / 3
    var shape = packed.shape
    shape[0] = rows / 3
    return Tensor(shape: shape, scalars: Array(packed.scalars[(part * n)..<((part + 1) * n)]))
  }
}
