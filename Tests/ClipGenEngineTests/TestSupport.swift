// Shared test helpers: deterministic data, tolerant comparison, fixture and temporary paths.
import Foundation
import Testing

@testable import ClipGenEngine

/// `Tests/ClipGenEngineTests/Fixtures`, made by `training/tools/make_fixtures.py`.
let fixturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

/// The repository root (for data that `make test` prepares under `.cache/`).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .deletingLastPathComponent()

/// A small deterministic generator for test data (SplitMix64).
struct TestRandom {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) * 2 - 1 }
  mutating func tensor(_ shape: [Int]) -> Tensor {
    Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in uniform() })
  }
}

func expectClose(_ a: Tensor, _ b: Tensor, relative: Float = 1e-5, _ what: String = "") {
  #expect(a.shape == b.shape, "\(what): shapes \(a.shape) vs \(b.shape)")
  guard a.shape == b.shape else { return }
  let tol = relative * max(b.maxAbs, 1e-6)
  let diff = a.maxAbsDifference(b)
  #expect(diff <= tol, "\(what): max |diff| \(diff) > \(tol)")
}

func temporaryDirectory(_ name: String = #function) throws -> URL {
  let safe = name.filter { $0.isLetter || $0.isNumber }
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("clipgen-tests-\(safe)-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}

/// Expects `a` within `relative × max|b|` of the reference `b` (parity: 1e-4 × max|reference|).
func expectParity(_ a: Tensor, _ reference: Tensor, relative: Float = 1e-4, _ what: String) {
  expectClose(a, reference, relative: relative, what)
}
