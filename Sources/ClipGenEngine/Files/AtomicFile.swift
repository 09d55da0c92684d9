// The one way clipgen writes a file: whole or not at all.
import CImageIO
import Foundation

/// A file could not be written: the path and the system's reason ("No space left on device").
public struct FileWriteError: Error, CustomStringConvertible, Equatable {
  public var path: String
  public var reason: String

  public init(path: String, reason: String) {
    self.path = path
    self.reason = reason
  }

  public var description: String { "cannot write \(path): \(reason)" }
}

/// Writes `data` to `url` whole or not at all: into a new temporary file in the same directory
/// (`<name>.tmp-XXXXXX`, mode 0644), flushed to disk, renamed over `url`, then the directory
/// flushed so the rename survives a crash. On failure `url` is untouched, the temporary file is
/// removed, and the error says which step failed and why.
public func writeAtomically(_ data: Data, to url: URL) throws {
  guard url.isFileURL else { throw FileWriteError(path: url.absoluteString, reason: "not a file URL") }
  var error = cimg_error()
  let status = data.withUnsafeBytes { raw in
    cimg_write_file_atomic(url.path, raw.bindMemory(to: UInt8.self).baseAddress, raw.count, &error)
  }
  guard status == CIMG_OK else {
    let message = withUnsafeBytes(of: error.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    throw FileWriteError(path: url.path, reason: message)
  }
}
