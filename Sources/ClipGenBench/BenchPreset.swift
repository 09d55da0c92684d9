// Shapes the benchmark runs at, and a model directory of random weights at those shapes.
//
// `gpt2-medium` is the paper's scale (HFAiLab's released COCO prior, the taming f16-16384 VQGAN,
// OpenAI's CLIP ViT-B/32); `builtin` is the built-in model's scale (the tiny test model's shapes
// when no built-in model is installed). Weights are random: speed does not depend on their values
// as long as they are finite and of realistic scale (N(0, 1/fan_in) for matrices, as trained
// networks roughly are), so no download is needed. The directory uses the same files and names
// as a converted checkpoint, so it loads through the normal path (memory-mapped safetensors).
import ClipGenEngine
import Foundation

/// A named set of model shapes to benchmark.
public enum BenchPreset: String, Sendable, CaseIterable, Codable {
  case builtin
  case gpt2Medium = "gpt2-medium"

  /// The sizes of each part.
  public var shapes: BenchShapes {
    switch self {
    case .gpt2Medium:
      return BenchShapes(gpt: .gpt2Medium(), vqgan: .f16x16384, clip: .vitB32)
    case .builtin:
      // Tests/ClipGenEngineTests/Fixtures/tiny_model's sizes.
      return BenchShapes(
        gpt: GPTConfig(
          vocabSize: 64, layers: 2, embeddingWidth: 64, heads: 4, blockSize: 256, conditionWidth: 64,
          hasUnconditionalEmbedding: true),
        vqgan: VQGANConfig(
          embedDim: 16, nEmbed: 64, ch: 32, chMult: [1, 1, 2], numResBlocks: 1, attnResolutions: [16], resolution: 64,
          zChannels: 16),
        clip: BenchCLIPShape(
          embedDim: 64, imageResolution: 32, visionLayers: 2, visionWidth: 128, patchSize: 8, contextLength: 77,
          vocabSize: 614, textWidth: 128, textLayers: 2))
    }
  }
}

/// CLIP sizes in OpenAI's terms (heads = width / 64, MLP 4× wide, QuickGELU).
public struct BenchCLIPShape: Sendable, Equatable, Codable {
  public var embedDim: Int
  public var imageResolution: Int
  public var visionLayers: Int
  public var visionWidth: Int
  public var patchSize: Int
  public var contextLength: Int
  public var vocabSize: Int
  public var textWidth: Int
  public var textLayers: Int

  /// OpenAI's ViT-B/32 (the CLIP that HFAiLab's prior is conditioned on).
  public static let vitB32 = BenchCLIPShape(
    embedDim: 512, imageResolution: 224, visionLayers: 12, visionWidth: 768, patchSize: 32, contextLength: 77,
    vocabSize: 49408, textWidth: 512, textLayers: 12)

  enum CodingKeys: String, CodingKey {
    case embedDim = "embed_dim"
    case imageResolution = "image_resolution"
    case visionLayers = "vision_layers"
    case visionWidth = "vision_width"
    case patchSize = "vision_patch_size"
    case contextLength = "context_length"
    case vocabSize = "vocab_size"
    case textWidth = "transformer_width"
    case textLayers = "transformer_layers"
  }
}

/// The three networks' sizes.
public struct BenchShapes: Sendable, Equatable {
  public var gpt: GPTConfig
  public var vqgan: VQGANConfig
  public var clip: BenchCLIPShape

  /// Every tensor of the GPT prior, by its clip-gen name, with its shape and initial scale.
  func gptTensors() -> [RandomTensorSpec] {
    let c = gpt
    let (d, f) = (c.embeddingWidth, c.feedForwardWidth)
    var out: [RandomTensorSpec] = [
      .init("tok_emb.weight", [c.vocabSize, d], std: 0.02),
      .init("pos_emb", [1, c.blockSize, d], std: 0.02),
      .matrix("cond_proj.weight", [d, c.conditionWidth]), .bias("cond_proj.bias", [d]),
    ]
    if c.hasUnconditionalEmbedding { out.append(.init("uncond_emb", [d], std: 0.02)) }
    for l in 0..<c.layers {
      let p = "blocks.\(l).encoder."
      out += [
        .normWeight(p + "norm1.weight", [d]), .bias(p + "norm1.bias", [d]),
        .matrix(p + "self_attn.in_proj_weight", [3 * d, d]), .bias(p + "self_attn.in_proj_bias", [3 * d]),
        .matrix(p + "self_attn.out_proj.weight", [d, d]), .bias(p + "self_attn.out_proj.bias", [d]),
        .normWeight(p + "norm2.weight", [d]), .bias(p + "norm2.bias", [d]),
        .matrix(p + "linear1.weight", [f, d]), .bias(p + "linear1.bias", [f]),
        .matrix(p + "linear2.weight", [d, f]), .bias(p + "linear2.bias", [d]),
      ]
    }
    out += [
      .normWeight("norm.weight", [d]), .bias("norm.bias", [d]),
      .matrix("head.weight", [c.vocabSize, d]), .bias("head.bias", [c.vocabSize]),
    ]
    return out
  }

  /// The VQGAN's decoder side in taming's names (no encoder: the engine loads decoder-only files).
  func vqganTensors() -> [RandomTensorSpec] {
    let c = vqgan
    var out: [RandomTensorSpec] = [
      .init("quantize.embedding.weight", [c.nEmbed, c.embedDim], std: 1),
      .matrix("post_quant_conv.weight", [c.zChannels, c.embedDim, 1, 1]), .bias("post_quant_conv.bias", [c.zChannels]),
    ]
    func conv(_ name: String, _ cin: Int, _ cout: Int, _ k: Int) -> [RandomTensorSpec] {
      [.matrix(name + ".weight", [cout, cin, k, k]), .bias(name + ".bias", [cout])]
    }
    func norm(_ name: String, _ ch: Int) -> [RandomTensorSpec] {
      [.normWeight(name + ".weight", [ch]), .bias(name + ".bias", [ch])]
    }
    func resnet(_ p: String, _ cin: Int, _ cout: Int) -> [RandomTensorSpec] {
      var r = norm(p + ".norm1", cin) + conv(p + ".conv1", cin, cout, 3) + norm(p + ".norm2", cout)
      r += conv(p + ".conv2", cout, cout, 3)
      if cin != cout { r += conv(p + ".nin_shortcut", cin, cout, 1) }
      return r
    }
    func attention(_ p: String, _ ch: Int) -> [RandomTensorSpec] {
      norm(p + ".norm", ch) + ["q", "k", "v", "proj_out"].flatMap { conv(p + "." + $0, ch, ch, 1) }
    }
    var blockIn = c.ch * c.chMult[c.levels - 1]
    out += conv("decoder.conv_in", c.zChannels, blockIn, 3)
    out += resnet("decoder.mid.block_1", blockIn, blockIn) + attention("decoder.mid.attn_1", blockIn)
    out += resnet("decoder.mid.block_2", blockIn, blockIn)
    for i in (0..<c.levels).reversed() {
      let blockOut = c.ch * c.chMult[i]
      let attend = c.attnResolutions.contains(c.resolution >> i)
      for j in 0...c.numResBlocks {
        out += resnet("decoder.up.\(i).block.\(j)", blockIn, blockOut)
        blockIn = blockOut
        if attend { out += attention("decoder.up.\(i).attn.\(j)", blockIn) }
      }
      if i != 0 { out += conv("decoder.up.\(i).upsample.conv", blockIn, blockIn, 3) }
    }
    out += norm("decoder.norm_out", blockIn) + conv("decoder.conv_out", blockIn, c.outCh, 3)
    return out
  }

  /// CLIP in OpenAI's names (the engine infers the sizes from the shapes).
  func clipTensors() -> [RandomTensorSpec] {
    let c = clip
    func tower(_ prefix: String, width w: Int, layers: Int) -> [RandomTensorSpec] {
      (0..<layers).flatMap { l -> [RandomTensorSpec] in
        let p = "\(prefix)transformer.resblocks.\(l)."
        return [
          .normWeight(p + "ln_1.weight", [w]), .bias(p + "ln_1.bias", [w]),
          .matrix(p + "attn.in_proj_weight", [3 * w, w]), .bias(p + "attn.in_proj_bias", [3 * w]),
          .matrix(p + "attn.out_proj.weight", [w, w]), .bias(p + "attn.out_proj.bias", [w]),
          .normWeight(p + "ln_2.weight", [w]), .bias(p + "ln_2.bias", [w]),
          .matrix(p + "mlp.c_fc.weight", [4 * w, w]), .bias(p + "mlp.c_fc.bias", [4 * w]),
          .matrix(p + "mlp.c_proj.weight", [w, 4 * w]), .bias(p + "mlp.c_proj.bias", [w]),
        ]
      }
    }
    let grid = c.imageResolution / c.patchSize
    var out: [RandomTensorSpec] = [
      .init("token_embedding.weight", [c.vocabSize, c.textWidth], std: 0.02),
      .init("positional_embedding", [c.contextLength, c.textWidth], std: 0.01),
    ]
    out += tower("", width: c.textWidth, layers: c.textLayers)
    out += [
      .normWeight("ln_final.weight", [c.textWidth]), .bias("ln_final.bias", [c.textWidth]),
      .init("text_projection", [c.textWidth, c.embedDim], std: 1 / Float(c.textWidth).squareRoot()),
      .init("logit_scale", [], std: 0, mean: 4.6052),
      .matrix("visual.conv1.weight", [c.visionWidth, 3, c.patchSize, c.patchSize]),
      .init("visual.class_embedding", [c.visionWidth], std: 1 / Float(c.visionWidth).squareRoot()),
      .init(
        "visual.positional_embedding", [grid * grid + 1, c.visionWidth], std: 1 / Float(c.visionWidth).squareRoot()),
      .normWeight("visual.ln_pre.weight", [c.visionWidth]), .bias("visual.ln_pre.bias", [c.visionWidth]),
    ]
    out += tower("visual.", width: c.visionWidth, layers: c.visionLayers)
    out += [
      .normWeight("visual.ln_post.weight", [c.visionWidth]), .bias("visual.ln_post.bias", [c.visionWidth]),
      .init("visual.proj", [c.visionWidth, c.embedDim], std: 1 / Float(c.visionWidth).squareRoot()),
    ]
    return out
  }
}

/// One random tensor: its name, shape and normal distribution.
struct RandomTensorSpec {
  let name: String
  let shape: [Int]
  let std: Float
  let mean: Float

  init(_ name: String, _ shape: [Int], std: Float, mean: Float = 0) {
    self.name = name
    self.shape = shape
    self.std = std
    self.mean = mean
  }

  var count: Int { shape.reduce(1, *) }

  /// A weight matrix or conv kernel: N(0, 1/fan_in), fan_in = the product of all but the first dim.
  static func matrix(_ name: String, _ shape: [Int]) -> RandomTensorSpec {
    RandomTensorSpec(name, shape, std: 1 / Float(shape.dropFirst().reduce(1, *)).squareRoot())
  }
  static func bias(_ name: String, _ shape: [Int]) -> RandomTensorSpec { RandomTensorSpec(name, shape, std: 0.02) }
  static func normWeight(_ name: String, _ shape: [Int]) -> RandomTensorSpec {
    RandomTensorSpec(name, shape, std: 0.1, mean: 1)
  }
}

/// Writes a clipgen model directory of random weights (`model.json`, `gpt/`, `vqgan/`, `clip/`,
/// `tokenizer/`), streaming one tensor at a time so that even the paper-scale model never sits in
/// memory twice.
public enum RandomModelWriter {
  /// Bumped whenever the files written change, so cached directories are rebuilt.
  static let version = 1

  /// Writes the model for `shapes` into `directory` unless a complete one for the same shapes and
  /// seed is already there. Returns whether it wrote anything.
  @discardableResult
  public static func ensure(_ shapes: BenchShapes, seed: UInt64 = 0, at directory: URL) throws -> Bool {
    let fm = FileManager.default
    let stamp = directory.appendingPathComponent("bench-stamp.txt")
    let key = "clipgen random model v\(version) seed \(seed)\n\(shapes)\n"
    if let existing = try? String(contentsOf: stamp, encoding: .utf8), existing == key,
      fm.fileExists(atPath: directory.appendingPathComponent("model.json").path)
    {
      return false
    }
    try? fm.removeItem(at: stamp)
    for sub in ["gpt", "vqgan", "clip", "tokenizer"] {
      try fm.createDirectory(at: directory.appendingPathComponent(sub), withIntermediateDirectories: true)
    }
    var random = BenchRandom(seed: seed)
    try writeSafeTensors(shapes.gptTensors(), to: directory.appendingPathComponent("gpt/model.safetensors"), &random)
    try writeSafeTensors(
      shapes.vqganTensors(), to: directory.appendingPathComponent("vqgan/model.safetensors"), &random)
    try writeSafeTensors(shapes.clipTensors(), to: directory.appendingPathComponent("clip/model.safetensors"), &random)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try writeAtomically(try encoder.encode(shapes.gpt), to: directory.appendingPathComponent("gpt/config.json"))
    try writeAtomically(try encoder.encode(shapes.vqgan), to: directory.appendingPathComponent("vqgan/config.json"))
    try writeByteLevelTokenizer(to: directory.appendingPathComponent("tokenizer"))
    let manifest = """
      {
        "format": "clipgen",
        "version": 1,
        "name": "random-\(shapes.gpt.layers)x\(shapes.gpt.embeddingWidth)",
        "clip": {"layout": "openai", "weights": "clip/model.safetensors"},
        "tokenizer": {"vocab": "tokenizer/vocab.json", "merges": "tokenizer/merges.txt", "context_length": \(shapes.clip.contextLength)},
        "gpt": {"config": "gpt/config.json", "weights": "gpt/model.safetensors"},
        "vqgan": {"layout": "taming", "config": "vqgan/config.json", "weights": "vqgan/model.safetensors"}
      }

      """
    try writeAtomically(Data(manifest.utf8), to: directory.appendingPathComponent("model.json"))
    try writeAtomically(Data(key.utf8), to: stamp)
    return true
  }

  /// A safetensors file of F32 tensors drawn from `specs`, written tensor by tensor.
  static func writeSafeTensors(_ specs: [RandomTensorSpec], to url: URL, _ random: inout BenchRandom) throws {
    var entries: [String] = []
    var offset = 0
    for s in specs {
      let shape = s.shape.map(String.init).joined(separator: ",")
      entries.append(
        "\"\(s.name)\":{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + 4 * s.count)]}")
      offset += 4 * s.count
    }
    var header = "{\"__metadata__\":{\"format\":\"pt\"}," + entries.joined(separator: ",") + "}"
    while header.utf8.count % 8 != 0 { header += " " }
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    guard FileManager.default.createFile(atPath: tmp.path, contents: nil) else {
      throw WeightError.unreadable(file: tmp.path, reason: "cannot create")
    }
    do {
      let handle = try FileHandle(forWritingTo: tmp)
      defer { try? handle.close() }
      var length = UInt64(header.utf8.count).littleEndian
      try handle.write(contentsOf: Data(bytes: &length, count: 8))
      try handle.write(contentsOf: Data(header.utf8))
      for s in specs {
        var values = [Float](repeating: 0, count: s.count)
        for i in values.indices { values[i] = s.mean + s.std * random.normal() }
        try values.withUnsafeBytes { try handle.write(contentsOf: Data($0)) }
      }
    }
    if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
    try FileManager.default.moveItem(at: tmp, to: url)
  }

  /// A CLIP BPE vocabulary of the 256 byte symbols (with and without `</w>`) and the two special
  /// tokens, and no merges: enough to tokenize any prompt for a model with random weights.
  static func writeByteLevelTokenizer(to directory: URL) throws {
    var symbols: [String] = []
    var extra = 0
    for b in 0..<256 {
      let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
      let scalar = printable ? b : 256 + extra
      if !printable { extra += 1 }
      symbols.append(String(Character(Unicode.Scalar(UInt32(scalar))!)))
    }
    let vocabulary =
      symbols + symbols.map { $0 + "</w>" } + [CLIPTokenizer.startOfTextToken, CLIPTokenizer.endOfTextToken]
    var object: [String: Int] = [:]
    for (i, s) in vocabulary.enumerated() { object[s] = i }
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    try writeAtomically(data, to: directory.appendingPathComponent("vocab.json"))
    try writeAtomically(Data("#version: 0.2\n".utf8), to: directory.appendingPathComponent("merges.txt"))
  }
}

/// SplitMix64 with Box–Muller normals: fast and reproducible.
struct BenchRandom {
  var state: UInt64
  private var spare: Float?

  init(seed: UInt64) { state = seed &+ 0x5DEE_CE66_D1CE_4E5B }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Uniform in (0, 1].
  mutating func unit() -> Float { Float((next() >> 40) + 1) * 0x1p-24 }

  mutating func normal() -> Float {
    if let s = spare {
      spare = nil
      return s
    }
    let r = (-2 * Foundation.log(unit())).squareRoot()
    let t = 2 * Float.pi * unit()
    spare = r * Foundation.sin(t)
    return r * Foundation.cos(t)
  }
}
