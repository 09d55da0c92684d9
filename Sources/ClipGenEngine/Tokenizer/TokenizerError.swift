// Errors raised while loading a BPE vocabulary (Hugging Face `vocab.json` + `merges.txt`).

import Foundation

/// Why a tokenizer could not be loaded. Every case names the file, and the line or key, at
/// fault, so the message alone is enough to find the problem.
public enum TokenizerError: Error, Equatable, Sendable, CustomStringConvertible {
  /// The file could not be read (missing, a directory, no permission) or is not UTF-8.
  case unreadableFile(path: String, reason: String)
  /// `vocab.json` is not a JSON object mapping token strings to non-negative integer ids;
  /// `key` is the offending entry when one can be named.
  case malformedVocabulary(path: String, key: String?, reason: String)
  /// A line of `merges.txt` is not two space-separated symbols. `line` is 1-based.
  case malformedMerges(path: String, line: Int, reason: String)
  /// The vocabulary lacks a token the tokenizer needs (`<|startoftext|>` or `<|endoftext|>`).
  case missingSpecialToken(path: String, token: String)

  public var description: String {
    switch self {
    case .unreadableFile(let path, let reason):
      return "\(path): cannot read: \(reason)"
    case .malformedVocabulary(let path, let key?, let reason):
      return "\(path): entry \"\(key)\": \(reason)"
    case .malformedVocabulary(let path, nil, let reason):
      return "\(path): \(reason)"
    case .malformedMerges(let path, let line, let reason):
      return "\(path):\(line): \(reason)"
    case .missingSpecialToken(let path, let token):
      return "\(path): the vocabulary has no \"\(token)\" token"
    }
  }
}

extension TokenizerError: LocalizedError {
  public var errorDescription: String? { description }
}
