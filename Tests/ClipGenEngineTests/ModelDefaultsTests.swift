// model.json's `"defaults"` and `"sample_prompts"`: validated on load (errors name the field),
// used by `clipgen generate` for every setting the user leaves unset, shown by `clipgen inspect`.
import Foundation
import Testing

@testable import ClipGenEngine

@Suite(.serialized) struct ModelDefaultsTests {
  let fixture = fixturesDirectory.appendingPathComponent("tiny_model")

  /// The tiny fixture model with `extra` merged into its model.json, in a fresh directory.
  func model(with extra: [String: Any]) throws -> URL {
    let dir = try temporaryDirectory().appendingPathComponent("model")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    for part in ["clip", "gpt", "vqgan", "tokenizer"] {
      try FileManager.default.createSymbolicLink(
        at: dir.appendingPathComponent(part), withDestinationURL: fixture.appendingPathComponent(part))
    }
    var manifest = try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: fixture.appendingPathComponent("model.json")))
        as? [String: Any])
    manifest.merge(extra) { $1 }
    try JSONSerialization.data(withJSONObject: manifest).write(to: dir.appendingPathComponent("model.json"))
    return dir
  }

  let defaults: [String: Any] = ["temperature": 0.8, "top_k": 16, "top_p": 0.9, "guidance": 1.5, "candidates": 3]

  @Test func defaultsAndSamplePromptsLoad() throws {
    let m = try ClipGenModel(directory: try model(with: ["defaults": defaults, "sample_prompts": ["a", "b"]]))
    #expect(m.defaults == SamplingDefaults(temperature: 0.8, topK: 16, topP: 0.9, guidance: 1.5, candidates: 3))
    #expect(m.defaults.sampling == SamplingSettings(temperature: 0.8, topK: 16, topP: 0.9, guidanceScale: 1.5))
    #expect(m.defaults.candidates(forCount: 2) == 6)
    #expect(m.samplePrompts == ["a", "b"])
    // No defaults: the plain sampler.
    let plain = try ClipGenModel(directory: fixture)
    #expect(plain.defaults.sampling == SamplingSettings())
    #expect(plain.defaults.candidates(forCount: 3) == 3)
    #expect(plain.samplePrompts.isEmpty)
  }

  @Test(arguments: [
    ("top_k", 65, "defaults.top_k"), ("temperature", -1, "defaults.temperature"), ("top_p", 0, "defaults.top_p"),
    ("candidates", 0, "defaults.candidates"), ("candidates", 1000, "defaults.candidates"),
    ("guidance", -2, "defaults.guidance"),
  ])
  func badDefaultsNameTheField(key: String, value: Int, field: String) throws {
    let dir = try model(with: ["defaults": [key: value]])
    do {
      _ = try ClipGenModel(directory: dir)
      Issue.record("defaults.\(key) = \(value) was accepted")
    } catch {
      #expect("\(error)".contains(field), "\(error)")
      #expect("\(error)".contains("model.json"), "\(error)")
    }
  }

  /// A model is checked as a whole when it loads: the tokenizer against the text encoder.
  @Test(arguments: [-1, 0, 1, 78, 1000, 1 << 62])
  func contextLengthMustFitTheTextEncoder(length: Int) throws {
    var tokenizer =
      try #require(
        try JSONSerialization.jsonObject(with: Data(contentsOf: fixture.appendingPathComponent("model.json")))
          as? [String: Any])["tokenizer"] as! [String: Any]
    tokenizer["context_length"] = length
    do {
      _ = try ClipGenModel(directory: try model(with: ["tokenizer": tokenizer]))
      Issue.record("context_length \(length) was accepted")
    } catch {
      #expect("\(error)".contains("tokenizer.context_length is \(length)"), "\(error)")
    }
  }

  /// Layouts are enums decoded from model.json: an unknown one is refused naming the field and
  /// the names allowed; a known one round-trips.
  @Test func layoutsAreTypedAndUnknownOnesNamed() throws {
    let manifest = try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: fixture.appendingPathComponent("model.json")))
        as? [String: Any])
    for (component, allowed) in [("clip", "'hf' or 'openai'"), ("vqgan", "'taming' or 'hfai'")] {
      var part = try #require(manifest[component] as? [String: Any])
      part["layout"] = "pytorch-lightning"
      do {
        _ = try ClipGenModel(directory: try model(with: [component: part]))
        Issue.record("\(component).layout 'pytorch-lightning' was accepted")
      } catch {
        #expect(
          "\(error)".contains("\(component).layout: 'pytorch-lightning'") && "\(error)".contains(allowed), "\(error)")
      }
    }
    let m = try ClipGenModel(directory: fixture)
    let encoded = try JSONEncoder().encode(m.manifest)
    let again = try JSONDecoder().decode(ModelManifest.self, from: encoded)
    #expect(again.clip.layout == m.manifest.clip.layout && again.vqgan.layout == m.manifest.vqgan.layout)
  }

  @Test func aVocabularyLargerThanTheEmbeddingTableIsRefused() throws {
    let dir = try model(with: [:])
    let tokenizerDir = dir.appendingPathComponent("tokenizer")
    try FileManager.default.removeItem(at: tokenizerDir)
    try FileManager.default.createDirectory(at: tokenizerDir, withIntermediateDirectories: true)
    let source = fixture.appendingPathComponent("tokenizer")
    var vocab = try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("vocab.json")))
        as? [String: Int])
    vocab["zzzz</w>"] = 1_000_000
    try JSONSerialization.data(withJSONObject: vocab).write(to: tokenizerDir.appendingPathComponent("vocab.json"))
    try FileManager.default.copyItem(
      at: source.appendingPathComponent("merges.txt"), to: tokenizerDir.appendingPathComponent("merges.txt"))
    do {
      _ = try ClipGenModel(directory: dir)
      Issue.record("a vocabulary with id 1000000 was accepted")
    } catch {
      #expect("\(error)".contains("ids up to 1000000") && "\(error)".contains("vocab.json"), "\(error)")
    }
  }

  @Test func generateUsesTheModelDefaultsUnlessTold() throws {
    let exe = try clipgenExecutable()
    let dir = try model(with: ["defaults": defaults])
    let out = try temporaryDirectory()
    func generate(_ name: String, _ flags: [String]) throws -> [String: Any] {
      let o = out.appendingPathComponent(name)
      let r = try run(
        exe, ["generate", "a red circle", "--model", dir.path, "--seed", "5", "--out", o.path, "--quiet"] + flags)
      #expect(r.status == 0, "clipgen failed: \(r.stderr)")
      return try #require(
        try JSONSerialization.jsonObject(with: Data(contentsOf: o.appendingPathComponent("manifest.json")))
          as? [String: Any])
    }
    let byDefault = try generate("defaults", [])
    let sampling = try #require(byDefault["sampling"] as? [String: Any])
    #expect((sampling["temperature"] as? Double).map { abs($0 - 0.8) < 1e-6 } == true)
    #expect(sampling["top_k"] as? Int == 16)
    #expect((sampling["top_p"] as? Double).map { abs($0 - 0.9) < 1e-6 } == true)
    #expect(sampling["guidance_scale"] as? Double == 1.5)
    #expect(byDefault["candidates"] as? Int == 3)
    #expect(
      Set(byDefault["from_model_defaults"] as? [String] ?? [])
        == ["temperature", "top_k", "top_p", "guidance_scale", "candidates"])
    // The same values given as flags draw the same picture.
    _ = try generate(
      "explicit", ["--temperature", "0.8", "--top-k", "16", "--top-p", "0.9", "--guidance", "1.5", "--candidates", "3"])
    let a = try Data(contentsOf: out.appendingPathComponent("defaults/image-00.png"))
    let b = try Data(contentsOf: out.appendingPathComponent("explicit/image-00.png"))
    #expect(try RGBImage(pngData: a).pixels == RGBImage(pngData: b).pixels)
    // A flag wins over the model's value; --top-k 0 means all tokens; n images sample n × candidates.
    let told = try generate("told", ["--temperature", "1", "--top-k", "0", "--n", "2"])
    let toldSampling = try #require(told["sampling"] as? [String: Any])
    #expect(toldSampling["temperature"] as? Double == 1)
    #expect(toldSampling["top_k"] == nil || toldSampling["top_k"] is NSNull)
    #expect(told["candidates"] as? Int == 6)
    #expect(Set(told["from_model_defaults"] as? [String] ?? []) == ["top_p", "guidance_scale", "candidates"])
  }

  @Test func inspectShowsTheTrainingFingerprints() throws {
    let exe = try clipgenExecutable()
    let data: [String: Any] = ["listing": String(repeating: "ab", count: 32), "files": 24, "resolution": 64]
    let fingerprints: [String: Any] = [
      "data": data, "vqgan": "ec522bd4e8f1189f", "clip": "9d1218f00b6f6e4c", "prior": "2d981288b86266c0",
      "shards": ["data": data, "vqgan": "ec522bd4e8f1189f", "clip": "9d1218f00b6f6e4c"],
    ]
    let r = try run(exe, ["inspect", try model(with: ["fingerprints": fingerprints]).path])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stdout.contains("data.resolution = 64") && r.stdout.contains("vqgan = ec522bd4e8f1189f"), "\(r.stdout)")
    #expect(r.stdout.contains("come from this VQGAN and CLIP"), "\(r.stdout)")
    var stale = fingerprints
    stale["shards"] = ["data": data, "vqgan": "0000000000000000", "clip": "9d1218f00b6f6e4c"]
    let s = try run(exe, ["inspect", try model(with: ["fingerprints": stale]).path])
    #expect(s.stdout.contains("warning: the prior was trained on another vqgan"), "\(s.stdout)")
  }

  /// Small rough edges: `--version`, every id of a prompt with a literal <|endoftext|>, and a
  /// top-k message that says 0 is allowed.
  @Test func versionInspectAndTopKMessages() throws {
    let exe = try clipgenExecutable()
    let version = try run(exe, ["--version"])
    #expect(
      version.status == 0 && version.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == ClipGenVersion.string)
    let r = try run(exe, ["inspect", fixture.path, "--prompt", "hello <|endoftext|> world"])
    #expect(r.status == 0, "\(r.stderr)")
    let ids = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("  ids") })
    #expect(ids.split(separator: " ").count - 1 == 10, "\(ids)")  // all 10 ids, not 5
    #expect(r.stdout.contains("note: CLIP reads the embedding at the first <|endoftext|> (token 5 of 10)"))
    // A cut inside a word is marked, and punctuation keeps to its word.
    let long = try run(
      exe,
      [
        "inspect", fixture.path, "--prompt",
        "a red circle " + String(repeating: "abcdefghij", count: 10) + " , on the left",
      ])
    #expect(
      long.stdout.contains("the last 13 text tokens are dropped (\"…jabcdefghij, on the left\")"), "\(long.stdout)")
    #expect {
      try SamplingSettings(topK: 1000).validate(vocabularySize: 64)
    } throws: { error in
      "\(error)".contains("between 0 (all tokens) and 64")
    }
  }

  @Test func inspectShowsTheDefaultsAndExamples() throws {
    let exe = try clipgenExecutable()
    let dir = try model(with: ["defaults": defaults, "sample_prompts": ["a blue square at the top"]])
    let r = try run(exe, ["inspect", dir.path])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(
      r.stdout.contains("defaults      temperature 0.8, top-k 16, top-p 0.9, guidance 1.5, 3 candidates per image"),
      "\(r.stdout)")
    #expect(r.stdout.contains("examples      a blue square at the top"), "\(r.stdout)")
  }
}
