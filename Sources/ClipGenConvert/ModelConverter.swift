// Published CLIP-GEN files → a clipgen model directory (`model.json` + safetensors), the format
// `ClipGenModel(directory:)` loads. Each component is detected (layout, sizes), built once from
// its source to prove it loads (errors then name the source file), and only the tensors the
// engine read are written, under their published names. The result is assembled in a staging
// folder, loaded back with `ClipGenModel`, and only then moved into place.
import ClipGenEngine
import Foundation
import Synchronization

/// What to convert. Paths may be files or folders; formats are recognised by content.
public struct ConversionRequest: Sendable {
  /// CLIP: a Hugging Face folder (`config.json`, `model.safetensors` or `pytorch_model.bin`,
  /// usually `vocab.json` + `merges.txt`), or OpenAI-named weights (a state dict `.pt` such as
  /// HFAiLab's `clip_vit_b32.pt`, OpenAI's TorchScript `ViT-B-32.pt`, or safetensors).
  public var clip: URL
  /// The prior: HFAiLab's `gpt_*.pt` (`{"model": state_dict, …}`) or safetensors.
  public var gpt: URL
  /// The VQGAN: taming's Lightning `.ckpt`, HFAiLab's `vqgan_*.pt`, or safetensors.
  public var vqgan: URL
  /// A folder with `vocab.json` + `merges.txt`, or OpenAI's `bpe_simple_vocab_16e6.txt.gz`.
  /// nil: the CLIP folder's own files.
  public var tokenizer: URL?
  /// taming's YAML (or JSON) config for the VQGAN; nil: the checkpoint's `hyper_parameters`,
  /// else sizes inferred from the tensors.
  public var vqganConfig: URL?
  /// The VQGAN's training resolution (shapes do not record it); nil: the config's, else 256.
  public var vqganResolution: Int?
  /// The GPT's head count (shapes do not record it); nil: width / 64.
  public var gptHeads: Int?
  /// Store every component's weights as float16 (tensors outside float16's range stay float32).
  public var float16: Bool
  /// Store the prior's weights as float16 even when `float16` is off (the default: the prior is
  /// sampled in float16 anyway, and its file is most of a model's size).
  public var priorFloat16: Bool
  /// `model.json`'s name; nil: the output folder's name.
  public var name: String?
  /// Replace a non-empty output folder.
  public var replaceExisting: Bool

  public init(
    clip: URL, gpt: URL, vqgan: URL, tokenizer: URL? = nil, vqganConfig: URL? = nil, vqganResolution: Int? = nil,
    gptHeads: Int? = nil, float16: Bool = false, priorFloat16: Bool = true, name: String? = nil,
    replaceExisting: Bool = false
  ) {
    self.priorFloat16 = priorFloat16
    self.clip = clip
    self.gpt = gpt
    self.vqgan = vqgan
    self.tokenizer = tokenizer
    self.vqganConfig = vqganConfig
    self.vqganResolution = vqganResolution
    self.gptHeads = gptHeads
    self.float16 = float16
    self.name = name
    self.replaceExisting = replaceExisting
  }
}

/// Progress of a conversion, for a progress line.
public enum ConversionEvent: Sendable {
  /// A component's source is being read and checked.
  case reading(component: String, path: String)
  /// What was found: the layout and the sizes, in a line.
  case detected(component: String, summary: String)
  /// Something the user should know (an assumed size, a tensor kept in float32).
  case note(String)
  /// A size the checkpoints do not store, assumed (also recorded in model.json and the report).
  case assumption(String)
  /// After each tensor written.
  case writing(component: String, tensor: Int, of: Int, bytes: Int, totalBytes: Int)
  /// The result is being loaded back.
  case verifying(path: String)
}

/// What a conversion wrote.
public struct ConversionReport: Sendable {
  public struct Component: Sendable {
    /// `clip`, `gpt` or `vqgan`.
    public let name: String
    public let source: String
    /// e.g. "CLIP (OpenAI layout)".
    public let kind: String
    public let tensors: Int
    public let parameters: Int
    public let bytes: Int
  }
  public let directory: URL
  public let components: [Component]
  /// Remarks (what an interrupted conversion left, …).
  public let notes: [String]
  /// Sizes the checkpoints do not store, assumed; also in model.json's `"assumptions"`.
  public let assumptions: [String]
}

/// Converts published CLIP-GEN files into a clipgen model directory.
public enum ModelConverter {
  /// Sampling defaults for a converted published prior: HFAiLab/clip-gen's sampler (temperature 1,
  /// top-k 500, top-p 0.95, no guidance: its priors have no unconditional embedding), reranking
  /// 4 candidates per image — at paper scale about 10 s per image on a 2-core laptop CPU, so the
  /// studio stays responsive (HFAiLab's demo draws 64 on a GPU).
  public static func publishedDefaults(vocabularySize: Int) -> SamplingDefaults {
    SamplingDefaults(temperature: 1, topK: min(500, vocabularySize), topP: 0.95, guidance: 1, candidates: 4)
  }

  /// Example prompts for a converted published model: captions in the style of COCO, the data set
  /// HFAiLab's released prior was trained on.
  public static let publishedSamplePrompts = [
    "a bus parked on the side of a street", "a plate of food with broccoli and rice",
    "a giraffe standing in a grassy field", "a man riding a wave on a surfboard", "a cat sitting on a laptop",
    "a red fire hydrant on a sidewalk",
  ]

  /// Converts the three components and their tokenizer into `directory`.
  /// - Parameters:
  ///   - request: the sources and options.
  ///   - directory: created (or, with `replaceExisting`, replaced) only when everything succeeded.
  ///   - progress: called on the calling thread as work proceeds.
  /// - Returns: what was written.
  /// - Throws: `ConversionError` (unrecognised or mismatched inputs, sizes that cannot be
  ///   inferred, components that do not fit, a result that does not load), and the readers'
  ///   errors (`CheckpointError`, `WeightError`, `CLIPError`, …) naming the source file.
  public static func convert(
    _ request: ConversionRequest, to directory: URL, progress: (ConversionEvent) -> Void = { _ in }
  ) throws -> ConversionReport {
    let fm = FileManager.default
    let recovered = recoverInterrupted(directory)
    if let contents = try? fm.contentsOfDirectory(atPath: directory.path), !contents.isEmpty, !request.replaceExisting {
      throw ConversionError.outputExists(path: directory.path)
    }
    var notes: [String] = []
    func note(_ s: String) {
      notes.append(s)
      progress(.note(s))
    }
    var assumptions: [String] = []
    func assume(_ s: String) {
      assumptions.append(s)
      progress(.assumption(s))
    }

    // Assembled in a staging folder beside the destination, moved into place once it loads.
    let parent = directory.deletingLastPathComponent()
    try fm.createDirectory(at: parent, withIntermediateDirectories: true)
    for line in recovered { note(line) }
    let staging = Self.sibling(of: directory, "converting", pid: getpid())
    try? fm.removeItem(at: staging)
    try fm.createDirectory(at: staging, withIntermediateDirectories: true)
    var moved = false
    defer { if !moved { try? fm.removeItem(at: staging) } }

    // The sources stay open only inside this call (they are memory-mapped checkpoints).
    let (components, clipLayout, vqganLayout) = try writeComponents(
      request, into: staging, progress: progress, note: note, assume: assume)

    let gptConfig = try JSONDecoder().decode(
      GPTConfig.self, from: Data(contentsOf: staging.appendingPathComponent("gpt/config.json")))
    let manifest = ModelManifest(
      format: "clipgen", version: 1, name: request.name ?? directory.lastPathComponent,
      clip: .init(
        layout: clipLayout.flatMap(CLIPLayout.init(rawValue:)), config: "clip/config.json",
        weights: "clip/model.safetensors"),
      tokenizer: .init(vocab: "tokenizer/vocab.json", merges: "tokenizer/merges.txt", contextLength: 77),
      gpt: .init(layout: nil, config: "gpt/config.json", weights: "gpt/model.safetensors"),
      vqgan: .init(
        layout: vqganLayout.flatMap(VQGANLayout.init(rawValue:)), config: "vqgan/config.json",
        weights: "vqgan/model.safetensors"),
      conditioning: .init(normalize: true),
      defaults: Self.publishedDefaults(vocabularySize: gptConfig.vocabSize),
      samplePrompts: Self.publishedSamplePrompts, assumptions: assumptions.isEmpty ? nil : assumptions)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    try writeAtomically(
      try encoder.encode(manifest) + Data("\n".utf8), to: staging.appendingPathComponent("model.json"))

    // 3. Load it back, then move it into place.
    progress(.verifying(path: directory.path))
    do {
      _ = try ClipGenModel(directory: staging)
    } catch {
      throw ConversionError.verificationFailed(path: directory.path, reason: "\(error)")
    }
    // Replaced by renames only: the old model moves aside whole, the new one takes its name,
    // then the old one goes. Interrupted anywhere, the old model is whole under one name or the
    // other (the next convert puts it back), and nothing incomplete is ever at `directory`.
    if fm.fileExists(atPath: directory.path) {
      let old = Self.sibling(of: directory, "replaced", pid: getpid())
      try? fm.removeItem(at: old)
      try fm.moveItem(at: directory, to: old)
      do {
        try fm.moveItem(at: staging, to: directory)
      } catch {
        try? fm.moveItem(at: old, to: directory)
        throw error
      }
      moved = true
      try? fm.removeItem(at: old)
    } else {
      try fm.moveItem(at: staging, to: directory)
      moved = true
    }
    return ConversionReport(directory: directory, components: components, notes: notes, assumptions: assumptions)
  }

  /// `.<name>.<what>-<pid>` beside `directory`: a conversion's staging folder or the model it
  /// replaces.
  static func sibling(of directory: URL, _ what: String, pid: Int32) -> URL {
    directory.deletingLastPathComponent().appendingPathComponent(".\(directory.lastPathComponent).\(what)-\(pid)")
  }

  /// What a conversion killed earlier (kill -9, power loss) left beside `directory`: staging
  /// folders of processes no longer running are removed, and a model it had moved aside is put
  /// back when nothing took its place (else removed). Returns what was done, for the report.
  @discardableResult
  public static func recoverInterrupted(_ directory: URL) -> [String] {
    let fm = FileManager.default
    let parent = directory.deletingLastPathComponent()
    let prefix = ".\(directory.lastPathComponent)."
    guard let names = try? fm.contentsOfDirectory(atPath: parent.path) else { return [] }
    var done: [String] = []
    for name in names.sorted() where name.hasPrefix(prefix) {
      let rest = name.dropFirst(prefix.count)
      guard let dash = rest.lastIndex(of: "-"), let pid = Int32(rest[rest.index(after: dash)...]) else { continue }
      let what = rest[..<dash]
      guard what == "converting" || what == "replaced" else { continue }
      // A process still running (or one we may not signal) owns it.
      if pid == getpid() || kill(pid, 0) == 0 || errno == EPERM { continue }
      let url = parent.appendingPathComponent(name)
      if what == "replaced" && !fm.fileExists(atPath: directory.path) {
        if (try? fm.moveItem(at: url, to: directory)) != nil {
          done.append("an interrupted conversion had moved the old model aside; it is back at \(directory.path)")
        }
      } else if (try? fm.removeItem(at: url)) != nil {
        done.append("removed \(name), left by an interrupted conversion")
      }
    }
    return done
  }

  // MARK: - Components

  /// Reads, checks and writes the tokenizer and the three components into `staging`.
  /// - Returns: what was written, and the CLIP and VQGAN layout names for `model.json`.
  private static func writeComponents(
    _ request: ConversionRequest, into staging: URL, progress: (ConversionEvent) -> Void, note: (String) -> Void,
    assume: (String) -> Void
  ) throws -> ([ConversionReport.Component], String?, String?) {
    let fm = FileManager.default
    // 1. Read and check every component before writing anything.
    let clip = try prepareCLIP(request, progress: progress)
    let gpt = try prepareGPT(request, progress: progress, assume: assume)
    let vqgan = try prepareVQGAN(request, progress: progress, note: note, assume: assume)
    try checkCompatible(clip: clip.config, gpt: gpt.config, vqgan: vqgan.config)
    let tokenizerSource = try request.tokenizer ?? defaultTokenizer(for: request.clip)

    // 2. Write them.
    let tokenizer = try TokenizerFiles.write(from: tokenizerSource, to: staging.appendingPathComponent("tokenizer"))
    let rows = clip.config.text.vocabSize
    guard tokenizer.vocabularySize <= rows, tokenizer.endOfTextID < rows, tokenizer.startOfTextID < rows else {
      throw ConversionError.incompatible(
        "the tokenizer (\(tokenizerSource.path)) has \(tokenizer.vocabularySize) tokens (ids up to \(max(tokenizer.startOfTextID, tokenizer.endOfTextID))) but CLIP's token embedding has \(rows) rows"
      )
    }

    var components: [ConversionReport.Component] = []
    var keptFloat32: [String] = []
    for part in [clip.output, gpt.output, vqgan.output] {
      let dir = staging.appendingPathComponent(part.name)
      try fm.createDirectory(at: dir, withIntermediateDirectories: true)
      try writeAtomically(part.configJSON, to: dir.appendingPathComponent("config.json"))
      let entries = part.names.map { name -> SafeTensorsStreamWriter.Entry in
        let shape = part.weights.base.shape(of: name) ?? []
        var storage: SafeTensorsWriter.Storage =
          request.float16 || (part.name == "gpt" && request.priorFloat16) ? .f16 : .f32
        if storage == .f16, (part.weights.maxAbs(of: name) ?? 0) > Float(Float16.greatestFiniteMagnitude) {
          storage = .f32
          keptFloat32.append("\(part.name): '\(name)' has values beyond float16's range; kept as float32")
        }
        return SafeTensorsStreamWriter.Entry(name: name, shape: shape, storage: storage)
      }
      let total = entries.reduce(0) { $0 + $1.byteCount }
      try SafeTensorsStreamWriter.write(
        entries, metadata: ["format": "pt", "source": URL(fileURLWithPath: part.source).lastPathComponent],
        to: dir.appendingPathComponent("model.safetensors"),
        tensor: { try part.weights.base.tensor(entries[$0].name).reshaped(entries[$0].shape) },
        progress: { i, bytes in
          progress(.writing(component: part.name, tensor: i + 1, of: entries.count, bytes: bytes, totalBytes: total))
        })
      components.append(
        ConversionReport.Component(
          name: part.name, source: part.source, kind: part.kind.description, tensors: entries.count,
          parameters: entries.reduce(0) { $0 + $1.shape.reduce(1, *) }, bytes: total))
    }
    keptFloat32.forEach(note)

    return (components, clip.layoutName, vqgan.layoutName)
  }

  /// A component read, checked and ready to write.
  private struct Prepared<Config: Encodable> {
    let name: String
    let source: String
    let kind: ModelComponent
    let layoutName: String?
    let config: Config
    let weights: StatisticsWeights
    /// Tensors the engine read, in source order.
    let names: [String]

    var output: Output {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      let json = ((try? encoder.encode(config)) ?? Data("{}".utf8)) + Data("\n".utf8)
      return Output(name: name, source: source, kind: kind, configJSON: json, weights: weights, names: names)
    }
  }

  /// A prepared component, whatever its config type.
  private struct Output {
    let name: String
    let source: String
    let kind: ModelComponent
    let configJSON: Data
    let weights: StatisticsWeights
    let names: [String]
  }

  private static func open(_ url: URL) throws -> WeightSource {
    try WeightFiles.open(url, verifyChecksums: true)
  }

  private static func wrongComponent(_ url: URL, expected: String, found: ModelComponent?) -> ConversionError {
    .wrongComponent(
      path: url.path, expected: expected, found: found?.description ?? "no known model (unrecognised tensor names)")
  }

  private static func prepareCLIP(_ r: ConversionRequest, progress: (ConversionEvent) -> Void) throws -> Prepared<
    CLIPConfig
  > {
    progress(.reading(component: "clip", path: r.clip.path))
    let source = try open(r.clip)
    let found = ModelComponent.detect(source)
    guard case .clip(let layout)? = found else { throw wrongComponent(r.clip, expected: "CLIP", found: found) }
    let config: CLIPConfig
    switch layout {
    case .huggingFace:
      var isDirectory: ObjCBool = false
      _ = FileManager.default.fileExists(atPath: r.clip.path, isDirectory: &isDirectory)
      let folder = isDirectory.boolValue ? r.clip : r.clip.deletingLastPathComponent()
      let url = folder.appendingPathComponent("config.json")
      guard FileManager.default.fileExists(atPath: url.path) else {
        throw ConversionError.unreadableConfig(
          path: url.path, reason: "missing (Hugging Face CLIP weights need the config.json of their folder)")
      }
      config = try CLIPConfig.load(contentsOf: url)
    case .openAI:
      config = try CLIPConfig.inferred(fromOpenAI: source)
    }
    let weights = StatisticsWeights(source, measure: r.float16)
    _ = try CLIPModel(weights: weights, config: config, layout: layout)
    let t = config.text
    let v = config.vision
    progress(
      .detected(
        component: "clip",
        summary:
          "\(ModelComponent.clip(layout)): text \(t.numHiddenLayers)×\(t.hiddenSize) (\(t.numAttentionHeads) heads, vocab \(t.vocabSize)), vision \(v.numHiddenLayers)×\(v.hiddenSize) (\(v.imageSize)px, patch \(v.patchSize)), embedding \(config.projectionDim)"
      ))
    return Prepared(
      name: "clip", source: source.sourceDescription, kind: .clip(layout), layoutName: layout.rawValue, config: config,
      weights: weights, names: weights.recorded)
  }

  private static func prepareGPT(
    _ r: ConversionRequest, progress: (ConversionEvent) -> Void, assume: (String) -> Void
  ) throws -> Prepared<GPTConfig> {
    progress(.reading(component: "gpt", path: r.gpt.path))
    let source = try open(r.gpt)
    let found = ModelComponent.detect(source)
    guard found == .gpt else { throw wrongComponent(r.gpt, expected: "GPT prior", found: found) }
    let config = try GPTConfig.inferred(from: source, heads: r.gptHeads)
    if r.gptHeads == nil {
      assume(
        "gpt: \(config.heads) attention heads (width \(config.embeddingWidth) / 64): the checkpoint does not store the head count; HFAiLab's gpt2_medium and gpt2_large follow this rule, and a wrong count gives wrong images: pass --gpt-heads otherwise"
      )
    }
    let weights = StatisticsWeights(source, measure: r.float16 || r.priorFloat16)
    _ = try ConditionalGPT(weights: weights, config: config)
    progress(
      .detected(
        component: "gpt",
        summary:
          "\(ModelComponent.gpt): \(config.layers) layers, width \(config.embeddingWidth), \(config.heads) heads, vocab \(config.vocabSize), \(config.blockSize) positions, condition \(config.conditionWidth)\(config.hasUnconditionalEmbedding ? ", unconditional embedding" : "")"
      ))
    return Prepared(
      name: "gpt", source: source.sourceDescription, kind: .gpt, layoutName: nil, config: config, weights: weights,
      names: weights.recorded)
  }

  private static func prepareVQGAN(
    _ r: ConversionRequest, progress: (ConversionEvent) -> Void, note: (String) -> Void, assume: (String) -> Void
  ) throws -> Prepared<VQGANConfig> {
    progress(.reading(component: "vqgan", path: r.vqgan.path))
    let source = try open(r.vqgan)
    let found = ModelComponent.detect(source)
    guard case .vqgan(let layout)? = found else { throw wrongComponent(r.vqgan, expected: "VQGAN", found: found) }
    let eps: Float = layout == .hfai ? 1e-5 : 1e-6
    var config: VQGANConfig
    if let url = r.vqganConfig {
      config = try VQGANConfig.load(tamingConfig: url, normEps: eps)
    } else if let ckpt = source as? PyTorchCheckpoint,
      let c = VQGANConfig.fromHyperParameters(ckpt.root["hyper_parameters"], normEps: eps)
    {
      config = c
    } else {
      config = try VQGANConfig.inferred(from: source, layout: layout, resolution: r.vqganResolution ?? 256)
      if r.vqganResolution == nil {
        assume(
          "vqgan: a training resolution of 256: the checkpoint does not store it (taming's and HFAiLab's released models use 256; pass --vqgan-resolution or --vqgan-config otherwise)"
        )
      }
    }
    if let res = r.vqganResolution { config.resolution = res }
    let weights = StatisticsWeights(source, measure: r.float16)
    _ = try VQGAN(weights: weights, config: config, layout: layout)
    progress(
      .detected(
        component: "vqgan",
        summary:
          "\(ModelComponent.vqgan(layout)): \(config.nEmbed) codes × \(config.embedDim), ch \(config.ch) × \(config.chMult), \(config.numResBlocks) res blocks, attention at \(config.attnResolutions), \(config.resolution)px (f\(config.downsamplingFactor)), GroupNorm eps \(config.normEps)"
      ))
    return Prepared(
      name: "vqgan", source: source.sourceDescription, kind: .vqgan(layout), layoutName: layout.rawValue,
      config: config,
      weights: weights, names: weights.recorded)
  }

  private static func checkCompatible(clip: CLIPConfig, gpt: GPTConfig, vqgan: VQGANConfig) throws {
    let side = vqgan.resolution / vqgan.downsamplingFactor
    if gpt.vocabSize != vqgan.nEmbed {
      throw ConversionError.incompatible(
        "the GPT has a vocabulary of \(gpt.vocabSize) image tokens but the VQGAN codebook has \(vqgan.nEmbed) codes")
    }
    if side * side != gpt.blockSize {
      throw ConversionError.incompatible(
        "the VQGAN's \(side)×\(side) token grid (\(vqgan.resolution)px, f\(vqgan.downsamplingFactor)) does not fill the GPT's \(gpt.blockSize) positions (check --vqgan-resolution)"
      )
    }
    if gpt.conditionWidth != clip.projectionDim {
      throw ConversionError.incompatible(
        "the GPT is conditioned on \(gpt.conditionWidth)-wide embeddings but CLIP produces \(clip.projectionDim)")
    }
  }

  private static func defaultTokenizer(for clip: URL) throws -> URL {
    if TokenizerFiles.isHuggingFaceFolder(clip) { return clip }
    let folder = clip.deletingLastPathComponent()
    if TokenizerFiles.isHuggingFaceFolder(folder) { return folder }
    throw ConversionError.tokenizer(
      path: clip.path,
      reason:
        "no vocab.json + merges.txt beside the CLIP weights; pass --tokenizer with a folder holding them (e.g. openai/clip-vit-base-patch32) or OpenAI's bpe_simple_vocab_16e6.txt.gz"
    )
  }
}

/// A `WeightSource` that remembers every tensor read and its largest magnitude, so a conversion
/// writes exactly the tensors the engine reads (no optimizer state, loss networks or mask
/// buffers) and knows which fit in float16.
final class StatisticsWeights: WeightSource {
  let base: WeightSource
  /// Whether to measure magnitudes (only float16 output needs them).
  let measures: Bool
  private let seen = Mutex<[String: Float]>([:])

  init(_ base: WeightSource, measure: Bool) {
    self.base = base
    measures = measure
  }

  var sourceDescription: String { base.sourceDescription }
  var tensorNames: [String] { base.tensorNames }
  func shape(of name: String) -> [Int]? { base.shape(of: name) }
  func tensor(_ name: String) throws -> Tensor {
    let t = try base.tensor(name)
    let m = measures ? t.maxAbs : 0
    seen.withLock { $0[name] = m }
    return t
  }

  /// The names read so far, in the base source's order.
  var recorded: [String] {
    let read = seen.withLock { $0 }
    return base.tensorNames.filter { read[$0] != nil }
  }

  func maxAbs(of name: String) -> Float? { seen.withLock { $0[name] } }
}
