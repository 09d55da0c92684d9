import Foundation
import Synchronization
import Testing

@testable import ClipGenStudio

/// A terminal that records frames and plays back scripted events.
final class FakeDriver: TerminalDriver {
  var width: Int
  var height: Int
  var capabilities: TerminalCapabilities
  var events: [TerminalEvent] = []
  private(set) var frames = 0
  private(set) var lastGrid: CellGrid?
  private(set) var shutDown = false

  init(
    width: Int = 100, height: Int = 30,
    capabilities: TerminalCapabilities = TerminalCapabilities(colorDepth: .trueColor)
  ) {
    self.width = width
    self.height = height
    self.capabilities = capabilities
  }

  private(set) var clipboard: [String] = []
  func copyToClipboard(_ text: String) { clipboard.append(text) }

  func present(_ grid: CellGrid) {
    precondition(
      grid.width == width && grid.height == height,
      "frame \(grid.width)×\(grid.height) on a \(width)×\(height) terminal")
    frames += 1
    lastGrid = grid
  }

  func nextEvent(timeoutMilliseconds: Int) -> TerminalEvent? { events.isEmpty ? nil : events.removeFirst() }
  func invalidate() {}
  func shutdown() { shutDown = true }

  func resize(width: Int, height: Int) {
    self.width = width
    self.height = height
    events.append(.resize(width: width, height: height))
  }
}

/// A generator with a 4×4 token grid that paints a picture from the seed and temperature. It can
/// stop at a given token until the test lets it go, to look at the screen mid-run.
final class ScriptedGenerator: Generator {
  let modelName: String
  let defaultSettings: GenerationSettings
  let gridHeight = 4
  let gridWidth = 4
  let pauseAt: Int?
  let reached = DispatchSemaphore(value: 0)
  let gate = DispatchSemaphore(value: 0)
  let failWith: String?
  let requests = Mutex<[StudioRequest]>([])

  init(
    pauseAt: Int? = nil, failWith: String? = nil, modelName: String = "scripted",
    defaults: GenerationSettings = GenerationSettings()
  ) {
    self.pauseAt = pauseAt
    self.failWith = failWith
    self.modelName = modelName
    self.defaultSettings = defaults
  }

  static func picture(seed: UInt64, temperature: Float, rows: Int = 4) -> Pixmap {
    var p = [UInt8]()
    for y in 0..<8 {
      for x in 0..<8 {
        let on = y / 2 < rows
        let r = UInt8(truncatingIfNeeded: Int(seed % 200) + x * 6)
        let g = UInt8(truncatingIfNeeded: Int(temperature * 100) + y * 12)
        p += on ? [r, g, 90] : [0, 0, 0]
      }
    }
    return Pixmap(width: 8, height: 8, pixels: p)
  }

  func generate(_ request: StudioRequest, progress: (GeneratorEvent) -> Bool) throws -> GeneratorOutput {
    requests.withLock { $0.append(request) }
    guard progress(.conditioned(truncated: false)) else { throw GenerationCancelled() }
    var tokens: [Int] = []
    let total = gridHeight * gridWidth
    for step in 1...total {
      tokens.append(Int(request.settings.seed % 7) + step)
      if step == pauseAt {
        reached.signal()
        gate.wait()
      }
      guard progress(.sampled(done: step, total: total, tokens: [tokens], tokensPerSecond: 100)) else {
        throw GenerationCancelled()
      }
    }
    if let failWith { throw GenerationFailure(message: failWith) }
    let image = ScriptedGenerator.picture(seed: request.settings.seed, temperature: request.settings.temperature)
    guard progress(.decoded(index: 0, total: 1, image: image)) else { throw GenerationCancelled() }
    return GeneratorOutput(
      pictures: [GeneratedPicture(image: image, tokens: tokens, candidate: 0, clipScore: 0.25)], truncated: false,
      tokensPerSecond: 100, seconds: 0.16)
  }

  func preview(tokens: [Int]) throws -> Pixmap {
    ScriptedGenerator.picture(
      seed: UInt64(max(0, (tokens.first ?? 1) - 1)), temperature: 1, rows: tokens.count / gridWidth)
  }
}

struct GenerationFailure: Error, CustomStringConvertible {
  var message: String
  var description: String { message }
}

/// Image files as a tiny binary format ("P6"-like header + RGB), so state tests need no codec.
struct RawImageFiles: ImageFiles {
  struct Unreadable: Error, CustomStringConvertible {
    var path: String
    var description: String { "\((path as NSString).lastPathComponent): not an image (or unreadable)" }
  }

  func load(_ url: URL) throws -> Pixmap {
    guard let data = try? Data(contentsOf: url), data.count >= 8 else { throw Unreadable(path: url.path) }
    let b = [UInt8](data)
    guard b[0] == 0x52, b[1] == 0x47 else { throw Unreadable(path: url.path) }
    let w = Int(b[2]) << 8 | Int(b[3])
    let h = Int(b[4]) << 8 | Int(b[5])
    return Pixmap(width: w, height: h, pixels: Array(b[8...]))
  }

  func writePNG(_ image: Pixmap, to url: URL, text: [(key: String, value: String)]) throws {
    var b: [UInt8] = [
      0x52, 0x47, UInt8(image.width >> 8), UInt8(image.width & 255), UInt8(image.height >> 8),
      UInt8(image.height & 255), 0, 0,
    ]
    b += image.pixels
    try Data(b).write(to: url)
  }
}

/// A fresh temporary directory.
func temporaryDirectory(_ name: String = "studio") -> URL {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("clipgen-\(name)-\(UUID().uuidString)")
  try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}

/// The repository root (for themes/ and samples/).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .deletingLastPathComponent()

/// A studio on a fake terminal with a scripted generator and a fixed clock, seed and time zone.
struct StudioHarness {
  let driver: FakeDriver
  let studio: Studio
  let generator: ScriptedGenerator
  let store: HistoryStore
  let dataDirectory: URL

  init(
    width: Int = 100, height: Int = 30, generator: ScriptedGenerator = ScriptedGenerator(),
    capabilities: TerminalCapabilities = TerminalCapabilities(colorDepth: .trueColor), imageMode: ImageMode? = nil,
    dataDirectory: URL? = nil, theme: String = "default", monochrome: Bool = false,
    openInViewer: @escaping (URL) -> String? = { _ in "no desktop in tests" }
  ) throws {
    let dir = dataDirectory ?? temporaryDirectory()
    self.dataDirectory = dir
    driver = FakeDriver(width: width, height: height, capabilities: capabilities)
    store = try HistoryStore(directory: dir)
    self.generator = generator
    let themes = ThemeLibrary(directories: [repositoryRoot.appendingPathComponent("themes")])
    let styles = try StyleLibrary.load(contentsOf: repositoryRoot.appendingPathComponent("samples/styles.json"))
    var env = StudioEnvironment(
      generator: generator, files: RawImageFiles(), store: store, themes: themes, theme: try themes.theme(named: theme),
      styles: styles, samplePrompts: ["a large red circle on the left", "a small blue square in the middle"],
      imageMode: imageMode, now: { Date(timeIntervalSince1970: 1_700_000_000) }, timeZone: TimeZone(identifier: "UTC")!,
      randomSeed: { 42 }, pathCompleter: PathCompleter(baseDirectory: dir, home: dir.path), previewInterval: 0,
      progressInterval: 0)
    env.openInViewer = openInViewer
    env.monochrome = monochrome
    studio = Studio(driver: driver, environment: env)
  }

  /// Feeds events and runs the loop until they are handled and a frame is drawn.
  func send(_ events: [TerminalEvent]) {
    driver.events += events
    while !driver.events.isEmpty { studio.step(timeoutMilliseconds: 0) }
    studio.step(timeoutMilliseconds: 0)
  }

  func keys(_ keys: Key...) { send(keys.map { .key($0) }) }

  func type(_ text: String) { send(text.map { .key(.character($0)) }) }

  /// Runs the loop until no work is in flight (at most `seconds`).
  @discardableResult
  func settle(seconds: Double = 10) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    repeat {
      studio.images.waitForEncodes()
      studio.step(timeoutMilliseconds: 0)
      if !studio.isBusy {
        studio.renderFrame()
        return true
      }
      usleep(2000)
    } while Date() < deadline
    return false
  }

  var screen: String { (driver.lastGrid ?? studio.lastFrame)?.textSnapshot() ?? "" }
}

/// Compares `text` with the committed snapshot `Snapshots/<name>.txt`. A missing snapshot is
/// written (and the test passes); a different one fails and leaves `<name>.actual.txt` beside it.
/// Set STUDIO_RECORD_SNAPSHOTS=1 to rewrite them all.
func assertSnapshot(_ text: String, named name: String, sourceLocation: SourceLocation = #_sourceLocation) {
  let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Snapshots")
  let url = dir.appendingPathComponent(name + ".txt")
  let actualURL = dir.appendingPathComponent(name + ".actual.txt")
  let record = ProcessInfo.processInfo.environment["STUDIO_RECORD_SNAPSHOTS"] == "1"
  guard !record, let expected = try? String(contentsOf: url, encoding: .utf8) else {
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    try? text.write(to: url, atomically: true, encoding: .utf8)
    return
  }
  if expected == text {
    try? FileManager.default.removeItem(at: actualURL)
  } else {
    try? text.write(to: actualURL, atomically: true, encoding: .utf8)
    Issue.record(
      "snapshot \(name) differs; see \(actualURL.path)\n--- expected\n\(expected)--- actual\n\(text)",
      sourceLocation: sourceLocation)
  }
}
