// The safetensors reader: round trips, every dtype the engine reads, and a clear error naming the
// file and tensor for each way a file can be wrong.
import Foundation
import Testing

@testable import ClipGenEngine

/// Builds a file from a hand-written header and data bytes.
func rawSafeTensors(header: String, data: [UInt8]) -> Data {
  var out = Data()
  var n = UInt64(header.utf8.count).littleEndian
  withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
  out.append(contentsOf: Array(header.utf8))
  out.append(contentsOf: data)
  return out
}

@Suite struct SafeTensorsTests {
  @Test func roundTripsF32AndF16WithMetadata() throws {
    let dir = try temporaryDirectory()
    let a = Tensor(shape: [2, 3], scalars: [1, -2, 3.5, 0, 1e-3, -7])
    let b = Tensor(shape: [4], scalars: [0.5, 0.25, -1, 2])
    let url = dir.appendingPathComponent("w.safetensors")
    try SafeTensorsWriter.write([("layer.a", a), ("b", b)], metadata: ["format": "pt"], to: url)
    let f = try SafeTensorsFile(url: url)
    #expect(f.tensorNames == ["b", "layer.a"])
    #expect(f.metadata["format"] == "pt")
    #expect(try f.tensor("layer.a") == a)
    #expect(try f.tensor("b", shape: [4]) == b)
    let h = dir.appendingPathComponent("h.safetensors")
    try SafeTensorsWriter.write([("a", a)], storage: .f16, to: h)
    let half = try SafeTensorsFile(url: h)
    #expect(half.entries["a"]?.dtype == .f16)
    #expect(try half.tensor("a").maxAbsDifference(a) < 1e-3)
  }

  @Test func readsBF16AndIntegerTensors() throws {
    let dir = try temporaryDirectory()
    // bf16 of 1.0 is 0x3F80, of -2.0 is 0xC000; int64 7 and -1.
    let header =
      #"{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"i":{"dtype":"I64","shape":[2],"data_offsets":[4,20]}}"#
    let data: [UInt8] = [0x80, 0x3F, 0x00, 0xC0, 7, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0xFF, count: 8)
    let url = dir.appendingPathComponent("m.safetensors")
    try rawSafeTensors(header: header, data: data).write(to: url)
    let f = try SafeTensorsFile(url: url)
    #expect(try f.tensor("x").scalars == [1, -2])
    #expect(try f.integers("i").values == [7, -1])
  }

  /// Each broken file gives an error whose text names the file (and tensor where there is one).
  @Test func brokenFilesGiveErrorsNamingFileAndTensor() throws {
    let dir = try temporaryDirectory()
    let good = SafeTensorsWriter.data([("encoder.weight", Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]))])
    func check(_ name: String, _ bytes: Data, contains needles: [String]) throws {
      let url = dir.appendingPathComponent(name)
      try bytes.write(to: url)
      do {
        let f = try SafeTensorsFile(url: url)
        _ = try f.tensor("encoder.weight", shape: [2, 2])
        Issue.record("\(name): expected an error")
      } catch let e as WeightError {
        let text = e.description
        #expect(text.contains(url.path), "\(name): '\(text)' does not name the file")
        for n in needles { #expect(text.contains(n), "\(name): '\(text)' does not mention '\(n)'") }
      }
    }
    try check("truncated.safetensors", good.prefix(good.count - 3), contains: ["encoder.weight", "truncated"])
    try check("short.safetensors", good.prefix(5), contains: ["shorter than"])
    try check(
      "huge-header.safetensors", Data([0xFF, 0xFF, 0, 0, 0, 0, 0, 0]) + good.dropFirst(8), contains: ["header length"])
    // A length over Int.max (found by fuzzing: it trapped converting to Int).
    try check(
      "sign-bit-header.safetensors", Data([0, 0, 0, 0, 0, 0, 0, 0x80]) + good.dropFirst(8),
      contains: ["header length 9223372036854775808"])
    try check("not-json.safetensors", rawSafeTensors(header: "{nope", data: []), contains: ["not valid JSON"])
    try check(
      "bad-dtype.safetensors",
      rawSafeTensors(
        header: #"{"encoder.weight":{"dtype":"Q4","shape":[2,2],"data_offsets":[0,16]}}"#,
        data: [UInt8](repeating: 0, count: 16)),
      contains: ["encoder.weight", "Q4"])
    try check(
      "size-mismatch.safetensors",
      rawSafeTensors(
        header: #"{"encoder.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}}"#,
        data: [UInt8](repeating: 0, count: 16)),
      contains: ["encoder.weight", "needs 24"])
    // 2^62 elements of 4 bytes: the byte count wraps to 0 unless checked, and an empty range passed.
    try check(
      "byte-overflow.safetensors",
      rawSafeTensors(
        header: #"{"encoder.weight":{"dtype":"F32","shape":[2147483648,2147483648],"data_offsets":[0,0]}}"#,
        data: []),
      contains: ["encoder.weight", "overflows"])
    try check(
      "reversed.safetensors",
      rawSafeTensors(
        header: #"{"encoder.weight":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#,
        data: [UInt8](repeating: 0, count: 16)),
      contains: ["encoder.weight", "reversed"])
    try check(
      "nan.safetensors",
      rawSafeTensors(
        header: #"{"encoder.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#,
        data: [0, 0, 0xC0, 0x7F] + [UInt8](repeating: 0, count: 12)),
      contains: ["encoder.weight", "not finite"])
    try check(
      "missing.safetensors", SafeTensorsWriter.data([("decoder.weight", Tensor(zeros: [2, 2]))]),
      contains: ["missing tensor 'encoder.weight'"])
    try check(
      "wrong-shape.safetensors", SafeTensorsWriter.data([("encoder.weight", Tensor(zeros: [4]))]),
      contains: ["encoder.weight", "[4]", "expected [2, 2]"])
    do {
      _ = try SafeTensorsFile(url: dir.appendingPathComponent("absent.safetensors"))
      Issue.record("absent file: expected an error")
    } catch let e as WeightError {
      #expect(e.description.contains("absent.safetensors") && e.description.contains("No such file"))
    }
  }
}
