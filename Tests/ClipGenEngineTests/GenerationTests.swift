// The generation function on the tiny fixture model: progress per token, cancellation,
// determinism (also across batch sizes), reranking, guidance, prompts from images and mixes.
import Foundation
import Testing

@testable import ClipGenEngine

@Suite(.serialized) struct GenerationTests {
  static let model: ClipGenModel? = try? ClipGenModel(directory: fixturesDirectory.appendingPathComponent("tiny_model"))

  func loaded() throws -> ClipGenModel {
    try #require(
      Self.model,
      "tiny_model fixture did not load: \(String(describing: (try? ClipGenModel(directory: fixturesDirectory.appendingPathComponent("tiny_model"))) as Any))"
    )
  }

  @Test func loadsTheFixtureModel() throws {
    do {
      let m = try ClipGenModel(directory: fixturesDirectory.appendingPathComponent("tiny_model"))
      #expect(m.tokensPerImage == 256)
      #expect(m.gridHeight == 16 && m.gridWidth == 16)
    } catch {
      Issue.record("tiny_model failed to load: \(error)")
    }
  }

  @Test func reportsEveryTokenAndIsDeterministic() throws {
    let m = try loaded()
    var steps: [Int] = []
    var partialCounts: [Int] = []
    let request = GenerationRequest(
      prompt: .text("a blue square"), count: 1, seed: 3, sampling: .init(temperature: 1, topK: 20))
    let r1 = try m.generate(request) { event in
      if case .sampled(let done, let total, let tokens, _) = event {
        steps.append(done)
        partialCounts.append(tokens[0].count)
        #expect(total == 256)
      }
      return true
    }
    #expect(steps == Array(1...256))
    #expect(partialCounts == Array(1...256))
    let r2 = try m.generate(request)
    #expect(r1.images[0].tokens == r2.images[0].tokens)
    #expect(r1.images[0].image == r2.images[0].image)
    let other = try m.generate(
      GenerationRequest(prompt: .text("a blue square"), seed: 4, sampling: .init(temperature: 1, topK: 20)))
    #expect(other.images[0].tokens != r1.images[0].tokens)
  }

  /// Candidate i draws from its own random stream, so it is the same whatever the batch size.
  @Test func candidatesAreIndependentOfBatchSize() throws {
    let m = try loaded()
    let single = try m.generate(GenerationRequest(prompt: .text("a green star"), count: 1, seed: 9))
    let batch = try m.generate(GenerationRequest(prompt: .text("a green star"), count: 3, candidates: 3, seed: 9))
    #expect(batch.images.count == 3)
    #expect(batch.images.map(\.candidate) == [0, 1, 2])
    #expect(batch.images[0].tokens == single.images[0].tokens)
    #expect(Set(batch.images.map(\.tokens)).count == 3)
  }

  @Test func rerankingKeepsTheBestScoredCandidates() throws {
    let m = try loaded()
    let all = try m.generate(GenerationRequest(prompt: .text("a red circle"), count: 4, candidates: 4, seed: 1))
    let best = try m.generate(GenerationRequest(prompt: .text("a red circle"), count: 2, candidates: 4, seed: 1))
    let expected = all.images.sorted { $0.clipScore > $1.clipScore }.prefix(2).map(\.candidate)
    #expect(best.images.map(\.candidate) == Array(expected))
    // Scores are cosine similarities recomputed from the decoded pixels.
    let target = try m.embed(.text("a red circle")).embedding
    let rescored = try m.clipScores(best.images.map(\.image), target: target)
    for (a, b) in zip(rescored, best.images.map(\.clipScore)) { #expect(abs(a - b) < 1e-5) }
  }

  @Test func cancellingStopsSampling() throws {
    let m = try loaded()
    var seen = 0
    do {
      _ = try m.generate(GenerationRequest(prompt: .text("x"), seed: 1)) { event in
        if case .sampled(let done, _, _, _) = event {
          seen = done
          return done < 10
        }
        return true
      }
      Issue.record("generation was not cancelled")
    } catch let e as GenerationError {
      #expect(e == .cancelled)
    }
    #expect(seen == 10)
  }

  @Test func guidanceUsesTheUnconditionalEmbedding() throws {
    let m = try loaded()
    #expect(m.gpt.hasUnconditionalEmbedding)
    let plain = try m.generate(
      GenerationRequest(prompt: .text("a red circle"), seed: 5, sampling: .init(temperature: 0)))
    let guided = try m.generate(
      GenerationRequest(prompt: .text("a red circle"), seed: 5, sampling: .init(temperature: 0, guidanceScale: 3)))
    #expect(plain.images[0].tokens != guided.images[0].tokens)
    // Guidance scale 1 is exactly unguided.
    let one = try m.generate(
      GenerationRequest(prompt: .text("a red circle"), seed: 5, sampling: .init(temperature: 0, guidanceScale: 1)))
    #expect(one.images[0].tokens == plain.images[0].tokens)
  }

  /// A negative prompt takes the unconditional embedding's place: guided away from the prompt
  /// itself, `neg + s·(cond − neg)` is the conditional logits, so the tokens are the unguided ones;
  /// another negative changes them; without guidance it is refused with a reason.
  @Test func negativePromptReplacesTheUnconditionalEmbedding() throws {
    let m = try loaded()
    let greedy = SamplingSettings(temperature: 0)
    let guided = SamplingSettings(temperature: 0, guidanceScale: 3)
    let plain = try m.generate(GenerationRequest(prompt: .text("a red circle"), seed: 5, sampling: greedy))
    let itself = try m.generate(
      GenerationRequest(prompt: .text("a red circle"), seed: 5, sampling: guided, negative: .text("a red circle")))
    #expect(itself.images[0].tokens == plain.images[0].tokens)
    let away = try m.generate(
      GenerationRequest(prompt: .text("a red circle"), seed: 5, sampling: guided, negative: .text("a blue square")))
    let unconditional = try m.generate(GenerationRequest(prompt: .text("a red circle"), seed: 5, sampling: guided))
    #expect(away.images[0].tokens != plain.images[0].tokens)
    #expect(away.images[0].tokens != unconditional.images[0].tokens)
    #expect(throws: GenerationError.negativeWithoutGuidance) {
      _ = try m.generate(
        GenerationRequest(prompt: .text("a red circle"), seed: 5, sampling: greedy, negative: .text("blue")))
    }
  }

  /// A prior without `uncond_emb` (as the published COCO one) cannot be guided, except away from
  /// a negative prompt.
  @Test func negativePromptGuidesPriorsWithoutUnconditionalEmbedding() throws {
    let dir = try temporaryDirectory()
    let copy = dir.appendingPathComponent("model")
    try FileManager.default.copyItem(at: fixturesDirectory.appendingPathComponent("tiny_model"), to: copy)
    let config = copy.appendingPathComponent("gpt/config.json")
    var json = try JSONSerialization.jsonObject(with: Data(contentsOf: config)) as! [String: Any]
    json["uncond_embedding"] = false
    try JSONSerialization.data(withJSONObject: json).write(to: config)
    let m = try ClipGenModel(directory: copy)
    #expect(!m.gpt.hasUnconditionalEmbedding)
    let guided = SamplingSettings(temperature: 0, guidanceScale: 3)
    #expect(throws: GenerationError.guidanceUnavailable) {
      _ = try m.generate(GenerationRequest(prompt: .text("a red circle"), seed: 5, sampling: guided))
    }
    let away = try m.generate(
      GenerationRequest(prompt: .text("a red circle"), seed: 5, sampling: guided, negative: .text("a blue square")))
    #expect(away.images.count == 1)
  }

  /// A re-roll keeps exactly the kept tokens; with the seed and stream that made the image the
  /// rest is the image itself, with another seed a new continuation (deterministic either way).
  @Test func rerollKeepsThePrefixAndIsSeeded() throws {
    let m = try loaded()
    let settings = SamplingSettings(temperature: 1, topK: 16)
    let original = try m.generate(
      GenerationRequest(prompt: .text("a red circle"), count: 3, candidates: 3, seed: 4, sampling: settings))
    let image = original.images[2]  // stream 2
    let kept = Array(image.tokens.prefix(3 * m.gridWidth))
    let same = try m.generate(
      GenerationRequest(
        prompt: .text("a red circle"), seed: 4, sampling: settings, keep: kept, firstStream: image.candidate))
    #expect(same.images[0].tokens == image.tokens)
    let other = try m.generate(
      GenerationRequest(prompt: .text("a red circle"), seed: 77, sampling: settings, keep: kept))
    let again = try m.generate(
      GenerationRequest(prompt: .text("a red circle"), seed: 77, sampling: settings, keep: kept))
    #expect(Array(other.images[0].tokens.prefix(kept.count)) == kept)
    #expect(other.images[0].tokens != image.tokens)
    #expect(other.images[0].tokens == again.images[0].tokens)
    #expect(throws: GenerationError.self) {
      _ = try m.generate(GenerationRequest(prompt: .text("x"), keep: [m.gpt.config.vocabSize]))
    }
  }

  /// Loading says what it loads, with each file's size (the studio prints it while a large
  /// model loads).
  @Test func loadingReportsEachPart() throws {
    var parts: [String] = []
    _ = try ClipGenModel(directory: fixturesDirectory.appendingPathComponent("tiny_model")) { parts.append($0) }
    #expect(parts.count == 3)
    #expect(parts[0].hasPrefix("the CLIP encoders, ") && parts[1].hasPrefix("the prior, "))
    #expect(parts[2].hasPrefix("the VQGAN decoder, ") && parts.allSatisfy { $0.hasSuffix(" MB") })
  }

  @Test func imageAndMixedPromptsCondition() throws {
    let m = try loaded()
    let img = RGBImage(width: 40, height: 30, pixels: (0..<(40 * 30 * 3)).map { UInt8(($0 * 37) % 256) })
    let imageEmbedding = try m.embed(.image(img, label: "test")).embedding
    let textEmbedding = try m.embed(.text("a red circle")).embedding
    let mix = try m.embed(Prompt(parts: [(.text("a red circle"), 1), (.image(img, label: "test"), 0.5)])).embedding
    let expected = l2Normalized(zip(textEmbedding, imageEmbedding).map { $0 + 0.5 * $1 })
    for (a, b) in zip(mix, expected) { #expect(abs(a - b) < 1e-5) }
    #expect(abs(imageEmbedding.reduce(0) { $0 + $1 * $1 } - 1) < 1e-4)
    #expect(throws: GenerationError.emptyPrompt) { try m.embed(Prompt(parts: [])) }
  }

  @Test func previewDecodesAPartialGrid() throws {
    let m = try loaded()
    let tokens = Array(repeating: 3, count: 40)
    let preview = try m.previewImage(tokens: tokens)
    #expect(preview.width == 64 && preview.height == 64)
  }
}
