// `clipgen score`: the Fréchet distance against cases with a closed form, and the command on the
// fixture model.
import Foundation
import Testing

@testable import ClipGenBench
@testable import ClipGenEngine

@Suite struct ScoreTests {
  /// Points ±s_i·e_i have mean 0 and an exactly diagonal covariance 2s_i²/(n−1); for such
  /// sets the distance is ‖μ₁−μ₂‖² + Σ(σ₁ᵢ−σ₂ᵢ)². A rotation of both sets changes nothing, and
  /// makes the covariances full (the eigen-solver's real case).
  @Test func frechetDistanceMatchesTheClosedForm() throws {
    func cross(_ scales: [Float], shift: [Float]) -> [[Float]] {
      var out: [[Float]] = []
      for (i, s) in scales.enumerated() {
        for sign: Float in [1, -1] {
          var v = shift
          v[i] += sign * s
          out.append(v)
        }
      }
      return out
    }
    let sa: [Float] = [1, 2, 0.5, 3]
    let sb: [Float] = [2, 2, 1.5, 1]
    let shift: [Float] = [0.5, -1, 0, 2]
    let a = cross(sa, shift: [0, 0, 0, 0])
    let b = cross(sb, shift: shift)
    let n = Double(a.count - 1)
    var expected = shift.reduce(0.0) { $0 + Double($1 * $1) }
    for (x, y) in zip(sa, sb) {
      let d = (2 * Double(x * x) / n).squareRoot() - (2 * Double(y * y) / n).squareRoot()
      expected += d * d
    }
    #expect(abs(try FrechetDistance.between(a, b) - expected) < 1e-6 * expected)
    #expect(try FrechetDistance.between(a, a) < 1e-9)
    // The same sets rotated (a Householder reflection of unit vector u): same distance.
    let u: [Float] = [0.5, 0.5, 0.5, 0.5]
    func reflect(_ v: [Float]) -> [Float] {
      let dot = zip(u, v).reduce(0) { $0 + $1.0 * $1.1 }
      return zip(v, u).map { $0 - 2 * dot * $1 }
    }
    let rotated = try FrechetDistance.between(a.map(reflect), b.map(reflect))
    #expect(abs(rotated - expected) < 1e-5 * expected, "\(rotated) vs \(expected)")
    #expect(throws: FrechetError.self) { _ = try FrechetDistance.between([a[0]], b) }
  }

  @Test func scoreCommandPrintsScoresAndDistances() throws {
    let exe = try clipgenExecutable()
    let model = fixturesDirectory.appendingPathComponent("tiny_model")
    let dir = try temporaryDirectory()
    let out = dir.appendingPathComponent("gen")
    let g = try run(
      exe, ["generate", "a red circle", "--model", model.path, "--n", "3", "--out", out.path, "--quiet"])
    #expect(g.status == 0, "\(g.stderr)")
    let prompts = dir.appendingPathComponent("prompts.txt")
    try "a red circle\n".write(to: prompts, atomically: true, encoding: .utf8)
    let images = (0..<3).map { out.appendingPathComponent(String(format: "image-%02d.png", $0)).path }
    let s = try run(exe, ["score", "--model", model.path, "--prompts", prompts.path] + images)
    #expect(s.status == 0, "\(s.stderr)")
    let lines = s.stdout.split(separator: "\n")
    #expect(lines.count == 4 && lines.last?.contains("mean of 3") == true, "\(s.stdout)")
    // The scores are the ones the generation recorded.
    let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("manifest.json")))
    let recorded = ((manifest as? [String: Any])?["images"] as? [[String: Any]])?.compactMap {
      $0["clip_score"] as? Double
    }
    let printed = lines.prefix(3).compactMap { Double($0.split(separator: " ").first ?? "") }
    for (p, r) in zip(printed, recorded ?? []) { #expect(abs(p - r) < 1e-3) }
    let same = try run(exe, ["score", "--model", model.path, "--fd", out.path, out.path])
    #expect(same.status == 0 && same.stdout.hasPrefix("0.000000"), "\(same.stdout) \(same.stderr)")
    let bad = try run(exe, ["score", "--model", model.path, "--fd", out.path])
    #expect(bad.status != 0 && bad.stderr.contains("--fd takes two folders"))
  }
}
