// The one way the kernels run work on several threads.
import Dispatch

/// Runs `body(i)` for every `i` in `0..<iterations` across the CPU's cores and returns when all
/// have finished.
///
/// Kernels pass closures that capture raw pointers into buffers they own for the whole call, and
/// each index writes its own disjoint range of the output; nothing escapes the call. That is why
/// the non-`Sendable` closure may be handed to Dispatch through an unchecked box: Swift 6 cannot
/// prove disjoint writes through pointers, the kernels' own tests (parity against PyTorch at one
/// and several threads) do.
func concurrentPerform(_ iterations: Int, _ body: (Int) -> Void) {
  withoutActuallyEscaping(body) { body in
    let box = UncheckedSendable(body)
    DispatchQueue.concurrentPerform(iterations: iterations) { box.value($0) }
  }
}

/// A value handed across threads where the compiler cannot see that it is safe; see
/// `concurrentPerform`.
struct UncheckedSendable<Value>: @unchecked Sendable {
  let value: Value
  init(_ value: Value) { self.value = value }
}
