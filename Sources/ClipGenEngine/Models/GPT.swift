// The conditional GPT prior of CLIP-GEN, mirroring HFAiLab/clip-gen `models/gpt.py` (`GPT`, `Block`)
// so its released checkpoints load unchanged:
//
//   x[0]   = cond_proj(embed)            (or our optional learned `uncond_emb`, for guidance)
//   x[1…L] = tok_emb(tokens)
//   x     += pos_emb[:, :L+1]
//   x      = blocks(x)                   nn.TransformerEncoderLayer(d, n_head, 4d, F.gelu,
//                                         batch_first=True, norm_first=True), causal mask
//   logits = head(norm(x))               logits at position i predict token i
//
// Weights are immutable and shared; all mutable state (activations, the key/value cache) belongs to
// a `GPTDecoder` session or to one `logits(tokens:conditions:unconditional:)` call.
import CKernels
import Foundation

/// The model's `config.json`. Names follow the checkpoint's JSON keys.
public struct GPTConfig: Codable, Sendable, Equatable {
  /// Number of image-token codes (the VQGAN codebook size).
  public var vocabSize: Int
  /// Transformer blocks.
  public var layers: Int
  /// Model width `d`.
  public var embeddingWidth: Int
  /// Attention heads; `d` must be divisible by it.
  public var heads: Int
  /// Positions the model has embeddings for (condition + tokens), 256 for a 16×16 grid.
  public var blockSize: Int
  /// Width of the conditioning CLIP embedding.
  public var conditionWidth: Int
  /// LayerNorm epsilon of every norm (PyTorch's default 1e-5).
  public var layerNormEps: Float
  /// Whether the checkpoint carries a learned unconditional embedding `uncond_emb` `[d]`.
  public var hasUnconditionalEmbedding: Bool

  /// Width of the feed-forward hidden layer (`dim_feedforward = 4·d` in clip-gen).
  public var feedForwardWidth: Int { 4 * embeddingWidth }
  public var headDim: Int { embeddingWidth / heads }

  enum CodingKeys: String, CodingKey {
    case vocabSize = "vocab_size"
    case layers = "n_layer"
    case embeddingWidth = "n_embd"
    case heads = "n_head"
    case blockSize = "block_size"
    case conditionWidth = "n_cond_embd"
    case layerNormEps = "layer_norm_eps"
    case hasUnconditionalEmbedding = "uncond_embedding"
  }

  public init(
    vocabSize: Int, layers: Int, embeddingWidth: Int, heads: Int, blockSize: Int = 256, conditionWidth: Int = 512,
    layerNormEps: Float = 1e-5, hasUnconditionalEmbedding: Bool = false
  ) {
    self.vocabSize = vocabSize
    self.layers = layers
    self.embeddingWidth = embeddingWidth
    self.heads = heads
    self.blockSize = blockSize
    self.conditionWidth = conditionWidth
    self.layerNormEps = layerNormEps
    self.hasUnconditionalEmbedding = hasUnconditionalEmbedding
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    vocabSize = try c.decode(Int.self, forKey: .vocabSize)
    layers = try c.decode(Int.self, forKey: .layers)
    embeddingWidth = try c.decode(Int.self, forKey: .embeddingWidth)
    heads = try c.decode(Int.self, forKey: .heads)
    blockSize = try c.decodeIfPresent(Int.self, forKey: .blockSize) ?? 256
    conditionWidth = try c.decodeIfPresent(Int.self, forKey: .conditionWidth) ?? 512
    layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? 1e-5
    hasUnconditionalEmbedding = try c.decodeIfPresent(Bool.self, forKey: .hasUnconditionalEmbedding) ?? false
  }

  /// gpt2_medium of clip-gen: 24 layers, d 1024, 16 heads (336.7M parameters at vocab 16384).
  public static func gpt2Medium(vocabSize: Int = 16384, conditionWidth: Int = 512) -> GPTConfig {
    GPTConfig(vocabSize: vocabSize, layers: 24, embeddingWidth: 1024, heads: 16, conditionWidth: conditionWidth)
  }

  /// Why these sizes cannot describe a model, or nil when they can.
  public var inconsistency: String? {
    if vocabSize < 1 { return "vocab_size \(vocabSize) must be positive" }
    if layers < 0 { return "n_layer \(layers) must not be negative" }
    if embeddingWidth < 1 || heads < 1 { return "n_embd \(embeddingWidth) and n_head \(heads) must be positive" }
    if embeddingWidth % heads != 0 { return "n_embd \(embeddingWidth) is not divisible by n_head \(heads)" }
    if blockSize < 1 { return "block_size \(blockSize) must be positive" }
    if conditionWidth < 1 { return "n_cond_embd \(conditionWidth) must be positive" }
    if !(layerNormEps > 0) { return "layer_norm_eps \(layerNormEps) must be positive" }
    return nil
  }
}

/// Errors loading a GPT directory; each names the file.
public enum GPTLoadError: Error, CustomStringConvertible, Equatable {
  case invalidConfig(file: String, reason: String)

  public var description: String {
    switch self {
    case .invalidConfig(let file, let reason): return "\(file): invalid GPT config: \(reason)"
    }
  }
}

/// One `blocks.{i}.encoder` layer: PyTorch `nn.TransformerEncoderLayer` with `norm_first=True`:
/// `x = x + out_proj(attn(norm1(x)))`, then `x = x + linear2(gelu(linear1(norm2(x))))`. The four
/// weight matrices are streamed (`StreamedLinear`): read in place from a mapped file when stored in
/// the precision asked for, each read once per step for all sequences.
struct GPTBlock: Sendable {
  let norm1: LayerNorm
  /// Packed q, k, v projection, `[3d, d]`.
  let inProj: StreamedLinear
  let outProj: StreamedLinear
  let norm2: LayerNorm
  let linear1: StreamedLinear
  let linear2: StreamedLinear

  init(weights w: WeightSource, prefix p: String, config c: GPTConfig, precision: WeightPrecision?) throws {
    let d = c.embeddingWidth
    let f = c.feedForwardWidth
    func norm(_ name: String) throws -> LayerNorm {
      LayerNorm(
        weight: try w.tensor("\(name).weight", shape: [d]), bias: try w.tensor("\(name).bias", shape: [d]),
        eps: c.layerNormEps)
    }
    norm1 = try norm("\(p).norm1")
    inProj = try StreamedLinear.load(
      w, "\(p).self_attn.in_proj", out: 3 * d, in: d, precision: precision,
      weightName: "\(p).self_attn.in_proj_weight", biasName: "\(p).self_attn.in_proj_bias")
    outProj = try StreamedLinear.load(w, "\(p).self_attn.out_proj", out: d, in: d, precision: precision)
    norm2 = try norm("\(p).norm2")
    linear1 = try StreamedLinear.load(w, "\(p).linear1", out: f, in: d, precision: precision)
    linear2 = try StreamedLinear.load(w, "\(p).linear2", out: d, in: f, precision: precision)
  }
}

/// HFAiLab/clip-gen's conditional GPT prior: p(image tokens | CLIP embedding). Immutable weights,
/// safe to share between threads; decoding state lives in `GPTDecoder`.
public final class ConditionalGPT: Sendable {
  public let config: GPTConfig
  /// `tok_emb.weight`, `[vocab, d]`.
  let tokenEmbedding: Tensor
  /// `pos_emb`, stored `[1, block, d]`, kept `[block, d]`.
  let positionEmbedding: Tensor
  /// `cond_proj`, `n_cond → d`.
  let conditionProjection: Linear
  /// `uncond_emb`, `[d]`: replaces `cond_proj(embed)` at position 0 for unconditional rows.
  let unconditionalEmbedding: Tensor?
  let blocks: [GPTBlock]
  /// Final `norm`.
  let finalNorm: LayerNorm
  /// `head`, `d → vocab`.
  let head: StreamedLinear
  /// How the block and head weights are stored for the products.
  public let weightPrecision: WeightPrecision

  /// Whether every block and head weight is read in place from a memory-mapped file.
  public var weightsAreMapped: Bool {
    head.weight.isMapped
      && blocks.allSatisfy { [$0.inProj, $0.outProj, $0.linear1, $0.linear2].allSatisfy(\.weight.isMapped) }
  }

  /// Whether rows can be run unconditionally (classifier-free guidance).
  public var hasUnconditionalEmbedding: Bool { unconditionalEmbedding != nil }

  /// Reads every tensor by its clip-gen name, checking shapes against `config`. Checkpoint extras
  /// (the `blocks.{i}.mask` buffers) are ignored.
  /// - Parameters:
  ///   - precision: storage of the block and head weights: `.f16` halves the bytes each decoding
  ///     step streams (products still accumulate in f32); nil keeps what the file stores (F16
  ///     stays f16, anything else is f32). Weights already stored in that precision in a
  ///     safetensors file are used in place from its memory mapping.
  /// - Throws: `GPTLoadError.invalidConfig` for inconsistent sizes; `WeightError` naming the file and
  ///   tensor for a missing or wrongly shaped tensor.
  public init(weights w: WeightSource, config c: GPTConfig, precision: WeightPrecision? = nil) throws {
    if let reason = c.inconsistency { throw GPTLoadError.invalidConfig(file: w.sourceDescription, reason: reason) }
    let d = c.embeddingWidth
    config = c
    tokenEmbedding = try w.tensor("tok_emb.weight", shape: [c.vocabSize, d])
    positionEmbedding = try w.tensor("pos_emb", count: c.blockSize * d, as: [c.blockSize, d])
    conditionProjection = Linear(
      weight: try w.tensor("cond_proj.weight", shape: [d, c.conditionWidth]),
      bias: try w.tensor("cond_proj.bias", shape: [d]))
    unconditionalEmbedding = c.hasUnconditionalEmbedding ? try w.tensor("uncond_emb", count: d, as: [d]) : nil
    blocks = try (0..<c.layers).map {
      try GPTBlock(weights: w, prefix: "blocks.\($0).encoder", config: c, precision: precision)
    }
    finalNorm = LayerNorm(
      weight: try w.tensor("norm.weight", shape: [d]), bias: try w.tensor("norm.bias", shape: [d]), eps: c.layerNormEps)
    head = try StreamedLinear.load(w, "head", out: c.vocabSize, in: d, precision: precision)
    weightPrecision = head.weight.precision
  }

  /// Loads `config.json` and `model.safetensors` from a model directory (`precision` as in `init`).
  public static func load(directory: URL, precision: WeightPrecision? = nil) throws -> ConditionalGPT {
    let configURL = directory.appendingPathComponent("config.json")
    let data: Data
    do {
      data = try Data(contentsOf: configURL)
    } catch {
      throw GPTLoadError.invalidConfig(file: configURL.path, reason: "cannot read: \(error.localizedDescription)")
    }
    let config: GPTConfig
    do {
      config = try JSONDecoder().decode(GPTConfig.self, from: data)
    } catch {
      throw GPTLoadError.invalidConfig(file: configURL.path, reason: "\(error)")
    }
    if let reason = config.inconsistency { throw GPTLoadError.invalidConfig(file: configURL.path, reason: reason) }
    let weights = try SafeTensorsFile(url: directory.appendingPathComponent("model.safetensors"))
    return try ConditionalGPT(weights: weights, config: config, precision: precision)
  }

  /// Full forward pass without a cache (HFAiLab's `GPT.forward`): logits at every position.
  /// All sequences go through each weight matrix together, in one GEMM.
  /// - Parameters:
  ///   - tokens: `B` token sequences of one length `L` (`L + 1 ≤ block_size`; may be 0).
  ///   - conditions: CLIP embeddings `[B, n_cond]` (rows of unconditional sequences are ignored).
  ///   - unconditional: per sequence, use `uncond_emb` at position 0 instead of `cond_proj(embed)`.
  /// - Returns: logits `[B, L + 1, vocab]`; position `i` predicts token `i`.
  public func logits(tokens: [[Int]], conditions: Tensor, unconditional: [Bool]? = nil) -> Tensor {
    let batch = tokens.count
    let length = (tokens.first?.count ?? 0) + 1
    precondition(batch > 0, "ConditionalGPT.logits: no sequences")
    precondition(tokens.allSatisfy { $0.count == length - 1 }, "ConditionalGPT.logits: sequences differ in length")
    precondition(
      length <= config.blockSize, "ConditionalGPT.logits: \(length) positions exceed block_size \(config.blockSize)")
    let workspace = GPTWorkspace(config: config, rows: batch * length, attentionScratch: length * length)
    var out = Tensor(zeros: [batch, length, config.vocabSize])
    embedSequences(tokens, conditions: conditions, unconditional: unconditional, workspace: workspace)
    out.withUnsafeMutableBufferPointer { o in
      transform(workspace: workspace, batch: batch, newPositions: length, start: 0, cache: nil, logits: o.baseAddress!)
    }
    return out
  }

  /// The residual stream `[B, L + 1, d]` after the first `blocks` blocks (a diagnostic: it tells a
  /// block error from a head error).
  func hiddenStates(tokens: [[Int]], conditions: Tensor, afterBlocks count: Int) -> Tensor {
    let batch = tokens.count
    let length = (tokens.first?.count ?? 0) + 1
    let d = config.embeddingWidth
    let workspace = GPTWorkspace(config: config, rows: batch * length, attentionScratch: length * length)
    embedSequences(tokens, conditions: conditions, unconditional: nil, workspace: workspace)
    transform(
      workspace: workspace, batch: batch, newPositions: length, start: 0, cache: nil, logits: nil, blockCount: count)
    return Tensor(
      shape: [batch, length, d], scalars: Array(UnsafeBufferPointer(start: workspace.x, count: batch * length * d)))
  }

  private func embedSequences(_ tokens: [[Int]], conditions: Tensor, unconditional: [Bool]?, workspace: GPTWorkspace) {
    let length = (tokens.first?.count ?? 0) + 1
    embedConditions(
      conditions, unconditional: unconditional, batch: tokens.count, workspace: workspace, rowStride: length)
    for b in tokens.indices {
      for i in 1..<length {
        embedToken(tokens[b][i - 1], position: i, into: workspace.x + (b * length + i) * config.embeddingWidth)
      }
    }
  }

  // MARK: - Shared by the full forward and the decoding session

  /// Writes position 0 (`cond_proj(embed)` or `uncond_emb`, plus `pos_emb[0]`) of each sequence into
  /// `workspace.x` rows `b·rowStride`.
  func embedConditions(
    _ conditions: Tensor, unconditional: [Bool]?, batch: Int, workspace ws: GPTWorkspace, rowStride: Int
  ) {
    let d = config.embeddingWidth
    precondition(
      conditions.count == batch * config.conditionWidth,
      "ConditionalGPT: conditions \(conditions.shape) for \(batch) sequences of width \(config.conditionWidth)")
    if let unconditional {
      precondition(
        unconditional.count == batch,
        "ConditionalGPT: \(unconditional.count) unconditional flags for \(batch) sequences")
      precondition(
        !unconditional.contains(true) || unconditionalEmbedding != nil,
        "ConditionalGPT: unconditional rows requested but the model has no uncond_emb")
    }
    // cond_proj of all rows in one GEMM, into the scratch `h` (it holds at least `batch` rows).
    conditions.withUnsafeBufferPointer { cp in conditionProjection.forward(cp.baseAddress!, rows: batch, into: ws.h) }
    positionEmbedding.withUnsafeBufferPointer { pos in
      for b in 0..<batch {
        let row = ws.x + b * rowStride * d
        if unconditional?[b] == true, let u = unconditionalEmbedding {
          u.withUnsafeBufferPointer { row.update(from: $0.baseAddress!, count: d) }
        } else {
          row.update(from: ws.h + b * d, count: d)
        }
        addInPlace(row, pos.baseAddress!, count: d)
      }
    }
  }

  /// Writes `tok_emb[token] + pos_emb[position]` into `row`.
  @inline(__always)
  func embedToken(_ token: Int, position: Int, into row: FloatPointer) {
    let d = config.embeddingWidth
    precondition(
      token >= 0 && token < config.vocabSize, "ConditionalGPT: token \(token) outside 0..<\(config.vocabSize)")
    tokenEmbedding.withUnsafeBufferPointer { row.update(from: $0.baseAddress! + token * d, count: d) }
    positionEmbedding.withUnsafeBufferPointer { addInPlace(row, $0.baseAddress! + position * d, count: d) }
  }

  /// Where the attention of a `transform` call finds keys and values.
  struct CacheBuffers {
    let keys: UnsafeMutableRawPointer
    let values: UnsafeMutableRawPointer
    /// Positions per (layer, sequence) slab; slabs are `capacity × d` elements, ordered
    /// layer-major (`GPTKeyValueCache.offset(layer:sequence:position:)`).
    let capacity: Int
    /// f32, or f16 (half the bytes the attention reads at every step).
    let precision: WeightPrecision
  }

  /// Runs the blocks, the final norm and the head on `workspace.x`: `batch` sequences of
  /// `newPositions` rows each (sequence-major), at absolute positions `start…`. Without `cache`,
  /// attention reads keys and values straight from the packed projections (a full forward, `start`
  /// 0); with it, the new keys and values are appended at `start` and attention reads the cache.
  /// Writes `batch·newPositions` rows of logits (with `logits` nil, only the residual stream after
  /// the first `blockCount` blocks is computed, left in `workspace.x`).
  func transform(
    workspace ws: GPTWorkspace, batch: Int, newPositions n: Int, start p: Int, cache: CacheBuffers?,
    logits: FloatPointer?, blockCount: Int? = nil
  ) {
    let c = config
    let d = c.embeddingWidth
    let rows = batch * n
    let heads = c.heads
    let hd = c.headDim
    precondition(rows <= ws.rows, "GPT workspace holds \(ws.rows) rows, asked for \(rows)")
    for (l, block) in blocks.prefix(blockCount ?? blocks.count).enumerated() {
      // Attention sub-layer: x += out_proj(attn(norm1(x))).
      block.norm1.forward(ws.x, rows: rows, into: ws.h)
      block.inProj.forward(ws.h, rows: rows, into: ws.qkv)
      if let cache {
        // Append the new keys and values (converted to the cache's precision).
        for b in 0..<batch {
          let slab = (l * batch + b) * cache.capacity * d
          for i in 0..<n {
            let src = ws.qkv + (b * n + i) * 3 * d
            let at = slab + (p + i) * d
            switch cache.precision {
            case .f32:
              (cache.keys.assumingMemoryBound(to: Float.self) + at).update(from: src + d, count: d)
              (cache.values.assumingMemoryBound(to: Float.self) + at).update(from: src + 2 * d, count: d)
            case .f16:
              ck_f32_to_f16(src + d, cache.keys.assumingMemoryBound(to: UInt16.self) + at, d)
              ck_f32_to_f16(src + 2 * d, cache.values.assumingMemoryBound(to: UInt16.self) + at, d)
            }
          }
        }
        if n == 1 {
          gptDecodeAttention(
            queries: ws.qkv, queryStride: 3 * d, cache: cache, base: l * batch * cache.capacity * d,
            sequenceStride: cache.capacity * d, visible: p + 1, batch: batch, heads: heads, headDim: hd, out: ws.ctx,
            scratch: ws.scores)
        } else {
          precondition(cache.precision == .f32, "several new positions at once need an f32 cache")
          let keys = cache.keys.assumingMemoryBound(to: Float.self)
          let values = cache.values.assumingMemoryBound(to: Float.self)
          for b in 0..<batch {
            let slab = (l * batch + b) * cache.capacity * d
            scaledDotProductAttention(
              q: ws.qkv + b * n * 3 * d, qStride: 3 * d, k: keys + slab, v: values + slab, kvStride: d,
              out: ws.ctx + b * n * d, outStride: d, queries: n, keys: p + n, heads: heads, headDim: hd,
              causalOffset: p,
              scratch: ws.scores)
          }
        }
      } else {
        precondition(p == 0, "a forward without cache starts at position 0")
        for b in 0..<batch {
          let base = ws.qkv + b * n * 3 * d
          scaledDotProductAttention(
            q: base, qStride: 3 * d, k: base + d, v: base + 2 * d, kvStride: 3 * d, out: ws.ctx + b * n * d,
            outStride: d,
            queries: n, keys: n, heads: heads, headDim: hd, causalOffset: 0, scratch: ws.scores)
        }
      }
      block.outProj.forward(ws.ctx, rows: rows, into: ws.x, epilogue: .accumulate)
      // Feed-forward sub-layer: x += linear2(gelu(linear1(norm2(x)))).
      block.norm2.forward(ws.x, rows: rows, into: ws.h)
      block.linear1.forward(ws.h, rows: rows, into: ws.ff, epilogue: .gelu)
      block.linear2.forward(ws.ff, rows: rows, into: ws.x, epilogue: .accumulate)
    }
    guard let logits else { return }
    finalNorm.forward(ws.x, rows: rows, into: ws.h)
    head.forward(ws.h, rows: rows, into: logits)
  }
}

/// Activation buffers for `rows` rows of one forward step, allocated once. Owned by one session or
/// call; never shared between threads.
final class GPTWorkspace {
  let rows: Int
  /// Residual stream `[rows, d]`.
  let x: FloatPointer
  /// Normalised rows `[rows, d]` (also cond_proj's output at position 0).
  let h: FloatPointer
  /// Packed q, k, v `[rows, 3d]`.
  let qkv: FloatPointer
  /// Attention output before out_proj `[rows, d]`.
  let ctx: FloatPointer
  /// Feed-forward hidden `[rows, 4d]`.
  let ff: FloatPointer
  /// Attention scores.
  let scores: FloatPointer
  private let sizes: [Int]

  init(config c: GPTConfig, rows: Int, attentionScratch: Int) {
    let d = c.embeddingWidth
    self.rows = rows
    sizes = [rows * d, rows * d, rows * 3 * d, rows * d, rows * c.feedForwardWidth, max(attentionScratch, 1)]
    let buffers = sizes.map { n -> FloatPointer in
      let p = FloatPointer.allocate(capacity: n)
      p.initialize(repeating: 0, count: n)
      return p
    }
    (x, h, qkv, ctx, ff, scores) = (buffers[0], buffers[1], buffers[2], buffers[3], buffers[4], buffers[5])
  }

  deinit {
    for p in [x, h, qkv, ctx, ff, scores] { p.deallocate() }
  }
}
