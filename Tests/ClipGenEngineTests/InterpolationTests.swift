// Interpolation between prompts: slerp's geometry, the engine's frames on the tiny model, and
// `clipgen interpolate` end to end (frames with records, a labelled strip, a manifest).
import ClipGenSheets
import Foundation
import Testing

@testable import ClipGenEngine

@Suite struct InterpolationTests {
  let model = fixturesDirectory.appendingPathComponent("tiny_model")

  func norm(_ v: [Float]) -> Float { sqrt(v.reduce(0) { $0 + $1 * $1 }) }
  func angle(_ a: [Float], _ b: [Float]) -> Float {
    acos(min(1, max(-1, zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } / (norm(a) * norm(b)))))
  }

  @Test func slerpMovesAtConstantAngularSpeedAndInterpolatesTheLength() throws {
    let a: [Float] = [3, 0, 0]
    let b: [Float] = [0, 1, 1]  // 90° from a, length √2
    let omega = angle(a, b)
    for t: Float in [0, 0.2, 0.5, 0.9, 1] {
      let v = try slerp(a, b, t)
      #expect(abs(angle(a, v) - t * omega) < 1e-5, "t \(t)")
      #expect(abs(angle(v, b) - (1 - t) * omega) < 1e-5, "t \(t)")
      #expect(abs(norm(v) - ((1 - t) * 3 + t * sqrt(2))) < 1e-5, "t \(t)")
    }
    // the linear midpoint of a and b would be 45° from each but shorter: slerp is not lerp
    let mid = try slerp([1, 0], [0, 1], 0.5)
    #expect(abs(norm(mid) - 1) < 1e-6 && abs(mid[0] - mid[1]) < 1e-6)
    #expect(try slerp([1, 2], [2, 4], 0.5).map { ($0 * 1e4).rounded() / 1e4 } == [1.5, 3])  // parallel
    #expect(throws: GenerationError.self) { try slerp([1, 0], [-1, 0], 0.5) }
    #expect(throws: GenerationError.self) { try slerp([1, 0], [0, 0], 0.5) }
    #expect(throws: GenerationError.self) { try slerp([1, 0], [1, 0, 0], 0.5) }
  }

  @Test func framesRunFromOnePromptsEmbeddingToTheOthers() throws {
    let m = try ClipGenModel(directory: model)
    let a = Prompt.text("a red circle on the left")
    let b = Prompt.text("a blue square on the right")
    let path = try m.interpolation(from: a, to: b, steps: 5)
    #expect(path.prompts.count == 5 && !path.truncated)
    let ea = try m.embed(a).embedding
    let eb = try m.embed(b).embedding
    let frames = try path.prompts.map { try m.embed($0).embedding }
    #expect(zip(frames[0], ea).allSatisfy { abs($0 - $1) < 1e-5 })
    #expect(zip(frames[4], eb).allSatisfy { abs($0 - $1) < 1e-5 })
    let omega = angle(ea, eb)
    #expect(omega > 0.05)
    for (i, f) in frames.enumerated() {
      #expect(abs(angle(ea, f) - Float(i) / 4 * omega) < 1e-4, "frame \(i)")
    }
    #expect(throws: GenerationError.self) { try m.interpolation(from: a, to: b, steps: 1) }
    // one frame alone (the studio's columns) is the same frame
    let half = try m.embed(try m.interpolated(from: a, to: b, t: 0.5)).embedding
    #expect(zip(half, frames[2]).allSatisfy { abs($0 - $1) < 1e-6 })
    #expect(throws: GenerationError.self) { try m.interpolated(from: a, to: b, t: 1.5) }
  }

  @Test func cliWritesFramesAStripAndAManifest() throws {
    let exe = try clipgenExecutable()
    let out = try temporaryDirectory().appendingPathComponent("interp")
    let r = try run(
      exe,
      [
        "interpolate", "a red circle", "a blue square", "--steps", "3", "--model", model.path, "--seed", "5",
        "--candidates", "2", "--out", out.path, "--quiet",
      ])
    #expect(r.status == 0, "clipgen failed: \(r.stderr)")
    var frames: [RGBImage] = []
    for i in 0..<3 {
      let data = try Data(contentsOf: out.appendingPathComponent(String(format: "frame-%02d.png", i)))
      let text = try RGBImage.readPNGText(data)
      let json = try #require(text.first { $0.key == "clipgen" }?.value)
      let record = try JSONDecoder().decode(GenerationParameters.self, from: Data(json.utf8))
      #expect(record.prompt == "a red circle" && record.seed == 5 && record.candidates == 2)
      #expect(record.interpolation == .init(to: "a blue square", t: Float(i) / 2))
      #expect(text.first { $0.key == "parameters" }?.value.contains("Interpolation: to \"a blue square\"") == true)
      frames.append(try RGBImage.load(contentsOf: out.appendingPathComponent(String(format: "frame-%02d.png", i))))
    }
    // the strip holds the three frames side by side under their labels
    let strip = try RGBImage.load(contentsOf: out.appendingPathComponent("strip.png"))
    let expected = LabelledGrid(
      title: "A: \"a red circle\"  B: \"a blue square\"  SEED 5", labels: ["T=0.00 A", "T=0.50", "T=1.00 B"],
      images: frames
    ).render()
    #expect(strip == expected)
    let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("manifest.json")))
    let images = try #require((manifest as? [String: Any])?["images"] as? [[String: Any]])
    #expect(images.map { $0["file"] as? String } == ["frame-00.png", "frame-01.png", "frame-02.png"])
    // the same seed gives the same first frame as generating prompt A alone
    let alone = out.appendingPathComponent("alone")
    let g = try run(
      exe,
      [
        "generate", "a red circle", "--model", model.path, "--seed", "5", "--candidates", "2", "--out", alone.path,
        "--quiet",
      ])
    #expect(g.status == 0, "clipgen failed: \(g.stderr)")
    #expect(try RGBImage.load(contentsOf: alone.appendingPathComponent("image-00.png")) == frames[0])
    let bad = try run(exe, ["interpolate", "a", "b", "--steps", "1", "--model", model.path])
    #expect(bad.status != 0 && bad.stderr.contains("--steps must be between 2 and 64"))
  }
}
