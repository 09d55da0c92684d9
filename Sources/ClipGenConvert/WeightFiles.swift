// Opening any published weights file by its content (not its extension): safetensors, a PyTorch
// zip / TorchScript / legacy checkpoint, or a Hugging Face model folder; and telling which of the
// three CLIP-GEN components a set of tensors is, in which key layout.
import ClipGenEngine
import Foundation

/// Errors converting or inspecting published checkpoints; each names the file or option at fault.
public enum ConversionError: Error, CustomStringConvertible, Equatable {
  /// A file or folder that holds no weights the engine knows how to open.
  case unrecognizedFile(path: String, reason: String)
  /// Weights that are not the component they were given as (`--gpt` pointing at a VQGAN).
  case wrongComponent(path: String, expected: String, found: String)
  /// Sizes that cannot be read from the tensors (and no config was given).
  case cannotInferConfig(path: String, reason: String)
  /// A config file that cannot be read.
  case unreadableConfig(path: String, reason: String)
  /// A tokenizer source that cannot be used.
  case tokenizer(path: String, reason: String)
  /// Components that do not fit together (vocabulary, grid, embedding width).
  case incompatible(String)
  /// The output directory exists and is not empty.
  case outputExists(path: String)
  /// The converted directory did not load back.
  case verificationFailed(path: String, reason: String)

  public var description: String {
    switch self {
    case .unrecognizedFile(let path, let reason): return "\(path): \(reason)"
    case .wrongComponent(let path, let expected, let found):
      return "\(path): expected \(expected) weights, but this looks like \(found)"
    case .cannotInferConfig(let path, let reason): return "\(path): cannot infer the model sizes: \(reason)"
    case .unreadableConfig(let path, let reason): return "\(path): cannot read the config: \(reason)"
    case .tokenizer(let path, let reason): return "\(path): tokenizer: \(reason)"
    case .incompatible(let reason): return "the components do not fit together: \(reason)"
    case .outputExists(let path): return "\(path) exists and is not empty (pass --force to replace it)"
    case .verificationFailed(let path, let reason): return "\(path): the converted model does not load: \(reason)"
    }
  }
}

/// What a weights file is, by its first bytes.
public enum WeightFileFormat: String, Sendable {
  case safetensors = "safetensors"
  case pytorch = "PyTorch checkpoint"
  case huggingFaceDirectory = "Hugging Face model folder"
  case modelDirectory = "clipgen model directory"

  /// The format of the file or folder at `url`, or nil when it is none of these.
  public static func of(_ url: URL) -> WeightFileFormat? {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else { return nil }
    if isDirectory.boolValue {
      if FileManager.default.fileExists(atPath: url.appendingPathComponent("model.json").path) {
        return .modelDirectory
      }
      return WeightFiles.huggingFaceWeights(in: url) != nil ? .huggingFaceDirectory : nil
    }
    guard let handle = FileHandle(forReadingAtPath: url.path) else { return nil }
    defer { try? handle.close() }
    let head = [UInt8](handle.readData(ofLength: 9))
    if head.count >= 2, head[0] == 0x50, head[1] == 0x4B { return .pytorch }
    if head.count >= 2, head[0] == 0x80, head[1] <= 5 { return .pytorch }
    if head.count == 9, head[8] == UInt8(ascii: "{") { return .safetensors }
    return nil
  }
}

/// Opening weights wherever they are.
public enum WeightFiles {
  /// The weights file of a Hugging Face model folder: `model.safetensors`, else `pytorch_model.bin`.
  public static func huggingFaceWeights(in directory: URL) -> URL? {
    for name in ["model.safetensors", "pytorch_model.bin"] {
      let u = directory.appendingPathComponent(name)
      if FileManager.default.fileExists(atPath: u.path) { return u }
    }
    return nil
  }

  /// A `WeightSource` for a safetensors file, a PyTorch checkpoint (its state dict chosen as
  /// `PyTorchCheckpoint.StateDictSelection.automatic` does) or a Hugging Face folder's weights.
  /// - Throws: `ConversionError.unrecognizedFile` for anything else; the reader's own errors
  ///   (naming the file) for damaged files.
  public static func open(_ url: URL, verifyChecksums: Bool = false) throws -> WeightSource {
    switch WeightFileFormat.of(url) {
    case .safetensors?: return try SafeTensorsFile(url: url)
    case .pytorch?: return try PyTorchCheckpoint(path: url.path, verifyChecksums: verifyChecksums)
    case .huggingFaceDirectory?:
      guard let weights = huggingFaceWeights(in: url) else { break }
      return try open(weights, verifyChecksums: verifyChecksums)
    case .modelDirectory?:
      throw ConversionError.unrecognizedFile(
        path: url.path, reason: "a clipgen model directory (it is converted already); give one of its weight files")
    case nil: break
    }
    if !FileManager.default.fileExists(atPath: url.path) {
      throw ConversionError.unrecognizedFile(path: url.path, reason: "no such file or directory")
    }
    throw ConversionError.unrecognizedFile(
      path: url.path,
      reason:
        "not a weights file (expected safetensors, a PyTorch .pt/.pth/.bin/.ckpt, or a folder with model.safetensors or pytorch_model.bin)"
    )
  }
}

/// One of the three networks of a CLIP-GEN model, with the key layout its tensors use.
public enum ModelComponent: Equatable, Sendable, CustomStringConvertible {
  case clip(CLIPLayout)
  case gpt
  case vqgan(VQGANLayout)

  /// The component and layout of a set of tensor names, or nil when none matches.
  public static func detect(_ weights: WeightSource) -> ModelComponent? {
    if weights.contains("tok_emb.weight") && weights.contains("cond_proj.weight") { return .gpt }
    if weights.contains("quantizer.embedding.weight") { return .vqgan(.hfai) }
    if weights.contains("quantize.embedding.weight") || weights.contains("decoder.conv_in.weight") {
      return .vqgan(.taming)
    }
    if let layout = CLIPLayout.detect(weights) { return .clip(layout) }
    return nil
  }

  public var description: String {
    switch self {
    case .clip(.huggingFace): return "CLIP (Hugging Face layout)"
    case .clip(.openAI): return "CLIP (OpenAI layout)"
    case .gpt: return "CLIP-GEN GPT prior (HFAiLab layout)"
    case .vqgan(.taming): return "VQGAN (taming-transformers layout)"
    case .vqgan(.hfai): return "VQGAN (HFAiLab layout)"
    }
  }
}
