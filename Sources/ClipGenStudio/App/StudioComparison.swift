// The temperature comparison: opening it, its keys (Keymap's .compare bindings), running its
// columns, exporting the grid.
import Foundation

extension Studio {
  func openCompare(
    prompt: String, seed: UInt64? = nil, settings: GenerationSettings? = nil, interpolateTo: String? = nil
  ) {
    let text = prompt.trimmingCharacters(in: .whitespaces)
    guard !text.isEmpty || state.imagePrompt != nil else {
      message("Type a prompt first: the comparison runs it at several temperatures", .warning)
      return
    }
    var base = settings ?? state.settings
    base.count = 1
    base.candidates = 1
    base.seed = seed ?? (state.randomSeed ? environment.randomSeed() : state.settings.seed)
    if state.negative != nil && base.guidanceScale == 1 { base.guidanceScale = 3 }
    let k = base.topK
    state.compare = CompareState(
      prompt: text, style: state.style, imagePrompt: state.imagePrompt, negative: state.negative, base: base,
      columns: [
        CompareColumn(temperature: 0.7, topK: k), CompareColumn(temperature: 1.0, topK: k),
        CompareColumn(temperature: 1.3, topK: k),
      ])
    if let to = interpolateTo {
      state.compare?.interpolateTo = to
      state.compare?.columns = CompareState.interpolationColumns(5, temperature: base.temperature)
    }
    state.focus = .prompt
  }

  func handleCompare(_ key: Key) {
    guard var cmp = state.compare, let action = Keymap.action(for: key, in: .compare) else { return }
    let running = cmp.job != nil
    let busy = "Wait for the comparison to finish (Esc cancels it)"
    switch action {
    case .back:
      if running {
        cancelRun()
      } else {
        state.compare = nil
      }
      return
    case .help:
      state.overlay = .help(scroll: 0)
      return
    case .quit:
      requestQuit()
      return
    case .nextTheme:
      nextTheme()
      return
    case .previousColumn: cmp.selected = max(0, cmp.selected - 1)
    case .nextColumn: cmp.selected = min(cmp.columns.count - 1, cmp.selected + 1)
    case .addColumn:
      guard !running else { return message(busy, .warning) }
      guard cmp.columns.count < CompareState.maximumColumns else {
        return message("At most \(CompareState.maximumColumns) columns", .warning)
      }
      if cmp.interpolateTo != nil {  // one more step, evenly spaced again
        cmp.columns = CompareState.interpolationColumns(cmp.columns.count + 1, temperature: cmp.base.temperature)
      } else {
        let last = cmp.columns.last ?? CompareColumn(temperature: 0.7, topK: cmp.base.topK)
        cmp.columns.append(
          CompareColumn(temperature: min(10, ((last.temperature + 0.3) * 10).rounded() / 10), topK: last.topK))
      }
      cmp.selected = cmp.columns.count - 1
    case .removeColumn:
      guard !running else { return message(busy, .warning) }
      guard cmp.columns.count > (cmp.interpolateTo == nil ? 1 : 2) else {
        return message("A comparison needs at least one column, an interpolation two", .warning)
      }
      cmp.columns.remove(at: cmp.selected)
      if cmp.interpolateTo != nil {
        cmp.columns = CompareState.interpolationColumns(cmp.columns.count, temperature: cmp.base.temperature)
      }
      cmp.selected = min(cmp.selected, cmp.columns.count - 1)
    case .colder where cmp.interpolateTo != nil, .warmer where cmp.interpolateTo != nil,
      .cycleTopK where cmp.interpolateTo != nil:
      return message("An interpolation's columns differ only in t (F4 sets the sampling for all)", .warning)
    case .colder, .warmer:
      guard !running else { return }
      let d: Float = action == .colder ? -0.1 : 0.1
      let t = cmp.columns[cmp.selected].temperature
      cmp.columns[cmp.selected] = CompareColumn(
        temperature: max(0, min(10, ((t + d) * 10).rounded() / 10)), topK: cmp.columns[cmp.selected].topK)
    case .cycleTopK:
      guard !running else { return }
      let choices = CompareState.topKChoices
      let i = choices.firstIndex { $0 == cmp.columns[cmp.selected].topK } ?? 0
      cmp.columns[cmp.selected] = CompareColumn(
        temperature: cmp.columns[cmp.selected].temperature, topK: choices[(i + 1) % choices.count])
    case .exportPNG:
      guard !running else { return message(busy, .warning) }
      state.compare = cmp
      exportComparison()
      return
    case .runColumns:
      state.compare = cmp
      runComparison()
      return
    default: return
    }
    state.compare = cmp
  }

  func runComparison() {
    guard var cmp = state.compare else { return }
    guard !state.isRunning else { return message("A generation is running — Esc cancels it", .warning) }
    let job = ledger.newJob()
    cmp.comparisonID = UUID().uuidString
    cmp.exported = nil
    var tasks: [GenerationTask] = []
    for i in cmp.columns.indices {
      var settings = cmp.base
      let t = cmp.columns[i].t
      if t == nil {
        settings.temperature = cmp.columns[i].temperature
        settings.topK = cmp.columns[i].topK
      }
      cmp.columns[i] = CompareColumn(temperature: settings.temperature, topK: settings.topK, t: t)
      cmp.columns[i].total = state.gridHeight * state.gridWidth
      var row = GenerationRecord(
        prompt: cmp.prompt, style: cmp.style, imagePath: cmp.imagePrompt?.path, imageWeight: cmp.imagePrompt?.weight,
        settings: settings, modelName: environment.generator.modelName, comparisonID: cmp.comparisonID,
        createdAt: environment.now(), negativePrompt: cmp.negative)
      var record = parameters(row)
      if let to = cmp.interpolateTo, let t { record.interpolation = .init(to: to, t: t) }
      row.parameters = try? record.json()
      let opened = ledger.open(row, job: job, column: i, images: 1)
      if let error = opened.error { message("Not saved to history: \(error)", .error) }
      row = opened.row
      cmp.columns[i].historyID = opened.id
      var task = request(
        text: row.styledPrompt, imagePrompt: cmp.imagePrompt, settings: settings, negative: cmp.negative)
      task.interpolation = record.interpolation
      tasks.append(
        GenerationTask(
          historyID: opened.id, request: task, column: i, files: opened.files, parameters: record))
    }
    cmp.job = job
    state.compare = cmp
    state.recall.remember(cmp.prompt)
    reloadHistory(selecting: nil)
    let inbox = self.inbox
    worker = GenerationWorker(
      job: job, tasks: tasks, generator: environment.generator, files: environment.files,
      post: { inbox.post(.worker($0)) }, previewInterval: environment.previewInterval,
      progressInterval: environment.progressInterval)
  }

  func exportComparison() {
    guard let cmp = state.compare else { return }
    guard cmp.columns.contains(where: { $0.image != nil }) else {
      return message("Nothing to export yet: Enter runs the comparison", .warning)
    }
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = environment.timeZone
    f.dateFormat = "yyyyMMdd-HHmmss"
    let url = environment.exportDirectory.appendingPathComponent("compare-\(f.string(from: environment.now())).png")
    do {
      try FileManager.default.createDirectory(at: environment.exportDirectory, withIntermediateDirectories: true)
      let labels = cmp.columns.map(\.label).joined(separator: " | ")
      var text = "prompt: \(cmp.prompt); seed: \(cmp.base.seed); columns: \(labels)"
      if let to = cmp.interpolateTo { text = "interpolation from: \(cmp.prompt); to: \(to); " + text }
      try environment.files.writePNG(CompareExport.grid(cmp), to: url, text: [(key: "parameters", value: text)])
      state.compare?.exported = url.lastPathComponent
      message("Exported \(url.path)", .success)
    } catch {
      message("Cannot export to \(url.path): \(error)", .error)
    }
  }
}
