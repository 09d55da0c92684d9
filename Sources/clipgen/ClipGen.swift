// The `clipgen` command line: a thin layer over ClipGenEngine.
import ArgumentParser
import ClipGenEngine
import Foundation

@main
struct ClipGen: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "clipgen",
    abstract: "Text-to-image generation with CLIP-GEN on the CPU.",
    version: ClipGenVersion.string,
    subcommands: [Generate.self, Interpolate.self, Convert.self, Inspect.self, Score.self, Bench.self])

  static func main() {
    EngineEnvironment.reexecWithPreferredBLASCore()
    do {
      var command = try parseAsRoot()
      try command.run()
    } catch {
      exit(withError: error)
    }
  }
}

/// Where the built-in model lives relative to the working directory or the executable.
func defaultModelDirectory() -> URL? {
  let fm = FileManager.default
  var candidates = [URL(fileURLWithPath: fm.currentDirectoryPath).appendingPathComponent("samples/model")]
  if let env = ProcessInfo.processInfo.environment["CLIPGEN_MODEL"] {
    candidates.insert(URL(fileURLWithPath: env), at: 0)
  }
  var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
  for _ in 0..<4 {
    candidates.append(dir.appendingPathComponent("samples/model"))
    dir = dir.deletingLastPathComponent()
  }
  // Installed (make install): PREFIX/bin/clipgen and PREFIX/share/clipgen/samples/model.
  let bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
  candidates.append(bin.deletingLastPathComponent().appendingPathComponent("share/clipgen/samples/model"))
  return candidates.first { fm.fileExists(atPath: $0.appendingPathComponent("model.json").path) }
}

/// An error printed as one clear line and a non-zero exit.
struct CLIError: Error, CustomStringConvertible {
  let description: String
  init(_ d: String) { description = d }
}
