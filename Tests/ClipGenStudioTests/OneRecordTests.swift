// One generation record: the CLI and the studio write the same PNG — pixels and `parameters`
// chunk, byte for byte — for the same prompt, image prompt, weight, seed and settings.
import ClipGenEngine
import Foundation
import Testing

@testable import ClipGenStudio

@Suite("One record", .serialized)
struct OneRecordTests {
  static let model = repositoryRoot.appendingPathComponent("Tests/ClipGenEngineTests/Fixtures/tiny_model")
  static let imagePrompt = repositoryRoot.appendingPathComponent("Tests/ClipGenEngineTests/Fixtures/alpha/rgba.png")

  static var clipgen: URL? {
    let here = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    return [here, here.deletingLastPathComponent()].map { $0.appendingPathComponent("clipgen") }
      .first { FileManager.default.isExecutableFile(atPath: $0.path) }
  }

  @Test(.enabled(if: clipgen != nil, "the clipgen binary is not built"))
  func cliAndStudioWriteByteIdenticalPNGs() throws {
    // The weights the studio executable and the CLI both default to.
    let engine = try ClipGenModel(directory: Self.model, gptPrecision: PriorWeights.f16.precision)
    let dir = temporaryDirectory("one-record")
    let store = try HistoryStore(directory: dir.appendingPathComponent("studio"))
    let themes = ThemeLibrary(directories: [repositoryRoot.appendingPathComponent("themes")])
    let env = StudioEnvironment(
      generator: engine, files: EngineImageFiles(), store: store, themes: themes,
      theme: try themes.theme(named: "default"), styles: StyleLibrary(styles: []), samplePrompts: [])
    let studio = Studio(driver: FakeDriver(), environment: env)
    let image = ImagePrompt(
      path: Self.imagePrompt.path, weight: 0.3, image: try EngineImageFiles().load(Self.imagePrompt))
    let settings = GenerationSettings(
      temperature: 0.9, topK: 16, topP: 0.95, guidanceScale: 1.5, seed: 7, count: 2, candidates: 3)
    studio.startGeneration(
      prompt: "a red circle", style: nil, imagePrompt: image, settings: settings, randomSeed: false)
    let deadline = Date().addingTimeInterval(60)
    while studio.isBusy && Date() < deadline { studio.step(timeoutMilliseconds: 10) }
    let row = try #require(try store.entries().first)
    #expect(row.generation.status == .done)

    let out = dir.appendingPathComponent("cli")
    let p = Process()
    p.executableURL = try #require(Self.clipgen)
    p.arguments = [
      "generate", "a red circle", "--image", Self.imagePrompt.path, "--image-weight", "0.3", "--model",
      Self.model.path, "--temperature", "0.9", "--top-k", "16", "--top-p", "0.95", "--guidance", "1.5", "--seed", "7",
      "--n", "2", "--candidates", "3", "--out", out.path, "--quiet",
    ]
    // The same OpenBLAS kernels as this process (the CLI would otherwise re-execute itself with
    // its preferred core type, whose GEMMs round differently).
    p.environment = ProcessInfo.processInfo.environment.merging(["CLIPGEN_NO_REEXEC": "1"]) { $1 }
    try p.run()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0)
    for position in 0..<2 {
      let fromStudio = try Data(
        contentsOf: store.imageURL(store.imageFileName(generationID: try #require(row.id), position: position)))
      let fromCLI = try Data(contentsOf: out.appendingPathComponent(String(format: "image-%02d.png", position)))
      #expect(fromStudio == fromCLI, "image \(position): the studio's PNG differs from the CLI's")
      let text = try RGBImage.readPNGText(fromStudio)
      let json = try #require(text.first { $0.key == "clipgen" }?.value)
      let record = try JSONDecoder().decode(GenerationParameters.self, from: Data(json.utf8))
      #expect(record.prompt == "a red circle" && record.imagePrompt == "rgba.png" && record.imageWeight == 0.3)
      #expect(record.seed == 7 && record.count == 2 && record.candidates == 3 && record.topK == 16)
      #expect(record.clipScore != nil && record.candidate != nil)
      // The history keeps the same record (without the image's own candidate and score).
      let stored = try JSONDecoder().decode(
        GenerationParameters.self, from: Data(try #require(row.generation.parameters).utf8))
      var generationRecord = record
      generationRecord.candidate = nil
      generationRecord.clipScore = nil
      generationRecord.tokens = nil
      #expect(stored == generationRecord)
    }
  }
}
