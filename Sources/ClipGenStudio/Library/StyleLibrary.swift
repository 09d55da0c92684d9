// Style prompts: named templates with the prompt's place marked `{prompt}`, read from
// `samples/styles.json` (`[{"name": …, "template": …, "for": …}]`; `for`, optional, says which
// models a style was written for when it is not every model).
import Foundation

/// A named prompt template.
public struct PromptStyle: Codable, Sendable, Equatable, Hashable {
  public static let placeholder = "{prompt}"
  public var name: String
  public var template: String
  /// The models the style was written for ("photographic models (CLIP-GEN COCO)"); nil: any.
  public var suits: String?

  enum CodingKeys: String, CodingKey {
    case name, template
    case suits = "for"
  }

  public init(name: String, template: String, suits: String? = nil) {
    self.name = name
    self.template = template
    self.suits = suits
  }

  /// The template with the prompt in its place.
  public func apply(to prompt: String) -> String {
    template.replacingOccurrences(of: PromptStyle.placeholder, with: prompt)
  }
}

/// Why a style file could not be used; names the file and the style.
public struct StyleLibraryError: Error, CustomStringConvertible, Equatable {
  public var file: String
  public var message: String
  public var description: String { "\(file): \(message)" }
}

/// The styles a picker offers.
public struct StyleLibrary: Sendable, Equatable {
  public var styles: [PromptStyle]

  public init(styles: [PromptStyle]) { self.styles = styles }

  /// Reads and checks a style file: every style has a name and a template containing `{prompt}`.
  public static func load(contentsOf url: URL) throws -> StyleLibrary {
    let data: Data
    do {
      data = try Data(contentsOf: url)
    } catch {
      throw StyleLibraryError(file: url.path, message: "cannot read it (\(error.localizedDescription))")
    }
    return try parse(data, file: url.path)
  }

  /// Checks a style file's bytes; `file` names it in errors.
  public static func parse(_ data: Data, file: String) throws -> StyleLibrary {
    let styles: [PromptStyle]
    do {
      styles = try JSONDecoder().decode([PromptStyle].self, from: data)
    } catch let DecodingError.keyNotFound(key, ctx) {
      let index = ctx.codingPath.first?.intValue.map { "style #\($0 + 1)" } ?? "a style"
      throw StyleLibraryError(file: file, message: "\(index) has no '\(key.stringValue)'")
    } catch {
      throw StyleLibraryError(
        file: file,
        message: "expected a JSON array of {\"name\", \"template\"} objects (\(error.localizedDescription))")
    }
    for (i, s) in styles.enumerated() {
      if s.name.trimmingCharacters(in: .whitespaces).isEmpty {
        throw StyleLibraryError(file: file, message: "style #\(i + 1) has an empty name")
      }
      if !s.template.contains(PromptStyle.placeholder) {
        throw StyleLibraryError(file: file, message: "style '\(s.name)': the template has no {prompt}")
      }
    }
    return StyleLibrary(styles: styles)
  }

  /// Styles whose name or template contains every word of `query` (case-insensitive).
  public func search(_ query: String) -> [PromptStyle] {
    let words = query.lowercased().split(separator: " ").map(String.init)
    guard !words.isEmpty else { return styles }
    return styles.filter { s in
      let hay = (s.name + " " + s.template + " " + (s.suits ?? "")).lowercased()
      return words.allSatisfy { hay.contains($0) }
    }
  }
}
