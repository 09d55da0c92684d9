// The one generation function the CLI, the studio, the benchmarks and the tests all call:
// prompt → CLIP embedding → sampled token grids (KV-cached prior) → VQGAN decode → CLIP rerank.
import Foundation

public enum GenerationError: Error, CustomStringConvertible, Equatable {
  case invalidSetting(String)
  case invalidModel(path: String, reason: String)
  case emptyPrompt
  case guidanceUnavailable
  case negativeWithoutGuidance
  case cancelled

  public var description: String {
    switch self {
    case .invalidSetting(let s): return "invalid setting: \(s)"
    case .invalidModel(let path, let reason): return "\(path): \(reason)"
    case .emptyPrompt: return "the prompt is empty: give text, an image, or both"
    case .guidanceUnavailable:
      return
        "classifier-free guidance needs a model trained with an unconditional embedding (uncond_emb); this model has none"
    case .negativeWithoutGuidance:
      return "a negative prompt acts through guidance: set the guidance scale above 1 (e.g. 3)"
    case .cancelled: return "generation cancelled"
    }
  }
}

/// What to condition on: text, images, or a weighted mix of their CLIP embeddings.
public struct Prompt: Sendable {
  public enum Part: Sendable {
    case text(String)
    case image(RGBImage, label: String)
    /// A CLIP embedding given directly (e.g. from another tool); normalised like the others.
    case embedding([Float], label: String)
  }
  public var parts: [(part: Part, weight: Float)]

  public init(parts: [(part: Part, weight: Float)]) { self.parts = parts }
  public static func text(_ s: String) -> Prompt { Prompt(parts: [(.text(s), 1)]) }
  public static func image(_ image: RGBImage, label: String) -> Prompt {
    Prompt(parts: [(.image(image, label: label), 1)])
  }

  /// A short description for manifests and history ("a red circle + 0.5×[cat.png]").
  public var summary: String {
    parts.map { part, weight in
      let w = weight == 1 ? "" : "\(weight)×"
      switch part {
      case .text(let s): return w + s
      case .image(_, let label), .embedding(_, let label): return w + "[\(label)]"
      }
    }.joined(separator: " + ")
  }
}

/// Everything that determines a generation's output.
public struct GenerationRequest: Sendable {
  public var prompt: Prompt
  /// Images to return.
  public var count: Int
  /// Candidates to sample; when more than `count`, CLIP keeps the `count` it scores best.
  public var candidates: Int
  public var seed: UInt64
  public var sampling: SamplingSettings
  /// What the image should not look like: its embedding takes the place of the unconditional
  /// one in classifier-free guidance (`neg + s·(cond − neg)`), so it works on priors without
  /// `uncond_emb` too. Needs a guidance scale other than 1.
  public var negative: Prompt?
  /// Tokens every candidate starts with instead of sampling them (a re-roll keeps the first rows
  /// of an image and samples the rest). The random streams advance past them as if they had been
  /// drawn, so with the seed and stream that made the image, the rest comes out the same.
  public var keep: [Int]
  /// Candidate i draws from random stream `firstStream + i` (a re-roll of candidate c of an
  /// earlier generation uses c).
  public var firstStream: Int
  /// A region re-sample: `keep` then holds a whole token grid, and only the tokens inside this
  /// rectangle are sampled again (in raster order, every other token kept). Candidates are ranked
  /// by how likely the prior finds the kept tokens after the region's first one, given the new
  /// region (so the edit fits what follows it), instead of by CLIP.
  public var region: TokenRegion?

  public init(
    prompt: Prompt, count: Int = 1, candidates: Int? = nil, seed: UInt64 = 0, sampling: SamplingSettings = .init(),
    negative: Prompt? = nil, keep: [Int] = [], firstStream: Int = 0, region: TokenRegion? = nil
  ) {
    self.region = region
    self.prompt = prompt
    self.negative = negative
    self.keep = keep
    self.firstStream = max(0, firstStream)
    self.count = count
    self.candidates = max(candidates ?? count, count)
    self.seed = seed
    self.sampling = sampling
  }
}

/// Progress reported while generating. Returning `false` from the handler cancels.
public enum GenerationEvent: Sendable {
  /// The prompt was embedded (`truncated`: a text part was longer than the context and cut).
  case conditioned(truncatedText: Bool)
  /// `done` of `total` tokens sampled for every candidate; `tokens[c]` holds candidate c's so far.
  case sampled(done: Int, total: Int, tokens: [[Int]], tokensPerSecond: Double)
  /// Candidate `index` (0-based) of `total` decoded to pixels.
  case decoded(index: Int, total: Int, image: RGBImage)
  /// CLIP similarity of every candidate with the prompt embedding.
  case scored([Float])
}

public struct GeneratedImage: Sendable {
  public var image: RGBImage
  public var tokens: [Int]
  /// Which candidate this was (its random stream), 0-based.
  public var candidate: Int
  /// Cosine similarity between the image's and the prompt's CLIP embeddings.
  public var clipScore: Float
  /// A region re-sample's ranking score: the prior's log-likelihood of the kept tokens after the
  /// region's first token (higher fits better); nil otherwise.
  public var priorScore: Float? = nil
}

public struct GenerationResult: Sendable {
  /// Best first when candidates were reranked, otherwise in candidate order.
  public var images: [GeneratedImage]
  public var promptTruncated: Bool
  public var samplingSeconds: Double
  public var decodingSeconds: Double
  public var totalSeconds: Double
  /// Tokens per second summed over all candidates (and the unconditional rows, when guided).
  public var tokensPerSecond: Double
}

extension ClipGenModel {
  /// The prompt's embedding: each part embedded by CLIP, L2-normalised, weighted, summed and
  /// normalised again (`embedding`); `raw` is the weighted sum of the unnormalised embeddings, for
  /// priors trained on raw CLIP outputs. `truncated`: some text was longer than the context.
  public func embed(_ prompt: Prompt) throws -> (embedding: [Float], raw: [Float], truncated: Bool) {
    guard !prompt.parts.isEmpty, prompt.parts.contains(where: { $0.weight != 0 }) else {
      throw GenerationError.emptyPrompt
    }
    let dim = clip.config.projectionDim
    var sum = [Float](repeating: 0, count: dim)
    var raw = [Float](repeating: 0, count: dim)
    var truncated = false
    for (part, weight) in prompt.parts {
      let e: [Float]
      switch part {
      case .text(let s):
        let tokens = tokenizer.tokenize(s, contextLength: contextLength)
        truncated = truncated || tokens.isTruncated
        e = clip.encodeText([tokens.ids]).scalars
      case .image(let img, _):
        e =
          clip.encodeImage(
            imagePreprocessor.preprocess(img).reshaped([1, 3, imagePreprocessor.size, imagePreprocessor.size])
          ).scalars
      case .embedding(let v, let label):
        guard v.count == dim else {
          throw GenerationError.invalidSetting(
            "embedding '\(label)' has \(v.count) values, the model's CLIP has \(dim)")
        }
        e = v
      }
      let n = l2Normalized(e)
      for i in 0..<dim {
        sum[i] += weight * n[i]
        raw[i] += weight * e[i]
      }
    }
    return (l2Normalized(sum), raw, truncated)
  }

  /// Generates images for `request`, reporting progress to `progress` (return `false` to cancel,
  /// which throws `GenerationError.cancelled`). The same request gives the same images.
  public func generate(
    _ request: GenerationRequest, progress: (GenerationEvent) -> Bool = { _ in true }
  ) throws -> GenerationResult {
    let start = Date()
    guard request.count >= 1 else {
      throw GenerationError.invalidSetting("count must be at least 1, got \(request.count)")
    }
    try request.sampling.validate(vocabularySize: gpt.config.vocabSize)
    guard request.keep.count <= tokensPerImage,
      request.keep.allSatisfy({ (0..<gpt.config.vocabSize).contains($0) })
    else {
      throw GenerationError.invalidSetting(
        "the kept tokens must be at most \(tokensPerImage) ids below \(gpt.config.vocabSize), got \(request.keep.count)"
      )
    }
    if let region = request.region {
      try region.validate(gridWidth: gridWidth, gridHeight: gridHeight)
      guard request.keep.count == tokensPerImage else {
        throw GenerationError.invalidSetting(
          "a region re-sample keeps the whole grid: \(tokensPerImage) tokens, got \(request.keep.count)")
      }
    }
    let guided = request.sampling.guidanceScale != 1
    let negative = request.negative.flatMap { $0.parts.isEmpty ? nil : $0 }
    if negative != nil && !guided { throw GenerationError.negativeWithoutGuidance }
    if guided && negative == nil && !gpt.hasUnconditionalEmbedding { throw GenerationError.guidanceUnavailable }

    let (target, raw, truncated) = try embed(request.prompt)
    let against = try negative.map { try embed($0) }
    guard progress(.conditioned(truncatedText: truncated || against?.truncated == true)) else {
      throw GenerationError.cancelled
    }
    let condition = normalizesCondition ? target : raw
    let negativeCondition = against.map { normalizesCondition ? $0.embedding : $0.raw }

    // Sample every candidate together; with guidance the unconditional (or negative) rows follow
    // the conditional ones.
    let m = request.candidates
    let rows = guided ? 2 * m : m
    let nCond = gpt.config.conditionWidth
    var conds = [Float](repeating: 0, count: rows * nCond)
    for r in 0..<rows {
      let c = r >= m ? negativeCondition ?? condition : condition
      for i in 0..<nCond { conds[r * nCond + i] = c[i] }
    }
    let unconditional = (0..<rows).map { $0 >= m && negativeCondition == nil }
    let total = tokensPerImage
    let vocab = gpt.config.vocabSize
    var rngs = (0..<m).map { SeededGenerator(seed: request.seed, stream: UInt64(request.firstStream + $0)) }
    var samplers = (0..<m).map { _ in TokenSampler(settings: request.sampling, vocabularySize: vocab) }
    var tokens = [[Int]](repeating: [], count: m)
    for c in 0..<m { tokens[c].reserveCapacity(total) }
    // The token kept at each position (nil: sampled), and for a region the prior's log-likelihood
    // of the kept tokens after the region starts, per candidate.
    let kept: (Int) -> Int? = { [keep = request.keep, region = request.region, w = gridWidth] step in
      if let region { return region.contains(step, gridWidth: w) ? nil : keep[step] }
      return step < keep.count ? keep[step] : nil
    }
    let scoredFrom = request.region.map { $0.y * gridWidth + $0.x } ?? total
    var priorScores = [Float](repeating: 0, count: m)

    let sampleStart = Date()
    let decoder = GPTDecoder(model: gpt, batch: rows)
    var logits = decoder.start(conditions: Tensor(shape: [rows, nCond], scalars: conds), unconditional: unconditional)
    for step in 0..<total {
      var next = [Int](repeating: 0, count: rows)
      logits.withUnsafeBufferPointer { lp in
        let base = lp.baseAddress!
        for c in 0..<m {
          let t: Int
          if let k = kept(step) {
            t = k
            if request.sampling.temperature > 0 { _ = rngs[c].nextUnit() }  // the draw it stands for
            if step > scoredFrom {
              priorScores[c] += TokenSampler.logProbability(
                of: t, logits: base + c * vocab, unconditional: guided ? base + (m + c) * vocab : nil,
                vocabularySize: vocab, guidanceScale: request.sampling.guidanceScale)
            }
          } else {
            t = samplers[c].draw(
              logits: base + c * vocab, unconditional: guided ? base + (m + c) * vocab : nil, using: &rngs[c])
          }
          tokens[c].append(t)
          next[c] = t
          if guided { next[m + c] = t }
        }
      }
      let elapsed = Date().timeIntervalSince(sampleStart)
      let rate = elapsed > 0 ? Double((step + 1) * rows) / elapsed : 0
      guard progress(.sampled(done: step + 1, total: total, tokens: tokens, tokensPerSecond: rate)) else {
        throw GenerationError.cancelled
      }
      if step + 1 < total { logits = decoder.step(tokens: next) }
    }
    let samplingSeconds = Date().timeIntervalSince(sampleStart)

    // Decode and score every candidate, then keep the best `count`.
    let decodeStart = Date()
    var images: [RGBImage] = []
    for c in 0..<m {
      let image = try decodeImage(tokens: tokens[c])
      images.append(image)
      guard progress(.decoded(index: c, total: m, image: image)) else { throw GenerationError.cancelled }
    }
    let scores = try clipScores(images, target: target)
    guard progress(.scored(scores)) else { throw GenerationError.cancelled }
    // A region re-sample ranks by the prior's score of what follows the region, others by CLIP.
    let rank = request.region == nil ? scores : priorScores
    var order = Array(0..<m)
    if m > request.count { order.sort { rank[$0] > rank[$1] || (rank[$0] == rank[$1] && $0 < $1) } }
    let best = order.prefix(request.count).map {
      GeneratedImage(
        image: images[$0], tokens: tokens[$0], candidate: $0, clipScore: scores[$0],
        priorScore: request.region == nil ? nil : priorScores[$0])
    }
    let decodingSeconds = Date().timeIntervalSince(decodeStart)
    return GenerationResult(
      images: best, promptTruncated: truncated, samplingSeconds: samplingSeconds, decodingSeconds: decodingSeconds,
      totalSeconds: Date().timeIntervalSince(start),
      tokensPerSecond: samplingSeconds > 0 ? Double(total * rows) / samplingSeconds : 0)
  }

  /// Decodes a full token grid to pixels.
  public func decodeImage(tokens: [Int]) throws -> RGBImage {
    RGBImage(vqganOutput: try vqgan.decode(indices: tokens, gridHeight: gridHeight, gridWidth: gridWidth))
  }

  /// A preview of a partly sampled grid: the missing positions repeat the last sampled row (or
  /// token 0 before any), so the rows sampled so far decode close to how they will finally look.
  public func previewImage(tokens: [Int]) throws -> RGBImage {
    let total = tokensPerImage
    guard tokens.count < total else { return try decodeImage(tokens: Array(tokens.prefix(total))) }
    var grid = tokens
    let w = gridWidth
    while grid.count < total {
      let i = grid.count
      grid.append(i >= w ? grid[i - w] : (tokens.last ?? 0))
    }
    return try decodeImage(tokens: grid)
  }

  /// Cosine similarity of each image's CLIP embedding with `target` (already normalised).
  public func clipScores(_ images: [RGBImage], target: [Float]) throws -> [Float] {
    imageEmbeddings(images).map { e in zip(e, target).reduce(0) { $0 + $1.0 * $1.1 } }
  }

  /// Each image's CLIP image embedding, L2-normalised (preprocessed as CLIP's transform does).
  public func imageEmbeddings(_ images: [RGBImage]) -> [[Float]] {
    guard !images.isEmpty else { return [] }
    let s = imagePreprocessor.size
    var pixels: [Float] = []
    pixels.reserveCapacity(images.count * 3 * s * s)
    for img in images { pixels += imagePreprocessor.preprocess(img).scalars }
    let emb = clip.encodeImage(Tensor(shape: [images.count, 3, s, s], scalars: pixels))
    let dim = clip.config.projectionDim
    return (0..<images.count).map { i in l2Normalized(Array(emb.scalars[i * dim..<(i + 1) * dim])) }
  }
}

/// `v / ‖v‖` (unchanged when ‖v‖ = 0).
public func l2Normalized(_ v: [Float]) -> [Float] {
  let n = v.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
  return n > 0 ? v.map { $0 / n } : v
}
