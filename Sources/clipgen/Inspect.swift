// `clipgen inspect PATH [--prompt TEXT]`: what a model directory or any checkpoint holds, and how a
// prompt tokenizes (with a clear warning when CLIP's 77-token context cuts it).
import ArgumentParser
import ClipGenConvert
import ClipGenEngine
import Foundation

struct Inspect: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Show what a model directory or checkpoint holds, and how a prompt tokenizes.",
    discussion: """
      PATH is a clipgen model directory, a Hugging Face folder, a safetensors file or a PyTorch \
      checkpoint (.pt, .pth, .bin, .ckpt, TorchScript). Shows the format, the component and key \
      layout, tensor and parameter counts by dtype, the sizes (inferred when the file has no \
      config) and a checkpoint's other top-level entries.
      """)

  @Argument(help: "A model directory, Hugging Face folder, safetensors file or PyTorch checkpoint.")
  var path: String

  @Option(help: "Show how this prompt tokenizes (ids, tokens, count, truncation).")
  var prompt: String?

  @Option(
    help:
      "Tokenizer for --prompt: a folder with vocab.json and merges.txt, or bpe_simple_vocab_16e6.txt.gz (default: the model's)."
  )
  var tokenizer: String?

  @Option(help: "Attention heads to assume for a GPT checkpoint (default width/64).")
  var gptHeads: Int?

  @Option(help: "Resolution to assume for a VQGAN checkpoint (default 256).")
  var vqganResolution: Int?

  @Flag(help: "List every tensor (name, dtype, shape).")
  var tensors = false

  func run() throws {
    let url = URL(fileURLWithPath: path)
    if let png = try? Data(contentsOf: url, options: .mappedIfSafe), RGBImage.hasPNGSignature(png) {
      print(try describeImage(png, path: url.path).joined(separator: "\n"))
      return
    }
    var out: [String] = []
    var tokenizerURL = tokenizer.map { URL(fileURLWithPath: $0) }
    var contextLength = CLIPTokenizer.defaultContextLength
    var loadedTokenizer: CLIPTokenizer?
    do {
      if WeightFileFormat.of(url) == .modelDirectory {
        let model = try ModelDirectoryInspection(directory: url)
        out.append("\(url.path)")
        out.append(
          "  format        clipgen model directory (format \(model.manifest.format), version \(model.manifest.version))"
        )
        out.append("  name          \(model.manifest.name ?? url.lastPathComponent)")
        out += describeDefaults(model.manifest)
        for a in model.manifest.assumptions ?? [] { out.append("  assumed       \(a)") }
        out += describeFingerprints(modelJSON: url.appendingPathComponent("model.json"))
        for (name, weights, config) in model.components {
          out.append("")
          out.append("[\(name)] \(weights.path)")
          out += describe(weights, indent: "  ", config: config.map { ($0, "from \(name)'s config file") })
        }
        let t = model.manifest.tokenizer
        contextLength = t.contextLength ?? contextLength
        if tokenizerURL == nil {
          loadedTokenizer = try CLIPTokenizer(
            vocabularyURL: url.appendingPathComponent(t.vocab), mergesURL: url.appendingPathComponent(t.merges))
        }
        if let tok = loadedTokenizer {
          out.append("")
          out.append("[tokenizer] \(url.appendingPathComponent(t.vocab).path)")
          out.append("  vocabulary    \(tok.vocabularySize) tokens, \(tok.mergeCount) merges, context \(contextLength)")
        }
      } else {
        let weights = try WeightsInspection(url: url, gptHeads: gptHeads, vqganResolution: vqganResolution)
        out.append(weights.path)
        out += describe(weights, indent: "  ")
        if case .clip? = weights.component, let json = weights.configJSON, let data = json.data(using: .utf8),
          let config = try? JSONDecoder().decode(CLIPConfig.self, from: data)
        {
          contextLength = config.text.maxPositionEmbeddings
        }
        if tokenizerURL == nil {
          var isDirectory: ObjCBool = false
          _ = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory)
          let folder = isDirectory.boolValue ? url : url.deletingLastPathComponent()
          if TokenizerFiles.isHuggingFaceFolder(folder) { tokenizerURL = folder }
        }
      }
      if prompt != nil, loadedTokenizer == nil {
        guard let source = tokenizerURL else {
          throw CLIError(
            "--prompt needs a tokenizer: pass --tokenizer with a folder holding vocab.json and merges.txt, or bpe_simple_vocab_16e6.txt.gz"
          )
        }
        loadedTokenizer = try loadTokenizer(source)
      }
    } catch let e as CLIError {
      throw e
    } catch {
      throw CLIError("\(error)")
    }
    if let prompt, let tok = loadedTokenizer {
      out.append("")
      out += describe(prompt: prompt, tokenizer: tok, context: contextLength)
    }
    print(out.joined(separator: "\n"))
  }

  private func loadTokenizer(_ source: URL) throws -> CLIPTokenizer {
    if TokenizerFiles.isHuggingFaceFolder(source) { return try CLIPTokenizer(directory: source) }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clipgen-inspect-\(getpid())")
    defer { try? FileManager.default.removeItem(at: dir) }
    return try TokenizerFiles.write(from: source, to: dir)
  }

  /// - Parameter config: the component's config text and where it is from, shown instead of the
  ///   sizes inferred from the weights.
  private func describe(_ w: WeightsInspection, indent: String, config: (String, String)? = nil) -> [String] {
    var lines: [String] = []
    func row(_ label: String, _ value: String) {
      lines.append(indent + label.padding(toLength: 14, withPad: " ", startingAt: 0) + value)
    }
    row("format", w.format)
    row("contents", w.component?.description ?? "unknown (no CLIP, GPT or VQGAN layout matches)")
    if w.format != WeightFileFormat.safetensors.rawValue {
      row("state dict", w.stateDictKey.map { "'\($0)'" } ?? "the top level")
    }
    if let p = w.strippedPrefix { row("prefix", "'\(p)' removed from every name") }
    row("tensors", "\(w.tensorCount) (\(grouped(w.parameterCount)) parameters)")
    row(
      "dtypes",
      w.dtypes.map { "\($0.dtype): \(plural($0.tensors, "tensor")), \(grouped($0.parameters)) values" }.joined(
        separator: "; "))
    if !w.unreadable.isEmpty {
      row(
        "unreadable", w.unreadable.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; "))
    }
    if let (text, source) = config {
      lines.append(indent + "config (\(source)):")
      lines += text.split(separator: "\n").map { indent + "  " + $0 }
    } else if let json = w.configJSON {
      lines.append(indent + "config (\(w.configNotes.joined(separator: "; "))):")
      lines += json.split(separator: "\n").map { indent + "  " + $0 }
    } else if !w.configNotes.isEmpty {
      row("config", w.configNotes.joined(separator: "; "))
    }
    let top = w.topLevel.filter { !$0.key.hasPrefix("(folder)") }
    if !top.isEmpty {
      lines.append(indent + "top level:")
      for (k, v) in top.prefix(40) {
        lines.append(indent + "  " + k.padding(toLength: max(14, k.count), withPad: " ", startingAt: 0) + "  " + v)
      }
      if top.count > 40 { lines.append(indent + "  … \(top.count - 40) more") }
    }
    if tensors {
      lines.append(indent + "tensors:")
      for t in w.tensors { lines.append(indent + "  \(t.name)  \(t.dtype) \(t.shape)") }
    }
    return lines
  }

  private func describe(prompt: String, tokenizer tok: CLIPTokenizer, context: Int) -> [String] {
    let ids = tok.encode(prompt)
    let row = tok.tokenize(prompt, contextLength: context)
    // Every token in the row, up to the count (a literal <|endoftext|> in the text stops nothing).
    let used = row.ids.prefix(min(row.tokenCount, context)).map(Int.init)
    var lines = ["prompt \"\(prompt)\""]
    lines.append("  cleaned       \(CLIPTokenizer.cleanText(prompt))")
    lines.append(
      "  count         \(row.tokenCount) tokens with BOS and EOS (\(ids.count) from the text); context \(context)")
    lines.append("  tokens        " + used.map { tok.token(forID: $0) ?? "<\($0)>" }.joined(separator: " "))
    lines.append("  ids           " + used.map(String.init).joined(separator: " "))
    if row.eotIndex < min(row.tokenCount, context) - 1 {
      lines.append(
        "note: CLIP reads the embedding at the first <|endoftext|> (token \(row.eotIndex + 1) of \(min(row.tokenCount, context))): the text after it does not change the image"
      )
    }
    if row.isTruncated {
      let kept = context - 2
      let dropped = Array(ids.dropFirst(kept))
      lines.append(
        "warning: the prompt is \(row.tokenCount) tokens with BOS and EOS but CLIP reads \(context): the last \(dropped.count) text tokens are dropped (\"\(droppedText(tok, kept: Array(ids.prefix(kept)), dropped: dropped))\")"
      )
    }
    return lines
  }
}

/// The dropped tail of a prompt as people read it: "…" where the cut falls inside a word, and no
/// space before punctuation (the tokenizer's words are decoded with a space after each).
func droppedText(_ tok: CLIPTokenizer, kept: [Int], dropped: [Int]) -> String {
  var text = tok.decode(dropped).trimmingCharacters(in: .whitespaces)
  for mark in [",", ".", ";", ":", "!", "?", ")"] { text = text.replacingOccurrences(of: " " + mark, with: mark) }
  let midWord = kept.last.flatMap { tok.token(forID: $0) }.map { !$0.hasSuffix("</w>") } ?? false
  return midWord ? "…" + text : text
}

/// "1 tensor", "3 tensors".
func plural(_ n: Int, _ noun: String) -> String { n == 1 ? "1 \(noun)" : "\(n) \(noun)s" }

/// 151277313 → "151,277,313".
func grouped(_ n: Int) -> String {
  let s = String(n)
  var out = ""
  for (i, c) in s.enumerated() {
    if i > 0, (s.count - i) % 3 == 0 { out.append(",") }
    out.append(c)
  }
  return out
}

/// The model's own sampling defaults and example prompts, as `inspect` lists them.
func describeDefaults(_ manifest: ModelManifest) -> [String] {
  var out: [String] = []
  if let d = manifest.defaults {
    var parts: [String] = []
    if let t = d.temperature { parts.append("temperature \(t)") }
    if let k = d.topK { parts.append("top-k \(k == 0 ? "all" : String(k))") }
    if let p = d.topP { parts.append("top-p \(p)") }
    if let g = d.guidance { parts.append("guidance \(g)") }
    if let c = d.candidates { parts.append("\(c) candidate\(c == 1 ? "" : "s") per image") }
    out.append("  defaults      \(parts.isEmpty ? "(none)" : parts.joined(separator: ", "))")
  } else {
    out.append("  defaults      none (temperature 1, all tokens, no guidance, 1 candidate)")
  }
  for (i, p) in (manifest.samplePrompts ?? []).prefix(5).enumerated() {
    out.append("  \(i == 0 ? "examples      " : "              ")\(p)")
  }
  return out
}

/// What the training kit recorded the weights were made from (`model.json`'s `"fingerprints"`:
/// the data set listing, resolution and alpha background; the VQGAN, CLIP and prior), and
/// whether the prior's tokens came from this VQGAN and CLIP.
func describeFingerprints(modelJSON url: URL) -> [String] {
  guard let data = try? Data(contentsOf: url),
    let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
    let fingerprints = root["fingerprints"] as? [String: Any]
  else { return [] }
  func text(_ v: Any) -> String {
    switch v {
    case let s as String: return s.count > 16 ? String(s.prefix(16)) + "…" : s
    case let a as [Any]: return "[" + a.map(text).joined(separator: ", ") + "]"
    default: return "\(v)"
    }
  }
  var out = ["  made from"]
  for key in fingerprints.keys.sorted() where key != "shards" {
    if let nested = fingerprints[key] as? [String: Any] {
      for k in nested.keys.sorted() { out.append("    \(key).\(k) = \(text(nested[k]!))") }
    } else {
      out.append("    \(key) = \(text(fingerprints[key]!))")
    }
  }
  if let shards = fingerprints["shards"] as? [String: Any] {
    let stale = ["vqgan", "clip"].filter { k in
      guard let a = shards[k] as? String, let b = fingerprints[k] as? String else { return false }
      return a != b
    }
    out.append(
      stale.isEmpty
        ? "    the prior's tokens and embeddings come from this VQGAN and CLIP"
        : "    warning: the prior was trained on another \(stale.joined(separator: " and ")) than this model's")
  }
  return out
}

/// What a PNG says about how it was made: its `parameters` text (AUTOMATIC1111's form, as clipgen
/// writes it and other tools do) read into its fields, and clipgen's own record when present.
func describeImage(_ png: Data, path: String) throws -> [String] {
  let image: RGBImage
  let text: [(key: String, value: String)]
  do {
    image = try RGBImage(pngData: png, source: path)
    text = try RGBImage.readPNGText(png)
  } catch { throw CLIError("\(error)") }
  var out = [path, "  image         PNG, \(image.width)×\(image.height)"]
  guard let parameters = text.first(where: { $0.key == "parameters" })?.value else {
    out.append("  parameters    none (no generation record in this image)")
    return out
  }
  let a = A1111Parameters.parse(parameters)
  out.append("  prompt        \(a.prompt)")
  if !a.negativePrompt.isEmpty { out.append("  negative      \(a.negativePrompt)") }
  for (key, value) in a.fields {
    out.append("  \(key.padding(toLength: max(13, key.count), withPad: " ", startingAt: 0)) \(value)")
  }
  if let record = text.first(where: { $0.key == "clipgen" })?.value {
    out.append("")
    out.append("clipgen record (JSON):")
    out.append(record)
  }
  return out
}
