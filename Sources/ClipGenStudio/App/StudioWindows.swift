// The studio's windows: the style picker, the image-prompt form, the settings form, help and the
// confirmations.
import ClipGenEngine
import Foundation

extension Studio {
  func openStylePicker() {
    var picker = StylePicker()
    let choices = StudioStyles.choices(state: state, query: "")
    picker.selected = choices.firstIndex { $0?.name == state.style?.name } ?? 0
    state.overlay = .styles(picker)
  }

  func openImagePrompt() {
    let form = ImagePromptForm(
      path: LineEditor(state.imagePrompt?.path ?? ""), weight: state.imagePrompt?.weight ?? 0.5)
    state.overlay = .imagePrompt(form)
  }

  func handleOverlay(_ key: Key, _ overlay: Overlay) {
    switch overlay {
    case .negativePrompt(var editor):
      switch key {
      case .escape: state.overlay = nil
      case .enter:
        let text = editor.text.trimmingCharacters(in: .whitespaces)
        state.negative = text.isEmpty ? nil : text
        state.overlay = nil
        message(text.isEmpty ? "No negative prompt" : "Negative prompt: \(text)")
      default:
        _ = editor.handle(key)
        state.overlay = .negativePrompt(editor)
      }
    case .interpolateTo(var editor):
      switch key {
      case .escape: state.overlay = nil
      case .enter:
        let text = editor.text.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { return message("Type the prompt to end at (Esc closes)", .warning) }
        state.overlay = nil
        openCompare(prompt: state.editor.text, interpolateTo: text)
      default:
        _ = editor.handle(key)
        state.overlay = .interpolateTo(editor)
      }
    case .help(let scroll):
      let total = StudioRenderer.helpLines().count
      switch key {
      case .down, .character("j"): state.overlay = .help(scroll: min(total - 1, scroll + 1))
      case .up, .character("k"): state.overlay = .help(scroll: max(0, scroll - 1))
      case .pageDown, .character(" "): state.overlay = .help(scroll: min(total - 1, scroll + 10))
      case .pageUp: state.overlay = .help(scroll: max(0, scroll - 10))
      default: state.overlay = nil
      }
    case .confirmQuit:
      switch key {
      case .character("y"), .character("Y"), .enter:
        worker?.cancel()
        quitRequested = true
      default: state.overlay = nil
      }
    case .confirmDelete(let id):
      if key == .character("y") || key == .character("Y") {
        if state.run?.historyID == id {
          message("That generation is running; Esc cancels it first", .warning)
        } else {
          record { try environment.store.delete(id: id) }
          reloadHistory(selecting: nil)
          message("Deleted #\(id)")
        }
      }
      state.overlay = nil
    case .styles(var picker):
      let choices = StudioStyles.choices(state: state, query: picker.query.text)
      switch key {
      case .escape: state.overlay = nil
      case .up: picker.selected = max(0, picker.selected - 1)
      case .down: picker.selected = min(max(0, choices.count - 1), picker.selected + 1)
      case .enter:
        if picker.selected < choices.count {
          state.style = choices[picker.selected]
          message(state.style.map { "Style: \($0.name) — \($0.template)" } ?? "No style")
        }
        state.overlay = nil
        return
      default:
        if picker.query.handle(key) { picker.selected = 0 }
      }
      if state.overlay != nil { state.overlay = .styles(picker) }
    case .imagePrompt(var form): handleImagePrompt(key, &form)
    case .settings(var form): handleSettings(key, &form)
    }
  }

  func handleImagePrompt(_ key: Key, _ form: inout ImagePromptForm) {
    switch key {
    case .control("e"):
      let url = environment.pathCompleter.resolve(form.path.text.trimmingCharacters(in: .whitespaces))
      if let problem = loadSettings(fromPNG: url) {
        form.error = problem
      } else {
        state.overlay = nil
        return
      }
    case .escape:
      state.overlay = nil
      return
    case .enter:
      let path = form.path.text.trimmingCharacters(in: .whitespaces)
      if path.isEmpty {
        if state.imagePrompt != nil { message("Image prompt removed") }
        state.imagePrompt = nil
        state.overlay = nil
        return
      }
      let url = environment.pathCompleter.resolve(path)
      do {
        let image = try environment.files.load(url)
        state.imagePrompt = ImagePrompt(path: url.path, weight: form.weight, image: image)
        state.overlay = nil
        message(
          "Image prompt: \(url.lastPathComponent) (\(image.width)×\(image.height)), weight \(formatWeight(form.weight))"
        )
        return
      } catch {
        let text = "\(error)"
        form.error = text.contains(url.path) ? text : "cannot use \(url.path): \(text)"
      }
    case .up, .backTab: form.field = 0
    case .down: form.field = 1
    case .tab:
      if form.field == 0 {
        let result = environment.pathCompleter.complete(form.path.text)
        form.path = LineEditor(result.text)
        form.candidates = result.candidates.count > 1 ? result.candidates : []
        if result.candidates.isEmpty { form.error = "nothing matches ‘\(form.path.text)’" } else { form.error = nil }
      } else {
        form.field = 0
      }
    case .left where form.field == 1: form.weight = max(0, ((form.weight - 0.1) * 10).rounded() / 10)
    case .right where form.field == 1: form.weight = min(1, ((form.weight + 0.1) * 10).rounded() / 10)
    default:
      if form.field == 0 && form.path.handle(key) {
        form.candidates = []
        form.error = nil
      }
    }
    state.overlay = .imagePrompt(form)
  }

  /// Loads the prompt, negative prompt, style and settings a PNG was made with: from clipgen's
  /// own record (the `clipgen` chunk), else the fields of AUTOMATIC1111's `parameters` text that
  /// mean the same here (prompt, negative prompt, seed, CFG scale). Returns why not, or nil.
  func loadSettings(fromPNG url: URL) -> String? {
    guard let data = try? Data(contentsOf: url) else { return "cannot read \(url.path)" }
    guard let text = try? RGBImage.readPNGText(data) else { return "\(url.path) is not a PNG" }
    var settings = state.settings
    if let json = text.first(where: { $0.key == "clipgen" })?.value,
      let r = try? JSONDecoder().decode(GenerationParameters.self, from: Data(json.utf8))
    {
      state.editor = LineEditor(r.typedPrompt ?? r.prompt)
      state.style = style(named: r.style)
      state.negative = r.negativePrompt
      settings.temperature = r.temperature
      settings.topK = r.topK
      settings.topP = r.topP
      settings.guidanceScale = r.guidanceScale
      settings.seed = r.seed
      state.settings = settings
      state.randomSeed = false
      message("Loaded \(url.lastPathComponent): its prompt and settings, seed \(r.seed) fixed (F4 to change)")
      return nil
    }
    guard let plain = text.first(where: { $0.key == "parameters" })?.value else {
      return "\(url.lastPathComponent) carries no generation record (no clipgen or parameters text)"
    }
    let a = A1111Parameters.parse(plain)
    state.editor = LineEditor(a.prompt)
    state.negative = a.negativePrompt.isEmpty ? nil : a.negativePrompt
    if let seed = a["Seed"].flatMap({ UInt64($0) }) {
      settings.seed = seed
      state.randomSeed = false
    }
    if let cfg = a["CFG scale"].flatMap({ Float($0) }), cfg.isFinite, cfg >= 0 { settings.guidanceScale = cfg }
    state.settings = settings
    message("Loaded \(url.lastPathComponent) (AUTOMATIC1111 text): prompt, negative prompt, seed and CFG scale")
    return nil
  }

  static let topKSteps: [Int?] = [nil, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]

  func step(_ form: inout SettingsForm, by direction: Int) {
    var s = form.settings
    switch form.field {
    case .temperature: s.temperature = max(0, min(10, ((s.temperature + 0.1 * Float(direction)) * 10).rounded() / 10))
    case .topK:
      let steps = Studio.topKSteps
      let i = steps.firstIndex { $0 == s.topK } ?? steps.firstIndex { ($0 ?? 0) >= (s.topK ?? 0) } ?? 0
      s.topK = steps[max(0, min(steps.count - 1, i + direction))]
    case .topP: s.topP = max(0.05, min(1, ((s.topP + 0.05 * Float(direction)) * 20).rounded() / 20))
    case .guidance: s.guidanceScale = max(0, min(30, ((s.guidanceScale + 0.5 * Float(direction)) * 2).rounded() / 2))
    case .seed:
      if form.randomSeed {
        form.randomSeed = false
      } else {
        s.seed = direction > 0 ? s.seed &+ 1 : s.seed &- 1
      }
    case .count:
      s = s.withCount(max(1, min(16, s.count + direction)), defaults: form.defaults)
    case .candidates: s.candidates = max(s.count, min(64, s.candidates + direction))
    }
    form.settings = s
  }

  /// Applies typed text to the current field; false (with a message) when it is not valid.
  func commitTyping(_ form: inout SettingsForm) -> Bool {
    guard let text = form.typing else { return true }
    form.typing = nil
    let t = text.trimmingCharacters(in: .whitespaces)
    if t.isEmpty { return true }
    var s = form.settings
    func fail(_ why: String) -> Bool {
      message("\(form.field.label): ‘\(t)’ \(why)", .error)
      return false
    }
    switch form.field {
    case .temperature:
      guard let v = Float(t), v >= 0, v <= 10 else { return fail("is not a temperature between 0 and 10") }
      s.temperature = v
    case .topK:
      guard let v = Int(t), v >= 0 else { return fail("is not a whole number ≥ 0 (0 means all)") }
      s.topK = v == 0 ? nil : v
    case .topP:
      guard let v = Float(t), v > 0, v <= 1 else { return fail("is not a probability in (0, 1]") }
      s.topP = v
    case .guidance:
      guard let v = Float(t), v >= 0, v <= 30 else { return fail("is not a guidance scale between 0 and 30") }
      s.guidanceScale = v
    case .seed:
      guard let v = UInt64(t) else { return fail("is not a seed (a whole number from 0 to 18446744073709551615)") }
      s.seed = v
      form.randomSeed = false
    case .count:
      guard let v = Int(t), (1...16).contains(v) else { return fail("is not an image count from 1 to 16") }
      s = s.withCount(v, defaults: form.defaults)
    case .candidates:
      guard let v = Int(t), (1...64).contains(v) else { return fail("is not a candidate count from 1 to 64") }
      s.candidates = max(v, s.count)
    }
    form.settings = s
    return true
  }

  func handleSettings(_ key: Key, _ form: inout SettingsForm) {
    let fields = SettingsForm.Field.allCases
    switch key {
    case .escape:
      state.overlay = nil
      return
    case .enter:
      if commitTyping(&form) {
        state.settings = form.settings
        state.randomSeed = form.randomSeed
        savePreferences()
        state.overlay = nil
        message(
          "Settings: \(state.settings.samplingLabel) · seed \(state.randomSeed ? "random" : String(state.settings.seed))"
        )
        return
      }
    case .up, .backTab:
      if commitTyping(&form) { form.field = fields[(form.field.rawValue + fields.count - 1) % fields.count] }
    case .down, .tab:
      if commitTyping(&form) { form.field = fields[(form.field.rawValue + 1) % fields.count] }
    case .left, .right:
      if commitTyping(&form) { step(&form, by: key == .left ? -1 : 1) }
    case .character("r") where form.typing == nil:
      form.randomSeed = true
    case .character(let ch) where ch.isNumber || ch == ".":
      form.typing = (form.typing ?? "") + String(ch)
    case .backspace:
      if var t = form.typing, !t.isEmpty {
        t.removeLast()
        form.typing = t
      }
    default: break
    }
    state.overlay = .settings(form)
  }
}
