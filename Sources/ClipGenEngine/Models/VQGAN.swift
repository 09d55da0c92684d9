// The taming-transformers VQGAN (`taming/models/vqgan.py` `VQModel`, building blocks from
// `taming/modules/diffusionmodules/model.py`, quantiser from `taming/modules/vqvae/quantize.py`):
// image ↔ grid of codebook indices. The encoder is optional, so a decoder-only checkpoint loads.
// HFAiLab/clip-gen's re-implementation loads into the same network through a key map
// (`VQGANLayout.hfai`). Kernels (bordered activations, shifted-GEMM convolutions) live in
// Kernels/VQKernels.swift and Kernels/VQConv.swift.
import Foundation
import Synchronization

/// Errors from building or running a VQGAN.
public enum VQGANError: Error, CustomStringConvertible, Equatable {
  case invalidConfig(file: String, reason: String)
  case missingFile(String)
  case gridMismatch(indices: Int, height: Int, width: Int)
  case indexOutOfRange(index: Int, position: Int, codebookSize: Int)
  case encoderMissing(file: String)
  case invalidImage(shape: [Int], reason: String)

  public var description: String {
    switch self {
    case .invalidConfig(let file, let reason): return "\(file): invalid VQGAN config: \(reason)"
    case .missingFile(let path): return "\(path): no such file"
    case .gridMismatch(let n, let h, let w):
      return "VQGAN decode: \(n) indices for a \(h)×\(w) grid (needs \(h * w), and both sides ≥ 1)"
    case .indexOutOfRange(let index, let position, let size):
      return "VQGAN decode: index \(index) at position \(position) is outside the codebook (0..<\(size))"
    case .encoderMissing(let file):
      return "\(file): this VQGAN checkpoint has no encoder (decoder-only), so it cannot encode images"
    case .invalidImage(let shape, let reason): return "VQGAN encode: image of shape \(shape): \(reason)"
    }
  }
}

/// A VQGAN: `decode` turns a grid of codebook indices into an image, `encode` an image into indices.
/// The weights are immutable after loading and calls may run concurrently. The activation buffers
/// of the last call (about 120 MB for a 256² decode) are kept for the next call of the same size,
/// which saves their page faults; `releaseBuffers()` frees them.
public final class VQGAN: Sendable {
  public let config: VQGANConfig
  /// Where the weights came from (for messages).
  public let source: String
  let encoder: VQEncoder?
  let quantConv: VQConv1x1?
  /// `[nEmbed, embedDim]`, and each row's squared norm.
  let codebook: [Float]
  let codebookNorms: [Float]
  let postQuantConv: VQConv1x1
  let decoder: VQDecoder
  /// The buffers of the last call, free for the next one.
  private let spareWorkspace = Mutex<VQGANWorkspace?>(nil)

  /// Whether `encode` is available (the checkpoint has the encoder and `quant_conv`).
  public var hasEncoder: Bool { encoder != nil }

  /// Builds the network from `weights` named as `layout` names them. Errors name the file and the
  /// tensor (missing, or of the wrong shape). The encoder is loaded when `encoder.conv_in.weight`
  /// is present. `winograd` false runs the 3×3 convolutions as nine plain GEMMs instead of
  /// Winograd F(2×2, 3×3) (slower; for comparison).
  public init(
    weights source: WeightSource, config: VQGANConfig, layout: VQGANLayout = .taming, winograd: Bool = true
  ) throws {
    if let problem = config.problems.first {
      throw VQGANError.invalidConfig(file: source.sourceDescription, reason: problem)
    }
    self.config = config
    self.source = source.sourceDescription
    let w = VQWeightReader(source: layout.weights(source, config: config), eps: config.normEps, winograd: winograd)
    let book = try w.tensor("quantize.embedding.weight", shape: [config.nEmbed, config.embedDim])
    codebook = book.scalars
    codebookNorms = (0..<config.nEmbed).map { i in
      var s: Float = 0
      for j in 0..<config.embedDim {
        s += book.scalars[i * config.embedDim + j] * book.scalars[i * config.embedDim + j]
      }
      return s
    }
    postQuantConv = try w.conv1("post_quant_conv", config.embedDim, config.zChannels)
    decoder = try VQDecoder(w, config)
    if w.source.contains("encoder.conv_in.weight") {
      encoder = try VQEncoder(w, config)
      quantConv = try w.conv1("quant_conv", config.zChannels, config.embedDim)
    } else {
      encoder = nil
      quantConv = nil
    }
  }

  /// Loads `config.json` and `model.safetensors` from `directory`. With `layout` nil, HFAiLab's
  /// names are recognised by `quantizer.embedding.weight`.
  public static func load(directory: URL, layout: VQGANLayout? = nil, winograd: Bool = true) throws -> VQGAN {
    try load(
      config: directory.appendingPathComponent("config.json"),
      weights: directory.appendingPathComponent("model.safetensors"), layout: layout, winograd: winograd)
  }

  /// Loads a config JSON and a safetensors file (e.g. the paths a model manifest names).
  public static func load(
    config configURL: URL, weights weightsURL: URL, layout: VQGANLayout? = nil, winograd: Bool = true
  ) throws -> VQGAN {
    guard FileManager.default.fileExists(atPath: configURL.path) else { throw VQGANError.missingFile(configURL.path) }
    guard FileManager.default.fileExists(atPath: weightsURL.path) else { throw VQGANError.missingFile(weightsURL.path) }
    let config: VQGANConfig
    do {
      config = try JSONDecoder().decode(VQGANConfig.self, from: Data(contentsOf: configURL))
    } catch {
      throw VQGANError.invalidConfig(file: configURL.path, reason: "\(error)")
    }
    if let problem = config.problems.first { throw VQGANError.invalidConfig(file: configURL.path, reason: problem) }
    let file = try SafeTensorsFile(url: weightsURL)
    let resolved = layout ?? (file.contains("quantizer.embedding.weight") ? .hfai : .taming)
    return try VQGAN(weights: file, config: config, layout: resolved, winograd: winograd)
  }

  // MARK: Decoding

  /// Decodes a row-major `gridHeight × gridWidth` grid of codebook indices into an image
  /// `[outCh, gridHeight·f, gridWidth·f]` (f = 2^(levels−1); values roughly in [−1, 1], unclamped).
  public func decode(indices: [Int], gridHeight: Int, gridWidth: Int) throws -> Tensor {
    try decodeBatch([indices], gridHeight: gridHeight, gridWidth: gridWidth)[0]
  }

  /// Decodes several grids of the same size, reusing one set of activation buffers.
  public func decodeBatch(_ grids: [[Int]], gridHeight: Int, gridWidth: Int) throws -> [Tensor] {
    for indices in grids { try validate(indices, gridHeight, gridWidth) }
    guard !grids.isEmpty else { return [] }
    let g = VQPlaneGeometry(height: gridHeight, width: gridWidth)
    return withWorkspace(top: g, topLevel: config.levels - 1, convs: decoder.convs) { ws in
      VQKernels.withSingleThreadedBLAS { grids.map { decode($0, g, ws) } }
    }
  }

  /// Frees the activation buffers kept from the last call.
  public func releaseBuffers() {
    spareWorkspace.withLock { $0 = nil }
  }

  /// Runs `body` with the spare workspace when it was sized for the same geometry, else a new one;
  /// the workspace used becomes the spare.
  private func withWorkspace<R>(
    top: VQPlaneGeometry, topLevel: Int, convs: @autoclosure () -> [(conv: VQConv3x3, level: Int)],
    _ body: (VQGANWorkspace) throws -> R
  ) rethrows -> R {
    let key = VQGANWorkspace.Key(top: top, topLevel: topLevel)
    let spare = spareWorkspace.withLock { slot -> VQGANWorkspace? in
      guard let ws = slot, ws.key == key else { return nil }
      slot = nil
      return ws
    }
    let ws = spare ?? VQGANWorkspace(config: config, top: top, topLevel: topLevel, convs: convs())
    defer { spareWorkspace.withLock { $0 = ws } }
    return try body(ws)
  }

  private func validate(_ indices: [Int], _ h: Int, _ w: Int) throws {
    guard h >= 1, w >= 1, indices.count == h * w else {
      throw VQGANError.gridMismatch(indices: indices.count, height: h, width: w)
    }
    if let p = indices.firstIndex(where: { $0 < 0 || $0 >= config.nEmbed }) {
      throw VQGANError.indexOutOfRange(index: indices[p], position: p, codebookSize: config.nEmbed)
    }
  }

  private func decode(_ indices: [Int], _ g: VQPlaneGeometry, _ ws: VQGANWorkspace) -> Tensor {
    let d = config.embedDim
    // Codebook lookup straight into a bordered [embedDim, h, w] activation.
    codebook.withUnsafeBufferPointer { book in
      ws.t.update(repeating: 0, count: d * g.plane)
      for (p, index) in indices.enumerated() {
        let at = g.origin + (p / g.width) * g.rowStride + p % g.width
        let row = book.baseAddress! + index * d
        for c in 0..<d { ws.t[c * g.plane + at] = row[c] }
      }
    }
    postQuantConv.forward(ws.t, g, into: ws.x)
    return decoder.forward(ws, g)
  }

  // MARK: Encoding

  /// Encodes an image `[inChannels, H, W]` with values in [−1, 1] (H and W multiples of f) into its
  /// row-major grid of nearest codebook indices and the pre-quantisation latent (the `quant_conv`
  /// output) `[embedDim, H/f, W/f]`.
  public func encode(_ image: Tensor) throws -> (indices: [Int], latent: Tensor) {
    guard let encoder, let quantConv else { throw VQGANError.encoderMissing(file: source) }
    let f = config.downsamplingFactor
    guard image.shape.count == 3, image.shape[0] == config.inChannels else {
      throw VQGANError.invalidImage(shape: image.shape, reason: "expected [\(config.inChannels), H, W]")
    }
    let (h, w) = (image.shape[1], image.shape[2])
    guard h >= f, w >= f, h % f == 0, w % f == 0 else {
      throw VQGANError.invalidImage(shape: image.shape, reason: "height and width must be positive multiples of \(f)")
    }
    guard image.scalars.allSatisfy({ $0.isFinite }) else {
      throw VQGANError.invalidImage(shape: image.shape, reason: "contains values that are not finite")
    }
    let g = VQPlaneGeometry(height: h, width: w)
    return withWorkspace(top: g, topLevel: 0, convs: encoder.convs) { ws in
      VQKernels.withSingleThreadedBLAS {
        image.withUnsafeBufferPointer { VQKernels.pad($0.baseAddress!, g, channels: config.inChannels, into: ws.t) }
        let lg = encoder.forward(ws, g)
        quantConv.forward(ws.x, lg, into: ws.t)
        var latent = Tensor(zeros: [config.embedDim, lg.height, lg.width])
        latent.withUnsafeMutableBufferPointer {
          VQKernels.unpad(ws.t, lg, channels: config.embedDim, into: $0.baseAddress!)
        }
        return (nearestCodes(latent), latent)
      }
    }
  }

  /// Index of the nearest codebook vector (L2) for each position of a `[embedDim, h, w]` latent,
  /// ties to the lowest index as `argmin` does. Distances come from one GEMM
  /// (‖e‖² − 2·z·e); candidates within float rounding of the best are re-measured in double.
  func nearestCodes(_ latent: Tensor) -> [Int] {
    let (d, n, k) = (config.embedDim, latent.count / config.embedDim, config.nEmbed)
    var scores = [Float](repeating: 0, count: n * k)
    var result = [Int](repeating: 0, count: n)
    latent.withUnsafeBufferPointer { zp in
      codebook.withUnsafeBufferPointer { ep in
        codebookNorms.withUnsafeBufferPointer { np in
          scores.withUnsafeMutableBufferPointer { sp in
            let (z, e, norms, s) = (zp.baseAddress!, ep.baseAddress!, np.baseAddress!, sp.baseAddress!)
            VQKernels.gemm(transA: true, transB: true, m: n, n: k, k: d, a: z, lda: n, b: e, ldb: d, c: s, ldc: k)
            for i in 0..<n {
              let row = s + i * k
              var zz: Float = 0
              for c in 0..<d { zz += z[c * n + i] * z[c * n + i] }
              var best = Float.infinity
              for j in 0..<k {
                let dist = norms[j] - 2 * row[j]
                row[j] = dist
                if dist < best { best = dist }
              }
              let tolerance = 1e-4 * (zz + best.magnitude) + 1e-6
              var bestIndex = -1
              var bestExact = Double.infinity
              for j in 0..<k where row[j] <= best + tolerance {
                var exact = 0.0
                for c in 0..<d {
                  let diff = Double(z[c * n + i]) - Double(e[j * d + c])
                  exact += diff * diff
                }
                if exact < bestExact {
                  bestExact = exact
                  bestIndex = j
                }
              }
              result[i] = bestIndex
            }
          }
        }
      }
    }
    return result
  }
}

// MARK: - Loading

/// Reads layers by taming's names, checking every shape.
struct VQWeightReader {
  let source: WeightSource
  let eps: Float
  var winograd = true

  func tensor(_ name: String, shape: [Int]) throws -> Tensor { try source.tensor(name, shape: shape) }

  func conv3(_ prefix: String, _ inChannels: Int, _ outChannels: Int, stride: Int = 1) throws -> VQConv3x3 {
    VQConv3x3(
      weight: try source.tensor(prefix + ".weight", shape: [outChannels, inChannels, 3, 3]),
      bias: try source.tensor(prefix + ".bias", shape: [outChannels]), stride: stride, winograd: winograd)
  }

  /// A 1×1 conv, stored as `[O, I, 1, 1]` (taming) or `[O, I]` (`nn.Linear`, HFAiLab's out_proj).
  func conv1(_ prefix: String, _ inChannels: Int, _ outChannels: Int) throws -> VQConv1x1 {
    VQConv1x1(
      weight: try source.tensor(prefix + ".weight", count: outChannels * inChannels, as: [outChannels, inChannels]),
      bias: try source.tensor(prefix + ".bias", shape: [outChannels]))
  }

  func norm(_ prefix: String, _ channels: Int) throws -> VQGroupNorm {
    VQGroupNorm(
      gamma: try source.tensor(prefix + ".weight", shape: [channels]).scalars,
      beta: try source.tensor(prefix + ".bias", shape: [channels]).scalars, eps: eps)
  }
}
