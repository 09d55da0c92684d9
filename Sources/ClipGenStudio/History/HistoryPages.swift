// Reading the history list in pages: keyset pagination over the list's order (newest first,
// the id breaking ties; the index generation_order), so any page costs the same however far it
// lies from the newest row, and the list's true count.
import Foundation
import GRDB

/// A row's place in the history list's order (newest first, the id breaking ties).
public struct HistoryCursor: Sendable, Equatable {
  public var createdAt: Date
  public var id: Int64

  public init(createdAt: Date, id: Int64) {
    self.createdAt = createdAt
    self.id = id
  }

  public init(_ entry: HistoryEntry) { self.init(createdAt: entry.generation.createdAt, id: entry.id) }
}

/// Which page of the history list to read (keyset pagination: each page starts from a row's
/// cursor, so reading far from the newest row costs no more than reading near it).
public enum HistoryPage: Sendable, Equatable {
  case newest, oldest
  /// From this row (included) towards older ones.
  case from(HistoryCursor)
  case olderThan(HistoryCursor)
  /// The rows just newer than this one (returned newest first, like every page).
  case newerThan(HistoryCursor)
}

extension HistoryStore {
  /// Generations, newest first, whose prompt, styled prompt or style contains `search`: the page
  /// `page` names, at most `limit` of them (keyset pagination over the list's order).
  public func entries(
    search: String = "", favoritesOnly: Bool = false, page: HistoryPage = .newest, limit: Int = 500
  ) throws -> [HistoryEntry] {
    try read { db in
      var request = filtered(GenerationRecord.all(), search: search, favoritesOnly: favoritesOnly)
      let newestFirst = [Column("createdAt").desc, Column("id").desc]
      let oldestFirst = [Column("createdAt").asc, Column("id").asc]
      var reversed = false
      switch page {
      case .newest: request = request.order(newestFirst)
      case .oldest:
        request = request.order(oldestFirst)
        reversed = true
      case .from(let c): request = request.filter(Self.olderThan(c, inclusive: true)).order(newestFirst)
      case .olderThan(let c): request = request.filter(Self.olderThan(c, inclusive: false)).order(newestFirst)
      case .newerThan(let c):
        request = request.filter(Self.newerThan(c)).order(oldestFirst)
        reversed = true
      }
      var generations = try request.limit(max(0, limit)).fetchAll(db)
      if reversed { generations.reverse() }
      let ids = generations.compactMap(\.id)
      let images = try ImageRecord.filter(ids.contains(Column("generationID"))).order(Column("position")).fetchAll(db)
      let byGeneration = Dictionary(grouping: images, by: \.generationID)
      return generations.map { HistoryEntry(generation: $0, images: byGeneration[$0.id ?? -1] ?? []) }
    }
  }

  /// How many generations match (all of them, or those newer than `newerThan` in the list's
  /// order: the position of that row).
  public func count(search: String = "", favoritesOnly: Bool = false, newerThan: HistoryCursor? = nil) throws -> Int {
    try read { db in
      var request = filtered(GenerationRecord.all(), search: search, favoritesOnly: favoritesOnly)
      if let c = newerThan { request = request.filter(Self.newerThan(c)) }
      return try request.fetchCount(db)
    }
  }

  func filtered(
    _ request: QueryInterfaceRequest<GenerationRecord>, search: String, favoritesOnly: Bool
  ) -> QueryInterfaceRequest<GenerationRecord> {
    var request = request
    let q = search.trimmingCharacters(in: .whitespaces)
    if !q.isEmpty {
      let pattern =
        "%"
        + q.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
        .replacingOccurrences(of: "_", with: "\\_") + "%"
      request = request.filter(
        sql:
          "prompt LIKE ? ESCAPE '\\' OR styledPrompt LIKE ? ESCAPE '\\' OR IFNULL(styleName, '') LIKE ? ESCAPE '\\'",
        arguments: [pattern, pattern, pattern])
    }
    if favoritesOnly { request = request.filter(Column("favorite") == true) }
    return request
  }

  static func olderThan(_ c: HistoryCursor, inclusive: Bool) -> SQLExpression {
    let date = Column("createdAt")
    let id = Column("id")
    return date < c.createdAt || (date == c.createdAt && (inclusive ? id <= c.id : id < c.id))
  }

  static func newerThan(_ c: HistoryCursor) -> SQLExpression {
    let date = Column("createdAt")
    return date > c.createdAt || (date == c.createdAt && Column("id") > c.id)
  }
}
