import ArgumentParser
import ClipGenEngine

@main
struct ClipGen: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "clipgen",
    abstract: "Text-to-image generation with CLIP-GEN on the CPU.",
    subcommands: [])
}
