// What a weights file, a Hugging Face folder or a clipgen model directory holds: its format, which
// component and key layout, how many tensors and parameters of which dtypes, the sizes (inferred
// when the file carries none), and what else a checkpoint stores at its top level.
import ClipGenEngine
import Foundation

/// A summary of one weights file.
public struct WeightsInspection: Sendable {
  /// Tensors and parameters of one element type.
  public struct DTypeCount: Sendable, Equatable {
    public let dtype: String
    public let tensors: Int
    public let parameters: Int
  }

  public let path: String
  /// e.g. "safetensors", "PyTorch zip checkpoint (torch.save)".
  public let format: String
  /// nil when the tensor names match no known layout.
  public let component: ModelComponent?
  /// Where the state dict sits in a checkpoint (`model`, `state_dict`; nil: the top level).
  public let stateDictKey: String?
  public let strippedPrefix: String?
  public let tensorCount: Int
  public let parameterCount: Int
  public let dtypes: [DTypeCount]
  /// The top-level entries of a checkpoint (key, one-line summary); safetensors metadata.
  public let topLevel: [(key: String, summary: String)]
  /// The sizes as JSON (pretty-printed), read from a config or inferred from shapes.
  public let configJSON: String?
  /// Where the sizes came from, assumptions, or why they could not be found.
  public let configNotes: [String]
  /// Tensors that cannot be read, and why.
  public let unreadable: [String: String]
  /// Every tensor in file order: name, dtype, shape.
  public let tensors: [(name: String, dtype: String, shape: [Int])]

  /// Reads a weights file (or a Hugging Face folder) without loading any tensor data.
  /// - Parameters:
  ///   - gptHeads: the head count to assume for a GPT (shapes do not record it).
  ///   - vqganResolution: the resolution to assume for a VQGAN.
  public init(url: URL, gptHeads: Int? = nil, vqganResolution: Int? = nil) throws {
    let source = try WeightFiles.open(url)
    path = source.sourceDescription
    var isDirectory: ObjCBool = false
    _ = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory)
    let folder = isDirectory.boolValue ? url : nil

    var dtypeOf: (String) -> String = { _ in "?" }
    var top: [(String, String)] = []
    switch source {
    case let s as SafeTensorsFile:
      format = WeightFileFormat.safetensors.rawValue
      stateDictKey = nil
      strippedPrefix = nil
      unreadable = [:]
      dtypeOf = { s.entries[$0]?.dtype.rawValue ?? "?" }
      top = s.metadata.sorted { $0.key < $1.key }.map { ("__metadata__.\($0.key)", "'\($0.value)'") }
    case let c as PyTorchCheckpoint:
      format = c.format.rawValue
      stateDictKey = c.stateDictKey
      strippedPrefix = c.strippedPrefix
      unreadable = c.unreadable
      dtypeOf = { c.record(of: $0).map { $0.dtype?.rawValue ?? $0.storage.className } ?? "?" }
      top = (c.root.dictEntries ?? []).map { entry in
        if case .string(let k) = entry.key { return (key: k, summary: entry.value.summary) }
        return (key: entry.key.summary, summary: entry.value.summary)
      }
      if case .object(let o) = c.root, top.isEmpty || c.format == .torchScript {
        top = [("(module)", o.className)]
      }
    default:
      format = "weights"
      stateDictKey = nil
      strippedPrefix = nil
      unreadable = [:]
    }
    if let folder { topLevel = [("(folder)", folder.path)] + top } else { topLevel = top }

    var counts: [String: (Int, Int)] = [:]
    var parameters = 0
    var list: [(String, String, [Int])] = []
    for name in source.tensorNames {
      let shape = source.shape(of: name) ?? []
      let n = shape.reduce(1, *)
      parameters += n
      let d = dtypeOf(name)
      list.append((name, d, shape))
      counts[d, default: (0, 0)].0 += 1
      counts[d, default: (0, 0)].1 += n
    }
    tensorCount = source.tensorNames.count
    tensors = list
    parameterCount = parameters
    dtypes = counts.map { DTypeCount(dtype: $0.key, tensors: $0.value.0, parameters: $0.value.1) }
      .sorted { $0.parameters > $1.parameters }

    component = ModelComponent.detect(source)
    (configJSON, configNotes) = Self.sizes(
      of: component, in: source, url: url, folder: folder, gptHeads: gptHeads, vqganResolution: vqganResolution)
  }

  /// The component's sizes as config JSON (nil when they cannot be known) and notes on where
  /// they came from.
  static func sizes(
    of component: ModelComponent?, in source: WeightSource, url: URL, folder: URL?, gptHeads: Int?,
    vqganResolution: Int?
  ) -> (String?, [String]) {
    var notes: [String] = []
    var json: String?
    func render<T: Encodable>(_ value: T) -> String? {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) }
    }
    do {
      switch component {
      case .clip(.huggingFace)?:
        let dir = folder ?? url.deletingLastPathComponent()
        let configURL = dir.appendingPathComponent("config.json")
        if FileManager.default.fileExists(atPath: configURL.path) {
          json = render(try CLIPConfig.load(contentsOf: configURL))
          notes.append("from \(configURL.path)")
        } else {
          notes.append("Hugging Face weights without their config.json; sizes unknown")
        }
      case .clip(.openAI)?:
        json = render(try CLIPConfig.inferred(fromOpenAI: source))
        notes.append("inferred from tensor shapes (OpenAI's build_model rules: heads = width / 64)")
      case .gpt?:
        let c = try GPTConfig.inferred(from: source, heads: gptHeads)
        json = render(c)
        notes.append(
          "inferred from tensor shapes; heads \(gptHeads == nil ? "assumed width / 64 (not stored)" : "as given")")
      case .vqgan(let layout)?:
        let eps: Float = layout == .hfai ? 1e-5 : 1e-6
        if let c = source as? PyTorchCheckpoint,
          var config = VQGANConfig.fromHyperParameters(c.root["hyper_parameters"], normEps: eps)
        {
          if let r = vqganResolution { config.resolution = r }
          json = render(config)
          notes.append("from the checkpoint's hyper_parameters")
        } else {
          json = render(try VQGANConfig.inferred(from: source, layout: layout, resolution: vqganResolution ?? 256))
          notes.append(
            "inferred from tensor shapes; resolution \(vqganResolution.map { "\($0) as given" } ?? "assumed 256 (not stored)")"
          )
        }
      case nil:
        notes.append("tensor names match no CLIP, GPT or VQGAN layout the engine knows")
      }
    } catch {
      notes.append("cannot determine the sizes: \(error)")
    }
    return (json, notes)
  }
}

/// A clipgen model directory: its manifest and each component's weights.
public struct ModelDirectoryInspection: Sendable {
  public let directory: URL
  public let manifest: ModelManifest
  /// (component name, its weights, its config file's text).
  public let components: [(name: String, weights: WeightsInspection, config: String?)]

  public init(directory: URL) throws {
    self.directory = directory
    let url = directory.appendingPathComponent("model.json")
    do {
      manifest = try JSONDecoder().decode(ModelManifest.self, from: Data(contentsOf: url))
    } catch {
      throw GenerationError.invalidModel(path: url.path, reason: describeDecodingError(error))
    }
    var parts: [(String, WeightsInspection, String?)] = []
    let files: [(String, weights: String, config: String?)] = [
      ("clip", manifest.clip.weights, manifest.clip.config), ("gpt", manifest.gpt.weights, manifest.gpt.config),
      ("vqgan", manifest.vqgan.weights, manifest.vqgan.config),
    ]
    for (name, weightsFile, configFile) in files {
      let weights = try WeightsInspection(url: directory.appendingPathComponent(weightsFile))
      let config = configFile.flatMap {
        try? String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8)
      }
      parts.append((name, weights, config))
    }
    components = parts
  }
}
