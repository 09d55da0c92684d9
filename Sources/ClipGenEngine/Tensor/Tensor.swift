// Dense row-major float32 tensors: the one array type the engine computes on.

/// A dense, row-major `Float` tensor. Storage is a Swift array (copy-on-write); hot loops take its
/// buffer pointer once with `withUnsafe…` and work on that.
public struct Tensor: Sendable, Equatable {
  /// Sizes from outermost to innermost dimension.
  public var shape: [Int]
  /// `shape.reduce(1, *)` values in row-major order.
  public var scalars: [Float]

  /// A tensor with the given values; `scalars.count` must equal the product of `shape`.
  public init(shape: [Int], scalars: [Float]) {
    precondition(shape.reduce(1, *) == scalars.count, "Tensor: \(scalars.count) values for shape \(shape)")
    self.shape = shape
    self.scalars = scalars
  }

  /// A tensor of zeros.
  public init(zeros shape: [Int]) {
    self.shape = shape
    self.scalars = [Float](repeating: 0, count: shape.reduce(1, *))
  }

  /// Number of values.
  @inlinable public var count: Int { scalars.count }

  /// Same values under another shape with the same number of elements.
  public func reshaped(_ newShape: [Int]) -> Tensor {
    Tensor(shape: newShape, scalars: scalars)
  }

  /// Largest absolute value (0 for an empty tensor).
  public var maxAbs: Float { scalars.reduce(0) { max($0, abs($1)) } }

  /// Largest absolute difference from `other`, which must have the same shape.
  public func maxAbsDifference(_ other: Tensor) -> Float {
    precondition(shape == other.shape, "maxAbsDifference: shapes \(shape) and \(other.shape) differ")
    var m: Float = 0
    for i in 0..<scalars.count { m = max(m, abs(scalars[i] - other.scalars[i])) }
    return m
  }

  @inlinable public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
    try scalars.withUnsafeBufferPointer(body)
  }

  @inlinable public mutating func withUnsafeMutableBufferPointer<R>(
    _ body: (inout UnsafeMutableBufferPointer<Float>) throws -> R
  ) rethrows -> R {
    try scalars.withUnsafeMutableBufferPointer(body)
  }
}
