// A one-line text editor over grapheme clusters (so "é", "👍🏽" and "画" move and delete as one
// character), with emacs-style keys and a horizontally scrolling view.

/// The text of an input line and its cursor.
public struct LineEditor: Sendable, Equatable {
  public private(set) var characters: [Character]
  /// Cursor position, in characters (0…count).
  public private(set) var cursor: Int

  public init(_ text: String = "") {
    characters = Array(text)
    cursor = characters.count
  }

  public var text: String {
    get { String(characters) }
    set {
      characters = Array(newValue)
      cursor = characters.count
    }
  }

  public var isEmpty: Bool { characters.isEmpty }

  public mutating func insert(_ s: String) {
    let new = Array(s.filter { $0 != "\n" && $0 != "\r" && $0 != "\t" })
    characters.insert(contentsOf: new, at: cursor)
    cursor += new.count
  }

  /// Handles an editing key (a character, or a `.textEditing` binding of `Keymap`); returns false
  /// for keys it does not use.
  public mutating func handle(_ key: Key) -> Bool {
    if case .character(let c) = key {
      insert(String(c))
      return true
    }
    guard let action = Keymap.action(for: key, in: .textEditing) else { return false }
    return perform(action)
  }

  /// Performs an editing action; false for actions that are not editing.
  public mutating func perform(_ action: StudioAction) -> Bool {
    switch action {
    case .cursorLeft: cursor = max(0, cursor - 1)
    case .cursorRight: cursor = min(characters.count, cursor + 1)
    case .cursorStart: cursor = 0
    case .cursorEnd: cursor = characters.count
    case .deleteBackward:
      if cursor > 0 {
        characters.remove(at: cursor - 1)
        cursor -= 1
      }
    case .deleteForward:
      if cursor < characters.count { characters.remove(at: cursor) }
    case .deleteToEnd: characters.removeSubrange(cursor...)
    case .deleteToStart:
      characters.removeSubrange(..<cursor)
      cursor = 0
    case .deleteWord:
      // Delete the word before the cursor (and the spaces after it).
      var i = cursor
      while i > 0 && characters[i - 1] == " " { i -= 1 }
      while i > 0 && characters[i - 1] != " " { i -= 1 }
      characters.removeSubrange(i..<cursor)
      cursor = i
    default: return false
    }
    return true
  }

  /// What to show in `width` columns so the cursor is visible: the text and the cursor's column.
  public func visible(width: Int) -> (text: String, cursorColumn: Int) {
    guard width > 1 else { return ("", 0) }
    let widths = characters.map { max(0, $0.terminalWidth) }
    let beforeCursor = widths[..<cursor].reduce(0, +)
    // Scroll so the cursor sits inside the window with one column to spare.
    var start = 0
    var skipped = 0
    while beforeCursor - skipped > width - 1, start < characters.count {
      skipped += widths[start]
      start += 1
    }
    var out = ""
    var used = 0
    var i = start
    while i < characters.count, used + widths[i] <= width {
      out.append(characters[i])
      used += widths[i]
      i += 1
    }
    return (out, beforeCursor - skipped)
  }
}

/// Earlier prompts for ↑/↓ recall, newest first; the line being typed is kept while browsing.
public struct PromptRecall: Sendable, Equatable {
  public var entries: [String]
  /// -1: not browsing (showing the line being typed).
  public private(set) var index = -1
  private var draft = ""

  public init(entries: [String] = []) { self.entries = entries }

  /// The previous (older) prompt, or nil at the oldest.
  public mutating func older(current: String) -> String? {
    var next = index + 1
    if index == -1 {
      draft = current
      // Skip the prompt already on the line.
      if next < entries.count && entries[next] == current { next += 1 }
    }
    guard next < entries.count else { return nil }
    index = next
    return entries[index]
  }

  /// The next (newer) prompt, the draft when leaving the list, or nil when not browsing.
  public mutating func newer() -> String? {
    guard index >= 0 else { return nil }
    index -= 1
    return index == -1 ? draft : entries[index]
  }

  /// Adds a prompt at the front (moving it if it was there) and stops browsing.
  public mutating func remember(_ prompt: String) {
    reset()
    guard !prompt.isEmpty else { return }
    entries.removeAll { $0 == prompt }
    entries.insert(prompt, at: 0)
  }

  public mutating func reset() {
    index = -1
    draft = ""
  }
}
