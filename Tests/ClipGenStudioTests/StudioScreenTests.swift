import ClipGenEngine
import Foundation
import Synchronization
import Testing

@testable import ClipGenStudio

/// The studio's screens, driven through a fake terminal; each main screen is compared with a
/// committed text snapshot of the cell grid.
@Suite("Studio screens", .serialized)
struct StudioScreenTests {
  @Test func firstLaunchShowsEmptyHistoryAndWelcome() throws {
    let h = try StudioHarness()
    h.studio.renderFrame()
    assertSnapshot(h.screen, named: "first-launch")
    #expect(h.screen.contains("No generations yet."))
    #expect(h.screen.contains("[cursor "))
  }

  @Test func tooSmallTerminalSaysSoAndRecovers() throws {
    let h = try StudioHarness(width: 40, height: 10)
    h.studio.renderFrame()
    assertSnapshot(h.screen, named: "too-small")
    #expect(h.screen.contains("Terminal too small"))
    // What is typed while nothing can be seen still reaches the prompt.
    h.type("a red square")
    h.keys(.backspace)
    h.driver.resize(width: 90, height: 26)
    h.send([])
    #expect(h.screen.contains("clipgen studio"))
    #expect(!h.screen.contains("Terminal too small"))
    #expect(h.screen.contains("› a red squar"))
    #expect(h.studio.state.editor.text == "a red squar")
  }

  @Test func helpListsEveryKey() throws {
    let h = try StudioHarness(width: 100, height: 50)
    h.keys(.function(1))
    assertSnapshot(h.screen, named: "help")
    h.keys(.escape)
    #expect(!h.screen.contains("Keys — "))
    // ? opens help outside the prompt, and types a "?" inside it.
    h.keys(.character("?"))
    #expect(!h.screen.contains("Keys — "))
    #expect(h.studio.state.editor.text == "?")
    h.keys(.tab, .character("?"))
    #expect(h.screen.contains("Keys — "))
  }

  @Test func generationShowsLiveProgressThenAHistoryRow() throws {
    let generator = ScriptedGenerator(pauseAt: 8)
    let h = try StudioHarness(generator: generator)
    h.type("a large red circle on the left")
    h.keys(.enter)
    #expect(generator.reached.wait(timeout: .now() + 10) == .success)
    // The worker is parked at token 8 of 16; let the UI take in what it posted so far.
    let deadline = Date().addingTimeInterval(5)
    while h.studio.state.run?.done != 7 && Date() < deadline {
      h.studio.step(timeoutMilliseconds: 5)
    }
    h.studio.renderFrame()
    assertSnapshot(h.screen, named: "live-generation")
    #expect(h.screen.contains("Sampling"))
    #expect(h.screen.contains("7/16 tokens"))
    #expect(h.screen.contains("tok/s"))
    #expect(h.screen.contains("ETA"))
    // The row is in the history as running while it samples.
    #expect(try h.store.entries().first?.generation.status == .running)
    generator.gate.signal()
    #expect(h.settle())
    assertSnapshot(h.screen, named: "after-generation")
    let entry = try #require(try h.store.entries().first)
    #expect(entry.generation.status == .done)
    #expect(entry.generation.prompt == "a large red circle on the left")
    #expect(entry.generation.seed == 42)
    #expect(entry.images.count == 1)
    #expect(FileManager.default.fileExists(atPath: h.store.imageURL(entry.images[0].fileName).path))
    #expect(entry.images[0].tokenGrid.count == 16)
    #expect(h.screen.contains("✓"))
    #expect(h.screen.contains("Done in"))
    // The preview is drawn as half blocks carrying the picture's colours.
    let grid = try #require(h.driver.lastGrid)
    #expect(grid.cells.contains { $0.text == "▀" && $0.style.foreground != .default })
  }

  @Test func escapeCancelsAndTheHistorySaysSo() throws {
    let generator = ScriptedGenerator(pauseAt: 5)
    let h = try StudioHarness(generator: generator)
    h.type("a small blue square")
    h.keys(.enter)
    #expect(generator.reached.wait(timeout: .now() + 10) == .success)
    h.keys(.escape)
    #expect(h.studio.state.run?.cancelling == true)
    generator.gate.signal()
    #expect(h.settle())
    let entry = try #require(try h.store.entries().first)
    #expect(entry.generation.status == .cancelled)
    #expect(entry.images.isEmpty)
    #expect(h.screen.contains("Cancelled at 4/16 tokens"))
    #expect(h.screen.contains("⊘"))
  }

  @Test func failureIsShownAndRecorded() throws {
    let h = try StudioHarness(generator: ScriptedGenerator(failWith: "the model ran out of memory"))
    h.type("a cross")
    h.keys(.enter)
    #expect(h.settle())
    let entry = try #require(try h.store.entries().first)
    #expect(entry.generation.status == .failed)
    #expect(entry.generation.errorMessage == "the model ran out of memory")
    #expect(h.screen.contains("Generation failed: the model ran out of memory"))
  }

  @Test func historySurvivesARestartAndAnInterruptedRunIsMarked() throws {
    let dir = temporaryDirectory()
    do {
      let h = try StudioHarness(dataDirectory: dir)
      h.type("a yellow triangle")
      h.keys(.enter)
      #expect(h.settle())
    }
    // A studio that died mid-generation (its process is gone) left a running row.
    do {
      let store = try HistoryStore(directory: dir)
      var row = GenerationRecord(
        prompt: "a purple diamond", style: nil, imagePath: nil, imageWeight: nil, settings: GenerationSettings(seed: 7),
        modelName: "scripted", createdAt: Date(timeIntervalSince1970: 1_700_000_100))
      row = try store.begin(row)
      try store.queueForTests { db in
        try db.execute(sql: "UPDATE generation SET processID = 999999999 WHERE id = ?", arguments: [row.id!])
      }
    }
    let h = try StudioHarness(dataDirectory: dir)
    h.studio.renderFrame()
    assertSnapshot(h.screen, named: "restart-with-interrupted")
    let entries = try h.store.entries()
    #expect(entries.count == 2)
    #expect(entries[0].generation.status == .interrupted)
    #expect(entries[1].generation.status == .done)
    #expect(h.screen.contains("a yellow triangle"))
    #expect(h.screen.contains("! "))
    #expect(h.screen.contains("Generation #2 was interrupted"))
    #expect(h.store.recoveredInterrupted == [2])
    // Told once: the next start has nothing new to report.
    let again = try StudioHarness(dataDirectory: dir)
    again.studio.renderFrame()
    #expect(!again.screen.contains("was interrupted when"))
    #expect(try again.store.entries()[0].generation.status == .interrupted)
  }

  @Test func promptRecallAndHistoryEditing() throws {
    let h = try StudioHarness()
    h.type("first prompt")
    h.keys(.enter)
    #expect(h.settle())
    h.keys(.control("u"))
    h.type("second")
    h.keys(.enter)
    #expect(h.settle())
    // The line still holds "second" (the prompt stays after Enter), so ↑ goes to the one before.
    #expect(h.studio.state.editor.text == "second")
    h.keys(.up)
    #expect(h.studio.state.editor.text == "first prompt")
    h.keys(.down)
    #expect(h.studio.state.editor.text == "second")
    // History: move to the older one, load it with its seed.
    h.keys(.tab, .character("j"), .enter)
    #expect(h.studio.state.focus == .prompt)
    #expect(h.studio.state.editor.text == "first prompt")
    #expect(h.studio.state.randomSeed == false)
    #expect(h.studio.state.settings.seed == 42)
  }

  @Test func searchFavouritesAndDelete() throws {
    let h = try StudioHarness()
    for p in ["a red circle", "a blue square", "a red cross"] {
      h.type(p)
      h.keys(.enter)
      #expect(h.settle())
      h.send([.key(.control("u"))])
    }
    h.keys(.tab, .character("/"))
    h.type("red")
    #expect(h.studio.state.history.count == 2)
    h.keys(.enter)
    assertSnapshot(h.screen, named: "history-search")
    h.keys(.escape)  // leaves the pane, keeps the filter
    h.keys(.tab, .character("/"), .escape)  // clears it
    #expect(h.studio.state.history.count == 3)
    h.keys(.character("f"))
    #expect(try h.store.entries().first?.generation.favorite == true)
    h.keys(.character("*"))
    #expect(h.studio.state.history.count == 1)
    h.keys(.character("*"), .character("j"), .character("d"))
    #expect(h.screen.contains("Delete?"))
    h.keys(.character("y"))
    #expect(try h.store.entries().map(\.generation.prompt) == ["a red cross", "a red circle"])
  }

  @Test func rerunRepeatsTheSeed() throws {
    let h = try StudioHarness()
    h.type("a green cross")
    h.keys(.enter)
    #expect(h.settle())
    h.keys(.tab, .character("r"))
    #expect(h.settle())
    let entries = try h.store.entries()
    #expect(entries.count == 2)
    #expect(entries[0].generation.seed == entries[1].generation.seed)
    #expect(entries[0].images.first?.tokens == entries[1].images.first?.tokens)
  }

  /// F7 sets a negative prompt: shown beside the prompt, sent with the request (guidance raised
  /// from 1 to 3 so that it acts), kept in the history row and loaded back by e.
  @Test func negativePromptIsSentRecordedAndLoadedBack() throws {
    let generator = ScriptedGenerator()
    let h = try StudioHarness(generator: generator)
    h.keys(.function(7))
    #expect(h.screen.contains("Negative prompt — what the image should not show"))
    h.type("blue things")
    h.keys(.enter)
    #expect(h.studio.state.negative == "blue things")
    #expect(h.screen.contains("not blue things"))
    h.type("a green cross")
    h.keys(.enter)
    #expect(h.settle())
    let sent = try #require(generator.requests.withLock { $0.last })
    #expect(sent.negative == "blue things")
    #expect(sent.settings.guidanceScale == 3)
    let row = try #require(try h.store.entries().first)
    #expect(row.generation.negativePrompt == "blue things")
    #expect(row.generation.parameters?.contains("\"negative_prompt\":\"blue things\"") == true)
    // Cleared, then loaded back from the history.
    h.keys(.control("n"), .control("u"), .enter)
    #expect(h.studio.state.negative == nil)
    h.keys(.tab, .character("e"))
    #expect(h.studio.state.negative == "blue things")
  }

  /// In the preview, ↑/↓ put a re-roll marker on the image (the rows below it veiled) and R
  /// samples those rows again with a new seed: the request keeps the rows above, and the new
  /// history row says how many tokens were kept.
  @Test func rerollFromTheRowMarker() throws {
    let generator = ScriptedGenerator()
    let h = try StudioHarness(generator: generator)
    h.type("a green cross")
    h.keys(.enter)
    #expect(h.settle())
    let original = try #require(try h.store.entries().first)
    h.keys(.tab, .tab)  // the preview
    #expect(h.studio.state.focus == .preview)
    h.keys(.up)  // the marker appears half-way: 2 of 4 rows
    #expect(h.studio.state.rowMarker?.rows == 2)
    h.keys(.down)  // 3 rows kept
    #expect(h.screen.contains("Re-roll: keep rows 1–3 of 4"))
    assertSnapshot(h.screen, named: "reroll-marker")
    h.keys(.character("R"))
    #expect(h.settle())
    let sent = try #require(generator.requests.withLock { $0.last })
    #expect(sent.keep == Array(original.images[0].tokenGrid.prefix(3 * 4)))
    #expect(sent.settings.count == 1 && sent.settings.candidates == 1)
    let rows = try h.store.entries()
    #expect(rows.count == 2)
    #expect(rows[0].generation.parameters?.contains("\"kept_tokens\":12") == true)
  }

  /// In the preview, s selects a region of tokens (the rest veiled), arrows move it and H/J/K/L
  /// resize it within the grid, Enter samples it again: the request keeps the whole grid and names
  /// the region, with several candidates; Esc leaves without generating.
  @Test func regionSelectionResamplesOnlyTheRegion() throws {
    let generator = ScriptedGenerator()
    let h = try StudioHarness(generator: generator)
    h.type("a green cross")
    h.keys(.enter)
    #expect(h.settle())
    let original = try #require(try h.store.entries().first)
    h.keys(.tab, .tab, .character("s"))  // the preview's 4×4 grid: the middle 2×2 first
    #expect(h.studio.state.regionSelection?.region == TokenRegion(x: 1, y: 1, width: 2, height: 2))
    h.keys(.right, .right, .right)  // stops at the edge
    h.keys(.character("J"), .character("H"), .up)
    #expect(h.studio.state.regionSelection?.region == TokenRegion(x: 2, y: 0, width: 1, height: 3))
    #expect(h.screen.contains("Region 1×3 at x 2, row 0: arrows, H J K L size, Enter"))
    assertSnapshot(h.screen, named: "region-selection")
    h.keys(.escape)
    #expect(h.studio.state.regionSelection == nil && h.studio.state.focus == .preview)
    h.keys(.character("s"), .character("L"), .enter)
    #expect(h.settle())
    let sent = try #require(generator.requests.withLock { $0.last })
    #expect(sent.region == TokenRegion(x: 1, y: 1, width: 3, height: 2))
    #expect(sent.keep == original.images[0].tokenGrid)
    #expect(sent.settings.count == 1 && sent.settings.candidates >= 4)
    let rows = try h.store.entries()
    #expect(rows.count == 2)
    #expect(rows[0].generation.parameters?.contains("\"region\":{\"height\":2,\"width\":3,\"x\":1,\"y\":1}") == true)
    #expect(rows[0].generation.parameters?.contains("\"kept_tokens\":10") == true)
  }

  /// F8 asks for a second prompt and opens the comparison as an interpolation: five columns from
  /// t 0 to t 1, one seed and the same settings; a/x re-space them; every request names its t.
  @Test func interpolationRunsTheColumnsFromOnePromptToTheOther() throws {
    let generator = ScriptedGenerator()
    let h = try StudioHarness(generator: generator)
    h.keys(.function(8))
    #expect(h.studio.state.overlay == nil)  // nothing to start from yet
    h.type("a red circle")
    h.keys(.function(8))
    h.type("a blue square")
    assertSnapshot(h.screen, named: "interpolate-to")
    h.keys(.enter)
    let cmp = try #require(h.studio.state.compare)
    #expect(cmp.interpolateTo == "a blue square")
    #expect(cmp.columns.map(\.label) == ["t 0.00", "t 0.25", "t 0.50", "t 0.75", "t 1.00"])
    h.keys(.character("x"))  // four columns, evenly spaced again
    #expect(h.studio.state.compare?.columns.compactMap(\.t).map { ($0 * 100).rounded() } == [0, 33, 67, 100])
    h.keys(.character("]"))  // temperature is shared in an interpolation
    #expect(h.screen.contains("differ only in t"))
    h.keys(.enter)
    #expect(h.settle())
    let sent = generator.requests.withLock { $0 }
    #expect(sent.count == 4)
    #expect(sent.allSatisfy { $0.text == "a red circle" && $0.settings.seed == sent[0].settings.seed })
    #expect(sent.compactMap { $0.interpolation?.to } == Array(repeating: "a blue square", count: 4))
    #expect(sent.compactMap { $0.interpolation?.t } == h.studio.state.compare?.columns.compactMap(\.t))
    let rows = try h.store.entries()
    #expect(rows.count == 4)
    #expect(rows.allSatisfy { $0.generation.parameters?.contains("\"interpolation\":{\"t\":") == true })
    assertSnapshot(h.screen, named: "interpolation")
  }

  /// y copies the prompt and seed through the terminal (OSC 52); o opens the image in the
  /// desktop's viewer, or says why it cannot.
  @Test func copyAndOpenTheSelectedImage() throws {
    let opened = Mutex<[URL]>([])
    let h = try StudioHarness(openInViewer: { url in
      opened.withLock { $0.append(url) }
      return nil
    })
    h.type("a green cross")
    h.keys(.enter)
    #expect(h.settle())
    h.keys(.tab, .character("y"))
    #expect(h.driver.clipboard.last == "a green cross\nSeed: 42")
    h.keys(.character("o"))
    let entry = try #require(try h.store.entries().first)
    #expect(opened.withLock { $0 } == [h.store.imageURL(entry.images[0].fileName)])
    #expect(h.screen.contains("Opened"))
    let headless = try StudioHarness()
    headless.type("x")
    headless.keys(.enter)
    #expect(headless.settle())
    headless.keys(.tab, .character("o"))
    #expect(headless.screen.contains("no desktop in tests"))
  }

  /// F3 then Ctrl-E on a PNG loads the prompt and settings it was made with: all of them from
  /// clipgen's record, and prompt, negative prompt, seed and CFG scale from AUTOMATIC1111's text.
  @Test func loadingAGeneratedPNGsPromptAndSettings() throws {
    let h = try StudioHarness()
    let record = GenerationParameters(
      prompt: "a small blue square", negativePrompt: "red", seed: 1234,
      sampling: SamplingSettings(temperature: 0.6, topK: 8, topP: 0.9, guidanceScale: 2.5), count: 1, candidates: 1,
      model: "m")
    let ours = h.dataDirectory.appendingPathComponent("ours.png")
    try RGBImage(width: 4, height: 4, red: 1, green: 2, blue: 3).writePNG(
      to: ours, text: try record.pngText(width: 4, height: 4, steps: 16))
    h.keys(.function(3))
    h.type(ours.path)
    h.keys(.control("e"))
    #expect(h.studio.state.overlay == nil)
    #expect(h.studio.state.editor.text == "a small blue square" && h.studio.state.negative == "red")
    let s = h.studio.state.settings
    #expect(s.temperature == 0.6 && s.topK == 8 && s.topP == 0.9 && s.guidanceScale == 2.5 && s.seed == 1234)
    #expect(!h.studio.state.randomSeed)
    let theirs = h.dataDirectory.appendingPathComponent("a1111.png")
    try RGBImage(width: 4, height: 4, red: 1, green: 2, blue: 3).writePNG(
      to: theirs,
      text: [
        (
          "parameters",
          "a castle on a hill, sunset\nNegative prompt: fog\nSteps: 30, Sampler: Euler a, CFG scale: 6, Seed: 77, Size: 512x512"
        )
      ])
    h.keys(.function(3), .control("u"))
    h.type(theirs.path)
    h.keys(.control("e"))
    #expect(h.studio.state.editor.text == "a castle on a hill, sunset" && h.studio.state.negative == "fog")
    #expect(h.studio.state.settings.seed == 77 && h.studio.state.settings.guidanceScale == 6)
    let plain = h.dataDirectory.appendingPathComponent("plain.png")
    try RGBImage(width: 4, height: 4, red: 1, green: 2, blue: 3).writePNG(to: plain)
    h.keys(.function(3), .control("u"))
    h.type(plain.path)
    h.keys(.control("e"))
    #expect(h.screen.contains("carries no generation record"))
  }

  @Test func settingsFormChangesSamplingAndNamesBadValues() throws {
    let h = try StudioHarness()
    h.keys(.function(4))
    h.keys(.right, .right)  // temperature 1.0 → 1.2
    h.keys(.down, .right)  // top-k all → 1
    h.keys(.down, .down, .down)  // seed
    h.type("1234")
    h.keys(.enter)
    #expect(h.studio.state.settings.temperature == 1.2)
    #expect(h.studio.state.settings.topK == 1)
    #expect(h.studio.state.settings.seed == 1234)
    #expect(h.studio.state.randomSeed == false)
    h.keys(.function(4), .down, .down)  // top-p
    h.type("1.5")
    h.keys(.enter)
    #expect(h.screen.contains("Top-p: ‘1.5’ is not a probability in (0, 1]"))
    #expect(h.studio.state.settings.topP == 1)
    // The settings are remembered for the next start.
    let next = try StudioHarness(dataDirectory: h.dataDirectory)
    #expect(next.studio.state.settings.temperature == 1.2)
    #expect(next.studio.state.settings.seed == 1234)
    #expect(next.studio.state.randomSeed == false)
  }

  /// A paste is text: its line breaks, control characters and escape sequences never act as
  /// keys (one paste used to start three generations).
  @Test func pastedTextLandsInThePromptAndNeverRunsAsKeys() throws {
    let generator = ScriptedGenerator()
    let h = try StudioHarness(generator: generator)
    h.send([.paste("a red circle\r\n\u{1B}[Aon the left\u{3}\rq")])
    #expect(h.studio.state.editor.text == "a red circle [Aon the left q")
    #expect(!h.studio.quitRequested)
    #expect(h.studio.state.run == nil && generator.requests.withLock { $0.isEmpty })
    h.keys(.enter)  // Enter typed by hand does generate
    #expect(h.settle())
    #expect(generator.requests.withLock { $0.count } == 1)
  }

  /// NO_COLOR: not one coloured cell, highlights in reverse video, no half-block images.
  @Test func noColorDrawsWithoutColour() throws {
    let h = try StudioHarness(monochrome: true)
    #expect(h.studio.state.imageMode == ImageMode.none)
    h.type("a red circle")
    h.keys(.enter)
    #expect(h.settle())
    h.keys(.tab)  // the history, its row selected
    let grid = try #require(h.driver.lastGrid)
    #expect(grid.cells.allSatisfy { $0.style.foreground == .default && $0.style.background == .default })
    #expect(grid.cells.contains { $0.style.reverse }, "nothing stands out without colour")
    let coloured = try StudioHarness()
    coloured.studio.renderFrame()
    #expect(coloured.driver.lastGrid?.cells.contains { $0.style.foreground != .default } == true)
  }

  /// The model's own defaults (model.json) are where settings start; the form marks each value
  /// still at its default; what was set for one model never applies to another.
  @Test func modelDefaultsStartTheSettingsAndStayPerModel() throws {
    let defaults = GenerationSettings(temperature: 0.7, topK: 20, guidanceScale: 2, candidates: 4)
    let h = try StudioHarness(generator: ScriptedGenerator(defaults: defaults))
    #expect(h.studio.state.settings == defaults)
    h.keys(.function(4))
    assertSnapshot(h.screen, named: "settings")
    let rows = { (label: String) in h.screen.split(separator: "\n").first { $0.contains(label) }.map(String.init) ?? ""
    }
    #expect(rows("Temperature").contains("0.7") && rows("Temperature").contains("model default"))
    #expect(rows("Candidates").contains("4") && rows("Candidates").contains("model default"))
    #expect(!rows("Seed").contains("model default"))
    h.keys(.right, .right)  // temperature 0.7 → 0.9: no longer the model's
    #expect(!rows("Temperature").contains("model default"))
    h.keys(.down, .down, .down, .down, .down, .right)  // images 1 → 2: candidates follow (2 × 4)
    #expect(rows("Candidates").contains("8") && rows("Candidates").contains("model default"))
    h.keys(.enter)
    #expect(h.studio.state.settings.temperature == 0.9)
    #expect(h.studio.state.settings.count == 2 && h.studio.state.settings.candidates == 8)
    // The same model again: the changed temperature is back, the rest are its defaults.
    let again = try StudioHarness(generator: ScriptedGenerator(defaults: defaults), dataDirectory: h.dataDirectory)
    #expect(again.studio.state.settings.temperature == 0.9)
    #expect(again.studio.state.settings.topK == 20)
    // A retrained model with new defaults brings them, keeping only what the user had changed.
    var retrained = defaults
    retrained.topK = 32
    retrained.candidates = 6
    let next = try StudioHarness(generator: ScriptedGenerator(defaults: retrained), dataDirectory: h.dataDirectory)
    #expect(next.studio.state.settings.temperature == 0.9)
    #expect(next.studio.state.settings.topK == 32)
    #expect(next.studio.state.settings.count == 2 && next.studio.state.settings.candidates == 12)
    // Another model: its own defaults, nothing from the first.
    let other = GenerationSettings(temperature: 1, topK: 500, topP: 0.95, candidates: 2)
    let o = try StudioHarness(
      generator: ScriptedGenerator(modelName: "coco", defaults: other), dataDirectory: h.dataDirectory)
    #expect(o.studio.state.settings == other)
  }

  @Test func stylePickerSearchesAndAppliesTheTemplate() throws {
    let generator = ScriptedGenerator()
    let h = try StudioHarness(generator: generator)
    h.type("red circle")
    h.keys(.function(2))
    assertSnapshot(h.screen, named: "style-picker")
    h.type("oil")  // a style written for other models says which
    #expect(h.screen.contains("Written for photographic models (CLIP-GEN COCO)."))
    h.keys(.backspace, .backspace, .backspace)
    h.type("pixel")
    h.keys(.enter)
    #expect(h.studio.state.style?.name == "Pixel art")
    h.keys(.enter)
    #expect(h.settle())
    #expect(generator.requests.withLock { $0.last?.text } == "pixel art of red circle")
    let g = try #require(try h.store.entries().first?.generation)
    #expect(g.styleName == "Pixel art")
    #expect(g.prompt == "red circle")
    #expect(h.screen.contains("red circle · Pixel art"))
  }

  @Test func imagePromptCompletesPathsAndNamesUnreadableFiles() throws {
    let generator = ScriptedGenerator()
    let h = try StudioHarness(generator: generator)
    let pictureURL = h.dataDirectory.appendingPathComponent("reference-picture.raw")
    try RawImageFiles().writePNG(ScriptedGenerator.picture(seed: 3, temperature: 1), to: pictureURL, text: [])
    try Data("not an image".utf8).write(to: h.dataDirectory.appendingPathComponent("broken.raw"))
    h.keys(.function(3))
    h.type("refer")
    h.keys(.tab)
    guard case .imagePrompt(let form) = h.studio.state.overlay else {
      Issue.record("the image prompt window is not open")
      return
    }
    #expect(form.path.text == "reference-picture.raw")
    h.keys(.down, .right, .right)  // weight 0.5 → 0.7
    assertSnapshot(h.screen, named: "image-prompt")
    h.keys(.enter)
    #expect(h.studio.state.imagePrompt?.weight == 0.7)
    // A broken file is named, and the window stays open.
    h.keys(.function(3), .control("u"))
    h.type("broken.raw")
    h.keys(.enter)
    #expect(h.screen.contains("broken.raw: not an image"))
    h.keys(.escape)
    // Image-only generation uses the image at full weight.
    h.keys(.enter)
    #expect(h.settle())
    let request = try #require(generator.requests.withLock { $0.last })
    #expect(request.text == "")
    #expect(request.imageWeight == 1)
    #expect(request.image != nil)
    #expect(try h.store.entries().first?.generation.imagePath == pictureURL.path)
  }

  @Test func quitAsksWhileAGenerationRuns() throws {
    let generator = ScriptedGenerator(pauseAt: 3)
    let h = try StudioHarness(generator: generator)
    h.type("a circle")
    h.keys(.enter)
    #expect(generator.reached.wait(timeout: .now() + 10) == .success)
    h.keys(.control("c"))
    #expect(h.studio.quitRequested == false)
    assertSnapshot(h.screen, named: "confirm-quit")
    h.keys(.character("n"))
    #expect(h.studio.state.overlay == nil)
    h.keys(.control("c"), .character("y"))
    #expect(h.studio.quitRequested)
    generator.gate.signal()
    h.studio.finish()
    #expect(h.driver.shutDown)
    #expect(try h.store.entries().first?.generation.status == .cancelled)
  }

  @Test func quitWithoutWorkIsImmediate() throws {
    let h = try StudioHarness()
    h.keys(.tab, .character("q"))
    #expect(h.studio.quitRequested)
  }

  @Test func resizingRelaysOut() throws {
    let h = try StudioHarness(width: 100, height: 30)
    h.type("a big blue triangle")
    h.keys(.enter)
    #expect(h.settle())
    h.driver.resize(width: 72, height: 20)
    h.send([])
    assertSnapshot(h.screen, named: "resized-72x20")
    let grid = try #require(h.driver.lastGrid)
    #expect(grid.width == 72 && grid.height == 20)
    #expect(h.screen.contains("a big blue triangle"))
  }

  @Test func themesCycleAndLoadFromFiles() throws {
    let h = try StudioHarness()
    let before = h.studio.state.theme.name
    h.keys(.function(6))
    #expect(h.studio.state.theme.name != before)
    #expect(h.store.preference("theme") == "dusk")
    #expect(h.screen.contains("Theme: "))
    let light = try StudioHarness(theme: "light")
    light.studio.renderFrame()
    let grid = try #require(light.driver.lastGrid)
    #expect(
      grid[0, 5].style.background == .rgb(0xfa, 0xfa, 0xfa) || grid[50, 10].style.background == .rgb(0xfa, 0xfa, 0xfa))
  }

  @Test func sixelTerminalsGetPlacementsThatDecodeToThePicture() throws {
    let caps = TerminalCapabilities(
      sixel: true, cellPixelWidth: 10, cellPixelHeight: 20, colorDepth: .trueColor, deviceAttributes: "63;1;2;4")
    let h = try StudioHarness(capabilities: caps)
    #expect(h.studio.state.imageMode == .sixel)
    h.type("a small green cross")
    h.keys(.enter)
    #expect(h.settle())
    h.studio.renderFrame()
    let grid = try #require(h.driver.lastGrid)
    let placement = try #require(grid.placements.first)
    assertSnapshot(h.screen, named: "sixel-preview")
    let decoded = try SixelCodec.decode(placement.data)
    #expect(decoded.width == placement.rect.width * 10)
    #expect(decoded.height == placement.rect.height * 20)
    let entry = try #require(h.studio.state.selectedEntry)
    let original = try RawImageFiles().load(h.store.imageURL(entry.images[0].fileName))
    let expected = original.resized(width: decoded.width, height: decoded.height)
    #expect(meanAbsoluteError(decoded, expected) < 3)
    // A window over the image hides the placement (it would be drawn over the window).
    h.keys(.function(1))
    #expect(h.driver.lastGrid?.placements.isEmpty == true)
  }

  @Test func compareRunsColumnsAndExportsALabelledGrid() throws {
    let h = try StudioHarness(width: 110, height: 32)
    h.type("a large purple diamond")
    h.keys(.function(5))
    #expect(h.studio.state.compare?.columns.count == 3)
    h.keys(.character("a"))
    #expect(h.studio.state.compare?.columns.map(\.temperature) == [0.7, 1.0, 1.3, 1.6])
    h.keys(.character("x"), .left, .character("]"), .character("k"))
    #expect(h.studio.state.compare?.columns[1].temperature == 1.1)
    #expect(h.studio.state.compare?.columns[1].topK == 4)
    h.keys(.enter)
    #expect(h.settle())
    assertSnapshot(h.screen, named: "compare")
    let columns = try #require(h.studio.state.compare?.columns)
    #expect(columns.allSatisfy { $0.status == .done })
    let entries = try h.store.entries()
    #expect(entries.count == 3)
    #expect(Set(entries.map(\.generation.seed)).count == 1)
    #expect(Set(entries.compactMap(\.generation.comparisonID)).count == 1)
    h.keys(.character("p"))
    #expect(h.screen.contains("Exported"))
    let exports = try FileManager.default.contentsOfDirectory(
      at: h.dataDirectory.appendingPathComponent("exports"), includingPropertiesForKeys: nil)
    let png = try RawImageFiles().load(try #require(exports.first))
    #expect(png.width == 3 * 192 + 4 * 12)
    h.keys(.escape)
    #expect(h.studio.state.compare == nil)
  }
}
