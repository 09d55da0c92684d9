// Pictures for the views: PNGs from the history, loaded once and kept; and their sixel
// encodings, made on a background queue (libsixel) and cached by picture and pixel size. Used
// from the UI thread only; encodings come back through the studio's inbox.
import Foundation

/// Caches decoded pictures and sixel encodings for the renderer.
public final class ImageStore {
  private let files: ImageFiles
  private let post: @Sendable (_ key: String, _ result: Result<[UInt8], SixelError>) -> Void
  private var pixmaps: [String: Pixmap] = [:]
  private var pixmapOrder: [String] = []
  private var failures: [String: String] = [:]
  private var sixels: [String: [UInt8]] = [:]
  private var sixelOrder: [String] = []
  private var pending: Set<String> = []
  private var slots: [String: ImagePlacement] = [:]
  private let queue = DispatchQueue(label: "clipgen.studio.sixel", qos: .userInitiated)
  private let capacity = 48

  /// `post` delivers finished encodings to the UI thread (which calls `receive`).
  public init(
    files: ImageFiles, post: @escaping @Sendable (_ key: String, _ result: Result<[UInt8], SixelError>) -> Void
  ) {
    self.files = files
    self.post = post
  }

  /// Encodings asked for and not back yet.
  public var pendingEncodes: Int { pending.count }

  /// Remembers a picture that was just saved to `url`, so showing it needs no read.
  public func remember(_ image: Pixmap, for url: URL) {
    insertPixmap(image, path: url.path)
  }

  /// The picture in `url`, read on first use; nil (with `loadError`) when it cannot be read.
  public func pixmap(for url: URL) -> Pixmap? {
    if let p = pixmaps[url.path] { return p }
    if failures[url.path] != nil { return nil }
    do {
      let p = try files.load(url)
      insertPixmap(p, path: url.path)
      return p
    } catch {
      failures[url.path] = "\(error)"
      return nil
    }
  }

  public func loadError(for url: URL) -> String? { failures[url.path] }

  /// Forgets a failed read so the next request tries again.
  public func retry(_ url: URL) { failures[url.path] = nil }

  private func insertPixmap(_ p: Pixmap, path: String) {
    if pixmaps[path] == nil { pixmapOrder.append(path) }
    pixmaps[path] = p
    failures[path] = nil
    while pixmapOrder.count > capacity { pixmaps[pixmapOrder.removeFirst()] = nil }
  }

  /// The sixel placement showing `image` in `rect` (cells of `cellWidth`×`cellHeight` pixels).
  /// When its encoding is not ready, one is started and the slot's previous placement is
  /// returned if it covers the same cells (so a live preview never blinks); else nil.
  public func sixelPlacement(slot: String, image: Pixmap, rect: Rect, cellWidth: Int, cellHeight: Int)
    -> ImagePlacement?
  {
    let pw = rect.width * cellWidth
    let ph = rect.height * cellHeight
    guard pw > 0, ph > 0 else { return nil }
    let key = String(format: "sixel %dx%dpx #%08x", pw, ph, UInt32(truncatingIfNeeded: image.fingerprint))
    if let data = sixels[key] {
      let p = ImagePlacement(rect: rect, key: key, data: data)
      slots[slot] = p
      return p
    }
    if !pending.contains(key) {
      pending.insert(key)
      let post = self.post
      queue.async {
        let scaled = image.resized(width: pw, height: ph)
        do {
          post(key, .success(try SixelCodec.encode(scaled)))
        } catch let e as SixelError {
          post(key, .failure(e))
        } catch {
          post(key, .failure(SixelError(operation: "encode", status: -1)))
        }
      }
    }
    if let old = slots[slot], old.rect == rect { return old }
    return nil
  }

  /// Stores a finished encoding (called on the UI thread with what `post` delivered).
  public func receive(key: String, result: Result<[UInt8], SixelError>) {
    pending.remove(key)
    guard case .success(let data) = result else { return }
    if sixels[key] == nil { sixelOrder.append(key) }
    sixels[key] = data
    while sixelOrder.count > capacity { sixels[sixelOrder.removeFirst()] = nil }
  }

  /// Waits for the encodings in flight (tests).
  public func waitForEncodes() { queue.sync {} }
}
