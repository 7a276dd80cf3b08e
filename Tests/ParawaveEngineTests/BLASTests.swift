import ParawaveCore
import ParawaveEngine
import ParawaveTestSupport
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

/// The per-sample matrix-times-vectors kernel against its Float64 reference, on shapes with
/// and without multiples of 4 rows and 8 columns, batch 1 to 5, with strided vectors.
struct MatVecTests {
    @Test(arguments: [(128, 192, 1), (128, 64, 3), (30, 64, 8), (7, 13, 5), (1, 5, 1)])
    func matchesNaive(m: Int, n: Int, batch: Int) {
        // W is a block of a wider matrix (row stride n + 5), as for one tap of the stacked taps.
        let ldw = n + 5
        let w = GradientCheck.random(m * ldw, seed: 1), x = GradientCheck.random(batch * (n + 3), seed: 2)
        let start = GradientCheck.random(batch * (m + 1), seed: 3)
        var fast = start, naive = start
        MatVec.accumulate(y: &fast, ldy: m + 1, w: w, m: m, n: n, ldw: ldw, x: x, ldx: n + 3, batch: batch)
        MatVec.accumulateNaive(y: &naive, ldy: m + 1, w: w, m: m, n: n, ldw: ldw, x: x, ldx: n + 3, batch: batch)
        var worst: Float = 0
        for (a, b) in zip(fast, naive) { worst = max(worst, abs(a - b) / max(Float(1), abs(b))) }
        // Float32 sums of up to 192 products against Float64 sums: within 1e-5.
        #expect(worst <= 1e-5, "worst difference \(worst)")
        // Padding columns of y (index m of each row) are untouched.
        for b in 0..<batch {
            let pad = b * (m + 1) + m
            #expect(fast[pad] == start[pad])
        }
    }
}
