// The sampling options `generate` and `interpolate` share, and the progress line they show.
import ArgumentParser
import ClipGenEngine
import Foundation

struct SamplingOptions: ParsableArguments {
  @Option(
    help: """
      The prior's weights while sampling: f16 (half the bytes to stream per token, the default), \
      f32 (PyTorch's values exactly) or file (as stored).
      """)
  var weights: PriorWeights = .f16

  @Option(help: "Sampling temperature (0: greedy; default: the model's, else 1).")
  var temperature: Float?

  @Option(help: "Keep only the k most likely tokens at each step (0: all; default: the model's, else all).")
  var topK: Int?

  @Option(
    help: "Nucleus sampling: keep the most likely tokens up to this total probability (default: the model's, else 1).")
  var topP: Float?

  @Option(
    help: """
      Classifier-free guidance scale (1: off; needs a model with an unconditional embedding; \
      default: the model's, else 1).
      """)
  var guidance: Float?

  /// The sampling settings: every one left unset comes from `base` (a re-rolled image's record),
  /// else the model's own defaults (model.json), else the plain sampler; with a negative prompt,
  /// guidance 3 where that says 1. Also the names of the settings taken from the model (for the
  /// manifest; `candidates`: the --candidates given, if any).
  func settings(
    defaults: SamplingDefaults, negative: Bool, candidates: Int?, base: SamplingSettings? = nil
  ) -> (SamplingSettings, fromModel: [String]) {
    let fallback = base ?? defaults.sampling
    let sampling = SamplingSettings(
      temperature: temperature ?? fallback.temperature, topK: (topK ?? fallback.topK).flatMap { $0 > 0 ? $0 : nil },
      topP: topP ?? fallback.topP,
      guidanceScale: guidance ?? (negative && fallback.guidanceScale == 1 ? 3 : fallback.guidanceScale))
    let fromModel: [(String, Bool)] = [
      ("temperature", temperature == nil && defaults.temperature != nil),
      ("top_k", topK == nil && defaults.topK != nil),
      ("top_p", topP == nil && defaults.topP != nil), ("guidance_scale", guidance == nil && defaults.guidance != nil),
      ("candidates", candidates == nil && defaults.candidates != nil),
    ]
    return (sampling, base != nil ? [] : fromModel.filter(\.1).map(\.0))
  }
}

/// Runs the generation with a progress line on stderr (when it is a terminal).
func generateWithProgress(
  _ request: GenerationRequest, with loaded: ClipGenModel, quiet: Bool, label: String = ""
) throws -> GenerationResult {
  let progress = ProgressLine(enabled: !quiet && isatty(STDERR_FILENO) != 0)
  defer { progress.finish() }
  do {
    return try loaded.generate(request) { event in
      switch event {
      case .conditioned(let truncated):
        if truncated {
          FileHandle.standardError.write(
            Data("warning: the prompt is longer than \(loaded.contextLength) tokens and was truncated\n".utf8))
        }
      case .sampled(let done, let total, _, let rate):
        progress.update(label + "sampling \(done)/\(total) tokens  \(String(format: "%.0f", rate)) tok/s")
      case .decoded(let i, let total, _):
        progress.update(label + "decoding \(i + 1)/\(total)")
      case .scored: break
      }
      return true
    }
  } catch {
    throw CLIError("\(error)")
  }
}
