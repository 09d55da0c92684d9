// `clipgen interpolate A B --steps K`: one seed, the prompt's embedding moved from A to B along
// the sphere; each frame a PNG with its record, plus a labelled strip of them all.
import ArgumentParser
import ClipGenEngine
import ClipGenSheets
import Foundation

struct Interpolate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Images on the way from one prompt to another, with one seed.",
    discussion: """
      Embeds both prompts with CLIP and samples one image at each of --steps evenly spaced points of \
      the spherical interpolation between the two embeddings (the first is prompt A, the last prompt \
      B), every one with the same seed and settings. Writes frame-NN.png (each with its record), \
      strip.png (the frames side by side, labelled) and manifest.json into --out.
      """)

  @Argument(help: "The prompt to start from.")
  var from: String

  @Argument(help: "The prompt to end at.")
  var to: String

  @Option(help: "Frames, both prompts included (2…64).")
  var steps: Int = 5

  @Option(help: "Model directory (holds model.json). Default: $CLIPGEN_MODEL, then ./samples/model.")
  var model: String?

  @Option(help: "Candidates per frame; CLIP keeps the one closest to the frame's embedding (default: the model's).")
  var candidates: Int?

  @Option(help: "Random seed, the same for every frame.")
  var seed: UInt64 = 0

  @OptionGroup(title: "Sampling")
  var sampling: SamplingOptions

  @Option(help: "Output directory.")
  var out: String = "out"

  @Flag(help: "No progress on stderr.")
  var quiet = false

  func validate() throws {
    if from.trimmingCharacters(in: .whitespaces).isEmpty || to.trimmingCharacters(in: .whitespaces).isEmpty {
      throw ValidationError("give two prompts: clipgen interpolate \"A\" \"B\"")
    }
    if !(2...64).contains(steps) { throw ValidationError("--steps must be between 2 and 64, got \(steps)") }
    if let c = candidates, c < 1 { throw ValidationError("--candidates must be at least 1") }
  }

  func run() throws {
    guard let modelURL = model.map({ URL(fileURLWithPath: $0) }) ?? defaultModelDirectory() else {
      throw CLIError("no model: pass --model DIR (a directory with model.json) or set CLIPGEN_MODEL")
    }
    let loaded: ClipGenModel
    do { loaded = try ClipGenModel(directory: modelURL, gptPrecision: sampling.weights.precision) } catch {
      throw CLIError("cannot load the model: \(error)")
    }
    let (settings, fromModel) = sampling.settings(defaults: loaded.defaults, negative: false, candidates: candidates)
    let path: (prompts: [Prompt], truncated: Bool)
    do { path = try loaded.interpolation(from: .text(from), to: .text(to), steps: steps) } catch {
      throw CLIError("\(error)")
    }
    if path.truncated && !quiet {
      FileHandle.standardError.write(
        Data("warning: a prompt is longer than \(loaded.contextLength) tokens and was truncated\n".utf8))
    }
    let outURL = URL(fileURLWithPath: out)
    do { try FileManager.default.createDirectory(at: outURL, withIntermediateDirectories: true) } catch {
      throw CLIError("\(outURL.path): cannot create the output directory: \(error.localizedDescription)")
    }
    let perFrame = candidates ?? loaded.defaults.candidates(forCount: 1)
    var frames: [GeneratedImage] = []
    var images: [ManifestImage] = []
    var seconds = (sampling: 0.0, decoding: 0.0, total: 0.0, tokens: 0.0)
    for (i, prompt) in path.prompts.enumerated() {
      let t = Float(i) / Float(steps - 1)
      let request = GenerationRequest(prompt: prompt, count: 1, candidates: perFrame, seed: seed, sampling: settings)
      let result = try generateWithProgress(
        request, with: loaded, quiet: quiet, label: "frame \(i + 1)/\(steps): ")
      let image = result.images[0]
      var record = GenerationParameters(
        prompt: from, seed: seed, sampling: settings, count: 1, candidates: perFrame, model: loaded.name)
      record.interpolation = .init(to: to, t: (t * 1e4).rounded() / 1e4)
      let parameters = record.forImage(candidate: image.candidate, clipScore: image.clipScore, tokens: image.tokens)
      let name = String(format: "frame-%02d.png", i)
      do {
        let text = try parameters.pngText(
          width: image.image.width, height: image.image.height, steps: image.tokens.count)
        try image.image.writePNG(to: outURL.appendingPathComponent(name), text: text)
      } catch { throw CLIError("\(error)") }
      frames.append(image)
      images.append(ManifestImage(file: name, tokens: image.tokens, parameters: parameters))
      seconds.sampling += result.samplingSeconds
      seconds.decoding += result.decodingSeconds
      seconds.total += result.totalSeconds
      seconds.tokens += Double(image.tokens.count * perFrame)
    }
    try writeStrip(frames, settings: settings, to: outURL.appendingPathComponent("strip.png"))
    let manifest = Manifest(
      model: loaded.name, modelDirectory: modelURL.path, prompt: "\(from) -> \(to)", promptTruncated: path.truncated,
      seed: seed, count: steps, candidates: perFrame, sampling: settings, fromModelDefaults: fromModel,
      priorWeights: loaded.gpt.weightPrecision.rawValue, images: images,
      timing: .init(
        samplingSeconds: seconds.sampling, decodingSeconds: seconds.decoding, totalSeconds: seconds.total,
        tokensPerSecond: seconds.tokens / max(seconds.sampling, 1e-9)))
    try manifest.write(to: outURL, quiet: quiet, what: "\(steps) frames, strip.png", seconds: seconds.total)
  }

  /// The frames side by side, each labelled with its t (the ends with their prompts), the
  /// prompts and seed in the title; the settings in its `parameters` chunk.
  func writeStrip(_ frames: [GeneratedImage], settings: SamplingSettings, to url: URL) throws {
    let labels = frames.indices.map { i -> String in
      let t = String(format: "T=%.2f", Double(i) / Double(frames.count - 1))
      return i == 0 ? "\(t) A" : i == frames.count - 1 ? "\(t) B" : t
    }
    let sheet = LabelledGrid(
      title: "A: \"\(from)\"  B: \"\(to)\"  SEED \(seed)", labels: labels, images: frames.map(\.image)
    ).render()
    let text =
      "interpolation from \"\(from)\" to \"\(to)\" in \(frames.count) steps; seed \(seed); temperature "
      + "\(settings.temperature), top-k \(settings.topK.map(String.init) ?? "all"), top-p \(settings.topP), "
      + "guidance \(settings.guidanceScale)"
    do { try sheet.writePNG(to: url, text: [(key: "parameters", value: text)]) } catch { throw CLIError("\(error)") }
  }
}
