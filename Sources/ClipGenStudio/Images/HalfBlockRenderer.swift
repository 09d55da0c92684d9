// The fallback image renderer: each cell shows two vertically stacked pixels with "▀" (upper
// half block), the upper pixel as foreground colour and the lower as background. Works in tmux
// and any 256-colour or true-colour terminal; the driver maps colours to what the terminal has.

/// Draws pixmaps into a cell grid as half blocks.
public enum HalfBlockRenderer {
  /// The pixel size a rectangle shows in half blocks: one pixel per column, two per row.
  public static func pixelSize(of rect: Rect) -> (width: Int, height: Int) { (rect.width, rect.height * 2) }

  /// Draws `image` scaled to fill `rect` (callers choose a rect with the image's aspect ratio).
  public static func draw(_ image: Pixmap, into grid: inout CellGrid, rect: Rect) {
    guard !rect.isEmpty, image.width > 0, image.height > 0 else { return }
    let scaled = image.resized(width: rect.width, height: rect.height * 2)
    for row in 0..<rect.height {
      for col in 0..<rect.width {
        let top = scaled[col, 2 * row]
        let bottom = scaled[col, 2 * row + 1]
        let style = CellStyle(foreground: .rgb(top.0, top.1, top.2), background: .rgb(bottom.0, bottom.1, bottom.2))
        grid[rect.x + col, rect.y + row] = Cell("▀", style: style)
      }
    }
  }

  /// The largest rect inside `area` showing an image of `aspect` (width / height) when a cell is
  /// `cellAspect` times as tall as wide (2 for half blocks), centred horizontally.
  public static func fit(aspect: Double, in area: Rect, cellAspect: Double) -> Rect {
    guard !area.isEmpty, aspect > 0 else { return Rect(x: area.x, y: area.y, width: 0, height: 0) }
    // Height in rows for the full width: rows = width / aspect / cellAspect.
    var rows = Int(Double(area.width) / aspect / cellAspect)
    var cols = area.width
    if rows > area.height {
      rows = area.height
      cols = min(area.width, Int((Double(rows) * cellAspect * aspect).rounded()))
    }
    rows = max(1, rows)
    cols = max(1, cols)
    return Rect(x: area.x + (area.width - cols) / 2, y: area.y, width: cols, height: rows)
  }
}
