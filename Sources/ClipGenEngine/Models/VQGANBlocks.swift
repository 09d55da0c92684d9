// The VQGAN's building blocks (taming-transformers' `model.py`: GroupNorm, ResnetBlock, AttnBlock,
// the mid block, the encoder and decoder levels) and the activation buffers they share; the
// kernels they call are in Kernels/VQKernels.swift and Kernels/VQConv.swift.
import Foundation

// MARK: - Building blocks

/// `Normalize` in taming: `nn.GroupNorm(32, C, eps, affine=True)`.
struct VQGroupNorm: Sendable {
  let gamma: [Float]
  let beta: [Float]
  let eps: Float
  var channels: Int { gamma.count }

  func forward(
    _ src: UnsafePointer<Float>, _ g: VQPlaneGeometry, swish: Bool, into dst: FloatPointer, compact: Bool = false
  ) {
    gamma.withUnsafeBufferPointer { gp in
      beta.withUnsafeBufferPointer { bp in
        VQKernels.groupNorm(
          src, g, channels: channels, groups: 32, gamma: gp.baseAddress!, beta: bp.baseAddress!, eps: eps, swish: swish,
          into: dst, compactOutput: compact)
      }
    }
  }
}

/// taming `ResnetBlock` (no time embedding, dropout off): `x + conv2(swish(norm2(conv1(swish(norm1(x))))))`,
/// with `nin_shortcut` (1×1) on `x` when the channel count changes.
struct VQResnetBlock: Sendable {
  let norm1: VQGroupNorm
  let conv1: VQConv3x3
  let norm2: VQGroupNorm
  let conv2: VQConv3x3
  let shortcut: VQConv1x1?
  /// conv2's bias plus the shortcut's.
  let outputBias: [Float]

  init(_ w: VQWeightReader, _ prefix: String, _ inChannels: Int, _ outChannels: Int) throws {
    norm1 = try w.norm(prefix + ".norm1", inChannels)
    conv1 = try w.conv3(prefix + ".conv1", inChannels, outChannels)
    norm2 = try w.norm(prefix + ".norm2", outChannels)
    conv2 = try w.conv3(prefix + ".conv2", outChannels, outChannels)
    if inChannels != outChannels {
      let s = try w.conv1(prefix + ".nin_shortcut", inChannels, outChannels)
      shortcut = s
      outputBias = zip(conv2.bias, s.bias).map { $0 + $1 }
    } else {
      shortcut = nil
      outputBias = conv2.bias
    }
  }

  /// `ws.x` → `ws.x` (buffers rotate).
  func forward(_ ws: VQGANWorkspace, _ g: VQPlaneGeometry) {
    norm1.forward(ws.x, g, swish: true, into: ws.t)
    conv1.forward(ws.t, g, into: ws.u, scratch: ws.cols)
    norm2.forward(ws.u, g, swish: true, into: ws.t)
    if let shortcut {
      conv2.forward(ws.t, g, into: ws.u, finishOutput: false, scratch: ws.cols)
      shortcut.forward(ws.x, g, into: ws.u, accumulate: true, finishOutput: false)
      outputBias.withUnsafeBufferPointer {
        VQKernels.finish(ws.u, channels: conv2.outChannels, g, bias: $0.baseAddress!)
      }
      swap(&ws.x, &ws.u)
    } else {
      // The residual is the GEMMs' accumulator: conv2 adds straight into x.
      conv2.forward(ws.t, g, into: ws.x, accumulate: true, scratch: ws.cols)
    }
  }
}

/// taming `AttnBlock`: single-head self-attention over the H·W positions with 1×1 q, k, v and
/// `proj_out`, scale C^−½, softmax over keys, residual. q, k, v run as one stacked GEMM.
struct VQAttnBlock: Sendable {
  let norm: VQGroupNorm
  /// `[3C, C]` (q; k; v) and `[3C]`.
  let qkvWeight: [Float]
  let qkvBias: [Float]
  let proj: VQConv1x1
  var channels: Int { proj.outChannels }

  init(_ w: VQWeightReader, _ prefix: String, _ channels: Int) throws {
    norm = try w.norm(prefix + ".norm", channels)
    let parts = try ["q", "k", "v"].map { try w.conv1(prefix + "." + $0, channels, channels) }
    qkvWeight = parts.flatMap { $0.weight }
    qkvBias = parts.flatMap { $0.bias }
    proj = try w.conv1(prefix + ".proj_out", channels, channels)
  }

  /// Floats of scratch for an activation of `positions` pixels.
  static func scratchNeeded(channels c: Int, positions n: Int) -> Int { 5 * c * n + n * n }

  func forward(_ ws: VQGANWorkspace, _ g: VQPlaneGeometry) {
    let (c, n) = (channels, g.height * g.width)
    let h = ws.attention
    let qkv = h + c * n
    let scores = qkv + 3 * c * n
    let context = scores + n * n
    norm.forward(ws.x, g, swish: false, into: h, compact: true)
    qkvWeight.withUnsafeBufferPointer { wp in
      VQKernels.gemm(m: 3 * c, n: n, k: c, a: wp.baseAddress!, lda: c, b: h, ldb: n, c: qkv, ldc: n)
    }
    qkvBias.withUnsafeBufferPointer { bp in
      VQKernels.parallel(3 * c, work: 3 * c * n) { r in
        let row = qkv + r * n
        let b = bp[r]
        for i in 0..<n { row[i] += b }
      }
    }
    let (q, k, v) = (qkv, qkv + c * n, qkv + 2 * c * n)
    // scores[i, j] = Σ_c q[c, i]·k[c, j] / √C; softmax over j; context[c, i] = Σ_j v[c, j]·scores[i, j].
    VQKernels.gemm(
      transA: true, m: n, n: n, k: c, alpha: 1 / Float(c).squareRoot(), a: q, lda: n, b: k, ldb: n, c: scores, ldc: n)
    VQKernels.parallel(n, work: n * n * 8) { i in softmaxInPlace(scores + i * n, count: n) }
    VQKernels.gemm(transB: true, m: c, n: n, k: n, a: v, lda: n, b: scores, ldb: n, c: context, ldc: n)
    proj.weight.withUnsafeBufferPointer { wp in
      VQKernels.gemm(m: c, n: n, k: c, a: wp.baseAddress!, lda: c, b: context, ldb: n, c: h, ldc: n)
    }
    proj.bias.withUnsafeBufferPointer { VQKernels.addCompact(h, bias: $0.baseAddress!, channels: c, into: ws.x, g) }
  }
}

/// The mid section shared by encoder and decoder: ResnetBlock, AttnBlock, ResnetBlock.
struct VQMid: Sendable {
  let block1: VQResnetBlock
  let attention: VQAttnBlock
  let block2: VQResnetBlock

  init(_ w: VQWeightReader, _ prefix: String, _ channels: Int) throws {
    block1 = try VQResnetBlock(w, prefix + ".mid.block_1", channels, channels)
    attention = try VQAttnBlock(w, prefix + ".mid.attn_1", channels)
    block2 = try VQResnetBlock(w, prefix + ".mid.block_2", channels, channels)
  }

  var convs: [VQConv3x3] { [block1.conv1, block1.conv2, block2.conv1, block2.conv2] }

  func forward(_ ws: VQGANWorkspace, _ g: VQPlaneGeometry) {
    block1.forward(ws, g)
    attention.forward(ws, g)
    block2.forward(ws, g)
  }
}

/// One resolution level: ResnetBlocks, each followed by an AttnBlock where the level has attention,
/// then the resampling conv (Downsample in the encoder, Upsample's conv in the decoder).
struct VQLevel: Sendable {
  let blocks: [VQResnetBlock]
  let attentions: [VQAttnBlock]
  let resample: VQConv3x3?

  /// The blocks' convs and the resampling conv (all reading this level's geometry in the encoder).
  var convs: [VQConv3x3] { blocks.flatMap { [$0.conv1, $0.conv2] } + (resample.map { [$0] } ?? []) }

  func forwardBlocks(_ ws: VQGANWorkspace, _ g: VQPlaneGeometry) {
    for (j, block) in blocks.enumerated() {
      block.forward(ws, g)
      if !attentions.isEmpty { attentions[j].forward(ws, g) }
    }
  }
}

/// taming `Encoder` (`double_z` false): image → `[z_channels, H/f, W/f]`.
struct VQEncoder: Sendable {
  let convIn: VQConv3x3
  let levels: [VQLevel]
  let mid: VQMid
  let normOut: VQGroupNorm
  let convOut: VQConv3x3

  init(_ w: VQWeightReader, _ config: VQGANConfig) throws {
    let ch = config.ch
    convIn = try w.conv3("encoder.conv_in", config.inChannels, ch)
    var levels: [VQLevel] = []
    var blockIn = ch
    for i in 0..<config.levels {
      let blockOut = ch * config.chMult[i]
      var blocks: [VQResnetBlock] = []
      var attentions: [VQAttnBlock] = []
      let attend = config.attnResolutions.contains(config.resolution >> i)
      for j in 0..<config.numResBlocks {
        blocks.append(try VQResnetBlock(w, "encoder.down.\(i).block.\(j)", blockIn, blockOut))
        blockIn = blockOut
        if attend { attentions.append(try VQAttnBlock(w, "encoder.down.\(i).attn.\(j)", blockIn)) }
      }
      let down =
        i == config.levels - 1 ? nil : try w.conv3("encoder.down.\(i).downsample.conv", blockIn, blockIn, stride: 2)
      levels.append(VQLevel(blocks: blocks, attentions: attentions, resample: down))
    }
    self.levels = levels
    mid = try VQMid(w, "encoder", blockIn)
    normOut = try w.norm("encoder.norm_out", blockIn)
    convOut = try w.conv3("encoder.conv_out", blockIn, config.zChannels)
  }

  /// Every 3×3 conv with the level whose geometry it reads (for sizing scratch).
  var convs: [(conv: VQConv3x3, level: Int)] {
    var all: [(conv: VQConv3x3, level: Int)] = [(convIn, 0), (convOut, levels.count - 1)]
    for (i, level) in levels.enumerated() {
      all += level.convs.map { ($0, i) }
    }
    all += mid.convs.map { ($0, levels.count - 1) }
    return all
  }

  /// Bordered image in `ws.t` → latent in `ws.x`; returns the latent's geometry.
  func forward(_ ws: VQGANWorkspace, _ g0: VQPlaneGeometry) -> VQPlaneGeometry {
    var g = g0
    convIn.forward(ws.t, g, into: ws.x, scratch: ws.cols)
    for level in levels {
      level.forwardBlocks(ws, g)
      if let down = level.resample {
        down.forward(ws.x, g, into: ws.t, scratch: ws.cols)
        g = g.downsampled()
        swap(&ws.x, &ws.t)
      }
    }
    mid.forward(ws, g)
    normOut.forward(ws.x, g, swish: true, into: ws.t)
    convOut.forward(ws.t, g, into: ws.x, scratch: ws.cols)
    return g
  }
}

/// taming `Decoder` (`give_pre_end` and `tanh_out` false): `[z_channels, h, w]` → image.
struct VQDecoder: Sendable {
  let convIn: VQConv3x3
  let mid: VQMid
  /// Indexed by level (0 = full resolution); run from the last to the first.
  let levels: [VQLevel]
  let normOut: VQGroupNorm
  let convOut: VQConv3x3

  init(_ w: VQWeightReader, _ config: VQGANConfig) throws {
    let ch = config.ch
    var blockIn = ch * config.chMult[config.levels - 1]
    convIn = try w.conv3("decoder.conv_in", config.zChannels, blockIn)
    mid = try VQMid(w, "decoder", blockIn)
    var levels: [VQLevel?] = Array(repeating: nil, count: config.levels)
    for i in (0..<config.levels).reversed() {
      let blockOut = ch * config.chMult[i]
      var blocks: [VQResnetBlock] = []
      var attentions: [VQAttnBlock] = []
      let attend = config.attnResolutions.contains(config.resolution >> i)
      for j in 0...config.numResBlocks {
        blocks.append(try VQResnetBlock(w, "decoder.up.\(i).block.\(j)", blockIn, blockOut))
        blockIn = blockOut
        if attend { attentions.append(try VQAttnBlock(w, "decoder.up.\(i).attn.\(j)", blockIn)) }
      }
      let up = i == 0 ? nil : try w.conv3("decoder.up.\(i).upsample.conv", blockIn, blockIn)
      levels[i] = VQLevel(blocks: blocks, attentions: attentions, resample: up)
    }
    self.levels = levels.compactMap { $0 }
    normOut = try w.norm("decoder.norm_out", blockIn)
    convOut = try w.conv3("decoder.conv_out", blockIn, config.outCh)
  }

  /// Every 3×3 conv with the level whose geometry it reads (for sizing scratch): a level's
  /// Upsample conv reads the next level up's geometry.
  var convs: [(conv: VQConv3x3, level: Int)] {
    var all: [(conv: VQConv3x3, level: Int)] = [(convIn, levels.count - 1), (convOut, 0)]
    for (i, level) in levels.enumerated() {
      all += level.blocks.flatMap { [($0.conv1, i), ($0.conv2, i)] }
      if let up = level.resample { all.append((up, i - 1)) }
    }
    all += mid.convs.map { ($0, levels.count - 1) }
    return all
  }

  /// `[z_channels]` activation in `ws.x` at the grid's geometry → image.
  func forward(_ ws: VQGANWorkspace, _ g0: VQPlaneGeometry) -> Tensor {
    var g = g0
    convIn.forward(ws.x, g, into: ws.t, scratch: ws.cols)
    swap(&ws.x, &ws.t)
    mid.forward(ws, g)
    for i in levels.indices.reversed() {
      levels[i].forwardBlocks(ws, g)
      if let up = levels[i].resample {
        VQKernels.upsample2x(ws.x, g, channels: up.inChannels, into: ws.t)
        g = g.doubled()
        up.forward(ws.t, g, into: ws.x, scratch: ws.cols)
      }
    }
    normOut.forward(ws.x, g, swish: true, into: ws.t)
    var image = Tensor(zeros: [convOut.outChannels, g.height, g.width])
    image.withUnsafeMutableBufferPointer {
      convOut.forwardCompact(ws.t, g, into: $0.baseAddress!, spare: ws.u, scratch: ws.cols)
    }
    return image
  }
}

// MARK: - Activation buffers

/// The buffers one encode or decode call works in: three bordered activations that rotate between
/// layers (`x` holds the running activation), attention scratch and convolution scratch. Sized for
/// the largest level; freed on release. Owned by one call at a time: a VQGAN hands its spare out
/// and takes it back under its lock, hence `@unchecked Sendable`.
final class VQGANWorkspace: @unchecked Sendable {
  /// What the buffers were sized for.
  struct Key: Equatable {
    let top: VQPlaneGeometry
    let topLevel: Int
  }

  let key: Key
  var x: FloatPointer
  var t: FloatPointer
  var u: FloatPointer
  let attention: FloatPointer
  let cols: FloatPointer
  private let activationCapacity: Int
  private let attentionCapacity: Int
  private let colsCapacity: Int

  /// `top` is the geometry at level `topLevel` (the grid at the last level for decoding, the image
  /// at level 0 for encoding); other levels halve or double from there.
  init(config: VQGANConfig, top: VQPlaneGeometry, topLevel: Int, convs: [(conv: VQConv3x3, level: Int)]) {
    key = Key(top: top, topLevel: topLevel)
    let levels = config.levels
    var activation = 0
    var attention = 0
    var cols = 0
    for i in 0..<levels {
      let shift = i - topLevel
      let g =
        shift >= 0
        ? VQPlaneGeometry(height: top.height >> shift, width: top.width >> shift)
        : VQPlaneGeometry(height: top.height << -shift, width: top.width << -shift)
      var channels = [config.ch * config.chMult[i], config.ch * config.chMult[max(i - 1, 0)]]
      channels.append(config.ch * config.chMult[min(i + 1, levels - 1)])
      if i == 0 { channels += [config.inChannels, config.ch, config.outCh] }
      if i == levels - 1 { channels += [config.zChannels, config.embedDim] }
      activation = max(activation, channels.max()! * g.plane + g.slack)
      let n = g.height * g.width
      if config.attnResolutions.contains(config.resolution >> i) || i == levels - 1 {
        attention = max(attention, VQAttnBlock.scratchNeeded(channels: config.ch * config.chMult[i], positions: n))
      }
      for (conv, level) in convs where level == i { cols = max(cols, conv.scratchNeeded(g)) }
    }
    activationCapacity = activation
    attentionCapacity = attention
    colsCapacity = max(cols, 1)
    x = Self.allocate(activation)
    t = Self.allocate(activation)
    u = Self.allocate(activation)
    self.attention = Self.allocate(attention)
    self.cols = Self.allocate(colsCapacity)
  }

  /// Floats, 2 MiB-aligned and marked for transparent huge pages where the kernel allows (Linux
  /// `madvise` mode): a 256² decode works in ~120 MB, and 4 KiB pages cost tens of thousands of
  /// page faults (and TLB misses in the GEMMs). Not zeroed: every kernel writes what it later
  /// reads (borders included); values past the planes only ever reach discarded outputs.
  private static func allocate(_ count: Int) -> FloatPointer {
    let bytes = max(count, 1) * MemoryLayout<Float>.stride
    let huge = 2 << 20
    let alignment = bytes >= huge ? huge : 64
    let rounded = (bytes + alignment - 1) / alignment * alignment
    var raw: UnsafeMutableRawPointer?
    guard posix_memalign(&raw, alignment, rounded) == 0, let raw else {
      fatalError("VQGAN: cannot allocate \(rounded) bytes of activations")
    }
    #if os(Linux)
      if alignment == huge { _ = madvise(raw, rounded, MADV_HUGEPAGE) }
    #endif
    return raw.bindMemory(to: Float.self, capacity: rounded / MemoryLayout<Float>.stride)
  }

  private static func release(_ p: FloatPointer) { free(p) }

  deinit {
    for p in [x, t, u, attention, cols] { Self.release(p) }
  }
}
