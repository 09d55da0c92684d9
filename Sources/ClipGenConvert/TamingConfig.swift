// VQGAN sizes from the configs published next to the checkpoints: taming-transformers' YAML
// (`configs/*.yaml`, `model.params.{embed_dim, n_embed, ddconfig}`), the same as JSON, a
// Lightning checkpoint's `hyper_parameters`, or the engine's own `config.json`.
import ClipGenEngine
import Foundation

extension VQGANConfig {
  /// Reads a VQGAN config file: taming YAML or JSON (`model.params.ddconfig` or a bare
  /// `ddconfig` with `embed_dim` and `n_embed` beside it), or the engine's flat `config.json`.
  /// - Parameter normEps: GroupNorm eps when the file does not say (taming 1e-6, HFAiLab 1e-5).
  /// - Throws: `ConversionError.unreadableConfig` naming the file and what is missing.
  public static func load(tamingConfig url: URL, normEps: Float) throws -> VQGANConfig {
    let text: String
    do {
      text = try String(contentsOf: url, encoding: .utf8)
    } catch {
      throw ConversionError.unreadableConfig(path: url.path, reason: error.localizedDescription)
    }
    let tree: Any
    if text.drop(while: \.isWhitespace).first == "{" {
      do {
        tree = try JSONSerialization.jsonObject(with: Data(text.utf8))
      } catch {
        throw ConversionError.unreadableConfig(path: url.path, reason: "not valid JSON")
      }
    } else {
      do {
        tree = try MiniYAML.parse(text)
      } catch let e as MiniYAML.ParseError {
        throw ConversionError.unreadableConfig(path: url.path, reason: e.description)
      }
    }
    do {
      return try fromTaming(tree, normEps: normEps)
    } catch let e as MiniYAML.ParseError {
      throw ConversionError.unreadableConfig(path: url.path, reason: e.description)
    }
  }

  /// The config in a Lightning checkpoint's `hyper_parameters` (when the module saved them), or
  /// nil.
  public static func fromHyperParameters(_ value: PickleValue?, normEps: Float) -> VQGANConfig? {
    guard let value else { return nil }
    return try? fromTaming(value.plainValue, normEps: normEps)
  }

  /// Sizes from a parsed taming config tree.
  static func fromTaming(_ tree: Any, normEps: Float) throws -> VQGANConfig {
    func dict(_ v: Any?) -> [String: Any]? { v as? [String: Any] }
    func int(_ d: [String: Any], _ key: String) throws -> Int {
      guard let v = d[key] else { throw MiniYAML.ParseError("missing '\(key)'") }
      if let i = v as? Int { return i }
      if let n = v as? NSNumber, n.doubleValue == n.doubleValue.rounded() { return n.intValue }
      throw MiniYAML.ParseError("'\(key)' is not an integer")
    }
    func ints(_ d: [String: Any], _ key: String) throws -> [Int] {
      guard let v = d[key] else { throw MiniYAML.ParseError("missing '\(key)'") }
      guard let list = v as? [Any] else { throw MiniYAML.ParseError("'\(key)' is not a list") }
      return try list.map {
        if let i = $0 as? Int { return i }
        if let n = $0 as? NSNumber { return n.intValue }
        throw MiniYAML.ParseError("'\(key)' holds a value that is not an integer")
      }
    }
    guard let root = dict(tree) else { throw MiniYAML.ParseError("the top level is not a mapping") }
    // The engine's own flat config.json.
    if root["ch_mult"] != nil, root["ddconfig"] == nil {
      return VQGANConfig(
        embedDim: try int(root, "embed_dim"), nEmbed: try int(root, "n_embed"), ch: try int(root, "ch"),
        outCh: (try? int(root, "out_ch")) ?? 3, chMult: try ints(root, "ch_mult"),
        numResBlocks: try int(root, "num_res_blocks"), attnResolutions: (try? ints(root, "attn_resolutions")) ?? [],
        inChannels: (try? int(root, "in_channels")) ?? 3, resolution: try int(root, "resolution"),
        zChannels: try int(root, "z_channels"), normEps: (root["norm_eps"] as? NSNumber)?.floatValue ?? normEps)
    }
    let params = dict(dict(root["model"])?["params"]) ?? dict(root["params"]) ?? root
    guard let dd = dict(params["ddconfig"]) else {
      throw MiniYAML.ParseError("no model.params.ddconfig (is this a taming-transformers VQGAN config?)")
    }
    if let doubleZ = dd["double_z"] as? Bool, doubleZ {
      throw MiniYAML.ParseError("ddconfig.double_z is true (a KL autoencoder, not a VQGAN)")
    }
    return VQGANConfig(
      embedDim: try int(params, "embed_dim"), nEmbed: try int(params, "n_embed"), ch: try int(dd, "ch"),
      outCh: (try? int(dd, "out_ch")) ?? 3, chMult: try ints(dd, "ch_mult"),
      numResBlocks: try int(dd, "num_res_blocks"),
      attnResolutions: (try? ints(dd, "attn_resolutions")) ?? [], inChannels: (try? int(dd, "in_channels")) ?? 3,
      resolution: try int(dd, "resolution"), zChannels: try int(dd, "z_channels"), normEps: normEps)
  }
}

extension PickleValue {
  /// Foundation's JSON-like form: dicts with string keys (and dict-like objects) as
  /// `[String: Any]`, lists and tuples as `[Any]`, scalars as `Int` / `Double` / `Bool` /
  /// `String`, anything else as its summary.
  public var plainValue: Any {
    switch self {
    case .none: return NSNull()
    case .bool(let b): return b
    case .int(let i): return i
    case .float(let f): return f
    case .string(let s): return s
    case .list(let l), .tuple(let l), .set(let l): return l.map(\.plainValue)
    case .dict(let entries): return Self.plainDictionary(entries)
    case .object:
      guard let entries = dictEntries, !entries.isEmpty else { return summary }
      return Self.plainDictionary(entries)
    default: return summary
    }
  }

  private static func plainDictionary(_ entries: [(key: PickleValue, value: PickleValue)]) -> [String: Any] {
    var d: [String: Any] = [:]
    for (k, v) in entries {
      if case .string(let s) = k { d[s] = v.plainValue } else { d[k.summary] = v.plainValue }
    }
    return d
  }
}

/// The subset of YAML that taming's configs use: nested block mappings, block sequences (also at
/// the parent key's indentation), flow sequences and mappings, plain and quoted scalars, comments.
/// No anchors, tags or multi-line scalars.
enum MiniYAML {
  struct ParseError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
  }

  private struct Line {
    let number: Int
    let indent: Int
    let text: String
  }

  static func parse(_ source: String) throws -> Any {
    var lines: [Line] = []
    for (i, raw) in source.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let noComment = stripComment(String(raw)).replacingOccurrences(of: "\t", with: "  ")
      let trimmed = noComment.trimmingCharacters(in: .whitespaces)
      if trimmed.isEmpty || trimmed == "---" || trimmed.hasPrefix("%") { continue }
      let indent = noComment.prefix { $0 == " " }.count
      lines.append(Line(number: i + 1, indent: indent, text: trimmed))
    }
    guard !lines.isEmpty else { return [String: Any]() }
    var i = 0
    let value = try block(lines, &i, indent: lines[0].indent)
    if i < lines.count { throw ParseError("line \(lines[i].number): unexpected indentation") }
    return value
  }

  private static func stripComment(_ s: String) -> String {
    var quote: Character? = nil
    var previous: Character = " "
    for (offset, c) in s.enumerated() {
      if let q = quote {
        if c == q { quote = nil }
      } else if c == "'" || c == "\"" {
        quote = c
      } else if c == "#", previous == " " {
        return String(s.prefix(offset))
      }
      previous = c
    }
    return s
  }

  private static func isSequenceItem(_ text: String) -> Bool { text == "-" || text.hasPrefix("- ") }

  private static func block(_ lines: [Line], _ i: inout Int, indent: Int) throws -> Any {
    if isSequenceItem(lines[i].text) { return try sequence(lines, &i, indent: indent) }
    return try mapping(lines, &i, indent: indent)
  }

  private static func sequence(_ lines: [Line], _ i: inout Int, indent: Int) throws -> [Any] {
    var items: [Any] = []
    while i < lines.count, lines[i].indent == indent, isSequenceItem(lines[i].text) {
      let rest = String(lines[i].text.dropFirst(1)).trimmingCharacters(in: .whitespaces)
      let number = lines[i].number
      i += 1
      if rest.isEmpty {
        guard i < lines.count, lines[i].indent > indent else {
          items.append(NSNull())
          continue
        }
        items.append(try block(lines, &i, indent: lines[i].indent))
      } else if splitKey(rest) != nil, !rest.hasPrefix("[") && !rest.hasPrefix("{") {
        // "- key: value" starts a mapping whose other keys are indented past the dash.
        var nested = [Line(number: number, indent: indent + 2, text: rest)]
        while i < lines.count, lines[i].indent > indent {
          nested.append(lines[i])
          i += 1
        }
        var j = 0
        items.append(try mapping(nested, &j, indent: indent + 2))
      } else {
        items.append(try scalarOrFlow(rest, line: number))
      }
    }
    return items
  }

  private static func mapping(_ lines: [Line], _ i: inout Int, indent: Int) throws -> [String: Any] {
    var d: [String: Any] = [:]
    while i < lines.count, lines[i].indent == indent, !isSequenceItem(lines[i].text) {
      let line = lines[i]
      guard let (key, rest) = splitKey(line.text) else {
        throw ParseError("line \(line.number): expected 'key: value', found '\(line.text)'")
      }
      i += 1
      if !rest.isEmpty {
        d[key] = try scalarOrFlow(rest, line: line.number)
      } else if i < lines.count, lines[i].indent > indent {
        d[key] = try block(lines, &i, indent: lines[i].indent)
      } else if i < lines.count, lines[i].indent == indent, isSequenceItem(lines[i].text) {
        d[key] = try sequence(lines, &i, indent: indent)
      } else {
        d[key] = NSNull()
      }
    }
    return d
  }

  /// "key: rest" (rest may be empty); nil when the text has no mapping colon.
  private static func splitKey(_ text: String) -> (String, String)? {
    var quote: Character? = nil
    let chars = Array(text)
    for (k, c) in chars.enumerated() {
      if let q = quote {
        if c == q { quote = nil }
        continue
      }
      if c == "'" || c == "\"" {
        quote = c
      } else if c == ":", k + 1 == chars.count || chars[k + 1] == " " {
        let key = unquote(String(chars[..<k]).trimmingCharacters(in: .whitespaces))
        return (key, String(chars[(k + 1)...]).trimmingCharacters(in: .whitespaces))
      } else if c == "[" || c == "{" {
        return nil
      }
    }
    return nil
  }

  private static func unquote(_ s: String) -> String {
    if s.count >= 2, let f = s.first, f == "'" || f == "\"", s.last == f { return String(s.dropFirst().dropLast()) }
    return s
  }

  private static func scalarOrFlow(_ text: String, line: Int) throws -> Any {
    var chars = Array(text)
    var pos = 0
    let v = try flowValue(&chars, &pos, line: line, topLevel: true)
    return v
  }

  private static func flowValue(_ c: inout [Character], _ p: inout Int, line: Int, topLevel: Bool) throws -> Any {
    while p < c.count, c[p] == " " { p += 1 }
    guard p < c.count else { return NSNull() }
    if c[p] == "[" {
      p += 1
      var items: [Any] = []
      while true {
        while p < c.count, c[p] == " " { p += 1 }
        guard p < c.count else { throw ParseError("line \(line): unterminated '['") }
        if c[p] == "]" {
          p += 1
          return items
        }
        items.append(try flowValue(&c, &p, line: line, topLevel: false))
        while p < c.count, c[p] == " " { p += 1 }
        if p < c.count, c[p] == "," { p += 1 }
      }
    }
    if c[p] == "{" {
      p += 1
      var d: [String: Any] = [:]
      while true {
        while p < c.count, c[p] == " " { p += 1 }
        guard p < c.count else { throw ParseError("line \(line): unterminated '{'") }
        if c[p] == "}" {
          p += 1
          return d
        }
        let start = p
        while p < c.count, c[p] != ":" { p += 1 }
        let key = unquote(String(c[start..<min(p, c.count)]).trimmingCharacters(in: .whitespaces))
        p += 1
        d[key] = try flowValue(&c, &p, line: line, topLevel: false)
        while p < c.count, c[p] == " " { p += 1 }
        if p < c.count, c[p] == "," { p += 1 }
      }
    }
    if c[p] == "'" || c[p] == "\"" {
      let q = c[p]
      p += 1
      let start = p
      while p < c.count, c[p] != q { p += 1 }
      guard p < c.count else { throw ParseError("line \(line): unterminated string") }
      let s = String(c[start..<p])
      p += 1
      return s
    }
    let start = p
    while p < c.count, topLevel || (c[p] != "," && c[p] != "]" && c[p] != "}") { p += 1 }
    return plainScalar(String(c[start..<p]).trimmingCharacters(in: .whitespaces))
  }

  private static func plainScalar(_ s: String) -> Any {
    switch s {
    case "", "~", "null", "Null", "NULL": return NSNull()
    case "true", "True", "TRUE": return true
    case "false", "False", "FALSE": return false
    default: break
    }
    if let i = Int(s) { return i }
    if let d = Double(s), s.contains(where: { $0.isNumber }) { return d }
    return s
  }
}
