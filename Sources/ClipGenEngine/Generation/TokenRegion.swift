// A rectangle of the token grid: what a region re-sample samples again.

/// A rectangle of tokens: columns `x..<x+width`, rows `y..<y+height` of the grid.
public struct TokenRegion: Codable, Sendable, Equatable {
  public var x: Int
  public var y: Int
  public var width: Int
  public var height: Int

  public init(x: Int, y: Int, width: Int, height: Int) {
    self.x = x
    self.y = y
    self.width = width
    self.height = height
  }

  /// "x,y,w,h" (as the CLI takes it); nil when it is not four integers.
  public init?(_ text: String) {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false).map {
      Int($0.trimmingCharacters(in: .whitespaces))
    }
    guard parts.count == 4, let x = parts[0], let y = parts[1], let w = parts[2], let h = parts[3] else { return nil }
    self.init(x: x, y: y, width: w, height: h)
  }

  public var description: String { "\(x),\(y),\(width),\(height)" }

  /// Whether raster position `index` of a grid `gridWidth` tokens wide lies inside.
  public func contains(_ index: Int, gridWidth: Int) -> Bool {
    let (row, column) = index.quotientAndRemainder(dividingBy: gridWidth)
    return (y..<y + height).contains(row) && (x..<x + width).contains(column)
  }

  /// Throws unless the rectangle is non-empty and inside a `gridWidth`×`gridHeight` grid.
  public func validate(gridWidth: Int, gridHeight: Int) throws {
    guard width >= 1, height >= 1, x >= 0, y >= 0, x <= gridWidth - width, y <= gridHeight - height else {
      throw GenerationError.invalidSetting(
        "the region \(description) (x,y,width,height in tokens) is not inside the \(gridWidth)×\(gridHeight) token grid"
      )
    }
  }
}
