// OpenAI CLIP's image transform (clip/clip.py `_transform`), reproduced exactly:
//   Resize(n, interpolation=BICUBIC) → CenterCrop(n) → convert("RGB") → ToTensor() →
//   Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
// on a PIL image. The resize is Pillow's (see Resampling.swift); sizes follow torchvision.
// Note Hugging Face's CLIPImageProcessor differs in the crop offset (floor instead of
// round-half-even) and so can be a pixel off; OpenAI's transform is the reference here.

/// Turns images into the [3, n, n] tensors CLIP's vision tower takes.
public struct CLIPImagePreprocessor: Sendable, Equatable {
  /// The input side n (224 for ViT-B/32; the tiny test models use 32).
  public var size: Int
  /// The resize filter (bicubic for CLIP).
  public var filter: ResamplingFilter
  /// The normalisation (`.clip` unless a model says otherwise).
  public var normalization: PixelNormalization
  /// The Pillow release whose resize pass order to reproduce.
  public var passOrder: ResamplingPassOrder

  public init(
    size: Int = 224, filter: ResamplingFilter = .bicubic, normalization: PixelNormalization = .clip,
    passOrder: ResamplingPassOrder = .pillow13
  ) {
    precondition(size > 0, "CLIPImagePreprocessor: size \(size)")
    self.size = size
    self.filter = filter
    self.normalization = normalization
    self.passOrder = passOrder
  }

  /// The 8-bit n×n image CLIP sees: shorter side resized to n, then the centre n×n.
  public func cropped(_ image: RGBImage) -> RGBImage {
    image.resizedShorterSide(to: size, filter: filter, passOrder: passOrder).centerCropped(width: size, height: size)
  }

  /// [3, n, n]: the normalised planes of `cropped(image)`.
  public func preprocess(_ image: RGBImage) -> Tensor {
    cropped(image).tensor(normalization: normalization)
  }

  /// `preprocess(image)`.
  public func callAsFunction(_ image: RGBImage) -> Tensor { preprocess(image) }

  /// [images.count, 3, n, n] for a batch.
  public func batch(_ images: [RGBImage]) -> Tensor {
    var scalars: [Float] = []
    scalars.reserveCapacity(images.count * 3 * size * size)
    for image in images { scalars += preprocess(image).scalars }
    return Tensor(shape: [images.count, 3, size, size], scalars: scalars)
  }
}
