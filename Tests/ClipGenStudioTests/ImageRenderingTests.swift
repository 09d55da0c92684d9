import Testing

@testable import ClipGenStudio

/// A deterministic test picture: smooth gradients plus a few flat blocks, like a decoded sample.
func testPattern(width: Int = 64, height: Int = 64) -> Pixmap {
  var p = [UInt8]()
  for y in 0..<height {
    for x in 0..<width {
      if (x / 16 + y / 16) % 3 == 0 {
        p += [200, 40, 40]
      } else {
        p += [UInt8(x * 255 / max(1, width - 1)), UInt8(y * 255 / max(1, height - 1)), UInt8((x + y) * 2 % 256)]
      }
    }
  }
  return Pixmap(width: width, height: height, pixels: p)
}

func meanAbsoluteError(_ a: Pixmap, _ b: Pixmap) -> Double {
  precondition(a.width == b.width && a.height == b.height)
  var total = 0
  for i in 0..<a.pixels.count { total += abs(Int(a.pixels[i]) - Int(b.pixels[i])) }
  return Double(total) / Double(a.pixels.count)
}

@Suite("Studio images")
struct StudioImageTests {
  /// The sixel bytes the studio emits decode (libsixel's decoder) to the previewed image: the
  /// same size, mean absolute error under 3 levels of 255 and no pixel off by more than 48
  /// (256-colour palette, no dithering).
  @Test func sixelRoundTripsWithinTolerance() throws {
    let image = testPattern(width: 64, height: 64).resized(width: 160, height: 160)
    let sixel = try SixelCodec.encode(image)
    #expect(sixel.starts(with: [0x1B, 0x50]))  // ESC P
    #expect(Array(sixel.suffix(2)) == [0x1B, 0x5C])  // ESC \
    let decoded = try SixelCodec.decode(sixel)
    #expect(decoded.width == image.width)
    #expect(decoded.height == image.height)
    let mae = meanAbsoluteError(decoded, image)
    #expect(mae < 3, "mean absolute error \(mae)")
    var worst = 0
    for i in 0..<image.pixels.count { worst = max(worst, abs(Int(decoded.pixels[i]) - Int(image.pixels[i]))) }
    #expect(worst <= 48, "worst pixel error \(worst)")
  }

  /// Sixel palettes are in percent, so a flat colour comes back within 3 levels of 255.
  @Test func sixelOfAFlatImageIsFlat() throws {
    let flat = Pixmap(width: 30, height: 20, red: 10, green: 200, blue: 90)
    let decoded = try SixelCodec.decode(try SixelCodec.encode(flat))
    #expect(decoded.width == 30 && decoded.height == 20)
    let worst = zip(decoded.pixels, flat.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
    #expect(worst <= 3)
  }

  @Test func resizingAveragesWhenShrinkingAndRepeatsWhenEnlarging() {
    let p = Pixmap(width: 2, height: 1, pixels: [0, 0, 0, 200, 100, 50])
    #expect(p.resized(width: 1, height: 1).pixels == [100, 50, 25])
    #expect(
      p.resized(width: 4, height: 2).pixels == [0, 0, 0, 0, 0, 0, 200, 100, 50, 200, 100, 50] + [
        0, 0, 0, 0, 0, 0, 200, 100, 50, 200, 100, 50,
      ])
  }

  @Test func halfBlocksCarryTopAndBottomPixels() {
    let p = Pixmap(width: 1, height: 2, pixels: [255, 0, 0, 0, 0, 255])
    var grid = CellGrid(width: 3, height: 2)
    HalfBlockRenderer.draw(p, into: &grid, rect: Rect(x: 1, y: 0, width: 1, height: 1))
    #expect(grid[1, 0].text == "▀")
    #expect(grid[1, 0].style.foreground == .rgb(255, 0, 0))
    #expect(grid[1, 0].style.background == .rgb(0, 0, 255))
    #expect(grid[0, 0] == .blank)
  }

  @Test func paletteQuantisationPicksCubeAndGreys() {
    #expect(TerminalColor.paletteIndex(red: 255, green: 0, blue: 0) == 196)
    #expect(TerminalColor.paletteIndex(red: 0, green: 0, blue: 0) == 16)
    #expect(TerminalColor.paletteIndex(red: 128, green: 128, blue: 128) == 244)
    #expect(TerminalColor.rgb(ofPaletteIndex: 196) == (255, 0, 0))
  }
}
