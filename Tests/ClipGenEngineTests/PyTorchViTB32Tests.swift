// The full ViT-B/32 shapes (OpenAI's released CLIP) with random weights, as HFAiLab's float16 state
// dict and as OpenAI's TorchScript archive: loaded natively, sizes inferred, embeddings against the
// float64 reference. Slow (600 MB of files, 150M parameters), so only with CLIPGEN_SLOW_TESTS=1
// after `cd training && python -m tools.make_checkpoints --full` (files in .cache/vit-b32).
import Foundation
import Testing

@testable import ClipGenConvert
@testable import ClipGenEngine

let vitB32Directory = repositoryRoot.appendingPathComponent(".cache/vit-b32")
let slowTestsEnabled = ProcessInfo.processInfo.environment["CLIPGEN_SLOW_TESTS"] == "1"

@Suite(.enabled(if: slowTestsEnabled, "set CLIPGEN_SLOW_TESTS=1 (after python -m tools.make_checkpoints --full)"))
struct PyTorchViTB32Tests {
  @Test(arguments: ["clip_vit_b32.pt", "ViT-B-32.pt"])
  func fullSizeCLIPLoadsAndMatchesReference(file: String) throws {
    let url = vitB32Directory.appendingPathComponent(file)
    try #require(
      FileManager.default.fileExists(atPath: url.path),
      "missing \(url.path): run python -m tools.make_checkpoints --full")
    let ckpt = try PyTorchCheckpoint(url: url)
    #expect(ckpt.format == (file == "ViT-B-32.pt" ? .torchScript : .zip))
    let config = try CLIPConfig.inferred(fromOpenAI: ckpt)
    #expect(config == CLIPConfig())  // ViT-B/32
    let clip = try CLIPModel(weights: ckpt, config: config, layout: .openAI)
    let io = try SafeTensorsFile(url: vitB32Directory.appendingPathComponent("io.safetensors"))
    let (shape, ids) = try io.integers("input_ids")
    let rows = (0..<shape[0]).map { b in ids[(b * shape[1])..<((b + 1) * shape[1])].map { Int32($0) } }
    expectParity(clip.encodeText(rows), try io.tensor("text_embeds"), "\(file) text")
    expectParity(clip.encodeImage(try io.tensor("pixel_values")), try io.tensor("image_embeds"), "\(file) image")
  }
}

/// The published COCO model's shapes with random weights: ViT-B/32 CLIP, gpt2_medium, taming's
/// f16-16384 VQGAN (a Lightning .ckpt without hyper-parameters, so its sizes are inferred) →
/// `ModelConverter` → a directory `ClipGenModel` loads, with the paper's configs, whose prior
/// gives the reference logits.
@Suite(.enabled(if: slowTestsEnabled, "set CLIPGEN_SLOW_TESTS=1 (after python -m tools.make_checkpoints --full)"))
struct FullSizeConversionTests {
  @Test func cocoShapedCheckpointsConvert() throws {
    let files = ["clip_vit_b32.pt", "gpt_coco.pt", "vqgan_f16_16384.ckpt"].map {
      vitB32Directory.appendingPathComponent($0)
    }
    for f in files {
      try #require(
        FileManager.default.fileExists(atPath: f.path),
        "missing \(f.path): run python -m tools.make_checkpoints --full")
    }
    let realVocabulary = repositoryRoot.appendingPathComponent(".cache/clip-vocab")
    let tokenizer =
      TokenizerFiles.isHuggingFaceFolder(realVocabulary)
      ? realVocabulary : fixturesDirectory.appendingPathComponent("tiny_model/tokenizer")
    let out = try temporaryDirectory().appendingPathComponent("coco")
    defer { try? FileManager.default.removeItem(at: out.deletingLastPathComponent()) }
    var notes: [String] = []
    let report = try ModelConverter.convert(
      ConversionRequest(clip: files[0], gpt: files[1], vqgan: files[2], tokenizer: tokenizer, float16: true), to: out
    ) { if case .note(let n) = $0 { notes.append(n) } }
    #expect(notes.count == 2)  // heads and resolution assumed
    #expect(report.components[1].parameters == 336_669_696)  // gpt2_medium at vocab 16384 (DESIGN: 336.7M)

    let model = try ClipGenModel(directory: out)
    #expect(model.clip.config == CLIPConfig())
    #expect(model.gpt.config == GPTConfig.gpt2Medium())
    #expect(model.vqgan.config == VQGANConfig.f16x16384)
    #expect(model.tokensPerImage == 256)

    // float16 storage rounds the float32 GPT weights: compare at a float16-sized tolerance.
    let io = try SafeTensorsFile(url: vitB32Directory.appendingPathComponent("io.safetensors"))
    let (shape, prefix) = try io.integers("gpt.prefix_tokens")
    let rows = (0..<shape[0]).map { Array(prefix[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
    let logits = model.gpt.logits(tokens: rows, conditions: try io.tensor("gpt.cond_embeds"))
    expectParity(logits, try io.tensor("gpt.logits"), relative: 2e-2, "gpt2_medium logits (float16 weights)")
  }
}
