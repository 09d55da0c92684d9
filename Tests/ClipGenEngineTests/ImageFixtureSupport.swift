// Access to the Pillow/torchvision fixtures made by training/scripts/make_image_fixtures.py.
import Foundation

@testable import ClipGenEngine

/// The fixture folder and its manifest.
enum ImageFixtures {
  static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Fixtures/Image", isDirectory: true)

  struct Manifest: Decodable {
    struct Decode: Decodable {
      let file: String
      let width: Int
      let height: Int
      let expected: String
      let pilMode: String
      let maxAbsDiff: Int
    }
    struct Text: Decodable {
      let file: String
      let chunks: [[String]]
    }
    struct Resize: Decodable {
      let input: String
      let filter: String
      let width: Int
      let height: Int
      let expected: String
    }
    struct CLIP: Decodable {
      let input: String
      let size: Int
      let expectedCrop: String
      let expectedTensor: String?
    }
    struct VQGANInput: Decodable {
      let input: String
      let size: Int
      let hfai: String
      let taming: String
    }
    struct VQGANOutput: Decodable {
      let input: String
      let shape: [Int]
      let taming: String
      let hfai: String
    }
    struct Upscale: Decodable {
      let input: String
      let method: String
      let factor: Int
      let expected: String
    }
    let pillow: String
    let torchvisionChecked: Bool
    let decode: [Decode]
    let text: [Text]
    let resize: [Resize]
    let clip: [CLIP]
    let vqganInput: [VQGANInput]
    let vqganOutput: [VQGANOutput]
    let upscale: [Upscale]
  }

  static func manifest() throws -> Manifest {
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    return try decoder.decode(Manifest.self, from: Data(contentsOf: url("manifest.json")))
  }

  static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

  static func data(_ name: String) throws -> Data { try Data(contentsOf: url(name)) }

  /// Expected pixels stored raw (.rgb, with the size given) or as a PNG.
  static func pixels(_ name: String, width: Int, height: Int) throws -> RGBImage {
    if name.hasSuffix(".png") { return try RGBImage.load(contentsOf: url(name)) }
    return RGBImage(width: width, height: height, pixels: [UInt8](try data(name)))
  }

  /// Little-endian float32 values.
  static func floats(_ name: String) throws -> [Float] {
    let bytes = try data(name)
    return bytes.withUnsafeBytes { raw in
      (0..<(bytes.count / 4)).map {
        Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
      }
    }
  }

  static func filter(named name: String) -> ResamplingFilter? {
    switch name {
    case "box": return .box
    case "bilinear": return .bilinear
    case "hamming": return .hamming
    case "bicubic": return .bicubic
    case "lanczos": return .lanczos
    default: return nil
    }
  }
}

/// Largest absolute difference between two images' samples (Int.max when sizes differ).
func maxSampleDifference(_ a: RGBImage, _ b: RGBImage) -> Int {
  guard a.width == b.width && a.height == b.height else { return Int.max }
  var worst = 0
  for i in 0..<a.pixels.count { worst = max(worst, abs(Int(a.pixels[i]) - Int(b.pixels[i]))) }
  return worst
}

/// Largest absolute difference between equally long float arrays (infinity when lengths differ).
func maxFloatDifference(_ a: [Float], _ b: [Float]) -> Float {
  guard a.count == b.count else { return .infinity }
  var worst: Float = 0
  for i in 0..<a.count { worst = max(worst, abs(a[i] - b[i])) }
  return worst
}

/// Random test images from the shared SplitMix64 generator.
extension TestRandom {
  mutating func image(width: Int, height: Int) -> RGBImage {
    RGBImage(
      width: width, height: height, pixels: (0..<(width * height * 3)).map { _ in UInt8(truncatingIfNeeded: next()) })
  }
}

/// A fresh empty directory under the system's temporary directory.
func makeImageTestDirectory() throws -> URL {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("clipgen-image-tests-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}

/// A thread-safe counter for concurrency tests.
final class ConcurrentCounter: @unchecked Sendable {
  private let lock = NSLock()
  private var count = 0
  func increment() { lock.withLock { count += 1 } }
  var value: Int { lock.withLock { count } }
}
