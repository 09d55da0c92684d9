// Resizing and cropping of RGBImage, reproducing Pillow and torchvision exactly.
//
// `resized(width:height:filter:)` mirrors Pillow's `Image.resize(size, filter)` for 8-bit images
// (src/libImaging/Resample.c): separable convolution; filter support widened by the downscale
// factor; weights normalised to sum 1 in double precision, then rounded to fixed point with 22
// fraction bits (half away from zero); each pass adds a half, shifts and clamps to 0...255, so the
// first pass's result is stored as uint8 before the second. A pass whose size does not change is
// skipped. Which pass runs first changes the result by up to tens of levels; see
// `ResamplingPassOrder`.
//
// `resizedShorterSide(to:)` and `centerCropped(width:height:)` mirror torchvision's
// `transforms.Resize(int)` and `transforms.CenterCrop` on PIL images.

import Foundation

/// Pillow's resampling filters (`Image.Resampling`), with their supports.
public enum ResamplingFilter: Sendable, Equatable, CaseIterable {
  case box, bilinear, hamming, bicubic, lanczos

  /// Half-width of the kernel at scale 1.
  var support: Double {
    switch self {
    case .box: return 0.5
    case .bilinear, .hamming: return 1
    case .bicubic: return 2
    case .lanczos: return 3
    }
  }

  /// The kernel, written as in Pillow (bicubic is Keys' cubic with a = -0.5).
  func weight(_ x: Double) -> Double {
    switch self {
    case .box:
      return x > -0.5 && x <= 0.5 ? 1 : 0
    case .bilinear:
      let x = abs(x)
      return x < 1 ? 1 - x : 0
    case .hamming:
      let x = abs(x)
      if x == 0 { return 1 }
      if x >= 1 { return 0 }
      let t = x * Double.pi
      // Pillow writes the window's constants as C floats.
      return sin(t) / t * (Double(Float(0.54)) + Double(Float(0.46)) * cos(t))
    case .bicubic:
      let a = -0.5
      let x = abs(x)
      if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
      if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
      return 0
    case .lanczos:
      guard -3 <= x && x < 3 else { return 0 }
      return Self.sinc(x) * Self.sinc(x / 3)
    }
  }

  private static func sinc(_ x: Double) -> Double {
    if x == 0 { return 1 }
    let t = x * Double.pi
    return sin(t) / t
  }
}

/// Which of the two separable passes runs first, as different Pillow releases choose.
public enum ResamplingPassOrder: Sendable, Equatable {
  /// Pillow 13 (python-pillow/Pillow#9549): vertical first when the height shrinks and by more
  /// than twice as many pixels as the width does (`inH > outH && inH - outH > 2 * (inW - outW)`),
  /// horizontal first otherwise.
  case pillow13
  /// Pillow 7 to 12: always horizontal first.
  case horizontalFirst

  func verticalFirst(from input: (width: Int, height: Int), to output: (width: Int, height: Int)) -> Bool {
    switch self {
    case .horizontalFirst: return false
    case .pillow13:
      return input.height > output.height && input.height - output.height > 2 * (input.width - output.width)
    }
  }
}

/// Fixed-point taps for resampling one axis: for output index i, `count[i]` input samples from
/// `first[i]` with weights `weights[i * kernelSize ..< i * kernelSize + count[i]]`.
struct ResamplingTaps {
  static let precisionBits = 22  // Pillow's PRECISION_BITS = 32 - 8 - 2

  let kernelSize: Int
  var first: [Int]
  var count: [Int]
  var weights: [Int32]

  /// Taps mapping `inputSize` samples onto `outputSize` (Pillow's precompute_coeffs followed by
  /// normalize_coeffs_8bpc, with the box spanning the whole input).
  init(inputSize: Int, outputSize: Int, filter: ResamplingFilter) {
    let scale = Double(inputSize) / Double(outputSize)
    let filterScale = max(scale, 1)
    let support = filter.support * filterScale
    let kernelSize = Int(support.rounded(.up)) * 2 + 1
    let inverseScale = 1.0 / filterScale
    let one = Double(1 << Self.precisionBits)
    var first = [Int](repeating: 0, count: outputSize)
    var count = [Int](repeating: 0, count: outputSize)
    var weights = [Int32](repeating: 0, count: outputSize * kernelSize)
    var kernel = [Double](repeating: 0, count: kernelSize)
    for i in 0..<outputSize {
      let center = (Double(i) + 0.5) * scale
      // Int(_:) truncates toward zero like C's (int) cast.
      let low = max(Int(center - support + 0.5), 0)
      let n = min(Int(center + support + 0.5), inputSize) - low
      var total = 0.0
      for x in 0..<n {
        let w = filter.weight((Double(x + low) - center + 0.5) * inverseScale)
        kernel[x] = w
        total += w
      }
      for x in 0..<n {
        let w = total != 0 ? kernel[x] / total : kernel[x]
        weights[i * kernelSize + x] = w < 0 ? Int32(-0.5 + w * one) : Int32(0.5 + w * one)
      }
      first[i] = low
      count[i] = n
    }
    self.kernelSize = kernelSize
    self.first = first
    self.count = count
    self.weights = weights
  }
}

extension RGBImage {
  /// This image resized to `width`×`height` exactly as Pillow's `Image.resize((width, height),
  /// filter)` resizes an RGB image (see the file header). Returns `self` when the size is unchanged.
  /// - Parameter passOrder: the Pillow release to reproduce (13 by default).
  public func resized(
    width newWidth: Int, height newHeight: Int, filter: ResamplingFilter = .bicubic,
    passOrder: ResamplingPassOrder = .pillow13
  ) -> RGBImage {
    precondition(newWidth > 0 && newHeight > 0, "resized: target size \(newWidth)×\(newHeight)")
    if newWidth == width && newHeight == height { return self }
    let vertical = ResamplingTaps(inputSize: height, outputSize: newHeight, filter: filter)
    if passOrder.verticalFirst(from: (width, height), to: (newWidth, newHeight)) {
      // The height changes here, so the vertical pass always runs.
      let columns = Self.resampleColumns(self, taps: vertical, rowOffset: 0, height: newHeight)
      if newWidth == width { return columns }
      let horizontal = ResamplingTaps(inputSize: width, outputSize: newWidth, filter: filter)
      return Self.resampleRows(columns, rows: 0..<newHeight, taps: horizontal, width: newWidth)
    }
    // Rows of the source the vertical pass reads.
    let firstRow = vertical.first[0]
    let lastRow = vertical.first[newHeight - 1] + vertical.count[newHeight - 1]

    var source = self
    var rowOffset = 0
    if newWidth != width {
      let horizontal = ResamplingTaps(inputSize: width, outputSize: newWidth, filter: filter)
      source = Self.resampleRows(self, rows: firstRow..<lastRow, taps: horizontal, width: newWidth)
      rowOffset = firstRow
    }
    if newHeight == height { return source }
    return Self.resampleColumns(source, taps: vertical, rowOffset: rowOffset, height: newHeight)
  }

  /// Horizontal pass over `rows` of `image` (Pillow's ImagingResampleHorizontal_8bpc).
  private static func resampleRows(_ image: RGBImage, rows: Range<Int>, taps: ResamplingTaps, width: Int) -> RGBImage {
    let inputStride = image.width * 3
    var output = [UInt8](repeating: 0, count: rows.count * width * 3)
    let half = 1 << (ResamplingTaps.precisionBits - 1)
    image.pixels.withUnsafeBufferPointer { input in
      taps.weights.withUnsafeBufferPointer { weights in
        output.withUnsafeMutableBufferPointer { out in
          for (outRow, row) in rows.enumerated() {
            let inRow = row * inputStride
            let outBase = outRow * width * 3
            for x in 0..<width {
              let first = taps.first[x]
              let k = x * taps.kernelSize
              var r = half, g = half, b = half
              for t in 0..<taps.count[x] {
                let w = Int(weights[k + t])
                let p = inRow + (first + t) * 3
                r += Int(input[p]) * w
                g += Int(input[p + 1]) * w
                b += Int(input[p + 2]) * w
              }
              out[outBase + 3 * x] = clip8(r)
              out[outBase + 3 * x + 1] = clip8(g)
              out[outBase + 3 * x + 2] = clip8(b)
            }
          }
        }
      }
    }
    return RGBImage(width: width, height: rows.count, pixels: output)
  }

  /// Vertical pass (Pillow's ImagingResampleVertical_8bpc); `rowOffset` is the first source row
  /// `image` holds.
  private static func resampleColumns(_ image: RGBImage, taps: ResamplingTaps, rowOffset: Int, height: Int) -> RGBImage
  {
    let stride = image.width * 3
    var output = [UInt8](repeating: 0, count: height * stride)
    let half = 1 << (ResamplingTaps.precisionBits - 1)
    image.pixels.withUnsafeBufferPointer { input in
      taps.weights.withUnsafeBufferPointer { weights in
        output.withUnsafeMutableBufferPointer { out in
          for y in 0..<height {
            let first = taps.first[y] - rowOffset
            let k = y * taps.kernelSize
            let n = taps.count[y]
            for i in 0..<stride {
              var sum = half
              for t in 0..<n {
                sum += Int(input[(first + t) * stride + i]) * Int(weights[k + t])
              }
              out[y * stride + i] = clip8(sum)
            }
          }
        }
      }
    }
    return RGBImage(width: image.width, height: height, pixels: output)
  }

  @inline(__always)
  private static func clip8(_ value: Int) -> UInt8 {
    let v = value >> ResamplingTaps.precisionBits
    return v < 0 ? 0 : v > 255 ? 255 : UInt8(v)
  }

  /// The `width`×`height` region whose top-left corner is at (`x`, `y`); it must lie inside.
  public func cropped(x: Int, y: Int, width cropWidth: Int, height cropHeight: Int) -> RGBImage {
    precondition(
      x >= 0 && y >= 0 && cropWidth > 0 && cropHeight > 0 && x + cropWidth <= width && y + cropHeight <= height,
      "cropped: region (\(x), \(y)) \(cropWidth)×\(cropHeight) outside a \(width)×\(height) image")
    var output = [UInt8]()
    output.reserveCapacity(cropWidth * cropHeight * 3)
    for row in y..<(y + cropHeight) {
      let start = (row * width + x) * 3
      output += pixels[start..<(start + cropWidth * 3)]
    }
    return RGBImage(width: cropWidth, height: cropHeight, pixels: output)
  }

  /// The image resized so its shorter side is `size`, keeping the aspect ratio as torchvision's
  /// `Resize(size)` does: the longer side becomes `int(size * long / short)` (truncated).
  public func resizedShorterSide(
    to size: Int, filter: ResamplingFilter = .bicubic, passOrder: ResamplingPassOrder = .pillow13
  ) -> RGBImage {
    let (w, h) = Self.shorterSideSize(width: width, height: height, size: size)
    return resized(width: w, height: h, filter: filter, passOrder: passOrder)
  }

  /// The output size of torchvision's `Resize(size)` for a `width`×`height` input.
  public static func shorterSideSize(width: Int, height: Int, size: Int) -> (width: Int, height: Int) {
    precondition(size > 0, "shorterSideSize: size \(size)")
    if width <= height {
      return (size, Int(Double(size * height) / Double(width)))
    }
    return (Int(Double(size * width) / Double(height)), size)
  }

  /// The centre `width`×`height` region, as torchvision's `CenterCrop` takes it: the offset is
  /// `int(round((side - crop) / 2.0))` (Python rounds halves to even: an excess of 1 crops from
  /// offset 0, 3 from 2, 5 from 2); a crop larger than the image pads it with black first, the
  /// extra pixel of an odd padding going right or bottom.
  public func centerCropped(width cropWidth: Int, height cropHeight: Int) -> RGBImage {
    precondition(cropWidth > 0 && cropHeight > 0, "centerCropped: size \(cropWidth)×\(cropHeight)")
    var image = self
    if cropWidth > width || cropHeight > height {
      let left = cropWidth > width ? (cropWidth - width) / 2 : 0
      let top = cropHeight > height ? (cropHeight - height) / 2 : 0
      let right = cropWidth > width ? (cropWidth - width + 1) / 2 : 0
      let bottom = cropHeight > height ? (cropHeight - height + 1) / 2 : 0
      image = padded(left: left, top: top, right: right, bottom: bottom)
      if image.width == cropWidth && image.height == cropHeight { return image }
    }
    let top = Int((Double(image.height - cropHeight) / 2).rounded(.toNearestOrEven))
    let left = Int((Double(image.width - cropWidth) / 2).rounded(.toNearestOrEven))
    if top == 0 && left == 0 && cropWidth == image.width && cropHeight == image.height { return image }
    return image.cropped(x: left, y: top, width: cropWidth, height: cropHeight)
  }

  /// The image with black borders of the given widths.
  public func padded(left: Int, top: Int, right: Int, bottom: Int) -> RGBImage {
    precondition(left >= 0 && top >= 0 && right >= 0 && bottom >= 0, "padded: negative border")
    let newWidth = width + left + right
    let newHeight = height + top + bottom
    var output = [UInt8](repeating: 0, count: newWidth * newHeight * 3)
    for row in 0..<height {
      let source = row * width * 3
      let target = ((row + top) * newWidth + left) * 3
      output.replaceSubrange(target..<(target + width * 3), with: pixels[source..<(source + width * 3)])
    }
    return RGBImage(width: newWidth, height: newHeight, pixels: output)
  }

  /// How `upscaled(by:method:)` fills the new pixels.
  public enum UpscaleMethod: Sendable {
    /// Each pixel becomes a `factor`×`factor` block (Pillow's NEAREST at an integer factor).
    case nearest
    /// Pillow's BICUBIC resize to `factor` times the size.
    case bicubic
  }

  /// The image enlarged `factor` times in each direction, for display.
  public func upscaled(by factor: Int, method: UpscaleMethod = .nearest) -> RGBImage {
    // (Enlarging both sides never runs the vertical pass first, so the pass order is moot.)
    precondition(factor >= 1, "upscaled: factor \(factor)")
    if factor == 1 { return self }
    switch method {
    case .bicubic:
      return resized(width: width * factor, height: height * factor, filter: .bicubic)
    case .nearest:
      let newWidth = width * factor
      var output = [UInt8](repeating: 0, count: newWidth * height * factor * 3)
      pixels.withUnsafeBufferPointer { input in
        output.withUnsafeMutableBufferPointer { out in
          for y in 0..<height {
            let rowStart = y * factor * newWidth * 3
            for x in 0..<width {
              let p = (y * width + x) * 3
              for dx in 0..<factor {
                let q = rowStart + (x * factor + dx) * 3
                out[q] = input[p]
                out[q + 1] = input[p + 1]
                out[q + 2] = input[p + 2]
              }
            }
            // Repeat the finished row factor - 1 times.
            for dy in 1..<factor {
              let target = rowStart + dy * newWidth * 3
              for i in 0..<(newWidth * 3) { out[target + i] = out[rowStart + i] }
            }
          }
        }
      }
      return RGBImage(width: newWidth, height: height * factor, pixels: output)
    }
  }
}
