// ftfy 6.3.1's mojibake heuristic (ftfy/badness.py, `BADNESS_RE`) without a regex engine.
// Every alternative of that expression is a short fixed sequence of character classes, so
// each is written here as a list of elements, and a match is a position where all elements
// of one alternative hold. Each character's membership in ftfy's named categories is looked
// up once per text as a bit mask.

/// `badness.is_bad` as a matcher over fixed-length alternatives.
struct BadnessMatcher: Sendable {
  /// ftfy's MOJIBAKE_CATEGORIES, one bit each.
  enum Category: Int, CaseIterable {
    case common, c1, bad, law, currency, startPunctuation, endPunctuation, numeric, kaomoji
    case upperAccented, lowerAccented, upperCommon, lowerCommon, box

    var tableName: String {
      switch self {
      case .common: return "common"
      case .c1: return "c1"
      case .bad: return "bad"
      case .law: return "law"
      case .currency: return "currency"
      case .startPunctuation: return "start_punctuation"
      case .endPunctuation: return "end_punctuation"
      case .numeric: return "numeric"
      case .kaomoji: return "kaomoji"
      case .upperAccented: return "upper_accented"
      case .lowerAccented: return "lower_accented"
      case .upperCommon: return "upper_common"
      case .lowerCommon: return "lower_common"
      case .box: return "box"
      }
    }
    var bit: UInt32 { 1 << UInt32(rawValue) }
  }

  /// Classes the expression uses besides the categories.
  enum Special: Sendable, Equatable {
    case none
    case pythonSpace  // \s on a Python str
    case word  // \w on a Python str: letters, numbers, underscore
    case notASCIILetter  // [^A-Za-z]
    case notNewline  // .
  }

  /// One character class: any of `categories`, any code point in `ranges`, or `special`.
  struct Element: Sendable, Equatable {
    var categories: UInt32 = 0
    var ranges: [ClosedRange<UInt32>] = []
    var special: Special = .none

    /// Whether `s` is in the `special` class.
    func matchesSpecial(_ s: Unicode.Scalar) -> Bool {
      switch special {
      case .none: return false
      case .pythonSpace: return PythonText.isSpace(s)
      case .word:
        if s.isASCII {
          return s == "_" || (s.value >= 0x30 && s.value <= 0x39)
            || ((s.value | 0x20) >= 0x61 && (s.value | 0x20) <= 0x7A)
        }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
          .decimalNumber, .letterNumber, .otherNumber:
          return true
        default:
          return false
        }
      case .notASCIILetter: return !((s.value | 0x20) >= 0x61 && (s.value | 0x20) <= 0x7A)
      case .notNewline: return s != "\n"
      }
    }
  }

  /// A set of element indices (at most 128 distinct elements).
  struct ElementSet: Sendable {
    var words: (UInt64, UInt64) = (0, 0)
    mutating func insert(_ i: Int) {
      if i < 64 { words.0 |= 1 << UInt64(i) } else { words.1 |= 1 << UInt64(i - 64) }
    }
    func contains(_ i: Int) -> Bool {
      i < 64 ? words.0 & (1 << UInt64(i)) != 0 : words.1 & (1 << UInt64(i - 64)) != 0
    }
    mutating func formUnion(_ other: ElementSet) {
      words.0 |= other.words.0
      words.1 |= other.words.1
    }
  }

  struct Alternative: Sendable {
    var anchoredAtStart = false
    var elements: [Element]
  }

  /// The distinct elements of all alternatives; alternatives refer to them by index.
  let elements: [Element]
  /// Each alternative as element indices, and whether it is anchored at the start (`^`).
  let alternatives: [(anchored: Bool, elements: [Int])]
  /// Category bits of every code point in at least one category.
  let categoryMasks: [UInt32: UInt32]
  /// Elements that list a code point literally, by code point.
  let literalMembers: [UInt32: ElementSet]
  /// Elements with categories, and elements with a special class.
  let categoryElements: [(categories: UInt32, index: Int)]
  let specialElements: [Int]
  /// Non-ASCII characters the alternatives name literally (outside any category).
  let literalTriggers: Set<UInt32>

  static let shared = BadnessMatcher()

  init() {
    var masks: [UInt32: UInt32] = [:]
    for category in Category.allCases {
      for range in TokenizerTables.mojibakeCategories[category.tableName] ?? [] {
        for value in range { masks[value, default: 0] |= category.bit }
      }
    }
    categoryMasks = masks

    var elements: [Element] = []
    var alternatives: [(anchored: Bool, elements: [Int])] = []
    for alternative in Self.makeAlternatives() {
      let indices = alternative.elements.map { element -> Int in
        if let i = elements.firstIndex(of: element) { return i }
        elements.append(element)
        return elements.count - 1
      }
      alternatives.append((alternative.anchoredAtStart, indices))
    }
    precondition(elements.count <= 128, "BadnessMatcher: too many distinct classes")
    self.elements = elements
    self.alternatives = alternatives

    var literalMembers: [UInt32: ElementSet] = [:]
    for (index, element) in elements.enumerated() {
      for range in element.ranges { for value in range { literalMembers[value, default: ElementSet()].insert(index) } }
    }
    self.literalMembers = literalMembers
    categoryElements = elements.enumerated().filter { $0.element.categories != 0 }.map {
      ($0.element.categories, $0.offset)
    }
    specialElements = elements.indices.filter { elements[$0].special != .none }
    literalTriggers = Set(elements.flatMap(\.ranges).filter { $0.lowerBound >= 0x80 }.flatMap { $0 })
  }

  /// Does any alternative match anywhere in `text`?
  func matches(_ text: [Unicode.Scalar]) -> Bool {
    // Every alternative needs a categorised character or one of a few literal non-ASCII
    // characters; text with neither (plain ASCII, CJK, emoji) cannot match.
    guard
      text.contains(where: { !$0.isASCII && (categoryMasks[$0.value] != nil || literalTriggers.contains($0.value)) })
    else { return false }
    let members = text.map { s -> ElementSet in
      var set = literalMembers[s.value] ?? ElementSet()
      if !s.isASCII, let mask = categoryMasks[s.value] {
        for (categories, index) in categoryElements where categories & mask != 0 { set.insert(index) }
      }
      for index in specialElements where elements[index].matchesSpecial(s) { set.insert(index) }
      return set
    }
    let n = text.count
    for i in 0..<n {
      alternatives: for alternative in alternatives {
        if alternative.anchored && i != 0 { continue }
        if i + alternative.elements.count > n { continue }
        for (k, element) in alternative.elements.enumerated() where !members[i + k].contains(element) {
          continue alternatives
        }
        return true
      }
    }
    return false
  }

  // MARK: BADNESS_RE, alternative for alternative

  private static func c(_ categories: Category..., plus literals: String = "") -> Element {
    Element(
      categories: categories.reduce(0) { $0 | $1.bit },
      ranges: literals.unicodeScalars.map { $0.value...$0.value })
  }

  private static func ch(_ literals: String) -> Element { c(plus: literals) }

  private static func word(_ literals: String) -> [Element] {
    literals.unicodeScalars.map { ch(String($0)) }
  }

  private static let asciiLetters = Element(ranges: [0x41...0x5A, 0x61...0x7A])
  private static let asciiLower = Element(ranges: [0x61...0x7A])
  private static let space = ch(" ")

  private static func makeAlternatives() -> [Alternative] {
    let startish = c(
      .bad, .lowerAccented, .upperAccented, .box, .startPunctuation, .endPunctuation, .currency,
      .numeric, .law)
    let arabicSecond = c(.common, .currency, .bad, .numeric, .startPunctuation, plus: "ŸŠ®°µ»")
    let sequences: [[Element]] = [
      [c(.c1)],
      [startish, c(.bad)],
      [asciiLetters, c(.lowerCommon, .upperCommon), c(.bad)],
      [
        c(.bad),
        c(.lowerAccented, .upperAccented, .box, .startPunctuation, .endPunctuation, .currency, .numeric, .law),
      ],
      [c(.lowerAccented, .lowerCommon, .box, .endPunctuation, .currency, .numeric), c(.upperAccented)],
      [c(.box, .endPunctuation, .currency, .numeric), c(.lowerAccented)],
      [c(.lowerAccented, .box, .endPunctuation), c(.currency)],
      [Element(special: .pythonSpace), c(.upperAccented), c(.currency)],
      [c(.upperAccented, .box), c(.numeric, .law)],
      [c(.lowerAccented, .upperAccented, .box, .currency, .endPunctuation), c(.startPunctuation), c(.numeric)],
      [
        c(.lowerAccented, .upperAccented, .currency, .numeric, .box, .law), c(.endPunctuation),
        c(.startPunctuation),
      ],
      [c(.currency, .numeric, .box), c(.startPunctuation)],
      [asciiLower, c(.upperAccented), c(.startPunctuation, .currency)],
      [c(.box), c(.kaomoji)],
      [c(.lowerAccented, .upperAccented, .currency, .numeric, .startPunctuation, .endPunctuation, .law), c(.box)],
      [c(.box), c(.endPunctuation)],
      [c(.lowerAccented, .upperAccented), c(.startPunctuation, .endPunctuation), Element(special: .word)],
      // The ligature œ when not followed by an unaccented Latin letter.
      [ch("Œœ"), Element(special: .notASCIILetter)],
      // Degree signs after capital letters.
      [c(.upperAccented), ch("°")],
      // Common Windows-1252 two-character mojibake.
      [ch("ÂÃÎÐ"), c(.startPunctuation, .endPunctuation, plus: "€œŠš¢£Ÿž\u{A0}\u{AD}®©°·»–—´")],
      [ch("×"), ch("²³")],
      // Windows-1252 mojibake of Arabic words: four characters.
      [ch("ØÙ"), arabicSecond, ch("ØÙ"), arabicSecond],
      // Windows-1252 starts of three-character sequences for South Asian alphabets.
      [ch("à"), ch("²µ¹¼½¾")],
      // MacRoman mojibake.
      [ch("√"), ch("±∂†≠®™´≤≥¥µø")],
      [ch("≈"), ch("°¢")],
      word("‚Ä") + [ch("ìîïòôúùû†°¢π")],
      [ch("‚"), ch("âó"), ch("àä°ê")],
      // Windows-1251 mojibake of U+2000-range characters.
      word("вЂ"),
      // Windows-1251 mojibake of Latin-1 characters and/or Cyrillic: three characters.
      [ch("ВГРС"), c(.c1, .bad, .startPunctuation, .endPunctuation, .currency, plus: "°µ"), ch("ВГРС")],
      word("ГўВЂВ") + [Element(special: .notNewline), Element(ranges: [0x20...0x20, 0x41...0x5A, 0x61...0x7A])],
      // Windows-1252 encodings of 'à' and 'á', and of U+A0 itself.
      [ch("Ã"), ch("\u{A0}¡")],
      // [a-z]\s?[ÃÂ][ ], written as its two lengths.
      [asciiLower, Element(special: .pythonSpace), ch("ÃÂ"), space],
      [asciiLower, ch("ÃÂ"), space],
      // Â before a character encoded as exactly that character.
      [
        c(.endPunctuation, plus: "abcdefghijklmnopqrstuvwxyz.,?!"), ch("Â"),
        c(.startPunctuation, .endPunctuation, plus: " "),
      ],
      // Windows-1253 mojibake of U+2000-range characters.
      word("β€") + [ch("™\u{A0}Ά\u{AD}®°")],
      // Windows-1253 mojibake of Latin-1 characters and/or Greek.
      [ch("ΒΓΞΟ"), c(.c1, .bad, .startPunctuation, .endPunctuation, .currency, plus: "°"), ch("ΒΓΞΟ")],
      // Windows-1257 mojibake of U+2000-range characters.
      word("ā€"),
    ]
    var alternatives = sequences.map { Alternative(elements: $0) }
    // ^[ÃÂ][ ]
    alternatives.append(Alternative(anchoredAtStart: true, elements: [ch("ÃÂ"), space]))
    return alternatives
  }
}
