// Job bookkeeping and the history writes of generations in flight. The studio starts jobs and
// shows what becomes of them; the ledger numbers the jobs, remembers which history row each task
// (job, column) writes to, and records every start and end in the history. It never touches the
// screen: each write reports its error for the studio to show.
import ClipGenEngine
import Foundation

final class GenerationLedger {
  let store: HistoryStore
  let now: () -> Date
  private var nextJob = 1
  /// History rows of the tasks in flight, by job and column.
  private var openRows: [Int: [Int: Int64]] = [:]

  init(store: HistoryStore, now: @escaping () -> Date) {
    self.store = store
    self.now = now
  }

  /// A new job's number.
  func newJob() -> Int {
    defer { nextJob += 1 }
    return nextJob
  }

  /// A task's row in the history, once `open` recorded it.
  struct Opened {
    /// The row as stored (with its id), or as given when it could not be stored.
    var row: GenerationRecord
    /// Where the task's images go: the history's image files, none when the row is not stored.
    var files: [URL]
    /// Why the row is not in the history (full disk, locked database), if it is not.
    var error: String?
    var id: Int64? { row.id }
  }

  /// Records `row` as running for task (`job`, `column`), which writes `images` images.
  func open(_ row: GenerationRecord, job: Int, column: Int = 0, images: Int) -> Opened {
    do {
      let stored = try store.begin(row)
      guard let id = stored.id else { return Opened(row: stored, files: [], error: "the history gave no row id") }
      openRows[job, default: [:]][column] = id
      let files = (0..<images).map { store.imageURL(store.imageFileName(generationID: id, position: $0)) }
      return Opened(row: stored, files: files, error: nil)
    } catch {
      return Opened(row: row, files: [], error: "\(error)")
    }
  }

  /// The history row task (`job`, `column`) writes to.
  func historyID(job: Int, column: Int) -> Int64? { openRows[job]?[column] }

  /// Records a cancelled or failed task; returns the history's error, if the write failed.
  func end(job: Int, column: Int, status: GenerationStatus, message: String) -> String? {
    guard let id = openRows[job]?.removeValue(forKey: column) else { return nil }
    do {
      try store.end(id: id, status: status, message: message)
      return nil
    } catch {
      return "\(error)"
    }
  }

  /// What recording a finished task came to.
  struct Finished {
    var id: Int64?
    /// Why the history could not record the finish (the row is then marked failed), if so.
    var unrecorded: String?
    /// The history's error while marking the row failed, if that failed too.
    var writeError: String?
  }

  /// Records a finished task and its saved images (`saved[i]`: image i's file, nil when it was not
  /// written). With no image saved and `saveError`, the row is marked failed with that error: a
  /// finish the history cannot record is a failure the person sees, never "Done".
  func finish(job: Int, column: Int, output: GeneratorOutput, saved: [URL?], saveError: String?) -> Finished {
    guard let id = openRows[job]?.removeValue(forKey: column) else { return Finished() }
    var records: [ImageRecord] = []
    for (i, picture) in output.pictures.enumerated() {
      guard i < saved.count, let url = saved[i] else { continue }
      records.append(
        ImageRecord(
          generationID: id, position: i, fileName: url.lastPathComponent, width: picture.image.width,
          height: picture.image.height, tokens: picture.tokens, candidate: picture.candidate,
          clipScore: picture.clipScore.map(Double.init)))
    }
    var result = Finished(id: id)
    if records.isEmpty, let saveError {
      result.writeError = write { try store.end(id: id, status: .failed, message: saveError) }
      return result
    }
    do {
      try store.finish(
        id: id, images: records, tokensPerSecond: output.tokensPerSecond, seconds: output.seconds,
        truncated: output.truncated, at: now())
    } catch {
      result.unrecorded = "\(error)"
      result.writeError = write { try store.end(id: id, status: .failed, message: "not recorded: \(error)") }
    }
    return result
  }

  /// Ends every task still open (the studio is closing); errors are dropped, the next start
  /// marks rows of a process that is gone as interrupted.
  func endAll(status: GenerationStatus, message: String) {
    for id in openRows.values.flatMap(\.values) { try? store.end(id: id, status: status, message: message) }
    openRows.removeAll()
  }

  /// Forgets a job whose tasks have all ended.
  func jobEnded(_ job: Int) { openRows[job] = nil }

  private func write(_ body: () throws -> Void) -> String? {
    do {
      try body()
      return nil
    } catch {
      return "\(error)"
    }
  }
}
