// Colour themes, one file each in `themes/`: `role = colour` lines, where a colour is `#rrggbb`,
// a palette index 0–255, or `default` (the terminal's own colour). Lines starting with `#` are
// comments. Roles a file leaves out keep the default theme's colours.
import Foundation

/// Why a theme file could not be used; names the file, line and key.
public struct ThemeError: Error, CustomStringConvertible, Equatable {
  public var file: String
  public var line: Int
  public var message: String
  public var description: String { line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)" }
}

/// The colours of every part of the studio.
public struct Theme: Sendable, Equatable {
  /// Every role a theme file may set, with what it colours.
  public static let roles: [(key: String, meaning: String)] = [
    ("text", "ordinary text"), ("background", "the screen background"), ("muted", "secondary text"),
    ("accent", "highlights, the focused pane's title"), ("border", "pane borders"),
    ("border.focus", "the focused pane's border"), ("header.text", "the top bar's text"),
    ("header.background", "the top bar's background"), ("status.text", "the status line's text"),
    ("status.background", "the status line's background"), ("selection.text", "the selected row's text"),
    ("selection.background", "the selected row's background"), ("progress.done", "the filled part of progress bars"),
    ("progress.todo", "the empty part of progress bars"), ("error", "errors"), ("warning", "warnings, cancelled runs"),
    ("success", "finished runs"), ("favorite", "the favourite star"), ("key", "key names in hints and help"),
  ]

  public var name: String
  public var colors: [String: TerminalColor]

  public init(name: String, colors: [String: TerminalColor]) {
    self.name = name
    self.colors = colors
  }

  /// The colour of a role (the terminal default for unknown roles).
  public subscript(role: String) -> TerminalColor { colors[role] ?? Theme.fallback.colors[role] ?? .default }

  /// A cell style with the role's colour on the theme background.
  public func style(_ role: String, bold: Bool = false) -> CellStyle {
    CellStyle(foreground: self[role], background: self["background"], bold: bold)
  }

  /// Text on a coloured bar: `\(bar).text` on `\(bar).background`.
  public func bar(_ bar: String, bold: Bool = false) -> CellStyle {
    CellStyle(foreground: self["\(bar).text"], background: self["\(bar).background"], bold: bold)
  }

  /// The built-in dark theme, used when no theme file is found and for roles a file omits.
  public static let fallback = Theme(
    name: "default",
    colors: [
      "text": .default, "background": .default, "muted": .indexed(245), "accent": .rgb(0x5f, 0xaf, 0xff),
      "border": .indexed(240), "border.focus": .rgb(0x5f, 0xaf, 0xff), "header.text": .rgb(0xe4, 0xe4, 0xe4),
      "header.background": .rgb(0x26, 0x3a, 0x5a), "status.text": .rgb(0xd0, 0xd0, 0xd0),
      "status.background": .rgb(0x30, 0x30, 0x30), "selection.text": .rgb(0xff, 0xff, 0xff),
      "selection.background": .rgb(0x2a, 0x50, 0x80), "progress.done": .rgb(0x5f, 0xd7, 0x87),
      "progress.todo": .indexed(238), "error": .rgb(0xff, 0x5f, 0x5f), "warning": .rgb(0xff, 0xd7, 0x5f),
      "success": .rgb(0x87, 0xd7, 0x87), "favorite": .rgb(0xff, 0xd7, 0x00), "key": .rgb(0x87, 0xd7, 0xff),
    ])

  /// Parses a colour: `#rrggbb`, `#rgb`, `0`–`255`, or `default`.
  public static func parseColor(_ text: String) -> TerminalColor? {
    let t = text.trimmingCharacters(in: .whitespaces).lowercased()
    if t == "default" || t == "none" { return .default }
    if t.hasPrefix("#") {
      let hex = Array(t.dropFirst())
      func byte(_ s: String) -> UInt8? { UInt8(s, radix: 16) }
      if hex.count == 6, let r = byte(String(hex[0...1])), let g = byte(String(hex[2...3])),
        let b = byte(String(hex[4...5]))
      {
        return .rgb(r, g, b)
      }
      if hex.count == 3, let r = byte(String([hex[0], hex[0]])), let g = byte(String([hex[1], hex[1]])),
        let b = byte(String([hex[2], hex[2]]))
      {
        return .rgb(r, g, b)
      }
      return nil
    }
    if let i = Int(t), (0...255).contains(i) { return .indexed(UInt8(i)) }
    return nil
  }

  /// Parses a theme file's text. `file` names it in errors.
  public static func parse(_ text: String, file: String, defaultName: String) throws -> Theme {
    var theme = Theme(name: defaultName, colors: fallback.colors)
    let known = Set(roles.map(\.key))
    for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
      guard let eq = line.firstIndex(of: "=") else {
        throw ThemeError(file: file, line: i + 1, message: "expected 'role = colour', got '\(line)'")
      }
      let key = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
      let value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
      if key == "name" {
        theme.name = value
        continue
      }
      guard known.contains(key) else {
        throw ThemeError(
          file: file, line: i + 1,
          message: "unknown key '\(key)'; theme keys are name, \(roles.map(\.key).joined(separator: ", "))")
      }
      guard let color = parseColor(value) else {
        throw ThemeError(
          file: file, line: i + 1, message: "\(key): '\(value)' is not a colour (#rrggbb, 0-255 or default)")
      }
      theme.colors[key] = color
    }
    return theme
  }

  /// Loads a theme file.
  public static func load(contentsOf url: URL) throws -> Theme {
    let text: String
    do {
      text = try String(contentsOf: url, encoding: .utf8)
    } catch {
      throw ThemeError(file: url.path, line: 0, message: "cannot read it (\(error.localizedDescription))")
    }
    return try parse(text, file: url.path, defaultName: url.deletingPathExtension().lastPathComponent)
  }
}

/// The theme files the studio can offer, found in its resource directories.
public struct ThemeLibrary: Sendable {
  /// Theme files by name (file name without `.theme`), sorted.
  public let files: [(name: String, url: URL)]

  public init(directories: [URL]) {
    var seen = Set<String>()
    var found: [(String, URL)] = []
    for dir in directories {
      let items = (try? FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)) ?? []
      for url in items.sorted(by: { $0.lastPathComponent < $1.lastPathComponent }) where url.pathExtension == "theme" {
        let name = url.deletingPathExtension().lastPathComponent
        if seen.insert(name).inserted { found.append((name, url)) }
      }
    }
    // "default" first, the rest alphabetically.
    files = found.sorted { a, b in
      if (a.0 == "default") != (b.0 == "default") { return a.0 == "default" }
      return a.0 < b.0
    }
  }

  public var names: [String] { files.map(\.name) }

  /// A theme by name, or by path when `nameOrPath` contains a slash or ends in `.theme`.
  public func theme(named nameOrPath: String) throws -> Theme {
    if nameOrPath.contains("/") || nameOrPath.hasSuffix(".theme") {
      return try Theme.load(contentsOf: URL(fileURLWithPath: nameOrPath))
    }
    guard let url = files.first(where: { $0.name == nameOrPath })?.url else {
      if nameOrPath == "default" { return .fallback }
      let list = names.isEmpty ? "none found" : names.joined(separator: ", ")
      throw ThemeError(file: nameOrPath, line: 0, message: "no such theme (available: \(list))")
    }
    return try Theme.load(contentsOf: url)
  }
}
