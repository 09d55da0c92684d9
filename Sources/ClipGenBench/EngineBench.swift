// The engine's benchmark, llama-bench style: sampling speed of the prior (tokens per second through
// the real generation path: KV-cached GPT, the sampler with HFAiLab's top-k/top-p, all candidates
// in one batch), seconds per VQGAN decode and per CLIP encode, seconds per image end to end, peak
// memory. Every number comes from `ClipGenModel.generate` or the model's own calls, so the bench
// measures what users run.
import ClipGenEngine
import Foundation

/// What to measure and how.
public struct EngineBenchOptions: Sendable {
  /// Candidates sampled together (one GEMM per weight for all of them).
  public var batch: Int = 8
  /// Also measure one image at a time (the memory-bound case).
  public var includeBatchOne = true
  /// HFAiLab/clip-gen's `predict.py` settings: temperature 1, top-k 500, top-p 0.95.
  public var sampling = SamplingSettings(temperature: 1, topK: 500, topP: 0.95)
  /// Timed repeats of each decode or encode; the fastest counts (the least disturbed by other load).
  public var repeats = 3
  public var seed: UInt64 = 0
  public var prompt = "a photo of a tower in front of a mountain"
  /// Decoding steps timed on the prior alone (no sampler, no image), per batch size; 0 skips.
  public var priorSteps = 32
  /// Whether to run whole generations (tokens/s through the sampler, seconds per image).
  public var includeGeneration = true
  /// Whether to time the VQGAN decode and the CLIP encodes.
  public var includeDecoders = true
  /// With f16 prior weights from an f32 file: decode a few positions with both and report how far
  /// the logits move (`checks`).
  public var checkHalfPrecision = true

  public init() {}
}

/// One benchmark run's results, ready for JSON.
public struct EngineBenchReport: Sendable {
  /// Tokens per second summed over the batch, keyed `batch_N`.
  public var tokensPerSecond: [String: Double] = [:]
  /// Seconds: `vqgan_decode`, `clip_text`, `clip_image`, `image_end_to_end_batch_N`, `load`.
  public var seconds: [String: Double] = [:]
  public var peakResidentMB: Double = 0
  public var config: [String: String] = [:]
  /// Numerical checks: `f16_logits_max_rel_diff` (max |Δlogit| / max |logit| of f16 against f32
  /// weights), `f16_argmax_agreement` (fraction of positions whose most likely token agrees).
  public var checks: [String: Double] = [:]

  /// `{"tokens_per_s": …, "seconds": …, "peak_rss_mb": …, "config": …}`.
  public func json() throws -> Data {
    let object: [String: Any] = [
      "tokens_per_s": tokensPerSecond, "seconds": seconds, "peak_rss_mb": peakResidentMB, "config": config,
      "checks": checks,
    ]
    return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
  }

  /// A table for the terminal.
  public var table: String {
    var lines = ["| measurement | value |", "|---|---:|"]
    for (k, v) in tokensPerSecond.sorted(by: { $0.key < $1.key }) {
      lines.append("| tokens/s, \(k.replacingOccurrences(of: "_", with: " ")) | \(String(format: "%.1f", v)) |")
    }
    for (k, v) in seconds.sorted(by: { $0.key < $1.key }) {
      let value = v >= 1 ? String(format: "%.2f s", v) : String(format: "%.2f ms", v * 1e3)
      lines.append("| \(k.replacingOccurrences(of: "_", with: " ")) | \(value) |")
    }
    lines.append("| peak memory (RSS) | \(String(format: "%.0f MB", peakResidentMB)) |")
    return lines.joined(separator: "\n")
  }
}

public enum EngineBench {
  /// Runs the benchmark on a loaded model. `log` receives one line per finished measurement.
  public static func run(
    model: ClipGenModel, options o: EngineBenchOptions, log: (String) -> Void = { _ in }
  ) throws -> EngineBenchReport {
    var report = EngineBenchReport()
    let vocab = model.gpt.config.vocabSize
    var sampling = o.sampling
    if let k = sampling.topK { sampling.topK = min(k, vocab) }

    // Warm-up: fault in the mapped weights and the allocator's pages before anything is timed.
    if o.priorSteps > 0 || o.includeGeneration {
      let warm = GPTDecoder(model: model.gpt, batch: o.batch)
      warm.start(conditions: Tensor(zeros: [o.batch, model.gpt.config.conditionWidth]))
      warm.step(tokens: [Int](repeating: 0, count: o.batch))
    }

    let batches = o.includeBatchOne && o.batch != 1 ? [o.batch, 1] : [o.batch]
    // The prior alone: milliseconds per decoding step over the middle of the sequence.
    if o.priorSteps > 0 {
      for batch in batches {
        let (ms, cpu) = priorStepMilliseconds(model.gpt, batch: batch, steps: o.priorSteps)
        report.seconds["prior_step_batch_\(batch)"] = ms / 1e3
        log(
          String(
            format: "prior alone, batch %d: %.1f ms per step (%.1f tokens/s; %.1f ms of CPU time per step)", batch,
            ms, Double(batch) * 1e3 / ms, cpu))
      }
    }

    // Sampling speed and end-to-end time per image, through the one generation function.
    for batch in o.includeGeneration ? batches : [] {
      let request = GenerationRequest(prompt: .text(o.prompt), count: batch, seed: o.seed, sampling: sampling)
      let result = try model.generate(request)
      report.tokensPerSecond["batch_\(batch)"] = result.tokensPerSecond
      report.seconds["image_end_to_end_batch_\(batch)"] = result.totalSeconds / Double(batch)
      report.seconds["sampling_batch_\(batch)"] = result.samplingSeconds
      log(
        String(
          format: "batch %d: %.1f tokens/s (%.2f s sampling), %.2f s per image end to end", batch,
          result.tokensPerSecond, result.samplingSeconds, result.totalSeconds / Double(batch)))
    }

    var rng = SeededGenerator(seed: o.seed)
    if o.includeDecoders {
      try timeDecoders(model, o, &report, &rng, log)
    }

    // Peak memory of the measurements above (the check below maps the f32 weights as well).
    report.peakResidentMB = peakResidentMegabytes()
    if o.checkHalfPrecision, model.gpt.weightPrecision == .f16, let check = try halfPrecisionCheck(model) {
      report.checks["f16_logits_max_rel_diff"] = check.maxRelative
      report.checks["f16_argmax_agreement"] = check.argmaxAgreement
      log(
        String(
          format: "f16 prior weights vs f32: max |Δlogit| / max |logit| = %.2e, argmax agrees at %.0f%% of positions",
          check.maxRelative, check.argmaxAgreement * 100))
    }

    let g = model.gpt.config
    report.config = [
      "model": model.directory.path,
      "batch": "\(o.batch)",
      "gpt": "\(g.layers) layers, d \(g.embeddingWidth), \(g.heads) heads, vocab \(g.vocabSize), block \(g.blockSize)",
      "gpt_weights": model.gpt.weightPrecision.rawValue,
      "gpt_weights_mapped": "\(model.gpt.weightsAreMapped)",
      "vqgan":
        "ch \(model.vqgan.config.ch), ch_mult \(model.vqgan.config.chMult), \(model.gridHeight)×\(model.gridWidth) grid",
      "sampling":
        "temperature \(sampling.temperature), top-k \(sampling.topK.map(String.init) ?? "none"), top-p \(sampling.topP)",
      "kernels": CPUKernels.name,
      "openblas_core": BLASInfo.coreName,
      "threads": "\(ProcessInfo.processInfo.activeProcessorCount)",
      "cpu": cpuModelName(),
    ]
    return report
  }

  /// One VQGAN decode of a full grid, one CLIP text and one image encode, each the fastest of
  /// `repeats` after a warm-up call.
  static func timeDecoders(
    _ model: ClipGenModel, _ o: EngineBenchOptions, _ report: inout EngineBenchReport, _ rng: inout SeededGenerator,
    _ log: (String) -> Void
  ) throws {
    let vocab = model.gpt.config.vocabSize
    let grid = (0..<model.tokensPerImage).map { _ in Int(rng.next() % UInt64(vocab)) }
    _ = try model.vqgan.decode(indices: grid, gridHeight: model.gridHeight, gridWidth: model.gridWidth)
    report.seconds["vqgan_decode"] = try fastest(o.repeats) {
      _ = try model.vqgan.decode(indices: grid, gridHeight: model.gridHeight, gridWidth: model.gridWidth)
    }
    log(
      String(
        format: "VQGAN decode %d×%d grid: %.2f ms", model.gridHeight, model.gridWidth,
        report.seconds["vqgan_decode"]! * 1e3))

    // CLIP: one prompt, one image.
    let ids = model.tokenizer.tokenize(o.prompt, contextLength: model.contextLength).ids
    report.seconds["clip_text"] = try fastest(o.repeats) { _ = model.clip.encodeText([ids]) }
    let side = model.imagePreprocessor.size
    let pixels = Tensor(
      shape: [1, 3, side, side], scalars: (0..<(3 * side * side)).map { _ in Float(rng.nextUnit()) - 0.5 })
    report.seconds["clip_image"] = try fastest(o.repeats) { _ = model.clip.encodeImage(pixels) }
    log(
      String(
        format: "CLIP text %.2f ms, image %.2f ms", report.seconds["clip_text"]! * 1e3,
        report.seconds["clip_image"]! * 1e3))
  }

  /// Milliseconds per `GPTDecoder.step` at `batch`, timed over `steps` steps after 16 untimed ones
  /// (a quick figure: attention grows with the position, so a whole generation runs a little slower).
  /// Also returns the process's CPU time per step (all threads), which other processes' load
  /// disturbs less than the wall clock.
  static func priorStepMilliseconds(_ gpt: ConditionalGPT, batch: Int, steps: Int) -> (wall: Double, cpu: Double) {
    let c = gpt.config
    let decoder = GPTDecoder(model: gpt, batch: batch)
    decoder.start(conditions: Tensor(zeros: [batch, c.conditionWidth]))
    let tokens = [Int](repeating: 1, count: batch)
    let skip = max(0, min(16, c.blockSize - 1 - steps))
    for _ in 0..<skip { decoder.step(tokens: tokens) }
    let n = min(steps, decoder.remainingSteps)
    guard n > 0 else { return (0, 0) }
    let clock = ContinuousClock()
    let cpu0 = processCPUSeconds()
    let d = clock.measure { for _ in 0..<n { decoder.step(tokens: tokens) } }
    let cpu = (processCPUSeconds() - cpu0) * 1e3 / Double(n)
    return ((Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18) * 1e3 / Double(n), cpu)
  }

  /// CPU time of this process (all threads) so far, in seconds.
  static func processCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
  }

  /// Decodes `positions` positions of two sequences with the loaded f16 prior and with the same
  /// file's f32 weights (mapped, and an f32 cache), feeding both the f32 model's greedy tokens.
  /// Nil when the file does not store f32 (nothing to compare against).
  static func halfPrecisionCheck(_ model: ClipGenModel, positions: Int = 12) throws -> (
    maxRelative: Double, argmaxAgreement: Double
  )? {
    let file = try SafeTensorsFile(url: model.directory.appendingPathComponent(model.manifest.gpt.weights))
    guard file.entries["head.weight"]?.dtype == .f32 else { return nil }
    let reference = try ConditionalGPT(weights: file, config: model.gpt.config, precision: .f32)
    let c = model.gpt.config
    var rng = SeededGenerator(seed: 5)
    let conditions = Tensor(
      shape: [2, c.conditionWidth], scalars: (0..<(2 * c.conditionWidth)).map { _ in Float(rng.nextUnit()) - 0.5 })
    let half = GPTDecoder(model: model.gpt, batch: 2)
    let full = GPTDecoder(model: reference, batch: 2)
    var a = half.start(conditions: conditions)
    var b = full.start(conditions: conditions)
    var worst = 0.0
    var agree = 0
    var total = 0
    for step in 0..<min(positions, c.blockSize) {
      let scale = Double(max(b.maxAbs, 1e-12))
      worst = max(worst, Double(a.maxAbsDifference(b)) / scale)
      var next = [Int]()
      for r in 0..<2 {
        let rowA = a.scalars[(r * c.vocabSize)..<((r + 1) * c.vocabSize)]
        let rowB = b.scalars[(r * c.vocabSize)..<((r + 1) * c.vocabSize)]
        let best = rowB.indices.max { rowB[$0] < rowB[$1] }!
        if rowA.indices.max(by: { rowA[$0] < rowA[$1] })! == best { agree += 1 }
        total += 1
        next.append(best - rowB.startIndex)
      }
      if step + 1 < min(positions, c.blockSize) {
        a = half.step(tokens: next)
        b = full.step(tokens: next)
      }
    }
    return (worst, Double(agree) / Double(total))
  }

  /// The fastest of `n` runs of `body`, in seconds.
  static func fastest(_ n: Int, _ body: () throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    var best = Double.infinity
    for _ in 0..<max(1, n) {
      let d = try clock.measure(body)
      best = min(best, Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
    }
    return best
  }

  /// Peak resident set size of this process so far.
  public static func peakResidentMegabytes() -> Double {
    var usage = rusage()
    #if os(Linux)
      getrusage(RUSAGE_SELF.rawValue, &usage)
    #else
      getrusage(RUSAGE_SELF, &usage)
    #endif
    return Double(usage.ru_maxrss) / 1024  // kilobytes on Linux
  }

  /// `model name` from /proc/cpuinfo ("unknown" elsewhere).
  public static func cpuModelName() -> String {
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
      let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
      let colon = line.firstIndex(of: ":")
    else { return "unknown" }
    return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
  }
}
