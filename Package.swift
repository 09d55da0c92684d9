// swift-tools-version: 6.0
// clipgen: a terminal studio and CPU inference engine for CLIP-GEN text-to-image generation.
import PackageDescription

// Every Swift target keeps its bounds and exclusivity checks in release builds: the engine parses
// files from strangers too (safetensors, model.json, PNG/JPEG). Measured on the gpt2-medium
// preset, fastest of 3 runs each on a quiet machine, the checked engine was no slower than the
// -Ounchecked one it replaced (VQGAN decode 752 vs 912 ms, prior step batch 1 41 vs 47 ms,
// batch 8 54 vs 63 ms); the hot loops are C (CKernels, -O3) and OpenBLAS.
let package = Package(
  name: "clipgen",
  products: [
    .library(name: "ClipGenEngine", targets: ["ClipGenEngine"]),
    .executable(name: "clipgen", targets: ["clipgen"]),
    .library(name: "ClipGenStudio", targets: ["ClipGenStudio"]),
    .executable(name: "clipgen-studio", targets: ["clipgen-studio"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
  ],
  targets: [
    // System libraries (Debian packages; the Makefile installs what is missing).
    .systemLibrary(
      name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
    .systemLibrary(name: "CSixel", pkgConfig: "libsixel", providers: [.apt(["libsixel-dev"])]),
    .systemLibrary(name: "CNcursesw", pkgConfig: "ncursesw", providers: [.apt(["libncurses-dev"])]),
    // C functions for ncurses macros and globals, so Swift never touches them directly.
    .target(name: "CCursesShim", dependencies: ["CNcursesw"]),
    // PNG (libpng, with text chunks) and JPEG (libjpeg-turbo) reading and writing.
    .target(
      name: "CImageIO",
      linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg"), .linkedLibrary("z")]),
    // Hand-written SIMD kernels (AVX-512 per function behind a runtime CPU check, portable C
    // otherwise). Always optimised: debug builds run the same vector code the release build does.
    .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
    .target(
      name: "ClipGenEngine",
      dependencies: ["COpenBLAS", "CImageIO", "CKernels"]),
    // PyTorch zip/pickle/TorchScript reading, layout detection, conversion and inspection: only
    // the CLI links it (the studio never links a pickle reader).
    .target(name: "ClipGenConvert", dependencies: ["ClipGenEngine"]),
    // Labelled sheets of images (a 5×7 bitmap font, rows × columns with their labels): the
    // studio's comparison export, `clipgen interpolate`'s strip, X/Y grids.
    .target(name: "ClipGenSheets", dependencies: ["ClipGenEngine"]),
    // `clipgen bench`: random-weight models at published shapes and the measurements.
    .target(name: "ClipGenBench", dependencies: ["ClipGenEngine", "CKernels"]),
    .executableTarget(
      name: "clipgen",
      dependencies: [
        "ClipGenEngine", "ClipGenConvert", "ClipGenBench", "ClipGenSheets",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),
    // The terminal studio: driver, cell grid, views, sixel + half-block images, history, themes.
    .target(
      name: "ClipGenStudio",
      dependencies: [
        "ClipGenEngine", "ClipGenSheets", "CSixel", "CNcursesw", "CCursesShim",
        .product(name: "GRDB", package: "GRDB.swift"),
      ]),
    // The studio executable: start-up only.
    .executableTarget(
      name: "clipgen-studio",
      dependencies: [
        "ClipGenStudio", "ClipGenEngine",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),
    // One fuzz target per parser of outside bytes, and the executable libFuzzer drives (make fuzz;
    // built plainly, it replays inputs). The tests replay the committed corpora through them.
    .target(name: "ClipGenFuzzTargets", dependencies: ["ClipGenEngine", "ClipGenConvert", "ClipGenStudio"]),
    .executableTarget(name: "clipgen-fuzz", dependencies: ["ClipGenFuzzTargets"]),
    .testTarget(name: "ClipGenFuzzTests", dependencies: ["ClipGenFuzzTargets"]),
    .testTarget(name: "ClipGenStudioTests", dependencies: ["ClipGenStudio"], exclude: ["Snapshots", "Tools"]),
    .testTarget(
      name: "ClipGenEngineTests",
      dependencies: ["ClipGenEngine", "ClipGenConvert", "ClipGenBench", "ClipGenSheets"],
      exclude: ["Fixtures", "TokenizerHardStrings.json"]),
  ],
  swiftLanguageModes: [.v6]
)
