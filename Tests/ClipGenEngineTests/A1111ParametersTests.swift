// The PNG `parameters` text in AUTOMATIC1111's form: what clipgen writes parses back by the rules
// A1111's PNG Info uses (the last line holds the fields when it has at least three `Key: value`
// pairs; `Negative prompt:` starts the negative; values with separators are JSON strings), and
// strings in the form A1111 itself writes parse to their fields.
import Foundation
import Testing

@testable import ClipGenEngine

@Suite struct A1111ParametersTests {
  /// Parameters strings in the form A1111 writes (multi-line prompts and negatives, quoted
  /// values holding commas and colons, a hash in parentheses).
  static let written: [(text: String, prompt: String, negative: String, fields: [String: String])] = [
    (
      "a watercolor of a lighthouse at dusk, soft light\nNegative prompt: blurry, lowres\n"
        + "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234567890, Size: 512x768, "
        + "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.7.0",
      "a watercolor of a lighthouse at dusk, soft light", "blurry, lowres",
      [
        "Steps": "28", "Sampler": "DPM++ 2M Karras", "CFG scale": "6.5", "Seed": "1234567890", "Size": "512x768",
        "Model hash": "6ce0161689", "Model": "v1-5-pruned-emaonly", "Version": "v1.7.0",
      ]
    ),
    (
      "portrait of an old sailor\nwith a pipe\nNegative prompt: text\nwatermark\n"
        + "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, "
        + "Lora hashes: \"sailor: 0a1b2c3d4e5f, pipe: ffeeddccbbaa\", TI hashes: \"bad-hands: 1f2e3d\"",
      "portrait of an old sailor\nwith a pipe", "text\nwatermark",
      [
        "Steps": "20", "Sampler": "Euler a", "CFG scale": "7", "Seed": "42", "Size": "512x512",
        "Lora hashes": "sailor: 0a1b2c3d4e5f, pipe: ffeeddccbbaa", "TI hashes": "bad-hands: 1f2e3d",
      ]
    ),
    // A last line with fewer than three pairs is part of the prompt.
    ("a cat\nStyle: noir", "a cat\nStyle: noir", "", [:]),
    ("Steps: 10, Seed: 3, Size: 64x64", "", "", ["Steps": "10", "Seed": "3", "Size": "64x64"]),
  ]

  @Test func stringsInA1111sFormParse() {
    for w in Self.written {
      let p = A1111Parameters.parse(w.text)
      #expect(p.prompt == w.prompt, "\(w.text)")
      #expect(p.negativePrompt == w.negative, "\(w.text)")
      #expect(Dictionary(uniqueKeysWithValues: p.fields.map { ($0.key, $0.value) }) == w.fields, "\(w.text)")
    }
  }

  /// clipgen's record in A1111's form survives values holding the line's separators.
  @Test func clipgensRecordRoundTrips() {
    let record = GenerationParameters(
      prompt: "a red circle, on the left: large", style: "pencil: sketch", imagePrompt: "cat, 2.png",
      imageWeight: 0.25, negativePrompt: "blue, squares", seed: 18_446_744_073_709_551_615,
      sampling: SamplingSettings(temperature: 0.7, topK: 32, topP: 0.95, guidanceScale: 3), count: 1, candidates: 4,
      model: "builtin, v2"
    ).forImage(candidate: 2, clipScore: 0.61234)
    let a = record.a1111(width: 64, height: 64, steps: 256)
    let parsed = A1111Parameters.parse(a.text)
    #expect(parsed == a)
    #expect(parsed.prompt == "a red circle, on the left: large")
    #expect(parsed.negativePrompt == "blue, squares")
    #expect(parsed["Seed"] == "18446744073709551615")
    #expect(parsed["Model"] == "builtin, v2")
    #expect(parsed["Size"] == "64x64" && parsed["Steps"] == "256" && parsed["CFG scale"] == "3")
    #expect(parsed["Top-k"] == "32" && parsed["Temperature"] == "0.7" && parsed["Candidate"] == "2")
    #expect(parsed["Image prompt"] == "cat, 2.png x0.25" && parsed["Style"] == "pencil: sketch")
    #expect(a.text.components(separatedBy: "\n").count == 3)
  }

  /// A generated PNG carries both: `parameters` in A1111's form, `clipgen` as JSON.
  @Test func generatedPNGsCarryBothForms() throws {
    let record = GenerationParameters(
      prompt: "a green star", seed: 9, sampling: SamplingSettings(), count: 1, candidates: 1, model: "m")
    let text = try record.pngText(width: 32, height: 16, steps: 64)
    #expect(text.map(\.key) == ["parameters", "clipgen", "Software"])
    let a = A1111Parameters.parse(text[0].value)
    #expect(a.prompt == "a green star" && a["Size"] == "32x16" && a["Seed"] == "9")
    let json = try JSONDecoder().decode(GenerationParameters.self, from: Data(text[1].value.utf8))
    #expect(json == record)
  }
}
