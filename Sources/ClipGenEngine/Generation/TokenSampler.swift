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
    guard temperature >= 0, temperature.isFinite else {
      throw GenerationError.invalidSetting("temperature must be ≥ 0, got \(temperature)")
    }
    if let k = topK, k < 0 || k > vocabularySize {
      throw GenerationError.invalidSetting("top-k must be between 0 (all tokens) and \(vocabularySize), got \(k)")
    }
    guard topP > 0, topP <= 1 else { throw GenerationError.invalidSetting("top-p must be in (0, 1], got \(topP)") }
    guard guidanceScale.isFinite, guidanceScale >= 0 else {
      throw GenerationError.invalidSetting("guidance scale must be ≥ 0, got \(guidanceScale)")
    }
  }
}

/// Draws tokens from logits, reusing its scratch buffers between draws. Top-k finds the k-th
/// largest value by selection (linear time, no sort); top-p sorts only the tokens that can be in the
/// nucleus (the survivors of top-k, or those within reach of the maximum).
public struct TokenSampler {
  public let settings: SamplingSettings
  private var scratch: [Float]
  private var order: [Int32]
  private var selection: [Float]

  public init(settings: SamplingSettings, vocabularySize: Int) {
    self.settings = settings
    scratch = [Float](repeating: 0, count: vocabularySize)
    order = [Int32](repeating: 0, count: vocabularySize)
    selection = [Float](repeating: 0, count: vocabularySize)
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
    var chosen = [Float]()
    swap(&values, &scratch)
    swap(&ranks, &order)
    swap(&chosen, &selection)
    defer {
      swap(&values, &scratch)
      swap(&ranks, &order)
      swap(&chosen, &selection)
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
        let kth = chosen.withUnsafeMutableBufferPointer { buf -> Float in
          buf.baseAddress!.update(from: p, count: n)
          return Self.kthLargest(buf.baseAddress!, count: n, k: k)
        }
        for i in 0..<n where p[i] < kth { p[i] = -.infinity }
      }
      return ranks.withUnsafeMutableBufferPointer { rk -> Int in
        // The tokens still in play, in index order: after top-k a few hundred of the vocabulary,
        // so top-p, the softmax and the draw touch only those.
        let live = rk.baseAddress!
        var count = 0
        for i in 0..<n where p[i] > -.infinity {
          live[count] = Int32(i)
          count += 1
        }
        if count == 0 { return 0 }
        if s.topP < 1 {
          count = chosen.withUnsafeMutableBytes { raw in
            Self.applyTopP(
              s.topP, p, live: live, count: count, order: raw.baseAddress!.assumingMemoryBound(to: Int32.self))
          }
        }
        // Softmax numerators over the live tokens, then a draw walking them in index order.
        var m = -Float.infinity
        for r in 0..<count where p[Int(live[r])] > m { m = p[Int(live[r])] }
        var total: Float = 0
        for r in 0..<count {
          let e = Foundation.exp(p[Int(live[r])] - m)
          p[Int(live[r])] = e
          total += e
        }
        let u = Float(rng.nextUnit()) * total
        var acc: Float = 0
        var last = Int(live[0])
        for r in 0..<count {
          let i = Int(live[r])
          guard p[i] > 0 else { continue }
          acc += p[i]
          last = i
          if u < acc { return i }
        }
        return last
      }
    }
  }

  /// The log-probability of `token` under the prior's own distribution at this step: the guided
  /// logits (`uncond + s·(cond − uncond)`, or the logits alone) through a softmax at temperature 1,
  /// with no top-k or top-p, so kept tokens are scored the same whatever the sampler settings.
  public static func logProbability(
    of token: Int, logits: UnsafePointer<Float>, unconditional: UnsafePointer<Float>?, vocabularySize n: Int,
    guidanceScale: Float
  ) -> Float {
    func value(_ i: Int) -> Float {
      guard let u = unconditional, guidanceScale != 1 else { return logits[i] }
      return u[i] + guidanceScale * (logits[i] - u[i])
    }
    var m = -Float.infinity
    for i in 0..<n { m = max(m, value(i)) }
    var total: Float = 0
    for i in 0..<n { total += Foundation.exp(value(i) - m) }
    return value(token) - m - Foundation.log(total)
  }

  /// Removes tokens outside the nucleus: sorted by probability, a token is dropped when the
  /// cumulative probability *before* it already exceeds p (so the first token is always kept).
  /// Sets the dropped logits to -∞ (all `n` of `p` are considered).
  static func applyTopP(
    _ topP: Float, _ p: UnsafeMutablePointer<Float>, count n: Int, order: UnsafeMutableBufferPointer<Int32>
  ) {
    let live = UnsafeMutablePointer<Int32>.allocate(capacity: n)
    defer { live.deallocate() }
    var count = 0
    for i in 0..<n where p[i] > -.infinity {
      live[count] = Int32(i)
      count += 1
    }
    _ = applyTopP(topP, p, live: live, count: count, order: order.baseAddress!)
  }

  /// Top-p over the `count` live tokens listed (in index order) in `live`; compacts `live` to the
  /// tokens kept, still in index order, and returns how many there are. `order` is scratch for
  /// `count` indices.
  ///
  /// Only candidates are sorted: the live values at or above `max + ln((1 − p)/n) − 1`. Everything
  /// below that bound together holds less than `(1 − p)/e` of the probability, so the tokens above
  /// it already hold more than p and the cut falls among them; the rest is dropped unsorted.
  static func applyTopP(
    _ topP: Float, _ p: UnsafeMutablePointer<Float>, live: UnsafeMutablePointer<Int32>, count n: Int,
    order: UnsafeMutablePointer<Int32>
  ) -> Int {
    var m = -Float.infinity
    for r in 0..<n where p[Int(live[r])] > m { m = p[Int(live[r])] }
    var total: Float = 0
    for r in 0..<n { total += Foundation.exp(p[Int(live[r])] - m) }
    let slack = Double(1 - topP)
    // Where float rounding of the cumulative sum could matter, keep every live token a candidate.
    let floor = slack > 1e-4 ? m + Float(Foundation.log(slack / Double(n))) - 1 : -Float.greatestFiniteMagnitude
    var candidates = 0
    for r in 0..<n where p[Int(live[r])] >= floor {
      order[candidates] = live[r]
      candidates += 1
    }
    var ranked = UnsafeMutableBufferPointer(start: order, count: candidates)
    ranked.sort { p[Int($0)] > p[Int($1)] }
    var cumulative: Float = 0
    var cut = candidates
    for r in 0..<candidates {
      if cumulative > topP {
        cut = r
        break
      }
      cumulative += Foundation.exp(p[Int(ranked[r])] - m) / total
    }
    for r in cut..<candidates { p[Int(ranked[r])] = -.infinity }
    var kept = 0
    for r in 0..<n {
      let i = Int(live[r])
      if p[i] >= floor && p[i] > -.infinity {
        live[kept] = live[r]
        kept += 1
      } else {
        p[i] = -.infinity
      }
    }
    return kept
  }

  /// The k-th largest of `count` values (1-based `k`), by quickselect on `v` (which it reorders).
  /// Median-of-three pivots; expected linear time.
  static func kthLargest(_ v: UnsafeMutablePointer<Float>, count: Int, k: Int) -> Float {
    precondition(k >= 1 && k <= count, "kthLargest: k \(k) of \(count)")
    // Find the element that would sit at index k - 1 in descending order.
    let target = k - 1
    var lo = 0
    var hi = count - 1
    while hi > lo {
      if hi - lo < 16 {
        // Insertion sort, descending, for the last few.
        for i in (lo + 1)...hi {
          let x = v[i]
          var j = i - 1
          while j >= lo && v[j] < x {
            v[j + 1] = v[j]
            j -= 1
          }
          v[j + 1] = x
        }
        return v[target]
      }
      let mid = lo + (hi - lo) / 2
      let (a, b, c) = (v[lo], v[mid], v[hi])
      let pivot = max(min(a, b), min(max(a, b), c))
      // Three-way partition: [lo, lt) > pivot, [lt, gt] == pivot, (gt, hi] < pivot.
      var lt = lo
      var gt = hi
      var i = lo
      while i <= gt {
        let x = v[i]
        if x > pivot {
          v[i] = v[lt]
          v[lt] = x
          lt += 1
          i += 1
        } else if x < pivot {
          v[i] = v[gt]
          v[gt] = x
          gt -= 1
        } else {
          i += 1
        }
      }
      if target < lt {
        hi = lt - 1
      } else if target > gt {
        lo = gt + 1
      } else {
        return pivot
      }
    }
    return v[target]
  }
}
