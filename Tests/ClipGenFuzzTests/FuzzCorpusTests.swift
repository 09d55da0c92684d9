// Every committed fuzz input (Fuzz/corpus/TARGET: the seeds, the hand-crafted edge cases and every
// crash the fuzzers ever found) runs through its target without crashing.
import ClipGenFuzzTargets
import Foundation
import Testing

private let repositoryRoot = URL(fileURLWithPath: #filePath)
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

@Suite(.serialized) struct FuzzCorpusTests {
  @Test(arguments: FuzzTarget.allCases)
  func corpusRunsWithoutCrashing(_ target: FuzzTarget) throws {
    setenv("CLIPGEN_FUZZ_FIXTURES", repositoryRoot.appendingPathComponent("Tests/ClipGenEngineTests/Fixtures").path, 1)
    let dir = repositoryRoot.appendingPathComponent("Fuzz/corpus/\(target.rawValue)")
    let files = try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
      .filter { !$0.lastPathComponent.hasPrefix(".") }
    #expect(files.count >= 3, "Fuzz/corpus/\(target.rawValue) holds \(files.count) seeds")
    for file in files {
      target.run(try Data(contentsOf: file))
    }
  }

  @Test func everyTargetHasADictionary() throws {
    for target in FuzzTarget.allCases {
      let dict = repositoryRoot.appendingPathComponent("Fuzz/dictionaries/\(target.rawValue).dict")
      let text = try String(contentsOf: dict, encoding: .utf8)
      #expect(text.split(separator: "\n").contains { !$0.hasPrefix("#") && $0.contains("\"") }, "\(dict.path)")
    }
  }
}
