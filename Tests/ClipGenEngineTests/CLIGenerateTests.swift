// `clipgen generate` end to end on the tiny fixture model: PNGs with their parameters, a manifest,
// byte-identical output for the same seed, and clear errors for bad input.
import Foundation
import Testing

@testable import ClipGenEngine

/// The built `clipgen` executable, beside the test bundle.
func clipgenExecutable() throws -> URL {
  let fm = FileManager.default
  var candidates: [URL] = []
  var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
  for _ in 0..<4 {
    candidates.append(dir.appendingPathComponent("clipgen"))
    dir = dir.deletingLastPathComponent()
  }
  candidates.append(repositoryRoot.appendingPathComponent(".build/debug/clipgen"))
  guard let found = candidates.first(where: { fm.isExecutableFile(atPath: $0.path) }) else {
    throw CLIGenerateTests.Failure(
      description: "clipgen executable not found (build it: swift build); looked in \(candidates.map(\.path))")
  }
  return found
}

/// Runs a command, returning exit status, stdout and stderr.
func run(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
  let p = Process()
  p.executableURL = executable
  p.arguments = arguments
  let out = Pipe()
  let err = Pipe()
  p.standardOutput = out
  p.standardError = err
  try p.run()
  let o = out.fileHandleForReading.readDataToEndOfFile()
  let e = err.fileHandleForReading.readDataToEndOfFile()
  p.waitUntilExit()
  return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

@Suite(.serialized) struct CLIGenerateTests {
  struct Failure: Error, CustomStringConvertible { let description: String }

  let model = fixturesDirectory.appendingPathComponent("tiny_model")

  @Test func generateWritesPNGsAndManifestDeterministically() throws {
    let exe = try clipgenExecutable()
    let dir = try temporaryDirectory()
    func generate(_ out: String, seed: Int) throws -> URL {
      let o = dir.appendingPathComponent(out)
      let r = try run(
        exe,
        [
          "generate", "a red circle on the left", "--model", model.path, "--n", "2", "--candidates", "3",
          "--seed", "\(seed)", "--temperature", "0.9", "--top-k", "32", "--out", o.path, "--quiet",
        ])
      #expect(r.status == 0, "clipgen failed: \(r.stderr)")
      return o
    }
    let a = try generate("a", seed: 11)
    let b = try generate("b", seed: 11)
    let c = try generate("c", seed: 12)
    for name in ["image-00.png", "image-01.png"] {
      let da = try Data(contentsOf: a.appendingPathComponent(name))
      let db = try Data(contentsOf: b.appendingPathComponent(name))
      #expect(da == db, "\(name) differs between two runs with the same seed")
      #expect(da != (try Data(contentsOf: c.appendingPathComponent(name))), "\(name) is the same for seeds 11 and 12")
      let image = try RGBImage(pngData: da)
      #expect(image.width == 64 && image.height == 64)
      let text = try RGBImage.readPNGText(da)
      let params = try #require(text.first { $0.0 == "clipgen" }?.1)
      let json = try #require(try JSONSerialization.jsonObject(with: Data(params.utf8)) as? [String: Any])
      #expect(json["seed"] as? Int == 11)
      #expect(json["prompt"] as? String == "a red circle on the left")
      #expect((json["temperature"] as? Double).map { abs($0 - 0.9) < 1e-6 } == true)
      #expect(json["top_k"] as? Int == 32)
    }
    let manifestData = try Data(contentsOf: a.appendingPathComponent("manifest.json"))
    let manifest = try #require(try JSONSerialization.jsonObject(with: manifestData) as? [String: Any])
    let images = try #require(manifest["images"] as? [[String: Any]])
    #expect(images.count == 2)
    #expect(images.map { $0["file"] as? String } == ["image-00.png", "image-01.png"])
    for entry in images {
      #expect((entry["tokens"] as? [Int])?.count == 256)
      #expect(entry["clip_score"] is Double)
    }
    // The fixture stores f32 weights; sampling holds the prior in f16 unless asked otherwise.
    #expect(manifest["prior_weights"] as? String == "f16")
    let exact = dir.appendingPathComponent("exact")
    let r = try run(
      exe, ["generate", "x", "--model", model.path, "--weights", "f32", "--out", exact.path, "--quiet"])
    #expect(r.status == 0, "\(r.stderr)")
    let exactManifest = try JSONSerialization.jsonObject(
      with: Data(contentsOf: exact.appendingPathComponent("manifest.json")))
    #expect((exactManifest as? [String: Any])?["prior_weights"] as? String == "f32")
    // Reranked: the kept images are the two best of three, best first.
    let scores = images.compactMap { $0["clip_score"] as? Double }
    #expect(scores == scores.sorted(by: >))
  }

  /// --negative: recorded in the PNG's parameters and the manifest; with guidance forced to 1 it
  /// is refused with the reason.
  @Test func negativePromptIsRecordedAndNeedsGuidance() throws {
    let exe = try clipgenExecutable()
    let dir = try temporaryDirectory()
    let out = dir.appendingPathComponent("neg")
    let r = try run(
      exe,
      ["generate", "a red circle", "--negative", "a blue square", "--model", model.path, "--out", out.path, "--quiet"])
    #expect(r.status == 0, "\(r.stderr)")
    let png = try Data(contentsOf: out.appendingPathComponent("image-00.png"))
    let params = try #require(try RGBImage.readPNGText(png).first { $0.0 == "clipgen" }?.1)
    let json = try #require(try JSONSerialization.jsonObject(with: Data(params.utf8)) as? [String: Any])
    #expect(json["negative_prompt"] as? String == "a blue square")
    #expect((json["guidance_scale"] as? Double).map { $0 != 1 } == true)
    let manifest = try String(contentsOf: out.appendingPathComponent("manifest.json"), encoding: .utf8)
    #expect(
      manifest.contains("\"negative_prompt\" : \"a blue square\"")
        || manifest.contains("\"negative_prompt\":\"a blue square\""))
    // Other tools' form in `parameters`, and clipgen inspect reads it back.
    let a1111 = try #require(try RGBImage.readPNGText(png).first { $0.0 == "parameters" }?.1)
    #expect(A1111Parameters.parse(a1111).negativePrompt == "a blue square")
    let shown = try run(exe, ["inspect", out.appendingPathComponent("image-00.png").path])
    #expect(shown.status == 0, "\(shown.stderr)")
    #expect(shown.stdout.contains("negative      a blue square") && shown.stdout.contains("Sampler       clipgen"))
    #expect(shown.stdout.contains("\"negative_prompt\":\"a blue square\""))
    let unguided = try run(
      exe,
      [
        "generate", "a red circle", "--negative", "blue", "--guidance", "1", "--model", model.path, "--out",
        dir.appendingPathComponent("o").path,
      ])
    #expect(unguided.status != 0)
    #expect(unguided.stderr.contains("guidance scale above 1"), "\(unguided.stderr)")
  }

  /// --from IMAGE.png --keep-rows R: the image's own seed and stream give the image back; a new
  /// seed keeps the rows and changes the rest; the record says how many tokens were kept.
  @Test func rerollFromAPNG() throws {
    let exe = try clipgenExecutable()
    let dir = try temporaryDirectory()
    func tokens(_ out: URL, _ i: Int = 0) throws -> [Int] {
      let m = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("manifest.json")))
      return try #require(((m as? [String: Any])?["images"] as? [[String: Any]])?[i]["tokens"] as? [Int])
    }
    let first = dir.appendingPathComponent("first")
    var r = try run(
      exe,
      [
        "generate", "a red circle", "--model", model.path, "--n", "2", "--candidates", "3", "--seed", "5", "--out",
        first.path, "--quiet",
      ])
    #expect(r.status == 0, "\(r.stderr)")
    let source = first.appendingPathComponent("image-01.png")
    let same = dir.appendingPathComponent("same")
    r = try run(
      exe, ["generate", "--from", source.path, "--keep-rows", "4", "--model", model.path, "--out", same.path])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(try tokens(same) == tokens(first, 1))
    let new = dir.appendingPathComponent("new")
    r = try run(
      exe,
      ["generate", "--from", source.path, "--keep-rows", "4", "--seed", "99", "--model", model.path, "--out", new.path])
    #expect(r.status == 0, "\(r.stderr)")
    let kept = try tokens(new)
    let original = try tokens(first, 1)
    #expect(Array(kept.prefix(64)) == Array(original.prefix(64)) && kept != original)
    let png = try Data(contentsOf: new.appendingPathComponent("image-00.png"))
    let json = try #require(try RGBImage.readPNGText(png).first { $0.0 == "clipgen" }?.1)
    let record = try JSONDecoder().decode(GenerationParameters.self, from: Data(json.utf8))
    #expect(record.keptTokens == 64 && record.tokens == kept && record.prompt == "a red circle")
    let tooMany = try run(
      exe, ["generate", "--from", source.path, "--keep-rows", "99", "--model", model.path, "--out", new.path])
    #expect(tooMany.status != 0 && tooMany.stderr.contains("token rows"), "\(tooMany.stderr)")
  }

  @Test func badInputGivesClearErrors() throws {
    let exe = try clipgenExecutable()
    let dir = try temporaryDirectory()
    let missing = try run(exe, ["generate", "x", "--model", dir.path, "--out", dir.appendingPathComponent("o").path])
    #expect(missing.status != 0)
    #expect(missing.stderr.contains("model.json"), "stderr: \(missing.stderr)")
    let junk = dir.appendingPathComponent("junk.png")
    try Data("not an image".utf8).write(to: junk)
    let badImage = try run(
      exe, ["generate", "--image", junk.path, "--model", model.path, "--out", dir.appendingPathComponent("o").path])
    #expect(badImage.status != 0)
    #expect(badImage.stderr.contains("junk.png"), "stderr: \(badImage.stderr)")
    let noPrompt = try run(exe, ["generate", "--model", model.path])
    #expect(noPrompt.status != 0)
    #expect(noPrompt.stderr.contains("PROMPT"), "stderr: \(noPrompt.stderr)")
  }
}
