// Every key the studio answers to, by where it works: the help screen (? / F1) lists this
// table, and the status bar's hints come from it.

/// One line of the key reference.
public struct KeyHelp: Sendable, Equatable {
  public var keys: String
  public var action: String
}

/// The key reference, section by section.
public enum KeyReference {
  public static let sections: [(title: String, keys: [KeyHelp])] = [
    (
      "Everywhere",
      [
        KeyHelp(keys: "Tab / Shift-Tab", action: "next / previous pane"),
        KeyHelp(keys: "F1, ?", action: "this help (? outside the prompt)"),
        KeyHelp(keys: "Esc", action: "cancel the running generation; close a window"),
        KeyHelp(keys: "F2 or Ctrl-T", action: "pick a style"),
        KeyHelp(keys: "F3 or Ctrl-O", action: "image prompt: a picture to condition on, and its weight"),
        KeyHelp(keys: "F4 or Ctrl-S", action: "settings: sampling, seed, image counts"),
        KeyHelp(keys: "F5 or Ctrl-G", action: "compare temperatures side by side"),
        KeyHelp(keys: "F6", action: "next colour theme"),
        KeyHelp(keys: "Ctrl-L", action: "repaint the screen"),
        KeyHelp(keys: "Ctrl-C, Ctrl-Q, q", action: "quit (asks first while work runs)"),
      ]
    ),
    (
      "Prompt",
      [
        KeyHelp(keys: "Enter", action: "generate"),
        KeyHelp(keys: "↑ / ↓", action: "recall earlier prompts"),
        KeyHelp(keys: "← → Home End, Ctrl-A / Ctrl-E", action: "move"),
        KeyHelp(keys: "Backspace, Delete", action: "delete a character"),
        KeyHelp(keys: "Ctrl-W, Ctrl-U, Ctrl-K", action: "delete a word, to the start, to the end"),
      ]
    ),
    (
      "History",
      [
        KeyHelp(keys: "j / k, ↑ / ↓, PgUp / PgDn, g / G", action: "move"),
        KeyHelp(keys: "Enter or e", action: "load the prompt, style and settings into the prompt"),
        KeyHelp(keys: "r", action: "run it again (same seed: the same image)"),
        KeyHelp(keys: "/", action: "search prompts (Enter keeps the filter, Esc clears it)"),
        KeyHelp(keys: "f", action: "mark or unmark as favourite"),
        KeyHelp(keys: "*", action: "show only favourites"),
        KeyHelp(keys: "d or Delete", action: "delete (asks first)"),
        KeyHelp(keys: "c", action: "compare temperatures for this prompt"),
      ]
    ),
    (
      "Preview",
      [
        KeyHelp(keys: "← / → or h / l", action: "previous / next image of the generation"),
        KeyHelp(keys: "j / k", action: "previous / next generation"),
        KeyHelp(keys: "e, r, f", action: "edit, re-run, favourite (as in History)"),
      ]
    ),
    (
      "Compare",
      [
        KeyHelp(keys: "Enter", action: "run every column (same prompt, same seed)"),
        KeyHelp(keys: "a or +", action: "add a column"),
        KeyHelp(keys: "x or -", action: "remove the selected column"),
        KeyHelp(keys: "← / →", action: "select a column"),
        KeyHelp(keys: "[ / ]", action: "lower / raise the column's temperature by 0.1"),
        KeyHelp(keys: "k", action: "cycle the column's top-k (all, 4, 16, 64, 256)"),
        KeyHelp(keys: "p", action: "export the labelled grid as a PNG"),
        KeyHelp(keys: "Esc", action: "cancel, or back to the studio"),
      ]
    ),
  ]

  /// The status bar's hints on the comparison screen.
  public static func compareHints(running: Bool) -> [(key: String, action: String)] {
    if running { return [("Esc", "cancel"), ("←/→", "column"), ("F1", "help")] }
    return [
      ("Enter", "run"), ("a", "add"), ("x", "remove"), ("←/→", "column"), ("[ ]", "temperature"), ("k", "top-k"),
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
      h = [("←/→", "image"), ("j/k", "generation"), ("e", "edit"), ("r", "re-run"), ("?", "help"), ("q", "quit")]
    }
    if running { h.insert(("Esc", "cancel"), at: 0) }
    return h
  }
}
