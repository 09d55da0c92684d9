// A drawing surface for exported sheets: fills, whole-factor enlargements of images, clipped to
// its bounds.
import ClipGenEngine

/// An 8-bit RGB colour.
public typealias RGB = (UInt8, UInt8, UInt8)

/// RGB pixels being composed into a sheet; every write is clipped to the canvas.
public struct SheetCanvas: Sendable {
  public let width: Int
  public let height: Int
  public private(set) var pixels: [UInt8]

  public init(width: Int, height: Int, color: RGB) {
    self.width = max(1, width)
    self.height = max(1, height)
    pixels = [UInt8](repeating: 0, count: self.width * self.height * 3)
    fill(x: 0, y: 0, width: self.width, height: self.height, color: color)
  }

  /// The colour at (x, y).
  public subscript(x: Int, y: Int) -> RGB {
    let i = 3 * (y * width + x)
    return (pixels[i], pixels[i + 1], pixels[i + 2])
  }

  /// Fills a rectangle (the part inside the canvas).
  public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, color: RGB) {
    let x0 = max(0, x)
    let y0 = max(0, y)
    let x1 = min(width, x + w)
    let y1 = min(height, y + h)
    guard x0 < x1, y0 < y1 else { return }
    for yy in y0..<y1 {
      for xx in x0..<x1 {
        let i = 3 * (yy * width + xx)
        pixels[i] = color.0
        pixels[i + 1] = color.1
        pixels[i + 2] = color.2
      }
    }
  }

  /// Draws `image` with its top-left corner at (x, y), scaled to `width` pixels wide (nearest
  /// pixel: a token grid's blocks stay sharp) and as tall as its aspect gives.
  public mutating func draw(_ image: RGBImage, x: Int, y: Int, width w: Int) {
    guard w > 0 else { return }
    let h = max(1, image.height * w / image.width)
    for yy in max(0, y)..<min(height, y + h) {
      let sy = min(image.height - 1, (yy - y) * image.height / h)
      for xx in max(0, x)..<min(width, x + w) {
        let sx = min(image.width - 1, (xx - x) * image.width / w)
        let s = 3 * (sy * image.width + sx)
        let d = 3 * (yy * width + xx)
        pixels[d] = image.pixels[s]
        pixels[d + 1] = image.pixels[s + 1]
        pixels[d + 2] = image.pixels[s + 2]
      }
    }
  }

  /// The canvas as an image.
  public var image: RGBImage { RGBImage(width: width, height: height, pixels: pixels) }
}
