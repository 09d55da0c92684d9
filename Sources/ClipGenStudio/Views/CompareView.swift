// The temperature comparison screen: one prompt and seed, a column per sampling setting.
import Foundation

extension StudioRenderer {
  func drawCompare(_ c: inout Canvas, _ cmp: CompareState, layout: MainLayout) {
    let top = layout.header.maxY
    let bottom = layout.status.y
    var info = "Compare · “\(cmp.prompt.isEmpty ? "(image only)" : cmp.prompt)” · seed \(cmp.base.seed)"
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
  /// the image. Images are enlarged by whole factors to at least 192 px.
  public static func grid(_ cmp: CompareState) -> Pixmap {
    let side = cmp.columns.compactMap { $0.image?.width }.max() ?? 64
    let factor = max(1, (192 + side - 1) / side)
    let tile = side * factor
    let pad = 12
    let scale = 2
    let band = BitmapFont.glyphHeight * scale + 10
    let n = max(1, cmp.columns.count)
    let width = n * tile + (n + 1) * pad
    let height = pad + band + pad / 2 + band + tile + pad
    let background: (UInt8, UInt8, UInt8) = (30, 30, 34)
    let ink: (UInt8, UInt8, UInt8) = (235, 235, 235)
    var out = Pixmap(width: width, height: height, red: background.0, green: background.1, blue: background.2)
    var title = "\"\(cmp.prompt)\"  SEED \(cmp.base.seed)"
    if let s = cmp.style { title += "  STYLE \(s.name)" }
    BitmapFont.draw(
      BitmapFont.fit(title, width: width - 2 * pad, scale: scale), into: &out, x: pad, y: pad + 5, scale: scale,
      color: ink)
    let labelY = pad + band + pad / 2
    for (i, col) in cmp.columns.enumerated() {
      let x = pad + i * (tile + pad)
      BitmapFont.draw(
        BitmapFont.fit(col.label, width: tile, scale: scale), into: &out, x: x, y: labelY + 5, scale: scale, color: ink)
      let y = labelY + band
      if let img = col.image {
        let h = img.height * tile / max(1, img.width)
        out.draw(img.resized(width: tile, height: h), x: x, y: y)
      } else {
        out.fill(x: x, y: y, width: tile, height: tile, color: (60, 60, 66))
        BitmapFont.draw("NO IMAGE", into: &out, x: x + 8, y: y + tile / 2 - 7, scale: scale, color: (150, 150, 150))
      }
    }
    return out
  }
}
