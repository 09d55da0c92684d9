// All of a large history: keyset pages through 50,003 rows, the list's true count, jumps to the
// oldest row and searches at that size, and the selection walking across page boundaries.
import Foundation
import Testing

@testable import ClipGenStudio

@Suite("History paging", .serialized)
struct HistoryPagingTests {
  static let rows = 50_003

  /// A history of `rows` generations ("prompt 1" … oldest first, one second apart), written in
  /// one statement.
  static func bigHistory() throws -> URL {
    let dir = temporaryDirectory("history-50k")
    let store = try HistoryStore(directory: dir)
    try store.queueForTests { db in
      try db.execute(
        sql: """
          WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?)
          INSERT INTO generation (createdAt, status, prompt, styledPrompt, seedBits, temperature, topP,
            guidanceScale, count, candidates, modelName, processID)
          SELECT strftime('%Y-%m-%d %H:%M:%f', '2026-01-01', '+' || x || ' seconds'), 'done',
            'prompt ' || x, 'prompt ' || x, x, 1.0, 1.0, 1.0, 1, 1, 'm', 0 FROM n
          """, arguments: [rows])
    }
    return dir
  }

  func seconds(_ body: () throws -> Void) rethrows -> Double {
    let t = Date()
    try body()
    return Date().timeIntervalSince(t)
  }

  @Test func keysetPagesCoverEveryRowOnce() throws {
    let store = try HistoryStore(directory: Self.bigHistory())
    #expect(try store.count() == Self.rows)
    let newest = try store.entries(limit: 3)
    #expect(newest.map(\.generation.prompt) == ["prompt 50003", "prompt 50002", "prompt 50001"])
    let oldest = try store.entries(page: .oldest, limit: 3)
    #expect(oldest.map(\.generation.prompt) == ["prompt 3", "prompt 2", "prompt 1"])
    // walking older page by page from the newest row meets every row of the first 5,000 once
    var seen: [Int64] = []
    var page = try store.entries(limit: 700)
    while seen.count < 5000, let last = page.last {
      seen += page.map(\.id)
      page = try store.entries(page: .olderThan(HistoryCursor(last)), limit: 700)
    }
    #expect(seen == (Int64(Self.rows - seen.count + 1)...Int64(Self.rows)).reversed())
    // and back: the rows just newer than a row, newest first
    let mid = try #require(try store.entry(id: 25_000))
    #expect(try store.entries(page: .newerThan(HistoryCursor(mid)), limit: 2).map(\.id) == [25_002, 25_001])
    #expect(try store.entries(page: .from(HistoryCursor(mid)), limit: 2).map(\.id) == [25_000, 24_999])
    #expect(try store.count(newerThan: HistoryCursor(mid)) == Self.rows - 25_000)
    #expect(try store.count(search: "prompt 4999") == 11)  // 4999 and 49990…49999
  }

  @Test func theStudioShowsAndReachesEveryRowQuickly() throws {
    let dir = try Self.bigHistory()
    var h: StudioHarness?
    let start = try seconds { h = try StudioHarness(width: 100, height: 30, dataDirectory: dir) }
    let harness = try #require(h)
    harness.keys(.tab)
    #expect(harness.screen.contains("History (50003)"))
    #expect(harness.studio.state.selectedEntry?.generation.prompt == "prompt 50003")
    // to the oldest row and back
    let toOldest = seconds { harness.keys(.end) }
    #expect(harness.studio.state.selectedEntry?.generation.prompt == "prompt 1")
    #expect(harness.studio.state.historyOffset + harness.studio.state.selection == Self.rows - 1)
    harness.keys(.up)
    #expect(harness.studio.state.selectedEntry?.generation.prompt == "prompt 2")
    harness.keys(.home)
    #expect(harness.studio.state.selectedEntry?.generation.prompt == "prompt 50003")
    // row by row and page by page across the pages read as the selection moves
    for _ in 0..<40 { harness.keys(.pageDown) }
    let at = harness.studio.state.historyOffset + harness.studio.state.selection
    #expect(at > Studio.historyWindow)  // beyond the first window
    #expect(harness.studio.state.selectedEntry?.generation.prompt == "prompt \(Self.rows - at)")
    for _ in 0..<(Studio.historyPage + 5) { harness.keys(.down) }
    #expect(
      harness.studio.state.selectedEntry?.generation.prompt == "prompt \(Self.rows - at - Studio.historyPage - 5)")
    #expect(harness.studio.state.history.count <= Studio.historyWindow + Studio.historyPage)
    // a search over all of it (each key typed filters the list again; one such update timed)
    harness.keys(.character("/"))
    harness.type("prompt 1234")
    let search = seconds { harness.type("5") }
    harness.keys(.enter)
    #expect(harness.screen.contains("History (1)"))
    #expect(harness.studio.state.selectedEntry?.generation.prompt == "prompt 12345")
    print("history of \(Self.rows) rows: start \(start) s, to the oldest \(toOldest) s, search \(search) s")
    // Generous bounds for a loaded debug build; the figures above are the measurement.
    #expect(start < 2 && toOldest < 2 && search < 2)
  }
}
