// The studio's controller: reads terminal events and worker messages on the UI thread, changes
// the state, starts and cancels generations, keeps the history, and presents frames.
import ClipGenEngine
import Foundation

/// Messages for the UI thread from background work.
public enum StudioMessage: Sendable {
  case worker(WorkerMessage)
  case sixel(key: String, result: Result<[UInt8], SixelError>)
}

/// Everything the studio works with besides the terminal.
public struct StudioEnvironment {
  public var generator: Generator
  public var files: ImageFiles
  public var store: HistoryStore
  public var themes: ThemeLibrary
  public var theme: Theme
  public var styles: StyleLibrary
  public var samplePrompts: [String]
  /// Force an image mode (else the terminal's best).
  public var imageMode: ImageMode?
  /// No colour anywhere (the `NO_COLOR` convention): the UI in the terminal's own colours with
  /// reverse video for highlights; images only as sixel, never as coloured half-blocks.
  public var monochrome = false
  public var now: () -> Date
  public var timeZone: TimeZone
  public var randomSeed: () -> UInt64
  /// Where comparison grids are exported.
  public var exportDirectory: URL
  public var pathCompleter: PathCompleter
  /// Seconds between live preview decodes, and between progress updates.
  public var previewInterval: Double
  public var progressInterval: Double
  /// Things to tell the user when the studio opens (e.g. a style file that did not load).
  public var notices: [String]
  /// Opens a file in the desktop's viewer; nil when there is no desktop (no DISPLAY or
  /// WAYLAND_DISPLAY), or a reason it could not.
  public var openInViewer: (URL) -> String? = StudioEnvironment.xdgOpen

  /// `xdg-open FILE`, detached, when a graphical session is there; else the reason not.
  public static func xdgOpen(_ url: URL) -> String? {
    let env = ProcessInfo.processInfo.environment
    guard env["DISPLAY"] != nil || env["WAYLAND_DISPLAY"] != nil else {
      return "no desktop to open it on (DISPLAY and WAYLAND_DISPLAY are unset); the file is \(url.path)"
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["xdg-open", url.path]
    p.standardInput = FileHandle.nullDevice
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return "cannot run xdg-open: \(error.localizedDescription)" }
    return nil
  }

  public init(
    generator: Generator, files: ImageFiles, store: HistoryStore, themes: ThemeLibrary, theme: Theme,
    styles: StyleLibrary,
    samplePrompts: [String], imageMode: ImageMode? = nil, now: @escaping () -> Date = Date.init,
    timeZone: TimeZone = .current, randomSeed: @escaping () -> UInt64 = { UInt64.random(in: 0...UInt64(UInt32.max)) },
    exportDirectory: URL? = nil, pathCompleter: PathCompleter = PathCompleter(), previewInterval: Double = 0.12,
    progressInterval: Double = 0.03, notices: [String] = []
  ) {
    self.notices = notices
    self.generator = generator
    self.files = files
    self.store = store
    self.themes = themes
    self.theme = theme
    self.styles = styles
    self.samplePrompts = samplePrompts
    self.imageMode = imageMode
    self.now = now
    self.timeZone = timeZone
    self.randomSeed = randomSeed
    self.exportDirectory = exportDirectory ?? store.directory.appendingPathComponent("exports")
    self.pathCompleter = pathCompleter
    self.previewInterval = previewInterval
    self.progressInterval = progressInterval
  }
}

/// The terminal studio.
public final class Studio {
  public internal(set) var state: StudioState
  public let environment: StudioEnvironment
  let driver: TerminalDriver
  let inbox = Inbox<StudioMessage>()
  public let images: ImageStore
  var worker: GenerationWorker?
  /// The search and favourites filter the history window was read with.
  var loadedFilter: (search: String, favoritesOnly: Bool)?
  /// Job numbers and the history rows of the tasks in flight.
  let ledger: GenerationLedger
  var dirty = true
  public internal(set) var quitRequested = false
  /// The frame last presented (tests read it).
  public private(set) var lastFrame: CellGrid?

  public init(driver: TerminalDriver, environment env: StudioEnvironment) {
    self.driver = driver
    environment = env
    ledger = GenerationLedger(store: env.store, now: env.now)
    let inbox = self.inbox
    images = ImageStore(files: env.files) { key, result in inbox.post(.sixel(key: key, result: result)) }
    let caps = driver.capabilities
    var mode = env.imageMode ?? caps.preferredImageMode
    if mode == .sixel && !caps.sixel && env.imageMode == nil { mode = .halfBlock }
    if env.monochrome && env.imageMode == nil && mode == .halfBlock { mode = .none }
    state = StudioState(
      width: driver.width, height: driver.height, theme: env.theme, imageMode: mode, capabilities: caps,
      modelName: env.generator.modelName, gridHeight: env.generator.gridHeight, gridWidth: env.generator.gridWidth)
    state.samplePrompts = env.samplePrompts
    state.modelDefaults = env.generator.defaultSettings
    state.settings = state.modelDefaults
    restorePreferences()
    state.styleLibrary = env.styles
    let recent = (try? env.store.recentPrompts()) ?? []
    state.recall = PromptRecall(entries: recent + env.samplePrompts.filter { !recent.contains($0) })
    reloadHistory(selecting: nil)
    if let notice = env.notices.first { message(notice, .warning) }
    if let interrupted = env.store.recoveredInterrupted.first {
      message(
        "Generation #\(interrupted) was interrupted when the studio last stopped; it is marked ! in the history",
        .warning)
    }
  }

  // MARK: Preferences

  /// The settings the user last chose for this model, kept per model name together with the
  /// model defaults they were chosen against.
  struct SavedSettings: Codable {
    var settings: GenerationSettings
    var defaults: GenerationSettings
  }

  var settingsPreferenceKey: String { "settings:" + state.modelName }

  /// The sampling settings and seed mode of the last session (the theme is the executable's
  /// business: a `--theme` flag wins over the remembered one). Settings start from the model's
  /// defaults; only the values the user changed for this model are put back (see
  /// `GenerationSettings.restored`).
  func restorePreferences() {
    if let json = environment.store.preference(settingsPreferenceKey), let data = json.data(using: .utf8),
      let saved = try? JSONDecoder().decode(SavedSettings.self, from: data)
    {
      state.settings = GenerationSettings.restored(
        saved.settings, savedDefaults: saved.defaults, modelDefaults: state.modelDefaults)
    }
    if let r = environment.store.preference("randomSeed") { state.randomSeed = r == "true" }
  }

  func savePreferences() {
    let saved = SavedSettings(settings: state.settings, defaults: state.modelDefaults)
    guard let data = try? JSONEncoder().encode(saved) else { return }
    record {
      try environment.store.setPreference(settingsPreferenceKey, String(decoding: data, as: UTF8.self))
      try environment.store.setPreference("randomSeed", state.randomSeed ? "true" : "false")
    }
  }

  // MARK: Running

  /// Runs until the user quits or `shouldStop` returns true, then cancels any work and
  /// restores the terminal.
  public func run(shouldStop: () -> Bool = { false }) {
    renderFrame()
    while !quitRequested && !shouldStop() { step(timeoutMilliseconds: 30) }
    finish()
  }

  /// One turn of the loop: wait up to `timeoutMilliseconds` for keys, handle every pending key
  /// and message, and present a frame when something changed.
  public func step(timeoutMilliseconds: Int) {
    if let event = driver.nextEvent(timeoutMilliseconds: dirty ? 0 : timeoutMilliseconds) {
      handle(event)
      var more = 0
      while more < 512, let e = driver.nextEvent(timeoutMilliseconds: 0) {
        handle(e)
        more += 1
      }
    }
    processMessages()
    if dirty { renderFrame() }
  }

  /// Cancels running work (recording it in the history) and restores the terminal.
  public func finish() {
    if let w = worker {
      w.cancel()
      w.wait(seconds: 5)
      processMessages()
    }
    ledger.endAll(status: .cancelled, message: "the studio was closed")
    driver.shutdown()
  }

  /// Draws the current state and shows it.
  public func renderFrame() {
    var renderer = StudioRenderer(
      state: state, images: images, imagesDirectory: environment.store.imagesDirectory, now: environment.now(),
      timeZone: environment.timeZone, homeDirectory: environment.pathCompleter.home)
    let grid = environment.monochrome ? renderer.render().monochrome() : renderer.render()
    state.historyScroll = renderer.historyScroll
    driver.present(grid)
    lastFrame = grid
    dirty = false
  }

  /// True while a generation runs or an image encoding is in flight.
  public var isBusy: Bool { worker != nil || images.pendingEncodes > 0 || !inbox.isEmpty }

  // MARK: Messages

  /// Applies everything background work posted since the last call.
  public func processMessages() {
    for m in inbox.drain() {
      dirty = true
      switch m {
      case .sixel(let key, let result):
        images.receive(key: key, result: result)
        if case .failure(let e) = result {
          message("Sixel encoding failed (\(e)); press F6… or restart with --images blocks", .error)
        }
      case .worker(let w): apply(w)
      }
    }
  }

  func apply(_ m: WorkerMessage) {
    switch m {
    case .started(let job, let column):
      if state.compare?.job == job { updateColumn(column) { $0.status = .running } }
    case .conditioned(let job, let column, let truncated):
      if state.run?.job == job {
        state.run?.phase = .sampling
        state.run?.truncated = truncated
      }
      if state.compare?.job == job { updateColumn(column) { $0.status = .running } }
    case .progress(let job, let column, let done, let total, let rate):
      if state.run?.job == job {
        state.run?.phase = done >= total ? .decoding : .sampling
        state.run?.done = done
        state.run?.total = total
        state.run?.tokensPerSecond = rate
      }
      if state.compare?.job == job {
        updateColumn(column) {
          $0.done = done
          $0.total = total
        }
      }
    case .preview(let job, let column, let image, let rows):
      if state.run?.job == job {
        state.run?.preview = image
        state.run?.previewRows = rows
      }
      if state.compare?.job == job { updateColumn(column) { $0.image = image } }
    case .finished(let job, let column, let output, let saved, let saveError):
      finished(job: job, column: column, output: output, saved: saved, saveError: saveError)
    case .cancelled(let job, let column, let done, let total):
      historyError(
        ledger.end(job: job, column: column, status: .cancelled, message: "cancelled at \(done)/\(total) tokens"))
      if state.run?.job == job {
        state.run = nil
        message("Cancelled at \(done)/\(total) tokens", .warning)
      }
      if state.compare?.job == job { updateColumn(column) { $0.status = .cancelled } }
      reloadHistory(selecting: nil)
    case .failed(let job, let column, let text):
      historyError(ledger.end(job: job, column: column, status: .failed, message: text))
      if state.run?.job == job {
        state.run = nil
        message("Generation failed: \(text)", .error)
      }
      if state.compare?.job == job {
        updateColumn(column) { $0.status = .failed(text) }
        message("Column \(column + 1) failed: \(text)", .error)
      }
      reloadHistory(selecting: nil)
    case .jobEnded(let job):
      if worker?.job == job { worker = nil }
      if state.run?.job == job { state.run = nil }
      if state.compare?.job == job { state.compare?.job = nil }
      ledger.jobEnded(job)
    }
  }

  func finished(job: Int, column: Int, output: GeneratorOutput, saved: [URL?], saveError: String?) {
    let outcome = ledger.finish(job: job, column: column, output: output, saved: saved, saveError: saveError)
    let id = outcome.id
    if id != nil {
      for (picture, url) in zip(output.pictures, saved) {
        if let url { images.remember(picture.image, for: url) }
      }
    }
    historyError(outcome.writeError)
    // A finish the history cannot record is a failure the person sees, never "Done".
    let unrecorded = outcome.unrecorded
    if state.run?.job == job {
      state.run = nil
      if let saveError {
        message("Image not saved: \(saveError)", .error)
      } else if let unrecorded {
        let folder = saved.compactMap { $0 }.first?.deletingLastPathComponent().path ?? "the images folder"
        message("Generated, but the history could not record it (\(unrecorded)); the images are in \(folder)", .error)
      } else {
        var t = String(format: "Done in %.1f s · %.0f tok/s", output.seconds, output.tokensPerSecond)
        if output.truncated { t += " · the prompt was cut to fit the model's context" }
        message(t, output.truncated ? .warning : .success)
      }
      reloadHistory(selecting: id)
      state.previewIndex = 0
    }
    if state.compare?.job == job {
      updateColumn(column) {
        $0.status = .done
        $0.image = output.pictures.first?.image ?? $0.image
        $0.clipScore = output.pictures.first?.clipScore
        $0.historyID = id
      }
      if let saveError { message(saveError, .error) }
      reloadHistory(selecting: nil)
    }
  }

  func updateColumn(_ i: Int, _ change: (inout CompareColumn) -> Void) {
    guard var cmp = state.compare, cmp.columns.indices.contains(i) else { return }
    change(&cmp.columns[i])
    state.compare = cmp
  }

  /// Runs a history write, showing its error (full disk, locked file) instead of failing.
  func record(_ body: () throws -> Void) {
    do { try body() } catch { historyError("\(error)") }
  }

  /// Shows a history write's error (full disk, locked file), if there was one.
  func historyError(_ error: String?) {
    if let error { message("History: \(error)", .error) }
  }

  func message(_ text: String, _ kind: StatusMessage.Kind = .info) {
    state.message = StatusMessage(text, kind)
    dirty = true
  }

  // MARK: History

  /// Reloads the history list, keeping (or moving to) a selection by id.
  func style(named name: String?) -> PromptStyle? {
    guard let name else { return nil }
    return environment.styles.styles.first { $0.name == name }
  }

  func loadImagePrompt(path: String, weight: Double) -> ImagePrompt? {
    let url = environment.pathCompleter.resolve(path)
    do {
      return ImagePrompt(path: url.path, weight: weight, image: try environment.files.load(url))
    } catch {
      message("Image prompt \(url.path): \(error)", .error)
      return nil
    }
  }

  /// Loads a past generation's prompt, style, image prompt and settings into the prompt line.
  func edit(_ entry: HistoryEntry) {
    let g = entry.generation
    state.editor = LineEditor(g.prompt)
    state.style = style(named: g.styleName)
    if let p = g.imagePath {
      state.imagePrompt = loadImagePrompt(path: p, weight: g.imageWeight ?? 0.5)
    } else {
      state.imagePrompt = nil
    }
    state.settings = g.settings
    state.negative = g.negativePrompt
    state.randomSeed = false
    state.focus = .prompt
    var t = "Loaded #\(entry.id): seed \(g.seed) fixed (F4 to change)"
    if g.styleName != nil && state.style == nil {
      t += "; its style '\(g.styleName!)' is no longer in the style library"
    }
    if state.message?.kind != .error { message(t) }
  }

  /// Runs a past generation again with exactly its settings and seed.
  func rerun(_ entry: HistoryEntry) {
    let g = entry.generation
    var image: ImagePrompt?
    if let p = g.imagePath {
      image = loadImagePrompt(path: p, weight: g.imageWeight ?? 0.5)
      if image == nil { return }
    }
    startGeneration(
      prompt: g.prompt, style: style(named: g.styleName), styledPrompt: g.styledPrompt, styleName: g.styleName,
      imagePrompt: image, settings: g.settings, randomSeed: false, negative: g.negativePrompt)
  }

  // MARK: Generating

  /// The history row as the engine's generation record (what its PNGs carry).
  func parameters(_ r: GenerationRecord) -> GenerationParameters {
    let s = r.settings
    return GenerationParameters(
      prompt: r.styledPrompt, typedPrompt: r.prompt, style: r.styleName,
      imagePrompt: r.imagePath.map { ($0 as NSString).lastPathComponent }, imageWeight: r.imageWeight.map(Float.init),
      negativePrompt: r.negativePrompt, seed: r.seed,
      sampling: SamplingSettings(
        temperature: s.temperature, topK: s.topK, topP: s.topP, guidanceScale: s.guidanceScale),
      count: r.count, candidates: r.candidates, model: r.modelName)
  }

  func request(
    text: String, imagePrompt: ImagePrompt?, settings: GenerationSettings, negative: String? = nil, keep: [Int] = [],
    region: TokenRegion? = nil
  ) -> StudioRequest {
    let weight = text.isEmpty ? 1 : (imagePrompt?.weight ?? 0)
    var r = StudioRequest(
      text: text, image: imagePrompt?.image, imageLabel: imagePrompt?.label ?? "", imageWeight: weight,
      settings: settings, negative: negative)
    r.keep = keep
    r.region = region
    return r
  }

  /// Starts a generation: records it as running, then samples on the worker thread.
  public func startGeneration(
    prompt: String, style: PromptStyle?, styledPrompt: String? = nil, styleName: String? = nil,
    imagePrompt: ImagePrompt?, settings base: GenerationSettings, randomSeed: Bool, negative: String? = nil,
    keep: [Int] = [], region: TokenRegion? = nil
  ) {
    guard !state.isRunning else {
      message("A generation is running — Esc cancels it", .warning)
      return
    }
    let text = prompt.trimmingCharacters(in: .whitespaces)
    guard !text.isEmpty || imagePrompt != nil else {
      message("Type a prompt first (or add an image prompt with F3)", .warning)
      return
    }
    var settings = base
    if randomSeed { settings.seed = environment.randomSeed() }
    let negative = negative.flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
    if negative != nil && settings.guidanceScale == 1 {
      // A negative prompt acts through guidance; the CLI's rule for a model whose default is 1.
      settings.guidanceScale = 3
      message("Guidance 3 for the negative prompt (F4 changes it)")
    }
    var row = GenerationRecord(
      prompt: text, style: style, imagePath: imagePrompt?.path, imageWeight: imagePrompt?.weight, settings: settings,
      modelName: environment.generator.modelName, createdAt: environment.now(), negativePrompt: negative)
    if let styledPrompt { row.styledPrompt = styledPrompt }
    if style == nil, let styleName { row.styleName = styleName }
    var record = parameters(row)
    record.keptTokens = keep.isEmpty ? nil : keep.count - (region.map { $0.width * $0.height } ?? 0)
    record.region = region
    row.parameters = try? record.json()
    let job = ledger.newJob()
    let opened = ledger.open(row, job: job, images: settings.count)
    if let error = opened.error { message("Not saved to history: \(error)", .error) }
    row = opened.row
    let id = opened.id
    let task = GenerationTask(
      historyID: id,
      request: request(
        text: row.styledPrompt, imagePrompt: imagePrompt, settings: settings, negative: negative, keep: keep,
        region: region),
      files: opened.files, parameters: record)
    state.run = RunProgress(
      job: job, historyID: id, prompt: row.styledPrompt, total: state.gridHeight * state.gridWidth,
      rowsPerStep: settings.candidates * (settings.guidanceScale != 1 ? 2 : 1))
    state.recall.remember(text)
    if id != nil {
      // Show the new row even when a search would hide it.
      if !state.search.isEmpty || state.favoritesOnly {
        state.search = ""
        state.favoritesOnly = false
        state.searchEditor = nil
      }
      reloadHistory(selecting: id)
    }
    state.previewIndex = 0
    let inbox = self.inbox
    worker = GenerationWorker(
      job: job, tasks: [task], generator: environment.generator, files: environment.files,
      post: { inbox.post(.worker($0)) }, previewInterval: environment.previewInterval,
      progressInterval: environment.progressInterval)
    dirty = true
  }

  func cancelRun() {
    guard let w = worker else { return }
    w.cancel()
    state.run?.cancelling = true
    message("Cancelling…", .warning)
  }

  // MARK: Events

  public func handle(_ event: TerminalEvent) {
    dirty = true
    switch event {
    case .resize(let w, let h):
      state.width = w
      state.height = h
      state.capabilities = driver.capabilities
    case .key(let key):
      state.message = nil
      handle(key)
    case .paste(let text):
      state.message = nil
      paste(BracketedPaste.sanitize(text))
    }
  }

  /// Pasted text goes into the line being edited — the prompt unless a search or a path is being
  /// typed — as text: its control characters and escape sequences never act as keys.
  func paste(_ text: String) {
    guard !text.isEmpty else { return }
    if state.searchEditor != nil {
      state.searchEditor?.insert(text)
      return
    }
    switch state.overlay {
    case .imagePrompt(var form) where form.field == 0:
      form.path.insert(text)
      state.overlay = .imagePrompt(form)
    case .styles(var picker):
      picker.query.insert(text)
      state.overlay = .styles(picker)
    case .negativePrompt(var editor):
      editor.insert(text)
      state.overlay = .negativePrompt(editor)
    case nil:
      state.focus = .prompt
      state.editor.insert(text)
    default:
      message("Close this window to paste into the prompt", .warning)
    }
  }

  func requestQuit() {
    if state.isRunning {
      state.overlay = .confirmQuit
    } else {
      quitRequested = true
    }
  }

  func nextTheme() {
    let names = environment.themes.names.isEmpty ? ["default"] : environment.themes.names
    let current =
      names.firstIndex { $0.lowercased() == state.theme.name.lowercased() } ?? names.firstIndex {
        (try? environment.themes.theme(named: $0))?.name == state.theme.name
      } ?? -1
    let next = names[(current + 1) % names.count]
    do {
      state.theme = try environment.themes.theme(named: next)
      message("Theme: \(state.theme.name) (\(next).theme)")
      record { try environment.store.setPreference("theme", next) }
    } catch {
      message("\(error)", .error)
    }
  }
}
