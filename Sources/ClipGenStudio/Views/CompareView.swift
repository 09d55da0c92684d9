// The temperature comparison screen: one prompt and seed, a column per sampling setting.
import ClipGenEngine
import ClipGenSheets
import Foundation

extension StudioRenderer {
  func drawCompare(_ c: inout Canvas, _ cmp: CompareState, layout: MainLayout) {
    let top = layout.header.maxY
    let bottom = layout.status.y
    var info = "Compare · “\(cmp.prompt.isEmpty ? "(image only)" : cmp.prompt)” · seed \(cmp.base.seed)"
    if let to = cmp.interpolateTo { info = "Interpolate · “\(cmp.prompt)” → “\(to)” · seed \(cmp.base.seed)" }
    if let s = cmp.style { info += " · style \(s.name)" }
    if let i = cmp.imagePrompt { info += " · image \(i.label) ×\(formatWeight(i.weight))" }
    if let e = cmp.exported { info += " · exported \(e)" }
    c.text(" " + info, x: 0, y: top, role: "accent", bold: true, limit: state.width)
    let n = max(1, cmp.columns.count)
    let w = state.width / n
    let area = Rect(x: (state.width - w * n) / 2, y: top + 1, width: w * n, height: bottom - top - 1)
    for (i, col) in cmp.columns.enumerated() {
      let r = Rect(x: area.x + i * w, y: area.y, width: w, height: area.height)
      let focused = i == cmp.selected && state.overlay == nil
      c.pane(r, title: col.label, focused: focused)
      let inner = r.inset(dx: 1, dy: 1)
      let imageArea = Rect(x: inner.x, y: inner.y, width: inner.width, height: max(1, inner.height - 2))
      let placeholder: String
      switch col.status {
      case .waiting: placeholder = "Enter runs"
      case .running: placeholder = "sampling…"
      case .cancelled: placeholder = "cancelled"
      case .failed: placeholder = "failed"
      case .done: placeholder = "no image"
      }
      let shown =
        col.status == .running
        ? col.image.map { $0.veiled(fromRow: col.done * $0.height / max(1, col.total)) } : col.image
      drawImage(&c, shown, in: imageArea, slot: "compare-\(i)", placeholder: placeholder)
      let y = inner.maxY - 1
      switch col.status {
      case .waiting: c.text("waiting", x: inner.x, y: y, role: "muted", limit: inner.width)
      case .running:
        let label = "\(col.done)/\(col.total)"
        let barWidth = max(0, inner.width - label.count - 1)
        c.progressBar(x: inner.x, y: y, width: barWidth, fraction: Double(col.done) / Double(max(1, col.total)))
        c.text(label, x: inner.x + barWidth + 1, y: y, role: "text")
      case .done:
        let score = col.clipScore.map { String(format: " · CLIP %.3f", $0) } ?? ""
        c.text("✓ done" + score, x: inner.x, y: y, role: "success", limit: inner.width)
      case .cancelled: c.text("⊘ cancelled", x: inner.x, y: y, role: "warning", limit: inner.width)
      case .failed(let m): c.text("✗ " + m, x: inner.x, y: y, role: "error", limit: inner.width)
      }
    }
  }
}

/// Builds the labelled PNG of a comparison.
public enum CompareExport {
  /// The grid: a title band (prompt and seed), then one column per setting with its label above
  /// the image (`LabelledGrid`). Images are enlarged by whole factors to at least 192 px.
  public static func grid(_ cmp: CompareState) -> Pixmap {
    var title = "\"\(cmp.prompt)\"  SEED \(cmp.base.seed)"
    if let to = cmp.interpolateTo { title = "\"\(cmp.prompt)\" -> \"\(to)\"  SEED \(cmp.base.seed)" }
    if let s = cmp.style { title += "  STYLE \(s.name)" }
    let images = cmp.columns.map { col in
      col.image.flatMap { p in
        p.width > 0 && p.height > 0 ? RGBImage(width: p.width, height: p.height, pixels: p.pixels) : nil
      }
    }
    let sheet = LabelledGrid(title: title, labels: cmp.columns.map(\.label), images: images).render()
    return Pixmap(width: sheet.width, height: sheet.height, pixels: sheet.pixels)
  }
}
