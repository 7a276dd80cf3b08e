import ParawaveCore
import ParawaveEngine
import Testing

/// The BLAS edge: sgemm equals the naive reference in every transpose combination,
/// with strides wider than the matrices, alpha and beta.
struct BLASTests {
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func sgemmMatchesNaive(_ transposes: (Bool, Bool)) {
        let (ta, tb) = transposes
        let m = 7, n = 13, k = 29
        let lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 5
        var rng = SeededGenerator(seed: 11)
        let a = (0..<((ta ? k : m) * lda)).map { _ in rng.normal() }
        let b = (0..<((tb ? n : k) * ldb)).map { _ in rng.normal() }
        let c0 = (0..<(m * ldc)).map { _ in rng.normal() }
        var fast = c0, naive = c0
        BLAS.sgemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb, beta: 2, c: &fast, ldc: ldc)
        BLAS.sgemmNaive(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb, beta: 2, c: &naive, ldc: ldc)
        for i in 0..<(m * ldc) {
            // Padding columns beyond n are untouched by both.
            #expect(abs(fast[i] - naive[i]) <= 1e-5 * max(1, abs(naive[i])), "element \(i)")
        }
    }

    @Test func threadCountIsSettable() {
        let before = BLAS.threads
        BLAS.setThreads(1)
        #expect(BLAS.threads == 1)
        BLAS.setThreads(before)
        #expect(BLAS.threads == before)
    }
}
