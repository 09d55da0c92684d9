// A wider random parity check against Pillow/torchvision than the committed fixtures. It runs
// only when CLIPGEN_IMAGE_SWEEP_DIR names a folder made by
//   python training/scripts/make_image_fixtures.py --sweep DIR [--count N]
// and prints the measured figures.
import Foundation
import Testing

@testable import ClipGenEngine

@Suite struct ImageParitySweepTests {
  struct Sweep: Decodable {
    struct Decode: Decodable {
      let file: String
      let width: Int
      let height: Int
      let format: String
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
      let expected: String
    }
    let decode: [Decode]
    let resize: [Resize]
    let clip: [CLIP]
  }

  static let directory = ProcessInfo.processInfo.environment["CLIPGEN_IMAGE_SWEEP_DIR"]

  @Test(.enabled(if: directory != nil))
  func sweepMatchesPillow() throws {
    let folder = URL(fileURLWithPath: try #require(Self.directory), isDirectory: true)
    let sweep = try JSONDecoder().decode(
      Sweep.self, from: Data(contentsOf: folder.appendingPathComponent("sweep.json")))
    func file(_ name: String) -> URL { folder.appendingPathComponent(name) }

    var worst: [String: Int] = ["png": 0, "jpeg": 0]
    var counts: [String: Int] = ["png": 0, "jpeg": 0]
    for entry in sweep.decode {
      let image = try RGBImage.load(contentsOf: file(entry.file))
      let expected = RGBImage(
        width: entry.width, height: entry.height, pixels: [UInt8](try Data(contentsOf: file(entry.file + ".rgb"))))
      let difference = maxSampleDifference(image, expected)
      #expect(difference == 0, "\(entry.file): max abs diff \(difference)")
      worst[entry.format] = max(worst[entry.format] ?? 0, difference)
      counts[entry.format, default: 0] += 1
    }

    var resizeWorst = 0
    for entry in sweep.resize {
      let input = try RGBImage.load(contentsOf: file(entry.input))
      let filter = try #require(ImageFixtures.filter(named: entry.filter))
      let expected = RGBImage(
        width: entry.width, height: entry.height, pixels: [UInt8](try Data(contentsOf: file(entry.expected))))
      let difference = maxSampleDifference(
        input.resized(width: entry.width, height: entry.height, filter: filter), expected)
      #expect(difference == 0, "\(entry.input) \(entry.filter) → \(entry.width)×\(entry.height): \(difference)")
      resizeWorst = max(resizeWorst, difference)
    }

    var clipWorst: Float = 0
    for entry in sweep.clip {
      let input = try RGBImage.load(contentsOf: file(entry.input))
      let bytes = try Data(contentsOf: file(entry.expected))
      let expected = bytes.withUnsafeBytes { raw in
        (0..<(bytes.count / 4)).map {
          Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
        }
      }
      let difference = maxFloatDifference(CLIPImagePreprocessor(size: entry.size).preprocess(input).scalars, expected)
      #expect(difference <= 1e-5, "\(entry.input) at \(entry.size): \(difference)")
      clipWorst = max(clipWorst, difference)
    }
    print(
      "image parity sweep: PNG \(counts["png"] ?? 0) files max abs diff \(worst["png"] ?? 0); "
        + "JPEG \(counts["jpeg"] ?? 0) files max abs diff \(worst["jpeg"] ?? 0); "
        + "resize \(sweep.resize.count) cases max abs diff \(resizeWorst); "
        + "CLIP transform \(sweep.clip.count) cases max abs diff \(clipWorst)")
  }
}
