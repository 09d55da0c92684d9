// Process-level facts the executables use before the engine starts.
import Foundation

public enum EngineEnvironment {
  /// The OpenBLAS core type to request on this CPU: "SkylakeX" where AVX-512 is available (it
  /// doubles large GEMMs on this project's machines), nil otherwise. OpenBLAS reads
  /// `OPENBLAS_CORETYPE` once, when it loads, so executables set it and re-exec themselves.
  public static func preferredOpenBLASCoreType(cpuinfo: String? = nil) -> String? {
    let text = cpuinfo ?? (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    guard let flags = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
    let set = Set(flags.split(separator: " ").map(String.init))
    return set.contains("avx512f") && set.contains("avx512bw") && set.contains("avx512vl") ? "SkylakeX" : nil
  }

  /// Re-executes the current process with `OPENBLAS_CORETYPE` set when it is unset and this CPU
  /// has a preferred core type. Returns normally when nothing needs doing (or exec fails).
  public static func reexecWithPreferredBLASCore() {
    guard getenv("OPENBLAS_CORETYPE") == nil, getenv("CLIPGEN_NO_REEXEC") == nil,
      let core = preferredOpenBLASCoreType()
    else { return }
    setenv("OPENBLAS_CORETYPE", core, 1)
    setenv("CLIPGEN_NO_REEXEC", "1", 1)
    let args = CommandLine.arguments
    var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
    cargs.append(nil)
    execv("/proc/self/exe", cargs)
    // exec failed: carry on with the default kernels.
  }
}
