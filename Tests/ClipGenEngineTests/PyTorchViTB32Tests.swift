// The full ViT-B/32 shapes (OpenAI's released CLIP) with random weights, as HFAiLab's float16 state
// dict and as OpenAI's TorchScript archive: loaded natively, sizes inferred, embeddings against the
// float64 reference. Slow (600 MB of files, 150M parameters), so only with CLIPGEN_SLOW_TESTS=1
// after `cd training && python -m reference.make_checkpoints --full` (files in .cache/vit-b32).
import Foundation
import Testing

@testable import ClipGenEngine

let vitB32Directory = repositoryRoot.appendingPathComponent(".cache/vit-b32")
let slowTestsEnabled = ProcessInfo.processInfo.environment["CLIPGEN_SLOW_TESTS"] == "1"

@Suite(.enabled(if: slowTestsEnabled, "set CLIPGEN_SLOW_TESTS=1 (after python -m reference.make_checkpoints --full)"))
struct PyTorchViTB32Tests {
  @Test(arguments: ["clip_vit_b32.pt", "ViT-B-32.pt"])
  func fullSizeCLIPLoadsAndMatchesReference(file: String) throws {
    let url = vitB32Directory.appendingPathComponent(file)
    try #require(
      FileManager.default.fileExists(atPath: url.path),
      "missing \(url.path): run python -m reference.make_checkpoints --full")
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
