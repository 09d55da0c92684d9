// The one alpha rule, shared with the training kit: transparent pixels are flattened onto white
// (or a chosen colour) — byte for byte what `training.data.flatten_alpha` gives for the same
// files (Fixtures/alpha, written by training/scripts/alpha_fixtures.py).
import Foundation
import Testing

@testable import ClipGenEngine

@Suite struct AlphaRuleTests {
  struct Expected: Decodable {
    struct Image: Decodable {
      let file: String
      let mode: String
      let width: Int
      let height: Int
      let white: String
      let black: String
    }
    let images: [Image]
  }

  static let directory = fixturesDirectory.appendingPathComponent("alpha")

  static func bytes(hex: String) -> [UInt8] {
    let chars = Array(hex.utf8)
    return stride(from: 0, to: chars.count, by: 2).map {
      UInt8(String(decoding: chars[$0...$0 + 1], as: UTF8.self), radix: 16)!
    }
  }

  @Test func flattensLikeTheTrainingKit() throws {
    let expected = try JSONDecoder().decode(
      Expected.self, from: Data(contentsOf: Self.directory.appendingPathComponent("expected.json")))
    #expect(Set(expected.images.map(\.mode)).isSuperset(of: ["RGBA", "LA"]))
    #expect(expected.images.count >= 4)
    for image in expected.images {
      let url = Self.directory.appendingPathComponent(image.file)
      let white = try RGBImage.load(contentsOf: url)
      #expect(white.width == image.width && white.height == image.height)
      #expect(white.pixels == Self.bytes(hex: image.white), "\(image.file) (\(image.mode)) over white")
      let black = try RGBImage.load(contentsOf: url, alpha: .flatten(red: 0, green: 0, blue: 0))
      #expect(black.pixels == Self.bytes(hex: image.black), "\(image.file) (\(image.mode)) over black")
      // Transparency changes something in every fixture, so the rule is really applied.
      let ignored = try RGBImage.load(contentsOf: url, alpha: .ignore)
      #expect(ignored != white, "\(image.file): flattening changed nothing")
    }
  }

  @Test func parsesTheOptionValues() {
    #expect(AlphaRule(parsing: "white") == .default)
    #expect(AlphaRule(parsing: "black") == .flatten(red: 0, green: 0, blue: 0))
    #expect(AlphaRule(parsing: "#ff8000") == .flatten(red: 255, green: 128, blue: 0))
    #expect(AlphaRule(parsing: "1, 2,3") == .flatten(red: 1, green: 2, blue: 3))
    #expect(AlphaRule(parsing: "ignore") == .ignore)
    for bad in ["", "#ff80", "#gg0000", "1,2", "1,2,300", "purple"] {
      #expect(AlphaRule(parsing: bad) == nil, "\(bad)")
    }
  }

  @Test func anOpaqueImageIsUnchanged() throws {
    let url = ImageFixtures.url("png_rgb8.png")
    #expect(try RGBImage.load(contentsOf: url) == RGBImage.load(contentsOf: url, alpha: .ignore))
  }

  /// `clipgen generate --image` conditions on the flattened picture: a transparent PNG gives the
  /// same image as its flattened twin; a bad `--alpha-background` is refused by name.
  @Test func generateConditionsOnTheFlattenedImage() throws {
    let exe = try clipgenExecutable()
    let dir = try temporaryDirectory()
    let rgba = Self.directory.appendingPathComponent("rgba.png")
    let twin = dir.appendingPathComponent("flat.png")
    try RGBImage.load(contentsOf: rgba).writePNG(to: twin)
    func generate(_ image: URL, _ name: String, _ flags: [String] = []) throws -> [UInt8] {
      let out = dir.appendingPathComponent(name)
      let r = try run(
        exe,
        [
          "generate", "--image", image.path, "--model", fixturesDirectory.appendingPathComponent("tiny_model").path,
          "--seed", "3", "--temperature", "0", "--out", out.path, "--quiet",
        ] + flags)
      #expect(r.status == 0, "\(r.stderr)")
      return try RGBImage.load(contentsOf: out.appendingPathComponent("image-00.png")).pixels
    }
    let flattened = try generate(rgba, "rgba")
    #expect(flattened == (try generate(twin, "twin")))
    let bad = try run(exe, ["generate", "x", "--alpha-background", "purple"])
    #expect(bad.status != 0 && bad.stderr.contains("--alpha-background"))
  }
}
