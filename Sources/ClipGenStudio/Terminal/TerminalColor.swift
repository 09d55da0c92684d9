// Colours as the studio thinks of them, and how they map to a 256-colour terminal.

/// A foreground or background colour of one terminal cell.
public enum TerminalColor: Hashable, Sendable {
  /// The terminal's own default (foreground or background).
  case `default`
  /// An entry of the 256-colour palette (0–15 are the terminal's ANSI colours).
  case indexed(UInt8)
  /// A 24-bit colour; drawn exactly on true-colour terminals, else as the nearest palette entry.
  case rgb(UInt8, UInt8, UInt8)

  /// The nearest entry of xterm's 256-colour palette (the 6×6×6 cube and the grey ramp; the 16
  /// ANSI colours are skipped because terminals redefine them).
  public var nearestPaletteIndex: UInt8? {
    switch self {
    case .default: return nil
    case .indexed(let i): return i
    case .rgb(let r, let g, let b): return TerminalColor.paletteIndex(red: r, green: g, blue: b)
    }
  }

  /// The nearest of the 240 portable palette entries (16–255) to an RGB colour.
  public static func paletteIndex(red r: UInt8, green g: UInt8, blue b: UInt8) -> UInt8 {
    let levels: [Int] = [0, 95, 135, 175, 215, 255]
    func level(_ v: UInt8) -> Int {
      let v = Int(v)
      if v < 48 { return 0 }
      if v < 115 { return 1 }
      return min(5, (v - 35) / 40)
    }
    let (ri, gi, bi) = (level(r), level(g), level(b))
    let cube = (levels[ri], levels[gi], levels[bi])
    let cubeIndex = 16 + 36 * ri + 6 * gi + bi
    // The grey ramp: 232–255 are 8, 18, …, 238.
    let mean = (Int(r) + Int(g) + Int(b)) / 3
    let greyStep = mean > 238 ? 23 : max(0, (mean - 3) / 10)
    let greyValue = 8 + 10 * greyStep
    func distance(_ c: (Int, Int, Int)) -> Int {
      let dr = c.0 - Int(r)
      let dg = c.1 - Int(g)
      let db = c.2 - Int(b)
      return dr * dr + dg * dg + db * db
    }
    return distance((greyValue, greyValue, greyValue)) < distance(cube) ? UInt8(232 + greyStep) : UInt8(cubeIndex)
  }

  /// The RGB value of a palette entry (xterm's defaults for 0–15).
  public static func rgb(ofPaletteIndex index: UInt8) -> (UInt8, UInt8, UInt8) {
    let ansi: [(UInt8, UInt8, UInt8)] = [
      (0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205), (229, 229, 229),
      (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255), (255, 0, 255), (0, 255, 255),
      (255, 255, 255),
    ]
    let i = Int(index)
    if i < 16 { return ansi[i] }
    if i >= 232 {
      let v = UInt8(8 + 10 * (i - 232))
      return (v, v, v)
    }
    let levels: [UInt8] = [0, 95, 135, 175, 215, 255]
    let c = i - 16
    return (levels[c / 36], levels[(c / 6) % 6], levels[c % 6])
  }
}

/// How many colours the terminal can show, which decides how `.rgb` colours are drawn.
public enum ColorDepth: String, Sendable, CaseIterable {
  /// 24-bit colour (`COLORTERM=truecolor`, or a `-direct` terminfo entry).
  case trueColor = "24bit"
  /// xterm's 256-colour palette.
  case palette256 = "256"
  /// Eight or sixteen colours: images fall back to a few shades.
  case basic = "16"
}
