// The history list in the studio: a window of keyset pages around the selection, read again
// after changes and as the selection moves through a list of any length.
import Foundation

extension Studio {
  /// Rows read per page of the history list, and the most kept loaded around the selection.
  static let historyPage = 200
  static let historyWindow = 600

  /// Reads the history list again (after a change, a search or the favourites filter),
  /// selecting `id` (else the row selected before) where it is listed. The window stays where it
  /// was in the list unless the filter changed (then the newest rows) or `id` lies outside it.
  public func reloadHistory(selecting id: Int64?) {
    let keep = id ?? state.selectedEntry?.id
    let store = environment.store
    let (search, favorites) = (state.search, state.favoritesOnly)
    let sameFilter = loadedFilter.map { $0 == (search, favorites) } ?? false
    do {
      state.historyTotal = try store.count(search: search, favoritesOnly: favorites)
      var anchor = sameFilter && state.historyOffset > 0 ? state.history.first.map(HistoryCursor.init) : nil
      if let id, !state.history.contains(where: { $0.id == id }), let e = try store.entry(id: id) {
        anchor = HistoryCursor(e)  // outside the window (a new row, say): load from it
      }
      state.historyOffset =
        try anchor.map { try store.count(search: search, favoritesOnly: favorites, newerThan: $0) } ?? 0
      if state.historyOffset < Self.historyPage { anchor = nil }  // near the top: from the newest row
      state.history = try store.entries(
        search: search, favoritesOnly: favorites, page: anchor.map { .from($0) } ?? .newest, limit: Self.historyWindow)
      if anchor == nil { state.historyOffset = 0 }
      loadedFilter = (search, favorites)
    } catch {
      message("\(error)", .error)
    }
    if let keep, let i = state.history.firstIndex(where: { $0.id == keep }) {
      if i != state.selection { state.previewIndex = 0 }
      state.selection = i
    } else {
      state.selection = min(state.selection, max(0, state.history.count - 1))
    }
    dirty = true
  }

  /// Moves the selection `delta` rows through the whole list, reading pages (keyset) as it
  /// leaves the loaded window and dropping pages far from it.
  func moveSelection(_ delta: Int) {
    guard !state.history.isEmpty else { return }
    let total = max(state.historyTotal, state.historyOffset + state.history.count)
    let target = max(0, min(total - 1, state.historyOffset + state.selection + delta))
    let before = state.selectedEntry?.id
    do {
      try loadHistory(around: target)
    } catch {
      message("\(error)", .error)
    }
    state.selection = max(0, min(state.history.count - 1, target - state.historyOffset))
    if state.selectedEntry?.id != before { state.previewIndex = 0 }
  }

  /// Loads pages until row `target` of the list is in the window: the newest or oldest page for
  /// a jump to an end, else the pages next to the window.
  func loadHistory(around target: Int) throws {
    let store = environment.store
    let (search, favorites) = (state.search, state.favoritesOnly)
    let window = Self.historyWindow
    if target < state.historyOffset - window || target == 0 && state.historyOffset > 0 {
      state.history = try store.entries(search: search, favoritesOnly: favorites, limit: window)
      state.historyOffset = 0
    } else if target >= state.historyOffset + state.history.count + window || target == state.historyTotal - 1 {
      guard target >= state.historyOffset + state.history.count else { return }
      state.history = try store.entries(search: search, favoritesOnly: favorites, page: .oldest, limit: window)
      state.historyOffset = max(0, state.historyTotal - state.history.count)
    }
    while target < state.historyOffset, let first = state.history.first {
      let page = try store.entries(
        search: search, favoritesOnly: favorites, page: .newerThan(HistoryCursor(first)), limit: Self.historyPage)
      if page.isEmpty { break }
      state.history = page + state.history
      state.historyOffset = max(0, state.historyOffset - page.count)
      if state.history.count > window + Self.historyPage { state.history.removeLast(state.history.count - window) }
    }
    while target >= state.historyOffset + state.history.count, let last = state.history.last {
      let page = try store.entries(
        search: search, favoritesOnly: favorites, page: .olderThan(HistoryCursor(last)), limit: Self.historyPage)
      if page.isEmpty { break }
      state.history += page
      if state.history.count > window + Self.historyPage {
        let drop = state.history.count - window
        state.history.removeFirst(drop)
        state.historyOffset += drop
      }
    }
  }

  var pageSize: Int {
    max(1, (MainLayout.compute(width: state.width, height: state.height)?.historyRows(searching: false) ?? 10) - 1)
  }
}
