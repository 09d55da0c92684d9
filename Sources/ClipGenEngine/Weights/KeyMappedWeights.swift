// Views over weight sources: renamed keys (one architecture, several published key layouts) and
// a union of several files.

/// A `WeightSource` whose tensor names are translated to the base source's names, so one model
/// implementation reads several published layouts (e.g. HFAiLab's VQGAN names → taming's).
public struct KeyMappedWeights: WeightSource {
  public let base: WeightSource
  /// Maps the name the model asks for to the name stored in `base`.
  public let map: @Sendable (String) -> String

  public init(base: WeightSource, map: @escaping @Sendable (String) -> String) {
    self.base = base
    self.map = map
  }

  public var sourceDescription: String { base.sourceDescription }
  public var tensorNames: [String] { base.tensorNames }
  public func shape(of name: String) -> [Int]? { base.shape(of: map(name)) }
  public func tensor(_ name: String) throws -> Tensor { try base.tensor(map(name)) }
  public func storedName(_ name: String) -> String { base.storedName(map(name)) }
}

/// A `WeightSource` over names with a fixed prefix removed, e.g. `model.` or `state_dict.` wrappers.
public struct PrefixedWeights: WeightSource {
  public let base: WeightSource
  public let prefix: String

  public init(base: WeightSource, prefix: String) {
    self.base = base
    self.prefix = prefix
  }

  public var sourceDescription: String { base.sourceDescription }
  public var tensorNames: [String] {
    base.tensorNames.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
  }
  public func shape(of name: String) -> [Int]? { base.shape(of: prefix + name) }
  public func tensor(_ name: String) throws -> Tensor { try base.tensor(prefix + name) }
  public func storedName(_ name: String) -> String { base.storedName(prefix + name) }
}
