// The boundary between the studio and a terminal. The real driver (ncurses) and the tests' fake
// both implement it; nothing else in the studio touches the terminal.

/// A key press, after the driver has decoded escape sequences.
public enum Key: Hashable, Sendable, CustomStringConvertible {
  /// A printable character (including non-ASCII and wide ones).
  case character(Character)
  /// Ctrl plus a letter, given in lower case ("a"…"z").
  case control(Character)
  case enter, escape, tab, backTab, backspace, delete, insert
  case up, down, left, right, home, end, pageUp, pageDown
  /// F1…F12.
  case function(Int)

  public var description: String {
    switch self {
    case .character(" "): return "Space"
    case .character(let c): return String(c)
    case .control(let c): return "Ctrl-" + String(c).uppercased()
    case .enter: return "Enter"
    case .escape: return "Esc"
    case .tab: return "Tab"
    case .backTab: return "Shift-Tab"
    case .backspace: return "Backspace"
    case .delete: return "Delete"
    case .insert: return "Insert"
    case .up: return "↑"
    case .down: return "↓"
    case .left: return "←"
    case .right: return "→"
    case .home: return "Home"
    case .end: return "End"
    case .pageUp: return "PgUp"
    case .pageDown: return "PgDn"
    case .function(let n): return "F\(n)"
    }
  }
}

/// Something that happened at the terminal.
public enum TerminalEvent: Hashable, Sendable {
  case key(Key)
  /// The terminal was resized to `width` columns and `height` rows.
  case resize(width: Int, height: Int)
  /// Text pasted into the terminal (bracketed paste): text, never keys, whatever it contains.
  case paste(String)
}

/// Bracketed paste: the terminal wraps pasted text in `ESC [ 200 ~` … `ESC [ 201 ~`.
public enum BracketedPaste {
  public static let enable = Array("\u{1B}[?2004h".utf8)
  public static let disable = Array("\u{1B}[?2004l".utf8)
  /// What follows ESC at the start and at the end of a paste.
  public static let start: [UInt32] = Array("[200~".unicodeScalars.map(\.value))
  public static let end: [UInt32] = Array("\u{1B}[201~".unicodeScalars.map(\.value))
  /// Pastes longer than this are cut (the rest is read and dropped).
  public static let maximumCharacters = 1 << 20

  /// Pasted text as one line for a prompt: line breaks and tabs become spaces, every other
  /// control character (escape sequences included) is dropped.
  public static func sanitize(_ text: String) -> String {
    var out = String.UnicodeScalarView()
    for s in text.unicodeScalars {
      switch s.value {
      case 9, 10, 13: if out.last != " " { out.append(" ") }
      case 0..<32, 127, 0x80..<0xA0: continue
      default: out.append(s)
      }
    }
    return String(out)
  }
}

/// How inline images are drawn.
public enum ImageMode: String, Sendable, CaseIterable {
  /// Sixel graphics (xterm -ti vt340, mlterm, foot, WezTerm, …).
  case sixel
  /// Upper-half blocks (▀) with a foreground and background colour: two pixels per cell.
  case halfBlock = "blocks"
  /// No images (a text placeholder).
  case none
}

/// What the driver learned about the terminal when it started.
public struct TerminalCapabilities: Sendable, Equatable {
  /// The terminal answered the primary device attributes (DA1) request with attribute 4.
  public var sixel: Bool
  /// Size of one character cell in pixels (from `CSI 16 t`, `CSI 14 t`, or 10×20 when unknown).
  public var cellPixelWidth: Int
  public var cellPixelHeight: Int
  public var colorDepth: ColorDepth
  /// The raw DA1 reply, for the about screen ("none" when the terminal did not answer).
  public var deviceAttributes: String

  public init(
    sixel: Bool = false, cellPixelWidth: Int = 10, cellPixelHeight: Int = 20, colorDepth: ColorDepth = .palette256,
    deviceAttributes: String = "none"
  ) {
    self.sixel = sixel
    self.cellPixelWidth = cellPixelWidth
    self.cellPixelHeight = cellPixelHeight
    self.colorDepth = colorDepth
    self.deviceAttributes = deviceAttributes
  }

  /// The best image mode this terminal supports.
  public var preferredImageMode: ImageMode { sixel ? .sixel : .halfBlock }
}

/// A terminal the studio can draw on and read keys from. All calls come from one thread.
public protocol TerminalDriver: AnyObject {
  /// Current size in cells.
  var width: Int { get }
  var height: Int { get }
  var capabilities: TerminalCapabilities { get }
  /// Shows `grid` (same size as the terminal), writing only what changed since the last frame.
  func present(_ grid: CellGrid)
  /// The next event, waiting at most `timeoutMilliseconds` (nil when none arrived).
  func nextEvent(timeoutMilliseconds: Int) -> TerminalEvent?
  /// Forgets what is on screen so the next `present` repaints everything (Ctrl-L).
  func invalidate()
  /// Restores the terminal to how it was found.
  func shutdown()
  /// Puts `text` on the system clipboard through the terminal (OSC 52; terminals that do not
  /// allow it ignore the request).
  func copyToClipboard(_ text: String)
}
