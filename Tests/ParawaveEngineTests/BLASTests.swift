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

/// The per-sample matrix products against their Float64 reference, on shapes that use every
/// panel width (64, 32, 8 and a padded 8), one to three input segments, batch 1 to 8, strided
/// vectors, with and without an addend, and both precisions.
struct PackedMatrixTests {
    @Test(arguments: [(128, 192, 3, 1), (128, 64, 1, 3), (30, 64, 1, 8), (7, 13, 1, 5), (1, 5, 1, 1), (100, 12, 2, 2), (200, 6, 3, 2)])
    func matchesNaive(rows: Int, columns: Int, segments: Int, batch: Int) {
        for precision in PackedMatrix.Precision.allCases {
            for withAddend in [false, true] {
                let ld = columns + 5
                let values = GradientCheck.random(rows * ld, seed: 1)
                let matrix = PackedMatrix(rows: rows, columns: columns, precision: precision, values: values, ld: ld)
                // The stored elements: the values, rounded to Float16 for .half.
                var worstElement: Float = 0
                for o in 0..<rows {
                    for i in 0..<columns {
                        let expected = precision == .single ? values[o * ld + i] : Float(Float16(values[o * ld + i]))
                        worstElement = max(worstElement, abs(matrix[o, i] - expected))
                    }
                }
                #expect(worstElement == 0)
                let width = columns / segments, ldx = width + 3
                let inputs = (0..<segments).map { GradientCheck.random(batch * ldx, seed: UInt64(10 + $0)) }
                let addend = GradientCheck.random(batch * (rows + 2), seed: 3)
                let start = GradientCheck.random(batch * (rows + 1), seed: 4)
                var fast = start, naive = start
                withPointers(inputs) { x in
                    addend.withUnsafeBufferPointer { a in
                        let a = withAddend ? a.baseAddress : nil
                        matrix.product(y: &fast, ldy: rows + 1, addend: a, ldAddend: rows + 2, segments: x, count: segments, ldx: ldx, batch: batch)
                        matrix.productNaive(y: &naive, ldy: rows + 1, addend: a, ldAddend: rows + 2, segments: x, count: segments, ldx: ldx, batch: batch)
                    }
                }
                var worst: Float = 0
                for (a, b) in zip(fast, naive) { worst = max(worst, abs(a - b) / max(Float(1), abs(b))) }
                // Float32 sums of up to 192 products against Float64 sums: within 1e-5.
                #expect(worst <= 1e-5, "worst difference \(worst) (\(precision), addend \(withAddend))")
                // Padding columns of y (index `rows` of each vector) are untouched.
                for b in 0..<batch { #expect(fast[b * (rows + 1) + rows] == start[b * (rows + 1) + rows]) }
            }
        }
    }

    /// `y` may be the addend: then the product accumulates.
    @Test func accumulatesInPlace() {
        let values = GradientCheck.random(72 * 16, seed: 5), x = GradientCheck.random(16, seed: 6)
        let matrix = PackedMatrix(rows: 72, columns: 16, values: values)
        var y = GradientCheck.random(72, seed: 7)
        let before = y
        y.withUnsafeMutableBufferPointer { y in matrix.product(y: y.baseAddress!, ldy: 72, addend: y.baseAddress!, ldAddend: 72, x: x, ldx: 16, batch: 1) }
        for o in 0..<72 {
            var s = Double(before[o])
            for i in 0..<16 { s += Double(values[o * 16 + i]) * Double(x[i]) }
            #expect(abs(Double(y[o]) - s) <= 1e-5 * max(1, abs(s)))
        }
    }

    /// Float16 storage halves the bytes; its products stay within the rounding of the weights:
    /// |W~x - Wx| <= 2^-11 sum_i |W[o, i] x[i]| (plus Float32 summation error).
    @Test func halfPrecisionError() {
        let rows = 128, columns = 192
        let values = GradientCheck.random(rows * columns, seed: 8), x = GradientCheck.random(columns, seed: 9)
        let single = PackedMatrix(rows: rows, columns: columns, precision: .single, values: values)
        let half = PackedMatrix(rows: rows, columns: columns, precision: .half, values: values)
        #expect(half.bytes * 2 == single.bytes)
        var a = [Float](repeating: 0, count: rows), b = a
        single.product(y: &a, ldy: rows, x: x, ldx: columns, batch: 1)
        half.product(y: &b, ldy: rows, x: x, ldx: columns, batch: 1)
        var changed = false
        for o in 0..<rows {
            var magnitude: Float = 0
            for i in 0..<columns { magnitude += abs(values[o * columns + i] * x[i]) }
            #expect(abs(a[o] - b[o]) <= magnitude / 2048 + 1e-5)
            changed = changed || a[o] != b[o]
        }
        // The rounding is real: the two precisions do differ.
        #expect(changed)
    }

    private func withPointers(_ arrays: [[Float]], _ body: (UnsafePointer<UnsafePointer<Float>>) -> Void) {
        let pointers = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: arrays.count)
        defer { pointers.deallocate() }
        let buffers = arrays.map { array -> UnsafeMutablePointer<Float> in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: array.count)
            p.initialize(from: array, count: array.count)
            return p
        }
        defer { for p in buffers { p.deallocate() } }
        for (k, p) in buffers.enumerated() { pointers[k] = UnsafePointer(p) }
        body(pointers)
    }
}
