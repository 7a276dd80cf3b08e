import Foundation
import ParawaveCore
import ParawaveEngine
import ParawaveTestSupport
import Testing

struct BFloat16Tests {
    /// Round to nearest, ties to even, on the 7-bit mantissa; infinities and NaN kept.
    @Test func roundsToNearestEven() {
        #expect(BFloat16.from(1) == 0x3F80 && BFloat16.float(0x3F80) == 1)
        #expect(BFloat16.from(1 + 0x1p-8) == 0x3F80, "a tie rounds to the even neighbour below")
        #expect(BFloat16.from(1 + 3 * 0x1p-8) == 0x3F82, "a tie rounds to the even neighbour above")
        #expect(BFloat16.from(1 + 0x1p-8 + 0x1p-20) == 0x3F81, "above the tie rounds up")
        #expect(BFloat16.from(-2.5) == 0xC020)
        #expect(BFloat16.from(.infinity) == 0x7F80 && BFloat16.from(-.infinity) == 0xFF80)
        #expect(BFloat16.float(BFloat16.from(.nan)).isNaN)
        #expect(BFloat16.from(.greatestFiniteMagnitude) == 0x7F80, "beyond bfloat16's largest value rounds to infinity")
        var g = SeededGenerator(seed: 2)
        for _ in 0..<1000 {
            let x = (g.uniformOpen() - 0.5) * 1000
            let r = BFloat16.float(BFloat16.from(x))
            #expect(abs(r - x) <= abs(x) * 0x1p-8)
        }
    }

    /// Products against OpenBLAS's float32 SGEMM, every transpose, leading dimensions wider
    /// than the matrices, and accumulation into C. On operands already in bfloat16 the
    /// products are exact in float32, so only the summation order differs (bound 1e-5 of
    /// sum |a||b|). On float32 operands rounded to bfloat16 each factor errs by at most 2^-9
    /// relative, so each product by 2^-8 (bound 2^-8 sum |a||b| plus the same 1e-5).
    @Test(.enabled(if: BFloat16GEMM.isSupported, "this CPU has no bfloat16 arithmetic"),
          arguments: [(false, false), (true, false), (false, true), (true, true)])
    func productsMatchFloat32(_ transposeA: Bool, _ transposeB: Bool) throws {
        let m = 37, n = 129, k = 70, lda = (transposeA ? m : k) + 3, ldb = (transposeB ? k : n) + 5, ldc = n + 2
        let aRows = transposeA ? k : m, bRows = transposeB ? n : k
        let a32 = GradientCheck.random(aRows * lda, seed: 3), b32 = GradientCheck.random(bRows * ldb, seed: 4)
        let a16 = a32.map(BFloat16.from), b16 = b32.map(BFloat16.from)
        let aRounded = a16.map(BFloat16.float), bRounded = b16.map(BFloat16.float)
        let start = GradientCheck.random(m * ldc, seed: 5)
        func element(_ x: [Float], _ ld: Int, _ transposed: Bool, _ r: Int, _ c: Int) -> Float { transposed ? x[c * ld + r] : x[r * ld + c] }
        // sum |a||b| per element of C, for the bounds.
        var magnitude = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { for p in 0..<k {
            magnitude[i * n + j] += abs(element(a32, lda, transposeA, i, p) * element(b32, ldb, transposeB, p, j))
        } } }
        for beta: Float in [0, 1] {
            var ours = start, exact = start, float32 = start
            try a16.withUnsafeBufferPointer { a in
                try b16.withUnsafeBufferPointer { b in
                    try BFloat16GEMM.shared.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a.baseAddress!, lda: lda,
                                                 b: b.baseAddress!, ldb: ldb, beta: beta, c: &ours, ldc: ldc)
                }
            }
            BLAS.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: aRounded, lda: lda, b: bRounded, ldb: ldb,
                       beta: beta, c: &exact, ldc: ldc)
            BLAS.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a32, lda: lda, b: b32, ldb: ldb,
                       beta: beta, c: &float32, ldc: ldc)
            for i in 0..<m {
                for j in 0..<n {
                    let o = ours[i * ldc + j], mag = magnitude[i * n + j] + 1
                    #expect(abs(o - exact[i * ldc + j]) <= 1e-5 * mag, "(\(i), \(j)) beta \(beta)")
                    #expect(abs(o - float32[i * ldc + j]) <= (0x1p-8 + 1e-5) * mag, "(\(i), \(j)) beta \(beta)")
                }
                // The padding beyond n is untouched.
                for j in n..<ldc { #expect(ours[i * ldc + j] == start[i * ldc + j]) }
            }
        }
    }
}
