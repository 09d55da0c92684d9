// The conditional GPT prior against the PyTorch reference (training/reference/gpt.py, evaluated in
// float64 by make_fixtures.py): full forward, the KV-cache session at every position, the
// unconditional embedding, greedy decoding, and load errors.
import Foundation
import Testing

@testable import ClipGenEngine

/// Named tensors held in memory (tests build or alter models without writing files).
struct GPTTestWeights: WeightSource {
  var tensors: [String: Tensor]
  var sourceDescription: String { "test-weights" }
  var tensorNames: [String] { tensors.keys.sorted() }
  func shape(of name: String) -> [Int]? { tensors[name]?.shape }
  func tensor(_ name: String) throws -> Tensor {
    guard let t = tensors[name] else { throw WeightError.missingTensor(file: sourceDescription, tensor: name) }
    return t
  }
}

/// The tiny fixture model and its reference inputs and outputs.
struct GPTFixture {
  let model: ConditionalGPT
  let io: SafeTensorsFile
  let conditions: Tensor  // [2, n_cond]
  let prefix: [[Int]]  // [2, 100]

  static let modelDirectory = fixturesDirectory.appendingPathComponent("tiny_model/gpt")

  init() throws {
    model = try ConditionalGPT.load(directory: Self.modelDirectory)
    io = try SafeTensorsFile(url: fixturesDirectory.appendingPathComponent("io/gpt.safetensors"))
    conditions = try io.tensor("cond_embeds")
    let (shape, values) = try io.integers("prefix_tokens")
    prefix = (0..<shape[0]).map { Array(values[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
  }

  /// Rows `[b, i, :]` of a `[B, L, V]` tensor as `[V]`.
  static func row(_ t: Tensor, _ b: Int, _ i: Int) -> Tensor {
    let (l, v) = (t.shape[1], t.shape[2])
    return Tensor(shape: [v], scalars: Array(t.scalars[((b * l + i) * v)..<((b * l + i + 1) * v)]))
  }

  static func row(_ t: Tensor, _ b: Int) -> Tensor {
    let v = t.shape[1]
    return Tensor(shape: [v], scalars: Array(t.scalars[(b * v)..<((b + 1) * v)]))
  }

  /// Rows of a `[B, n]` tensor, one `[1, n]` tensor per sequence.
  static func split(_ t: Tensor) -> [Tensor] {
    let n = t.shape[1]
    return (0..<t.shape[0]).map { Tensor(shape: [1, n], scalars: Array(t.scalars[($0 * n)..<(($0 + 1) * n)])) }
  }
}

/// Index of the largest value, counted from the start of the slice.
func gptArgmax<C: Collection>(_ p: C) -> Int where C.Element == Float {
  var best = p.startIndex
  for i in p.indices where p[i] > p[best] { best = i }
  return p.distance(from: p.startIndex, to: best)
}

/// Max |a − b| / max|b|, for reporting.
func gptRelativeError(_ a: Tensor, _ b: Tensor) -> Float { a.maxAbsDifference(b) / max(b.maxAbs, 1e-12) }

@Suite struct GPTParityTests {
  @Test func fullForwardMatchesReference() throws {
    let f = try GPTFixture()
    let ref = try f.io.tensor("logits")
    let out = f.model.logits(tokens: f.prefix, conditions: f.conditions)
    print("GPT full forward: max|diff|/max|ref| = \(gptRelativeError(out, ref))")
    expectParity(out, ref, "full-forward logits")
  }

  @Test func residualStreamAfterFirstBlockMatchesReference() throws {
    let f = try GPTFixture()
    let ref = try f.io.tensor("hidden_block_0")
    let out = f.model.hiddenStates(tokens: f.prefix, conditions: f.conditions, afterBlocks: 1)
    print("GPT hidden after block 0: max|diff|/max|ref| = \(gptRelativeError(out, ref))")
    expectParity(out, ref, "residual stream after block 0")
  }

  @Test func unconditionalLogitsMatchReference() throws {
    let f = try GPTFixture()
    let ref = try f.io.tensor("logits_uncond")
    let out = f.model.logits(tokens: f.prefix, conditions: f.conditions, unconditional: [true, true])
    print("GPT uncond full forward: max|diff|/max|ref| = \(gptRelativeError(out, ref))")
    expectParity(out, ref, "unconditional logits")

    // Mixed rows at position 0 through the session: row 0 unconditional, row 1 conditional.
    let decoder = GPTDecoder(model: f.model, batch: 2)
    let first = decoder.start(conditions: f.conditions, unconditional: [true, false])
    let refUncond0 = GPTFixture.row(ref, 0, 0)
    let refCond1 = GPTFixture.row(try f.io.tensor("logits"), 1, 0)
    print("GPT uncond position 0: max|diff|/max|ref| = \(gptRelativeError(GPTFixture.row(first, 0), refUncond0))")
    expectParity(GPTFixture.row(first, 0), refUncond0, "position-0 logits with uncond_emb")
    expectParity(GPTFixture.row(first, 1), refCond1, "position-0 logits with cond_proj")
  }

  @Test(arguments: [1, 2])
  func sessionMatchesFullForwardAtEveryPosition(batch: Int) throws {
    let f = try GPTFixture()
    let ref = try f.io.tensor("logits")
    let full = f.model.logits(tokens: f.prefix, conditions: f.conditions)
    // Batch 1 runs each sequence alone (the sgemv path); batch 2 runs both in each GEMM.
    let groups: [[Int]] = batch == 1 ? [[0], [1]] : [[0, 1]]
    var worstRef: Float = 0
    var worstFull: Float = 0
    for group in groups {
      let conds = Tensor(
        shape: [group.count, f.conditions.shape[1]],
        scalars: group.flatMap { GPTFixture.split(f.conditions)[$0].scalars })
      let decoder = GPTDecoder(model: f.model, batch: group.count)
      var logits = decoder.start(conditions: conds)
      for i in 0...f.prefix[0].count {
        #expect(decoder.position == i + 1)
        for (slot, b) in group.enumerated() {
          let got = GPTFixture.row(logits, slot)
          let r = GPTFixture.row(ref, b, i)
          worstRef = max(worstRef, gptRelativeError(got, r))
          worstFull = max(worstFull, gptRelativeError(got, GPTFixture.row(full, b, i)))
          expectParity(got, r, "session logits, sequence \(b), position \(i)")
        }
        if i < f.prefix[0].count { logits = decoder.step(tokens: group.map { f.prefix[$0][i] }) }
      }
    }
    print("GPT session batch \(batch): max rel diff vs reference \(worstRef), vs full forward \(worstFull)")
    #expect(worstFull <= 1e-4)
  }

  @Test(arguments: [1, 2])
  func greedyDecodingReproducesReferenceTokens(batch: Int) throws {
    let f = try GPTFixture()
    let (shape, expected) = try f.io.integers("greedy_tokens")
    let refLogits = try f.io.tensor("greedy_logits")  // [2, 256, vocab]
    let steps = shape[1]
    let vocab = f.model.config.vocabSize
    let groups: [[Int]] = batch == 1 ? [[0], [1]] : [[0, 1]]
    var worst: Float = 0
    for group in groups {
      let conds = Tensor(
        shape: [group.count, f.conditions.shape[1]],
        scalars: group.flatMap { GPTFixture.split(f.conditions)[$0].scalars })
      let decoder = GPTDecoder(model: f.model, batch: group.count)
      var tokens = [[Int]](repeating: [], count: group.count)
      var logits = decoder.start(conditions: conds)
      for t in 0..<steps {
        let chosen = (0..<group.count).map { gptArgmax(logits.scalars[($0 * vocab)..<(($0 + 1) * vocab)]) }
        for (slot, b) in group.enumerated() {
          tokens[slot].append(chosen[slot])
          worst = max(worst, gptRelativeError(GPTFixture.row(logits, slot), GPTFixture.row(refLogits, b, t)))
        }
        if t + 1 < steps { logits = decoder.step(tokens: chosen) }
      }
      #expect(decoder.remainingSteps == 0)
      for (slot, b) in group.enumerated() {
        let want = Array(expected[(b * steps)..<((b + 1) * steps)])
        let firstMismatch = zip(tokens[slot], want).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(tokens[slot] == want, "sequence \(b): first mismatch at step \(firstMismatch ?? -1)")
      }
    }
    print("GPT greedy batch \(batch): 256 tokens × 2 sequences, max rel logit diff \(worst)")
    #expect(worst <= 1e-4)
  }

  @Test func stepsReuseTheSessionBuffers() throws {
    let f = try GPTFixture()
    let decoder = GPTDecoder(model: f.model, batch: 2)
    #expect(decoder.position == 0 && decoder.remainingSteps == 0)
    decoder.start(conditions: f.conditions)
    let first = decoder.withLogits { $0.baseAddress }
    for t in 0..<10 { decoder.step(tokens: [t, 63 - t]) }
    #expect(decoder.withLogits { $0.baseAddress } == first, "logits storage reallocated during steps")
    #expect(decoder.position == 11 && decoder.remainingSteps == f.model.config.blockSize - 11)
    // A restart gives position 0's logits again.
    let again = decoder.start(conditions: f.conditions)
    expectParity(GPTFixture.row(again, 0), GPTFixture.row(try f.io.tensor("logits"), 0, 0), "restarted position 0")
  }

  @Test func emptyPrefixGivesPositionZeroOnly() throws {
    let f = try GPTFixture()
    let out = f.model.logits(tokens: [[], []], conditions: f.conditions)
    #expect(out.shape == [2, 1, f.model.config.vocabSize])
    let ref = try f.io.tensor("logits")
    expectParity(GPTFixture.row(out, 1, 0), GPTFixture.row(ref, 1, 0), "position 0 alone")
  }

  @Test func wrongShapeAndMissingTensorsAreNamed() throws {
    let file = try SafeTensorsFile(url: GPTFixture.modelDirectory.appendingPathComponent("model.safetensors"))
    let config = try JSONDecoder().decode(
      GPTConfig.self, from: Data(contentsOf: GPTFixture.modelDirectory.appendingPathComponent("config.json")))
    var tensors: [String: Tensor] = [:]
    for name in file.tensorNames { tensors[name] = try file.tensor(name) }
    #expect(throws: Never.self) { try ConditionalGPT(weights: GPTTestWeights(tensors: tensors), config: config) }

    var wrong = tensors
    wrong["blocks.1.encoder.linear1.weight"] = Tensor(zeros: [config.embeddingWidth, config.embeddingWidth])
    do {
      _ = try ConditionalGPT(weights: GPTTestWeights(tensors: wrong), config: config)
      Issue.record("a wrongly shaped linear1 weight loaded")
    } catch let e as WeightError {
      let d = config.embeddingWidth
      #expect(
        e
          == .shapeMismatch(
            file: "test-weights", tensor: "blocks.1.encoder.linear1.weight", expected: [4 * d, d], found: [d, d]))
      #expect(e.description.contains("blocks.1.encoder.linear1.weight"))
    }

    var missing = tensors
    missing["uncond_emb"] = nil
    #expect(throws: WeightError.missingTensor(file: "test-weights", tensor: "uncond_emb")) {
      try ConditionalGPT(weights: GPTTestWeights(tensors: missing), config: config)
    }
    var plain = config
    plain.hasUnconditionalEmbedding = false
    let withoutUncond = try ConditionalGPT(weights: GPTTestWeights(tensors: missing), config: plain)
    #expect(!withoutUncond.hasUnconditionalEmbedding)
  }

  @Test func configReadsCheckpointNamesAndRejectsInconsistentSizes() throws {
    let json =
      #"{"vocab_size": 16384, "n_layer": 24, "n_embd": 1024, "n_head": 16, "block_size": 256, "n_cond_embd": 512}"#
    let c = try JSONDecoder().decode(GPTConfig.self, from: Data(json.utf8))
    #expect(c == .gpt2Medium())
    #expect(c.layerNormEps == 1e-5 && !c.hasUnconditionalEmbedding)
    let roundTrip = try JSONDecoder().decode(GPTConfig.self, from: JSONEncoder().encode(c))
    #expect(roundTrip == c)

    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    try Data(#"{"vocab_size": 8, "n_layer": 1, "n_embd": 10, "n_head": 4}"#.utf8)
      .write(to: dir.appendingPathComponent("config.json"))
    do {
      _ = try ConditionalGPT.load(directory: dir)
      Issue.record("n_embd 10 with 4 heads loaded")
    } catch let e as GPTLoadError {
      #expect(e.description.contains("config.json") && e.description.contains("divisible"))
    }
  }
}

@Suite struct GPTKernelTests {
  @Test func vectorisedGELUMatchesErfGELU() {
    var xs: [Float] = stride(from: -12, through: 12, by: 0.0037).map { Float($0) }
    xs += [0, -0, 1e-8, -1e-8, 30, -30, 100, -100]
    var fast = xs
    var exact = xs
    fast.withUnsafeMutableBufferPointer { geluWithBias($0.baseAddress!, bias: nil, count: $0.count) }
    exact.withUnsafeMutableBufferPointer { Activation.gelu($0.baseAddress!, count: $0.count) }
    for i in xs.indices {
      #expect(abs(fast[i] - exact[i]) <= 2e-7 * max(1, abs(xs[i])), "gelu(\(xs[i])): \(fast[i]) vs \(exact[i])")
    }
  }

  @Test func vectorisedSoftmaxMatchesSoftmax() {
    var r = TestRandom(seed: 11)
    for n in [1, 5, 16, 33, 256] {
      var a = (0..<n).map { _ in r.uniform() * 20 }
      var b = a
      a.withUnsafeMutableBufferPointer { gptSoftmaxInPlace($0.baseAddress!, count: n) }
      b.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, count: n) }
      for i in 0..<n { #expect(abs(a[i] - b[i]) <= 1e-6, "softmax n=\(n) [\(i)]") }
    }
  }
}
