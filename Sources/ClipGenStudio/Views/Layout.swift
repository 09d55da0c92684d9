// Where each part of the main screen goes for a terminal size.

/// The rectangles of the main screen.
public struct MainLayout: Equatable, Sendable {
  /// Smallest terminal the studio draws in; below it, a screen says so.
  public static let minimumWidth = 60
  public static let minimumHeight = 16

  public var header: Rect
  public var history: Rect
  public var preview: Rect
  public var prompt: Rect
  public var status: Rect

  /// The layout for `width`×`height`, or nil when the terminal is too small.
  public static func compute(width: Int, height: Int) -> MainLayout? {
    guard width >= minimumWidth, height >= minimumHeight else { return nil }
    let historyWidth = max(28, min(56, width * 2 / 5))
    let mainTop = 1
    let mainHeight = height - 5
    return MainLayout(
      header: Rect(x: 0, y: 0, width: width, height: 1),
      history: Rect(x: 0, y: mainTop, width: historyWidth, height: mainHeight),
      preview: Rect(x: historyWidth, y: mainTop, width: width - historyWidth, height: mainHeight),
      prompt: Rect(x: 0, y: height - 4, width: width, height: 3),
      status: Rect(x: 0, y: height - 1, width: width, height: 1))
  }

  /// Rows of history entries the history pane shows (inside its border, less the search line).
  public func historyRows(searching: Bool) -> Int { max(1, history.height - 2 - (searching ? 1 : 0)) }
}
