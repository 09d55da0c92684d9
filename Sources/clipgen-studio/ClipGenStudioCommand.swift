// clipgen-studio: start-up only. Parses the flags, loads the model, opens the history and the
// terminal, and runs the studio (Sources/ClipGenStudio).
import ArgumentParser
import ClipGenEngine
import ClipGenStudio
import Foundation

@main
struct ClipGenStudioCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "clipgen-studio",
    abstract: "A terminal studio for CLIP-GEN text-to-image generation.",
    discussion: """
      Type a prompt and press Enter: the image appears row by row as the model samples it (Esc \
      cancels). Every generation is kept, with its seed and settings, in the history. In the \
      studio, F1 lists every key. With NO_COLOR set, the studio draws without colour (reverse \
      video for highlights, sixel images only) unless --colors or --images blocks asks for it.
      """,
    version: ClipGenVersion.string)

  @Option(help: "Model directory (with model.json). Default: samples/model, else the test fixture model.")
  var model: String?

  @Option(help: "Where the history and images are kept. Default: $XDG_DATA_HOME/clipgen (~/.local/share/clipgen).")
  var dataDir: String?

  @Option(
    help:
      "Colour theme: a name from themes/ (default, light, high-contrast, dusk) or a .theme file. Default: the last one chosen with F6."
  )
  var theme: String?

  @Option(
    help: "The prior's weights while sampling: f16 (half the bytes per token, the default), f32 (exact) or file.")
  var weights: PriorWeights = .f16

  @Option(help: "Inline images: auto (sixel where the terminal has it), sixel, blocks or none.")
  var images: String = "auto"

  @Option(help: "Colours for half-block images: auto, 24bit, 256 or 16.")
  var colors: String = "auto"

  @Option(help: "Style library (JSON). Default: samples/styles.json.")
  var styles: String?

  @Flag(
    help: "When the history database is damaged, keep it as history.sqlite.damaged-<time> and start a new one.")
  var moveDamagedHistory = false

  @Flag(help: "Do not query the terminal (device attributes, cell size) at start-up.")
  var noProbe = false

  func validate() throws {
    guard images == "auto" || ImageMode(rawValue: images) != nil else {
      throw ValidationError("--images must be auto, sixel, blocks or none (got '\(images)')")
    }
    guard colors == "auto" || ColorDepth(rawValue: colors) != nil else {
      throw ValidationError("--colors must be auto, 24bit, 256 or 16 (got '\(colors)')")
    }
  }

  func run() throws {
    EngineEnvironment.reexecWithPreferredBLASCore()
    let resources = StudioResources.locate()
    guard isatty(STDIN_FILENO) == 1, isatty(STDOUT_FILENO) == 1 else {
      throw fail("needs a terminal: standard input and output must be a tty")
    }
    let dataURL = dataDir.map { URL(fileURLWithPath: $0) } ?? HistoryStore.defaultDirectory()
    var (store, notices) = try openHistory(dataURL)
    let themes = ThemeLibrary(
      directories: [resources.themesDirectory, dataURL.appendingPathComponent("themes")].compactMap { $0 })
    let chosenTheme = try chooseTheme(themes, store: store)
    let library = try loadStyles(resources, notices: &notices)
    let (modelURL, generator) = try loadModel(resources)

    var env = StudioEnvironment(
      generator: generator, files: EngineImageFiles(), store: store, themes: themes, theme: chosenTheme,
      styles: library,
      // The model's own examples; samples/prompts.txt only for the built-in model without any.
      samplePrompts: !generator.samplePrompts.isEmpty
        ? generator.samplePrompts
        : modelURL.standardizedFileURL == resources.defaultModel?.standardizedFileURL ? resources.samplePrompts() : [],
      imageMode: ImageMode(rawValue: images),
      notices: notices)
    // NO_COLOR (no-color.org): no colour unless asked for with --colors or --images blocks.
    let noColor = !(ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
    env.monochrome = noColor && colors == "auto" && images != "blocks"
    StudioSignals.install()
    let driver: CursesDriver
    do {
      driver = try CursesDriver(
        options: CursesDriverOptions(
          imageMode: ImageMode(rawValue: images), colorDepth: ColorDepth(rawValue: colors), probe: !noProbe))
    } catch {
      throw fail("\(error)")
    }
    let studio = Studio(driver: driver, environment: env)
    studio.run(shouldStop: { StudioSignals.pending != nil })
  }

  /// Prints `message` to standard error; the exit code to throw.
  func fail(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data("clipgen-studio: \(message)\n".utf8))
    return ExitCode(1)
  }

  /// The history in `dataURL`; a damaged one is moved aside only when asked to (a notice says so).
  func openHistory(_ dataURL: URL) throws -> (HistoryStore, notices: [String]) {
    do {
      return (try HistoryStore(directory: dataURL), [])
    } catch let e as HistoryError where e.isDamaged {
      guard moveDamagedHistory else {
        throw fail(
          "\(e). Your images are untouched. To keep that file and start a new history, run again with "
            + "--move-damaged-history (it is renamed history.sqlite.damaged-<time>).")
      }
      do {
        let kept = try HistoryStore.moveAside(directory: dataURL)
        let store = try HistoryStore(directory: dataURL)
        return (store, ["The damaged history was kept as \(kept.lastPathComponent); this is a new one"])
      } catch {
        throw fail("\(error)")
      }
    } catch {
      throw fail("\(error)")
    }
  }

  /// --theme, else the theme chosen last time (F6) if it still loads, else the default.
  func chooseTheme(_ themes: ThemeLibrary, store: HistoryStore) throws -> Theme {
    do {
      if let theme { return try themes.theme(named: theme) }
      if let name = store.preference("theme"), let remembered = try? themes.theme(named: name) { return remembered }
      return try themes.theme(named: "default")
    } catch {
      throw fail("\(error)")
    }
  }

  /// --styles (an error stops the start), else the installed style file (an error is a notice).
  func loadStyles(_ resources: StudioResources, notices: inout [String]) throws -> StyleLibrary {
    guard let url = styles.map({ URL(fileURLWithPath: $0) }) ?? resources.stylesFile else {
      return StyleLibrary(styles: [])
    }
    do {
      return try StyleLibrary.load(contentsOf: url)
    } catch {
      if styles != nil { throw fail("\(error)") }
      notices.append("Styles not loaded: \(error)")
      return StyleLibrary(styles: [])
    }
  }

  /// --model, else the built-in model, loaded with progress on standard error.
  func loadModel(_ resources: StudioResources) throws -> (URL, ClipGenModel) {
    guard let modelURL = model.map({ URL(fileURLWithPath: $0) }) ?? resources.defaultModel else {
      throw fail("no model found: pass --model DIR (a directory with model.json); samples/model is not there yet")
    }
    FileHandle.standardError.write(Data("Loading \(modelURL.path)…\n".utf8))
    do {
      let generator = try ClipGenModel(directory: modelURL, gptPrecision: weights.precision) { part in
        FileHandle.standardError.write(Data("  loading \(part)…\n".utf8))
      }
      return (modelURL, generator)
    } catch {
      throw fail("cannot load the model: \(error)")
    }
  }
}

extension PriorWeights: ExpressibleByArgument {}
