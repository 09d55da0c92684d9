// Every key the studio answers to, in one table: each binding says where it works, what it does
// and how the help screen describes it. `Studio` dispatches through `Keymap.action`, and the help
// screen (F1 / ?) is generated from the same table, so the two cannot disagree. The status bar's
// short hints are checked against it by a test. (The windows - settings, styles, image prompt,
// confirmations - list their own few keys on screen.)

/// Where a binding applies.
public enum KeyContext: String, CaseIterable, Sendable {
  case everywhere, prompt, textEditing, history, search, preview, region, compare

  /// The help screen's section title.
  public var title: String {
    switch self {
    case .everywhere: return "Everywhere"
    case .prompt: return "Prompt"
    case .textEditing: return "Editing text (the prompt, search, paths)"
    case .history: return "History"
    case .search: return "Searching the history (after /)"
    case .preview: return "Preview"
    case .region: return "Preview, selecting a region to re-sample (after s)"
    case .compare: return "Compare"
    }
  }
}

/// What a key does.
public enum StudioAction: Sendable, Equatable {
  // everywhere
  case nextPane, previousPane, help, escape, pickStyle, imagePrompt, settings, compare, nextTheme, repaint, quit
  // prompt
  case generate, recallOlder, recallNewer, negativePrompt, interpolate
  // text editing (LineEditor)
  case cursorLeft, cursorRight, cursorStart, cursorEnd, deleteBackward, deleteForward, deleteToEnd, deleteToStart
  case deleteWord
  // history and preview
  case moveUp, moveDown, pageUp, pageDown, first, last, search, keepSearch, favoritesOnly
  case edit, rerun, favorite, delete, compareEntry, previousImage, nextImage, keepFewerRows, keepMoreRows, reroll
  case copyPrompt, openImage
  // region selection in the preview
  case selectRegion, regionLeft, regionRight, regionUp, regionDown, regionNarrower, regionWider, regionShorter
  case regionTaller, resampleRegion
  // compare
  case runColumns, addColumn, removeColumn, previousColumn, nextColumn, colder, warmer, cycleTopK, exportPNG, back
}

/// One row of the table.
public struct KeyBinding: Sendable {
  public var keys: [Key]
  public var context: KeyContext
  public var action: StudioAction
  /// The help screen's description.
  public var help: String
  /// Only where no text is being typed (a printable key would otherwise type itself).
  public var outsideText: Bool

  init(_ keys: [Key], _ context: KeyContext, _ action: StudioAction, _ help: String, outsideText: Bool = false) {
    self.keys = keys
    self.context = context
    self.action = action
    self.help = help
    self.outsideText = outsideText
  }

  /// The keys as the help screen shows them ("F2, Ctrl-T").
  public var label: String { keys.map(\.description).joined(separator: ", ") }
}

/// One line of the help screen.
public struct KeyHelp: Sendable, Equatable {
  public var keys: String
  public var action: String
}

public enum Keymap {
  private static func c(_ s: String) -> Key { .character(Character(s)) }

  /// The table.
  public static let bindings: [KeyBinding] = [
    KeyBinding([.tab], .everywhere, .nextPane, "next pane"),
    KeyBinding([.backTab], .everywhere, .previousPane, "previous pane"),
    KeyBinding([.function(1)], .everywhere, .help, "this help"),
    KeyBinding([c("?")], .everywhere, .help, "this help (outside the prompt)", outsideText: true),
    KeyBinding([.escape], .everywhere, .escape, "cancel the running generation; close a search; back to the prompt"),
    KeyBinding([.function(2), .control("t")], .everywhere, .pickStyle, "pick a style"),
    KeyBinding(
      [.function(3), .control("o")], .everywhere, .imagePrompt,
      "image prompt: a picture to condition on, and its weight"
    ),
    KeyBinding([.function(4), .control("s")], .everywhere, .settings, "settings: sampling, seed, image counts"),
    KeyBinding([.function(5), .control("g")], .everywhere, .compare, "compare temperatures side by side"),
    KeyBinding([.function(6)], .everywhere, .nextTheme, "next colour theme"),
    KeyBinding(
      [.function(7), .control("n")], .everywhere, .negativePrompt, "negative prompt: what the image should not show"),
    KeyBinding(
      [.function(8)], .everywhere, .interpolate, "interpolate from the prompt to another, side by side (one seed)"),
    KeyBinding([.control("l")], .everywhere, .repaint, "repaint the screen"),
    KeyBinding([.control("c"), .control("q")], .everywhere, .quit, "quit (asks first while work runs)"),
    KeyBinding([c("q")], .everywhere, .quit, "quit (outside the prompt)", outsideText: true),

    KeyBinding([.enter], .prompt, .generate, "generate"),
    KeyBinding([.up], .prompt, .recallOlder, "recall an earlier prompt"),
    KeyBinding([.down], .prompt, .recallNewer, "back towards the newest prompt"),

    KeyBinding([.left, .control("b")], .textEditing, .cursorLeft, "one character left"),
    KeyBinding([.right, .control("f")], .textEditing, .cursorRight, "one character right"),
    KeyBinding([.home, .control("a")], .textEditing, .cursorStart, "to the start"),
    KeyBinding([.end, .control("e")], .textEditing, .cursorEnd, "to the end"),
    KeyBinding([.backspace, .control("h")], .textEditing, .deleteBackward, "delete the character before the cursor"),
    KeyBinding([.delete, .control("d")], .textEditing, .deleteForward, "delete the character under the cursor"),
    KeyBinding([.control("w")], .textEditing, .deleteWord, "delete the word before the cursor"),
    KeyBinding([.control("u")], .textEditing, .deleteToStart, "delete to the start"),
    KeyBinding([.control("k")], .textEditing, .deleteToEnd, "delete to the end"),

    KeyBinding([.up, c("k")], .history, .moveUp, "previous (newer) generation"),
    KeyBinding([.down, c("j")], .history, .moveDown, "next (older) generation"),
    KeyBinding([.pageUp], .history, .pageUp, "a page up"),
    KeyBinding([.pageDown], .history, .pageDown, "a page down"),
    KeyBinding([.home, c("g")], .history, .first, "the newest"),
    KeyBinding([.end, c("G")], .history, .last, "the oldest"),
    KeyBinding([.enter, c("e")], .history, .edit, "load the prompt, style and settings into the prompt"),
    KeyBinding([c("r")], .history, .rerun, "run it again (same seed: the same image)"),
    KeyBinding([c("/")], .history, .search, "search prompts (Enter keeps the filter, Esc clears it)"),
    KeyBinding([c("f")], .history, .favorite, "mark or unmark as favourite"),
    KeyBinding([c("*")], .history, .favoritesOnly, "show only favourites"),
    KeyBinding([c("d"), .delete], .history, .delete, "delete (asks first)"),
    KeyBinding([c("c")], .history, .compareEntry, "compare temperatures for this prompt"),
    KeyBinding([c("y")], .history, .copyPrompt, "copy the prompt and seed to the clipboard (OSC 52)"),
    KeyBinding([c("o")], .history, .openImage, "open the image in the desktop's viewer"),

    KeyBinding([.enter], .search, .keepSearch, "keep the filter and go back to the list (Esc clears it)"),
    KeyBinding([.up], .search, .moveUp, "previous match"),
    KeyBinding([.down], .search, .moveDown, "next match"),

    KeyBinding([.left, c("h")], .preview, .previousImage, "previous image of the generation"),
    KeyBinding([.right, c("l")], .preview, .nextImage, "next image of the generation"),
    KeyBinding([c("k")], .preview, .moveUp, "previous (newer) generation"),
    KeyBinding([c("j")], .preview, .moveDown, "next (older) generation"),
    KeyBinding([.up], .preview, .keepFewerRows, "re-roll marker: keep one row fewer"),
    KeyBinding([.down], .preview, .keepMoreRows, "re-roll marker: keep one row more"),
    KeyBinding([c("R")], .preview, .reroll, "re-roll: keep the rows above the marker, sample the rest anew"),
    KeyBinding([c("s")], .preview, .selectRegion, "select a region of tokens to sample again (keeps the rest)"),
    KeyBinding([.enter, c("e")], .preview, .edit, "load it into the prompt (as in History)"),
    KeyBinding([c("r")], .preview, .rerun, "run it again"),
    KeyBinding([c("f")], .preview, .favorite, "mark or unmark as favourite"),
    KeyBinding([c("d"), .delete], .preview, .delete, "delete (asks first)"),
    KeyBinding([c("c")], .preview, .compareEntry, "compare temperatures for this prompt"),
    KeyBinding([c("y")], .preview, .copyPrompt, "copy the prompt and seed to the clipboard (OSC 52)"),
    KeyBinding([c("o")], .preview, .openImage, "open the image in the desktop's viewer"),

    KeyBinding([.left, c("h")], .region, .regionLeft, "move the region one token left"),
    KeyBinding([.right, c("l")], .region, .regionRight, "move the region one token right"),
    KeyBinding([.up, c("k")], .region, .regionUp, "move the region one token up"),
    KeyBinding([.down, c("j")], .region, .regionDown, "move the region one token down"),
    KeyBinding([c("H")], .region, .regionNarrower, "one token narrower"),
    KeyBinding([c("L")], .region, .regionWider, "one token wider"),
    KeyBinding([c("K")], .region, .regionShorter, "one token shorter"),
    KeyBinding([c("J")], .region, .regionTaller, "one token taller"),
    KeyBinding(
      [.enter, c("R")], .region, .resampleRegion,
      "sample the region again (new seed; of several candidates, the one that fits what follows best)"),

    KeyBinding([.enter], .compare, .runColumns, "run every column (same prompt, same seed)"),
    KeyBinding([c("a"), c("+")], .compare, .addColumn, "add a column"),
    KeyBinding([c("x"), c("-"), .delete], .compare, .removeColumn, "remove the selected column"),
    KeyBinding([.left, c("h"), .backTab], .compare, .previousColumn, "select the column to the left"),
    KeyBinding([.right, c("l"), .tab], .compare, .nextColumn, "select the column to the right"),
    KeyBinding([c("[")], .compare, .colder, "lower the column's temperature by 0.1"),
    KeyBinding([c("]")], .compare, .warmer, "raise the column's temperature by 0.1"),
    KeyBinding([c("k")], .compare, .cycleTopK, "cycle the column's top-k (all, 4, 16, 64, 256)"),
    KeyBinding([c("p")], .compare, .exportPNG, "export the labelled grid as a PNG"),
    KeyBinding([.escape], .compare, .back, "cancel, or back to the studio"),
    KeyBinding([.function(1), c("?")], .compare, .help, "this help"),
    KeyBinding([c("q")], .compare, .quit, "quit (asks first while work runs)"),
    KeyBinding([.function(6)], .compare, .nextTheme, "next colour theme"),
  ]

  /// The action of `key` in `context`. For the prompt, history and preview, the context's own
  /// bindings come first, then those that work everywhere (`textEntry`: text is being typed, so
  /// the everywhere bindings of printable keys do not apply; `everywhere` false: the context's
  /// own only). Editing keys are looked up in `.textEditing` by the line editor itself.
  public static func action(
    for key: Key, in context: KeyContext, textEntry: Bool = false, everywhere: Bool = true
  ) -> StudioAction? {
    if let own = table[context]?[key], !(own.outsideText && textEntry) { return own.action }
    guard everywhere, [.prompt, .history, .preview, .region].contains(context), let b = table[.everywhere]?[key] else {
      return nil
    }
    return b.outsideText && textEntry ? nil : b.action
  }

  private static let table: [KeyContext: [Key: KeyBinding]] = {
    var t: [KeyContext: [Key: KeyBinding]] = [:]
    for b in bindings {
      for k in b.keys { t[b.context, default: [:]][k] = t[b.context]?[k] ?? b }
    }
    return t
  }()

  /// The help screen, section by section, in the table's order.
  public static var sections: [(title: String, keys: [KeyHelp])] {
    KeyContext.allCases.map { context in
      (context.title, bindings.filter { $0.context == context }.map { KeyHelp(keys: $0.label, action: $0.help) })
    }
  }

  /// The status bar's hints on the comparison screen.
  /// (An interpolation's columns differ only in t: no temperature or top-k keys.)
  public static func compareHints(running: Bool, interpolation: Bool = false) -> [(key: String, action: String)] {
    if running { return [("Esc", "cancel"), ("←/→", "column"), ("F1", "help")] }
    let settings: [(key: String, action: String)] = interpolation ? [] : [("[ ]", "temperature"), ("k", "top-k")]
    return [("Enter", "run"), ("a", "add"), ("x", "remove"), ("←/→", "column")] + settings + [
      ("p", "export PNG"), ("Esc", "back"),
    ]
  }

  /// The short hints for the status bar, by pane.
  public static func hints(for pane: Pane, running: Bool) -> [(key: String, action: String)] {
    var h: [(String, String)]
    switch pane {
    case .prompt:
      h = [
        ("Enter", "generate"), ("↑", "recall"), ("Tab", "history"), ("F2", "style"), ("F3", "image"),
        ("F4", "settings"), ("F5", "compare"), ("F1", "help"),
      ]
    case .history:
      h = [
        ("j/k", "move"), ("Enter", "edit"), ("r", "re-run"), ("/", "search"), ("f", "★"), ("d", "delete"),
        ("c", "compare"), ("?", "help"), ("q", "quit"),
      ]
    case .preview:
      h = [
        ("←/→", "image"), ("j/k", "generation"), ("↑/↓", "rows"), ("R", "re-roll"), ("e", "edit"), ("r", "re-run"),
        ("?", "help"),
      ]
    }
    if running { h.insert(("Esc", "cancel"), at: 0) }
    return h
  }
}
