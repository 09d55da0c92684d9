// The studio's picture type: 8-bit RGB pixels, row-major. Independent of the engine so the
// renderers and their tests need no model; `Pixmap(RGBImage)` converts engine images.

/// An RGB image, 3 bytes per pixel, rows top to bottom.
public struct Pixmap: Sendable, Equatable {
  public let width: Int
  public let height: Int
  public var pixels: [UInt8]

  /// A pixmap of the given size; `pixels` must hold `width·height·3` bytes (else it is padded
  /// or cut, never trusted blindly).
  public init(width: Int, height: Int, pixels: [UInt8]) {
    self.width = max(0, width)
    self.height = max(0, height)
    let n = self.width * self.height * 3
    if pixels.count == n {
      self.pixels = pixels
    } else if pixels.count > n {
      self.pixels = Array(pixels.prefix(n))
    } else {
      self.pixels = pixels + [UInt8](repeating: 0, count: n - pixels.count)
    }
  }

  /// A pixmap filled with one colour.
  public init(width: Int, height: Int, red: UInt8, green: UInt8, blue: UInt8) {
    var p = [UInt8](repeating: 0, count: max(0, width) * max(0, height) * 3)
    var i = 0
    while i < p.count {
      p[i] = red
      p[i + 1] = green
      p[i + 2] = blue
      i += 3
    }
    self.init(width: width, height: height, pixels: p)
  }

  public subscript(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
    let i = (y * width + x) * 3
    return (pixels[i], pixels[i + 1], pixels[i + 2])
  }

  /// Scaled to `width`×`height`: each target pixel averages the source pixels it covers, so
  /// shrinking is a box filter and enlarging repeats pixels (keeping the token grid crisp).
  public func resized(width tw: Int, height th: Int) -> Pixmap {
    guard tw > 0, th > 0, width > 0, height > 0 else {
      return Pixmap(width: max(0, tw), height: max(0, th), pixels: [])
    }
    if tw == width && th == height { return self }
    var out = [UInt8](repeating: 0, count: tw * th * 3)
    let xs = (0...tw).map { $0 * width / tw }
    let ys = (0...th).map { $0 * height / th }
    pixels.withUnsafeBufferPointer { src in
      out.withUnsafeMutableBufferPointer { dst in
        for ty in 0..<th {
          let y0 = ys[ty]
          let y1 = max(y0 + 1, ys[ty + 1])
          for tx in 0..<tw {
            let x0 = xs[tx]
            let x1 = max(x0 + 1, xs[tx + 1])
            var r = 0
            var g = 0
            var b = 0
            for y in y0..<y1 {
              var i = (y * width + x0) * 3
              for _ in x0..<x1 {
                r += Int(src[i])
                g += Int(src[i + 1])
                b += Int(src[i + 2])
                i += 3
              }
            }
            let n = (y1 - y0) * (x1 - x0)
            let o = (ty * tw + tx) * 3
            dst[o] = UInt8((r + n / 2) / n)
            dst[o + 1] = UInt8((g + n / 2) / n)
            dst[o + 2] = UInt8((b + n / 2) / n)
          }
        }
      }
    }
    return Pixmap(width: tw, height: th, pixels: out)
  }

  /// The rows from `fromRow` down darkened and greyed, marking the part of a live preview not
  /// sampled yet.
  public func veiled(fromRow: Int) -> Pixmap {
    guard fromRow < height else { return self }
    var p = pixels
    for y in max(0, fromRow)..<height {
      for x in 0..<width { Self.veil(&p, at: (y * width + x) * 3) }
    }
    return Pixmap(width: width, height: height, pixels: p)
  }

  /// Darkens and greys the pixel at byte offset `i`: the one veil both veils draw.
  private static func veil(_ p: inout [UInt8], at i: Int) {
    let grey = (Int(p[i]) + Int(p[i + 1]) + Int(p[i + 2])) / 3
    for c in 0..<3 { p[i + c] = UInt8((Int(p[i + c]) + grey) / 6 + 12) }
  }

  /// Dims every pixel outside the rectangle (as `veiled(fromRow:)` does), with a light frame
  /// just inside its edge: what a region edit keeps, around the region it samples again.
  public func veiled(outsideX x0: Int, y y0: Int, width w: Int, height h: Int) -> Pixmap {
    var p = pixels
    let x1 = x0 + w
    let y1 = y0 + h
    for y in 0..<height {
      for x in 0..<width {
        let i = (y * width + x) * 3
        let inside = x >= x0 && x < x1 && y >= y0 && y < y1
        if !inside {
          Self.veil(&p, at: i)
        } else if x == x0 || x == x1 - 1 || y == y0 || y == y1 - 1 {
          for c in 0..<3 { p[i + c] = 250 }
        }
      }
    }
    return Pixmap(width: width, height: height, pixels: p)
  }

  /// Copies `other` with its top-left corner at (x, y), clipped to this pixmap.
  public mutating func draw(_ other: Pixmap, x: Int, y: Int) {
    for sy in 0..<other.height {
      let ty = y + sy
      guard ty >= 0, ty < height else { continue }
      for sx in 0..<other.width {
        let tx = x + sx
        guard tx >= 0, tx < width else { continue }
        let s = (sy * other.width + sx) * 3
        let d = (ty * width + tx) * 3
        pixels[d] = other.pixels[s]
        pixels[d + 1] = other.pixels[s + 1]
        pixels[d + 2] = other.pixels[s + 2]
      }
    }
  }

  /// Fills a rectangle with one colour.
  public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, color: (UInt8, UInt8, UInt8)) {
    for ty in max(0, y)..<min(height, y + h) {
      for tx in max(0, x)..<min(width, x + w) {
        let d = (ty * width + tx) * 3
        pixels[d] = color.0
        pixels[d + 1] = color.1
        pixels[d + 2] = color.2
      }
    }
  }

  /// A 64-bit FNV-1a hash of the size and pixels: the cache key of encoded forms.
  public var fingerprint: UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    func mix(_ b: UInt8) {
      h ^= UInt64(b)
      h = h &* 0x100_0000_01b3
    }
    for v in [width, height] { for k in 0..<4 { mix(UInt8((v >> (8 * k)) & 0xff)) } }
    pixels.withUnsafeBufferPointer { p in for b in p { mix(b) } }
    return h
  }
}
