// The in-memory screen every view draws into. The terminal driver compares it with the previous
// frame and writes only what changed; tests print it as text.

/// A rectangle of cells: `x`, `y` of the top-left corner, `width` columns, `height` rows.
public struct Rect: Hashable, Sendable, CustomStringConvertible {
  public var x: Int
  public var y: Int
  public var width: Int
  public var height: Int

  public init(x: Int, y: Int, width: Int, height: Int) {
    self.x = x
    self.y = y
    self.width = max(0, width)
    self.height = max(0, height)
  }

  public var maxX: Int { x + width }
  public var maxY: Int { y + height }
  public var isEmpty: Bool { width <= 0 || height <= 0 }

  /// Shrunk by `dx` columns on each side and `dy` rows at top and bottom.
  public func inset(dx: Int, dy: Int) -> Rect {
    Rect(x: x + dx, y: y + dy, width: width - 2 * dx, height: height - 2 * dy)
  }

  /// The part of this rectangle inside `other`.
  public func intersection(_ other: Rect) -> Rect {
    let x0 = max(x, other.x)
    let y0 = max(y, other.y)
    return Rect(x: x0, y: y0, width: min(maxX, other.maxX) - x0, height: min(maxY, other.maxY) - y0)
  }

  public func contains(x px: Int, y py: Int) -> Bool { px >= x && px < maxX && py >= y && py < maxY }

  public var description: String { "\(width)×\(height)+\(x)+\(y)" }
}

/// How a cell's text is drawn.
public struct CellStyle: Hashable, Sendable {
  public var foreground: TerminalColor
  public var background: TerminalColor
  public var bold: Bool
  public var dim: Bool
  public var underline: Bool
  public var reverse: Bool

  public init(
    foreground: TerminalColor = .default, background: TerminalColor = .default, bold: Bool = false,
    dim: Bool = false, underline: Bool = false, reverse: Bool = false
  ) {
    self.foreground = foreground
    self.background = background
    self.bold = bold
    self.dim = dim
    self.underline = underline
    self.reverse = reverse
  }

  public static let plain = CellStyle()

  /// This style with `bold` set.
  public var bolded: CellStyle {
    var s = self
    s.bold = true
    return s
  }
}

/// One terminal cell: a character (a grapheme cluster) and its style. A wide character fills
/// two cells; the second is a continuation that holds nothing of its own.
public struct Cell: Hashable, Sendable {
  public var text: String
  public var style: CellStyle
  /// The right half of a wide character.
  public var isContinuation: Bool

  public init(_ text: String = " ", style: CellStyle = .plain, isContinuation: Bool = false) {
    self.text = text
    self.style = style
    self.isContinuation = isContinuation
  }

  public static let blank = Cell()
}

/// Where an inline (sixel) image goes: the cells it covers and the bytes that draw it. The cells
/// under a placement are left blank in the grid; the driver emits `data` after each frame that
/// disturbed them.
public struct ImagePlacement: Hashable, Sendable {
  public var rect: Rect
  /// Identifies the picture and its pixel size; a new key means new bytes to emit.
  public var key: String
  /// The complete escape sequence (DCS … ST) that draws the image at the cursor.
  public var data: [UInt8]

  public init(rect: Rect, key: String, data: [UInt8]) {
    self.rect = rect
    self.key = key
    self.data = data
  }

  public static func == (a: ImagePlacement, b: ImagePlacement) -> Bool { a.rect == b.rect && a.key == b.key }
  public func hash(into h: inout Hasher) {
    h.combine(rect)
    h.combine(key)
  }
}

/// A screen's worth of cells plus the cursor position and inline images.
public struct CellGrid: Sendable, Equatable {
  public let width: Int
  public let height: Int
  public private(set) var cells: [Cell]
  /// Where the terminal cursor should be shown (nil hides it).
  public var cursor: (x: Int, y: Int)?
  public var placements: [ImagePlacement] = []

  public init(width: Int, height: Int, fill: Cell = .blank) {
    self.width = max(0, width)
    self.height = max(0, height)
    cells = Array(repeating: fill, count: self.width * self.height)
  }

  public static func == (a: CellGrid, b: CellGrid) -> Bool {
    a.width == b.width && a.height == b.height && a.cells == b.cells && a.cursor?.x == b.cursor?.x
      && a.cursor?.y == b.cursor?.y && a.placements == b.placements
  }

  public var bounds: Rect { Rect(x: 0, y: 0, width: width, height: height) }

  /// The grid without colour (`NO_COLOR`): every cell in the terminal's own colours, and a cell
  /// that stood out by its background (selection, header, status line) shown in reverse video.
  public func monochrome() -> CellGrid {
    var g = self
    for i in g.cells.indices {
      var s = g.cells[i].style
      if s.background != .default { s.reverse.toggle() }
      s.foreground = .default
      s.background = .default
      g.cells[i].style = s
    }
    return g
  }

  public subscript(x: Int, y: Int) -> Cell {
    get { (x >= 0 && x < width && y >= 0 && y < height) ? cells[y * width + x] : .blank }
    set {
      guard x >= 0, x < width, y >= 0, y < height else { return }
      // Overwriting half of a wide character blanks the other half.
      let old = cells[y * width + x]
      if old.isContinuation && !newValue.isContinuation && x > 0 {
        cells[y * width + x - 1] = Cell(" ", style: cells[y * width + x - 1].style)
      }
      if !old.isContinuation && old.text.terminalWidth == 2 && x + 1 < width && !newValue.isContinuation {
        cells[y * width + x + 1] = Cell(" ", style: cells[y * width + x + 1].style)
      }
      cells[y * width + x] = newValue
    }
  }

  /// Writes `text` from (x, y) rightwards, clipped at `limit` columns (default: the row's end).
  /// Returns the columns written. Zero-width characters join the previous cell.
  @discardableResult
  public mutating func put(_ text: String, x: Int, y: Int, style: CellStyle, limit: Int? = nil) -> Int {
    guard y >= 0, y < height else { return 0 }
    let end = min(width, x + (limit ?? width))
    var col = x
    for ch in text {
      let w = ch.terminalWidth
      if ch == "\n" || ch == "\t" {
        if col < end, col >= 0 { self[col, y] = Cell(" ", style: style) }
        col += 1
        continue
      }
      if w == 0 {
        if col > x, col - 1 >= 0, col - 1 < width, !cells[y * width + col - 1].isContinuation {
          cells[y * width + col - 1].text.append(ch)
        }
        continue
      }
      if col + w > end {
        // A wide character that does not fit leaves a blank.
        if col < end, col >= 0 { self[col, y] = Cell(" ", style: style) }
        col = end
        break
      }
      if col >= 0 {
        self[col, y] = Cell(String(ch), style: style)
        if w == 2 { self[col + 1, y] = Cell("", style: style, isContinuation: true) }
      }
      col += w
    }
    return max(0, col - x)
  }

  /// Fills a rectangle with one character.
  public mutating func fill(_ rect: Rect, with text: String = " ", style: CellStyle) {
    let r = rect.intersection(bounds)
    guard !r.isEmpty else { return }
    for y in r.y..<r.maxY {
      for x in r.x..<r.maxX { self[x, y] = Cell(text, style: style) }
    }
  }

  /// Sets the style of every cell in a rectangle, keeping the text.
  public mutating func restyle(_ rect: Rect, _ transform: (inout CellStyle) -> Void) {
    let r = rect.intersection(bounds)
    guard !r.isEmpty else { return }
    for y in r.y..<r.maxY {
      for x in r.x..<r.maxX { transform(&cells[y * width + x].style) }
    }
  }

  /// Draws a box border (light lines, or heavy when `heavy`) with an optional title on the top edge.
  public mutating func box(
    _ rect: Rect, style: CellStyle, title: String? = nil, titleStyle: CellStyle? = nil, heavy: Bool = false
  ) {
    guard rect.width >= 2, rect.height >= 2 else { return }
    let (h, v, tl, tr, bl, br) = heavy ? ("━", "┃", "┏", "┓", "┗", "┛") : ("─", "│", "╭", "╮", "╰", "╯")
    for x in rect.x + 1..<rect.maxX - 1 {
      self[x, rect.y] = Cell(h, style: style)
      self[x, rect.maxY - 1] = Cell(h, style: style)
    }
    for y in rect.y + 1..<rect.maxY - 1 {
      self[rect.x, y] = Cell(v, style: style)
      self[rect.maxX - 1, y] = Cell(v, style: style)
    }
    self[rect.x, rect.y] = Cell(tl, style: style)
    self[rect.maxX - 1, rect.y] = Cell(tr, style: style)
    self[rect.x, rect.maxY - 1] = Cell(bl, style: style)
    self[rect.maxX - 1, rect.maxY - 1] = Cell(br, style: style)
    if let title, rect.width > 4 {
      let t = " " + title.truncated(toColumns: rect.width - 6) + " "
      put(t, x: rect.x + 2, y: rect.y, style: titleStyle ?? style)
    }
  }

  /// The text of row `y` (continuation cells omitted, so wide characters read naturally).
  public func rowText(_ y: Int) -> String {
    guard y >= 0, y < height else { return "" }
    var s = ""
    for x in 0..<width where !cells[y * width + x].isContinuation { s += cells[y * width + x].text }
    return s
  }

  /// The screen as text: one line per row (trailing spaces trimmed), then the cursor and any
  /// inline images. This is what snapshot tests compare.
  public func textSnapshot() -> String {
    var lines = (0..<height).map { y -> String in
      var s = rowText(y)
      while s.hasSuffix(" ") { s.removeLast() }
      return s
    }
    if let c = cursor { lines.append("[cursor \(c.x),\(c.y)]") }
    for p in placements { lines.append("[image \(p.rect) \(p.key)]") }
    return lines.joined(separator: "\n") + "\n"
  }
}
