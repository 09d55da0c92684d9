// Errors from reading, writing and converting images. Each names the file (or "image data" for
// bytes in memory) and says what is wrong in words a user can act on.

/// Why an image could not be read, written or converted.
public enum ImageError: Error, Equatable, Sendable, CustomStringConvertible {
  /// The file could not be opened or read (missing, a directory, no permission).
  case unreadable(path: String, reason: String)
  /// The bytes are neither a PNG nor a JPEG (or not the format the caller asked for).
  case notAnImage(source: String, detail: String)
  /// The data ends before the image does.
  case truncated(source: String, detail: String)
  /// libpng or libjpeg rejected the data; `message` is the library's own text.
  case corrupt(source: String, message: String)
  /// A side is longer than the limit (`RGBImage.maximumSide` unless the caller chose another).
  case tooLarge(source: String, width: Int, height: Int, limit: Int)
  /// More pixels than the limit (`RGBImage.maximumPixels` unless the caller chose another),
  /// refused from the header before any decoding: a decompression bomb, or a very large image.
  case tooManyPixels(source: String, width: Int, height: Int, limit: Int)
  /// A valid file the decoder does not handle (12-bit JPEG, unusual component counts).
  case unsupported(source: String, detail: String)
  /// Memory for the pixels could not be allocated.
  case outOfMemory(source: String)
  /// A PNG text chunk key or value that PNG cannot store.
  case invalidText(key: String, reason: String)
  /// A tensor that is not an image of the expected shape.
  case invalidTensor(shape: [Int], reason: String)
  /// PNG encoding failed inside libpng (out of memory, or a libpng limit).
  case encodingFailed(reason: String)
  /// The file could not be written; nothing was left at `path`.
  case unwritable(path: String, reason: String)

  public var description: String {
    switch self {
    case .unreadable(let path, let reason): return "cannot read \(path): \(reason)"
    case .notAnImage(let source, let detail): return "\(source): not a PNG or JPEG (\(detail))"
    case .truncated(let source, let detail): return "\(source): truncated (\(detail))"
    case .corrupt(let source, let message): return "\(source): corrupt data: \(message)"
    case .tooLarge(let source, let width, let height, let limit):
      return "\(source): image is \(width)×\(height) pixels; sides longer than \(limit) are refused"
    case .tooManyPixels(let source, let width, let height, let limit):
      return
        "\(source): image is \(width)×\(height) = \(width * height) pixels, more than the limit of \(limit) "
        + "(a decompression bomb?); raise it with --max-image-pixels if you trust the file"
    case .unsupported(let source, let detail): return "\(source): unsupported image: \(detail)"
    case .outOfMemory(let source): return "\(source): not enough memory to decode the image"
    case .invalidText(let key, let reason): return "PNG text \"\(key)\": \(reason)"
    case .invalidTensor(let shape, let reason): return "tensor of shape \(shape) is not an image: \(reason)"
    case .encodingFailed(let reason): return "PNG encoding failed: \(reason)"
    case .unwritable(let path, let reason): return "cannot write \(path): \(reason)"
    }
  }
}
