// Runs generations off the UI thread. The worker samples, decodes live previews at each
// completed token row, saves the finished images as PNGs, and posts what happened to the
// studio's inbox; the UI thread reads the inbox between key presses.
import ClipGenEngine
import Foundation
import Synchronization

/// A thread-safe queue of messages for the UI thread.
public final class Inbox<Message: Sendable>: Sendable {
  private let items = Mutex<[Message]>([])

  public init() {}

  public func post(_ message: Message) { items.withLock { $0.append(message) } }

  /// Everything posted since the last call, oldest first.
  public func drain() -> [Message] {
    items.withLock { q in
      let all = q
      q.removeAll()
      return all
    }
  }

  public var isEmpty: Bool { items.withLock { $0.isEmpty } }
}

/// One generation for the worker to run: a request and where its history row and files go.
public struct GenerationTask: Sendable {
  /// The history row (nil when the history could not record it).
  public var historyID: Int64?
  public var request: StudioRequest
  /// Which comparison column this is (0 for ordinary generations).
  public var column: Int
  /// PNG files to write the images to, in order (fewer than the images: the rest are not saved).
  public var files: [URL]
  /// Text chunks to put in each PNG (the generation parameters).
  /// The generation's record; each saved PNG carries it with its own candidate and CLIP score.
  public var parameters: GenerationParameters

  public init(
    historyID: Int64?, request: StudioRequest, column: Int = 0, files: [URL], parameters: GenerationParameters
  ) {
    self.historyID = historyID
    self.request = request
    self.column = column
    self.files = files
    self.parameters = parameters
  }
}

/// What the worker reports.
public enum WorkerMessage: Sendable {
  case started(job: Int, column: Int)
  case conditioned(job: Int, column: Int, truncated: Bool)
  case progress(job: Int, column: Int, done: Int, total: Int, tokensPerSecond: Double)
  /// A decode of the first candidate's grid so far (`rows` of `gridHeight` token rows sampled).
  case preview(job: Int, column: Int, image: Pixmap, rows: Int)
  /// Finished; `saved[i]` is the file of picture i, or nil when it could not be written (`saveError`).
  case finished(job: Int, column: Int, output: GeneratorOutput, saved: [URL?], saveError: String?)
  case cancelled(job: Int, column: Int, done: Int, total: Int)
  case failed(job: Int, column: Int, message: String)
  /// Every task of the job has ended.
  case jobEnded(job: Int)
}

/// Runs one job (one or more tasks, in order) on its own thread.
public final class GenerationWorker: Sendable {
  public let job: Int
  private let cancelFlag = Atomic<Bool>(false)
  private let finishedFlag = Atomic<Bool>(false)

  /// Starts `tasks` on a new thread at once.
  public init(
    job: Int, tasks: [GenerationTask], generator: Generator, files: ImageFiles,
    post: @escaping @Sendable (WorkerMessage) -> Void, previewInterval: Double = 0.12,
    progressInterval: Double = 0.03
  ) {
    self.job = job
    let thread = Thread { [self] in
      for task in tasks {
        if cancelFlag.load(ordering: .relaxed) {
          post(.cancelled(job: job, column: task.column, done: 0, total: generator.gridHeight * generator.gridWidth))
          continue
        }
        run(
          task, generator: generator, files: files, post: post, previewInterval: previewInterval,
          progressInterval: progressInterval)
      }
      finishedFlag.store(true, ordering: .releasing)
      post(.jobEnded(job: job))
    }
    thread.name = "clipgen generation \(job)"
    thread.stackSize = 16 << 20
    thread.start()
  }

  /// Asks the running generation to stop at its next token.
  public func cancel() { cancelFlag.store(true, ordering: .relaxed) }
  public var isCancelled: Bool { cancelFlag.load(ordering: .relaxed) }
  public var isFinished: Bool { finishedFlag.load(ordering: .acquiring) }

  /// Waits (polling) up to `seconds` for the thread to end; true when it did.
  @discardableResult
  public func wait(seconds: Double) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while !isFinished && Date() < deadline { usleep(5_000) }
    return isFinished
  }

  private func run(
    _ task: GenerationTask, generator: Generator, files: ImageFiles, post: @Sendable (WorkerMessage) -> Void,
    previewInterval: Double, progressInterval: Double
  ) {
    let column = task.column
    post(.started(job: job, column: column))
    let width = max(1, generator.gridWidth)
    // Previews are decoded on this thread between tokens, so each one delays sampling. After a
    // decode that took d seconds the next waits at least 3·d: previews never take more than about
    // a quarter of the time, however slow the decoder.
    var nextPreview = Date.distantPast
    var lastProgress = Date.distantPast
    var done = 0
    var total = generator.gridHeight * generator.gridWidth
    do {
      let output = try generator.generate(task.request) { event in
        if self.cancelFlag.load(ordering: .relaxed) { return false }
        switch event {
        case .conditioned(let truncated):
          post(.conditioned(job: self.job, column: column, truncated: truncated))
        case .sampled(let d, let t, let tokens, let rate):
          done = d
          total = t
          let now = Date()
          if now.timeIntervalSince(lastProgress) >= progressInterval || d == t {
            lastProgress = now
            post(.progress(job: self.job, column: column, done: d, total: t, tokensPerSecond: rate))
          }
          // A live preview at a completed token row (the finished grid is decoded by the engine).
          if d % width == 0, d < t, now >= nextPreview, let first = tokens.first {
            let start = Date()
            if let image = try? generator.preview(tokens: first) {
              post(.preview(job: self.job, column: column, image: image, rows: d / width))
            }
            let took = Date().timeIntervalSince(start)
            nextPreview = Date().addingTimeInterval(max(previewInterval, 3 * took))
          }
        case .decoded(let index, _, let image):
          if index == 0 { post(.preview(job: self.job, column: column, image: image, rows: generator.gridHeight)) }
        }
        return !self.cancelFlag.load(ordering: .relaxed)
      }
      var saved: [URL?] = []
      var saveError: String?
      for (i, picture) in output.pictures.enumerated() {
        guard i < task.files.count else {
          saved.append(nil)
          continue
        }
        let url = task.files[i]
        do {
          let record = task.parameters.forImage(
            candidate: picture.candidate, clipScore: picture.clipScore, tokens: picture.tokens)
          let text = try record.pngText(
            width: picture.image.width, height: picture.image.height, steps: picture.tokens.count)
          try files.writePNG(picture.image, to: url, text: text)
          saved.append(url)
        } catch {
          saved.append(nil)
          if let e = error as? FileWriteError {
            saveError = saveError ?? "\(e.reason) (writing \(e.path))"
          } else {
            saveError = saveError ?? "cannot save \(url.path): \(error)"
          }
        }
      }
      post(.finished(job: job, column: column, output: output, saved: saved, saveError: saveError))
    } catch is GenerationCancelled {
      post(.cancelled(job: job, column: column, done: done, total: total))
    } catch {
      if cancelFlag.load(ordering: .relaxed) {
        post(.cancelled(job: job, column: column, done: done, total: total))
      } else {
        post(.failed(job: job, column: column, message: "\(error)"))
      }
    }
  }
}
