// Finding the studio's files (themes/, samples/) and the model to open: next to the working
// directory, next to the executable, or in a directory the user names.
import Foundation

/// Where the studio's resources are.
public struct StudioResources: Sendable {
  /// The repository (or install) root holding `themes/` and `samples/`, if found.
  public var root: URL?

  public init(root: URL?) { self.root = root }

  /// Looks for a directory with `themes/` in the working directory, the executable's directory,
  /// and their ancestors, then in `share/clipgen` beside the executable's `bin/` (`make install`).
  public static func locate(
    workingDirectory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
    executable: URL = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
  ) -> StudioResources {
    let fm = FileManager.default
    for start in [workingDirectory, executable.deletingLastPathComponent()] {
      var dir = start.standardizedFileURL
      for _ in 0..<8 {
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: dir.appendingPathComponent("themes").path, isDirectory: &isDir), isDir.boolValue {
          return StudioResources(root: dir)
        }
        let parent = dir.deletingLastPathComponent()
        if parent.path == dir.path { break }
        dir = parent
      }
    }
    let installed = executable.deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("share/clipgen")
    if fm.fileExists(atPath: installed.appendingPathComponent("themes").path) {
      return StudioResources(root: installed)
    }
    return StudioResources(root: nil)
  }

  public var themesDirectory: URL? { root?.appendingPathComponent("themes") }
  public var stylesFile: URL? { root?.appendingPathComponent("samples/styles.json") }
  public var promptsFile: URL? { root?.appendingPathComponent("samples/prompts.txt") }

  /// The model to open when none is named: the built-in `samples/model`, else the test fixture.
  public var defaultModel: URL? {
    guard let root else { return nil }
    for rel in ["samples/model", "Tests/ClipGenEngineTests/Fixtures/tiny_model"] {
      let dir = root.appendingPathComponent(rel)
      if FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.json").path) { return dir }
    }
    return nil
  }

  /// Sample prompts (one per line, `#` comments), or none when the file is missing.
  public func samplePrompts() -> [String] {
    guard let url = promptsFile, let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
      !$0.isEmpty && !$0.hasPrefix("#")
    }
  }
}
