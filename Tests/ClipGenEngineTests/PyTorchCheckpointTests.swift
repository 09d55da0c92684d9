// PyTorch checkpoints read natively: every dtype and strided view torch writes, the legacy
// format, TorchScript archives, and the published layouts (HFAiLab GPT and VQGAN, taming's
// Lightning .ckpt, OpenAI-named CLIP) loaded into the engine's models and compared with the
// PyTorch reference. Fixtures: training/tools/make_checkpoints.py.
import Foundation
import Testing

@testable import ClipGenConvert
@testable import ClipGenEngine

let checkpointFixtures = fixturesDirectory.appendingPathComponent("checkpoints")

func checkpoint(_ name: String, _ selection: PyTorchCheckpoint.StateDictSelection = .automatic) throws
  -> PyTorchCheckpoint
{
  try PyTorchCheckpoint(url: checkpointFixtures.appendingPathComponent(name), stateDict: selection)
}

/// Rows `b` of a `[B, …]` tensor as `[1, …]`.
func batchItem(_ t: Tensor, _ b: Int) -> Tensor {
  let n = t.count / t.shape[0]
  return Tensor(shape: [1] + t.shape.dropFirst(), scalars: Array(t.scalars[(b * n)..<((b + 1) * n)]))
}

@Suite struct PyTorchCheckpointTests {
  let expected: SafeTensorsFile
  let io: SafeTensorsFile

  init() throws {
    expected = try SafeTensorsFile(url: checkpointFixtures.appendingPathComponent("dtypes.safetensors"))
    io = try SafeTensorsFile(url: checkpointFixtures.appendingPathComponent("io.safetensors"))
  }

  // MARK: The reader

  @Test func everyDTypeAndStridedViewMatchesPyTorch() throws {
    let ckpt = try checkpoint("dtypes.pt")
    #expect(ckpt.format == .zip)
    #expect(ckpt.stateDictKey == nil)
    for name in expected.tensorNames where !name.hasPrefix("legacy.") {
      let t = try ckpt.tensor(name)
      let e = try expected.tensor(name)
      #expect(t.shape == e.shape, "\(name)")
      #expect(t.scalars == e.scalars, "\(name): \(t.scalars.prefix(6)) vs \(e.scalars.prefix(6))")
    }
    let transposed = try #require(ckpt.record(of: "transposed"))
    #expect(!transposed.isContiguous && transposed.strides == [1, 6])
    let sliced = try #require(ckpt.record(of: "sliced"))
    #expect(sliced.storageOffset == 9 && sliced.strides == [7, 1])
    #expect(ckpt.record(of: "expanded")?.strides == [0, 1])
    #expect(ckpt.record(of: "shared_a")?.storage.key == ckpt.record(of: "shared_b")?.storage.key)
    #expect(ckpt.record(of: "param")?.isParameter == true)
    #expect(ckpt.record(of: "f16")?.dtype == .f16 && ckpt.record(of: "bf16")?.dtype == .bf16)
    #expect(ckpt.shape(of: "scalar") == [])
    #expect(ckpt.shape(of: "empty") == [0, 3])
  }

  /// An expanded view (stride 0) of 2^40 rows over a 4-float storage — a valid PyTorch file of
  /// 508 bytes (training/scripts/hostile_checkpoints.py) — is refused before anything is
  /// allocated, naming the tensor; it used to be materialised.
  @Test func expandedViewsCannotAskForUnboundedMemory() throws {
    let url = checkpointFixtures.appendingPathComponent("hostile/expanded.pt")
    let ckpt = try PyTorchCheckpoint(url: url)
    #expect(ckpt.shape(of: "w") == [1 << 40, 4])
    #expect {
      try ckpt.tensor("w")
    } throws: { e in
      "\(e)".contains("expanded.pt") && "\(e)".contains("'w'") && "\(e)".contains("repeated elements are refused")
    }
  }

  @Test func unsupportedDTypeIsAnErrorNamingFileAndTensor() throws {
    let ckpt = try checkpoint("dtypes.pt")
    #expect(ckpt.record(of: "complex")?.storage.className == "ComplexFloatStorage")
    do {
      _ = try ckpt.tensor("complex")
      Issue.record("a complex tensor was read")
    } catch let e as WeightError {
      #expect(e == .unsupportedDType(file: ckpt.path, tensor: "complex", dtype: "ComplexFloatStorage"))
      #expect(e.description.contains("dtypes.pt"))
    }
  }

  @Test func zip64RecordsAreRead() throws {
    let ckpt = try checkpoint("zip64.pt")
    #expect(ckpt.format == .zip)
    #expect(try ckpt.tensor("a").scalars == [0, 1, 2, 3, 4, 5])
    #expect(try ckpt.tensor("b").scalars == [1, 1, 1, 1])
  }

  @Test func legacyFormatIsRead() throws {
    let ckpt = try checkpoint("legacy.pt")
    #expect(ckpt.format == .legacy)
    #expect(Set(ckpt.tensorNames) == ["w", "h", "t"])
    for name in ["w", "h", "t"] {
      let t = try ckpt.tensor(name)
      let e = try expected.tensor("legacy." + name)
      #expect(t.shape == e.shape && t.scalars == e.scalars, "\(name)")
    }
  }

  @Test func torchScriptArchiveExposesModuleAttributesAsStateDictNames() throws {
    let script = try checkpoint("clip_openai_torchscript.pt")
    let plain = try checkpoint("clip_openai.pt")
    #expect(script.format == .torchScript)
    #expect(plain.format == .zip)
    // Every tensor of the state dict is there under the same name, with the same values.
    for name in plain.tensorNames {
      #expect(try script.tensor(name).scalars == plain.tensor(name).scalars, "\(name)")
    }
    // Plus the int attributes OpenAI's JIT models carry.
    #expect(try script.tensor("input_resolution").scalars == [32])
    #expect(script.tensorNames.contains("vocab_size"))
    // The code records are deflated; the zip reader inflates them.
    let zip = try ZipArchive(path: script.path, file: try MappedFile(path: script.path))
    let code = try #require(zip.entries.first { $0.name.hasSuffix("code/__torch__/reference/clip.py") })
    #expect(code.method == 8)
    let text = String(decoding: try zip.contents(of: code), as: UTF8.self)
    #expect(text.contains("class CLIP"))
  }

  @Test func lightningCheckpointKeepsTrainingStateOpaque() throws {
    let ckpt = try checkpoint("vqgan_taming.ckpt")
    #expect(ckpt.stateDictKey == "state_dict")
    #expect(ckpt.tensorNames.contains("loss.discriminator.main.0.weight"))
    guard case .int(7)? = ckpt.root["epoch"] else {
      Issue.record("epoch: \(String(describing: ckpt.root["epoch"]))")
      return
    }
    let hyper = try #require(ckpt.root["hyper_parameters"])
    guard case .object(let o) = hyper else {
      Issue.record("hyper_parameters is \(hyper.summary)")
      return
    }
    #expect(o.className == "pytorch_lightning.utilities.parsing.AttributeDict")
    guard case .int(64)? = hyper["n_embed"], case .list(let mult)? = hyper["ddconfig"]?["ch_mult"] else {
      Issue.record("hyper_parameters: \(hyper.summary)")
      return
    }
    #expect(mult.count == 2)
    // A numpy scalar among the callbacks is an opaque object.
    let score = ckpt.root["callbacks"]?["ModelCheckpoint"]?["best_model_score"]
    #expect(score?.summary.hasPrefix("numpy") == true)
  }

  @Test func stateDictCanBeChosenAndPrefixStripped() throws {
    let url = checkpointFixtures.appendingPathComponent("vqgan_taming.ckpt")
    let loss = try PyTorchCheckpoint(url: url, stateDict: .key("state_dict"), stripPrefix: "loss.")
    #expect(loss.tensorNames.contains("discriminator.main.0.weight"))
    #expect(loss.strippedPrefix == "loss.")
    #expect(throws: CheckpointError.self) { try PyTorchCheckpoint(url: url, stateDict: .key("nope")) }
    // The top level: nested dicts add their key to the names.
    let all = try PyTorchCheckpoint(url: url, stateDict: .root)
    #expect(all.tensorNames.contains("state_dict.quantize.embedding.weight"))
  }

  // MARK: Published layouts into the engine's models

  @Test func hfaiGPTCheckpointHoldsTinyModelWeightsAndDecodesTheReferenceTokens() throws {
    let ckpt = try checkpoint("gpt_hfai.pt")
    #expect(ckpt.stateDictKey == "model")
    #expect(ckpt.tensorNames.contains("blocks.0.mask"))
    #expect(ckpt.record(of: "head.weight")?.isContiguous == false)
    let reference = try SafeTensorsFile(
      url: fixturesDirectory.appendingPathComponent("tiny_model/gpt/model.safetensors"))
    for name in reference.tensorNames {
      #expect(try ckpt.tensor(name).scalars == reference.tensor(name).scalars, "\(name)")
    }
    let config = try JSONDecoder().decode(
      GPTConfig.self, from: Data(contentsOf: fixturesDirectory.appendingPathComponent("tiny_model/gpt/config.json")))
    let gpt = try ConditionalGPT(weights: ckpt, config: config)
    let gptIO = try SafeTensorsFile(url: fixturesDirectory.appendingPathComponent("io/gpt.safetensors"))
    let (_, prefix) = try gptIO.integers("prefix_tokens")
    let logits = gpt.logits(
      tokens: [Array(prefix[0..<100]), Array(prefix[100..<200])], conditions: try gptIO.tensor("cond_embeds"))
    expectParity(logits, try gptIO.tensor("logits"), "GPT logits from gpt_hfai.pt")
  }

  @Test func openAICLIPStateDictInFloat16MatchesReference() throws {
    for file in ["clip_openai.pt", "clip_openai_torchscript.pt"] {
      let ckpt = try checkpoint(file)
      #expect(ckpt.record(of: "token_embedding.weight")?.dtype == .f16)
      #expect(CLIPLayout.detect(ckpt) == .openAI)
      let clip = try CLIPModel(openAIWeights: ckpt)
      #expect(clip.config.projectionDim == 64 && clip.config.text.numHiddenLayers == 1)
      let (shape, ids) = try io.integers("clip.input_ids")
      let rows = (0..<shape[0]).map { b in ids[(b * shape[1])..<((b + 1) * shape[1])].map { Int32($0) } }
      expectParity(clip.encodeText(rows), try io.tensor("clip.text_embeds"), "\(file) text")
      expectParity(
        clip.encodeImage(try io.tensor("clip.pixel_values")), try io.tensor("clip.image_embeds"), "\(file) image")
    }
  }

  @Test(arguments: [
    ("vqgan_taming.ckpt", VQGANLayout.taming, "vqgan"), ("vqgan_hfai.pt", VQGANLayout.hfai, "vqgan_hfai"),
  ])
  func vqganCheckpointsDecodeAndEncodeLikeReference(file: String, layout: VQGANLayout, tag: String) throws {
    let ckpt = try checkpoint(file)
    let configs =
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: checkpointFixtures.appendingPathComponent("configs.json"))) as? [String: Any]
    var config = try JSONDecoder().decode(
      VQGANConfig.self, from: JSONSerialization.data(withJSONObject: try #require(configs?["vqgan"])))
    if layout == .hfai { config.normEps = 1e-5 }
    let vqgan = try VQGAN(weights: ckpt, config: config, layout: layout)
    let (_, tokens) = try io.integers("vqgan.decode_tokens")
    let decoded = try io.tensor("\(tag).decoded")
    for b in 0..<2 {
      let image = try vqgan.decode(indices: Array(tokens[(b * 256)..<((b + 1) * 256)]), gridHeight: 16, gridWidth: 16)
      expectParity(image.reshaped([1] + image.shape), batchItem(decoded, b), "\(file) decode \(b)")
    }
    let images = try io.tensor("vqgan.encode_image")
    let latents = try io.tensor("\(tag).encode_latent")
    for b in 0..<2 {
      let item = batchItem(images, b)
      let (_, latent) = try vqgan.encode(item.reshaped(Array(item.shape.dropFirst())))
      expectParity(latent.reshaped([1] + latent.shape), batchItem(latents, b), "\(file) encode \(b)")
    }
  }

  // MARK: Errors name the file

  func temporaryCopy(_ name: String, _ edit: (inout [UInt8]) -> Void) throws -> URL {
    var bytes = [UInt8](try Data(contentsOf: checkpointFixtures.appendingPathComponent(name)))
    edit(&bytes)
    let url = try temporaryDirectory().appendingPathComponent(name)
    try Data(bytes).write(to: url)
    return url
  }

  @Test func truncatedZipIsReportedAsTruncated() throws {
    for keep in [100, 300_000] {
      let url = try temporaryCopy("gpt_hfai.pt") { $0.removeLast($0.count - keep) }
      do {
        _ = try PyTorchCheckpoint(url: url)
        Issue.record("a truncated file loaded")
      } catch let e as CheckpointError {
        guard case .truncated(let file, _) = e else {
          Issue.record("expected .truncated, got \(e)")
          continue
        }
        #expect(file == url.path)
        #expect(e.description.contains("gpt_hfai.pt") && e.description.contains("truncated"))
      }
    }
  }

  @Test func truncatedLegacyFileIsReportedAsTruncated() throws {
    let url = try temporaryCopy("legacy.pt") { $0.removeLast(20) }
    #expect {
      try PyTorchCheckpoint(url: url)
    } throws: { e in
      guard case .truncated(let file, _)? = e as? CheckpointError else { return false }
      return file == url.path
    }
  }

  @Test func corruptPickleFailsItsChecksumAndNamesTheFile() throws {
    // Overwrite a byte inside data.pkl (the first entry, right after its local header).
    let url = try temporaryCopy("dtypes.pt") { bytes in
      let nameLength = Int(bytes[26]) | Int(bytes[27]) << 8
      let extraLength = Int(bytes[28]) | Int(bytes[29]) << 8
      bytes[30 + nameLength + extraLength + 3] = 0xFF
    }
    #expect {
      try PyTorchCheckpoint(url: url)
    } throws: { e in
      "\(e)".contains(url.path) && "\(e)".contains("CRC")
    }
  }

  /// Pickles built to exhaust the reader: a "billion laughs" of shared tuples (122 bytes, 2^60
  /// values) and a million nested tuples (1 MB) are refused quickly, without a crash.
  @Test func pickleBombsAreRefused() throws {
    let machine = PickleMachine(file: "x.pt", entry: "x/data.pkl")
    func load(_ bytes: [UInt8]) throws -> PickleValue { try bytes.withUnsafeBytes { try machine.load($0).value } }
    // PROTO 2, EMPTY_TUPLE, then (DUP, TUPLE2) x 60: each level is a pair of the level below.
    let laughs: [UInt8] = [0x80, 0x02, 0x29] + Array([[UInt8]](repeating: [0x32, 0x86], count: 60).joined()) + [0x2E]
    let started = Date()
    #expect {
      try load(laughs)
    } throws: { e in
      "\(e)".contains("more than 5000000 values")
    }
    // A few levels of sharing are fine, and frozen once.
    let few: [UInt8] = [0x80, 0x02, 0x29] + Array([[UInt8]](repeating: [0x32, 0x86], count: 10).joined()) + [0x2E]
    if case .tuple(let pair) = try load(few) { #expect(pair.count == 2) } else { Issue.record("not a tuple") }
    // PROTO 2, EMPTY_TUPLE, TUPLE1 x 1,000,000: too deep, refused and freed without recursion.
    let deep: [UInt8] = [0x80, 0x02, 0x29] + [UInt8](repeating: 0x85, count: 1_000_000) + [0x2E]
    #expect {
      try load(deep)
    } throws: { e in
      "\(e)".contains("nested deeper than 400")
    }
    // The same depth in lists (EMPTY_LIST, then memo GET + APPEND chains).
    var lists: [UInt8] = [0x80, 0x02, 0x5D, 0x94]  // EMPTY_LIST, MEMOIZE (memo 0)
    for i in 1...200_000 {
      // EMPTY_LIST, MEMOIZE (memo i), GET i-1 (LONG_BINGET), GET i, APPEND, POP
      lists += [0x5D, 0x94, 0x6A] + withUnsafeBytes(of: UInt32(i - 1).littleEndian, Array.init)
      lists += [0x6A] + withUnsafeBytes(of: UInt32(i).littleEndian, Array.init) + [0x61, 0x30, 0x30]
    }
    lists += [0x6A, 0, 0, 0, 0, 0x2E]  // GET 0, STOP
    #expect {
      try load(lists)
    } throws: { e in
      "\(e)".contains("nested deeper than 400")
    }
    #expect(Date().timeIntervalSince(started) < 30)
  }

  /// A pickle that names a global able to run code is refused by name, and nothing it asks for
  /// ever runs: the marker file its payload would create never appears.
  @Test(arguments: [
    ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"), ("subprocess", "Popen"),
    ("__builtin__", "getattr"), ("importlib", "import_module"),
  ])
  func maliciousPicklesAreRefusedByName(module: String, name: String) throws {
    let machine = PickleMachine(file: "evil.pt", entry: "evil/data.pkl")
    let marker = try temporaryDirectory().appendingPathComponent("pwned")
    // GLOBAL module name, MARK, SHORT_BINUNICODE "touch <marker>", TUPLE, REDUCE, STOP — and the
    // same through STACK_GLOBAL.
    func text(_ s: String) -> [UInt8] { [0x8C, UInt8(s.utf8.count)] + Array(s.utf8) }
    let command = text("touch \(marker.path)")
    let viaGlobal: [UInt8] =
      [0x80, 0x02, 0x63] + Array("\(module)\n\(name)\n".utf8) + [0x28] + command + [0x74, 0x52, 0x2E]
    let viaStack: [UInt8] = [0x80, 0x04] + text(module) + text(name) + [0x93, 0x28] + command + [0x74, 0x52, 0x2E]
    for bytes in [viaGlobal, viaStack] {
      #expect {
        try bytes.withUnsafeBytes { try machine.load($0) }
      } throws: { e in
        "\(e)".contains("names \(module).\(name)") && "\(e)".contains("evil.pt")
      }
    }
    #expect(!FileManager.default.fileExists(atPath: marker.path))
  }

  @Test func unknownOpcodeAndMalformedPicklesAreErrorsWithOffsets() throws {
    let machine = PickleMachine(file: "x.pt", entry: "x/data.pkl")
    func load(_ bytes: [UInt8]) throws -> PickleValue { try bytes.withUnsafeBytes { try machine.load($0).value } }
    #expect {
      try load([0x80, 0x02, 0x7D, 0xFF, 0x2E])
    } throws: { e in
      guard case .unsupportedPickle(let file, let entry, let offset, let reason)? = e as? CheckpointError else {
        return false
      }
      return file == "x.pt" && entry == "x/data.pkl" && offset == 3 && reason.contains("unknown opcode 0xff")
    }
    #expect(throws: CheckpointError.self) { try load([0x80, 0x02, 0x7D]) }  // no STOP
    #expect(throws: CheckpointError.self) { try load([0x80, 0x02, 0x58, 0x10, 0, 0, 0, 0x61]) }  // string past the end
    #expect(throws: CheckpointError.self) { try load([0x80, 0x02, 0x30, 0x2E]) }  // POP of nothing
    #expect(throws: CheckpointError.self) { try load([0x80, 0x02, 0x68, 0x05, 0x2E]) }  // GET of no memo
    // SETITEMS with a key but no value
    #expect(throws: CheckpointError.self) { try load([0x80, 0x02, 0x7D, 0x28, 0x4B, 0x01, 0x75, 0x2E]) }
    // pickle.dumps({"a": [1, -2, 3.5, True, None, "é", b"xy", 2**70]}, protocol=4)
    let v = try load([
      0x80, 0x04, 0x95, 0x33, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7D, 0x94, 0x8C, 0x01, 0x61, 0x94, 0x5D, 0x94,
      0x28, 0x4B, 0x01, 0x4A, 0xFE, 0xFF, 0xFF, 0xFF, 0x47, 0x40, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x88, 0x4E,
      0x8C, 0x02, 0xC3, 0xA9, 0x94, 0x43, 0x02, 0x78, 0x79, 0x94, 0x8A, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x40, 0x65, 0x73, 0x2E,
    ])
    guard case .list(let items)? = v["a"] else {
      Issue.record("got \(v.summary)")
      return
    }
    #expect(items.map(\.summary) == ["1", "-2", "3.5", "True", "None", "'é'", "bytes (2)", "int (72-bit)"])
  }

  @Test func missingDataRecordNamesTensorAndRecord() throws {
    let ckpt = try checkpoint("missing_storage.pt")
    #expect(try ckpt.tensor("a").scalars == [1, 1])
    #expect {
      try ckpt.tensor("b")
    } throws: { e in
      guard case .missingStorage(let file, let tensor, let record)? = e as? CheckpointError else { return false }
      return file.hasSuffix("missing_storage.pt") && tensor == "b" && record.hasSuffix("data/1")
    }
  }

  @Test func otherFilesAreNotCheckpoints() throws {
    let dir = try temporaryDirectory()
    let text = dir.appendingPathComponent("notes.pt")
    try Data("hello".utf8).write(to: text)
    #expect {
      try PyTorchCheckpoint(url: text)
    } throws: { e in
      guard case .notACheckpoint(let file, _)? = e as? CheckpointError else { return false }
      return file == text.path
    }
    // A pickle that torch.save did not write (no magic number).
    let pickle = dir.appendingPathComponent("plain.pkl")
    try Data([0x80, 0x02, 0x4B, 0x07, 0x2E]).write(to: pickle)
    #expect(throws: CheckpointError.self) { try PyTorchCheckpoint(url: pickle) }
    #expect(throws: WeightError.self) { try PyTorchCheckpoint(path: dir.appendingPathComponent("absent.pt").path) }
  }

  @Test func gunzipReadsOpenAIsBPEFile() throws {
    let gz = try Data(contentsOf: checkpointFixtures.appendingPathComponent("bpe_tiny.txt.gz"))
    let text = String(decoding: try gz.withUnsafeBytes { try Inflater.gunzip($0) }, as: UTF8.self)
    #expect(text.hasPrefix("\"bpe_simple_vocab_16e6.txt#version: 0.2\n"))
    #expect(text.split(separator: "\n").count == 101)
    var damaged = [UInt8](gz)
    damaged[damaged.count - 6] ^= 0xFF
    #expect(throws: InflateError.self) { try damaged.withUnsafeBytes { try Inflater.gunzip($0) } }
  }
  /// A DEFLATE stream of one literal and `copies` 258-byte matches at distance 1 (fixed Huffman
  /// codes): about 160 bytes out per byte in — a decompression bomb in a few lines.
  static func deflateBomb(copies: Int) -> [UInt8] {
    var out: [UInt8] = []
    var buffer: UInt32 = 0
    var count = 0
    func put(_ value: Int, _ bits: Int, reversed: Bool) {
      for i in 0..<bits {
        let bit = reversed ? (value >> (bits - 1 - i)) & 1 : (value >> i) & 1
        buffer |= UInt32(bit) << UInt32(count)
        count += 1
        if count == 8 {
          out.append(UInt8(buffer & 0xFF))
          buffer = 0
          count = 0
        }
      }
    }
    put(1, 1, reversed: false)  // BFINAL
    put(1, 2, reversed: false)  // fixed Huffman
    put(0x30, 8, reversed: true)  // literal 0
    for _ in 0..<copies {
      put(0xC5, 8, reversed: true)  // length 258 (code 285)
      put(0, 5, reversed: true)  // distance 1
    }
    put(0, 7, reversed: true)  // end of block (256)
    if count > 0 { out.append(UInt8(buffer & 0xFF)) }
    return out
  }

  /// Recorded sizes are claims: no allocation beyond what the input can produce, and no output
  /// beyond the limit, however small the file (a 266-byte zip asked for 2^40 bytes).
  @Test func decompressionBombsAreRefused() throws {
    let bomb = Self.deflateBomb(copies: 20_000)  // ~32 KB in, ~5 MB out
    let (bytes, _) = try bomb.withUnsafeBytes { try Inflater.inflate($0) }
    #expect(bytes.count == 1 + 20_000 * 258 && bytes.allSatisfy { $0 == 0 })
    #expect(throws: InflateError.self) {
      try bomb.withUnsafeBytes { try Inflater.inflate($0, maximumOutput: 1 << 20) }
    }
    do {
      _ = try bomb.withUnsafeBytes { try Inflater.inflate($0, expectedSize: 1 << 40) }
      Issue.record("a recorded size of 2^40 bytes was believed")
    } catch let e as InflateError {
      #expect(e.description.contains("recorded size 1099511627776"), "\(e)")
    }
    #expect(throws: InflateError.self) {
      try Array(bomb.prefix(64)).withUnsafeBytes { try Inflater.inflate($0, expectedSize: 200_000) }
    }
  }

}
