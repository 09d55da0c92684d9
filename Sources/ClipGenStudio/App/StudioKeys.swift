// Key dispatch: every key goes through `Keymap` (the one table of bindings, which also writes the
// help screen) to an action, and the action is performed here. Windows (overlays) handle their
// own few keys in StudioWindows.swift; the comparison screen its bindings in StudioComparison.swift.
import ClipGenEngine
import Foundation

extension Studio {
  func handle(_ key: Key) {
    let global = Keymap.action(for: key, in: .everywhere)
    if case .control = key, global == .quit {
      if state.overlay == .confirmQuit {
        worker?.cancel()
        quitRequested = true
      } else {
        requestQuit()
      }
      return
    }
    if global == .repaint {
      driver.invalidate()
      return
    }
    if MainLayout.compute(width: state.width, height: state.height) == nil {
      // Nothing can be seen, but typing is kept: keys for the prompt (Enter included) still
      // edit it, as typeahead does; everything else waits for a usable size.
      if state.overlay == nil, state.compare == nil, state.searchEditor == nil, state.focus == .prompt {
        handlePromptKey(key)
      }
      return
    }
    if let overlay = state.overlay {
      handleOverlay(key, overlay)
      return
    }
    if state.compare != nil {
      handleCompare(key)
      return
    }
    let textEntry = state.focus == .prompt || state.searchEditor != nil
    if let action = Keymap.action(for: key, in: .everywhere, textEntry: textEntry) {
      perform(action)
      return
    }
    if state.searchEditor != nil {
      handleSearch(key)
      return
    }
    switch state.focus {
    case .prompt: handlePromptKey(key)
    case .history:
      if let action = Keymap.action(for: key, in: .history) { perform(action) }
    case .preview:
      if regionShown, let action = Keymap.action(for: key, in: .region, everywhere: false) {
        perform(action)
      } else if let action = Keymap.action(for: key, in: .preview) {
        perform(action)
      }
    }
  }

  func handlePromptKey(_ key: Key) {
    if let action = Keymap.action(for: key, in: .prompt, textEntry: true, everywhere: false) {
      perform(action)
    } else if state.editor.handle(key) {
      state.recall.reset()
    }
  }

  /// Performs a bound action (prompt, history, preview and everywhere bindings).
  func perform(_ action: StudioAction) {
    switch action {
    case .escape:
      if state.run != nil {
        cancelRun()
      } else if regionShown {
        state.regionSelection = nil
      } else if state.searchEditor != nil {
        state.searchEditor = nil
        state.search = ""
        reloadHistory(selecting: nil)
      } else if state.focus != .prompt {
        state.focus = .prompt
      }
    case .nextPane, .previousPane:
      if state.searchEditor != nil { state.searchEditor = nil }
      let n = Pane.allCases.count
      state.focus = Pane(rawValue: (state.focus.rawValue + (action == .nextPane ? 1 : n - 1)) % n) ?? .prompt
    case .help: state.overlay = .help(scroll: 0)
    case .pickStyle: openStylePicker()
    case .imagePrompt: openImagePrompt()
    case .settings:
      state.overlay = .settings(
        SettingsForm(settings: state.settings, randomSeed: state.randomSeed, defaults: state.modelDefaults))
    case .compare: openCompare(prompt: state.editor.text)
    case .negativePrompt: state.overlay = .negativePrompt(LineEditor(state.negative ?? ""))
    case .interpolate:
      guard !state.editor.text.trimmingCharacters(in: .whitespaces).isEmpty else {
        return message("Type the prompt to start from first; F8 then asks for the one to end at", .warning)
      }
      state.overlay = .interpolateTo(LineEditor())
    case .nextTheme: nextTheme()
    case .repaint: driver.invalidate()
    case .quit: requestQuit()
    case .generate:
      startGeneration(
        prompt: state.editor.text, style: state.style, imagePrompt: state.imagePrompt, settings: state.settings,
        randomSeed: state.randomSeed, negative: state.negative)
    case .recallOlder:
      if let p = state.recall.older(current: state.editor.text) { state.editor = LineEditor(p) }
    case .recallNewer:
      if let p = state.recall.newer() { state.editor = LineEditor(p) }
    case .moveUp: moveSelection(-1)
    case .moveDown: moveSelection(1)
    case .pageUp: moveSelection(-pageSize)
    case .pageDown: moveSelection(pageSize)
    case .first: moveSelection(-(state.historyOffset + state.selection))
    case .last: moveSelection(state.historyTotal)
    case .search: state.searchEditor = LineEditor(state.search)
    case .favoritesOnly:
      state.favoritesOnly.toggle()
      state.selection = 0
      reloadHistory(selecting: nil)
    case .previousImage: state.previewIndex = max(0, state.previewIndex - 1)
    case .nextImage:
      let count = state.selectedEntry?.images.count ?? 0
      state.previewIndex = min(max(0, count - 1), state.previewIndex + 1)
    case .edit, .rerun, .favorite, .delete, .compareEntry, .copyPrompt, .openImage: performOnEntry(action)
    case .keepFewerRows, .keepMoreRows: moveRowMarker(action == .keepFewerRows ? -1 : 1)
    case .reroll: rerollFromMarker()
    case .selectRegion: selectRegion()
    case .regionLeft: changeRegion { $0.x -= 1 }
    case .regionRight: changeRegion { $0.x += 1 }
    case .regionUp: changeRegion { $0.y -= 1 }
    case .regionDown: changeRegion { $0.y += 1 }
    case .regionNarrower: changeRegion { $0.width -= 1 }
    case .regionWider: changeRegion { $0.width += 1 }
    case .regionShorter: changeRegion { $0.height -= 1 }
    case .regionTaller: changeRegion { $0.height += 1 }
    case .resampleRegion: resampleRegion()
    default: break  // text editing and comparison actions are performed where those keys go
    }
  }

  /// Moves the re-roll marker of the image in the preview (the first move puts it half-way).
  func moveRowMarker(_ delta: Int) {
    guard let entry = state.selectedEntry, state.previewIndex < entry.images.count, state.gridHeight > 1 else {
      return message("No image to re-roll here", .warning)
    }
    var marker = state.rowMarker
    if marker?.generationID != entry.id || marker?.index != state.previewIndex {
      marker = RowMarker(generationID: entry.id, index: state.previewIndex, rows: state.gridHeight / 2)
    } else {
      marker!.rows = max(1, min(state.gridHeight - 1, marker!.rows + delta))
    }
    state.rowMarker = marker
  }

  /// Samples the rows below the marker again with a new seed; the rows above are kept.
  func rerollFromMarker() {
    guard let entry = state.selectedEntry, let marker = state.rowMarker, marker.generationID == entry.id,
      marker.index < entry.images.count
    else { return message("↑/↓ first puts the re-roll marker on the image", .warning) }
    let keep = Array(entry.images[marker.index].tokenGrid.prefix(marker.rows * state.gridWidth))
    editImage(of: entry, candidates: 1, keep: keep)
  }

  /// Generates one image again from `entry`'s prompt, style, image prompt, negative prompt and
  /// settings with a new seed, keeping the tokens `keep` (and sampling only `region`, if given).
  func editImage(of entry: HistoryEntry, candidates: Int, keep: [Int], region: TokenRegion? = nil) {
    let g = entry.generation
    var image: ImagePrompt?
    if let p = g.imagePath {
      image = loadImagePrompt(path: p, weight: g.imageWeight ?? 0.5)
      if image == nil { return }
    }
    var settings = g.settings
    settings.count = 1
    settings.candidates = candidates
    startGeneration(
      prompt: g.prompt, style: style(named: g.styleName), styledPrompt: g.styledPrompt, styleName: g.styleName,
      imagePrompt: image, settings: settings, randomSeed: true, negative: g.negativePrompt, keep: keep,
      region: region)
  }

  /// Whether a region is being selected on the image the preview shows.
  var regionShown: Bool {
    guard let r = state.regionSelection, let entry = state.selectedEntry else { return false }
    return state.focus == .preview && r.generationID == entry.id && r.index == state.previewIndex
      && r.index < entry.images.count
  }

  /// Starts selecting a region of the shown image: the middle quarter of the grid.
  func selectRegion() {
    guard let entry = state.selectedEntry, state.previewIndex < entry.images.count,
      !entry.images[state.previewIndex].tokenGrid.isEmpty
    else { return message("No image with a token grid to edit here", .warning) }
    let w = state.gridWidth
    let h = state.gridHeight
    state.rowMarker = nil
    state.regionSelection = RegionSelection(
      generationID: entry.id, index: state.previewIndex,
      region: TokenRegion(x: w / 4, y: h / 4, width: max(1, w / 2), height: max(1, h / 2)))
  }

  /// Moves or resizes the region, kept inside the grid and at least one token.
  func changeRegion(_ change: (inout TokenRegion) -> Void) {
    guard var sel = state.regionSelection else { return }
    var r = sel.region
    change(&r)
    r.width = max(1, min(state.gridWidth, r.width))
    r.height = max(1, min(state.gridHeight, r.height))
    r.x = max(0, min(state.gridWidth - r.width, r.x))
    r.y = max(0, min(state.gridHeight - r.height, r.y))
    sel.region = r
    state.regionSelection = sel
  }

  /// Samples the selected region again with a new seed, every other token of the image kept; of
  /// several candidates the engine keeps the one under which the prior finds what follows likeliest.
  func resampleRegion() {
    guard regionShown, let sel = state.regionSelection, let entry = state.selectedEntry else { return }
    state.regionSelection = nil
    editImage(
      of: entry, candidates: max(4, state.modelDefaults.candidates), keep: entry.images[sel.index].tokenGrid,
      region: sel.region)
  }

  /// The actions on the selected history entry (History and Preview).
  func performOnEntry(_ action: StudioAction) {
    guard let entry = state.selectedEntry else { return }
    switch action {
    case .edit: edit(entry)
    case .rerun: rerun(entry)
    case .favorite:
      record { try environment.store.setFavorite(id: entry.id, !entry.generation.favorite) }
      reloadHistory(selecting: entry.id)
    case .delete: state.overlay = .confirmDelete(entry.id)
    case .copyPrompt:
      let g = entry.generation
      var text = g.styledPrompt
      if let n = g.negativePrompt { text += "\nNegative prompt: \(n)" }
      text += "\nSeed: \(g.seed)"
      driver.copyToClipboard(text)
      message("Copied the prompt and seed \(g.seed) (OSC 52: the terminal must allow clipboard writes)")
    case .openImage:
      let index = min(state.previewIndex, max(0, entry.images.count - 1))
      guard index < entry.images.count else { return message("This generation has no image", .warning) }
      let url = environment.store.imageURL(entry.images[index].fileName)
      if let problem = environment.openInViewer(url) {
        message(problem, .warning)
      } else {
        message("Opened \(url.lastPathComponent) in the viewer")
      }
    case .compareEntry:
      state.editor = LineEditor(entry.generation.prompt)
      state.style = style(named: entry.generation.styleName)
      openCompare(prompt: entry.generation.prompt, seed: entry.generation.seed, settings: entry.generation.settings)
    default: break
    }
  }

  func handleSearch(_ key: Key) {
    guard var editor = state.searchEditor else { return }
    switch Keymap.action(for: key, in: .search) {
    case .keepSearch?:
      state.searchEditor = nil
      return
    case .moveUp?:
      moveSelection(-1)
      return
    case .moveDown?:
      moveSelection(1)
      return
    default:
      _ = editor.handle(key)
    }
    state.searchEditor = editor
    if editor.text != state.search {
      state.search = editor.text
      state.selection = 0
      reloadHistory(selecting: nil)
    }
  }
}
