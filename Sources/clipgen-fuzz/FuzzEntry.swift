// clipgen-fuzz: the fuzz targets of ClipGenFuzzTargets as one executable.
//
// Built with `-sanitize=fuzzer,address -DFUZZING` (make fuzz), libFuzzer drives it; the target is
// chosen by CLIPGEN_FUZZ_TARGET. Built plainly (swift build), it replays files instead:
// `clipgen-fuzz TARGET FILE...` runs each file once and says which one is running, so a crash
// found elsewhere can be reproduced under the debugger.
import ClipGenFuzzTargets
import Foundation

#if FUZZING
  nonisolated(unsafe) private var target: FuzzTarget = .safetensors

  @_cdecl("LLVMFuzzerInitialize")
  public func fuzzerInitialize(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
  ) -> Int32 {
    let name = ProcessInfo.processInfo.environment["CLIPGEN_FUZZ_TARGET"] ?? ""
    guard let chosen = FuzzTarget(rawValue: name) else {
      let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
      FileHandle.standardError.write(Data("clipgen-fuzz: set CLIPGEN_FUZZ_TARGET to one of \(names)\n".utf8))
      exit(2)
    }
    target = chosen
    return 0
  }

  // SwiftPM links an executable with its entry point renamed to `clipgen_fuzz_main` (and `main`
  // defined as that symbol), so libFuzzer's own `main` is not the one that runs: start its driver.
  @_silgen_name("LLVMFuzzerRunDriver")
  func runDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
  ) -> Int32

  @_cdecl("clipgen_fuzz_main")
  public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var vector = argv
    return runDriver(&count, &vector) { fuzzerTestOneInput($0, $1) }
  }

  @_cdecl("LLVMFuzzerTestOneInput")
  public func fuzzerTestOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let data = bytes.map { Data(bytes: $0, count: count) } ?? Data()
    target.run(data)
    return 0
  }
#else
  @main
  struct Replay {
    static func main() {
      let args = Array(CommandLine.arguments.dropFirst())
      guard let name = args.first, let target = FuzzTarget(rawValue: name) else {
        let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")
        print("usage: clipgen-fuzz \(names) FILE...  (replays inputs; make fuzz builds the fuzzer)")
        exit(2)
      }
      for path in args.dropFirst() {
        guard let data = FileManager.default.contents(atPath: path) else {
          print("clipgen-fuzz: cannot read \(path)")
          exit(1)
        }
        print("\(target.rawValue): \(path)")
        target.run(data)
      }
    }
  }
#endif
