// 8-bit RGB images: PNG/JPEG decoding, PNG encoding with text chunks, atomic PNG writes.
// The codecs live in the CImageIO C target (libpng, libjpeg-turbo); decoding reproduces
// Pillow's `Image.open(path).convert("RGB")` (see Sources/CImageIO/include/CImageIO.h).

import CImageIO
import Foundation

/// An 8-bit RGB image, rows top to bottom, channels interleaved (`pixels[(y * width + x) * 3 + c]`).
public struct RGBImage: Sendable, Equatable {
  /// Images whose width or height exceeds this are refused when decoding.
  public static let maximumSide = 16384
  /// Images with more pixels than this are refused from their header, before decoding: Pillow's
  /// decompression-bomb limit (`2 × Image.MAX_IMAGE_PIXELS`), so what Pillow opens, we open.
  public static let maximumPixels = 178_956_970

  public let width: Int
  public let height: Int
  /// `width * height * 3` bytes.
  public var pixels: [UInt8]

  /// An image over existing pixels; `pixels.count` must be `width * height * 3`.
  public init(width: Int, height: Int, pixels: [UInt8]) {
    precondition(width > 0 && height > 0, "RGBImage: size \(width)×\(height)")
    precondition(pixels.count == width * height * 3, "RGBImage: \(pixels.count) bytes for \(width)×\(height)")
    self.width = width
    self.height = height
    self.pixels = pixels
  }

  /// An image filled with one colour.
  public init(width: Int, height: Int, red: UInt8, green: UInt8, blue: UInt8) {
    precondition(width > 0 && height > 0, "RGBImage: size \(width)×\(height)")
    var pixels = [UInt8](repeating: 0, count: width * height * 3)
    for i in 0..<(width * height) {
      pixels[3 * i] = red
      pixels[3 * i + 1] = green
      pixels[3 * i + 2] = blue
    }
    self.init(width: width, height: height, pixels: pixels)
  }

  /// The (red, green, blue) sample at column `x`, row `y`.
  public func pixel(x: Int, y: Int) -> (red: UInt8, green: UInt8, blue: UInt8) {
    let i = (y * width + x) * 3
    return (pixels[i], pixels[i + 1], pixels[i + 2])
  }
}

// MARK: - Transparency

/// What decoding does with transparent pixels (PNG alpha channels and tRNS). One rule, the same
/// as the training kit's `training.data.flatten_alpha`: each channel c with opacity a becomes
/// `(c·a + bg·(255 − a) + 127) / 255` in integers, over white unless told otherwise — so a
/// transparent clip-art PNG conditions on what a person sees, not on the colours hidden under
/// its transparent pixels.
public enum AlphaRule: Sendable, Equatable {
  /// Composite over a background colour.
  case flatten(red: UInt8, green: UInt8, blue: UInt8)
  /// Keep the stored colours and drop alpha, as Pillow's and OpenAI CLIP's `convert("RGB")` do.
  case ignore

  /// Flatten onto white: what the engine and the training kit do by default.
  public static let `default` = AlphaRule.flatten(red: 255, green: 255, blue: 255)

  /// Parses `white`, `black`, `grey`/`gray`, `#rrggbb`, `r,g,b` or `ignore` (the name the CLI
  /// option takes); nil when it is none of those.
  public init?(parsing text: String) {
    let t = text.trimmingCharacters(in: .whitespaces).lowercased()
    switch t {
    case "white": self = .default
    case "black": self = .flatten(red: 0, green: 0, blue: 0)
    case "grey", "gray": self = .flatten(red: 128, green: 128, blue: 128)
    case "ignore", "none": self = .ignore
    default:
      var parts: [UInt8] = []
      if t.hasPrefix("#"), t.count == 7 {
        let hex = Array(t.dropFirst())
        for i in stride(from: 0, to: 6, by: 2) {
          guard let v = UInt8(String(hex[i...i + 1]), radix: 16) else { return nil }
          parts.append(v)
        }
      } else {
        let fields = t.split(separator: ",", omittingEmptySubsequences: false)
        guard fields.count == 3 else { return nil }
        for f in fields {
          guard let v = UInt8(f.trimmingCharacters(in: .whitespaces)) else { return nil }
          parts.append(v)
        }
      }
      self = .flatten(red: parts[0], green: parts[1], blue: parts[2])
    }
  }

  /// Applies the rule to RGB pixels with an opacity plane of `pixels.count / 3` bytes.
  func apply(to pixels: inout [UInt8], alpha: UnsafeBufferPointer<UInt8>) {
    guard case .flatten(let r, let g, let b) = self else { return }
    precondition(
      alpha.count * 3 == pixels.count, "AlphaRule: \(alpha.count) alpha bytes for \(pixels.count / 3) pixels")
    let background = [UInt32(r), UInt32(g), UInt32(b)]
    for i in 0..<alpha.count {
      let a = UInt32(alpha[i])
      if a == 255 { continue }
      for c in 0..<3 {
        pixels[3 * i + c] = UInt8((UInt32(pixels[3 * i + c]) * a + background[c] * (255 - a) + 127) / 255)
      }
    }
  }
}

// MARK: - Decoding

extension RGBImage {
  /// Reads and decodes a PNG or JPEG file (chosen by its first bytes, not its name).
  /// - Parameters:
  ///   - url: a file URL.
  ///   - maximumSide: images with a longer width or height are refused with `.tooLarge`.
  ///   - maximumPixels: images with more pixels are refused with `.tooManyPixels`.
  ///   - alpha: what transparent pixels become (default: flattened onto white).
  /// - Throws: `ImageError` naming `url.path`.
  public static func load(
    contentsOf url: URL, maximumSide: Int = RGBImage.maximumSide, maximumPixels: Int = RGBImage.maximumPixels,
    alpha: AlphaRule = .default
  ) throws -> RGBImage {
    precondition(maximumSide > 0, "RGBImage.load: maximumSide \(maximumSide)")
    let path = url.path
    guard url.isFileURL else { throw ImageError.unreadable(path: url.absoluteString, reason: "not a file URL") }
    var decoded = cimg_image()
    var error = cimg_error()
    let status = cimg_decode_file(
      path, Int32(clamping: maximumSide), Int64(max(1, maximumPixels)), 0, &decoded, &error)
    defer { cimg_image_release(&decoded) }
    try check(
      status, error: error, decoded: decoded, source: path, maximumSide: maximumSide, maximumPixels: maximumPixels)
    return RGBImage(taking: decoded, alpha: alpha)
  }

  /// Decodes a PNG or JPEG held in memory (chosen by its first bytes).
  /// - Parameters:
  ///   - data: the encoded file.
  ///   - source: how errors name the data (a path, a URL, "image data").
  ///   - maximumSide: images with a longer width or height are refused with `.tooLarge`.
  ///   - alpha: what transparent pixels become (default: flattened onto white).
  public init(
    encoded data: Data, source: String = "image data", maximumSide: Int = RGBImage.maximumSide,
    maximumPixels: Int = RGBImage.maximumPixels, alpha: AlphaRule = .default
  ) throws {
    let (decoded, _) = try Self.decode(
      data, source: source, maximumSide: maximumSide, maximumPixels: maximumPixels, text: false, alpha: alpha)
    self = decoded
  }

  /// Decodes a PNG held in memory; anything else (JPEG included) is refused with `.notAnImage`.
  public init(
    pngData data: Data, source: String = "PNG data", maximumSide: Int = RGBImage.maximumSide,
    alpha: AlphaRule = .default
  ) throws {
    guard Self.hasPNGSignature(data) else {
      throw ImageError.notAnImage(source: source, detail: "no PNG signature")
    }
    try self.init(encoded: data, source: source, maximumSide: maximumSide, alpha: alpha)
  }

  /// The text chunks (tEXt, zTXt, iTXt) of a PNG, in file order, before and after the image data.
  /// tEXt/zTXt are read as Latin-1, iTXt as UTF-8. The pixels are decoded too (libpng reaches the
  /// chunks after IDAT only through them), so a damaged image throws as `init(encoded:)` would.
  public static func readPNGText(_ data: Data, source: String = "PNG data") throws -> [(key: String, value: String)] {
    guard hasPNGSignature(data) else { throw ImageError.notAnImage(source: source, detail: "no PNG signature") }
    return try decode(data, source: source, maximumSide: maximumSide, text: true, alpha: .default).text
  }

  /// `readPNGText` on a file.
  public static func readPNGText(contentsOf url: URL) throws -> [(key: String, value: String)] {
    let data: Data
    do {
      data = try Data(contentsOf: url)
    } catch {
      throw ImageError.unreadable(path: url.path, reason: (error as NSError).localizedDescription)
    }
    return try readPNGText(data, source: url.path)
  }

  public static func hasPNGSignature(_ data: Data) -> Bool {
    data.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
  }

  private static func decode(
    _ data: Data, source: String, maximumSide: Int, maximumPixels: Int = RGBImage.maximumPixels, text: Bool,
    alpha: AlphaRule
  ) throws -> (
    image: RGBImage, text: [(key: String, value: String)]
  ) {
    precondition(maximumSide > 0, "RGBImage: maximumSide \(maximumSide)")
    var decoded = cimg_image()
    var error = cimg_error()
    let flags: Int32 = text ? Int32(CIMG_DECODE_TEXT) : 0
    let status = data.withUnsafeBytes { raw in
      cimg_decode(
        raw.bindMemory(to: UInt8.self).baseAddress, raw.count, Int32(clamping: maximumSide),
        Int64(max(1, maximumPixels)), flags,
        &decoded, &error)
    }
    defer { cimg_image_release(&decoded) }
    try check(
      status, error: error, decoded: decoded, source: source, maximumSide: maximumSide, maximumPixels: maximumPixels)
    var chunks: [(key: String, value: String)] = []
    for i in 0..<decoded.text_count {
      let entry = decoded.texts[i]
      let key = latin1String(UnsafeRawPointer(entry.key).assumingMemoryBound(to: UInt8.self), count: strlen(entry.key))
      let bytes = UnsafeBufferPointer(
        start: UnsafeRawPointer(entry.text).assumingMemoryBound(to: UInt8.self), count: entry.text_length)
      let value =
        entry.is_utf8 != 0
        ? String(decoding: bytes, as: UTF8.self) : latin1String(bytes.baseAddress, count: bytes.count)
      chunks.append((key: key, value: value))
    }
    return (RGBImage(taking: decoded, alpha: alpha), chunks)
  }

  /// Copies a successful decode's pixels (the caller still releases `decoded`).
  private init(taking decoded: cimg_image, alpha rule: AlphaRule) {
    let pixelCount = Int(decoded.width) * Int(decoded.height)
    var pixels = Array(UnsafeBufferPointer(start: decoded.pixels, count: pixelCount * 3))
    if let alpha = decoded.alpha {
      rule.apply(to: &pixels, alpha: UnsafeBufferPointer(start: alpha, count: pixelCount))
    }
    self.init(width: Int(decoded.width), height: Int(decoded.height), pixels: pixels)
  }

  private static func check(
    _ status: cimg_status, error: cimg_error, decoded: cimg_image, source: String, maximumSide: Int,
    maximumPixels: Int
  ) throws {
    let message = withUnsafeBytes(of: error.message) { raw in
      String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
    switch status {
    case CIMG_OK: return
    case CIMG_ERR_NOT_AN_IMAGE: throw ImageError.notAnImage(source: source, detail: message)
    case CIMG_ERR_TRUNCATED: throw ImageError.truncated(source: source, detail: message)
    case CIMG_ERR_TOO_LARGE:
      let (width, height) = (Int(decoded.width), Int(decoded.height))
      if width > 0, height > 0, width <= maximumSide, height <= maximumSide {
        throw ImageError.tooManyPixels(source: source, width: width, height: height, limit: maximumPixels)
      }
      throw ImageError.tooLarge(source: source, width: width, height: height, limit: maximumSide)
    case CIMG_ERR_UNSUPPORTED: throw ImageError.unsupported(source: source, detail: message)
    case CIMG_ERR_OUT_OF_MEMORY: throw ImageError.outOfMemory(source: source)
    case CIMG_ERR_IO: throw ImageError.unreadable(path: source, reason: message)
    default: throw ImageError.corrupt(source: source, message: message)
    }
  }

  private static func latin1String(_ bytes: UnsafePointer<UInt8>?, count: Int) -> String {
    guard let bytes, count > 0 else { return "" }
    var scalars = String.UnicodeScalarView()
    for i in 0..<count { scalars.append(Unicode.Scalar(bytes[i])) }
    return String(scalars)
  }
}

// MARK: - Encoding

extension RGBImage {
  /// Encodes the image as an 8-bit RGB PNG with the given text chunks, in order, before the image
  /// data. A value whose characters all fit in Latin-1 becomes a tEXt chunk, any other an
  /// uncompressed iTXt chunk (UTF-8), as Pillow's `PngInfo.add_text` decides. The bytes depend
  /// only on the pixels and the text (no timestamp; fixed zlib level and filter choice).
  /// - Throws: `ImageError.invalidText` for a key that is not a PNG keyword (1–79 Latin-1
  ///   printable characters, no leading, trailing or double spaces) or a value containing NUL.
  public func pngData(text: [(key: String, value: String)] = []) throws -> Data {
    // All keys and values, NUL-separated, in one buffer so one pointer scope covers them all.
    var storage: [UInt8] = []
    var spans: [(key: Int, value: Int, valueLength: Int, utf8: Bool)] = []
    for (key, value) in text {
      guard let keyBytes = Self.latin1Bytes(key) else {
        throw ImageError.invalidText(key: key, reason: "keywords must be Latin-1 characters")
      }
      guard !value.unicodeScalars.contains("\0") else {
        throw ImageError.invalidText(key: key, reason: "the value contains a NUL character")
      }
      let keyOffset = storage.count
      storage += keyBytes
      storage.append(0)
      let valueOffset = storage.count
      let latin1 = Self.latin1Bytes(value)
      let valueBytes = latin1 ?? Array(value.utf8)
      storage += valueBytes
      storage.append(0)
      spans.append((keyOffset, valueOffset, valueBytes.count, latin1 == nil))
      let valid = storage.withUnsafeBufferPointer { buffer in
        buffer.baseAddress!.advanced(by: keyOffset).withMemoryRebound(to: CChar.self, capacity: keyBytes.count + 1) {
          cimg_png_keyword_is_valid($0)
        }
      }
      guard valid != 0 else {
        throw ImageError.invalidText(
          key: key,
          reason: "not a PNG keyword (1–79 printable Latin-1 characters, no leading, trailing or double spaces)")
      }
    }

    var encoded: UnsafeMutablePointer<UInt8>? = nil
    var size = 0
    var error = cimg_error()
    let status = storage.withUnsafeBufferPointer { buffer -> cimg_status in
      let records: [cimg_text_input] = spans.map { span in
        let base = buffer.baseAddress!
        return cimg_text_input(
          key: UnsafeRawPointer(base.advanced(by: span.key)).assumingMemoryBound(to: CChar.self),
          text: base.advanced(by: span.value), text_length: span.valueLength, is_utf8: span.utf8 ? 1 : 0)
      }
      return pixels.withUnsafeBufferPointer { pixelBuffer in
        records.withUnsafeBufferPointer { recordBuffer in
          cimg_encode_png(
            pixelBuffer.baseAddress, Int32(width), Int32(height), recordBuffer.baseAddress, recordBuffer.count,
            &encoded, &size, &error)
        }
      }
    }
    defer { cimg_buffer_release(encoded) }
    guard status == CIMG_OK, let encoded else {
      let message = withUnsafeBytes(of: error.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
      throw ImageError.encodingFailed(reason: message)
    }
    return Data(bytes: encoded, count: size)
  }

  /// Writes the image as a PNG (see `pngData(text:)`) atomically: the bytes go to a temporary file
  /// in the same directory, which is flushed and then renamed over `url`, so readers never see a
  /// partial file and a failure leaves no file behind.
  /// - Throws: `ImageError.unwritable` naming the path and the reason (missing directory,
  ///   permission denied, no space left on device), or `ImageError.invalidText`.
  public func writePNG(to url: URL, text: [(key: String, value: String)] = []) throws {
    let data = try pngData(text: text)
    do {
      try writeAtomically(data, to: url)
    } catch let e as FileWriteError {
      throw ImageError.unwritable(path: e.path, reason: e.reason)
    }
  }

  /// The Latin-1 bytes of `string`, or nil when a character lies outside Latin-1.
  static func latin1Bytes(_ string: String) -> [UInt8]? {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(string.unicodeScalars.count)
    for scalar in string.unicodeScalars {
      guard scalar.value <= 0xFF else { return nil }
      bytes.append(UInt8(scalar.value))
    }
    return bytes
  }
}
