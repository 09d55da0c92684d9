// The real terminal driver: ncurses (wide-character) for text, plus raw escape sequences
// written right after each ncurses refresh for what ncurses cannot draw — sixel images and
// 24-bit colours. Every ncurses call in the studio is in this file, on the thread that calls
// the driver.
import CCursesShim
import Foundation

/// Options for the ncurses driver.
public struct CursesDriverOptions: Sendable {
  /// Force an image mode instead of detecting one.
  public var imageMode: ImageMode?
  /// Force a colour depth instead of detecting one.
  public var colorDepth: ColorDepth?
  /// Skip the start-up queries (for terminals that misbehave on them).
  public var probe: Bool

  public init(imageMode: ImageMode? = nil, colorDepth: ColorDepth? = nil, probe: Bool = true) {
    self.imageMode = imageMode
    self.colorDepth = colorDepth
    self.probe = probe
  }
}

/// Why the terminal could not be used.
public struct TerminalError: Error, CustomStringConvertible {
  public var message: String
  public var description: String { message }
}

/// Draws cell grids with ncurses and reads keys.
public final class CursesDriver: TerminalDriver {
  public private(set) var width = 0
  public private(set) var height = 0
  public private(set) var capabilities: TerminalCapabilities

  private var previous: CellGrid?
  private var pairs: [Int64: Int32] = [:]
  private var nextPair: Int32 = 1
  private let maxPairs: Int32
  /// Cells drawn by the raw 24-bit pass (ncurses holds an approximation of them).
  private var overlaid: Set<Int> = []
  private var stopped = false
  /// Keys typed while the terminal was being queried, handed out before anything ncurses reads.
  private var typeahead: [TerminalEvent] = []
  /// ncurses uses 24-bit colour numbers itself (a `-direct` terminfo entry).
  private let directColor: Bool

  /// Queries the terminal, then starts ncurses on it.
  public init(options: CursesDriverOptions = CursesDriverOptions()) throws {
    guard isatty(STDIN_FILENO) == 1, isatty(STDOUT_FILENO) == 1 else {
      throw TerminalError(message: "needs a terminal: standard input and output must be a tty")
    }
    _ = cg_curses_setlocale_utf8()
    // Before the probe writes anything to it, and before initscr (which exits the process on an
    // unknown TERM).
    let term = ProcessInfo.processInfo.environment["TERM"] ?? ""
    if term.isEmpty {
      throw TerminalError(message: "TERM is not set; set it to your terminal's type (e.g. TERM=xterm-256color)")
    }
    switch cg_curses_check_terminal() {
    case 0: break
    case 1:
      throw TerminalError(
        message:
          "TERM=\(term) is not a terminal type this system knows (terminfo); try TERM=xterm-256color"
      )
    case 2: throw TerminalError(message: "no terminfo database found (install ncurses-base), TERM=\(term)")
    default:
      throw TerminalError(
        message:
          "TERM=\(term) cannot move the cursor, which the studio needs; use a full-screen terminal, or `clipgen generate` for plain output"
      )
    }
    var replies = options.probe ? TerminalProbe.query() : TerminalReplies()
    var wc: Int32 = 0
    var wr: Int32 = 0
    var wx: Int32 = 0
    var wy: Int32 = 0
    if cg_curses_window_size(STDOUT_FILENO, &wc, &wr, &wx, &wy) == 0, wx > 0, wy > 0 {
      replies.windowPixels = (Int(wx), Int(wy))
    }
    guard cg_curses_start(25) == 0 else {
      throw TerminalError(
        message:
          "ncurses could not start on this terminal (TERM=\(ProcessInfo.processInfo.environment["TERM"] ?? "unset"))")
    }
    var rows: Int32 = 0
    var cols: Int32 = 0
    cg_curses_size(&rows, &cols)
    width = Int(cols)
    height = Int(rows)
    let colors = cg_curses_colors()
    maxPairs = max(1, cg_curses_color_pairs())
    directColor = cg_curses_flag("RGB") == 1 && colors >= 0x100_0000
    let env = ProcessInfo.processInfo.environment
    let colorterm = (env["COLORTERM"] ?? "").lowercased()
    let depth: ColorDepth
    if let forced = options.colorDepth {
      depth = forced
    } else if directColor || colorterm == "truecolor" || colorterm == "24bit" {
      depth = .trueColor
    } else if colors >= 256 {
      depth = .palette256
    } else {
      depth = .basic
    }
    let cell = replies.cellPixelSize(columns: width, rows: height)
    capabilities = TerminalCapabilities(
      sixel: options.imageMode == .sixel || (options.imageMode == nil && replies.hasSixel), cellPixelWidth: cell.width,
      cellPixelHeight: cell.height, colorDepth: depth,
      deviceAttributes: replies.deviceAttributes.map { $0.map(String.init).joined(separator: ";") } ?? "none")
    typeahead = typeaheadEvents(replies.typeahead)
    writeRaw(BracketedPaste.enable)
  }

  deinit { shutdown() }

  public func shutdown() {
    guard !stopped else { return }
    stopped = true
    // Clear inline images before leaving the alternate screen.
    writeRaw(Array("\u{1B}[0m".utf8) + BracketedPaste.disable)
    cg_curses_stop()
  }

  public func invalidate() {
    previous = nil
  }

  public func nextEvent(timeoutMilliseconds: Int) -> TerminalEvent? {
    if !typeahead.isEmpty { return typeahead.removeFirst() }
    var ch: UInt32 = 0
    switch cg_curses_read(Int32(timeoutMilliseconds), &ch) {
    case 1:
      if ch == 27, let paste = readPaste() { return paste }
      return translate(character: ch)
    case 2:
      if Int(ch) == Int(CG_KEY_RESIZE) {
        var rows: Int32 = 0
        var cols: Int32 = 0
        cg_curses_size(&rows, &cols)
        width = Int(cols)
        height = Int(rows)
        previous = nil
        // A new font size changes the cell size; TIOCGWINSZ says so where the terminal fills it in.
        var wc: Int32 = 0
        var wr: Int32 = 0
        var wx: Int32 = 0
        var wy: Int32 = 0
        if cg_curses_window_size(STDOUT_FILENO, &wc, &wr, &wx, &wy) == 0, wx > 0, wy > 0, cols > 0, rows > 0,
          Int(wx) / Int(cols) >= 2, Int(wy) / Int(rows) >= 2
        {
          capabilities.cellPixelWidth = Int(wx) / Int(cols)
          capabilities.cellPixelHeight = Int(wy) / Int(rows)
        }
        return .resize(width: width, height: height)
      }
      return translateSpecial(ch).map { .key($0) }
    default:
      return nil
    }
  }

  /// After an ESC: a bracketed paste when `[200~` follows (read to `ESC [201~`), else nil with
  /// the characters read queued as the keys they are.
  private func readPaste() -> TerminalEvent? {
    var ch: UInt32 = 0
    var read: [UInt32] = []
    while read.count < BracketedPaste.start.count {
      guard cg_curses_read(0, &ch) == 1 else { break }
      read.append(ch)
      if read.last != BracketedPaste.start[read.count - 1] { break }
    }
    guard read == BracketedPaste.start else {
      typeahead.insert(contentsOf: read.compactMap { translate(character: $0) }, at: 0)
      return nil
    }
    var text: [UInt32] = []
    var recent: [UInt32] = []  // the last few characters, to see the end marker
    var idle = 0
    while idle < 20 {  // a paste arrives at once; 20 quiet reads of 50 ms end a broken one
      let r = cg_curses_read(50, &ch)
      guard r == 1 else {
        if r == 0 { idle += 1 }
        continue
      }
      idle = 0
      recent.append(ch)
      if recent.count > BracketedPaste.end.count { recent.removeFirst() }
      if recent == BracketedPaste.end {
        text.removeLast(min(text.count, BracketedPaste.end.count - 1))
        break
      }
      if text.count < BracketedPaste.maximumCharacters + BracketedPaste.end.count { text.append(ch) }
    }
    let scalars = text.prefix(BracketedPaste.maximumCharacters).compactMap(UnicodeScalar.init)
    var s = String.UnicodeScalarView()
    s.append(contentsOf: scalars)
    return .paste(String(s))
  }

  private func translate(character ch: UInt32) -> TerminalEvent? {
    switch ch {
    case 9: return .key(.tab)
    case 10, 13: return .key(.enter)
    case 27: return .key(.escape)
    case 8, 127: return .key(.backspace)
    case 0: return nil
    case 1...26: return .key(.control(Character(UnicodeScalar(UInt8(ch) + 0x60))))
    case 28...31: return nil
    default:
      guard let scalar = UnicodeScalar(ch) else { return nil }
      return .key(.character(Character(scalar)))
    }
  }

  private func translateSpecial(_ code: UInt32) -> Key? {
    let c = Int(code)
    if c >= Int(CG_KEY_F1), c < Int(CG_KEY_F1) + 12 { return .function(c - Int(CG_KEY_F1) + 1) }
    switch c {
    case Int(CG_KEY_UP): return .up
    case Int(CG_KEY_DOWN): return .down
    case Int(CG_KEY_LEFT): return .left
    case Int(CG_KEY_RIGHT): return .right
    case Int(CG_KEY_HOME): return .home
    case Int(CG_KEY_END): return .end
    case Int(CG_KEY_PAGE_UP): return .pageUp
    case Int(CG_KEY_PAGE_DOWN): return .pageDown
    case Int(CG_KEY_BACKSPACE): return .backspace
    case Int(CG_KEY_DELETE): return .delete
    case Int(CG_KEY_INSERT): return .insert
    case Int(CG_KEY_ENTER): return .enter
    case Int(CG_KEY_BACKTAB): return .backTab
    default: return nil
    }
  }

  // MARK: Drawing

  /// A palette index for ncurses (-1: the terminal default). `.rgb` colours go to the nearest
  /// palette entry (or the exact colour number with a direct-colour terminfo).
  private func colorNumber(_ c: TerminalColor) -> Int32 {
    switch c {
    case .default: return -1
    case .indexed(let i):
      return capabilities.colorDepth == .basic ? Int32(basicIndex(TerminalColor.rgb(ofPaletteIndex: i))) : Int32(i)
    case .rgb(let r, let g, let b):
      if directColor { return Int32(r) << 16 | Int32(g) << 8 | Int32(b) }
      if capabilities.colorDepth == .basic { return Int32(basicIndex((r, g, b))) }
      return Int32(TerminalColor.paletteIndex(red: r, green: g, blue: b))
    }
  }

  /// The nearest of the eight ANSI colours.
  private func basicIndex(_ c: (UInt8, UInt8, UInt8)) -> Int {
    let bright = (Int(c.0) + Int(c.1) + Int(c.2)) / 3 > 170
    let r = c.0 > 110 ? 1 : 0
    let g = c.1 > 110 ? 2 : 0
    let b = c.2 > 110 ? 4 : 0
    let base = r | g | b
    return base == 7 && !bright ? 7 : base
  }

  private func pair(foreground: Int32, background: Int32) -> Int32 {
    if foreground == -1 && background == -1 { return 0 }
    let key = Int64(foreground) << 32 | Int64(UInt32(bitPattern: background))
    if let p = pairs[key] { return p }
    if nextPair >= maxPairs {
      // Out of pairs: start over and repaint everything with the new assignments.
      pairs.removeAll()
      nextPair = 1
      previous = nil
    }
    let p = nextPair
    nextPair += 1
    _ = cg_curses_init_pair(p, foreground, background)
    pairs[key] = p
    return p
  }

  private func isOverlayCell(_ cell: Cell) -> Bool {
    guard capabilities.colorDepth == .trueColor, !directColor else { return false }
    if case .rgb = cell.style.foreground { return true }
    if case .rgb = cell.style.background { return true }
    return false
  }

  private func putCell(_ cell: Cell, x: Int, y: Int) {
    var attrs: Int32 = 0
    if cell.style.bold { attrs |= Int32(CG_ATTR_BOLD) }
    if cell.style.dim { attrs |= Int32(CG_ATTR_DIM) }
    if cell.style.underline { attrs |= Int32(CG_ATTR_UNDERLINE) }
    if cell.style.reverse { attrs |= Int32(CG_ATTR_REVERSE) }
    let p = pair(foreground: colorNumber(cell.style.foreground), background: colorNumber(cell.style.background))
    var chars = cell.text.unicodeScalars.map { wchar_t(bitPattern: $0.value) }
    if chars.isEmpty || chars[0] < 32 { chars = [32] }
    _ = chars.withUnsafeBufferPointer { cg_curses_put(Int32(y), Int32(x), $0.baseAddress, Int32($0.count), attrs, p) }
  }

  public func present(_ grid: CellGrid) {
    guard !stopped else { return }
    var full = false
    if previous == nil || previous!.width != grid.width || previous!.height != grid.height
      || grid.width != width || grid.height != height
    {
      full = true
      overlaid.removeAll()
      cg_curses_clear_all()
    }
    let prev = full ? nil : previous
    var redrawn = Set<Int>()
    if full { redrawn = Set(0..<grid.height) }

    // Images that went away or moved: repaint their rows so the text there erases them.
    if let prev {
      for old in prev.placements where !grid.placements.contains(old) {
        let r = old.rect.intersection(grid.bounds)
        guard !r.isEmpty else { continue }
        cg_curses_redraw_lines(Int32(r.y), Int32(r.height))
        for y in r.y..<r.maxY { redrawn.insert(y) }
      }
    }

    let changedCells = cursesPass(grid, prev: prev, redrawn: &redrawn)
    let out = rawPass(grid, prev: prev, changedCells: changedCells, redrawn: redrawn)
    if !out.isEmpty {
      writeRaw(Array("\u{1B}7".utf8) + out + Array("\u{1B}[0m\u{1B}8".utf8))
    }
    previous = grid
  }

  /// Puts the cells that changed since `prev` (all on the rows in `redrawn`) through curses and
  /// refreshes; a row whose 24-bit cells were overwritten joins `redrawn`. Returns the changed
  /// cells' indices.
  private func cursesPass(_ grid: CellGrid, prev: CellGrid?, redrawn: inout Set<Int>) -> [Int] {
    var changedCells: [Int] = []
    for y in 0..<grid.height {
      for x in 0..<grid.width {
        let i = y * grid.width + x
        let cell = grid.cells[i]
        if let prev, prev.cells[i] == cell, !redrawn.contains(y) { continue }
        changedCells.append(i)
        if cell.isContinuation { continue }
        putCell(cell, x: x, y: y)
        if overlaid.contains(i) && !isOverlayCell(cell) {
          overlaid.remove(i)
          if !redrawn.contains(y) {
            cg_curses_redraw_lines(Int32(y), 1)
            redrawn.insert(y)
          }
        }
      }
    }
    if let c = grid.cursor, c.x >= 0, c.x < grid.width, c.y >= 0, c.y < grid.height {
      cg_curses_cursor(Int32(c.y), Int32(c.x), 1)
    } else {
      cg_curses_cursor(0, 0, 0)
    }
    cg_curses_refresh()
    return changedCells
  }

  /// The raw pass's bytes: 24-bit cells curses cannot draw (changed ones, and every one on a
  /// redrawn row), then the images that are new or were disturbed.
  private func rawPass(_ grid: CellGrid, prev: CellGrid?, changedCells: [Int], redrawn: Set<Int>) -> [UInt8] {
    var out: [UInt8] = []
    var lastColors: (TerminalColor, TerminalColor)?
    var cursorAt: (Int, Int)?
    func emitCell(_ i: Int) {
      let cell = grid.cells[i]
      guard !cell.isContinuation, isOverlayCell(cell) else { return }
      let x = i % grid.width
      let y = i / grid.width
      if cursorAt == nil || cursorAt! != (x, y) { out += Array("\u{1B}[\(y + 1);\(x + 1)H".utf8) }
      if lastColors == nil || lastColors!.0 != cell.style.foreground || lastColors!.1 != cell.style.background {
        out += Array(sgr(cell.style).utf8)
        lastColors = (cell.style.foreground, cell.style.background)
      }
      out += Array(cell.text.utf8)
      cursorAt = (x + max(1, cell.text.terminalWidth), y)
      overlaid.insert(i)
    }
    let changedSet = Set(changedCells)
    for i in changedCells { emitCell(i) }
    for y in redrawn.sorted() {
      for x in 0..<grid.width where !changedSet.contains(y * grid.width + x) { emitCell(y * grid.width + x) }
    }
    let changedRows = Set(changedCells.map { $0 / max(1, grid.width) })
    for p in grid.placements {
      let isNew = !(prev?.placements.contains(p) ?? false)
      let disturbed = (p.rect.y..<p.rect.maxY).contains {
        redrawn.contains($0) || changedRows.contains($0) && rowChanged(changedCells, grid: grid, row: $0, in: p.rect)
      }
      guard isNew || disturbed, !p.data.isEmpty else { continue }
      out += Array("\u{1B}[\(p.rect.y + 1);\(p.rect.x + 1)H".utf8)
      out += p.data
    }
    return out
  }

  private func rowChanged(_ changed: [Int], grid: CellGrid, row: Int, in rect: Rect) -> Bool {
    changed.contains { $0 / grid.width == row && rect.contains(x: $0 % grid.width, y: row) }
  }

  private func sgr(_ style: CellStyle) -> String {
    func part(_ c: TerminalColor, _ base: Int) -> String {
      switch c {
      case .default: return "\(base + 9)"
      case .indexed(let i): return "\(base + 8);5;\(i)"
      case .rgb(let r, let g, let b): return "\(base + 8);2;\(r);\(g);\(b)"
      }
    }
    var s = "\u{1B}[0;" + part(style.foreground, 30) + ";" + part(style.background, 40)
    if style.bold { s += ";1" }
    if style.dim { s += ";2" }
    if style.underline { s += ";4" }
    if style.reverse { s += ";7" }
    return s + "m"
  }

  public func copyToClipboard(_ text: String) {
    // OSC 52 ; c ; base64 BEL. tmux passes it on with `set -g set-clipboard on`.
    writeRaw(Array("\u{1B}]52;c;\(Data(text.utf8).base64EncodedString())\u{07}".utf8))
  }

  private func writeRaw(_ bytes: [UInt8]) {
    var offset = 0
    bytes.withUnsafeBytes { p in
      while offset < p.count {
        let n = write(STDOUT_FILENO, p.baseAddress! + offset, p.count - offset)
        if n > 0 {
          offset += n
        } else if n < 0 && errno == EINTR {
          continue
        } else if n < 0 && errno == EAGAIN {
          usleep(1000)
        } else {
          break
        }
      }
    }
  }
}
