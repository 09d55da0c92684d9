// `clipgen bench`: the engine alone, llama-bench style (tokens/s, seconds per VQGAN decode and CLIP
// encode, seconds per image, peak memory). `make bench` adds the PyTorch reference on the same
// weights.
import ArgumentParser
import ClipGenBench
import ClipGenEngine
import Foundation

struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Measure the engine's speed: sampling tokens/s, VQGAN decode, CLIP encode, peak memory.",
    discussion: """
      Presets use random weights at fixed shapes (written once to --cache and reused): \
      gpt2-medium is the paper's scale (GPT 24 layers × 1024, VQGAN f16-16384, CLIP ViT-B/32); \
      builtin is the built-in model (samples/model when installed, else the tiny test shapes). \
      --model benchmarks an existing model directory instead. Sampling uses HFAiLab's settings \
      (temperature 1, top-k 500, top-p 0.95).
      """)

  @Option(help: "Shapes to benchmark: builtin or gpt2-medium.")
  var preset: String = "builtin"

  @Option(help: "Benchmark this model directory (holds model.json) instead of a preset.")
  var model: String?

  @Option(help: "Candidates sampled together.")
  var batch: Int = 8

  @Option(help: "Write the results as JSON to this file.")
  var json: String?

  @Option(help: "Where preset models of random weights are kept.")
  var cache: String = "runs/bench/models"

  @Option(help: "Prior weights in half precision (products in single precision): f16, f32, or file (as stored).")
  var weights: PriorWeights = .f16

  @Option(help: "Timed repeats of each decode and encode (the fastest counts).")
  var repeats: Int = 3

  @Flag(help: "Skip the batch-1 measurement.")
  var noBatchOne = false

  @Option(help: "Decoding steps of the prior alone to time per batch size (0: skip).")
  var priorSteps: Int = 32

  @Option(help: "Run only one part: prior (decoding steps alone), generation, or decoders (VQGAN and CLIP).")
  var only: String?

  func validate() throws {
    if BenchPreset(rawValue: preset) == nil {
      throw ValidationError("--preset must be one of: \(BenchPreset.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    if batch < 1 { throw ValidationError("--batch must be at least 1") }
    if let only, !["prior", "generation", "decoders"].contains(only) {
      throw ValidationError("--only must be prior, generation or decoders")
    }
  }

  func run() throws {
    let directory: URL
    if let model {
      directory = URL(fileURLWithPath: model)
    } else if preset == BenchPreset.builtin.rawValue, let installed = defaultModelDirectory() {
      directory = installed
    } else {
      let p = BenchPreset(rawValue: preset)!
      directory = URL(fileURLWithPath: cache).appendingPathComponent(p.rawValue)
      log("preparing \(p.rawValue) random weights in \(directory.path) …")
      do { try RandomModelWriter.ensure(p.shapes, at: directory) } catch { throw CLIError("\(error)") }
    }
    let precision = weights.precision
    let clock = ContinuousClock()
    var loaded: ClipGenModel?
    let loadTime = try clock.measure {
      do { loaded = try ClipGenModel(directory: directory, gptPrecision: precision) } catch {
        throw CLIError("cannot load the model: \(error)")
      }
    }
    var options = EngineBenchOptions()
    options.batch = batch
    options.includeBatchOne = !noBatchOne
    options.repeats = repeats
    options.priorSteps = only == nil || only == "prior" ? priorSteps : 0
    options.includeGeneration = only == nil || only == "generation"
    options.includeDecoders = only == nil || only == "decoders"
    log("model \(directory.path), kernels \(CPUKernels.name), OpenBLAS \(BLASInfo.coreName)")
    var report = try EngineBench.run(model: loaded!, options: options, log: log)
    report.seconds["load"] = Double(loadTime.components.seconds) + Double(loadTime.components.attoseconds) * 1e-18
    report.config["preset"] = model == nil ? preset : "model"
    print(report.table)
    if let json {
      let url = URL(fileURLWithPath: json)
      try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
      do { try writeAtomically(try report.json(), to: url) } catch { throw CLIError("\(error)") }
    }
  }

  private func log(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
  }
}
