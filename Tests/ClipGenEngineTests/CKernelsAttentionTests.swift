// Single-query attention over a key/value cache (CKernels `ck_attend_*`): the AVX-512 path and the
// portable one against a double-precision reference, f32 and f16 caches, odd head widths and
// lengths (masked tails, the four-keys-at-a-time scoring and its remainder).
import CKernels
import Foundation
import Testing

@testable import ClipGenEngine

@Suite(.serialized) struct CKernelsAttentionTests {
  @Test(arguments: [2, 0])
  func attentionMatchesDoubleReference(level: Int) {
    CPUKernels.cap(level)
    defer { CPUKernels.cap(nil) }
    var r = TestRandom(seed: 31)
    for hd in [64, 16, 17, 40, 80, 130] {
      for visible in [1, 2, 3, 4, 5, 17, 64, 255] {
        let stride = hd + 7  // rows farther apart than the head, as in a multi-head cache
        let q = (0..<hd).map { _ in r.uniform() * 2 }
        let k = (0..<(visible * stride)).map { _ in r.uniform() * 2 }
        let v = (0..<(visible * stride)).map { _ in r.uniform() }
        let scale = 1 / Float(hd).squareRoot()
        for f16 in [false, true] {
          let kk = f16 ? CPUKernels.fromHalf(CPUKernels.toHalf(k)) : k
          let vv = f16 ? CPUKernels.fromHalf(CPUKernels.toHalf(v)) : v
          // Reference in double on the values the kernel sees.
          var s = (0..<visible).map { j in
            (0..<hd).reduce(0.0) { $0 + Double(q[$1]) * Double(kk[j * stride + $1]) } * Double(scale)
          }
          let m = s.max()!
          s = s.map { exp($0 - m) }
          let total = s.reduce(0, +)
          let expected = (0..<hd).map { c in
            (0..<visible).reduce(0.0) { $0 + s[$1] / total * Double(vv[$1 * stride + c]) }
          }
          var out = [Float](repeating: .nan, count: hd)
          var scratch = [Float](repeating: 0, count: visible)
          if f16 {
            let kh = CPUKernels.toHalf(k)
            let vh = CPUKernels.toHalf(v)
            ck_attend_f16(q, kh, vh, stride, Int32(visible), Int32(hd), scale, &scratch, &out)
          } else {
            ck_attend_f32(q, k, v, stride, Int32(visible), Int32(hd), scale, &scratch, &out)
          }
          let worst = zip(out, expected).map { abs(Double($0) - $1) }.max()!
          #expect(worst < 2e-6, "hd \(hd) visible \(visible) f16 \(f16) \(CPUKernels.name): \(worst)")
        }
      }
    }
  }
}
