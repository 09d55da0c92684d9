// Tab completion of file paths for the image-prompt field.
import Foundation

/// Completes a partly typed path against the file system.
public struct PathCompleter: Sendable {
  /// The directory relative paths start from.
  public var baseDirectory: URL
  public var home: String

  public init(
    baseDirectory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
    home: String = NSHomeDirectory()
  ) {
    self.baseDirectory = baseDirectory
    self.home = home
  }

  /// A path with `~` expanded and relative paths resolved against the base directory.
  public func resolve(_ path: String) -> URL {
    var p = path
    if p == "~" || p.hasPrefix("~/") { p = home + p.dropFirst() }
    return p.hasPrefix("/") ? URL(fileURLWithPath: p) : baseDirectory.appendingPathComponent(p)
  }

  /// The completion of `partial`: the longest common extension of every matching entry (a
  /// directory gets a trailing "/"), and the matching names (directories with "/") to show.
  /// Hidden files are offered only when the typed name starts with ".".
  public func complete(_ partial: String) -> (text: String, candidates: [String]) {
    let slash = partial.lastIndex(of: "/")
    let dirPart = slash.map { String(partial[...$0]) } ?? ""
    let namePart = slash.map { String(partial[partial.index(after: $0)...]) } ?? partial
    let dirURL = dirPart.isEmpty ? baseDirectory : resolve(dirPart)
    let fm = FileManager.default
    guard let names = try? fm.contentsOfDirectory(atPath: dirURL.path) else { return (partial, []) }
    let matches = names.filter { $0.hasPrefix(namePart) && (namePart.hasPrefix(".") || !$0.hasPrefix(".")) }.sorted()
    guard !matches.isEmpty else { return (partial, []) }
    func isDir(_ name: String) -> Bool {
      var d: ObjCBool = false
      return fm.fileExists(atPath: dirURL.appendingPathComponent(name).path, isDirectory: &d) && d.boolValue
    }
    let shown = matches.map { isDir($0) ? $0 + "/" : $0 }
    if matches.count == 1 { return (dirPart + shown[0], shown) }
    var common = matches[0]
    for m in matches.dropFirst() {
      while !m.hasPrefix(common) { common.removeLast() }
    }
    return (dirPart + common, shown)
  }
}
