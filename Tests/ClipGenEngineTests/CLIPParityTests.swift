// CLIP against the PyTorch reference (`training/reference/clip.py`, fixtures from
// `make_fixtures.py`): embeddings from Hugging Face and OpenAI key layouts, config decoding and
// inference, and errors that name the file and tensor.
import Foundation
import Testing

@testable import ClipGenConvert
@testable import ClipGenEngine

/// Reference inputs and outputs of the tiny CLIP (`Fixtures/io/clip.safetensors`, float64 reference
/// stored as float32).
struct CLIPReference {
  let inputIDs: [[Int32]]
  let textEmbeds: Tensor
  let pixelValues: Tensor
  let imageEmbeds: Tensor
  let logitsPerImage: Tensor

  static let huggingFaceDirectory = fixturesDirectory.appendingPathComponent("tiny_model/clip")
  static let openAIDirectory = fixturesDirectory.appendingPathComponent("clip_openai")

  init() throws {
    let io = try SafeTensorsFile(url: fixturesDirectory.appendingPathComponent("io/clip.safetensors"))
    let (shape, ids) = try io.integers("input_ids")
    inputIDs = (0..<shape[0]).map { r in ids[r * shape[1]..<(r + 1) * shape[1]].map { Int32($0) } }
    textEmbeds = try io.tensor("text_embeds")
    pixelValues = try io.tensor("pixel_values")
    imageEmbeds = try io.tensor("image_embeds")
    logitsPerImage = try io.tensor("logits_per_image")
  }
}

/// Every tensor of a source, in memory, to be edited and written back.
func clipAllTensors(_ source: SafeTensorsFile) throws -> [(name: String, tensor: Tensor)] {
  try source.tensorNames.map { ($0, try source.tensor($0)) }
}

/// A weight source over tensors held in memory.
struct CLIPInMemoryWeights: WeightSource {
  let tensors: [String: Tensor]
  var sourceDescription: String { "in-memory weights" }
  var tensorNames: [String] { tensors.keys.sorted() }
  func shape(of name: String) -> [Int]? { tensors[name]?.shape }
  func tensor(_ name: String) throws -> Tensor {
    guard let t = tensors[name] else { throw WeightError.missingTensor(file: sourceDescription, tensor: name) }
    return t
  }
}

@Suite struct CLIPParityTests {
  func expectEmbeddingsMatch(_ model: CLIPModel, _ ref: CLIPReference, _ what: String) {
    let text = model.encodeText(ref.inputIDs)
    let image = model.encodeImage(ref.pixelValues)
    expectParity(text, ref.textEmbeds, "\(what) text_embeds")
    expectParity(image, ref.imageEmbeds, "\(what) image_embeds")
    expectParity(model.logits(images: image, texts: text), ref.logitsPerImage, "\(what) logits_per_image")
    print(
      "CLIP parity \(what): text \(text.maxAbsDifference(ref.textEmbeds) / ref.textEmbeds.maxAbs), image "
        + "\(image.maxAbsDifference(ref.imageEmbeds) / ref.imageEmbeds.maxAbs) (max |diff| / max |ref|)")
  }

  @Test func huggingFaceLayoutMatchesReference() throws {
    let model = try CLIPModel.load(directory: CLIPReference.huggingFaceDirectory, layout: .huggingFace)
    #expect(model.layout == .huggingFace && CLIPLayout(rawValue: "hf") == .huggingFace)
    expectEmbeddingsMatch(model, try CLIPReference(), "HF layout")
  }

  @Test func openAILayoutMatchesReference() throws {
    // No config.json: sizes are inferred from the shapes, the layout from the names.
    let model = try CLIPModel.load(directory: CLIPReference.openAIDirectory)
    #expect(model.layout == .openAI)
    expectEmbeddingsMatch(model, try CLIPReference(), "OpenAI layout")
  }

  @Test func openAIConfigIsInferredFromShapes() throws {
    let weights = try SafeTensorsFile(url: CLIPReference.openAIDirectory.appendingPathComponent("model.safetensors"))
    let inferred = try CLIPConfig.inferred(fromOpenAI: weights)
    let stated = try CLIPConfig.load(
      contentsOf: CLIPReference.huggingFaceDirectory.appendingPathComponent("config.json"))
    #expect(inferred == stated)
    #expect(
      inferred.text.hiddenSize == 128 && inferred.text.numAttentionHeads == 2 && inferred.text.numHiddenLayers == 2)
    #expect(inferred.text.maxPositionEmbeddings == 77 && inferred.text.intermediateSize == 512)
    #expect(inferred.vision.imageSize == 32 && inferred.vision.patchSize == 8 && inferred.vision.numHiddenLayers == 2)
    #expect(inferred.vision.numAttentionHeads == 2 && inferred.projectionDim == 64)
    #expect(CLIPLayout.detect(weights) == .openAI)
  }

  /// Causality makes positions after the end-of-text token irrelevant: unpadded rows, rows of
  /// different lengths and single rows give the batch's embeddings.
  @Test func textRowsAreIndependentOfPaddingAndBatch() throws {
    let ref = try CLIPReference()
    let model = try CLIPModel.load(directory: CLIPReference.huggingFaceDirectory)
    let full = model.encodeText(ref.inputIDs)
    let trimmed = ref.inputIDs.map { row in Array(row[...CLIPTextEncoder.poolingPositions([row])[0]]) }
    #expect(trimmed.map(\.count) != ref.inputIDs.map(\.count))
    expectParity(model.encodeText(trimmed), full, relative: 1e-5, "unpadded rows")
    for (r, row) in ref.inputIDs.enumerated() {
      let single = model.encodeText([row])
      expectParity(
        single, Tensor(shape: [1, full.shape[1]], scalars: Array(full.scalars[r * 64..<(r + 1) * 64])), relative: 1e-5,
        "row \(r) alone")
    }
    let one = model.encodeImage(Tensor(shape: [3, 32, 32], scalars: Array(ref.pixelValues.scalars[0..<(3 * 32 * 32)])))
    expectParity(
      one, Tensor(shape: [1, 64], scalars: Array(ref.imageEmbeds.scalars[0..<64])), "single image [3, H, W]")
  }

  @Test func normalizedRowsHaveUnitLength() {
    var r = TestRandom(seed: 7)
    let x = r.tensor([3, 10])
    let n = CLIPModel.normalized(x)
    for row in 0..<3 {
      let v = n.scalars[row * 10..<(row + 1) * 10]
      #expect(abs(v.reduce(0) { $0 + $1 * $1 } - 1) < 1e-5)
      let ratio = n.scalars[row * 10] / x.scalars[row * 10]
      #expect(ratio > 0)
    }
    #expect(CLIPModel.normalized(Tensor(zeros: [1, 4])).scalars == [0, 0, 0, 0])
  }

  /// A tensor left out of a file: the error names the file and the stored (HF) tensor.
  @Test func missingTensorErrorNamesFileAndTensor() throws {
    let source = try SafeTensorsFile(
      url: CLIPReference.huggingFaceDirectory.appendingPathComponent("model.safetensors"))
    let dropped = "text_model.encoder.layers.1.self_attn.k_proj.weight"
    let dir = try temporaryDirectory()
    let url = dir.appendingPathComponent("model.safetensors")
    try SafeTensorsWriter.write(try clipAllTensors(source).filter { $0.name != dropped }, to: url)
    try FileManager.default.copyItem(
      at: CLIPReference.huggingFaceDirectory.appendingPathComponent("config.json"),
      to: dir.appendingPathComponent("config.json"))
    #expect(throws: WeightError.missingTensor(file: url.path, tensor: dropped)) {
      try CLIPModel.load(directory: dir, layout: .huggingFace)
    }
  }

  /// A tensor of the wrong shape: the error names the file, the stored (OpenAI) tensor and both shapes.
  @Test func wrongShapeErrorNamesFileTensorAndShapes() throws {
    let source = try SafeTensorsFile(url: CLIPReference.openAIDirectory.appendingPathComponent("model.safetensors"))
    let bad = "visual.proj"  // [128, 64], read transposed
    let dir = try temporaryDirectory()
    let url = dir.appendingPathComponent("model.safetensors")
    let edited = try clipAllTensors(source).map { entry in
      entry.name == bad ? (entry.name, Tensor(zeros: [128, 63])) : entry
    }
    try SafeTensorsWriter.write(edited, to: url)
    let config = try CLIPConfig.inferred(fromOpenAI: source)
    do {
      _ = try CLIPModel(weights: try SafeTensorsFile(url: url), config: config, layout: .openAI)
      Issue.record("expected a shape error")
    } catch let e as WeightError {
      #expect(e == .shapeMismatch(file: url.path, tensor: bad, expected: [128, 64], found: [128, 63]))
      #expect(e.description.contains(url.path) && e.description.contains("'visual.proj'"))
    }
  }

  @Test func huggingFaceWeightsWithoutConfigAreRefused() throws {
    let dir = try temporaryDirectory()
    try FileManager.default.copyItem(
      at: CLIPReference.huggingFaceDirectory.appendingPathComponent("model.safetensors"),
      to: dir.appendingPathComponent("model.safetensors"))
    #expect(throws: CLIPError.self) { try CLIPModel.load(directory: dir) }
  }

  @Test func configDecodesHuggingFaceFieldsWithDefaults() throws {
    // A partial file: missing fields fall back to ViT-B/32; `text_config_dict` wins over
    // `text_config`, as in transformers.
    let json = """
      {"projection_dim": 256,
       "text_config": {"hidden_size": 384, "num_attention_heads": 6, "hidden_act": "gelu", "layer_norm_eps": 1e-6},
       "text_config_dict": {"hidden_size": 640, "num_attention_heads": 10},
       "vision_config": {"image_size": 336, "patch_size": 14, "hidden_size": 1024, "num_attention_heads": 16}}
      """
    let c = try JSONDecoder().decode(CLIPConfig.self, from: Data(json.utf8))
    #expect(c.projectionDim == 256)
    #expect(c.text.hiddenSize == 640 && c.text.numAttentionHeads == 10 && c.text.hiddenAct == "gelu")
    #expect(c.text.layerNormEps == 1e-6 && c.text.vocabSize == 49408 && c.text.maxPositionEmbeddings == 77)
    #expect(c.vision.imageSize == 336 && c.vision.patchSize == 14 && c.vision.gridSize == 24)
    #expect(c.vision.numHiddenLayers == 12 && c.vision.hiddenAct == "quick_gelu")
    try c.validate()
    let roundTrip = try JSONDecoder().decode(CLIPConfig.self, from: try JSONEncoder().encode(c))
    #expect(roundTrip == c)
    #expect(try JSONDecoder().decode(CLIPConfig.self, from: Data("{}".utf8)) == CLIPConfig())

    var unsupported = CLIPConfig()
    unsupported.vision.hiddenAct = "gelu_new"
    #expect(throws: CLIPError.unsupportedActivation("gelu_new")) { try unsupported.validate() }
    var indivisible = CLIPConfig()
    indivisible.text.numAttentionHeads = 7
    #expect(throws: CLIPError.self) { try indivisible.validate() }
  }

  /// The full ViT-B/32 with random weights: one image and one 77-token prompt. Run with
  /// `CLIPGEN_PERF=1 swift test -c release --filter CLIPParityTests/vitB32Speed`.
  @Test(.enabled(if: ProcessInfo.processInfo.environment["CLIPGEN_PERF"] != nil))
  func vitB32Speed() throws {
    let config = CLIPConfig()
    var r = TestRandom(seed: 11)
    var tensors: [String: Tensor] = [:]
    func add(_ name: String, _ shape: [Int], scale: Float = 0.02) {
      var t = r.tensor(shape)
      for i in 0..<t.count { t.scalars[i] *= scale }
      tensors[name] = t
    }
    for (prefix, width, layers) in [("", 512, 12), ("visual.", 768, 12)] {
      for l in 0..<layers {
        let b = "\(prefix)transformer.resblocks.\(l)."
        add(b + "ln_1.weight", [width], scale: 1)
        add(b + "ln_1.bias", [width])
        add(b + "attn.in_proj_weight", [3 * width, width])
        add(b + "attn.in_proj_bias", [3 * width])
        add(b + "attn.out_proj.weight", [width, width])
        add(b + "attn.out_proj.bias", [width])
        add(b + "ln_2.weight", [width], scale: 1)
        add(b + "ln_2.bias", [width])
        add(b + "mlp.c_fc.weight", [4 * width, width])
        add(b + "mlp.c_fc.bias", [4 * width])
        add(b + "mlp.c_proj.weight", [width, 4 * width])
        add(b + "mlp.c_proj.bias", [width])
      }
    }
    add("token_embedding.weight", [49408, 512])
    add("positional_embedding", [77, 512])
    add("ln_final.weight", [512], scale: 1)
    add("ln_final.bias", [512])
    add("text_projection", [512, 512])
    add("visual.conv1.weight", [768, 3, 32, 32])
    add("visual.class_embedding", [768])
    add("visual.positional_embedding", [50, 768])
    for n in ["ln_pre", "ln_post"] {
      add("visual.\(n).weight", [768], scale: 1)
      add("visual.\(n).bias", [768])
    }
    add("visual.proj", [768, 512])
    let weights = CLIPInMemoryWeights(tensors: tensors)
    #expect(try CLIPConfig.inferred(fromOpenAI: weights) == config)
    let model = try CLIPModel(weights: weights, config: config, layout: .openAI)
    let pixels = r.tensor([1, 3, 224, 224])
    let ids: [[Int32]] = [[49406] + (0..<75).map { Int32($0 * 600) } + [49407]]
    _ = model.encodeImage(pixels)
    func seconds(_ body: () -> Void) -> Double {
      let t0 = DispatchTime.now().uptimeNanoseconds
      body()
      return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }
    let image = (0..<3).map { _ in seconds { _ = model.encodeImage(pixels) } }.min()!
    let image8 = seconds {
      _ = model.encodeImage(
        Tensor(shape: [8, 3, 224, 224], scalars: Array((0..<8).map { _ in pixels.scalars }.joined())))
    }
    let text = (0..<3).map { _ in seconds { _ = model.encodeText(ids) } }.min()!
    print("ViT-B/32: image \(image * 1000) ms, 8 images \(image8 * 1000) ms, 77-token text \(text * 1000) ms")
    #expect(image < 1)
  }
}
