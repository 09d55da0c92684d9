// The history of generations: SQLite through GRDB, in `<data dir>/history.sqlite`, with the
// images as PNG files in `<data dir>/images/`. A row is written when a generation starts
// (status `running`) and updated when it ends, so a crash leaves a visible `interrupted` row.
import Foundation
import GRDB

/// Where a generation stands.
public enum GenerationStatus: String, Codable, Sendable, CaseIterable {
  case running, done, cancelled, failed
  /// It was running when the studio that ran it stopped without finishing it (a crash, a kill).
  case interrupted

  /// A one-character mark for lists.
  public var symbol: String {
    switch self {
    case .running: return "⟳"
    case .done: return "✓"
    case .cancelled: return "⊘"
    case .failed: return "✗"
    case .interrupted: return "!"
    }
  }
}

/// One generation: everything that determined it, and how it went.
public struct GenerationRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
  public static let databaseTableName = "generation"

  public var id: Int64?
  public var createdAt: Date
  public var finishedAt: Date?
  public var status: GenerationStatus
  /// The prompt as typed.
  public var prompt: String
  /// The style applied, if any, and the text the model was given.
  public var styleName: String?
  public var styledPrompt: String
  /// The image prompt, if any: its path and its weight against the text (0…1).
  public var imagePath: String?
  public var imageWeight: Double?
  /// The seed's bits (SQLite integers are signed; `seed` reads it back as UInt64).
  public var seedBits: Int64
  public var temperature: Double
  public var topK: Int?
  public var topP: Double
  public var guidanceScale: Double
  public var count: Int
  public var candidates: Int
  public var modelName: String
  public var favorite: Bool
  public var errorMessage: String?
  public var tokensPerSecond: Double?
  public var seconds: Double?
  /// Set on the columns of one temperature comparison.
  public var comparisonID: String?
  /// The process that ran it (to tell a live run from an interrupted one).
  public var processID: Int32
  /// The text was longer than the model's context and was cut.
  public var truncated: Bool
  /// The engine's generation record as JSON: the same record (less each image's candidate and
  /// CLIP score) that its PNGs carry. Absent on rows from before it was kept.
  public var parameters: String?
  /// The negative prompt guidance steered away from, if any.
  public var negativePrompt: String?

  public var seed: UInt64 {
    get { UInt64(bitPattern: seedBits) }
    set { seedBits = Int64(bitPattern: newValue) }
  }

  public var settings: GenerationSettings {
    GenerationSettings(
      temperature: Float(temperature), topK: topK, topP: Float(topP), guidanceScale: Float(guidanceScale), seed: seed,
      count: count, candidates: candidates)
  }

  public init(
    prompt: String, style: PromptStyle?, imagePath: String?, imageWeight: Double?, settings: GenerationSettings,
    modelName: String, comparisonID: String? = nil, createdAt: Date = Date(), negativePrompt: String? = nil
  ) {
    self.createdAt = createdAt
    self.negativePrompt = negativePrompt.flatMap { $0.isEmpty ? nil : $0 }
    status = .running
    self.prompt = prompt
    styleName = style?.name
    styledPrompt = style?.apply(to: prompt) ?? prompt
    self.imagePath = imagePath
    self.imageWeight = imagePath == nil ? nil : imageWeight
    seedBits = Int64(bitPattern: settings.seed)
    temperature = Double(settings.temperature)
    topK = settings.topK
    topP = Double(settings.topP)
    guidanceScale = Double(settings.guidanceScale)
    count = settings.count
    candidates = settings.candidates
    self.modelName = modelName
    favorite = false
    self.comparisonID = comparisonID
    processID = getpid()
    truncated = false
  }

  public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

  /// "a red circle · Photo + [cat.png 0.5]": the prompt as the history shows it.
  public var summary: String {
    var s = prompt.isEmpty ? "(image only)" : prompt
    if let styleName { s += " · \(styleName)" }
    if let imagePath { s += " + [\((imagePath as NSString).lastPathComponent) \(formatWeight(imageWeight ?? 1))]" }
    if let negativePrompt { s += " − \(negativePrompt)" }
    return s
  }
}

func formatWeight(_ w: Double) -> String { String(format: "%.2g", w) }

/// One image of a generation, saved as a PNG beside the database.
public struct ImageRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
  public static let databaseTableName = "image"

  public var id: Int64?
  public var generationID: Int64
  /// Order within the generation (best first when candidates were reranked).
  public var position: Int
  /// File name inside the images directory.
  public var fileName: String
  public var width: Int
  public var height: Int
  /// The token grid, row-major, as comma-separated codebook indices.
  public var tokens: String
  public var candidate: Int
  public var clipScore: Double?

  public init(
    generationID: Int64, position: Int, fileName: String, width: Int, height: Int, tokens: [Int], candidate: Int,
    clipScore: Double?
  ) {
    self.generationID = generationID
    self.position = position
    self.fileName = fileName
    self.width = width
    self.height = height
    self.tokens = tokens.map(String.init).joined(separator: ",")
    self.candidate = candidate
    self.clipScore = clipScore
  }

  public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

  public var tokenGrid: [Int] { tokens.split(separator: ",").compactMap { Int($0) } }
}

/// A generation with its images, as the history pane lists it.
public struct HistoryEntry: Sendable, Equatable {
  public var generation: GenerationRecord
  public var images: [ImageRecord]
  public var id: Int64 { generation.id ?? -1 }
}

/// Errors of the history store, naming the file or row concerned.
public struct HistoryError: Error, CustomStringConvertible {
  public var message: String
  /// The database file exists but is damaged (not a database, or fails SQLite's quick check).
  /// Nothing was written to it; `HistoryStore.moveAside` keeps it and makes room for a new one.
  public var isDamaged = false
  public var description: String { message }
}

/// The history database and image folder.
public final class HistoryStore: Sendable {
  public let directory: URL
  public let databaseURL: URL
  public let imagesDirectory: URL
  private let queue: DatabaseQueue
  /// Rows this open found left `running` by a studio that is gone, now marked `interrupted`.
  public let recoveredInterrupted: [Int64]

  /// Removes half-written images a killed studio left (`<name>.png.tmp-XXXXXX`, from
  /// `writeAtomically`) once they are a minute old, so a writer still at work keeps its own.
  static func removeOrphanedTemporaryFiles(in directory: URL, now: Date = Date()) {
    let fm = FileManager.default
    guard let names = try? fm.contentsOfDirectory(atPath: directory.path) else { return }
    for name in names where name.contains(".tmp-") {
      let url = directory.appendingPathComponent(name)
      let modified = (try? fm.attributesOfItem(atPath: url.path)[.modificationDate] as? Date) ?? now
      if now.timeIntervalSince(modified) > 60 { try? fm.removeItem(at: url) }
    }
  }

  /// Renames a damaged `history.sqlite` (and its journal files) in `directory` to
  /// `history.sqlite.damaged-<time>`, keeping it whole, so a new history can start. Returns the
  /// new name.
  @discardableResult
  public static func moveAside(directory: URL, now: Date = Date()) throws -> URL {
    let stamp = Int(now.timeIntervalSince1970)
    let database = directory.appendingPathComponent("history.sqlite")
    let kept = directory.appendingPathComponent("history.sqlite.damaged-\(stamp)")
    let fm = FileManager.default
    do {
      try fm.moveItem(at: database, to: kept)
    } catch {
      throw HistoryError(message: "cannot move \(database.path) aside: \(error.localizedDescription)")
    }
    for suffix in ["-wal", "-shm", "-journal"] {
      let extra = directory.appendingPathComponent("history.sqlite" + suffix)
      if fm.fileExists(atPath: extra.path) {
        try? fm.moveItem(at: extra, to: directory.appendingPathComponent("history.sqlite.damaged-\(stamp)" + suffix))
      }
    }
    return kept
  }

  /// The default data directory: `$XDG_DATA_HOME/clipgen`, else `~/.local/share/clipgen`.
  public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
    if let xdg = environment["XDG_DATA_HOME"], !xdg.isEmpty, xdg.hasPrefix("/") {
      return URL(fileURLWithPath: xdg).appendingPathComponent("clipgen")
    }
    let home = environment["HOME"].map { URL(fileURLWithPath: $0) } ?? FileManager.default.homeDirectoryForCurrentUser
    return home.appendingPathComponent(".local/share/clipgen")
  }

  /// Opens (creating if needed) the store in `directory`, migrates it, and marks rows left
  /// `running` by processes that no longer exist as `interrupted`.
  /// - Parameter busyTimeout: how long a write waits for another program's lock (seconds).
  public init(directory: URL, busyTimeout: TimeInterval = HistoryStore.busyTimeout) throws {
    self.directory = directory
    databaseURL = directory.appendingPathComponent("history.sqlite")
    imagesDirectory = directory.appendingPathComponent("images")
    do {
      try FileManager.default.createDirectory(at: imagesDirectory, withIntermediateDirectories: true)
    } catch {
      throw HistoryError(
        message: "cannot create the data directory \(imagesDirectory.path): \(error.localizedDescription)")
    }
    do {
      var config = Configuration()
      // Two studios on one data directory: each waits its turn to write (WAL lets readers go
      // on meanwhile) instead of failing with "database is locked".
      config.busyMode = .timeout(busyTimeout)
      config.prepareDatabase { db in
        if try String.fetchOne(db, sql: "PRAGMA journal_mode") != "wal" {
          try db.execute(sql: "PRAGMA journal_mode = WAL")
        }
      }
      queue = try DatabaseQueue(path: databaseURL.path, configuration: config)
    } catch let e as DatabaseError where e.resultCode == .SQLITE_NOTADB || e.resultCode == .SQLITE_CORRUPT {
      throw HistoryError(
        message:
          "the history database \(databaseURL.path) is damaged (\(e.message ?? "\(e.resultCode)")); nothing was written to it",
        isDamaged: true)
    } catch let e as DatabaseError where e.resultCode == .SQLITE_READONLY {
      throw HistoryError(
        message:
          "the history database \(databaseURL.path) cannot be written (read-only: \(e.message ?? "")); check its permissions and the file system, or pass --data-dir"
      )
    } catch {
      throw HistoryError(message: "cannot open the history database \(databaseURL.path): \(error)")
    }
    // Checked before anything is written (a migration would write into a damaged file).
    let verdict: String
    do {
      verdict = try queue.read { db in try String.fetchOne(db, sql: "PRAGMA quick_check") } ?? "no answer"
    } catch {
      verdict = "\(error)"
    }
    guard verdict == "ok" else {
      throw HistoryError(
        message:
          "the history database \(databaseURL.path) is damaged (\(verdict.prefix(200))); nothing was written to it",
        isDamaged: true)
    }
    do {
      try HistoryStore.migrator.migrate(queue)
      recoveredInterrupted = try HistoryStore.recoverInterrupted(queue)
    } catch let e as DatabaseError where e.resultCode == .SQLITE_BUSY || e.resultCode == .SQLITE_LOCKED {
      throw HistoryError(
        message:
          "the history database \(databaseURL.path) is locked by another program (it held its lock longer than \(busyTimeout.formatted()) s); close that program and start again"
      )
    } catch let e as DatabaseError where e.resultCode == .SQLITE_READONLY || e.resultCode == .SQLITE_CANTOPEN {
      throw HistoryError(
        message:
          "the history database \(databaseURL.path) cannot be written (\(e.message ?? "read-only")); check its permissions and the disk"
      )
    } catch let e as HistoryError {
      throw e
    } catch {
      throw HistoryError(message: "cannot open the history database \(databaseURL.path): \(error)")
    }
    HistoryStore.removeOrphanedTemporaryFiles(in: imagesDirectory)
  }

  static var migrator: DatabaseMigrator {
    var m = DatabaseMigrator()
    m.registerMigration("v1: generations and images") { db in
      try db.create(table: "generation") { t in
        t.autoIncrementedPrimaryKey("id")
        t.column("createdAt", .datetime).notNull().indexed()
        t.column("finishedAt", .datetime)
        t.column("status", .text).notNull()
        t.column("prompt", .text).notNull()
        t.column("styleName", .text)
        t.column("styledPrompt", .text).notNull()
        t.column("imagePath", .text)
        t.column("imageWeight", .double)
        t.column("seedBits", .integer).notNull()
        t.column("temperature", .double).notNull()
        t.column("topK", .integer)
        t.column("topP", .double).notNull()
        t.column("guidanceScale", .double).notNull()
        t.column("count", .integer).notNull()
        t.column("candidates", .integer).notNull()
        t.column("modelName", .text).notNull()
        t.column("favorite", .boolean).notNull().defaults(to: false)
        t.column("errorMessage", .text)
        t.column("tokensPerSecond", .double)
        t.column("seconds", .double)
        t.column("comparisonID", .text)
        t.column("processID", .integer).notNull()
        t.column("truncated", .boolean).notNull().defaults(to: false)
      }
      try db.create(table: "image") { t in
        t.autoIncrementedPrimaryKey("id")
        t.column("generationID", .integer).notNull().indexed().references("generation", onDelete: .cascade)
        t.column("position", .integer).notNull()
        t.column("fileName", .text).notNull()
        t.column("width", .integer).notNull()
        t.column("height", .integer).notNull()
        t.column("tokens", .text).notNull()
        t.column("candidate", .integer).notNull()
        t.column("clipScore", .double)
      }
    }
    m.registerMigration("v2: preferences") { db in
      try db.create(table: "preference") { t in
        t.primaryKey("key", .text)
        t.column("value", .text).notNull()
      }
    }
    m.registerMigration("v3: the generation record") { db in
      try db.alter(table: "generation") { t in t.add(column: "parameters", .text) }
    }
    m.registerMigration("v4: negative prompts") { db in
      try db.alter(table: "generation") { t in t.add(column: "negativePrompt", .text) }
    }
    m.registerMigration("v5: keyset pages of the history") { db in
      // The list's order (newest first, id breaking ties) as one index: every page, count and
      // jump to the oldest row is a range scan of it, whatever the history's size.
      try db.create(index: "generation_order", on: "generation", columns: ["createdAt", "id"])
    }
    return m
  }

  private func write<T>(_ what: String, _ body: (Database) throws -> T) throws -> T {
    do {
      return try queue.write(body)
    } catch {
      throw HistoryError(message: "history (\(databaseURL.path)): cannot \(what): \(error)")
    }
  }

  func read<T>(_ body: (Database) throws -> T) throws -> T {
    do {
      return try queue.read(body)
    } catch {
      throw HistoryError(message: "history (\(databaseURL.path)): cannot read: \(error)")
    }
  }

  /// How long a write waits for another program's lock on the database (seconds).
  public static let busyTimeout: TimeInterval = 5

  private static func recoverInterrupted(_ queue: DatabaseQueue) throws -> [Int64] {
    let me = getpid()
    return try queue.write { db in
      var ids: [Int64] = []
      let running = try GenerationRecord.filter(Column("status") == GenerationStatus.running.rawValue).fetchAll(db)
      for var r in running where r.processID == me || !processIsRunning(r.processID) {
        r.status = .interrupted
        r.errorMessage = r.errorMessage ?? "the studio stopped while this was running"
        r.finishedAt = Date()
        try r.update(db)
        if let id = r.id { ids.append(id) }
      }
      return ids
    }
  }

  /// Whether `pid` is a process that still runs. A killed studio whose parent has not reaped it
  /// yet is a zombie: it exists for kill(2) but will never finish its row (seen when the terminal
  /// that ran it closed: the zombie waits for init).
  static func processIsRunning(_ pid: Int32) -> Bool {
    guard pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return false }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = stat.lastIndex(of: ")")
    else { return true }  // no /proc: kill(2)'s answer
    let state = stat[stat.index(after: close)...].drop { $0 == " " }.first
    return state != "Z" && state != "X"
  }

  /// Records a generation as started (status `running`) and returns it with its id.
  public func begin(_ record: GenerationRecord) throws -> GenerationRecord {
    var r = record
    r.status = .running
    r.processID = getpid()
    try write("record the start of a generation") { db in try r.insert(db) }
    return r
  }

  /// Marks a generation done and adds its images, in one transaction.
  public func finish(
    id: Int64, images: [ImageRecord], tokensPerSecond: Double?, seconds: Double?, truncated: Bool,
    at date: Date = Date()
  ) throws {
    try write("record a finished generation") { db in
      guard var r = try GenerationRecord.fetchOne(db, key: id) else {
        throw HistoryError(message: "generation \(id) is not in the history")
      }
      r.status = .done
      r.finishedAt = date
      r.tokensPerSecond = tokensPerSecond
      r.seconds = seconds
      r.truncated = truncated
      try r.update(db)
      for var image in images {
        image.generationID = id
        try image.insert(db)
      }
    }
  }

  /// Marks a generation cancelled or failed (with a message).
  public func end(id: Int64, status: GenerationStatus, message: String? = nil, at date: Date = Date()) throws {
    try write("record the end of a generation") { db in
      guard var r = try GenerationRecord.fetchOne(db, key: id) else { return }
      r.status = status
      r.finishedAt = date
      r.errorMessage = message
      try r.update(db)
    }
  }

  /// One generation with its images.
  public func entry(id: Int64) throws -> HistoryEntry? {
    try read { db in
      guard let g = try GenerationRecord.fetchOne(db, key: id) else { return nil }
      let images = try ImageRecord.filter(Column("generationID") == id).order(Column("position")).fetchAll(db)
      return HistoryEntry(generation: g, images: images)
    }
  }

  public func setFavorite(id: Int64, _ favorite: Bool) throws {
    try write("mark a favourite") { db in
      try db.execute(sql: "UPDATE generation SET favorite = ? WHERE id = ?", arguments: [favorite, id])
    }
  }

  /// Deletes a generation, its image rows and its image files.
  public func delete(id: Int64) throws {
    let files = try write("delete a generation") { db -> [String] in
      let names = try String.fetchAll(db, sql: "SELECT fileName FROM image WHERE generationID = ?", arguments: [id])
      try db.execute(sql: "DELETE FROM image WHERE generationID = ?", arguments: [id])
      try db.execute(sql: "DELETE FROM generation WHERE id = ?", arguments: [id])
      return names
    }
    for name in files { try? FileManager.default.removeItem(at: imagesDirectory.appendingPathComponent(name)) }
  }

  /// Distinct prompts, most recent first (for recall in the prompt line).
  public func recentPrompts(limit: Int = 200) throws -> [String] {
    try read { db in
      try String.fetchAll(
        db,
        sql:
          "SELECT prompt FROM generation WHERE prompt <> '' GROUP BY prompt ORDER BY MAX(createdAt) DESC, MAX(id) DESC LIMIT ?",
        arguments: [limit])
    }
  }

  /// A remembered preference (the theme, the sampling settings), or nil.
  public func preference(_ key: String) -> String? {
    try? queue.read { db in try String.fetchOne(db, sql: "SELECT value FROM preference WHERE key = ?", arguments: [key])
    }
  }

  /// Remembers a preference for the next start.
  public func setPreference(_ key: String, _ value: String) throws {
    try write("remember a preference") { db in
      try db.execute(
        sql: "INSERT INTO preference (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        arguments: [key, value])
    }
  }

  /// Runs raw SQL against the store (tests simulate crashes and old rows with it).
  func queueForTests(_ body: (Database) throws -> Void) throws { try queue.write(body) }

  /// The file an image of generation `id` at `position` is saved to.
  public func imageFileName(generationID id: Int64, position: Int) -> String {
    String(format: "%06lld-%02d.png", id, position)
  }

  public func imageURL(_ fileName: String) -> URL { imagesDirectory.appendingPathComponent(fileName) }

  /// SQLite's full consistency check of the database ("ok" when sound).
  public func integrityCheck() throws -> String {
    try queue.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ") }
  }
}
