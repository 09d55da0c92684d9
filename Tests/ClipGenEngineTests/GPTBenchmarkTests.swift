// A measurement, not a test: decoding speed of the KV-cache session at gpt2_medium shapes
// (24 layers, d 1024, 16 heads, vocab 16384) with random weights. Off unless asked for:
//
//   CLIPGEN_GPT_BENCH=1 swift test -c release -Xswiftc -enable-testing --scratch-path .build-gpt \
//     --filter GPTBenchmark
//
// CLIPGEN_GPT_BENCH_BATCHES (default "1,8") and CLIPGEN_GPT_BENCH_TOKENS (default 256) adjust it.
import Foundation
import Testing

@testable import ClipGenEngine

@Suite(.serialized) struct GPTBenchmark {
  static let environment = ProcessInfo.processInfo.environment

  /// Random weights with every tensor distinct (so the weights stream from memory as real ones do).
  static func randomWeights(_ c: GPTConfig) -> GPTTestWeights {
    var r = TestRandom(seed: 42)
    func t(_ shape: [Int], _ scale: Float) -> Tensor {
      var s = [Float](repeating: 0, count: shape.reduce(1, *))
      for i in s.indices { s[i] = r.uniform() * scale }
      return Tensor(shape: shape, scalars: s)
    }
    let d = c.embeddingWidth
    let f = c.feedForwardWidth
    var w: [String: Tensor] = [
      "tok_emb.weight": t([c.vocabSize, d], 1), "pos_emb": t([1, c.blockSize, d], 0.5),
      "cond_proj.weight": t([d, c.conditionWidth], 0.05), "cond_proj.bias": t([d], 0.1),
      "norm.weight": t([d], 1), "norm.bias": t([d], 0.1),
      "head.weight": t([c.vocabSize, d], 0.05), "head.bias": t([c.vocabSize], 0.1),
    ]
    for l in 0..<c.layers {
      let p = "blocks.\(l).encoder."
      w[p + "self_attn.in_proj_weight"] = t([3 * d, d], 0.05)
      w[p + "self_attn.in_proj_bias"] = t([3 * d], 0.1)
      w[p + "self_attn.out_proj.weight"] = t([d, d], 0.05)
      w[p + "self_attn.out_proj.bias"] = t([d], 0.1)
      w[p + "linear1.weight"] = t([f, d], 0.05)
      w[p + "linear1.bias"] = t([f], 0.1)
      w[p + "linear2.weight"] = t([d, f], 0.025)
      w[p + "linear2.bias"] = t([d], 0.1)
      for n in ["norm1", "norm2"] {
        w[p + n + ".weight"] = t([d], 1)
        w[p + n + ".bias"] = t([d], 0.1)
      }
    }
    return GPTTestWeights(tensors: w)
  }

  /// Seconds per step spent in nothing but the weight products (every matrix once over `batch`
  /// rows, sgemv at one row), the bound a step cannot beat; measured in the same run, so it sees the
  /// same machine load.
  static func gemmFloor(_ model: ConditionalGPT, batch: Int, repeats: Int = 8) -> Double {
    let c = model.config
    let input = FloatPointer.allocate(capacity: batch * c.feedForwardWidth)
    let output = FloatPointer.allocate(capacity: batch * max(c.vocabSize, c.feedForwardWidth))
    input.initialize(repeating: 0.01, count: batch * c.feedForwardWidth)
    defer {
      input.deallocate()
      output.deallocate()
    }
    let layers = model.blocks.flatMap { [$0.inProj, $0.outProj, $0.linear1, $0.linear2] } + [model.head]
    let clock = ContinuousClock()
    var best = Double.infinity
    for _ in 0..<repeats {
      let d = clock.measure { for l in layers { l.forward(input, rows: batch, into: output) } }
      best = min(best, Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
    }
    return best
  }

  @Test(.enabled(if: environment["CLIPGEN_GPT_BENCH"] != nil))
  func gpt2MediumDecodingSpeed() throws {
    let config = GPTConfig.gpt2Medium()
    let model = try ConditionalGPT(weights: Self.randomWeights(config), config: config)
    let batches = (Self.environment["CLIPGEN_GPT_BENCH_BATCHES"] ?? "1,8").split(separator: ",").compactMap { Int($0) }
    let tokens = min(Int(Self.environment["CLIPGEN_GPT_BENCH_TOKENS"] ?? "") ?? 256, config.blockSize)
    print("OpenBLAS core \(BLASInfo.coreName); \(BLASInfo.config)")
    for batch in batches {
      print(
        String(
          format: "gpt2_medium batch %d: weight GEMMs alone (the floor) %.1f ms/step", batch,
          Self.gemmFloor(model, batch: batch) * 1e3))
      let decoder = GPTDecoder(model: model, batch: batch)
      var r = TestRandom(seed: 7)
      let conditions = r.tensor([batch, config.conditionWidth])
      // Warm-up: a few steps (first touches of the cache and workspace pages).
      decoder.start(conditions: conditions)
      for _ in 0..<4 { decoder.step(tokens: [Int](repeating: 1, count: batch)) }

      let clock = ContinuousClock()
      var stepTimes: [Duration] = []
      let total = clock.measure {
        decoder.start(conditions: conditions)
        var next = [Int](repeating: 0, count: batch)
        for _ in 1..<tokens {
          // Greedy choice read in place (`withLogits`), so no step copies the logits.
          decoder.withLogits { l in
            for b in 0..<batch { next[b] = gptArgmax(l[(b * config.vocabSize)..<((b + 1) * config.vocabSize)]) }
          }
          let t0 = clock.now
          decoder.step(tokens: next)
          stepTimes.append(clock.now - t0)
        }
      }
      let seconds = Double(total.components.seconds) + Double(total.components.attoseconds) * 1e-18
      func ms(_ d: Duration) -> Double {
        (Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18) * 1e3
      }
      let early = stepTimes.prefix(16).map(ms).reduce(0, +) / Double(min(16, stepTimes.count))
      let late = stepTimes.suffix(16).map(ms).reduce(0, +) / Double(min(16, stepTimes.count))
      let sorted = stepTimes.map(ms).sorted()
      let median = sorted.isEmpty ? 0 : sorted[sorted.count / 2]
      print(
        String(
          format:
            "gpt2_medium batch %d: %d tokens/seq in %.2f s → %.1f tokens/s, %.1f ms/step (median %.1f, fastest %.1f; steps 1–16 %.1f ms, last 16 %.1f ms)",
          batch, tokens, seconds, Double(batch * tokens) / seconds, seconds * 1e3 / Double(tokens), median,
          sorted.first ?? 0, early, late))
    }
  }
}
