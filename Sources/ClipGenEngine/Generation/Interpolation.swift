// Interpolation between two prompts: the spherical interpolation of their CLIP embeddings, as
// prompts the generator takes like any other (`Prompt.Part.embedding`).
import Foundation

/// The spherical interpolation of the directions of `a` and `b` at `t` (0: a, 1: b), with the
/// length interpolated linearly: on the unit sphere for normalised embeddings, and of the usual
/// length for raw ones. Nearly parallel vectors fall back to the linear path; exactly opposite
/// ones have no unique great circle and are refused.
public func slerp(_ a: [Float], _ b: [Float], _ t: Float) throws -> [Float] {
  guard a.count == b.count, !a.isEmpty else {
    throw GenerationError.invalidSetting("cannot interpolate embeddings of \(a.count) and \(b.count) values")
  }
  let na = sqrt(a.reduce(0) { $0 + $1 * $1 })
  let nb = sqrt(b.reduce(0) { $0 + $1 * $1 })
  guard na > 0, nb > 0, na.isFinite, nb.isFinite else {
    throw GenerationError.invalidSetting("cannot interpolate a zero or non-finite embedding")
  }
  var dot: Float = 0
  for i in a.indices { dot += (a[i] / na) * (b[i] / nb) }
  dot = min(1, max(-1, dot))
  guard dot > -0.9999 else {
    throw GenerationError.invalidSetting("the two prompts' embeddings point in opposite directions")
  }
  let omega = acos(dot)
  let (wa, wb): (Float, Float)
  if omega < 1e-4 {
    (wa, wb) = (1 - t, t)
  } else {
    (wa, wb) = (sin((1 - t) * omega) / sin(omega), sin(t * omega) / sin(omega))
  }
  let length = (1 - t) * na + t * nb
  var out = [Float](repeating: 0, count: a.count)
  for i in a.indices { out[i] = wa * a[i] / na + wb * b[i] / nb }
  let n = sqrt(out.reduce(0) { $0 + $1 * $1 })
  for i in out.indices { out[i] *= length / n }
  return out
}

extension ClipGenModel {
  /// `steps` prompts evenly spaced from `a` (t = 0) to `b` (t = 1), both included: the spherical
  /// interpolation (`slerp`) of the embeddings this model's prior is conditioned on (normalised
  /// or raw). Each is an embedding prompt labelled "t=0.25". `truncated`: a text was longer than
  /// the context and cut.
  public func interpolation(from a: Prompt, to b: Prompt, steps: Int) throws -> (prompts: [Prompt], truncated: Bool) {
    guard steps >= 2 else { throw GenerationError.invalidSetting("an interpolation needs at least 2 steps") }
    let ends = try interpolationEnds(a, b)
    let prompts = try (0..<steps).map { i in try ends.prompt(at: Float(i) / Float(steps - 1)) }
    return (prompts, ends.truncated)
  }

  /// The prompt `t` of the way (0…1) from `a` to `b`, as one frame of `interpolation`.
  public func interpolated(from a: Prompt, to b: Prompt, t: Float) throws -> Prompt {
    guard (0...1).contains(t) else { throw GenerationError.invalidSetting("t must be between 0 and 1, got \(t)") }
    return try interpolationEnds(a, b).prompt(at: t)
  }

  private func interpolationEnds(_ a: Prompt, _ b: Prompt) throws -> InterpolationEnds {
    let ea = try embed(a)
    let eb = try embed(b)
    let (va, vb) = normalizesCondition ? (ea.embedding, eb.embedding) : (ea.raw, eb.raw)
    return InterpolationEnds(a: va, b: vb, truncated: ea.truncated || eb.truncated)
  }
}

/// The two embeddings an interpolation runs between.
private struct InterpolationEnds {
  var a: [Float]
  var b: [Float]
  var truncated: Bool

  func prompt(at t: Float) throws -> Prompt {
    Prompt(parts: [(.embedding(try slerp(a, b, t), label: String(format: "t=%.2f", t)), 1)])
  }
}
