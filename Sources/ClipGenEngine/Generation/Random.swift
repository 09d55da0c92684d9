// Seeded random numbers for sampling: the same seed and settings give the same images on every
// machine (no dependence on the system generator, thread timing or batch composition).

/// xoshiro256** (Blackman & Vigna), seeded through SplitMix64. Deterministic and portable.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
  private var s: (UInt64, UInt64, UInt64, UInt64)

  /// A generator for `seed`; `stream` separates independent sequences from one seed (e.g. one
  /// per candidate image, so candidate i is the same whatever the batch size).
  public init(seed: UInt64, stream: UInt64 = 0) {
    var sm = seed ^ (stream &* 0xD1B5_4A32_D192_ED03)
    func splitMix(_ x: inout UInt64) -> UInt64 {
      x &+= 0x9E37_79B9_7F4A_7C15
      var z = x
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    s = (splitMix(&sm), splitMix(&sm), splitMix(&sm), splitMix(&sm))
  }

  public mutating func next() -> UInt64 {
    let result = rotl(s.1 &* 5, 7) &* 9
    let t = s.1 << 17
    s.2 ^= s.0
    s.3 ^= s.1
    s.1 ^= s.2
    s.0 ^= s.3
    s.2 ^= t
    s.3 = rotl(s.3, 45)
    return result
  }

  /// A uniform double in [0, 1) from the top 53 bits.
  public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

  @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}
