// PNG/JPEG decoding against Pillow's `convert("RGB")`, PNG writing, text chunks and error cases.
import Foundation
import Testing

@testable import ClipGenEngine

/// Chunk types of a PNG in order (test helper; assumes a well-formed file).
private func pngChunkTypes(_ data: Data) -> [String] {
  var types: [String] = []
  var offset = 8
  let bytes = [UInt8](data)
  while offset + 8 <= bytes.count {
    let length = bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | Int($1) }
    types.append(String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self))
    offset += 12 + length
  }
  return types
}

@Suite struct ImageDecodingTests {
  /// With `alpha: .ignore` (OpenAI CLIP's path), every fixture decodes to exactly the bytes
  /// Pillow's `Image.open(f).convert("RGB")` gives
  /// (PNG: all bit depths and colour types, interlaced, tRNS, short palettes; JPEG: 4:2:0, 4:2:2,
  /// 4:4:4, progressive, optimised, grayscale, CMYK). The tolerance per file is in the manifest: 0.
  @Test func decodesLikePillow() throws {
    let manifest = try ImageFixtures.manifest()
    #expect(manifest.decode.count >= 30)
    for entry in manifest.decode {
      let expected = try ImageFixtures.pixels(entry.expected, width: entry.width, height: entry.height)
      let fromFile = try RGBImage.load(contentsOf: ImageFixtures.url(entry.file), alpha: .ignore)
      let fromMemory = try RGBImage(encoded: ImageFixtures.data(entry.file), source: entry.file, alpha: .ignore)
      #expect(fromFile == fromMemory, "\(entry.file): file and memory decodes differ")
      #expect(fromFile.width == entry.width && fromFile.height == entry.height, "\(entry.file): size")
      let difference = maxSampleDifference(fromFile, expected)
      #expect(difference <= entry.maxAbsDiff, "\(entry.file) (PIL mode \(entry.pilMode)): max abs diff \(difference)")
    }
  }

  /// The C decoders keep no global state: many threads decoding at once agree with one.
  @Test func decodesConcurrently() throws {
    let names = ["png_rgb8_interlaced.png", "png_rgba16.png", "jpeg_progressive.jpg", "jpeg_cmyk.jpg"]
    let inputs = try names.map { try ImageFixtures.data($0) }
    let expected = try inputs.map { try RGBImage(encoded: $0) }
    let truncated = inputs.map { $0.prefix($0.count / 2) }
    let failures = ConcurrentCounter()
    DispatchQueue.concurrentPerform(iterations: 64) { i in
      let k = i % inputs.count
      if (try? RGBImage(encoded: inputs[k])) != expected[k] { failures.increment() }
      if (try? RGBImage(encoded: truncated[k])) != nil { failures.increment() }
    }
    #expect(failures.value == 0)
  }

  @Test func pngInitRefusesJPEG() throws {
    let jpeg = try ImageFixtures.data("jpeg_420.jpg")
    #expect(throws: ImageError.notAnImage(source: "PNG data", detail: "no PNG signature")) {
      try RGBImage(pngData: jpeg)
    }
    #expect(try RGBImage(pngData: ImageFixtures.data("png_rgb8.png")).width == 13)
  }

  @Test func readsTextChunksPillowWrote() throws {
    let manifest = try ImageFixtures.manifest()
    for entry in manifest.text {
      let chunks = try RGBImage.readPNGText(ImageFixtures.data(entry.file), source: entry.file)
      #expect(chunks.map { [$0.key, $0.value] } == entry.chunks, "\(entry.file)")
    }
  }
}

@Suite struct ImageEncodingTests {
  let parameters = #"{"prompt": "a red circle", "seed": 7, "temperature": 1.0}"#

  @Test func roundTripsPixelsAndText() throws {
    var random = TestRandom(seed: 3)
    let image = random.image(width: 37, height: 23)
    let text: [(key: String, value: String)] = [
      ("parameters", parameters), ("Comment", "café, 25 °C"), ("prompt", "一只猫 — a cat 🐱"), ("empty", ""),
    ]
    let data = try image.pngData(text: text)
    #expect(try RGBImage(pngData: data) == image)
    let read = try RGBImage.readPNGText(data)
    #expect(read.map(\.key) == text.map(\.key))
    #expect(read.map(\.value) == text.map(\.value))
    // Latin-1 values are tEXt, others iTXt; all before the pixels; no timestamp.
    #expect(pngChunkTypes(data) == ["IHDR", "tEXt", "tEXt", "iTXt", "tEXt", "IDAT", "IEND"])
  }

  @Test func encodingIsDeterministic() throws {
    var random = TestRandom(seed: 4)
    let image = random.image(width: 64, height: 48)
    let first = try image.pngData(text: [("parameters", parameters)])
    let second = try image.pngData(text: [("parameters", parameters)])
    #expect(first == second)
    #expect(!pngChunkTypes(first).contains("tIME"))
  }

  @Test func rejectsKeysPNGCannotStore() throws {
    let image = RGBImage(width: 2, height: 2, red: 1, green: 2, blue: 3)
    for key in ["", " lead", "trail ", "double  space", String(repeating: "k", count: 80), "ключ", "tab\tkey"] {
      #expect(throws: ImageError.self, "key \(key.debugDescription)") { try image.pngData(text: [(key, "v")]) }
    }
    #expect(throws: ImageError.self) { try image.pngData(text: [("k", "nul\u{0}inside")]) }
    #expect(try image.pngData(text: [(String(repeating: "k", count: 79), "ok"), ("Größe", "ok")]).count > 0)
  }

  @Test func writesAtomicallyAndOverwrites() throws {
    let directory = try makeImageTestDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let url = directory.appendingPathComponent("out.png")
    let first = RGBImage(width: 3, height: 2, red: 255, green: 0, blue: 0)
    let second = RGBImage(width: 5, height: 4, red: 0, green: 0, blue: 255)
    try first.writePNG(to: url, text: [("parameters", parameters)])
    try second.writePNG(to: url, text: [("parameters", "second")])
    #expect(try RGBImage.load(contentsOf: url) == second)
    #expect(try RGBImage.readPNGText(contentsOf: url).map(\.value) == ["second"])
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["out.png"])
    let permissions = try FileManager.default.attributesOfItem(atPath: url.path)[.posixPermissions] as? Int
    #expect(permissions == 0o644)
  }

  @Test func unwritablePathsNameThePath() throws {
    let directory = try makeImageTestDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let image = RGBImage(width: 2, height: 2, red: 9, green: 9, blue: 9)
    let missing = directory.appendingPathComponent("no/such/dir/out.png")
    let blocker = directory.appendingPathComponent("file")
    try Data("x".utf8).write(to: blocker)
    let underFile = blocker.appendingPathComponent("out.png")
    for url in [missing, underFile] {
      do {
        try image.writePNG(to: url)
        Issue.record("writing \(url.path) should fail")
      } catch let error as ImageError {
        guard case .unwritable(let path, let reason) = error else {
          Issue.record("unexpected \(error)")
          continue
        }
        #expect(path == url.path)
        #expect(error.description.contains(url.path))
        #expect(
          reason == "cannot create a temporary file beside it: No such file or directory"
            || reason == "cannot create a temporary file beside it: Not a directory", "\(reason)")
      }
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["file"])
  }
}

@Suite struct ImageErrorTests {
  /// A full disk. Needs a small filesystem, so it runs only when CLIPGEN_FULL_DISK_DIR names a
  /// directory on one (e.g. `mount -t tmpfs -o size=64k tmpfs /tmp/full`).
  @Test(.enabled(if: ProcessInfo.processInfo.environment["CLIPGEN_FULL_DISK_DIR"] != nil))
  func fullDiskNamesThePath() throws {
    let directory = URL(fileURLWithPath: try #require(ProcessInfo.processInfo.environment["CLIPGEN_FULL_DISK_DIR"]))
    let url = directory.appendingPathComponent("too-big.png")
    var random = TestRandom(seed: 12)
    let image = random.image(width: 512, height: 512)  // ~790 KB of noise
    #expect(throws: ImageError.unwritable(path: url.path, reason: "write failed: No space left on device")) {
      try image.writePNG(to: url)
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
  }

  @Test func truncatedPNGAtEveryLengthThrowsTruncated() throws {
    let data = try ImageFixtures.data("png_rgb8_interlaced.png")
    let iendStart = data.count - 12
    for length in 4..<iendStart {
      do {
        _ = try RGBImage(encoded: data.prefix(length), source: "cut.png")
        Issue.record("\(length) of \(data.count) bytes decoded")
      } catch let error as ImageError {
        guard case .truncated(let source, _) = error else {
          Issue.record("\(length) bytes: \(error)")
          continue
        }
        #expect(source == "cut.png")
      }
    }
    // A missing IEND after complete image data is forgiven, as Pillow forgives it.
    let expected = try RGBImage(encoded: data)
    #expect(try RGBImage(encoded: data.prefix(iendStart)) == expected)
  }

  @Test func truncatedJPEGThrowsTruncated() throws {
    for name in ["jpeg_420.jpg", "jpeg_progressive.jpg", "jpeg_cmyk.jpg"] {
      let data = try ImageFixtures.data(name)
      let full = try RGBImage(encoded: data)
      // Every 7th length, and the file without its EOI marker, which Pillow also calls truncated.
      for length in Array(stride(from: 3, to: data.count - 2, by: 7)) + [data.count - 2] {
        do {
          _ = try RGBImage(encoded: data.prefix(length), source: name)
          Issue.record("\(name): \(length) of \(data.count) bytes decoded")
        } catch let error as ImageError {
          guard case .truncated = error else {
            Issue.record("\(name) at \(length): \(error)")
            continue
          }
          #expect(error.description.hasPrefix("\(name): truncated"))
        }
      }
      // Bytes after EOI are ignored.
      #expect(try RGBImage(encoded: data + Data([0, 1, 2])) == full, "\(name) with trailing bytes")
    }
  }

  @Test func namedErrorsForBadInput() throws {
    var random = TestRandom(seed: 9)
    let noise = Data((0..<300).map { _ in UInt8(truncatingIfNeeded: random.next() | 1) })
    #expect(
      throws: ImageError.notAnImage(
        source: "noise.bin",
        detail: "starts with " + noise.prefix(4).map { String(format: "%02X", $0) }.joined(separator: " "))
    ) {
      try RGBImage(encoded: noise, source: "noise.bin")
    }
    do {
      _ = try RGBImage(encoded: noise, source: "noise.bin")
    } catch {
      #expect("\(error)".hasPrefix("noise.bin: not a PNG or JPEG"))
    }
    #expect(throws: ImageError.notAnImage(source: "empty.png", detail: "the data is empty")) {
      try RGBImage(encoded: Data(), source: "empty.png")
    }

    // A damaged IDAT checksum, then damaged compressed data: libpng's and zlib's words.
    let png = try ImageFixtures.data("png_rgb8.png")
    let idat = try #require(png.range(of: Data("IDAT".utf8)))
    let idatLength = png[(idat.lowerBound - 4)..<idat.lowerBound].reduce(0) { $0 << 8 | Int($1) }
    var badCRC = png
    badCRC[idat.upperBound + idatLength] ^= 0xFF
    #expect(throws: ImageError.corrupt(source: "crc.png", message: "IDAT: CRC error")) {
      try RGBImage(encoded: badCRC, source: "crc.png")
    }
    #expect(
      ImageError.corrupt(source: "crc.png", message: "IDAT: CRC error").description
        == "crc.png: corrupt data: IDAT: CRC error")
    var badData = png
    badData[idat.upperBound + 5] ^= 0xFF
    do {
      _ = try RGBImage(encoded: badData, source: "flipped.png")
      Issue.record("corrupt PNG decoded")
    } catch let error as ImageError {
      guard case .corrupt(_, let message) = error else {
        Issue.record("flipped.png: \(error)")
        return
      }
      #expect(message.hasPrefix("IDAT: "))
      #expect(error.description.hasPrefix("flipped.png: corrupt data: IDAT: "))
    }

    // JPEG with its SOF marker overwritten.
    var jpeg = try ImageFixtures.data("jpeg_444.jpg")
    let sof = try #require(jpeg.range(of: Data([0xFF, 0xC0])))
    jpeg[sof.lowerBound + 1] = 0xC3  // lossless process: libjpeg refuses it
    #expect(throws: ImageError.self) { try RGBImage(encoded: jpeg, source: "bad.jpg") }
    do {
      _ = try RGBImage(encoded: jpeg, source: "bad.jpg")
    } catch let error as ImageError {
      switch error {
      case .corrupt, .unsupported: break
      default: Issue.record("bad.jpg: \(error)")
      }
    }
  }

  @Test func refusesOversizedImages() throws {
    // A PNG header declaring 16385×2 pixels (no pixel data needed to refuse it).
    let image = RGBImage(width: 1, height: 2, red: 0, green: 0, blue: 0)
    var png = try image.pngData()
    let width = UInt32(RGBImage.maximumSide + 1)
    for (i, shift) in [24, 16, 8, 0].enumerated() { png[16 + i] = UInt8(truncatingIfNeeded: width >> UInt32(shift)) }
    // Fix the IHDR CRC so only the size is wrong.
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in png[12..<29] {
      crc ^= UInt32(byte)
      for _ in 0..<8 { crc = (crc >> 1) ^ (0xEDB8_8320 & (0 &- (crc & 1))) }
    }
    crc ^= 0xFFFF_FFFF
    for (i, shift) in [24, 16, 8, 0].enumerated() { png[29 + i] = UInt8(truncatingIfNeeded: crc >> UInt32(shift)) }
    #expect(throws: ImageError.tooLarge(source: "wide.png", width: 16385, height: 2, limit: 16384)) {
      try RGBImage(encoded: png, source: "wide.png")
    }
    let url = ImageFixtures.url("jpeg_420.jpg")
    #expect(throws: ImageError.tooLarge(source: url.path, width: 37, height: 23, limit: 30)) {
      try RGBImage.load(contentsOf: url, maximumSide: 30)
    }
    #expect(
      ImageError.tooLarge(source: "wide.png", width: 16385, height: 2, limit: 16384).description
        == "wide.png: image is 16385×2 pixels; sides longer than 16384 are refused")
  }

  /// A small file whose header declares a huge image (a decompression bomb) is refused from the
  /// header, before any pixel memory is allocated: here a JPEG patched to claim 16384×16384.
  @Test func decompressionBombsAreRefusedFromTheHeader() throws {
    var jpeg = [UInt8](try ImageFixtures.data("jpeg_420.jpg"))
    let sof = try #require(
      (0..<(jpeg.count - 9)).first { jpeg[$0] == 0xFF && (jpeg[$0 + 1] == 0xC0 || jpeg[$0 + 1] == 0xC2) })
    jpeg[sof + 5] = 0x40  // height 0x4000
    jpeg[sof + 6] = 0x00
    jpeg[sof + 7] = 0x40  // width 0x4000
    jpeg[sof + 8] = 0x00
    let started = Date()
    #expect(throws: ImageError.tooManyPixels(source: "bomb.jpg", width: 16384, height: 16384, limit: 178_956_970)) {
      try RGBImage(encoded: Data(jpeg), source: "bomb.jpg")
    }
    #expect(Date().timeIntervalSince(started) < 1)
    // The limit is the caller's to raise or lower.
    let url = ImageFixtures.url("jpeg_420.jpg")
    #expect(throws: ImageError.tooManyPixels(source: url.path, width: 37, height: 23, limit: 800)) {
      try RGBImage.load(contentsOf: url, maximumPixels: 800)
    }
    #expect(try RGBImage.load(contentsOf: url, maximumPixels: 37 * 23).width == 37)
  }

  @Test func unreadableFilesNameThePath() throws {
    let missing = URL(fileURLWithPath: "/nonexistent/clipgen/picture.png")
    #expect(throws: ImageError.unreadable(path: missing.path, reason: "No such file or directory")) {
      try RGBImage.load(contentsOf: missing)
    }
    #expect(throws: ImageError.self) { try RGBImage.load(contentsOf: ImageFixtures.directory) }
  }

  /// Random byte damage never crashes and always ends in an ImageError or an image.
  @Test func damagedFilesFailCleanly() throws {
    var random = TestRandom(seed: 11)
    for name in ["png_palette2_interlaced.png", "png_rgba16.png", "jpeg_420.jpg", "jpeg_progressive.jpg"] {
      let original = try ImageFixtures.data(name)
      for _ in 0..<150 {
        var damaged = original
        for _ in 0..<3 {
          let at = Int(random.next() % UInt64(damaged.count - 8)) + 8
          damaged[at] = UInt8(truncatingIfNeeded: random.next())
        }
        do {
          let image = try RGBImage(encoded: damaged, source: name)
          #expect(image.pixels.count == image.width * image.height * 3)
        } catch is ImageError {
        }
      }
    }
  }
}
