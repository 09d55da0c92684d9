// Turning one row of logits into a token: classifier-free guidance, temperature, top-k, top-p
// (HFAiLab/clip-gen's `top_k_top_p` semantics) and a multinomial draw from a seeded generator.
import Foundation

/// How tokens are drawn from the prior's logits.
public struct SamplingSettings: Sendable, Equatable, Codable {
  /// Logits are divided by this; 0 means greedy (argmax).
  public var temperature: Float = 1.0
  /// Keep only the k most likely tokens (nil or 0: all).
  public var topK: Int? = nil
  /// Keep the smallest set of most likely tokens whose probability reaches p (1: all).
  public var topP: Float = 1.0
  /// Classifier-free guidance scale: `uncond + s·(cond − uncond)`; 1 disables it (needs the
  /// model's learned unconditional embedding when ≠ 1).
  public var guidanceScale: Float = 1.0

  public init(temperature: Float = 1.0, topK: Int? = nil, topP: Float = 1.0, guidanceScale: Float = 1.0) {
    self.temperature = temperature
    self.topK = topK
    self.topP = topP
    self.guidanceScale = guidanceScale
  }

  enum CodingKeys: String, CodingKey {
    case temperature
    case topK = "top_k"
    case topP = "top_p"
    case guidanceScale = "guidance_scale"
  }

  /// Checks ranges; the error names the setting.
  public func validate(vocabularySize: Int) throws {
    guard temperature >= 0, temperature.isFinite else { throw GenerationError.invalidSetting("temperature must be ≥ 0, got \(temperature)") }
    if let k = topK, k < 0 || k > vocabularySize {
      throw GenerationError.invalidSetting("top-k must be between 1 and \(vocabularySize), got \(k)")
    }
    guard topP > 0, topP <= 1 else { throw GenerationError.invalidSetting("top-p must be in (0, 1], got \(topP)") }
    guard guidanceScale.isFinite, guidanceScale >= 0 else {
      throw GenerationError.invalidSetting("guidance scale must be ≥ 0, got \(guidanceScale)")
    }
  }
}

/// Draws tokens from logits, reusing its scratch buffers between draws (top-k still sorts a copy).
public struct TokenSampler {
  public let settings: SamplingSettings
  private var scratch: [Float]
  private var order: [Int32]

  public init(settings: SamplingSettings, vocabularySize: Int) {
    self.settings = settings
    scratch = [Float](repeating: 0, count: vocabularySize)
    order = [Int32](repeating: 0, count: vocabularySize)
  }

  /// Draws one token from `logits` (and, with guidance, the unconditional logits).
  public mutating func draw(
    logits: UnsafePointer<Float>, unconditional: UnsafePointer<Float>? = nil, using rng: inout SeededGenerator
  ) -> Int {
    let n = scratch.count
    let s = settings
    // Work on local buffers (moved out and back, no copy) so the closures need no access to self.
    var values = [Float]()
    var ranks = [Int32]()
    swap(&values, &scratch)
    swap(&ranks, &order)
    defer {
      swap(&values, &scratch)
      swap(&ranks, &order)
    }
    return values.withUnsafeMutableBufferPointer { buf -> Int in
      let p = buf.baseAddress!
      if let u = unconditional, s.guidanceScale != 1 {
        for i in 0..<n { p[i] = u[i] + s.guidanceScale * (logits[i] - u[i]) }
      } else {
        p.update(from: logits, count: n)
      }
      if s.temperature == 0 {
        var best = 0
        for i in 1..<n where p[i] > p[best] { best = i }
        return best
      }
      let invT = 1 / s.temperature
      for i in 0..<n { p[i] *= invT }
      if let k = s.topK, k > 0, k < n {
        // The k-th largest value; everything strictly below it is removed (ties kept, as torch does).
        var sorted = Array(UnsafeBufferPointer(start: p, count: n))
        sorted.sort(by: >)
        let kth = sorted[k - 1]
        for i in 0..<n where p[i] < kth { p[i] = -.infinity }
      }
      if s.topP < 1 {
        ranks.withUnsafeMutableBufferPointer { Self.applyTopP(s.topP, p, count: n, order: $0) }
      }
      softmaxInPlace(p, count: n)
      let u = Float(rng.nextUnit())
      var acc: Float = 0
      var last = 0
      for i in 0..<n where p[i] > 0 {
        acc += p[i]
        last = i
        if u < acc { return i }
      }
      return last
    }
  }

  /// Removes tokens outside the nucleus: sorted by probability, a token is dropped when the
  /// cumulative probability *before* it already exceeds p (so the first token is always kept).
  private static func applyTopP(
    _ topP: Float, _ p: UnsafeMutablePointer<Float>, count n: Int, order: UnsafeMutableBufferPointer<Int32>
  ) {
    var ord = order
    for i in 0..<n { ord[i] = Int32(i) }
    ord.sort { p[Int($0)] > p[Int($1)] }
    let m = p[Int(ord[0])]
    var total: Float = 0
    for i in 0..<n { total += Foundation.exp(p[i] - m) }
    var cumulative: Float = 0
    var cut = n
    for r in 0..<n {
      if cumulative > topP {
        cut = r
        break
      }
      cumulative += Foundation.exp(p[Int(ord[r])] - m) / total
    }
    for r in cut..<n { p[Int(ord[r])] = -.infinity }
  }
}
