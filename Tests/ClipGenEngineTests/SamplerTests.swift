// Token sampling: greedy, temperature, top-k and top-p with HFAiLab/clip-gen's semantics, guidance,
// and the seeded generator's determinism.
import Foundation
import Testing

@testable import ClipGenEngine

@Suite struct SamplerTests {
  /// Draws many tokens and returns their frequencies.
  func frequencies(_ logits: [Float], _ settings: SamplingSettings, draws: Int = 20000, uncond: [Float]? = nil)
    -> [Double]
  {
    var sampler = TokenSampler(settings: settings, vocabularySize: logits.count)
    var rng = SeededGenerator(seed: 42)
    var counts = [Int](repeating: 0, count: logits.count)
    logits.withUnsafeBufferPointer { lp in
      if let uncond {
        uncond.withUnsafeBufferPointer { up in
          for _ in 0..<draws {
            counts[sampler.draw(logits: lp.baseAddress!, unconditional: up.baseAddress!, using: &rng)] += 1
          }
        }
      } else {
        for _ in 0..<draws { counts[sampler.draw(logits: lp.baseAddress!, using: &rng)] += 1 }
      }
    }
    return counts.map { Double($0) / Double(draws) }
  }

  func softmax(_ x: [Float]) -> [Double] {
    let m = x.max()!
    let e = x.map { exp(Double($0 - m)) }
    let s = e.reduce(0, +)
    return e.map { $0 / s }
  }

  let logits: [Float] = [2.0, 1.0, 0.5, 0.0, -1.0]

  @Test func greedyPicksArgmax() {
    let f = frequencies([0.1, 3, 2.9, -1], SamplingSettings(temperature: 0), draws: 50)
    #expect(f[1] == 1)
  }

  @Test func temperatureScalesTheDistribution() {
    for t: Float in [1.0, 0.5, 2.0] {
      let f = frequencies(logits, SamplingSettings(temperature: t))
      let p = softmax(logits.map { $0 / t })
      for i in 0..<p.count { #expect(abs(f[i] - p[i]) < 0.015, "T=\(t) token \(i): \(f[i]) vs \(p[i])") }
    }
  }

  @Test func topKKeepsOnlyTheKMostLikely() {
    let f = frequencies(logits, SamplingSettings(topK: 2))
    let p = softmax(Array(logits.prefix(2)))
    #expect(abs(f[0] - p[0]) < 0.015 && abs(f[1] - p[1]) < 0.015)
    #expect(f[2] == 0 && f[3] == 0 && f[4] == 0)
  }

  @Test func topPKeepsTheNucleusIncludingTheTokenThatCrossesP() {
    // Probabilities ≈ [0.53, 0.20, 0.12, 0.07, 0.03]; cumulative 0.53, 0.73, 0.85 …
    // p = 0.6: the first token (0.53 ≤ 0.6) and the second (cumulative before it 0.53 ≤ 0.6) stay.
    let f = frequencies(logits, SamplingSettings(topP: 0.6))
    #expect(f[0] > 0.6 && f[1] > 0.2 && f[2] == 0 && f[3] == 0)
    let tiny = frequencies(logits, SamplingSettings(topP: 0.01), draws: 200)
    #expect(tiny[0] == 1)
  }

  @Test func guidanceExtrapolatesFromUnconditional() {
    let cond: [Float] = [1, 0, 0]
    let uncond: [Float] = [0, 0, 1]
    let s: Float = 3
    let f = frequencies(cond, SamplingSettings(guidanceScale: s), uncond: uncond)
    let p = softmax(zip(cond, uncond).map { $1 + s * ($0 - $1) })
    for i in 0..<3 { #expect(abs(f[i] - p[i]) < 0.015) }
  }

  @Test func seededGeneratorIsDeterministicAndStreamsDiffer() {
    var a = SeededGenerator(seed: 7)
    var b = SeededGenerator(seed: 7)
    var c = SeededGenerator(seed: 7, stream: 1)
    let xa = (0..<8).map { _ in a.next() }
    #expect(xa == (0..<8).map { _ in b.next() })
    #expect(xa != (0..<8).map { _ in c.next() })
    var u = SeededGenerator(seed: 1)
    let units = (0..<1000).map { _ in u.nextUnit() }
    #expect(units.allSatisfy { $0 >= 0 && $0 < 1 })
    #expect(abs(units.reduce(0, +) / 1000 - 0.5) < 0.05)
  }

  @Test func settingsAreValidatedWithTheSettingNamed() {
    #expect(throws: GenerationError.self) { try SamplingSettings(temperature: -1).validate(vocabularySize: 10) }
    do {
      try SamplingSettings(topK: 11).validate(vocabularySize: 10)
      Issue.record("top-k 11 of 10 accepted")
    } catch { #expect("\(error)".contains("top-k")) }
    do {
      try SamplingSettings(topP: 0).validate(vocabularySize: 10)
      Issue.record("top-p 0 accepted")
    } catch { #expect("\(error)".contains("top-p")) }
  }
}
