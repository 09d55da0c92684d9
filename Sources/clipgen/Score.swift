// `clipgen score`: how well images match their prompts (CLIP score), and how far two folders of
// images are apart (Fréchet distance in the model's CLIP image-feature space) — to evaluate a
// model one trained or converted.
import ArgumentParser
import ClipGenBench
import ClipGenEngine
import Foundation

struct Score: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "CLIP score of images against their prompts, or the Fréchet distance between two folders.",
    discussion: """
      clipgen score --prompts FILE IMAGE...   one prompt per line of FILE, for the images in order \
      (a single line serves every image); prints each cosine similarity and the mean.
      clipgen score --fd DIR_A DIR_B          the Fréchet distance between the PNG and JPEG images of two \
      folders, in the model's normalised CLIP image-embedding space.
      """)

  @Option(help: "Model directory (with model.json). Default: samples/model or CLIPGEN_MODEL.")
  var model: String?

  @Option(help: "A text file with one prompt per line (one line: the same prompt for every image).")
  var prompts: String?

  @Flag(help: "Print the Fréchet distance between the two folders given as arguments.")
  var fd = false

  @Argument(help: "Images (with --prompts), or two folders (with --fd).")
  var paths: [String] = []

  func validate() throws {
    if fd == (prompts != nil) { throw ValidationError("give either --prompts FILE IMAGE... or --fd DIR_A DIR_B") }
    if fd && paths.count != 2 { throw ValidationError("--fd takes two folders, got \(paths.count) paths") }
    if !fd && paths.isEmpty { throw ValidationError("--prompts needs at least one image") }
  }

  func run() throws {
    guard let modelURL = model.map({ URL(fileURLWithPath: $0) }) ?? defaultModelDirectory() else {
      throw CLIError("no model: pass --model DIR (a directory with model.json) or set CLIPGEN_MODEL")
    }
    let loaded: ClipGenModel
    do { loaded = try ClipGenModel(directory: modelURL) } catch { throw CLIError("cannot load the model: \(error)") }
    if fd {
      let a = try embeddings(ofFolder: paths[0], loaded)
      let b = try embeddings(ofFolder: paths[1], loaded)
      do {
        let distance = try FrechetDistance.between(a, b)
        print(
          String(format: "%.6f", distance) + "  Fréchet distance, CLIP image features (\(a.count) vs \(b.count) images)"
        )
      } catch { throw CLIError("\(error)") }
      return
    }
    let text: String
    do { text = try String(contentsOfFile: prompts!, encoding: .utf8) } catch {
      throw CLIError("\(prompts!): cannot read it (\(error.localizedDescription))")
    }
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
      .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
    guard lines.count == 1 || lines.count == paths.count else {
      throw CLIError("\(prompts!): \(lines.count) prompts for \(paths.count) images (give one, or one per image)")
    }
    var total: Float = 0
    var targets: [String: [Float]] = [:]  // each distinct prompt embedded once
    for (i, path) in paths.enumerated() {
      let prompt = lines.count == 1 ? lines[0] : lines[i]
      let image = try load(path)
      let target = try targets[prompt] ?? loaded.embed(.text(prompt)).embedding
      targets[prompt] = target
      let score = try loaded.clipScores([image], target: target)[0]
      total += score
      print(String(format: "%.4f", score) + "  \(path)  \(prompt)")
    }
    print(String(format: "%.4f", total / Float(paths.count)) + "  mean of \(paths.count)")
  }

  func load(_ path: String) throws -> RGBImage {
    do { return try RGBImage.load(contentsOf: URL(fileURLWithPath: path)) } catch { throw CLIError("\(error)") }
  }

  func embeddings(ofFolder path: String, _ model: ClipGenModel) throws -> [[Float]] {
    let dir = URL(fileURLWithPath: path)
    let names: [String]
    do { names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() } catch {
      throw CLIError("\(dir.path): cannot list it (\(error.localizedDescription))")
    }
    let images = names.filter { ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased()) }
    guard images.count >= 2 else {
      throw CLIError("\(dir.path): needs at least two PNG or JPEG images, found \(images.count)")
    }
    var out: [[Float]] = []
    for chunk in stride(from: 0, to: images.count, by: 32) {
      let batch = try images[chunk..<min(images.count, chunk + 32)].map {
        try load(dir.appendingPathComponent($0).path)
      }
      out += model.imageEmbeddings(batch)
    }
    return out
  }
}
