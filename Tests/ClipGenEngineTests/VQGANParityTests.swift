// The VQGAN against `training/reference/vqgan.py` (fixtures from `make_fixtures.py`, computed in
// float64): decoded images, encoded indices and latents, in taming's and HFAiLab's layouts; and the
// errors a user meets (bad indices, a missing tensor, a decoder-only checkpoint).
import Foundation
import Testing

@testable import ClipGenEngine

/// One layout's model directory and its expected outputs.
struct VQGANFixture {
  let model: URL
  let io: URL
  let layout: VQGANLayout

  static let taming = VQGANFixture(
    model: fixturesDirectory.appendingPathComponent("tiny_model/vqgan"),
    io: fixturesDirectory.appendingPathComponent("io/vqgan.safetensors"), layout: .taming)
  static let hfai = VQGANFixture(
    model: fixturesDirectory.appendingPathComponent("vqgan_hfai"),
    io: fixturesDirectory.appendingPathComponent("vqgan_hfai/io.safetensors"), layout: .hfai)

  static func of(_ layout: VQGANLayout) -> VQGANFixture { layout == .taming ? taming : hfai }

  /// Item `b` of a batched float tensor, without the batch dimension.
  static func item(_ t: Tensor, _ b: Int) -> Tensor {
    let shape = Array(t.shape.dropFirst())
    let n = shape.reduce(1, *)
    return Tensor(shape: shape, scalars: Array(t.scalars[(b * n)..<((b + 1) * n)]))
  }
}

@Suite struct VQGANParityTests {
  @Test(arguments: VQGANLayout.allCases, [true, false])
  func decodedImagesMatchReference(layout: VQGANLayout, winograd: Bool) throws {
    let fixture = VQGANFixture.of(layout)
    let vqgan = try VQGAN.load(directory: fixture.model, layout: layout, winograd: winograd)
    let io = try SafeTensorsFile(url: fixture.io)
    let (tokenShape, tokens) = try io.integers("decode_tokens")
    let expected = try io.tensor("decoded")
    let side = Int(Double(tokenShape[1]).squareRoot())
    // The nine-GEMM path is the slow reference path; one image checks it (debug builds are slow).
    let count = winograd ? tokenShape[0] : 1
    let grids = (0..<count).map { Array(tokens[($0 * tokenShape[1])..<(($0 + 1) * tokenShape[1])]) }
    let images = try vqgan.decodeBatch(grids, gridHeight: side, gridWidth: side)
    for (b, image) in images.enumerated() {
      let reference = VQGANFixture.item(expected, b)
      print(
        "VQGAN \(layout) winograd=\(winograd) decode[\(b)]: max|diff|/max|ref| = "
          + "\(image.maxAbsDifference(reference) / reference.maxAbs)")
      expectParity(image, reference, "\(layout) winograd=\(winograd) decoded image \(b)")
    }
    // The single-grid entry point agrees with the batch. Not bit for bit: OpenBLAS's thread count
    // is process-wide, and a VQGAN call in a test running beside this one switches it while this
    // one multiplies, which changes the summation order (seen: 1.4e-6 apart, 1 run in 5).
    let single = try vqgan.decode(indices: grids[count - 1], gridHeight: side, gridWidth: side)
    #expect(single.maxAbsDifference(images[count - 1]) <= 1e-5, "single and batch decodes differ")
  }

  @Test(arguments: VQGANLayout.allCases, [true, false])
  func encodedIndicesAndLatentsMatchReference(layout: VQGANLayout, winograd: Bool) throws {
    let fixture = VQGANFixture.of(layout)
    let vqgan = try VQGAN.load(directory: fixture.model, layout: layout, winograd: winograd)
    #expect(vqgan.hasEncoder)
    let io = try SafeTensorsFile(url: fixture.io)
    let images = try io.tensor("encode_image")
    let latents = try io.tensor("encode_latent")
    let (indexShape, indices) = try io.integers("encode_indices")
    for b in 0..<(winograd ? images.shape[0] : 1) {
      let (codes, latent) = try vqgan.encode(VQGANFixture.item(images, b))
      let reference = VQGANFixture.item(latents, b)
      print(
        "VQGAN \(layout) winograd=\(winograd) encode[\(b)]: latent max|diff|/max|ref| = "
          + "\(latent.maxAbsDifference(reference) / reference.maxAbs)")
      expectParity(latent, reference, "\(layout) winograd=\(winograd) latent \(b)")
      let expected = Array(indices[(b * indexShape[1])..<((b + 1) * indexShape[1])])
      #expect(codes == expected, "\(layout) indices \(b): \(zip(codes, expected).filter { $0 != $1 }.count) differ")
    }
  }

  @Test func groupNormEpsComesFromTheConfig() throws {
    // The fixtures make the eps observable: HFAiLab's weights decoded at taming's eps must miss.
    let file = try SafeTensorsFile(url: VQGANFixture.hfai.model.appendingPathComponent("model.safetensors"))
    var config = try JSONDecoder().decode(
      VQGANConfig.self, from: Data(contentsOf: VQGANFixture.hfai.model.appendingPathComponent("config.json")))
    config.normEps = 1e-6
    let wrongEps = try VQGAN(weights: file, config: config, layout: .hfai)
    let io = try SafeTensorsFile(url: VQGANFixture.hfai.io)
    let (_, tokens) = try io.integers("decode_tokens")
    let image = try wrongEps.decode(indices: Array(tokens[0..<256]), gridHeight: 16, gridWidth: 16)
    let reference = VQGANFixture.item(try io.tensor("decoded"), 0)
    #expect(image.maxAbsDifference(reference) > 1e-2 * reference.maxAbs)
  }

  @Test func layoutIsDetectedFromTensorNames() throws {
    let hfai = try VQGAN.load(directory: VQGANFixture.hfai.model)
    let io = try SafeTensorsFile(url: VQGANFixture.hfai.io)
    let (_, tokens) = try io.integers("decode_tokens")
    let image = try hfai.decode(indices: Array(tokens[0..<256]), gridHeight: 16, gridWidth: 16)
    expectParity(image, VQGANFixture.item(try io.tensor("decoded"), 0), "auto-detected hfai layout")
  }

  @Test func hfaiKeyMapCoversEveryTensorOfTheCheckpoint() throws {
    let file = try SafeTensorsFile(url: VQGANFixture.hfai.model.appendingPathComponent("model.safetensors"))
    let config = try JSONDecoder().decode(
      VQGANConfig.self, from: Data(contentsOf: VQGANFixture.hfai.model.appendingPathComponent("config.json")))
    let mapped = Set(VQGANLayout.hfaiNames(config).values.map { $0.split(separator: "#")[0] }.map(String.init))
    let stored = Set(file.tensorNames.filter { !$0.hasPrefix("discriminator.") })
    // Every stored tensor is read; every mapped name that the model reads exists (nin_shortcut
    // entries exist only where channels change, so the map may name a few absent ones).
    #expect(stored.subtracting(mapped).isEmpty, "unmapped: \(stored.subtracting(mapped).sorted())")
    let taming = try SafeTensorsFile(url: VQGANFixture.taming.model.appendingPathComponent("model.safetensors"))
    let view = VQGANLayout.hfai.weights(file, config: config)
    for name in taming.tensorNames {
      let a = try view.tensor(name)
      let b = try taming.tensor(name)
      #expect(a.scalars == b.scalars, "\(name) differs through the key map")
    }
  }

  @Test func nonSquareOddGridsAgreeAcrossConvolutionPaths() throws {
    // No fixture covers other grid shapes; the two convolution paths must still agree there.
    let winograd = try VQGAN.load(directory: VQGANFixture.taming.model)
    let plain = try VQGAN.load(directory: VQGANFixture.taming.model, winograd: false)
    var r = TestRandom(seed: 11)
    let grid = (0..<(7 * 11)).map { _ in Int(r.next() % 64) }
    let a = try winograd.decode(indices: grid, gridHeight: 7, gridWidth: 11)
    #expect(a.shape == [3, 28, 44])
    expectParity(a, try plain.decode(indices: grid, gridHeight: 7, gridWidth: 11), relative: 1e-5, "7×11 grid")
    let image = r.tensor([3, 32, 48])
    let (codesA, latentA) = try winograd.encode(image)
    let (codesB, latentB) = try plain.encode(image)
    #expect(latentA.shape == [16, 8, 12])
    expectParity(latentA, latentB, relative: 1e-5, "32×48 image latent")
    #expect(codesA == codesB)
  }

  @Test func outOfRangeIndexIsAnError() throws {
    let vqgan = try VQGAN.load(directory: VQGANFixture.taming.model)
    var grid = [Int](repeating: 3, count: 256)
    grid[17] = 64
    #expect(throws: VQGANError.indexOutOfRange(index: 64, position: 17, codebookSize: 64)) {
      try vqgan.decode(indices: grid, gridHeight: 16, gridWidth: 16)
    }
    grid[17] = -1
    #expect(throws: VQGANError.indexOutOfRange(index: -1, position: 17, codebookSize: 64)) {
      try vqgan.decode(indices: grid, gridHeight: 16, gridWidth: 16)
    }
    #expect(throws: VQGANError.gridMismatch(indices: 255, height: 16, width: 16)) {
      try vqgan.decode(indices: Array(repeating: 0, count: 255), gridHeight: 16, gridWidth: 16)
    }
  }

  @Test func missingTensorErrorNamesFileAndTensor() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let source = try SafeTensorsFile(url: VQGANFixture.taming.model.appendingPathComponent("model.safetensors"))
    let missing = "decoder.up.2.attn.0.k.weight"
    try #require(source.contains(missing))
    let kept = try source.tensorNames.filter { $0 != missing }.map { (name: $0, tensor: try source.tensor($0)) }
    let path = dir.appendingPathComponent("model.safetensors")
    try SafeTensorsWriter.write(kept, to: path)
    try FileManager.default.copyItem(
      at: VQGANFixture.taming.model.appendingPathComponent("config.json"), to: dir.appendingPathComponent("config.json")
    )
    #expect(throws: WeightError.missingTensor(file: path.path, tensor: missing)) {
      _ = try VQGAN.load(directory: dir)
    }
  }

  @Test func wrongShapeErrorNamesTheTensor() throws {
    let source = try SafeTensorsFile(url: VQGANFixture.taming.model.appendingPathComponent("model.safetensors"))
    let config = try JSONDecoder().decode(
      VQGANConfig.self, from: Data(contentsOf: VQGANFixture.taming.model.appendingPathComponent("config.json")))
    var wider = config
    wider.nEmbed = 128
    #expect(
      throws: WeightError.shapeMismatch(
        file: source.path, tensor: "quantize.embedding.weight", expected: [128, 16], found: [64, 16])
    ) {
      _ = try VQGAN(weights: source, config: wider)
    }
  }

  @Test func decoderOnlyCheckpointDecodesButCannotEncode() throws {
    let source = try SafeTensorsFile(url: VQGANFixture.taming.model.appendingPathComponent("model.safetensors"))
    let config = try JSONDecoder().decode(
      VQGANConfig.self, from: Data(contentsOf: VQGANFixture.taming.model.appendingPathComponent("config.json")))
    let decoderOnly = KeyMappedWeights(base: source) { name in
      name.hasPrefix("encoder.") || name.hasPrefix("quant_conv.") ? "absent/" + name : name
    }
    let vqgan = try VQGAN(weights: decoderOnly, config: config)
    #expect(!vqgan.hasEncoder)
    let io = try SafeTensorsFile(url: VQGANFixture.taming.io)
    let (_, tokens) = try io.integers("decode_tokens")
    let image = try vqgan.decode(indices: Array(tokens[0..<256]), gridHeight: 16, gridWidth: 16)
    expectParity(image, VQGANFixture.item(try io.tensor("decoded"), 0), "decoder-only decode")
    #expect(throws: VQGANError.encoderMissing(file: source.path)) {
      _ = try vqgan.encode(Tensor(zeros: [3, 64, 64]))
    }
  }

  @Test func encodeRejectsImagesOfTheWrongShape() throws {
    let vqgan = try VQGAN.load(directory: VQGANFixture.taming.model)
    #expect(throws: VQGANError.self) { _ = try vqgan.encode(Tensor(zeros: [3, 62, 64])) }
    #expect(throws: VQGANError.self) { _ = try vqgan.encode(Tensor(zeros: [1, 64, 64])) }
  }

  @Test func missingFilesAndBadConfigsAreErrors() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let config = dir.appendingPathComponent("config.json")
    #expect(throws: VQGANError.missingFile(config.path)) { _ = try VQGAN.load(directory: dir) }
    try FileManager.default.copyItem(
      at: VQGANFixture.taming.model.appendingPathComponent("model.safetensors"),
      to: dir.appendingPathComponent("model.safetensors"))
    try Data(
      #"{"embed_dim": 16, "n_embed": 64, "ch": 30, "ch_mult": [1, 1, 2], "num_res_blocks": 1, "resolution": 64, "z_channels": 16}"#
        .utf8
    )
    .write(to: config)
    #expect {
      _ = try VQGAN.load(directory: dir)
    } throws: { error in
      guard case VQGANError.invalidConfig(let file, let reason) = error else { return false }
      return file == config.path && reason.contains("multiple of 32")
    }
    try Data("{\"ch\": 32}".utf8).write(to: config)
    #expect {
      _ = try VQGAN.load(directory: dir)
    } throws: { error in
      guard case VQGANError.invalidConfig(let file, _) = error else { return false }
      return file == config.path
    }
  }

  @Test func configReadsTheCheckpointJSON() throws {
    let config = try JSONDecoder().decode(
      VQGANConfig.self, from: Data(contentsOf: VQGANFixture.hfai.model.appendingPathComponent("config.json")))
    #expect(config.chMult == [1, 1, 2])
    #expect(config.normEps == 1e-5)
    #expect(config.downsamplingFactor == 4)
    #expect(config.problems.isEmpty)
    let roundTrip = try JSONDecoder().decode(VQGANConfig.self, from: JSONEncoder().encode(config))
    #expect(roundTrip == config)
  }

  /// Sizes from a hostile config.json are named, never multiplied into an overflow (ch 2^40 times
  /// a multiplier of 2^40 trapped) or a shift past the word (65 levels).
  @Test func hostileSizesAreNamedNotComputed() {
    let base = VQGANConfig.f16x16384
    var huge = base
    huge.ch = 1 << 40
    huge.chMult = [1 << 40, 1]
    #expect(huge.problems.contains { $0.hasPrefix("ch is 1099511627776") })
    #expect(huge.problems.contains { $0.contains("ch·ch_mult") })
    var deep = base
    deep.chMult = [Int](repeating: 1, count: 65)
    #expect(deep.problems.contains { $0.hasPrefix("ch_mult levels is 65") })
    var wide = base
    wide.resolution = 1 << 30
    wide.nEmbed = 1 << 30
    #expect(wide.problems.count == 2)
    #expect(base.problems.isEmpty)
  }
}
