// Everything the studio shows, as plain values. The controller (Studio) changes it in response
// to keys and worker messages; the renderer draws it. Nothing here touches the terminal.
import ClipGenEngine
import Foundation

/// The panes Tab moves between.
public enum Pane: Int, CaseIterable, Sendable {
  case prompt, history, preview

  public var title: String {
    switch self {
    case .prompt: return "Prompt"
    case .history: return "History"
    case .preview: return "Preview"
    }
  }
}

/// A line in the status bar: what just happened.
public struct StatusMessage: Sendable, Equatable {
  /// How the message is coloured (and marked: › ✓ ! ✗).
  public enum Kind: Sendable { case info, success, warning, error }
  public var text: String
  public var kind: Kind

  public init(_ text: String, _ kind: Kind = .info) {
    self.text = text
    self.kind = kind
  }
}

/// An image used as (part of) the prompt.
public struct ImagePrompt: Sendable, Equatable {
  public var path: String
  /// Weight of the image against the text (0…1; the text gets 1 − weight).
  public var weight: Double
  public var image: Pixmap

  public var label: String { (path as NSString).lastPathComponent }
}

/// The generation in progress.
public struct RunProgress: Sendable, Equatable {
  /// What the engine is doing: embedding the prompt, sampling tokens, decoding pixels.
  public enum Phase: String, Sendable { case conditioning, sampling, decoding }
  public var job: Int
  public var historyID: Int64?
  public var prompt: String
  public var phase: Phase = .conditioning
  public var done = 0
  public var total: Int
  public var tokensPerSecond = 0.0
  /// Rows sampled per token position (candidates, doubled with guidance), for the ETA.
  public var rowsPerStep: Int
  public var preview: Pixmap?
  public var previewRows = 0
  public var truncated = false
  public var cancelling = false

  /// Seconds left at the current rate (nil before a rate is known).
  public var eta: Double? {
    guard tokensPerSecond > 0, done > 0 else { return nil }
    return Double((total - done) * rowsPerStep) / tokensPerSecond
  }
}

/// One column of a temperature comparison.
public struct CompareColumn: Sendable, Equatable {
  /// Where the column's generation stands.
  public enum Status: Sendable, Equatable {
    case waiting, running, done, cancelled
    case failed(String)
  }
  public var temperature: Float
  public var topK: Int?
  /// In an interpolation, how far (0…1) this column lies from the prompt to the other one.
  public var t: Float?
  public var status: Status = .waiting
  public var done = 0
  public var total = 0
  public var image: Pixmap?
  public var clipScore: Float?
  public var historyID: Int64?

  public init(temperature: Float, topK: Int? = nil, t: Float? = nil) {
    self.temperature = temperature
    self.topK = topK
    self.t = t
  }

  public var label: String {
    if let t { return "t \(String(format: "%.2f", t))" }
    return "T \(formatSetting(temperature)) · k \(topK.map(String.init) ?? "all")"
  }
}

/// The temperature comparison screen: one prompt and seed, several sampling settings.
public struct CompareState: Sendable, Equatable {
  public var prompt: String
  public var style: PromptStyle?
  public var imagePrompt: ImagePrompt?
  public var negative: String?
  public var base: GenerationSettings
  public var columns: [CompareColumn]
  /// An interpolation from `prompt` to this prompt: the columns are evenly spaced t values, all
  /// with the base settings (nil: a comparison of sampling settings).
  public var interpolateTo: String?
  public var selected = 0
  public var job: Int?
  public var comparisonID = UUID().uuidString
  /// The PNG the grid was last exported to.
  public var exported: String?

  public static let maximumColumns = 6

  /// `n` columns evenly spaced from t = 0 to t = 1.
  public static func interpolationColumns(_ n: Int, temperature: Float) -> [CompareColumn] {
    (0..<n).map { CompareColumn(temperature: temperature, t: n > 1 ? Float($0) / Float(n - 1) : 0) }
  }
  /// The top-k values `k` cycles through (nil: all tokens).
  public static let topKChoices: [Int?] = [nil, 4, 16, 64, 256]
}

/// The settings form (F4).
public struct SettingsForm: Sendable, Equatable {
  /// The form's rows, top to bottom.
  public enum Field: Int, CaseIterable, Sendable {
    case temperature, topK, topP, guidance, seed, count, candidates

    public var label: String {
      switch self {
      case .temperature: return "Temperature"
      case .topK: return "Top-k"
      case .topP: return "Top-p"
      case .guidance: return "Guidance scale"
      case .seed: return "Seed"
      case .count: return "Images"
      case .candidates: return "Candidates"
      }
    }

    public var help: String {
      switch self {
      case .temperature: return "randomness: 0 greedy, 1 the model's own, >1 wilder"
      case .topK: return "sample from the k likeliest tokens (0: all)"
      case .topP: return "sample from the smallest set reaching this probability (1: off)"
      case .guidance: return "classifier-free guidance (1: off; models trained for it)"
      case .seed: return "'random' draws a new seed each run; a number repeats a run"
      case .count: return "images to keep per generation"
      case .candidates: return "images to sample; CLIP keeps the best"
      }
    }
  }
  public var settings: GenerationSettings
  public var randomSeed: Bool
  /// The model's own settings: a value equal to its default is marked "model default".
  public var defaults = GenerationSettings()
  public var field: Field = .temperature
  /// Text being typed into the current field (nil: showing the value).
  public var typing: String?
}

/// The image-prompt form (F3).
public struct ImagePromptForm: Sendable, Equatable {
  public var path: LineEditor
  public var weight: Double
  /// 0: path, 1: weight.
  public var field = 0
  public var candidates: [String] = []
  public var error: String?
}

/// The style picker (F2).
public struct StylePicker: Sendable, Equatable {
  public var query = LineEditor()
  public var selected = 0
}

/// A window over the main screen.
public enum Overlay: Sendable, Equatable {
  case help(scroll: Int)
  case styles(StylePicker)
  case imagePrompt(ImagePromptForm)
  /// The negative prompt's editor (F7).
  case negativePrompt(LineEditor)
  case interpolateTo(LineEditor)
  case settings(SettingsForm)
  case confirmQuit
  case confirmDelete(Int64)
}

/// Where a re-roll would cut an image: its first `rows` token rows are kept.
public struct RowMarker: Sendable, Equatable {
  public var generationID: Int64
  public var index: Int
  public var rows: Int
}

/// The rectangle of tokens a region edit would sample again, on one image of one generation.
public struct RegionSelection: Sendable, Equatable {
  public var generationID: Int64
  public var index: Int
  public var region: TokenRegion
}

/// The whole visible state of the studio.
public struct StudioState: Sendable {
  public var width: Int
  public var height: Int
  public var focus: Pane = .prompt
  public var editor = LineEditor()
  public var recall = PromptRecall()
  public var style: PromptStyle?
  public var imagePrompt: ImagePrompt?
  /// What guidance steers away from (F7); nil: the unconditional embedding.
  public var negative: String?
  /// The re-roll marker in the preview: rows of image `index` of generation `id` to keep.
  public var rowMarker: RowMarker?
  /// The region being selected in the preview (after `s`), if any.
  public var regionSelection: RegionSelection?
  public var settings = GenerationSettings()
  /// The model's default settings (model.json's `defaults`); `settings` starts from them.
  public var modelDefaults = GenerationSettings()
  /// Draw a new seed for each generation (the seed used is stored with it).
  public var randomSeed = true
  /// The loaded window of the history list (a few pages around the selection; the list itself
  /// may hold any number of rows), and the selection's index in it.
  public var history: [HistoryEntry] = []
  public var selection = 0
  /// How many rows the list holds (with the search and favourites filter), and the position of
  /// `history[0]` among them.
  public var historyTotal = 0
  public var historyOffset = 0
  public var historyScroll = 0
  /// The history search being typed (nil: not searching) and the applied filter.
  public var searchEditor: LineEditor?
  public var search = ""
  public var favoritesOnly = false
  /// Which image of the selected generation the preview shows.
  public var previewIndex = 0
  public var run: RunProgress?
  public var message: StatusMessage?
  public var overlay: Overlay?
  public var compare: CompareState?
  public var theme: Theme
  public var imageMode: ImageMode
  public var capabilities: TerminalCapabilities
  public var modelName: String
  public var gridHeight: Int
  public var gridWidth: Int
  public var samplePrompts: [String] = []
  public var styleLibrary = StyleLibrary(styles: [])

  public init(
    width: Int, height: Int, theme: Theme, imageMode: ImageMode, capabilities: TerminalCapabilities, modelName: String,
    gridHeight: Int, gridWidth: Int
  ) {
    self.width = width
    self.height = height
    self.theme = theme
    self.imageMode = imageMode
    self.capabilities = capabilities
    self.modelName = modelName
    self.gridHeight = gridHeight
    self.gridWidth = gridWidth
  }

  public var selectedEntry: HistoryEntry? { history.indices.contains(selection) ? history[selection] : nil }
  public var isRunning: Bool { run != nil || compare?.job != nil }
}
