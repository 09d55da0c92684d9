// The windows drawn over the main screen: help, style picker, image prompt, settings, and the
// confirmations.
import Foundation

extension StudioRenderer {
  /// A centred window of up to `width`×`height`, cleared, bordered and titled.
  func window(_ c: inout Canvas, width: Int, height: Int, title: String) -> Rect {
    let w = min(width, state.width - 4)
    let h = min(height, state.height - 2)
    let r = Rect(x: (state.width - w) / 2, y: max(1, (state.height - h) / 2), width: w, height: h)
    c.grid.fill(r, style: c.style("text"))
    c.grid.box(r, style: c.style("border.focus"), title: title, titleStyle: c.style("accent", bold: true), heavy: true)
    return r
  }

  func drawOverlay(_ c: inout Canvas, _ overlay: Overlay) {
    switch overlay {
    case .help(let scroll): drawHelp(&c, scroll: scroll)
    case .styles(let picker): drawStyles(&c, picker)
    case .imagePrompt(let form): drawImagePrompt(&c, form)
    case .negativePrompt(let editor): drawNegativePrompt(&c, editor)
    case .interpolateTo(let editor): drawInterpolateTo(&c, editor)
    case .settings(let form): drawSettings(&c, form)
    case .confirmQuit:
      let r = window(&c, width: 56, height: 6, title: "Quit?")
      c.text("A generation is running.", x: r.x + 2, y: r.y + 2, role: "text", limit: r.width - 4)
      c.text(
        "Quit and cancel it?   y yes · n no", x: r.x + 2, y: r.y + 3, role: "warning", bold: true, limit: r.width - 4)
    case .confirmDelete(let id):
      let r = window(&c, width: 60, height: 6, title: "Delete?")
      let prompt = state.history.first { $0.id == id }?.generation.summary ?? "#\(id)"
      c.text("Delete “\(prompt)”", x: r.x + 2, y: r.y + 2, role: "text", limit: r.width - 4)
      c.text(
        "and its image files?   y yes · n no", x: r.x + 2, y: r.y + 3, role: "warning", bold: true, limit: r.width - 4)
    }
  }

  /// Every line of the help screen (also used to clamp its scrolling).
  static func helpLines() -> [(keys: String, action: String, heading: Bool)] {
    var lines: [(String, String, Bool)] = []
    for (i, section) in Keymap.sections.enumerated() {
      if i > 0 { lines.append(("", "", false)) }
      lines.append((section.title, "", true))
      for k in section.keys { lines.append((k.keys, k.action, false)) }
    }
    return lines
  }

  func drawHelp(_ c: inout Canvas, scroll: Int) {
    let lines = StudioRenderer.helpLines()
    let r = window(&c, width: 96, height: lines.count + 4, title: "Keys — ↑/↓ scroll · any other key closes")
    let inner = r.inset(dx: 2, dy: 1)
    let longest = lines.filter { !$0.heading }.map { $0.keys.terminalWidth }.max() ?? 10
    let keyWidth = min(inner.width / 2, longest + 3)
    let visible = inner.height
    let start = max(0, min(scroll, lines.count - visible))
    for row in 0..<visible {
      let i = start + row
      guard i < lines.count else { break }
      let l = lines[i]
      if l.heading {
        c.text(l.keys, x: inner.x, y: inner.y + row, role: "accent", bold: true)
      } else {
        c.text(l.keys, x: inner.x + 1, y: inner.y + row, role: "key", limit: keyWidth - 2)
        c.text(l.action, x: inner.x + keyWidth, y: inner.y + row, role: "text", limit: inner.width - keyWidth)
      }
    }
    if lines.count > visible {
      c.text(
        " \(start + 1)–\(min(lines.count, start + visible)) of \(lines.count) ", x: r.maxX - 16, y: r.maxY - 1,
        role: "muted")
    }
  }

  func drawStyles(_ c: inout Canvas, _ picker: StylePicker) {
    let matches = StudioStyles.choices(state: state, query: picker.query.text)
    let r = window(
      &c, width: 76, height: min(state.height - 2, 18), title: "Style — type to search · Enter picks · Esc closes")
    let inner = r.inset(dx: 2, dy: 1)
    c.text("Search: ", x: inner.x, y: inner.y, role: "muted")
    let v = picker.query.visible(width: inner.width - 9)
    c.text(v.text, x: inner.x + 8, y: inner.y, role: "text")
    c.grid.cursor = (inner.x + 8 + v.cursorColumn, inner.y)
    let listTop = inner.y + 2
    let listRows = max(1, inner.height - 5)
    let start = max(0, min(picker.selected - listRows + 1, matches.count - listRows))
    if matches.isEmpty { c.text("No style matches.", x: inner.x, y: listTop, role: "muted") }
    for row in 0..<listRows {
      let i = max(0, start) + row
      guard i < matches.count else { break }
      let style = matches[i]
      let selected = i == picker.selected
      let s =
        selected
        ? CellStyle(foreground: theme["selection.text"], background: theme["selection.background"]) : c.style("text")
      c.grid.fill(Rect(x: inner.x, y: listTop + row, width: inner.width, height: 1), style: s)
      let current = style?.name == state.style?.name
      c.text((current ? "● " : "  ") + (style?.name ?? "(no style)"), x: inner.x, y: listTop + row, style: s, limit: 22)
      var t = s
      t.foreground = selected ? theme["selection.text"] : theme["muted"]
      c.text(
        style?.template ?? "the prompt as typed", x: inner.x + 23, y: listTop + row, style: t, limit: inner.width - 23)
    }
    if picker.selected < matches.count {
      let example = state.editor.text.isEmpty ? (state.samplePrompts.first ?? "your prompt") : state.editor.text
      let applied = matches[picker.selected]?.apply(to: example) ?? example
      c.text("→ " + applied, x: inner.x, y: inner.maxY - 1, role: "accent", limit: inner.width)
      if let suits = matches[picker.selected]?.suits {
        c.text("Written for \(suits).", x: inner.x, y: inner.maxY - 2, role: "muted", limit: inner.width)
      }
    }
  }

  func drawInterpolateTo(_ c: inout Canvas, _ editor: LineEditor) {
    let r = window(&c, width: 78, height: 8, title: "Interpolate — the prompt to end at")
    let inner = r.inset(dx: 2, dy: 1)
    c.text("From “\(state.editor.text)” to:", x: inner.x, y: inner.y, role: "muted", limit: inner.width)
    let field = CellStyle(foreground: theme["text"], background: theme["progress.todo"])
    let v = editor.visible(width: inner.width)
    c.grid.fill(Rect(x: inner.x, y: inner.y + 1, width: inner.width, height: 1), style: field)
    c.text(v.text, x: inner.x, y: inner.y + 1, style: field)
    c.grid.cursor = (inner.x + v.cursorColumn, inner.y + 1)
    c.text(
      "Enter: 5 images side by side, one seed, going from one prompt to the other.",
      x: inner.x, y: inner.y + 3, role: "muted", limit: inner.width)
  }

  func drawNegativePrompt(_ c: inout Canvas, _ editor: LineEditor) {
    let r = window(&c, width: 78, height: 8, title: "Negative prompt — what the image should not show")
    let inner = r.inset(dx: 2, dy: 1)
    let field = CellStyle(foreground: theme["text"], background: theme["progress.todo"])
    let v = editor.visible(width: inner.width)
    c.grid.fill(Rect(x: inner.x, y: inner.y + 1, width: inner.width, height: 1), style: field)
    c.text(v.text, x: inner.x, y: inner.y + 1, style: field)
    c.grid.cursor = (inner.x + v.cursorColumn, inner.y + 1)
    c.text(
      "Guidance steers away from this instead of from no prompt at all (guidance 3 if it was 1).", x: inner.x,
      y: inner.y + 3, role: "muted", limit: inner.width)
    c.text("Enter keeps it (empty: none) · Esc cancels", x: inner.x, y: inner.y + 4, role: "muted", limit: inner.width)
  }

  func drawImagePrompt(_ c: inout Canvas, _ form: ImagePromptForm) {
    let r = window(&c, width: 78, height: 15, title: "Image prompt — condition on a picture")
    let inner = r.inset(dx: 2, dy: 1)
    let fieldX = inner.x + 9
    c.text("Path", x: inner.x, y: inner.y + 1, role: form.field == 0 ? "accent" : "muted", bold: form.field == 0)
    let v = form.path.visible(width: inner.maxX - fieldX)
    c.grid.fill(
      Rect(x: fieldX - 1, y: inner.y + 1, width: inner.maxX - fieldX + 1, height: 1),
      style: CellStyle(foreground: theme["text"], background: theme["progress.todo"]))
    c.text(
      v.text, x: fieldX, y: inner.y + 1, style: CellStyle(foreground: theme["text"], background: theme["progress.todo"])
    )
    if form.field == 0 { c.grid.cursor = (fieldX + v.cursorColumn, inner.y + 1) }
    if !form.candidates.isEmpty {
      let shown = form.candidates.prefix(4).joined(separator: "  ")
      let more = form.candidates.count > 4 ? "  … \(form.candidates.count - 4) more" : ""
      c.text(shown + more, x: fieldX, y: inner.y + 2, role: "muted", limit: inner.maxX - fieldX)
    }
    c.text("Weight", x: inner.x, y: inner.y + 4, role: form.field == 1 ? "accent" : "muted", bold: form.field == 1)
    let w = form.weight
    c.text(
      "◀ \(formatWeight(w)) ▶", x: fieldX, y: inner.y + 4, role: form.field == 1 ? "accent" : "text",
      bold: form.field == 1)
    c.text(
      String(format: "image %.0f%% · text %.0f%%", w * 100, (1 - w) * 100), x: fieldX + 10, y: inner.y + 4,
      role: "muted")
    let barWidth = min(30, inner.maxX - fieldX)
    c.progressBar(x: fieldX, y: inner.y + 5, width: barWidth, fraction: w)
    if let e = form.error {
      for (i, line) in wrap(e, width: inner.width).prefix(3).enumerated() {
        c.text(line, x: inner.x, y: inner.y + 7 + i, role: "error", limit: inner.width)
      }
    } else if let current = state.imagePrompt {
      c.text(
        "Now: \(current.path) (\(current.image.width)×\(current.image.height))", x: inner.x, y: inner.y + 7,
        role: "muted", limit: inner.width)
    }
    c.text(
      "Tab completes · ↑/↓ field · ←/→ weight · Enter applies", x: inner.x, y: inner.maxY - 2, role: "muted",
      limit: inner.width)
    c.text(
      "Enter on an empty path removes it · Ctrl-E loads a PNG's prompt and settings · Esc closes", x: inner.x,
      y: inner.maxY - 1, role: "muted", limit: inner.width)
  }

  func drawSettings(_ c: inout Canvas, _ form: SettingsForm) {
    let fields = SettingsForm.Field.allCases
    let r = window(&c, width: 70, height: fields.count + 8, title: "Settings — ↑/↓ field · ←/→ change · type a value")
    let inner = r.inset(dx: 2, dy: 1)
    for (row, f) in fields.enumerated() {
      let y = inner.y + 1 + row
      let selected = f == form.field
      let s =
        selected
        ? CellStyle(foreground: theme["selection.text"], background: theme["selection.background"]) : c.style("text")
      c.grid.fill(Rect(x: inner.x, y: y, width: inner.width, height: 1), style: s)
      c.text(f.label, x: inner.x + 1, y: y, style: s)
      let value: String
      if selected, let typing = form.typing {
        value = typing
        c.grid.cursor = (inner.x + 20 + typing.terminalWidth, y)
      } else {
        value = SettingsForm.display(f, form)
      }
      let shown = (selected ? "◀ " : "  ") + value + (selected ? " ▶" : "")
      c.text(shown, x: inner.x + 18, y: y, style: s, limit: inner.width - 19)
      if form.typing == nil || !selected, form.settings.isModelDefault(f, defaults: form.defaults) {
        let x = inner.x + 18 + max(12, shown.terminalWidth + 2)
        c.text("model default", x: x, y: y, style: selected ? s : c.style("muted"), limit: max(0, inner.maxX - x))
      }
    }
    c.text(form.field.help, x: inner.x, y: inner.maxY - 3, role: "muted", limit: inner.width)
    c.text(
      "r random seed · Enter done · Esc discards", x: inner.x, y: inner.maxY - 1, role: "muted", limit: inner.width)
  }
}

extension SettingsForm {
  /// A field's value as the form shows it.
  static func display(_ f: Field, _ form: SettingsForm) -> String {
    let s = form.settings
    switch f {
    case .temperature: return formatSetting(s.temperature)
    case .topK: return s.topK.map(String.init) ?? "all"
    case .topP: return formatSetting(s.topP)
    case .guidance: return formatSetting(s.guidanceScale)
    case .seed: return form.randomSeed ? "random" : String(s.seed)
    case .count: return String(s.count)
    case .candidates: return String(s.candidates)
    }
  }
}

/// The style choices the picker lists: "(no style)" (nil) then the library's matches.
enum StudioStyles {
  static func choices(state: StudioState, query: String) -> [PromptStyle?] {
    let matches = state.styleLibrary.search(query).filter { $0.template != PromptStyle.placeholder }
    let none: [PromptStyle?] = query.isEmpty || "no style none".contains(query.lowercased()) ? [nil] : []
    return none + matches.map { Optional($0) }
  }
}

/// Splits text into lines of at most `width` columns, at spaces where possible.
func wrap(_ text: String, width: Int) -> [String] {
  guard width > 0 else { return [] }
  var lines: [String] = []
  var line = ""
  for word in text.split(separator: " ", omittingEmptySubsequences: false) {
    var w = String(word)
    while w.terminalWidth > width {
      if !line.isEmpty {
        lines.append(line)
        line = ""
      }
      var head = ""
      for ch in w {
        if (head + String(ch)).terminalWidth > width { break }
        head.append(ch)
      }
      lines.append(head)
      w = String(w.dropFirst(head.count))
    }
    if line.isEmpty {
      line = w
    } else if (line + " " + w).terminalWidth <= width {
      line += " " + w
    } else {
      lines.append(line)
      line = w
    }
  }
  if !line.isEmpty { lines.append(line) }
  return lines
}
