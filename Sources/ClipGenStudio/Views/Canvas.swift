// Drawing helpers shared by the views: a grid plus the theme.
import Foundation

/// A cell grid being drawn, with the theme's colours at hand.
public struct Canvas {
  public var grid: CellGrid
  public let theme: Theme

  public init(width: Int, height: Int, theme: Theme) {
    self.theme = theme
    grid = CellGrid(width: width, height: height, fill: Cell(" ", style: CellStyle(background: theme["background"])))
  }

  public func style(_ role: String, bold: Bool = false) -> CellStyle { theme.style(role, bold: bold) }

  /// Text in a role's colour; returns columns written.
  @discardableResult
  public mutating func text(_ s: String, x: Int, y: Int, role: String = "text", bold: Bool = false, limit: Int? = nil)
    -> Int
  {
    grid.put(s, x: x, y: y, style: style(role, bold: bold), limit: limit)
  }

  @discardableResult
  public mutating func text(_ s: String, x: Int, y: Int, style: CellStyle, limit: Int? = nil) -> Int {
    grid.put(s, x: x, y: y, style: style, limit: limit)
  }

  /// A bordered pane; focused panes get the focus colour and a bold title.
  public mutating func pane(_ rect: Rect, title: String, focused: Bool, rightTitle: String? = nil) {
    grid.fill(rect, style: style("text"))
    let border = focused ? "border.focus" : "border"
    grid.box(
      rect, style: style(border), title: title, titleStyle: focused ? style("accent", bold: true) : style("muted"),
      heavy: false)
    if let rightTitle, rect.width > title.terminalWidth + 10 {
      let t = " " + rightTitle.truncated(toColumns: rect.width - title.terminalWidth - 10) + " "
      grid.put(t, x: rect.maxX - 2 - t.terminalWidth, y: rect.y, style: style("muted"))
    }
  }

  /// A horizontal progress bar of `width` cells, `fraction` filled (eighth-cell resolution).
  public mutating func progressBar(x: Int, y: Int, width: Int, fraction: Double) {
    guard width > 0 else { return }
    let f = max(0, min(1, fraction.isFinite ? fraction : 0))
    let eighths = Int((f * Double(width * 8)).rounded(.down))
    let partials = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"]
    let done = CellStyle(foreground: theme["progress.done"], background: theme["progress.todo"])
    for i in 0..<width {
      let filled = eighths - i * 8
      let ch = filled >= 8 ? "█" : (filled > 0 ? partials[filled] : " ")
      grid[x + i, y] = Cell(ch, style: done)
    }
  }

  /// Key hints: "Enter generate  Tab history …", keys in the key colour, on a bar.
  public mutating func hints(_ items: [(key: String, action: String)], x: Int, y: Int, width: Int, bar: String) {
    var col = x
    let keyStyle = CellStyle(foreground: theme["key"], background: theme["\(bar).background"], bold: true)
    let textStyle = theme.bar(bar)
    for (key, action) in items {
      let need = key.terminalWidth + 1 + action.terminalWidth
      if col + need > x + width { break }
      col += grid.put(key, x: col, y: y, style: keyStyle)
      col += grid.put(" " + action, x: col, y: y, style: textStyle)
      if col + 2 <= x + width { col += grid.put("  ", x: col, y: y, style: textStyle) }
    }
  }
}
