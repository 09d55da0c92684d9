// The PNG `parameters` text in AUTOMATIC1111's plain form, which its PNG Info tab, image browsers
// and metadata tools read: the prompt, a `Negative prompt:` line, then one line of `Key: value`
// pairs separated by commas (a value holding a comma, colon or line break is written as a JSON
// string). clipgen's own full record goes beside it as JSON in a `clipgen` chunk.
import Foundation

/// A `parameters` text in AUTOMATIC1111's form: prompt, negative prompt, and the fields of its
/// last line in order.
public struct A1111Parameters: Equatable, Sendable {
  public var prompt: String
  public var negativePrompt: String
  public var fields: [(key: String, value: String)]

  public init(prompt: String, negativePrompt: String = "", fields: [(key: String, value: String)]) {
    self.prompt = prompt
    self.negativePrompt = negativePrompt
    self.fields = fields
  }

  public static func == (a: A1111Parameters, b: A1111Parameters) -> Bool {
    a.prompt == b.prompt && a.negativePrompt == b.negativePrompt && a.fields.map(\.key) == b.fields.map(\.key)
      && a.fields.map(\.value) == b.fields.map(\.value)
  }

  /// A field's value (the first with that key).
  public subscript(key: String) -> String? { fields.first { $0.key == key }?.value }

  /// The text: prompt lines, `Negative prompt: …` when there is one, then the fields' line.
  public var text: String {
    var lines = [prompt]
    if !negativePrompt.isEmpty { lines.append("Negative prompt: " + negativePrompt) }
    lines.append(fields.map { "\($0.key): \(Self.quote($0.value))" }.joined(separator: ", "))
    return lines.joined(separator: "\n")
  }

  /// A value as the last line carries it: as is, or as a JSON string when it holds a comma, a
  /// colon or a line break (the separators of that line).
  static func quote(_ value: String) -> String {
    guard value.contains(where: { $0 == "," || $0 == ":" || $0 == "\n" }) else { return value }
    let data = (try? JSONEncoder().encode(value)) ?? Data()
    return String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\\/", with: "/")
  }

  /// Reads a `parameters` text the way AUTOMATIC1111 does: the last line holds the fields when at
  /// least three `Key: value` pairs are found in it (otherwise it is part of the prompt); lines
  /// from one starting `Negative prompt:` on are the negative prompt; quoted values are JSON
  /// strings.
  public static func parse(_ text: String) -> A1111Parameters {
    var lines = text.trimmingCharacters(in: .whitespacesAndNewlines).components(separatedBy: "\n")
    var fields: [(key: String, value: String)] = []
    if let last = lines.last {
      let found = pairs(last)
      if found.count >= 3 {
        fields = found
        lines.removeLast()
      }
    }
    var prompt: [String] = []
    var negative: [String] = []
    var inNegative = false
    for raw in lines {
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.hasPrefix("Negative prompt:") {
        inNegative = true
        negative.append(String(line.dropFirst("Negative prompt:".count)).trimmingCharacters(in: .whitespaces))
      } else if inNegative {
        negative.append(line)
      } else {
        prompt.append(line)
      }
    }
    return A1111Parameters(
      prompt: prompt.joined(separator: "\n"), negativePrompt: negative.joined(separator: "\n"), fields: fields)
  }

  /// The `Key: value` pairs of a fields line: a key starts with a word character and goes on with
  /// word characters, spaces, hyphens and slashes up to a colon; the value is a JSON string, or
  /// everything up to the next comma.
  static func pairs(_ line: String) -> [(key: String, value: String)] {
    let s = Array(line)
    var out: [(String, String)] = []
    var i = 0
    func isWord(_ c: Character) -> Bool { c == "_" || c.isLetter || c.isNumber }
    while i < s.count {
      while i < s.count, s[i].isWhitespace { i += 1 }
      guard i < s.count, isWord(s[i]) else {
        i += 1
        continue
      }
      var j = i + 1
      while j < s.count, isWord(s[j]) || s[j] == " " || s[j] == "-" || s[j] == "/" { j += 1 }
      guard j < s.count, s[j] == ":" else {
        i = j
        continue
      }
      let key = String(s[i..<j])
      var k = j + 1
      while k < s.count, s[k].isWhitespace { k += 1 }
      var value = ""
      if k < s.count, s[k] == "\"", let end = closingQuote(s, from: k) {
        let quoted = String(s[k...end])
        value = (try? JSONDecoder().decode(String.self, from: Data(quoted.utf8))) ?? quoted
        k = end + 1
      } else {
        var e = k
        while e < s.count, s[e] != "," { e += 1 }
        value = String(s[k..<e])
        k = e
      }
      out.append((key, value))
      i = k < s.count && s[k] == "," ? k + 1 : k
    }
    return out
  }

  /// The index of the quote that closes the JSON string opening at `start` (nil: none).
  private static func closingQuote(_ s: [Character], from start: Int) -> Int? {
    var i = start + 1
    while i < s.count {
      if s[i] == "\\" {
        i += 2
        continue
      }
      if s[i] == "\"" { return i > start + 1 ? i : nil }
      i += 1
    }
    return nil
  }
}

extension GenerationParameters {
  /// This record in AUTOMATIC1111's form, for an image of `width`×`height` sampled in `steps`
  /// tokens.
  public func a1111(width: Int, height: Int, steps: Int) -> A1111Parameters {
    var fields: [(key: String, value: String)] = [
      ("Steps", "\(steps)"), ("Sampler", "clipgen autoregressive"), ("CFG scale", Self.number(guidanceScale)),
      ("Seed", "\(seed)"), ("Size", "\(width)x\(height)"), ("Model", model),
      ("Temperature", Self.number(temperature)), ("Top-k", topK.map(String.init) ?? "all"),
      ("Top-p", Self.number(topP)),
    ]
    if let style { fields.append(("Style", style)) }
    if let imagePrompt { fields.append(("Image prompt", "\(imagePrompt) x\(Self.number(imageWeight ?? 1))")) }
    if candidates > count { fields.append(("Candidates", "\(candidates)")) }
    if let candidate { fields.append(("Candidate", "\(candidate)")) }
    if let clipScore { fields.append(("CLIP score", Self.number(clipScore))) }
    if let r = region { fields.append(("Region", r.description)) }
    if let i = interpolation { fields.append(("Interpolation", "to \"\(i.to)\" at \(Self.number(i.t))")) }
    fields.append(("Version", engine))
    return A1111Parameters(prompt: prompt, negativePrompt: negativePrompt ?? "", fields: fields)
  }

  static func number(_ v: Float) -> String {
    v == v.rounded() && abs(v) < 1e9 ? String(Int(v)) : String(format: "%g", Double(v))
  }
}
