// `clipgen convert --clip … --gpt … --vqgan … --out DIR`: published CLIP-GEN files (PyTorch
// checkpoints, Hugging Face folders, safetensors) into a clipgen model directory.
import ArgumentParser
import ClipGenConvert
import ClipGenEngine
import Foundation

struct Convert: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Convert published CLIP, GPT and VQGAN checkpoints into a clipgen model directory.",
    discussion: """
      Reads PyTorch checkpoints (.pt, .pth, .bin, Lightning .ckpt, TorchScript), safetensors and \
      Hugging Face folders natively. Layouts and sizes are detected from the tensors; only the \
      tensors the engine uses are written (safetensors), and the result is loaded back before it \
      is moved into --out.

      HFAiLab/clip-gen's COCO model:
        clipgen convert --clip clip_vit_b32.pt --gpt gpt_coco.pt \\
          --vqgan vqgan_coco.pt --out models/coco \\
          --tokenizer bpe_simple_vocab_16e6.txt.gz
      With Hugging Face's openai/clip-vit-base-patch32 folder (it holds the
      tokenizer) and a taming VQGAN:
        clipgen convert --clip clip-vit-base-patch32 --gpt gpt_coco.pt \\
          --vqgan last.ckpt --vqgan-config model.yaml --out models/coco
      """)

  @Option(
    help:
      "CLIP: a Hugging Face folder, an OpenAI-named state dict (.pt), OpenAI's TorchScript ViT-B-32.pt, or safetensors."
  )
  var clip: String

  @Option(help: "The GPT prior: HFAiLab's gpt_*.pt, or safetensors.")
  var gpt: String

  @Option(help: "The VQGAN: taming's Lightning .ckpt, HFAiLab's vqgan_*.pt, or safetensors.")
  var vqgan: String

  @Option(
    help:
      "taming's YAML (or JSON) config for the VQGAN (default: the checkpoint's hyper-parameters, else sizes inferred from the tensors)."
  )
  var vqganConfig: String?

  @Option(help: "The VQGAN's training resolution when no config gives it (default 256).")
  var vqganResolution: Int?

  @Option(help: "Attention heads of the GPT (not stored in checkpoints; default width/64).")
  var gptHeads: Int?

  @Option(
    help:
      "A folder with vocab.json and merges.txt, or OpenAI's bpe_simple_vocab_16e6.txt.gz (default: the CLIP folder's files)."
  )
  var tokenizer: String?

  @Option(help: "The model directory to create.")
  var out: String

  @Option(help: "The model's name in model.json (default: the --out folder's name).")
  var name: String?

  @Flag(help: "Store all weights as float16 (half the size; values are rounded). The prior is float16 by default.")
  var f16 = false

  @Flag(help: "Keep the prior's weights in float32 (by default they are stored as float16, as they are sampled).")
  var f32Prior = false

  @Flag(help: "Replace --out if it exists.")
  var force = false

  @Flag(help: "Print only errors.")
  var quiet = false

  func validate() throws {
    if let h = gptHeads, h < 1 { throw ValidationError("--gpt-heads must be at least 1") }
    if let r = vqganResolution, r < 1 { throw ValidationError("--vqgan-resolution must be positive") }
  }

  func run() throws {
    func url(_ p: String) -> URL { URL(fileURLWithPath: p) }
    let request = ConversionRequest(
      clip: url(clip), gpt: url(gpt), vqgan: url(vqgan), tokenizer: tokenizer.map(url),
      vqganConfig: vqganConfig.map(url),
      vqganResolution: vqganResolution, gptHeads: gptHeads, float16: f16, priorFloat16: !f32Prior, name: name,
      replaceExisting: force)
    let progress = ProgressLine(enabled: !quiet && isatty(STDERR_FILENO) != 0)
    func say(_ s: String) {
      guard !quiet else { return }
      progress.finish()
      FileHandle.standardError.write(Data((s + "\n").utf8))
    }
    let started = Date()
    let report: ConversionReport
    do {
      report = try ModelConverter.convert(request, to: url(out)) { event in
        switch event {
        case .reading(let component, let path): say("\(component): reading \(path)")
        case .detected(_, let summary): say("  \(summary)")
        case .note(let text): say("note: \(text)")
        case .assumption(let text): say("assumed: \(text)")
        case .writing(let component, let i, let n, let bytes, let total):
          let percent = total > 0 ? 100 * bytes / total : 100
          progress.update(
            "\(component): writing tensor \(i)/\(n)  \(formatBytes(bytes)) / \(formatBytes(total))  \(percent)%")
        case .verifying(let path): say("verifying: loading \(path)")
        }
      }
    } catch {
      progress.finish()
      throw CLIError("\(error)")
    }
    progress.finish()
    guard !quiet else { return }
    var lines = ["wrote \(report.directory.path) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s:"]
    for c in report.components {
      lines.append(
        "  \(c.name.padding(toLength: 6, withPad: " ", startingAt: 0)) \(c.tensors) tensors, \(formatCount(c.parameters)) parameters, \(formatBytes(c.bytes))  (\(c.kind), from \(URL(fileURLWithPath: c.source).lastPathComponent))"
      )
    }
    for a in report.assumptions {
      lines.append("warning: assumed \(a) (recorded in model.json; clipgen inspect shows it)")
    }
    lines.append("generate with: clipgen generate \"a photo of a bus\" --model \(report.directory.path)")
    FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
  }
}

func formatBytes(_ n: Int) -> String {
  let units = ["B", "KB", "MB", "GB"]
  var v = Double(n)
  var u = 0
  while v >= 1000, u < units.count - 1 {
    v /= 1000
    u += 1
  }
  return u == 0 ? "\(n) B" : String(format: "%.1f", v) + " " + units[u]
}

func formatCount(_ n: Int) -> String {
  if n >= 1_000_000 { return String(format: "%.1fM", Double(n) / 1e6) }
  if n >= 1_000 { return String(format: "%.1fk", Double(n) / 1e3) }
  return "\(n)"
}
