// Region re-sample: only the rectangle's tokens are sampled again, the image's own stream gives it
// back, candidates are ranked by the prior's likelihood of the kept tokens after the region, and
// bad rectangles are refused; `clipgen generate --from --region` end to end.
import Foundation
import Testing

@testable import ClipGenEngine

@Suite struct RegionTests {
  let modelDir = fixturesDirectory.appendingPathComponent("tiny_model")

  @Test func logProbabilityIsTheGuidedLogSoftmax() {
    let cond: [Float] = [1, 2, 0.5, -1]
    let uncond: [Float] = [0, 1, 1, 0]
    func reference(_ v: [Float], _ i: Int) -> Float { v[i] - log(v.reduce(0) { $0 + exp($1) }) }
    let guided = zip(cond, uncond).map { c, u in u + 2.5 * (c - u) }
    for i in 0..<4 {
      let plain = TokenSampler.logProbability(
        of: i, logits: cond, unconditional: nil, vocabularySize: 4, guidanceScale: 2.5)
      let g = TokenSampler.logProbability(
        of: i, logits: cond, unconditional: uncond, vocabularySize: 4, guidanceScale: 2.5)
      #expect(abs(plain - reference(cond, i)) < 1e-5)
      #expect(abs(g - reference(guided, i)) < 1e-5)
    }
  }

  @Test func onlyTheRegionChangesAndTheImagesOwnStreamGivesItBack() throws {
    let m = try ClipGenModel(directory: modelDir)
    let sampling = SamplingSettings(temperature: 1)
    let source = try m.generate(GenerationRequest(prompt: .text("a red circle"), seed: 4, sampling: sampling))
    let grid = source.images[0].tokens
    let region = TokenRegion(x: 1, y: 1, width: 2, height: 2)
    let edit = try m.generate(
      GenerationRequest(
        prompt: .text("a red circle"), count: 6, candidates: 6, seed: 4, sampling: sampling, keep: grid,
        region: region))
    var changed = false
    for image in edit.images {
      for i in grid.indices where !region.contains(i, gridWidth: m.gridWidth) {
        #expect(image.tokens[i] == grid[i], "candidate \(image.candidate) changed kept token \(i)")
      }
      changed = changed || image.tokens != grid
    }
    #expect(changed, "no candidate sampled the region differently")
    // of 6 candidates, the 3 kept are those under which the prior finds what follows most likely
    let all = Dictionary(uniqueKeysWithValues: edit.images.map { ($0.candidate, $0.priorScore ?? .nan) })
    #expect(all.values.allSatisfy(\.isFinite) && Set(all.values).count > 1)
    let best = try m.generate(
      GenerationRequest(
        prompt: .text("a red circle"), count: 3, candidates: 6, seed: 4, sampling: sampling, keep: grid,
        region: region))
    let top3 = all.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }.prefix(3).map(\.key)
    #expect(best.images.map(\.candidate) == Array(top3))
    #expect(best.images.map { $0.priorScore ?? .nan } == top3.map { all[$0]! })
    // candidate 0 draws from the stream that made the image: the region comes back unchanged
    #expect(edit.images.first { $0.candidate == 0 }?.tokens == grid)
  }

  @Test func badRegionsAreRefused() throws {
    let m = try ClipGenModel(directory: modelDir)
    let full = [Int](repeating: 1, count: m.tokensPerImage)
    for r in [
      TokenRegion(x: 0, y: 0, width: 0, height: 1), TokenRegion(x: -1, y: 0, width: 1, height: 1),
      TokenRegion(x: m.gridWidth - 1, y: 0, width: 2, height: 1), TokenRegion(x: 0, y: 0, width: 1, height: Int.max),
    ] {
      #expect(throws: GenerationError.self) {
        try m.generate(GenerationRequest(prompt: .text("a"), keep: full, region: r))
      }
    }
    // the whole grid must be given
    #expect(throws: GenerationError.self) {
      try m.generate(
        GenerationRequest(prompt: .text("a"), keep: [1, 2], region: TokenRegion(x: 0, y: 0, width: 1, height: 1)))
    }
    #expect(TokenRegion("1, 2,3,4") == TokenRegion(x: 1, y: 2, width: 3, height: 4))
    #expect(TokenRegion("1,2,3") == nil && TokenRegion("a,b,c,d") == nil)
  }

  @Test func cliEditsARegionOfAnImageItMade() throws {
    let exe = try clipgenExecutable()
    let dir = try temporaryDirectory()
    let a = dir.appendingPathComponent("a")
    let first = try run(
      exe, ["generate", "a red circle", "--model", modelDir.path, "--seed", "2", "--out", a.path, "--quiet"])
    #expect(first.status == 0, "\(first.stderr)")
    let b = dir.appendingPathComponent("b")
    let edit = try run(
      exe,
      [
        "generate", "--from", a.appendingPathComponent("image-00.png").path, "--region", "0,1,3,2", "--candidates", "3",
        "--model", modelDir.path, "--out", b.path, "--quiet",
      ])
    #expect(edit.status == 0, "\(edit.stderr)")
    func record(_ dir: URL) throws -> GenerationParameters {
      let text = try RGBImage.readPNGText(Data(contentsOf: dir.appendingPathComponent("image-00.png")))
      let json = try #require(text.first { $0.key == "clipgen" }?.value)
      return try JSONDecoder().decode(GenerationParameters.self, from: Data(json.utf8))
    }
    let before = try record(a)
    let after = try record(b)
    let region = TokenRegion(x: 0, y: 1, width: 3, height: 2)
    #expect(after.region == region && after.seed == 2 && after.candidates == 3)
    #expect(after.keptTokens == (before.tokens?.count ?? 0) - 6)
    let w = Int(Double(before.tokens?.count ?? 0).squareRoot())
    for (i, (x, y)) in zip(before.tokens ?? [], after.tokens ?? []).enumerated() where !region.contains(i, gridWidth: w)
    {
      #expect(x == y, "token \(i) outside the region changed")
    }
    // not the image's own stream: that would give the region back unchanged
    #expect(after.candidate != before.candidate)
    let bad = try run(exe, ["generate", "a", "--region", "0,0,1,1", "--model", modelDir.path])
    #expect(bad.status != 0 && bad.stderr.contains("--region needs --from"))
    let outside = try run(
      exe,
      [
        "generate", "--from", a.appendingPathComponent("image-00.png").path, "--region", "0,0,99,1", "--model",
        modelDir.path, "--out", dir.appendingPathComponent("c").path,
      ])
    #expect(outside.status != 0 && outside.stderr.contains("is not inside the"))
  }
}
