// Conversions between RGBImage and the engine's [3, H, W] Float tensors, with the exact
// arithmetic of the Python pipelines whose models we run.

/// How 8-bit samples map to the floats a model sees, and back.
public enum PixelNormalization: Sendable, Equatable {
  /// taming-transformers' data pipeline: `Float(Double(v) / 127.5 - 1)` (numpy float64, then
  /// float32), in [-1, 1]. Back: taming's `chw_to_pillow`, `(x + 1) / 2 * 255` in float32.
  case taming
  /// torchvision `ToTensor()` then `Normalize(mean, std)`, all in float32:
  /// `(Float(v) / 255 - mean[c]) / std[c]`. Back: `x * std[c] + mean[c]`, clamped to [0, 1], × 255.
  case meanStd(mean: [Float], std: [Float])

  /// OpenAI CLIP's image statistics (as float32, the way torchvision's Normalize stores them).
  public static let clip = PixelNormalization.meanStd(
    mean: [0.48145466, 0.4578275, 0.40821073].map { Float($0 as Double) },
    std: [0.26862954, 0.26130258, 0.27577711].map { Float($0 as Double) })

  /// HFAiLab clip-gen's VQGAN input: `Normalize(mean=(0.5,)*3, std=(0.5,)*3)` after ToTensor.
  public static let halfMeanStd = PixelNormalization.meanStd(mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5])

  /// `table[c * 256 + v]`: the float for sample value v of channel c.
  func lookupTable() -> [Float] {
    var table = [Float](repeating: 0, count: 3 * 256)
    for c in 0..<3 {
      for v in 0..<256 {
        switch self {
        case .taming:
          table[c * 256 + v] = Float(Double(v) / 127.5 - 1.0)
        case .meanStd(let mean, let std):
          precondition(mean.count == 3 && std.count == 3, "PixelNormalization: need 3 means and 3 stds")
          // ToTensor divides in float32, Normalize subtracts and divides in float32.
          table[c * 256 + v] = (Float(v) / 255 - mean[c]) / std[c]
        }
      }
    }
    return table
  }

  /// The [0, 1]-scaled value for model output `x` of channel `c`, before clamping.
  @inline(__always)
  func unitValue(_ x: Float, channel c: Int) -> Float {
    switch self {
    case .taming: return (x + 1) / 2
    case .meanStd(let mean, let std): return x * std[c] + mean[c]
    }
  }
}

/// How a [0, 1] value becomes a byte (after clamping to [0, 1]; NaN becomes 0).
public enum PixelQuantization: Sendable, Equatable {
  /// `UInt8(255 * v)` truncated, as numpy's `astype(np.uint8)` in taming's `chw_to_pillow` and
  /// `save_image` scripts.
  case truncate
  /// `UInt8(255 * v + 0.5)` truncated, as torchvision's `save_image` / `to_pil_image` paths do.
  case roundHalfUp
}

extension RGBImage {
  /// The image as a [3, height, width] tensor (channel planes), normalised as `normalization` says.
  public func tensor(normalization: PixelNormalization = .taming) -> Tensor {
    let table = normalization.lookupTable()
    let plane = width * height
    var scalars = [Float](repeating: 0, count: 3 * plane)
    pixels.withUnsafeBufferPointer { input in
      table.withUnsafeBufferPointer { lut in
        scalars.withUnsafeMutableBufferPointer { out in
          for i in 0..<plane {
            out[i] = lut[Int(input[3 * i])]
            out[plane + i] = lut[256 + Int(input[3 * i + 1])]
            out[2 * plane + i] = lut[512 + Int(input[3 * i + 2])]
          }
        }
      }
    }
    return Tensor(shape: [3, height, width], scalars: scalars)
  }

  /// An image from a model's [3, H, W] (or [1, 3, H, W]) output: each value is mapped back to
  /// [0, 1] by `normalization`, clamped, and quantized by `quantization`. The defaults reproduce
  /// taming-transformers' `chw_to_pillow`: `((x + 1) / 2 * 255).clip(0, 255).astype(np.uint8)`.
  /// - Throws: `ImageError.invalidTensor` for any other shape.
  public init(
    tensor: Tensor, normalization: PixelNormalization = .taming, quantization: PixelQuantization = .truncate
  ) throws {
    var shape = tensor.shape
    if shape.count == 4 && shape[0] == 1 { shape.removeFirst() }
    guard shape.count == 3, shape[0] == 3, shape[1] > 0, shape[2] > 0 else {
      throw ImageError.invalidTensor(shape: tensor.shape, reason: "expected [3, H, W] or [1, 3, H, W]")
    }
    if case .meanStd(let mean, let std) = normalization, mean.count != 3 || std.count != 3 {
      throw ImageError.invalidTensor(shape: tensor.shape, reason: "normalization needs 3 means and 3 stds")
    }
    self.init(validatedTensor: tensor, height: shape[1], width: shape[2], normalization, quantization)
  }

  /// A VQGAN decoder's [3, H, W] (or [1, 3, H, W]) output as pixels, by taming's rule
  /// (`init(tensor:)` with its defaults). The shape is the caller's contract: anything else traps.
  public init(
    vqganOutput tensor: Tensor, normalization: PixelNormalization = .taming, quantization: PixelQuantization = .truncate
  ) {
    do {
      try self.init(tensor: tensor, normalization: normalization, quantization: quantization)
    } catch {
      preconditionFailure("RGBImage(vqganOutput:): \(error)")
    }
  }

  private init(
    validatedTensor tensor: Tensor, height: Int, width: Int, _ normalization: PixelNormalization,
    _ quantization: PixelQuantization
  ) {
    let plane = width * height
    var pixels = [UInt8](repeating: 0, count: 3 * plane)
    let offset: Float = quantization == .roundHalfUp ? 0.5 : 0
    tensor.withUnsafeBufferPointer { input in
      pixels.withUnsafeMutableBufferPointer { out in
        for c in 0..<3 {
          for i in 0..<plane {
            let v = normalization.unitValue(input[c * plane + i], channel: c)
            // NaN fails both comparisons and ends at 0.
            let unit: Float = v > 0 ? (v < 1 ? v : 1) : 0
            out[3 * i + c] = UInt8(unit * 255 + offset)
          }
        }
      }
    }
    self.init(width: width, height: height, pixels: pixels)
  }
}

/// The VQGAN's input transform: shorter side resized to `resolution`, centre crop to
/// `resolution`², then normalised. Presets:
/// - `.taming(resolution:)`: bicubic resize, `[-1, 1]` as taming computes it. (taming's own data
///   loader resizes with albumentations/OpenCV, which Pillow's filters do not reproduce; images
///   already at the resolution are unaffected.)
/// - `.hfai(resolution:)`: HFAiLab clip-gen's `Resize(256)` (torchvision's default, bilinear),
///   `CenterCrop(256)`, `ToTensor()`, `Normalize((0.5,)*3, (0.5,)*3)`, reproduced exactly.
public struct VQGANImageTransform: Sendable, Equatable {
  public var resolution: Int
  public var filter: ResamplingFilter
  public var normalization: PixelNormalization
  /// The Pillow release whose resize pass order to reproduce.
  public var passOrder: ResamplingPassOrder

  public init(
    resolution: Int, filter: ResamplingFilter, normalization: PixelNormalization,
    passOrder: ResamplingPassOrder = .pillow13
  ) {
    precondition(resolution > 0, "VQGANImageTransform: resolution \(resolution)")
    self.resolution = resolution
    self.filter = filter
    self.normalization = normalization
    self.passOrder = passOrder
  }

  public static func taming(resolution: Int = 256) -> VQGANImageTransform {
    VQGANImageTransform(resolution: resolution, filter: .bicubic, normalization: .taming)
  }

  public static func hfai(resolution: Int = 256) -> VQGANImageTransform {
    VQGANImageTransform(resolution: resolution, filter: .bilinear, normalization: .halfMeanStd)
  }

  /// The resized and cropped 8-bit image the VQGAN encodes.
  public func cropped(_ image: RGBImage) -> RGBImage {
    image.resizedShorterSide(to: resolution, filter: filter, passOrder: passOrder)
      .centerCropped(width: resolution, height: resolution)
  }

  /// [3, resolution, resolution].
  public func callAsFunction(_ image: RGBImage) -> Tensor {
    cropped(image).tensor(normalization: normalization)
  }

  /// The image a decoder output shows, inverting this transform's normalization.
  public func image(from tensor: Tensor, quantization: PixelQuantization = .truncate) throws -> RGBImage {
    try RGBImage(tensor: tensor, normalization: normalization, quantization: quantization)
  }
}
