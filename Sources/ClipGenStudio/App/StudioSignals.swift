// Termination signals (SIGTERM, SIGHUP, SIGINT) ask the studio to stop cleanly: cancel the
// running generation, record it in the history, and restore the terminal.
import Foundation
import Synchronization

private let terminationRequested = Atomic<Int32>(0)

/// Catches termination signals so the studio can shut down properly.
public enum StudioSignals {
  /// Installs the handlers (once, at start-up).
  public static func install() {
    var set = sigset_t()
    sigemptyset(&set)
    for s in [SIGTERM, SIGHUP, SIGINT] {
      signal(s) { sig in terminationRequested.store(sig, ordering: .relaxed) }
      sigaddset(&set, s)
    }
    // A parent may have started us with these blocked; we want them.
    pthread_sigmask(SIG_UNBLOCK, &set, nil)
  }

  /// The signal that asked the studio to stop, if any.
  public static var pending: Int32? {
    let s = terminationRequested.load(ordering: .relaxed)
    return s == 0 ? nil : s
  }
}
