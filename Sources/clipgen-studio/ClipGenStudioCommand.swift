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
    func fail(_ message: String) -> ExitCode {
      FileHandle.standardError.write(Data("clipgen-studio: \(message)\n".utf8))
      return ExitCode(1)
    }

    guard isatty(STDIN_FILENO) == 1, isatty(STDOUT_FILENO) == 1 else {
      throw fail("needs a terminal: standard input and output must be a tty")
    }
    let dataURL = dataDir.map { URL(fileURLWithPath: $0) } ?? HistoryStore.defaultDirectory()
    let store: HistoryStore
    var startupNotices: [String] = []
    do {
      store = try HistoryStore(directory: dataURL)
    } catch let e as HistoryError where e.isDamaged {
      guard moveDamagedHistory else {
        throw fail(
          "\(e). Your images are untouched. To keep that file and start a new history, run again with "
            + "--move-damaged-history (it is renamed history.sqlite.damaged-<time>).")
      }
      do {
        let kept = try HistoryStore.moveAside(directory: dataURL)
        store = try HistoryStore(directory: dataURL)
        startupNotices.append("The damaged history was kept as \(kept.lastPathComponent); this is a new one")
      } catch {
        throw fail("\(error)")
      }
    } catch {
      throw fail("\(error)")
    }

    let themes = ThemeLibrary(
      directories: [resources.themesDirectory, dataURL.appendingPathComponent("themes")].compactMap { $0 })
    let chosenTheme: Theme
    do {
      if let theme {
        chosenTheme = try themes.theme(named: theme)
      } else {
        // The theme chosen last time (F6), if it still loads.
        if let name = store.preference("theme"), let remembered = try? themes.theme(named: name) {
          chosenTheme = remembered
        } else {
          chosenTheme = try themes.theme(named: "default")
        }
      }
    } catch {
      throw fail("\(error)")
    }

    var notices: [String] = startupNotices
    var library = StyleLibrary(styles: [])
    if let url = styles.map({ URL(fileURLWithPath: $0) }) ?? resources.stylesFile {
      do {
        library = try StyleLibrary.load(contentsOf: url)
      } catch {
        if styles != nil { throw fail("\(error)") }
        notices.append("Styles not loaded: \(error)")
      }
    }

    guard let modelURL = model.map({ URL(fileURLWithPath: $0) }) ?? resources.defaultModel else {
      throw fail("no model found: pass --model DIR (a directory with model.json); samples/model is not there yet")
    }
    FileHandle.standardError.write(Data("Loading \(modelURL.path)…\n".utf8))
    let generator: ClipGenModel
    do {
      generator = try ClipGenModel(directory: modelURL, gptPrecision: weights.precision) { part in
        FileHandle.standardError.write(Data("  loading \(part)…\n".utf8))
      }
    } catch {
      throw fail("cannot load the model: \(error)")
    }

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
}

extension PriorWeights: ExpressibleByArgument {}
