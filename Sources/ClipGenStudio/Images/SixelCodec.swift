// Sixel encoding (and, for tests and diagnostics, decoding) through libsixel.
import CSixel
import Foundation

/// Why libsixel could not encode or decode.
public struct SixelError: Error, CustomStringConvertible, Equatable {
  public var operation: String
  public var status: Int32
  public var description: String { "libsixel: \(operation) failed (status 0x\(String(status, radix: 16)))" }
}

/// Encodes pixmaps as sixel escape sequences and decodes them back.
public enum SixelCodec {
  private final class Sink {
    var bytes: [UInt8] = []
  }

  private static func failed(_ status: SIXELSTATUS) -> Bool { (status & 0x1000) != 0 }

  /// The complete escape sequence (`ESC P … q … ESC \`) that draws `image` at the cursor, with a
  /// palette of up to `colors` colours chosen for this image (no dithering, so flat areas stay
  /// flat). Safe to call from any thread; each call has its own libsixel objects.
  public static func encode(_ image: Pixmap, colors: Int32 = 256) throws -> [UInt8] {
    guard image.width > 0, image.height > 0 else { return [] }
    let sink = Sink()
    let unmanaged = Unmanaged.passRetained(sink)
    defer { unmanaged.release() }

    var output: OpaquePointer?
    let write: sixel_write_function = { data, size, priv in
      guard let data, let priv, size > 0 else { return 0 }
      let sink = Unmanaged<Sink>.fromOpaque(priv).takeUnretainedValue()
      data.withMemoryRebound(to: UInt8.self, capacity: Int(size)) { p in
        sink.bytes.append(contentsOf: UnsafeBufferPointer(start: p, count: Int(size)))
      }
      return size
    }
    var status = sixel_output_new(&output, write, unmanaged.toOpaque(), nil)
    guard !failed(status), let output else { throw SixelError(operation: "sixel_output_new", status: Int32(status)) }
    defer { sixel_output_unref(output) }
    sixel_output_set_8bit_availability(output, 0)  // 7-bit ESC P … ESC \, which tmux and xterm accept

    var dither: OpaquePointer?
    status = sixel_dither_new(&dither, colors, nil)
    guard !failed(status), let dither else { throw SixelError(operation: "sixel_dither_new", status: Int32(status)) }
    defer { sixel_dither_unref(dither) }

    var pixels = image.pixels
    status = pixels.withUnsafeMutableBufferPointer { p in
      sixel_dither_initialize(
        dither, p.baseAddress, Int32(image.width), Int32(image.height), SIXEL_PIXELFORMAT_RGB888, SIXEL_LARGE_AUTO,
        SIXEL_REP_AUTO, SIXEL_QUALITY_HIGH)
    }
    guard !failed(status) else { throw SixelError(operation: "sixel_dither_initialize", status: Int32(status)) }
    sixel_dither_set_diffusion_type(dither, SIXEL_DIFFUSE_NONE)
    status = pixels.withUnsafeMutableBufferPointer { p in
      sixel_encode(p.baseAddress, Int32(image.width), Int32(image.height), 3, dither, output)
    }
    guard !failed(status) else { throw SixelError(operation: "sixel_encode", status: Int32(status)) }
    return sink.bytes
  }

  /// Decodes a sixel sequence back to RGB pixels (libsixel's decoder).
  public static func decode(_ data: [UInt8]) throws -> Pixmap {
    var bytes = data
    var indexed: UnsafeMutablePointer<UInt8>?
    var palette: UnsafeMutablePointer<UInt8>?
    var width: Int32 = 0
    var height: Int32 = 0
    var ncolors: Int32 = 0
    let status = bytes.withUnsafeMutableBufferPointer { p in
      sixel_decode_raw(p.baseAddress, Int32(p.count), &indexed, &width, &height, &palette, &ncolors, nil)
    }
    defer {
      free(indexed)
      free(palette)
    }
    guard !failed(status), let indexed, let palette, width > 0, height > 0 else {
      throw SixelError(operation: "sixel_decode_raw", status: Int32(status))
    }
    let n = Int(width) * Int(height)
    var rgb = [UInt8](repeating: 0, count: n * 3)
    for i in 0..<n {
      let c = Int(indexed[i])
      guard c < Int(ncolors) else { continue }
      rgb[3 * i] = palette[3 * c]
      rgb[3 * i + 1] = palette[3 * c + 1]
      rgb[3 * i + 2] = palette[3 * c + 2]
    }
    return Pixmap(width: Int(width), height: Int(height), pixels: rgb)
  }
}
