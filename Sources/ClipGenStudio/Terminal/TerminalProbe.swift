// Asking the terminal what it can do, before ncurses takes over: primary device attributes
// (DA1, `CSI c`; attribute 4 means sixel graphics) and the character cell size in pixels
// (XTWINOPS `CSI 16 t` → `CSI 6 ; height ; width t`, else `CSI 14 t` → `CSI 4 ; height ; width t`
// divided by the rows and columns). Terminals answer in order, so reading until the DA1 reply
// (which every terminal sends) collects the others too.
import Foundation

/// The replies to the start-up queries, parsed.
public struct TerminalReplies: Sendable, Equatable {
  /// DA1 attributes, e.g. [63, 1, 2, 4, 6, 9, 15, 22] for xterm -ti vt340.
  public var deviceAttributes: [Int]?
  public var cellSize: (width: Int, height: Int)?
  public var textAreaPixels: (width: Int, height: Int)?
  /// The window size in pixels from TIOCGWINSZ (terminals that fill it in, like xterm, which
  /// by default does not answer the XTWINOPS queries).
  public var windowPixels: (width: Int, height: Int)?
  /// What the person typed while the queries were answered (bytes outside any reply): replayed
  /// as keys, so words typed the moment the studio starts are not lost.
  public var typeahead: [UInt8] = []

  public static func == (a: TerminalReplies, b: TerminalReplies) -> Bool {
    a.deviceAttributes == b.deviceAttributes && a.cellSize?.width == b.cellSize?.width
      && a.cellSize?.height == b.cellSize?.height && a.textAreaPixels?.width == b.textAreaPixels?.width
      && a.textAreaPixels?.height == b.textAreaPixels?.height
  }

  public var hasSixel: Bool { deviceAttributes?.contains(4) ?? false }

  /// Parses every reply found in `bytes` (anything else is ignored).
  public static func parse(_ bytes: [UInt8]) -> TerminalReplies {
    var r = TerminalReplies()
    var i = 0
    while i < bytes.count {
      // CSI = ESC [ ; a reply is ESC [ [?] params final.
      guard bytes[i] == 0x1B, i + 1 < bytes.count, bytes[i + 1] == 0x5B else {
        if bytes[i] != 0x1B { r.typeahead.append(bytes[i]) }
        i += 1
        continue
      }
      var j = i + 2
      let question = j < bytes.count && bytes[j] == 0x3F
      if question { j += 1 }
      var params: [Int] = []
      var current: Int?
      while j < bytes.count, (0x30...0x39).contains(bytes[j]) || bytes[j] == 0x3B {
        if bytes[j] == 0x3B {
          params.append(current ?? 0)
          current = nil
        } else {
          current = (current ?? 0) * 10 + Int(bytes[j] - 0x30)
          if current! > 1_000_000 { current = 1_000_000 }
        }
        j += 1
      }
      if let c = current { params.append(c) }
      guard j < bytes.count else { break }
      let final = bytes[j]
      if final == 0x63, question {  // 'c'
        r.deviceAttributes = Array(params.dropFirst())
      } else if final == 0x74, params.count == 3 {  // 't'
        if params[0] == 6, params[1] > 0, params[2] > 0 { r.cellSize = (params[2], params[1]) }
        if params[0] == 4, params[1] > 0, params[2] > 0 { r.textAreaPixels = (params[2], params[1]) }
      }
      i = j + 1
    }
    return r
  }

  /// The cell size to use: reported, else derived from the text area, else 10×20.
  public func cellPixelSize(columns: Int, rows: Int) -> (width: Int, height: Int) {
    if let c = cellSize, c.width >= 2, c.height >= 2 { return c }
    for t in [textAreaPixels, windowPixels].compactMap({ $0 }) where columns > 0 && rows > 0 {
      if t.width / columns >= 2, t.height / rows >= 2 { return (t.width / columns, t.height / rows) }
    }
    return (10, 20)
  }
}

/// Sends the queries on the controlling terminal and reads the replies.
public enum TerminalProbe {
  /// Queries the terminal on `fd` (in raw mode for the duration), waiting at most `timeout`
  /// seconds for the DA1 reply. Returns what came back (empty replies when not a terminal).
  public static func query(fd: Int32 = STDIN_FILENO, outFD: Int32 = STDOUT_FILENO, timeout: Double = 1.0)
    -> TerminalReplies
  {
    guard isatty(fd) == 1, isatty(outFD) == 1 else { return TerminalReplies() }
    var saved = termios()
    guard tcgetattr(fd, &saved) == 0 else { return TerminalReplies() }
    var raw = saved
    cfmakeraw(&raw)
    tcsetattr(fd, TCSANOW, &raw)
    defer { tcsetattr(fd, TCSANOW, &saved) }

    let query = Array("\u{1B}[16t\u{1B}[14t\u{1B}[c".utf8)
    _ = query.withUnsafeBytes { write(outFD, $0.baseAddress, $0.count) }
    var received: [UInt8] = []
    let deadline = Date().addingTimeInterval(timeout)
    var buffer = [UInt8](repeating: 0, count: 256)
    while Date() < deadline {
      var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      let ms = Int32(max(1, deadline.timeIntervalSinceNow * 1000))
      guard poll(&pfd, 1, ms) > 0 else { break }
      let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      guard n > 0 else { break }
      received += buffer[0..<n]
      if TerminalReplies.parse(received).deviceAttributes != nil { break }
    }
    // Whatever follows within a moment (a late reply, keys typed meanwhile) is read too, so
    // ncurses sees neither a reply as keys nor loses a key: replies are parsed, the rest kept.
    let drainUntil = Date().addingTimeInterval(0.02)
    while Date() < drainUntil {
      var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      guard poll(&pfd, 1, 5) > 0 else { continue }
      let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      guard n > 0 else { break }
      received += buffer[0..<n]
    }
    return TerminalReplies.parse(received)
  }
}

/// Keys typed before the studio could read them (`TerminalReplies.typeahead`), as events: text,
/// Enter, Tab, Backspace and control keys; escape sequences (arrows, function keys) are dropped.
public func typeaheadEvents(_ bytes: [UInt8]) -> [TerminalEvent] {
  var events: [TerminalEvent] = []
  for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
    switch scalar.value {
    case 9: events.append(.key(.tab))
    case 10, 13: events.append(.key(.enter))
    case 8, 127: events.append(.key(.backspace))
    case 1...26: events.append(.key(.control(Character(UnicodeScalar(UInt8(scalar.value) + 0x60)))))
    case 0, 27...31, 0xFFFD: break
    default: events.append(.key(.character(Character(scalar))))
    }
  }
  return events
}
