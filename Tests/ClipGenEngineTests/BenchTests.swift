// The benchmark's parts: preset shapes (gpt2-medium is HFAiLab's 336.7M-parameter prior), the
// random model directory (loads through the normal path, reused when unchanged), the engine
// report (every field `make bench` reads) and `clipgen bench` end to end.
import Foundation
import Testing

@testable import ClipGenBench
@testable import ClipGenEngine

@Suite(.serialized) struct BenchTests {
  @Test func gpt2MediumPresetHasThePapersParameterCount() {
    let shapes = BenchPreset.gpt2Medium.shapes
    let parameters = shapes.gptTensors().reduce(0) { $0 + $1.count }
    // DESIGN §2: gpt2_medium at vocab 16384 has 336.7M parameters.
    #expect(abs(Double(parameters) / 1e6 - 336.7) < 0.05, "\(parameters)")
    #expect(shapes.gpt == .gpt2Medium())
    #expect(shapes.vqgan == .f16x16384)
    #expect(shapes.clip == .vitB32)
    // ViT-B/32: 151.3M parameters with the logit scale (OpenAI's count).
    let clip = shapes.clipTensors().reduce(0) { $0 + $1.count }
    #expect(abs(Double(clip) / 1e6 - 151.3) < 0.1, "\(clip)")
  }

  @Test func randomModelLoadsAndIsReusedWhenUnchanged() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let shapes = BenchPreset.builtin.shapes
    #expect(try RandomModelWriter.ensure(shapes, at: dir))
    #expect(try !RandomModelWriter.ensure(shapes, at: dir))
    let model = try ClipGenModel(directory: dir)
    #expect(model.gpt.config == shapes.gpt)
    #expect(model.vqgan.config == shapes.vqgan)
    #expect(model.clip.config.projectionDim == shapes.clip.embedDim)
    #expect(model.gpt.weightsAreMapped && model.gpt.weightPrecision == .f32)
    // Another seed writes different weights.
    #expect(try RandomModelWriter.ensure(shapes, seed: 1, at: dir))
  }

  @Test func engineReportHasEveryFieldMakeBenchReads() throws {
    let model = try ClipGenModel(
      directory: fixturesDirectory.appendingPathComponent("tiny_model"), gptPrecision: .f16)
    var options = EngineBenchOptions()
    options.batch = 2
    options.priorSteps = 3
    options.repeats = 1
    var lines: [String] = []
    let report = try EngineBench.run(model: model, options: options) { lines.append($0) }
    for key in ["batch_2", "batch_1"] { #expect((report.tokensPerSecond[key] ?? 0) > 0, "\(key)") }
    for key in [
      "vqgan_decode", "clip_text", "clip_image", "image_end_to_end_batch_2", "image_end_to_end_batch_1",
      "prior_step_batch_2", "prior_step_batch_1",
    ] {
      #expect((report.seconds[key] ?? 0) > 0, "\(key)")
    }
    #expect(report.peakResidentMB > 0)
    #expect(report.config["gpt_weights"] == "f16" && report.config["sampling"]?.contains("top-k 64") == true)
    // f16 weights against the file's f32 ones (tolerance as in StreamedLinearTests).
    #expect((report.checks["f16_logits_max_rel_diff"] ?? 1) < 2e-3)
    let json = try JSONSerialization.jsonObject(with: report.json()) as? [String: Any]
    #expect(Set(json?.keys.map { $0 } ?? []) == ["tokens_per_s", "seconds", "peak_rss_mb", "config", "checks"])
    #expect(lines.contains { $0.contains("VQGAN decode") })
  }

  @Test func benchCommandWritesJSON() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let out = dir.appendingPathComponent("bench.json")
    let r = try run(
      try clipgenExecutable(),
      [
        "bench", "--model", fixturesDirectory.appendingPathComponent("tiny_model").path, "--batch", "2", "--json",
        out.path, "--repeats", "1", "--prior-steps", "2", "--no-batch-one",
      ])
    #expect(r.status == 0, "\(r.stderr)")
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any]
    let tokens = json?["tokens_per_s"] as? [String: Double]
    #expect((tokens?["batch_2"] ?? 0) > 0)
    #expect(r.stdout.contains("| tokens/s, batch 2 |"))
    let bad = try run(try clipgenExecutable(), ["bench", "--preset", "huge"])
    #expect(bad.status != 0 && bad.stderr.contains("--preset"))
  }
}
