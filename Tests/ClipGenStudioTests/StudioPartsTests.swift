import ClipGenEngine
import Foundation
import GRDB
import Synchronization
import Testing

@testable import ClipGenStudio

@Suite("Studio parts")
struct StudioPartsTests {
  // MARK: Terminal

  @Test func deviceAttributesAndCellSizeRepliesParse() {
    let xterm = Array("\u{1B}[6;19;9t\u{1B}[4;646;990t\u{1B}[?63;1;2;4;6;9;15;16;22;28c".utf8)
    let r = TerminalReplies.parse(xterm)
    #expect(r.hasSixel)
    #expect(r.cellSize?.width == 9 && r.cellSize?.height == 19)
    #expect(r.cellPixelSize(columns: 110, rows: 34) == (9, 19))
    // tmux 3.3 (no sixel), no pixel sizes: the fallback.
    let tmux = TerminalReplies.parse(Array("\u{1B}[?1;2c".utf8))
    #expect(!tmux.hasSixel)
    #expect(tmux.cellPixelSize(columns: 80, rows: 24) == (10, 20))
    // Only the window size in pixels (xterm's default, which ignores XTWINOPS).
    var w = TerminalReplies.parse(Array("\u{1B}[?63;4c".utf8))
    w.windowPixels = (990, 646)
    #expect(w.cellPixelSize(columns: 110, rows: 34) == (9, 19))
    // Noise and partial replies are ignored.
    #expect(TerminalReplies.parse(Array("junk\u{1B}[?6".utf8)).deviceAttributes == nil)
  }

  @Test func wideCharactersTakeTwoCellsAndOverwritesStayConsistent() {
    #expect(Character("画").terminalWidth == 2)
    #expect(Character("a").terminalWidth == 1)
    #expect(Character("é").terminalWidth == 1)
    #expect(Character("👍").terminalWidth == 2)
    #expect("e\u{301}".terminalWidth == 1)
    var g = CellGrid(width: 6, height: 1)
    #expect(g.put("a画b", x: 0, y: 0, style: .plain) == 4)
    #expect(g.rowText(0) == "a画b  ")
    #expect(g[2, 0].isContinuation)
    g.put("x", x: 2, y: 0, style: .plain)  // over the right half of 画
    #expect(g.rowText(0) == "a xb  ")
    // A wide character that does not fit at the edge leaves a blank.
    var h = CellGrid(width: 3, height: 1)
    h.put("ab画", x: 0, y: 0, style: .plain)
    #expect(h.rowText(0) == "ab ")
    #expect("a画bcdef".truncated(toColumns: 4) == "a画…")
  }

  // MARK: Line editing

  /// A 100 KB paste with NUL bytes, escape sequences, right-to-left text and a flood of combining
  /// marks lands in the prompt as text, and editing and drawing it stay linear (a quadratic step
  /// would take minutes at this size; the bound only catches that).
  @Test func hostilePastesStayTextAndLinear() throws {
    let h = try StudioHarness()
    let chunk =
      "a red\u{0}circle \u{1B}[31m\u{05E9}\u{05DC}\u{05D5}\u{05DD} e" + String(repeating: "\u{301}", count: 40) + " "
    let paste = String(repeating: chunk, count: 100_000 / chunk.utf8.count + 1)
    let start = Date()
    h.send([.paste(paste)])
    for _ in 0..<20 { h.keys(.left) }
    h.keys(.control("w"), .home, .end)
    h.studio.renderFrame()
    #expect(Date().timeIntervalSince(start) < 20)
    let text = h.studio.state.editor.text
    #expect(!text.unicodeScalars.contains { $0.value < 32 || $0.value == 127 })
    #expect(text.contains("\u{05E9}\u{05DC}\u{05D5}\u{05DD}"))
    #expect(text.count > 2_000)
  }

  @Test func lineEditorMovesByCharactersAndScrollsToTheCursor() {
    var e = LineEditor("héllo 画像")
    #expect(e.cursor == 8)
    _ = e.handle(.backspace)
    #expect(e.text == "héllo 画")
    _ = e.handle(.home)
    _ = e.handle(.right)
    _ = e.handle(.delete)
    #expect(e.text == "hllo 画")
    _ = e.handle(.end)
    _ = e.handle(.control("w"))
    #expect(e.text == "hllo ")
    e.insert("wörld")
    _ = e.handle(.control("a"))
    _ = e.handle(.control("k"))
    #expect(e.text == "")
    var long = LineEditor(String(repeating: "x", count: 30) + "画")
    let v = long.visible(width: 10)
    #expect(v.cursorColumn <= 9)
    #expect(v.text.hasSuffix("画"))
    _ = long.handle(.home)
    #expect(long.visible(width: 10).cursorColumn == 0)
  }

  @Test func recallWalksOlderPromptsAndBackToTheDraft() {
    var r = PromptRecall(entries: ["b", "a"])
    #expect(r.older(current: "draft") == "b")
    #expect(r.older(current: "b") == "a")
    #expect(r.older(current: "a") == nil)
    #expect(r.newer() == "b")
    #expect(r.newer() == "draft")
    #expect(r.newer() == nil)
    r.remember("a")
    #expect(r.entries == ["a", "b"])
  }

  @Test func pathCompletionExtendsToTheCommonPrefix() throws {
    let dir = temporaryDirectory("paths")
    for name in ["cat-1.png", "cat-2.png", "dog.jpg"] {
      FileManager.default.createFile(atPath: dir.appendingPathComponent(name).path, contents: Data())
    }
    try FileManager.default.createDirectory(
      at: dir.appendingPathComponent("pictures"), withIntermediateDirectories: true)
    let c = PathCompleter(baseDirectory: dir, home: dir.path)
    #expect(c.complete("ca").text == "cat-")
    #expect(c.complete("ca").candidates == ["cat-1.png", "cat-2.png"])
    #expect(c.complete("d").text == "dog.jpg")
    #expect(c.complete("pic").text == "pictures/")
    #expect(c.complete("~/do").text == "~/dog.jpg")
    #expect(c.complete("zzz").candidates.isEmpty)
  }

  // MARK: Themes and styles

  @Test func everyThemeFileLoadsAndBadOnesNameTheLineAndKey() throws {
    let library = ThemeLibrary(directories: [repositoryRoot.appendingPathComponent("themes")])
    #expect(library.names.first == "default")
    #expect(Set(library.names).isSuperset(of: ["default", "light", "high-contrast"]))
    for name in library.names {
      let t = try library.theme(named: name)
      for role in Theme.roles { #expect(t.colors[role.key] != nil, "\(name) lacks \(role.key)") }
    }
    #expect(
      throws: ThemeError(
        file: "t.theme", line: 3, message: "accent: 'purple-ish' is not a colour (#rrggbb, 0-255 or default)")
    ) {
      try Theme.parse("# comment\ntext = #ffffff\naccent = purple-ish\n", file: "t.theme", defaultName: "t")
    }
    do {
      _ = try Theme.parse("bogus = #ffffff", file: "t.theme", defaultName: "t")
      Issue.record("an unknown key was accepted")
    } catch let e as ThemeError {
      #expect(e.description.hasPrefix("t.theme:1: unknown key 'bogus'"))
    }
    #expect(throws: ThemeError.self) { try library.theme(named: "no-such-theme") }
  }

  @Test func styleLibraryLoadsSearchesAndRejectsTemplatesWithoutAPlace() throws {
    let lib = try StyleLibrary.load(contentsOf: repositoryRoot.appendingPathComponent("samples/styles.json"))
    #expect(lib.styles.count >= 8)
    #expect(lib.styles.allSatisfy { $0.template.contains("{prompt}") })
    #expect(lib.search("pixel").map(\.name) == ["Pixel art"])
    // styles written for other models than the built-in one say so, and are found by it
    #expect(lib.styles.first { $0.name == "Pencil sketch" }?.suits == nil)
    #expect(lib.styles.first { $0.name == "Oil painting" }?.suits == "photographic models (CLIP-GEN COCO)")
    #expect(lib.search("coco").count == 5)
    #expect(PromptStyle(name: "x", template: "a photo of {prompt}").apply(to: "a cat") == "a photo of a cat")
    let dir = temporaryDirectory("styles")
    let bad = dir.appendingPathComponent("styles.json")
    try Data(#"[{"name": "Broken", "template": "no place here"}]"#.utf8).write(to: bad)
    #expect(throws: StyleLibraryError(file: bad.path, message: "style 'Broken': the template has no {prompt}")) {
      try StyleLibrary.load(contentsOf: bad)
    }
    try Data(#"[{"template": "{prompt}"}]"#.utf8).write(to: bad)
    #expect(throws: StyleLibraryError(file: bad.path, message: "style #1 has no 'name'")) {
      try StyleLibrary.load(contentsOf: bad)
    }
  }

  // MARK: History store

  @Test func theLedgerRecordsEveryEndOfATaskInTheHistory() throws {
    let store = try HistoryStore(directory: temporaryDirectory("ledger"))
    let ledger = GenerationLedger(store: store, now: { Date(timeIntervalSince1970: 1000) })
    func row(_ prompt: String) -> GenerationRecord {
      GenerationRecord(
        prompt: prompt, style: nil, imagePath: nil, imageWeight: nil, settings: GenerationSettings(count: 2),
        modelName: "m")
    }
    let job = ledger.newJob()
    #expect(ledger.newJob() == job + 1)
    let a = ledger.open(row("a"), job: job, column: 0, images: 2)
    let b = ledger.open(row("b"), job: job, column: 1, images: 1)
    let c = ledger.open(row("c"), job: job, column: 2, images: 1)
    let d = ledger.open(row("d"), job: job + 1, images: 1)
    #expect(a.error == nil && a.files.count == 2 && b.files.count == 1)
    #expect(ledger.historyID(job: job, column: 1) == b.id)
    let image = Pixmap(width: 2, height: 2, red: 1, green: 2, blue: 3)
    let output = GeneratorOutput(
      pictures: [
        GeneratedPicture(image: image, tokens: [1], candidate: 0, clipScore: 0.5),
        GeneratedPicture(image: image, tokens: [2], candidate: 1, clipScore: nil),
      ], truncated: true, tokensPerSecond: 10, seconds: 2)
    // image 1 was not written: the row is done with the one image that was
    let done = ledger.finish(job: job, column: 0, output: output, saved: [a.files[0], nil], saveError: "disk full")
    #expect(done.id == a.id && done.unrecorded == nil && done.writeError == nil)
    let aID = try #require(a.id)
    let stored = try #require(try store.entry(id: aID))
    #expect(stored.generation.status == .done && stored.generation.truncated)
    #expect(stored.images.map(\.position) == [0] && stored.images[0].tokenGrid == [1])
    #expect(stored.generation.finishedAt == Date(timeIntervalSince1970: 1000))
    // no image written: failed with the save error
    _ = ledger.finish(job: job, column: 1, output: output, saved: [nil], saveError: "disk full")
    #expect(try store.entry(id: b.id ?? -1)?.generation.status == .failed)
    #expect(try store.entry(id: b.id ?? -1)?.generation.errorMessage == "disk full")
    #expect(ledger.end(job: job, column: 2, status: .cancelled, message: "cancelled at 3/16 tokens") == nil)
    #expect(try store.entry(id: c.id ?? -1)?.generation.status == .cancelled)
    #expect(ledger.historyID(job: job, column: 2) == nil)
    #expect(ledger.end(job: job, column: 2, status: .failed, message: "twice") == nil)  // closed: no second write
    #expect(try store.entry(id: c.id ?? -1)?.generation.status == .cancelled)
    ledger.endAll(status: .cancelled, message: "the studio was closed")
    #expect(try store.entry(id: d.id ?? -1)?.generation.errorMessage == "the studio was closed")
  }

  @Test func historyStoreRecordsSearchesAndDeletes() throws {
    let dir = temporaryDirectory("store")
    let store = try HistoryStore(directory: dir)
    var a = try store.begin(
      GenerationRecord(
        prompt: "a red 50% circle", style: PromptStyle(name: "Photo", template: "a photo of {prompt}"), imagePath: nil,
        imageWeight: nil, settings: GenerationSettings(temperature: 0.7, topK: 64, seed: UInt64.max), modelName: "m"))
    let file = store.imageFileName(generationID: a.id!, position: 0)
    try Data([1, 2, 3]).write(to: store.imageURL(file))
    try store.finish(
      id: a.id!,
      images: [
        ImageRecord(
          generationID: a.id!, position: 0, fileName: file, width: 8, height: 8, tokens: [1, 2, 3], candidate: 0,
          clipScore: 0.5)
      ],
      tokensPerSecond: 100, seconds: 1, truncated: false)
    _ = try store.begin(
      GenerationRecord(
        prompt: "a blue square", style: nil, imagePath: nil, imageWeight: nil, settings: GenerationSettings(),
        modelName: "m"))
    a = try #require(try store.entry(id: a.id!)).generation
    #expect(a.status == .done)
    #expect(a.seed == UInt64.max)
    #expect(a.styledPrompt == "a photo of a red 50% circle")
    #expect(a.settings.topK == 64)
    #expect(try store.entries(search: "50%").count == 1)
    #expect(try store.entries(search: "%").count == 1)  // % is literal, not a wildcard
    #expect(try store.entries(search: "photo").count == 1)  // styles are searched too
    #expect(try store.entries(search: "_").count == 0)
    #expect(try store.entry(id: a.id!)?.images.first?.tokenGrid == [1, 2, 3])
    try store.setFavorite(id: a.id!, true)
    #expect(try store.entries(favoritesOnly: true).map(\.id) == [a.id!])
    #expect(try store.recentPrompts() == ["a blue square", "a red 50% circle"])
    try store.delete(id: a.id!)
    #expect(!FileManager.default.fileExists(atPath: store.imageURL(file).path))
    #expect(try store.entries().count == 1)
    // Our own running row is left alone while we run; a fresh store (a restart) marks it.
    #expect(try store.entries().first?.generation.status == .running)
  }

  /// Keys typed while the terminal answers the start-up queries are kept (outside the replies)
  /// and replayed as keys; the replies themselves never become keys.
  @Test func typeaheadDuringTheProbeIsKept() {
    let bytes = Array("he\u{1B}[?63;1;4cllo\u{1B}[6;19;9t w\u{7F}world\r".utf8)
    let replies = TerminalReplies.parse(bytes)
    #expect(replies.deviceAttributes == [1, 4])
    #expect(replies.cellSize?.width == 9 && replies.cellSize?.height == 19)
    #expect(replies.typeahead == Array("hello w\u{7F}world\r".utf8))
    let events = typeaheadEvents(replies.typeahead)
    #expect(events.first == .key(.character("h")))
    #expect(events.contains(.key(.backspace)) && events.last == .key(.enter))
    #expect(typeaheadEvents(Array("é\u{1B}".utf8)) == [.key(.character("é"))])
  }

  /// A finish the history cannot record (here the database is locked by another process past
  /// the busy timeout) is shown as an error naming where the images are, never as Done.
  @Test func aFinishTheHistoryCannotRecordIsNotDone() throws {
    let generator = ScriptedGenerator(pauseAt: 8)
    let h = try StudioHarness(generator: generator)
    h.type("a red circle")
    h.keys(.enter)
    generator.reached.wait()
    // Another writer takes the database and keeps it.
    var held = Configuration()
    held.allowsUnsafeTransactions = true  // the transaction stays open across accesses
    let other = try DatabaseQueue(path: h.store.databaseURL.path, configuration: held)
    try other.inDatabase { try $0.execute(sql: "BEGIN EXCLUSIVE") }
    defer { try? other.inDatabase { try $0.execute(sql: "ROLLBACK") } }
    generator.gate.signal()
    #expect(h.settle(seconds: 30))
    let text = h.studio.state.message?.text ?? ""
    #expect(text.contains("history could not record it") && text.contains("images"), "\(text)")
    #expect(h.studio.state.message?.kind == .error)
    #expect(!h.screen.contains("Done in"))
  }

  /// Half-written images a killed studio left are removed at the next start (a minute old),
  /// finished images and a writer's fresh temporary file are not.
  @Test func orphanedTemporaryImagesAreRemovedAtStart() throws {
    let dir = temporaryDirectory("orphans")
    let images = dir.appendingPathComponent("images")
    try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
    let old = images.appendingPathComponent("000001-00.png.tmp-AbC123")
    let fresh = images.appendingPathComponent("000002-00.png.tmp-XyZ789")
    let kept = images.appendingPathComponent("000001-01.png")
    for url in [old, fresh, kept] { try Data([1, 2, 3]).write(to: url) }
    try FileManager.default.setAttributes(
      [.modificationDate: Date().addingTimeInterval(-3600)], ofItemAtPath: old.path)
    _ = try HistoryStore(directory: dir)
    #expect(!FileManager.default.fileExists(atPath: old.path))
    #expect(FileManager.default.fileExists(atPath: fresh.path) && FileManager.default.fileExists(atPath: kept.path))
  }

  /// Two studios on one data directory write at the same time and lose no row.
  /// A studio killed while its parent has not reaped it yet is a zombie: its rows are
  /// interrupted, not left running (kill(pid, 0) still succeeds on a zombie).
  @Test func aZombieStudioIsNotRunning() throws {
    #expect(HistoryStore.processIsRunning(getpid()))
    var pid: pid_t = 0
    let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
    defer { for a in argv { free(a) } }
    try #require(posix_spawn(&pid, "/bin/true", nil, nil, argv, environ) == 0)
    var state: Character = "?"
    for _ in 0..<500 {  // until it has exited (and, unreaped, is a zombie)
      let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
      state = stat.lastIndex(of: ")").flatMap { stat[stat.index($0, offsetBy: 2)...].first } ?? "?"
      if state == "Z" { break }
      usleep(2000)
    }
    #expect(state == "Z")
    #expect(kill(pid, 0) == 0)  // what the old check asked
    #expect(!HistoryStore.processIsRunning(pid))
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    #expect(!HistoryStore.processIsRunning(pid))
  }

  /// Installed (make install), the studio finds its themes and the built-in model in
  /// PREFIX/share/clipgen beside PREFIX/bin, from any working directory.
  @Test func installedResourcesAreFoundBesideBin() throws {
    let prefix = temporaryDirectory("installed")
    let share = prefix.appendingPathComponent("share/clipgen")
    try FileManager.default.createDirectory(
      at: share.appendingPathComponent("themes"), withIntermediateDirectories: true)
    try FileManager.default.createDirectory(
      at: share.appendingPathComponent("samples/model"), withIntermediateDirectories: true)
    try Data("{}".utf8).write(to: share.appendingPathComponent("samples/model/model.json"))
    let elsewhere = temporaryDirectory("cwd")
    let found = StudioResources.locate(
      workingDirectory: elsewhere, executable: prefix.appendingPathComponent("bin/clipgen-studio"))
    #expect(found.root?.standardizedFileURL.path == share.standardizedFileURL.path)
    #expect(found.defaultModel?.lastPathComponent == "model")
  }

  @Test func twoStoresOnOneDirectoryLoseNoRows() throws {
    let dir = temporaryDirectory("two-studios")
    let stores = [try HistoryStore(directory: dir), try HistoryStore(directory: dir)]
    let failures = Mutex(0)
    DispatchQueue.concurrentPerform(iterations: 2) { k in
      for i in 0..<60 {
        do {
          _ = try stores[k].begin(
            GenerationRecord(
              prompt: "studio \(k) prompt \(i)", style: nil, imagePath: nil, imageWeight: nil,
              settings: GenerationSettings(), modelName: "m"))
        } catch {
          failures.withLock { $0 += 1 }
        }
      }
    }
    #expect(failures.withLock { $0 } == 0)
    #expect(try HistoryStore(directory: dir).entries().count == 120)
  }

  /// A history on a read-only file system (make test-swift mounts one and sets
  /// CLIPGEN_READONLY_DIR to a directory holding a history.sqlite there) is named as such.
  @Test(
    .enabled(
      if: ProcessInfo.processInfo.environment["CLIPGEN_READONLY_DIR"] != nil,
      "needs a read-only mount (make test-swift makes one where the machine allows)"))
  func aReadOnlyHistorySaysSo() throws {
    let dir = URL(fileURLWithPath: try #require(ProcessInfo.processInfo.environment["CLIPGEN_READONLY_DIR"]))
    let before = try Data(contentsOf: dir.appendingPathComponent("history.sqlite"))
    do {
      _ = try HistoryStore(directory: dir)
      Issue.record("a read-only history opened")
    } catch let e as HistoryError {
      #expect(e.message.contains(dir.appendingPathComponent("history.sqlite").path), "\(e)")
      #expect(e.message.contains("cannot be written") && !e.isDamaged, "\(e)")
    }
    #expect(try Data(contentsOf: dir.appendingPathComponent("history.sqlite")) == before)
  }

  /// A history another program keeps locked is named as locked (it said "SQLite error 5 …
  /// while executing BEGIN IMMEDIATE TRANSACTION").
  @Test func aLockedHistorySaysSo() throws {
    let dir = temporaryDirectory("locked")
    _ = try HistoryStore(directory: dir)
    let file = dir.appendingPathComponent("history.sqlite")
    let ready = dir.appendingPathComponent("locked")
    let holder = Process()
    holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    holder.arguments = [
      "python3", "-c",
      "import sqlite3, sys, time, pathlib; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        + "c.execute('BEGIN EXCLUSIVE'); pathlib.Path(sys.argv[2]).touch(); time.sleep(20)",
      file.path, ready.path,
    ]
    try holder.run()
    defer { holder.terminate() }
    for _ in 0..<500 where !FileManager.default.fileExists(atPath: ready.path) { usleep(10_000) }
    try #require(FileManager.default.fileExists(atPath: ready.path))
    do {
      _ = try HistoryStore(directory: dir, busyTimeout: 0.2)
      Issue.record("a locked history opened")
    } catch let e as HistoryError {
      #expect(e.message.contains(file.path) && e.message.contains("locked by another program"), "\(e)")
      #expect(!e.isDamaged)
    }
  }

  /// A damaged history is detected at start, before anything writes into it, with a clear
  /// message; the file is kept byte for byte, and moving it aside starts a new history.
  @Test(arguments: ["garbage", "page", "truncated"])
  func damagedHistoryIsDetectedAndKept(damage: String) throws {
    let dir = temporaryDirectory("damaged")
    do {
      let store = try HistoryStore(directory: dir)
      for i in 0..<200 {
        _ = try store.begin(
          GenerationRecord(
            prompt: "prompt \(i) " + String(repeating: "x", count: 200), style: nil, imagePath: nil, imageWeight: nil,
            settings: GenerationSettings(), modelName: "m"))
      }
    }
    let file = dir.appendingPathComponent("history.sqlite")
    var bytes = [UInt8](try Data(contentsOf: file))
    switch damage {
    case "garbage": bytes = [UInt8](repeating: 0x5A, count: bytes.count)
    case "page": for i in 4096..<min(bytes.count, 3 * 4096) { bytes[i] = UInt8(truncatingIfNeeded: i &* 31) }
    default: bytes = Array(bytes.prefix(bytes.count / 3))
    }
    try Data(bytes).write(to: file)
    do {
      _ = try HistoryStore(directory: dir)
      Issue.record("a \(damage) history opened as if whole")
    } catch let e as HistoryError {
      #expect(e.isDamaged, "\(e)")
      #expect(e.message.contains(file.path) && e.message.contains("damaged"), "\(e)")
    }
    #expect([UInt8](try Data(contentsOf: file)) == bytes, "the damaged file was written to")
    let kept = try HistoryStore.moveAside(directory: dir, now: Date(timeIntervalSince1970: 1_700_000_000))
    #expect(kept.lastPathComponent == "history.sqlite.damaged-1700000000")
    #expect([UInt8](try Data(contentsOf: kept)) == bytes)
    #expect(try HistoryStore(directory: dir).entries().isEmpty)
  }

  @Test func fullDiskFailsTheGenerationWithTheReason() throws {
    struct FullDisk: ImageFiles {
      func load(_ url: URL) throws -> Pixmap { throw GenerationFailure(message: "unused") }
      func writePNG(_ image: Pixmap, to url: URL, text: [(key: String, value: String)]) throws {
        throw FileWriteError(path: url.path, reason: "No space left on device")
      }
    }
    let dir = temporaryDirectory()
    let driver = FakeDriver()
    let store = try HistoryStore(directory: dir)
    let env = StudioEnvironment(
      generator: ScriptedGenerator(), files: FullDisk(), store: store, themes: ThemeLibrary(directories: []),
      theme: .fallback,
      styles: StyleLibrary(styles: []), samplePrompts: [], now: { Date(timeIntervalSince1970: 0) }, previewInterval: 0,
      progressInterval: 0)
    let studio = Studio(driver: driver, environment: env)
    for ch in "a circle" { studio.handle(.key(.character(ch))) }
    studio.handle(.key(.enter))
    let deadline = Date().addingTimeInterval(10)
    while studio.isBusy && Date() < deadline { studio.step(timeoutMilliseconds: 1) }
    studio.renderFrame()
    let g = try #require(try store.entries().first?.generation)
    #expect(g.status == .failed)
    #expect(g.errorMessage?.contains("No space left on device") == true)
    #expect(studio.lastFrame?.textSnapshot().contains("No space left on device") == true)
  }

  // MARK: Export

  @Test func comparisonExportLabelsEveryColumn() {
    var cmp = CompareState(
      prompt: "a red circle", style: nil, imagePrompt: nil, base: GenerationSettings(seed: 9),
      columns: [CompareColumn(temperature: 0.5), CompareColumn(temperature: 1.5, topK: 16)])
    cmp.columns[0].image = Pixmap(width: 64, height: 64, red: 200, green: 0, blue: 0)
    let png = CompareExport.grid(cmp)
    #expect(png.width == 2 * 192 + 3 * 12)
    // The label band holds light text pixels; the missing image is a grey tile.
    let band = (0..<png.width).contains { x in png[x, 12 + 24 + 6 + 5 + 3].0 > 200 }
    #expect(band)
    let tileY = 12 + 24 + 6 + 24 + 10
    #expect(png[12 + 10, tileY].0 == 200)
    #expect(png[12 + 192 + 12 + 2, tileY + 2] == (60, 60, 66))
  }
}
