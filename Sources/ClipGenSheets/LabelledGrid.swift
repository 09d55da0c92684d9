// One labelled sheet for every exported comparison: a title band, then a grid of images with a
// label above each column and, with two axes, one left of each row. The studio's comparison (one
// row), `clipgen interpolate`'s strip (one row) and X/Y grids (rows × columns) all draw with it.
import ClipGenEngine

/// Images in rows and columns with their labels, drawn into one picture.
public struct LabelledGrid: Sendable {
  public var title: String
  public var columnLabels: [String]
  /// One per row; empty for a single unlabelled row.
  public var rowLabels: [String]
  /// `cells[row][column]`; nil draws a grey "NO IMAGE" tile (a cell that failed or has not run).
  public var cells: [[RGBImage?]]

  public static let background: RGB = (30, 30, 34)
  public static let ink: RGB = (235, 235, 235)
  public static let emptyTile: RGB = (60, 60, 66)
  /// Space between tiles and around the sheet, in pixels.
  public static let pad = 12
  /// The font's scale.
  public static let scale = 2
  /// A label band's height.
  public static var band: Int { BitmapFont.glyphHeight * scale + 10 }

  public init(title: String, columnLabels: [String], rowLabels: [String] = [], cells: [[RGBImage?]]) {
    self.title = title
    self.columnLabels = columnLabels
    self.rowLabels = rowLabels
    self.cells = cells
  }

  /// A single row of labelled images.
  public init(title: String, labels: [String], images: [RGBImage?]) {
    self.init(title: title, columnLabels: labels, cells: [images])
  }

  /// The tile side: the largest image enlarged by a whole factor to at least `minimumTile`.
  func tileSide(minimumTile: Int) -> Int {
    let side = cells.joined().compactMap { $0?.width }.max() ?? 64
    return side * max(1, (minimumTile + side - 1) / side)
  }

  /// The sheet: title band, column labels, then each row (its label left of it when there are
  /// row labels). Square tiles of the largest image's width enlarged to at least `minimumTile`.
  public func render(minimumTile: Int = 192) -> RGBImage {
    let pad = Self.pad
    let band = Self.band
    let scale = Self.scale
    let tile = tileSide(minimumTile: minimumTile)
    let columns = max(1, cells.map(\.count).max() ?? 1, columnLabels.count)
    let rows = max(1, cells.count)
    let labelWidth =
      rowLabels.isEmpty
      ? 0 : min(tile, (rowLabels.map { BitmapFont.width(of: $0, scale: scale) }.max() ?? 0)) + pad
    let width = labelWidth + columns * tile + (columns + 1) * pad
    let height = pad + band + pad / 2 + band + rows * tile + rows * pad
    var out = SheetCanvas(width: width, height: height, color: Self.background)
    BitmapFont.draw(
      BitmapFont.fit(title, width: width - 2 * pad, scale: scale), into: &out, x: pad, y: pad + 5, scale: scale,
      color: Self.ink)
    let labelY = pad + band + pad / 2
    let left = pad + labelWidth
    for (c, label) in columnLabels.enumerated() {
      BitmapFont.draw(
        BitmapFont.fit(label, width: tile, scale: scale), into: &out, x: left + c * (tile + pad), y: labelY + 5,
        scale: scale, color: Self.ink)
    }
    for r in 0..<rows {
      let y = labelY + band + r * (tile + pad)
      if r < rowLabels.count {
        BitmapFont.draw(
          BitmapFont.fit(rowLabels[r], width: labelWidth - pad, scale: scale), into: &out, x: pad,
          y: y + tile / 2 - BitmapFont.glyphHeight * scale / 2, scale: scale, color: Self.ink)
      }
      for c in 0..<columns {
        let x = left + c * (tile + pad)
        if r < cells.count, c < cells[r].count, let img = cells[r][c] {
          out.draw(img, x: x, y: y, width: tile)
        } else {
          out.fill(x: x, y: y, width: tile, height: tile, color: Self.emptyTile)
          BitmapFont.draw("NO IMAGE", into: &out, x: x + 8, y: y + tile / 2 - 7, scale: scale, color: (150, 150, 150))
        }
      }
    }
    return out.image
  }
}
