// Top-k by selection and top-p over candidates only must pick exactly the tokens the sorting
// definitions pick (HFAiLab/clip-gen's `top_k_top_p`), on large vocabularies with ties.
import Foundation
import Testing

@testable import ClipGenEngine

@Suite struct SamplerSelectionTests {
  /// The k-th largest by a full sort.
  func sortedKth(_ v: [Float], _ k: Int) -> Float { v.sorted(by: >)[k - 1] }

  @Test func kthLargestMatchesSorting() {
    var r = TestRandom(seed: 21)
    for n in [1, 2, 15, 16, 17, 100, 16384] {
      // Distinct values, many ties, and sorted input (the usual quickselect worst case).
      let distinct = (0..<n).map { _ in r.uniform() }
      let ties = (0..<n).map { _ in Float(Int(r.uniform() * 4)) }
      let ascending = (0..<n).map { Float($0) }
      for values in [distinct, ties, ascending, Array(ascending.reversed())] {
        for k in Set([1, 2, n / 3 + 1, n / 2 + 1, n].filter { $0 >= 1 && $0 <= n }) {
          var copy = values
          let kth = copy.withUnsafeMutableBufferPointer { TokenSampler.kthLargest($0.baseAddress!, count: n, k: k) }
          #expect(kth == sortedKth(values, k), "n \(n) k \(k)")
        }
      }
    }
  }

  /// The tokens top-k then top-p keep (by selection and a candidate-only sort) are exactly those
  /// HFAiLab's definition keeps with full sorts, on a 16384-token vocabulary with exact ties.
  @Test func topKThenTopPKeepsTheSameTokensAsTheSortingDefinition() {
    var r = TestRandom(seed: 8)
    let n = 16384
    // Logits in a narrow range so that thousands of tokens matter, plus a group of exact ties on top.
    let logits = (0..<n).map { i in i % 97 == 0 ? Float(2.5) : r.uniform() * 2 }
    for (topK, topP) in [(500, Float(0.95)), (50, Float(1)), (n - 1, Float(0.5)), (0, Float(0.9)), (0, Float(0.999))] {
      // Reference: HFAiLab's semantics with full sorts, in double.
      var p = logits
      if topK > 0 && topK < n {
        let kth = sortedKth(p, topK)
        for i in 0..<n where p[i] < kth { p[i] = -.infinity }
      }
      var expected = (0..<n).map { p[$0] > -.infinity }
      // Tokens whose cumulative probability before them is within float rounding of p may fall
      // either way (the sampler sums in float, torch's cumsum too; this reference in double).
      var borderline = Set<Int>()
      if topP < 1 {
        let m = p.max()!
        let e = p.map { Double(exp($0 - m)) }
        let total = e.reduce(0, +)
        let order = (0..<n).sorted { p[$0] > p[$1] }
        var cumulative = 0.0
        var kept = [Bool](repeating: false, count: n)
        for i in order {
          if abs(cumulative - Double(topP)) < 1e-4 { borderline.insert(i) }
          if cumulative > Double(topP) { break }
          kept[i] = true
          cumulative += e[i] / total
        }
        expected = zip(expected, kept).map { $0 && $1 }
      }
      // The sampler's own steps.
      var q = logits
      var scratch = logits
      var order = [Int32](repeating: 0, count: n)
      q.withUnsafeMutableBufferPointer { qp in
        if topK > 0 && topK < n {
          let kth = scratch.withUnsafeMutableBufferPointer {
            TokenSampler.kthLargest($0.baseAddress!, count: n, k: topK)
          }
          for i in 0..<n where qp[i] < kth { qp[i] = -.infinity }
        }
        if topP < 1 {
          order.withUnsafeMutableBufferPointer { TokenSampler.applyTopP(topP, qp.baseAddress!, count: n, order: $0) }
        }
      }
      let kept = q.map { $0 > -.infinity }
      let differing = (0..<n).filter { kept[$0] != expected[$0] && !borderline.contains($0) }
      #expect(
        differing.isEmpty,
        "top-k \(topK) top-p \(topP): \(differing.count) tokens differ of \(expected.filter { $0 }.count) kept")
    }
  }

  /// A draw only ever returns a kept token.
  @Test func drawsStayInsideTheKeptSet() {
    var r = TestRandom(seed: 4)
    let logits = (0..<2048).map { _ in r.uniform() * 3 }
    let allowed = Set((0..<2048).sorted { logits[$0] > logits[$1] }.prefix(20))
    var sampler = TokenSampler(settings: SamplingSettings(topK: 20, topP: 0.99), vocabularySize: 2048)
    var rng = SeededGenerator(seed: 2)
    logits.withUnsafeBufferPointer { lp in
      for _ in 0..<300 { #expect(allowed.contains(sampler.draw(logits: lp.baseAddress!, using: &rng))) }
    }
  }
}
