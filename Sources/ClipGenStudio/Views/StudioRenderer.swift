// Draws the studio's state into a cell grid: the main screen (history, preview, prompt, status),
// the comparison screen, the windows over them, and the too-small screen.
import Foundation

/// Turns a `StudioState` into a frame.
public struct StudioRenderer {
  public let state: StudioState
  public let images: ImageStore
  public let imagesDirectory: URL
  public let now: Date
  public let timeZone: TimeZone
  /// Paths under it are shown with "~".
  public let homeDirectory: String
  /// The history scroll offset the frame used (the controller keeps it for the next frame).
  public private(set) var historyScroll = 0

  public init(
    state: StudioState, images: ImageStore, imagesDirectory: URL, now: Date, timeZone: TimeZone,
    homeDirectory: String = NSHomeDirectory()
  ) {
    self.homeDirectory = homeDirectory
    self.state = state
    self.images = images
    self.imagesDirectory = imagesDirectory
    self.now = now
    self.timeZone = timeZone
    historyScroll = state.historyScroll
  }

  var theme: Theme { state.theme }

  public mutating func render() -> CellGrid {
    var canvas = Canvas(width: state.width, height: state.height, theme: theme)
    guard let layout = MainLayout.compute(width: state.width, height: state.height) else {
      drawTooSmall(&canvas)
      return canvas.grid
    }
    drawHeader(&canvas, layout.header)
    if let compare = state.compare {
      drawCompare(&canvas, compare, layout: layout)
    } else {
      drawHistory(&canvas, layout.history)
      drawPreview(&canvas, layout.preview)
      drawPrompt(&canvas, layout.prompt)
    }
    drawStatus(&canvas, layout.status)
    if let overlay = state.overlay { drawOverlay(&canvas, overlay) }
    return canvas.grid
  }

  // MARK: Too small

  func drawTooSmall(_ c: inout Canvas) {
    let lines = [
      "Terminal too small",
      "\(state.width)×\(state.height) — the studio needs at least \(MainLayout.minimumWidth)×\(MainLayout.minimumHeight).",
      "Enlarge the window, or press Ctrl-C to quit.",
    ]
    let top = max(0, (state.height - lines.count) / 2)
    for (i, line) in lines.enumerated() {
      let t = line.truncated(toColumns: state.width)
      c.text(
        t, x: max(0, (state.width - t.terminalWidth) / 2), y: top + i, role: i == 0 ? "warning" : "text", bold: i == 0)
    }
  }

  // MARK: Header

  func drawHeader(_ c: inout Canvas, _ r: Rect) {
    let bar = theme.bar("header")
    c.grid.fill(r, style: bar)
    var x = c.text(" clipgen studio ", x: 0, y: r.y, style: theme.bar("header", bold: true))
    let mode: String
    switch state.imageMode {
    case .sixel: mode = "sixel (\(state.capabilities.cellPixelWidth)×\(state.capabilities.cellPixelHeight) px cells)"
    case .halfBlock:
      mode =
        "half-blocks (\(state.capabilities.colorDepth == .trueColor ? "24-bit" : state.capabilities.colorDepth == .palette256 ? "256 colours" : "16 colours"))"
    case .none: mode = "none"
    }
    let info =
      "│ model \(state.modelName) · \(state.gridHeight)×\(state.gridWidth) tokens │ images: \(mode) │ theme: \(theme.name)"
    let right = " F1 help "
    x += c.text(info.truncated(toColumns: max(0, r.width - x - right.terminalWidth)), x: x, y: r.y, style: bar)
    c.text(right, x: r.maxX - right.terminalWidth, y: r.y, style: theme.bar("header", bold: true))
  }

  // MARK: History

  func timeLabel(_ date: Date) -> String {
    var cal = Calendar(identifier: .gregorian)
    cal.timeZone = timeZone
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = timeZone
    f.dateFormat = cal.isDate(date, inSameDayAs: now) ? "HH:mm" : "MMM d"
    return f.string(from: date)
  }

  func statusRole(_ s: GenerationStatus) -> String {
    switch s {
    case .done: return "success"
    case .running: return "accent"
    case .cancelled, .interrupted: return "warning"
    case .failed: return "error"
    }
  }

  mutating func drawHistory(_ c: inout Canvas, _ r: Rect) {
    let focused = state.focus == .history && state.overlay == nil
    var title = state.favoritesOnly ? "★ Favourites" : "History"
    title += " (\(max(state.historyTotal, state.history.count)))"
    c.pane(r, title: title, focused: focused, rightTitle: state.search.isEmpty ? nil : "“\(state.search)”")
    let inner = r.inset(dx: 1, dy: 1)
    var top = inner.y
    if let editor = state.searchEditor {
      let v = editor.visible(width: inner.width - 3)
      c.text("/ ", x: inner.x + 1, y: top, role: "key", bold: true)
      c.text(v.text, x: inner.x + 3, y: top, role: "text")
      top += 1
    }
    let rows = inner.maxY - top
    guard rows > 0 else { return }
    if state.history.isEmpty {
      var lines: [(String, String)]
      if !state.search.isEmpty || state.favoritesOnly {
        lines = [("Nothing matches.", "muted"), ("Esc in the search clears it; * shows all.", "muted")]
      } else {
        lines = [
          ("No generations yet.", "text"), ("", "text"), ("Type a prompt below and", "muted"),
          ("press Enter. Try:", "muted"),
        ]
        for p in state.samplePrompts.prefix(3) { lines.append(("  " + p, "accent")) }
      }
      for (i, l) in lines.enumerated() where i < rows {
        c.text(l.0, x: inner.x + 1, y: top + i, role: l.1, limit: inner.width - 1)
      }
      return
    }
    // Keep the selection visible.
    var scroll = min(historyScroll, max(0, state.history.count - rows))
    if state.selection < scroll { scroll = state.selection }
    if state.selection >= scroll + rows { scroll = state.selection - rows + 1 }
    scroll = max(0, scroll)
    historyScroll = scroll
    for row in 0..<rows {
      let i = scroll + row
      guard i < state.history.count else { break }
      let g = state.history[i].generation
      let y = top + row
      let selected = i == state.selection
      var base = c.style("text")
      if selected {
        base =
          focused
          ? CellStyle(foreground: theme["selection.text"], background: theme["selection.background"])
          : CellStyle(foreground: theme["text"], background: theme["progress.todo"])
        c.grid.fill(Rect(x: inner.x, y: y, width: inner.width, height: 1), style: base)
      }
      var x = inner.x + 1
      var s = base
      s.foreground = theme[statusRole(g.status)]
      x += c.text(g.status.symbol, x: x, y: y, style: s)
      s.foreground = theme["favorite"]
      x += c.text(g.favorite ? "★" : " ", x: x, y: y, style: s)
      s.foreground = selected ? base.foreground : theme["muted"]
      x += c.text(" " + timeLabel(g.createdAt) + " ", x: x, y: y, style: s)
      c.text(g.summary.truncated(toColumns: inner.maxX - x - 1), x: x, y: y, style: base)
    }
    let total = max(state.historyTotal, state.historyOffset + state.history.count)
    if total > rows {
      // A scroll indicator on the right border, for the place in the whole list.
      let at = state.historyOffset + scroll
      let pos = rows <= 1 ? 0 : min(rows - 1, (at * (rows - 1)) / max(1, total - rows))
      c.grid[r.maxX - 1, top + min(rows - 1, pos)] = Cell("┃", style: c.style(focused ? "border.focus" : "border"))
    }
  }

  // MARK: Preview

  /// Draws `image` as large as fits in `area` (keeping it square per its aspect), in the
  /// current image mode. Returns the cells used.
  @discardableResult
  func drawImage(_ c: inout Canvas, _ image: Pixmap?, in area: Rect, slot: String, placeholder: String = "no image")
    -> Rect
  {
    guard !area.isEmpty else { return area }
    guard let image, image.width > 0, image.height > 0 else {
      let side = min(area.width, area.height * 2)
      let r = HalfBlockRenderer.fit(
        aspect: 1, in: Rect(x: area.x, y: area.y, width: side, height: area.height), cellAspect: 2)
      let box = Rect(x: area.x + (area.width - r.width) / 2, y: r.y, width: r.width, height: r.height)
      if box.height >= 3 && box.width >= 8 {
        c.grid.box(box, style: c.style("border"))
        let t = placeholder.truncated(toColumns: box.width - 2)
        c.text(t, x: box.x + (box.width - t.terminalWidth) / 2, y: box.y + box.height / 2, role: "muted")
      } else {
        c.text(placeholder, x: area.x, y: area.y, role: "muted", limit: area.width)
      }
      return box
    }
    let aspect = Double(image.width) / Double(image.height)
    let useSixel = state.imageMode == .sixel && state.overlay == nil
    let cellAspect =
      useSixel ? Double(state.capabilities.cellPixelHeight) / Double(max(1, state.capabilities.cellPixelWidth)) : 2
    let rect = HalfBlockRenderer.fit(aspect: aspect, in: area, cellAspect: cellAspect)
    switch state.imageMode {
    case .sixel where useSixel:
      if let p = images.sixelPlacement(
        slot: slot, image: image, rect: rect, cellWidth: state.capabilities.cellPixelWidth,
        cellHeight: state.capabilities.cellPixelHeight)
      {
        c.grid.placements.append(p)
      }
    case .none:
      c.text("[\(image.width)×\(image.height) image]", x: rect.x, y: rect.y, role: "muted", limit: rect.width)
    default:
      HalfBlockRenderer.draw(image, into: &c.grid, rect: rect)
    }
    return rect
  }

  func drawPreview(_ c: inout Canvas, _ r: Rect) {
    let focused = state.focus == .preview && state.overlay == nil
    let inner = r.inset(dx: 2, dy: 1)
    if let run = state.run, state.selectedEntry == nil || state.selectedEntry?.id == run.historyID {
      c.pane(r, title: "Live", focused: focused, rightTitle: "\(run.phase.rawValue) \(run.done)/\(run.total)")
      let details = detailLines(run: run)
      let area = imageArea(inner)
      let shown = run.preview.map { $0.veiled(fromRow: run.previewRows * $0.height / max(1, state.gridHeight)) }
      drawImage(&c, shown, in: area, slot: "preview", placeholder: "embedding the prompt…")
      drawDetails(&c, details, below: area, inner: inner)
      return
    }
    guard let entry = state.selectedEntry else {
      c.pane(r, title: "Preview", focused: focused)
      let paragraphs = [
        "Type what you want to see in the prompt below and press Enter: the image appears row by row as the model samples it, and Esc stops it.",
        "F2 picks a style, F3 adds an image prompt, F4 changes the sampling settings, F5 compares temperatures side by side. F1 lists every key.",
        "Everything you make is kept in the history (Tab), with its seed and settings, across restarts.",
      ]
      var lines: [(String, String)] = [("Welcome to clipgen studio.", "accent")]
      for p in paragraphs { lines += [("", "text")] + wrap(p, width: inner.width).map { ($0, "text") } }
      for (i, l) in lines.enumerated() where i < inner.height {
        c.text(l.0, x: inner.x, y: inner.y + i, role: l.1, bold: i == 0, limit: inner.width)
      }
      return
    }
    let g = entry.generation
    let count = entry.images.count
    let index = min(state.previewIndex, max(0, count - 1))
    c.pane(
      r, title: "Preview #\(entry.id)", focused: focused,
      rightTitle: count > 1 ? "image \(index + 1)/\(count) ←/→" : nil)
    let details = detailLines(entry: entry, index: index)
    let area = imageArea(inner)
    var image: Pixmap?
    var placeholder = "no image"
    if index < count {
      let url = imagesDirectory.appendingPathComponent(entry.images[index].fileName)
      image = images.pixmap(for: url)
      if image == nil { placeholder = "cannot read \(entry.images[index].fileName)" }
    } else {
      switch g.status {
      case .running: placeholder = "running in another studio"
      case .cancelled: placeholder = "cancelled"
      case .failed: placeholder = "failed"
      case .interrupted: placeholder = "interrupted"
      case .done: placeholder = "no image saved"
      }
    }
    var shownDetails = details
    if let m = state.rowMarker, m.generationID == entry.id, m.index == index, let img = image {
      // The rows a re-roll would sample again are veiled, as the live preview veils rows not
      // sampled yet.
      image = img.veiled(fromRow: m.rows * img.height / max(1, state.gridHeight))
      shownDetails.insert(
        ("Re-roll: keep rows 1–\(m.rows) of \(state.gridHeight) (↑/↓), R re-rolls the rest", "accent"), at: 0)
    }
    if let s = state.regionSelection, s.generationID == entry.id, s.index == index, state.focus == .preview,
      let img = image
    {
      // Everything a region edit keeps is veiled; the region itself shows as it is now.
      let r = s.region
      let gw = max(1, state.gridWidth)
      let gh = max(1, state.gridHeight)
      image = img.veiled(
        outsideX: r.x * img.width / gw, y: r.y * img.height / gh, width: r.width * img.width / gw,
        height: r.height * img.height / gh)
      shownDetails.insert(
        (
          "Region \(r.width)×\(r.height) at x \(r.x), row \(r.y): arrows, H J K L size, Enter", "accent"
        ), at: 0)
    }
    drawImage(&c, image, in: area, slot: "preview", placeholder: placeholder)
    drawDetails(&c, shownDetails, below: area, inner: inner)
  }

  /// Rows under the preview image kept for the details, the same live and finished so the
  /// image does not change size when a generation ends.
  static let detailRows = 5

  func imageArea(_ inner: Rect) -> Rect {
    Rect(x: inner.x, y: inner.y, width: inner.width, height: max(1, inner.height - StudioRenderer.detailRows - 1))
  }

  func drawDetails(_ c: inout Canvas, _ lines: [(String, String)], below area: Rect, inner: Rect) {
    var y = area.maxY + 1
    for (text, role) in lines.prefix(StudioRenderer.detailRows) {
      let t =
        text.hasPrefix("/") || text.hasPrefix("~")
        ? leftTruncated(text, inner.width) : text.truncated(toColumns: inner.width)
      if y < inner.maxY { c.text(t, x: inner.x, y: y, role: role) }
      y += 1
    }
  }

  /// The end of a path that fits, with "…" in front when cut.
  func leftTruncated(_ s: String, _ width: Int) -> String {
    guard s.terminalWidth > width, width > 1 else { return s }
    var out = ""
    for ch in s.reversed() {
      if (out.terminalWidth + ch.terminalWidth) > width - 1 { break }
      out.insert(ch, at: out.startIndex)
    }
    return "…" + out
  }

  /// A path with the home directory shown as "~".
  func abbreviatedPath(_ path: String) -> String {
    let home = homeDirectory.hasSuffix("/") ? String(homeDirectory.dropLast()) : homeDirectory
    guard !home.isEmpty, path.hasPrefix(home + "/") else { return path }
    return "~" + path.dropFirst(home.count)
  }

  func settingsLine(_ s: GenerationSettings) -> String {
    var t = "seed \(s.seed) · \(s.samplingLabel)"
    if s.count > 1 || s.candidates > 1 { t += " · \(s.count) of \(s.candidates)" }
    return t
  }

  func detailLines(run: RunProgress) -> [(String, String)] {
    var lines: [(String, String)] = [("“\(run.prompt)”", "text")]
    let rate = run.tokensPerSecond > 0 ? String(format: " · %.0f tok/s", run.tokensPerSecond) : ""
    lines.append(("row \(run.previewRows)/\(state.gridHeight) · \(run.done)/\(run.total) tokens\(rate)", "accent"))
    if run.truncated { lines.append(("the prompt was longer than the model's context and was cut", "warning")) }
    lines.append((run.cancelling ? "cancelling…" : "Esc cancels", "muted"))
    return lines
  }

  func detailLines(entry: HistoryEntry, index: Int) -> [(String, String)] {
    let g = entry.generation
    var lines: [(String, String)] = [("“\(g.styledPrompt.isEmpty ? "(image only)" : g.styledPrompt)”", "text")]
    var extras: [String] = []
    if let s = g.styleName { extras.append("style \(s)") }
    if let p = g.imagePath {
      extras.append("image \((p as NSString).lastPathComponent) ×\(formatWeight(g.imageWeight ?? 1))")
    }
    if !extras.isEmpty { lines.append((extras.joined(separator: " · "), "muted")) }
    lines.append((settingsLine(g.settings), "muted"))
    switch g.status {
    case .done:
      var t = "✓ done"
      if let s = g.seconds { t += String(format: " in %.1f s", s) }
      if let r = g.tokensPerSecond { t += String(format: " · %.0f tok/s", r) }
      if index < entry.images.count, let score = entry.images[index].clipScore {
        t += String(format: " · CLIP %.3f", score)
      }
      if g.truncated { t += " · prompt cut to fit" }
      lines.append((t, "success"))
    case .running: lines.append(("⟳ running", "accent"))
    case .cancelled: lines.append(("⊘ cancelled", "warning"))
    case .failed: lines.append(("✗ failed: \(g.errorMessage ?? "unknown error")", "error"))
    case .interrupted:
      lines.append(("! interrupted: \(g.errorMessage ?? "the studio stopped while this was running")", "warning"))
    }
    if index < entry.images.count {
      lines.append(
        (abbreviatedPath(imagesDirectory.appendingPathComponent(entry.images[index].fileName).path), "muted"))
    }
    return lines
  }

  // MARK: Prompt

  func drawPrompt(_ c: inout Canvas, _ r: Rect) {
    let focused = state.focus == .prompt && state.overlay == nil
    var badges: [String] = []
    if let s = state.style { badges.append("style \(s.name)") }
    if let i = state.imagePrompt { badges.append("image \(i.label) ×\(formatWeight(i.weight))") }
    if let n = state.negative { badges.append("not \(n.count > 24 ? String(n.prefix(23)) + "…" : n)") }
    badges.append(state.settings.samplingLabel)
    badges.append(state.randomSeed ? "seed random" : "seed \(state.settings.seed)")
    c.pane(r, title: "Prompt", focused: focused, rightTitle: badges.joined(separator: " · "))
    let inner = r.inset(dx: 1, dy: 1)
    c.text("›", x: inner.x + 1, y: inner.y, role: focused ? "accent" : "muted", bold: true)
    let fieldX = inner.x + 3
    let fieldWidth = inner.maxX - fieldX - 1
    if state.editor.isEmpty {
      let hint =
        state.imagePrompt != nil
        ? "Enter generates from the image alone, or add words"
        : "Describe an image, e.g. \(state.samplePrompts.first ?? "a large red circle on the left")"
      c.text(hint, x: fieldX, y: inner.y, role: "muted", limit: fieldWidth)
      if focused { c.grid.cursor = (fieldX, inner.y) }
    } else {
      let v = state.editor.visible(width: fieldWidth)
      c.text(v.text, x: fieldX, y: inner.y, role: "text")
      if focused { c.grid.cursor = (fieldX + v.cursorColumn, inner.y) }
    }
  }

  // MARK: Status line

  func drawStatus(_ c: inout Canvas, _ r: Rect) {
    let bar = theme.bar("status")
    c.grid.fill(r, style: bar)
    if let m = state.message {
      let role: String
      let icon: String
      switch m.kind {
      case .info: (role, icon) = ("status.text", "›")
      case .success: (role, icon) = ("success", "✓")
      case .warning: (role, icon) = ("warning", "!")
      case .error: (role, icon) = ("error", "✗")
      }
      var s = bar
      s.foreground = theme[role]
      s.bold = m.kind != .info
      c.text(" \(icon) " + m.text, x: 0, y: r.y, style: s, limit: r.width)
      return
    }
    if let progress = runStatus() {
      var x = c.text(" ⟳ " + progress.label + " ", x: 0, y: r.y, style: theme.bar("status", bold: true))
      let barWidth = min(24, max(0, r.width / 4))
      if progress.fraction != nil {
        c.progressBar(x: x, y: r.y, width: barWidth, fraction: progress.fraction ?? 0)
        x += barWidth
      }
      c.text(" " + progress.detail, x: x, y: r.y, style: bar, limit: r.width - x)
      return
    }
    let hints =
      state.compare != nil
      ? Keymap.compareHints(running: state.isRunning, interpolation: state.compare?.interpolateTo != nil)
      : Keymap.hints(for: state.focus, running: state.isRunning)
    c.hints(hints, x: 1, y: r.y, width: r.width - 1, bar: "status")
  }

  func runStatus() -> (label: String, fraction: Double?, detail: String)? {
    if let run = state.run {
      switch run.phase {
      case .conditioning: return ("Embedding the prompt", nil, "Esc cancels")
      case .decoding: return ("Decoding", 1, "Esc cancels")
      case .sampling:
        var d = "\(run.done)/\(run.total) tokens"
        if run.tokensPerSecond > 0 { d += String(format: " · %.0f tok/s", run.tokensPerSecond) }
        if let eta = run.eta { d += " · ETA " + formatDuration(eta) }
        d += run.cancelling ? " · cancelling…" : " · Esc cancels"
        return ("Sampling", Double(run.done) / Double(max(1, run.total)), d)
      }
    }
    if let cmp = state.compare, cmp.job != nil {
      let n = cmp.columns.count
      let finished = cmp.columns.filter { $0.status == .done }.count
      let current = cmp.columns.firstIndex { $0.status == .running }
      let col = current.map { cmp.columns[$0] }
      let frac = (Double(finished) + Double(col?.done ?? 0) / Double(max(1, col?.total ?? 1))) / Double(max(1, n))
      return ("Comparing", frac, "column \((current ?? finished) + 1) of \(n) · Esc cancels")
    }
    return nil
  }
}

/// "0.4 s", "12 s", "3 min 5 s".
public func formatDuration(_ seconds: Double) -> String {
  if seconds < 10 { return String(format: "%.1f s", max(0, seconds)) }
  if seconds < 60 { return "\(Int(seconds.rounded())) s" }
  let s = Int(seconds.rounded())
  return "\(s / 60) min \(s % 60) s"
}
