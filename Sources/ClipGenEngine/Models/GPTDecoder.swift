// Autoregressive decoding with a preallocated key/value cache (HFAiLab's `GPT.sample` recomputes
// the whole prefix at every step; this appends one position per step instead). The cache and every
// activation buffer belong to the session, are allocated once in `init`, and are reused by each step.

/// One decoding session of `batch` sequences: `start` runs position 0 (the condition), each `step`
/// appends one token per sequence. Not thread-safe; make one session per concurrent generation
/// (sessions share the model's weights).
///
/// ```swift
/// let decoder = GPTDecoder(model: gpt, batch: 2)
/// decoder.start(conditions: embeddings)                   // logits for token 0
/// for _ in 1..<256 {
///   let next = decoder.withLogits { pick($0) }            // read in place: no copy
///   decoder.step(tokens: next)
/// }
/// ```
public final class GPTDecoder {
  public let model: ConditionalGPT
  /// Sequences decoded together; each weight matrix sees all of them in one GEMM.
  public let batch: Int
  /// Positions the cache holds (`block_size`: the condition and 255 tokens for a 16×16 grid).
  public let capacity: Int
  /// Positions written to the cache so far (0 before `start`, 1 after it).
  public var position: Int { cache.length }
  /// Token steps still possible.
  public var remainingSteps: Int { position == 0 ? 0 : capacity - position }
  /// The most recent logits, `[batch, vocab]` (zeros before `start`). A copy-on-write value: holding
  /// on to it across the next `step` makes that step copy it once; `withLogits` never copies.
  public private(set) var logits: Tensor

  /// How the keys and values are stored (f16 halves the bytes attention reads at every step).
  public var cachePrecision: WeightPrecision { cache.precision }

  private let cache: GPTKeyValueCache
  private let workspace: GPTWorkspace

  /// Allocates the cache (`2 × layers × batch × block_size × d` values) and the step buffers.
  /// - Parameter cachePrecision: storage of the keys and values; nil follows the model's weights
  ///   (an f16 model keeps an f16 cache, an f32 model an exact f32 one).
  public init(model: ConditionalGPT, batch: Int, cachePrecision: WeightPrecision? = nil) {
    precondition(batch > 0, "GPTDecoder: batch must be positive")
    let c = model.config
    self.model = model
    self.batch = batch
    capacity = c.blockSize
    cache = GPTKeyValueCache(
      layers: c.layers, batch: batch, capacity: c.blockSize, width: c.embeddingWidth,
      precision: cachePrecision ?? model.weightPrecision)
    workspace = GPTWorkspace(config: c, rows: batch, attentionScratch: batch * c.heads * c.blockSize)
    logits = Tensor(zeros: [batch, c.vocabSize])
  }

  /// Starts (or restarts) the session at position 0.
  /// - Parameters:
  ///   - conditions: CLIP embeddings `[batch, n_cond]`; rows of unconditional sequences are ignored.
  ///   - unconditional: per sequence, use `uncond_emb` instead of `cond_proj(embed)` (the model must
  ///     have one: `model.hasUnconditionalEmbedding`).
  /// - Returns: logits `[batch, vocab]` for token 0.
  @discardableResult
  public func start(conditions: Tensor, unconditional: [Bool]? = nil) -> Tensor {
    cache.length = 0
    model.embedConditions(conditions, unconditional: unconditional, batch: batch, workspace: workspace, rowStride: 1)
    return advance()
  }

  /// Appends one token to every sequence.
  /// - Parameter tokens: `batch` token ids, the ones just chosen from the previous logits.
  /// - Returns: logits `[batch, vocab]` for the next token.
  @discardableResult
  public func step(tokens: [Int]) -> Tensor {
    precondition(position > 0, "GPTDecoder.step before start")
    precondition(position < capacity, "GPTDecoder.step: the cache is full (\(capacity) positions)")
    precondition(tokens.count == batch, "GPTDecoder.step: \(tokens.count) tokens for a batch of \(batch)")
    let d = model.config.embeddingWidth
    for b in 0..<batch { model.embedToken(tokens[b], position: position, into: workspace.x + b * d) }
    return advance()
  }

  /// Reads the most recent logits (`batch` rows of `vocab`) in place, without copying them.
  public func withLogits<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
    try logits.withUnsafeBufferPointer(body)
  }

  /// Runs the prepared rows at `position` through the model and appends their keys and values.
  private func advance() -> Tensor {
    let p = cache.length
    let ws = workspace
    let (m, b) = (model, batch)
    let buffers = cache.buffers
    logits.withUnsafeMutableBufferPointer { out in
      m.transform(workspace: ws, batch: b, newPositions: 1, start: p, cache: buffers, logits: out.baseAddress!)
    }
    cache.length = p + 1
    return logits
  }
}

/// The key/value cache of one decoding session: `layers × batch` slabs of `capacity × width`
/// values, in f32 or f16, allocated once. Owned by one `GPTDecoder`.
final class GPTKeyValueCache {
  let layers: Int
  let batch: Int
  let capacity: Int
  let width: Int
  let precision: WeightPrecision
  /// Positions written so far (the same for every sequence).
  var length = 0
  private let keys: UnsafeMutableRawPointer
  private let values: UnsafeMutableRawPointer

  init(layers: Int, batch: Int, capacity: Int, width: Int, precision: WeightPrecision) {
    self.layers = layers
    self.batch = batch
    self.capacity = capacity
    self.width = width
    self.precision = precision
    let bytes = max(layers * batch * capacity * width * (precision == .f32 ? 4 : 2), 64)
    keys = .allocate(byteCount: bytes, alignment: 64)
    values = .allocate(byteCount: bytes, alignment: 64)
    keys.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
    values.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
  }

  deinit {
    keys.deallocate()
    values.deallocate()
  }

  /// Element offset of `(layer, sequence, position)`.
  @inline(__always) func offset(layer: Int, sequence: Int, position: Int) -> Int {
    ((layer * batch + sequence) * capacity + position) * width
  }

  var buffers: ConditionalGPT.CacheBuffers {
    ConditionalGPT.CacheBuffers(keys: keys, values: values, capacity: capacity, precision: precision)
  }
}
