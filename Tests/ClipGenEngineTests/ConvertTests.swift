// `clipgen convert` and `clipgen inspect`: published layouts → model directories that load and
// generate what the PyTorch reference does; sizes inferred from shapes and taming configs; clear
// errors for inputs that do not fit; the CLI end to end.
import Foundation
import Testing

@testable import ClipGenConvert
@testable import ClipGenEngine

@Suite(.serialized) struct ConvertTests {
  let tiny = fixturesDirectory.appendingPathComponent("tiny_model")
  let io: SafeTensorsFile

  init() throws {
    io = try SafeTensorsFile(url: checkpointFixtures.appendingPathComponent("io.safetensors"))
  }

  func fixtureVQGANConfig() throws -> VQGANConfig {
    let configs =
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: checkpointFixtures.appendingPathComponent("configs.json"))) as? [String: Any]
    return try JSONDecoder().decode(
      VQGANConfig.self, from: JSONSerialization.data(withJSONObject: try #require(configs?["vqgan"])))
  }

  // MARK: Conversion

  /// HF CLIP folder + HFAiLab GPT + taming Lightning VQGAN: the converted model is tiny_model's CLIP
  /// and prior, so greedy generation reproduces the reference chain (`io/gpt` greedy_tokens), and
  /// sampling gives tiny_model's tokens for the same seed.
  @Test func convertedModelGeneratesTheReferenceTokens() throws {
    let out = try temporaryDirectory().appendingPathComponent("converted")
    var events: [String] = []
    let report = try ModelConverter.convert(
      ConversionRequest(
        clip: tiny.appendingPathComponent("clip"), gpt: checkpointFixtures.appendingPathComponent("gpt_hfai.pt"),
        vqgan: checkpointFixtures.appendingPathComponent("vqgan_taming.ckpt"),
        tokenizer: tiny.appendingPathComponent("tokenizer"), gptHeads: 4, priorFloat16: false),
      to: out
    ) { event in
      if case .detected(let c, _) = event { events.append(c) }
    }
    #expect(events == ["clip", "gpt", "vqgan"])
    #expect(report.components.map(\.name) == ["clip", "gpt", "vqgan"])

    // Only what the engine reads: no mask buffers, no loss network.
    let gptWeights = try SafeTensorsFile(url: out.appendingPathComponent("gpt/model.safetensors"))
    #expect(!gptWeights.tensorNames.contains { $0.hasSuffix(".mask") })
    #expect(gptWeights.tensorNames.contains("uncond_emb"))
    let vqWeights = try SafeTensorsFile(url: out.appendingPathComponent("vqgan/model.safetensors"))
    #expect(!vqWeights.tensorNames.contains { $0.hasPrefix("loss.") })
    #expect(vqWeights.tensorNames.contains("encoder.conv_in.weight"))
    // The VQGAN's sizes came from the Lightning hyper_parameters (resolution 32, not 256).
    let vqConfig = try JSONDecoder().decode(
      VQGANConfig.self, from: Data(contentsOf: out.appendingPathComponent("vqgan/config.json")))
    #expect(vqConfig == (try fixtureVQGANConfig()))

    let converted = try ClipGenModel(directory: out)
    let reference = try ClipGenModel(directory: tiny)
    #expect(converted.gpt.config == reference.gpt.config)
    // A converted published model carries HFAiLab's sampler settings (top-k capped at the
    // vocabulary) and example prompts of its own, not the built-in model's.
    #expect(converted.defaults == ModelConverter.publishedDefaults(vocabularySize: 64))
    #expect(converted.defaults.topK == 64 && converted.defaults.topP == 0.95 && converted.defaults.candidates == 4)
    #expect(converted.samplePrompts == ModelConverter.publishedSamplePrompts)

    let gptIO = try SafeTensorsFile(url: fixturesDirectory.appendingPathComponent("io/gpt.safetensors"))
    let (_, greedy) = try gptIO.integers("greedy_tokens")
    let caption = "a small blue square at the top right"  // CAPTIONS[1] of the parity fixtures
    let r = try converted.generate(GenerationRequest(prompt: .text(caption), seed: 1, sampling: .init(temperature: 0)))
    #expect(r.images[0].tokens == Array(greedy[256..<512]), "greedy tokens for '\(caption)'")
    let request = GenerationRequest(prompt: .text("a green star"), seed: 5, sampling: .init(temperature: 1, topK: 20))
    #expect(try converted.generate(request).images[0].tokens == reference.generate(request).images[0].tokens)

    // By default the prior is stored in float16 (as it is sampled), the rest as given.
    let half = try temporaryDirectory().appendingPathComponent("half")
    let halfReport = try ModelConverter.convert(
      ConversionRequest(
        clip: tiny.appendingPathComponent("clip"), gpt: checkpointFixtures.appendingPathComponent("gpt_hfai.pt"),
        vqgan: checkpointFixtures.appendingPathComponent("vqgan_taming.ckpt"),
        tokenizer: tiny.appendingPathComponent("tokenizer"), gptHeads: 4),
      to: half)
    let sizes = Dictionary(uniqueKeysWithValues: halfReport.components.map { ($0.name, ($0.bytes, $0.parameters)) })
    #expect(sizes["gpt"].map { $0.0 == 2 * $0.1 } == true)
    #expect(sizes["vqgan"].map { $0.0 == 4 * $0.1 } == true)
    let greedyHalf = try ClipGenModel(directory: half).generate(
      GenerationRequest(prompt: .text(caption), seed: 1, sampling: .init(temperature: 0)))
    #expect(greedyHalf.images[0].tokens == Array(greedy[256..<512]))
  }

  /// OpenAI CLIP (state dict and TorchScript, float16) + HFAiLab GPT + HFAiLab VQGAN + OpenAI's gzipped
  /// BPE file, stored as float16: every component matches the reference outputs.
  @Test(arguments: ["clip_openai.pt", "clip_openai_torchscript.pt"])
  func openAIAndHFAILabFilesConvertToFloat16(clipFile: String) throws {
    let out = try temporaryDirectory().appendingPathComponent("coco")
    var notes: [String] = []
    let report = try ModelConverter.convert(
      ConversionRequest(
        clip: checkpointFixtures.appendingPathComponent(clipFile),
        gpt: checkpointFixtures.appendingPathComponent("gpt_hfai.pt"),
        vqgan: checkpointFixtures.appendingPathComponent("vqgan_hfai.pt"),
        tokenizer: checkpointFixtures.appendingPathComponent("bpe_tiny.txt.gz"), vqganResolution: 32, gptHeads: 4,
        float16: true, name: "coco-test"),
      to: out
    ) { if case .note(let n) = $0 { notes.append(n) } }
    #expect(notes.isEmpty, "\(notes)")
    for c in report.components { #expect(c.bytes == 2 * c.parameters, "\(c.name) is float16") }

    let model = try ClipGenModel(directory: out)
    #expect(model.name == "coco-test")
    #expect(model.manifest.clip.layout == .openAI && model.manifest.vqgan.layout == .hfai)
    #expect(model.vqgan.config.normEps == 1e-5)

    // The tokenizer rebuilt from the BPE merges is tiny_model's.
    let tinyTokenizer = try CLIPTokenizer(directory: tiny.appendingPathComponent("tokenizer"))
    for text in ["a red circle on the left", "Ünïcödé ½ x² and <|endoftext|>"] {
      #expect(model.tokenizer.tokenize(text) == tinyTokenizer.tokenize(text))
    }
    #expect(model.tokenizer.vocabularySize == tinyTokenizer.vocabularySize)

    // The fixture weights are float16-exact, so float16 storage changes nothing.
    let (shape, ids) = try io.integers("clip.input_ids")
    let rows = (0..<shape[0]).map { b in ids[(b * shape[1])..<((b + 1) * shape[1])].map { Int32($0) } }
    expectParity(model.clip.encodeText(rows), try io.tensor("clip.text_embeds"), "\(clipFile) text")
    expectParity(
      model.clip.encodeImage(try io.tensor("clip.pixel_values")), try io.tensor("clip.image_embeds"), "image")
    let (_, tokens) = try io.integers("vqgan.decode_tokens")
    let image = try model.vqgan.decode(indices: Array(tokens[0..<256]), gridHeight: 16, gridWidth: 16)
    expectParity(image.reshaped([1] + image.shape), batchItem(try io.tensor("vqgan_hfai.decoded"), 0), "HFAiLab VQGAN")
  }

  /// A Hugging Face folder with `pytorch_model.bin` (and int64 `position_ids` buffers, which are
  /// not written) brings its own config and tokenizer.
  @Test func huggingFaceFolderWithPyTorchWeightsBringsItsTokenizer() throws {
    let folder = checkpointFixtures.appendingPathComponent("clip_hf")
    #expect(WeightFileFormat.of(folder) == .huggingFaceDirectory)
    let out = try temporaryDirectory().appendingPathComponent("hf")
    _ = try ModelConverter.convert(
      ConversionRequest(
        clip: folder, gpt: checkpointFixtures.appendingPathComponent("gpt_hfai.pt"),
        vqgan: checkpointFixtures.appendingPathComponent("vqgan_taming.ckpt"), gptHeads: 4),
      to: out)
    let model = try ClipGenModel(directory: out)
    #expect(model.manifest.clip.layout == .huggingFace)
    let written = try SafeTensorsFile(url: out.appendingPathComponent("clip/model.safetensors"))
    #expect(!written.tensorNames.contains { $0.hasSuffix("position_ids") })
    let (shape, ids) = try io.integers("clip.input_ids")
    let rows = (0..<shape[0]).map { b in ids[(b * shape[1])..<((b + 1) * shape[1])].map { Int32($0) } }
    expectParity(model.clip.encodeText(rows), try io.tensor("clip.text_embeds"), "HF pytorch_model.bin text")
    expectParity(
      model.clip.encodeImage(try io.tensor("clip.pixel_values")), try io.tensor("clip.image_embeds"), "image")
  }

  @Test func safetensorsSourcesConvertToo() throws {
    // The committed OpenAI-named safetensors CLIP and the VQGAN in HFAiLab names (resolution 64 → 16×16).
    let out = try temporaryDirectory().appendingPathComponent("m")
    _ = try ModelConverter.convert(
      ConversionRequest(
        clip: fixturesDirectory.appendingPathComponent("clip_openai/model.safetensors"),
        gpt: tiny.appendingPathComponent("gpt/model.safetensors"),
        vqgan: fixturesDirectory.appendingPathComponent("vqgan_hfai/model.safetensors"),
        tokenizer: tiny.appendingPathComponent("tokenizer"), vqganResolution: 64, gptHeads: 4),
      to: out)
    let model = try ClipGenModel(directory: out)
    #expect(model.vqgan.config.chMult == [1, 1, 2] && model.vqgan.config.attnResolutions == [16])
    let reference = try ClipGenModel(directory: tiny)
    let prompt = Prompt.text("a red circle")
    #expect(try model.embed(prompt).embedding == reference.embed(prompt).embedding)
    let vqIO = try SafeTensorsFile(url: fixturesDirectory.appendingPathComponent("vqgan_hfai/io.safetensors"))
    let (_, tokens) = try vqIO.integers("decode_tokens")
    let image = try model.vqgan.decode(indices: Array(tokens[0..<256]), gridHeight: 16, gridWidth: 16)
    expectParity(
      image.reshaped([1] + image.shape), batchItem(try vqIO.tensor("decoded"), 0), "HFAiLab VQGAN at eps 1e-5")
  }

  // MARK: Sizes from shapes and configs

  @Test func vqganSizesAreInferredFromEitherLayout() throws {
    let fixture = try fixtureVQGANConfig()
    let taming = try VQGANConfig.inferred(from: try checkpoint("vqgan_taming.ckpt"), layout: .taming, resolution: 32)
    #expect(taming == fixture)
    var hfaiExpected = fixture
    hfaiExpected.normEps = 1e-5
    #expect(
      try VQGANConfig.inferred(from: try checkpoint("vqgan_hfai.pt"), layout: .hfai, resolution: 32) == hfaiExpected)
    // Three levels, attention only at the lowest (the parity fixtures).
    let tinyConfig = try JSONDecoder().decode(
      VQGANConfig.self, from: Data(contentsOf: tiny.appendingPathComponent("vqgan/config.json")))
    let tinyTaming = try SafeTensorsFile(url: tiny.appendingPathComponent("vqgan/model.safetensors"))
    #expect(try VQGANConfig.inferred(from: tinyTaming, layout: .taming, resolution: 64) == tinyConfig)
    let hfaiURL = fixturesDirectory.appendingPathComponent("vqgan_hfai")
    let hfaiConfig = try JSONDecoder().decode(
      VQGANConfig.self, from: Data(contentsOf: hfaiURL.appendingPathComponent("config.json")))
    let hfai = try SafeTensorsFile(url: hfaiURL.appendingPathComponent("model.safetensors"))
    #expect(try VQGANConfig.inferred(from: hfai, layout: .hfai, resolution: 64) == hfaiConfig)
  }

  /// What a killed conversion leaves is cleaned up by the next one: a dead process's staging
  /// folder goes, and a model it had moved aside comes back when nothing took its place.
  @Test func interruptedConversionsAreRecovered() throws {
    let dir = try temporaryDirectory()
    let out = dir.appendingPathComponent("coco")
    let fm = FileManager.default
    let dead: Int32 = 2_000_000_000  // beyond pid_max: never a live process
    let staging = ModelConverter.sibling(of: out, "converting", pid: dead)
    let aside = ModelConverter.sibling(of: out, "replaced", pid: dead)
    try fm.createDirectory(at: staging, withIntermediateDirectories: true)
    try fm.copyItem(at: tiny, to: aside)
    let done = ModelConverter.recoverInterrupted(out)
    #expect(done.count == 2, "\(done)")
    #expect(!fm.fileExists(atPath: staging.path))
    #expect(!fm.fileExists(atPath: aside.path))
    #expect(try ClipGenModel(directory: out).name == "tiny-fixture")  // the old model, whole
    // With a model in place, a leftover copy is removed instead.
    try fm.copyItem(at: tiny, to: aside)
    #expect(ModelConverter.recoverInterrupted(out).count == 1)
    #expect(!fm.fileExists(atPath: aside.path) && fm.fileExists(atPath: out.path))
    // A live process's folders are left alone.
    let mine = ModelConverter.sibling(of: out, "converting", pid: getppid())
    try fm.createDirectory(at: mine, withIntermediateDirectories: true)
    #expect(ModelConverter.recoverInterrupted(out).isEmpty && fm.fileExists(atPath: mine.path))
  }

  /// Shapes from a stranger's file are checked before they divide anything: a zero-channel
  /// tensor used to crash size inference with a division by zero.
  @Test func emptyDimensionsAreRefusedByName() throws {
    struct Patched: WeightSource {
      let base: SafeTensorsFile
      let name: String
      let shape: [Int]
      var sourceDescription: String { base.sourceDescription }
      var tensorNames: [String] { base.tensorNames }
      func shape(of n: String) -> [Int]? { n == name ? shape : base.shape(of: n) }
      func tensor(_ n: String) throws -> Tensor { try base.tensor(n) }
      func storedName(_ n: String) -> String { n }
    }
    let tinyTaming = try SafeTensorsFile(url: tiny.appendingPathComponent("vqgan/model.safetensors"))
    for (name, shape) in [
      ("encoder.conv_in.weight", [0, 3, 3, 3]), ("decoder.up.0.block.0.conv2.weight", [0, 32, 3, 3]),
      ("decoder.conv_out.weight", [3, 0, 3, 3]),
    ] {
      let patched = Patched(base: tinyTaming, name: name, shape: shape)
      #expect {
        try VQGANConfig.inferred(from: patched, layout: .taming, resolution: 64)
      } throws: { e in
        "\(e)".contains("0 channels") || "\(e)".contains("empty dimension")
      }
    }
  }

  @Test func gptSizesAreInferredFromShapes() throws {
    let ckpt = try checkpoint("gpt_hfai.pt")
    let reference = try JSONDecoder().decode(
      GPTConfig.self, from: Data(contentsOf: tiny.appendingPathComponent("gpt/config.json")))
    #expect(try GPTConfig.inferred(from: ckpt, heads: 4) == reference)
    #expect(try GPTConfig.inferred(from: ckpt).heads == 1)  // width 64 / 64
    #expect(ModelComponent.detect(ckpt) == .gpt)
  }

  @Test func tamingYAMLAndJSONConfigsAreRead() throws {
    let yaml = """
      model:
        base_learning_rate: 4.5e-06   # comment
        target: taming.models.vqgan.VQModel
        params:
          embed_dim: 256
          n_embed: 16384
          monitor: val/rec_loss
          ddconfig:
            double_z: False
            z_channels: 256
            resolution: 256
            in_channels: 3
            out_ch: 3
            ch: 128
            ch_mult: [ 1,1,2,2,4]  # num_down = len(ch_mult)-1
            num_res_blocks: 2
            attn_resolutions:
            - 16
            dropout: 0.0
          lossconfig:
            target: taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator
            params:
              disc_conditional: False
              disc_in_channels: 3
              disc_start: 250001
              disc_weight: 0.8
              codebook_weight: 1.0
      data:
        target: main.DataModuleFromConfig
        params:
          batch_size: 12
          train:
            target: taming.data.imagenet.ImageNetTrain
            params:
              config:
                size: 256
      """
    let dir = try temporaryDirectory()
    let url = dir.appendingPathComponent("model.yaml")
    try Data(yaml.utf8).write(to: url)
    #expect(try VQGANConfig.load(tamingConfig: url, normEps: 1e-6) == VQGANConfig.f16x16384)
    let json = dir.appendingPathComponent("model.json")
    try Data(
      #"{"model": {"params": {"embed_dim": 256, "n_embed": 16384, "ddconfig": {"z_channels": 256, "resolution": 256, "ch": 128, "ch_mult": [1,1,2,2,4], "num_res_blocks": 2, "attn_resolutions": [16]}}}}"#
        .utf8
    )
    .write(to: json)
    #expect(try VQGANConfig.load(tamingConfig: json, normEps: 1e-6) == VQGANConfig.f16x16384)
    let bad = dir.appendingPathComponent("bad.yaml")
    try Data("model:\n  params:\n    embed_dim: 4\n".utf8).write(to: bad)
    #expect {
      try VQGANConfig.load(tamingConfig: bad, normEps: 1e-6)
    } throws: { e in
      guard case .unreadableConfig(let path, let reason)? = e as? ConversionError else { return false }
      return path == bad.path && reason.contains("ddconfig")
    }
  }

  // MARK: Errors

  func request(clip: URL? = nil, gpt: URL? = nil, vqgan: URL? = nil, tokenizer: URL?? = nil) -> ConversionRequest {
    ConversionRequest(
      clip: clip ?? checkpointFixtures.appendingPathComponent("clip_openai.pt"),
      gpt: gpt ?? checkpointFixtures.appendingPathComponent("gpt_hfai.pt"),
      vqgan: vqgan ?? checkpointFixtures.appendingPathComponent("vqgan_taming.ckpt"),
      tokenizer: tokenizer ?? checkpointFixtures.appendingPathComponent("bpe_tiny.txt.gz"), gptHeads: 4)
  }

  @Test func mismatchedInputsAreClearErrorsAndLeaveNothingBehind() throws {
    let dir = try temporaryDirectory()
    let out = dir.appendingPathComponent("out")
    func expectError(_ r: ConversionRequest, _ check: (ConversionError) -> Bool) {
      do {
        _ = try ModelConverter.convert(r, to: out)
        Issue.record("converted")
      } catch let e as ConversionError {
        #expect(check(e), "\(e)")
      } catch {
        Issue.record("unexpected \(error)")
      }
      #expect((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) == [], "left files behind")
    }
    let vqganFile = checkpointFixtures.appendingPathComponent("vqgan_hfai.pt")
    expectError(request(gpt: vqganFile)) {
      guard case .wrongComponent(let path, let expected, let found) = $0 else { return false }
      return path == vqganFile.path && expected == "GPT prior" && found.contains("VQGAN")
    }
    // The tiny_model VQGAN has a 16×16 grid only at resolution 64; at the default 256 it would be 64×64.
    expectError(request(vqgan: tiny.appendingPathComponent("vqgan/model.safetensors"))) {
      guard case .incompatible(let reason) = $0 else { return false }
      return reason.contains("64×64") && reason.contains("256 positions")
    }
    expectError(request(tokenizer: .some(nil))) {
      guard case .tokenizer(let path, let reason) = $0 else { return false }
      return path.hasSuffix("clip_openai.pt") && reason.contains("--tokenizer")
    }
    let text = dir.appendingPathComponent("notes.txt")
    try Data("hello".utf8).write(to: text)
    defer { try? FileManager.default.removeItem(at: text) }
    do {
      _ = try ModelConverter.convert(request(clip: text), to: out)
      Issue.record("converted a text file")
    } catch let e as ConversionError {
      #expect(e.description.contains("notes.txt") && e.description.contains("not a weights file"))
    }
  }

  @Test func existingOutputIsKeptUnlessReplaced() throws {
    let out = try temporaryDirectory()
    try Data("keep".utf8).write(to: out.appendingPathComponent("file"))
    #expect(throws: ConversionError.outputExists(path: out.path)) { try ModelConverter.convert(request(), to: out) }
    var r = request()
    r.replaceExisting = true
    _ = try ModelConverter.convert(r, to: out)
    #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("file").path))
    #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("model.json").path))
  }

  @Test func damagedCheckpointErrorsNameTheFile() throws {
    let dir = try temporaryDirectory()
    let cut = dir.appendingPathComponent("gpt_cut.pt")
    let bytes = try Data(contentsOf: checkpointFixtures.appendingPathComponent("gpt_hfai.pt"))
    try bytes.prefix(bytes.count / 2).write(to: cut)
    do {
      _ = try ModelConverter.convert(request(gpt: cut), to: dir.appendingPathComponent("out"))
      Issue.record("converted a truncated file")
    } catch {
      #expect("\(error)".contains("gpt_cut.pt") && "\(error)".contains("truncated"), "\(error)")
    }
  }

  // MARK: Inspection

  @Test func inspectionDescribesCheckpoints() throws {
    let taming = try WeightsInspection(url: checkpointFixtures.appendingPathComponent("vqgan_taming.ckpt"))
    #expect(taming.component == .vqgan(.taming))
    #expect(taming.stateDictKey == "state_dict")
    #expect(taming.tensorCount == 158)
    #expect(taming.configNotes == ["from the checkpoint's hyper_parameters"])
    #expect(taming.topLevel.map(\.key).contains("hyper_parameters"))
    #expect(Set(taming.dtypes.map(\.dtype)) == ["F32", "F16", "I64"])
    let clip = try WeightsInspection(url: checkpointFixtures.appendingPathComponent("clip_openai_torchscript.pt"))
    #expect(clip.format == PyTorchCheckpoint.Format.torchScript.rawValue)
    #expect(clip.component == .clip(.openAI))
    #expect(clip.configJSON?.contains("\"projection_dim\" : 64") == true)
    let hf = try WeightsInspection(url: tiny.appendingPathComponent("clip"))
    #expect(hf.component == .clip(.huggingFace) && hf.parameterCount == 925_569)
    let model = try ModelDirectoryInspection(directory: tiny)
    #expect(model.components.map(\.name) == ["clip", "gpt", "vqgan"])
  }

  // MARK: The CLI

  /// kill -9 at any moment of `clipgen convert --force` over an existing model: what is at
  /// --out afterwards always loads (the old model or the new one, never half of either), and
  /// the next conversion cleans up what the killed one left.
  @Test func killedConversionsNeverLeaveAHalfModel() throws {
    let exe = try clipgenExecutable()
    let dir = try temporaryDirectory()
    let out = dir.appendingPathComponent("model")
    try FileManager.default.copyItem(at: tiny, to: out)
    let fx = checkpointFixtures.path
    let arguments = [
      "convert", "--clip", "\(fx)/clip_openai.pt", "--gpt", "\(fx)/gpt_hfai.pt", "--gpt-heads", "4", "--vqgan",
      "\(fx)/vqgan_taming.ckpt", "--tokenizer", "\(fx)/bpe_tiny.txt.gz", "--out", out.path, "--force",
    ]
    var random = TestRandom(seed: 42)
    for _ in 0..<6 {
      let p = Process()
      p.executableURL = exe
      p.arguments = arguments
      p.standardError = FileHandle.nullDevice
      try p.run()
      usleep(UInt32(20_000 + Int(random.next() % 1_500_000)))
      kill(p.processIdentifier, SIGKILL)
      p.waitUntilExit()
      ModelConverter.recoverInterrupted(out)
      #expect((try? ClipGenModel(directory: out)) != nil, "after kill -9 the model at --out does not load")
      let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
      #expect(left.isEmpty, "left behind: \(left)")
    }
  }

  /// A head count the checkpoint does not store is an assumption said loudly: a warning in the
  /// summary, `"assumptions"` in model.json, and a line in `clipgen inspect`.
  @Test func assumedSizesAreLoudAndRecorded() throws {
    let exe = try clipgenExecutable()
    let out = try temporaryDirectory().appendingPathComponent("assumed")
    let fx = checkpointFixtures.path
    let convert = try run(
      exe,
      [
        "convert", "--clip", "\(fx)/clip_openai.pt", "--gpt", "\(fx)/gpt_hfai.pt", "--vqgan",
        "\(fx)/vqgan_taming.ckpt", "--tokenizer", "\(fx)/bpe_tiny.txt.gz", "--out", out.path,
      ])
    #expect(convert.status == 0, "\(convert.stderr)")
    #expect(convert.stderr.contains("warning: assumed gpt: 1 attention heads (width 64 / 64)"), "\(convert.stderr)")
    let manifest = try JSONDecoder().decode(
      ModelManifest.self, from: Data(contentsOf: out.appendingPathComponent("model.json")))
    #expect(
      manifest.assumptions?.count == 1 && manifest.assumptions?.first?.hasPrefix("gpt: 1 attention heads") == true)
    let inspect = try run(exe, ["inspect", out.path])
    #expect(inspect.stdout.contains("assumed       gpt: 1 attention heads"), "\(inspect.stdout)")
  }

  @Test func cliConvertsAndInspects() throws {
    let exe = try clipgenExecutable()
    let out = try temporaryDirectory().appendingPathComponent("cli-model")
    let fx = checkpointFixtures.path
    let convert = try run(
      exe,
      [
        "convert", "--clip", "\(fx)/clip_openai.pt", "--gpt", "\(fx)/gpt_hfai.pt", "--gpt-heads", "4", "--vqgan",
        "\(fx)/vqgan_taming.ckpt", "--tokenizer", "\(fx)/bpe_tiny.txt.gz", "--out", out.path,
      ])
    #expect(convert.status == 0, "\(convert.stderr)")
    #expect(convert.stderr.contains("CLIP (OpenAI layout)") && convert.stderr.contains("wrote \(out.path)"))
    let generated = try run(
      exe,
      ["generate", "a red circle", "--model", out.path, "--out", out.appendingPathComponent("images").path, "--quiet"])
    #expect(generated.status == 0, "\(generated.stderr)")

    let long = Array(repeating: "a red circle on the left of a big green square", count: 8).joined(separator: " ")
    let inspect = try run(exe, ["inspect", out.path, "--prompt", long])
    #expect(inspect.status == 0, "\(inspect.stderr)")
    #expect(inspect.stdout.contains("clipgen model directory"))
    #expect(inspect.stdout.contains("count         114 tokens with BOS and EOS"))
    #expect(
      inspect.stdout.contains(
        "warning: the prompt is 114 tokens with BOS and EOS but CLIP reads 77: the last 37 text tokens are dropped"))

    let short = try run(exe, ["inspect", "\(fx)/gpt_hfai.pt"])
    #expect(short.stdout.contains("state dict    'model'") && short.stdout.contains("val_loss"))
    let noTokenizer = try run(exe, ["inspect", "\(fx)/gpt_hfai.pt", "--prompt", "hi"])
    #expect(noTokenizer.status != 0 && noTokenizer.stderr.contains("--tokenizer"))

    let bad = try run(
      exe,
      [
        "convert", "--clip", "\(fx)/clip_openai.pt", "--gpt", "\(fx)/vqgan_hfai.pt", "--vqgan",
        "\(fx)/vqgan_taming.ckpt",
        "--tokenizer", "\(fx)/bpe_tiny.txt.gz", "--out", out.appendingPathComponent("bad").path,
      ])
    #expect(bad.status != 0)
    #expect(bad.stderr.contains("vqgan_hfai.pt: expected GPT prior weights"), "\(bad.stderr)")
  }
}

/// OpenAI's real `bpe_simple_vocab_16e6.txt.gz`, read out of the open_clip wheel that `make vocab`
/// caches (a deflated zip member), must give exactly Hugging Face's `vocab.json` and `merges.txt`
/// for openai/clip-vit-base-patch32 (which `make vocab` writes to .cache/clip-vocab).
@Suite struct OpenAIVocabularyTests {
  static let wheel: URL? = {
    let dir = repositoryRoot.appendingPathComponent(".cache/wheels")
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
    return names.filter { $0.hasPrefix("open_clip_torch-") && $0.hasSuffix(".whl") }.sorted().last
      .map { dir.appendingPathComponent($0) }
  }()
  static let vocabDirectory = repositoryRoot.appendingPathComponent(".cache/clip-vocab")
  static let available =
    wheel != nil && FileManager.default.fileExists(atPath: vocabDirectory.appendingPathComponent("vocab.json").path)

  @Test(.enabled(if: available, "needs `make vocab` (.cache/wheels and .cache/clip-vocab)"))
  func bpeFileFromTheWheelGivesHuggingFacesFiles() throws {
    let wheel = try #require(Self.wheel)
    let zip = try ZipArchive(path: wheel.path, file: try MappedFile(path: wheel.path))
    let entry = try #require(zip.entries.first { $0.name.hasSuffix("bpe_simple_vocab_16e6.txt.gz") })
    let gz = try temporaryDirectory().appendingPathComponent("bpe_simple_vocab_16e6.txt.gz")
    try Data(try zip.contents(of: entry)).write(to: gz)

    let (vocab, merges) = try TokenizerFiles.openAIFiles(fromBPE: gz)
    let expectedMerges = try Data(contentsOf: Self.vocabDirectory.appendingPathComponent("merges.txt"))
    #expect(merges == expectedMerges)
    let ours = try JSONSerialization.jsonObject(with: vocab) as? [String: Int]
    let theirs =
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: Self.vocabDirectory.appendingPathComponent("vocab.json"))) as? [String: Int]
    #expect(ours?.count == 49408)
    #expect(ours == theirs)
  }
}
