// swift-tools-version: 6.0
// clipgen: a terminal studio and CPU inference engine for CLIP-GEN text-to-image generation.
import PackageDescription

let releaseSpeed: [SwiftSetting] = [
  .unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked"], .when(configuration: .release))
]

let package = Package(
  name: "clipgen",
  products: [
    .library(name: "ClipGenEngine", targets: ["ClipGenEngine"]),
    .executable(name: "clipgen", targets: ["clipgen"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
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
    .target(
      name: "ClipGenEngine",
      dependencies: ["COpenBLAS", "CImageIO"],
      swiftSettings: releaseSpeed),
    .executableTarget(
      name: "clipgen",
      dependencies: [
        "ClipGenEngine",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      swiftSettings: releaseSpeed),
    .testTarget(
      name: "ClipGenEngineTests",
      dependencies: ["ClipGenEngine"],
      exclude: ["Fixtures", "TokenizerHardStrings.json"]),
  ],
  swiftLanguageModes: [.v5]
)
