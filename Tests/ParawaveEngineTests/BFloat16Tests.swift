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

    /// `BLAS.sgemm` inside `withPrecision(.bfloat16)`: shapes large enough to leave OpenBLAS,
    /// split over the workers by columns (n >= m) or by rows, with sizes that are not whole
    /// 16s, every transpose, and accumulation into C. Against float32 products of the rounded
    /// operands (only the summation order differs) and of the originals (bfloat16's bound), and
    /// the same twice, bit for bit.
    @Test(.enabled(if: BFloat16GEMM.isSupported, "this CPU has no bfloat16 arithmetic"),
          arguments: [(false, false), (true, false), (false, true), (true, true)])
    func sgemmInBFloat16(_ transposeA: Bool, _ transposeB: Bool) throws {
        for (m, n, k) in [(40, 2_051, 67), (1_043, 35, 70)] {
            #expect(m * n * k >= BLAS.bfloat16MinimumWork)
            let lda = (transposeA ? m : k) + 1, ldb = (transposeB ? k : n) + 2, ldc = n + 3
            let aRows = transposeA ? k : m, bRows = transposeB ? n : k
            let a32 = GradientCheck.random(aRows * lda, seed: 6), b32 = GradientCheck.random(bRows * ldb, seed: 7)
            let aRounded = a32.map { BFloat16.float(BFloat16.from($0)) }, bRounded = b32.map { BFloat16.float(BFloat16.from($0)) }
            let start = GradientCheck.random(m * ldc, seed: 8)
            func element(_ x: [Float], _ ld: Int, _ transposed: Bool, _ r: Int, _ c: Int) -> Float { transposed ? x[c * ld + r] : x[r * ld + c] }
            for beta: Float in [0, 1] {
                var ours = start, again = start, exact = start, float32 = start
                BLAS.withPrecision(.bfloat16) {
                    BLAS.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a32, lda: lda, b: b32, ldb: ldb,
                               beta: beta, c: &ours, ldc: ldc)
                    BLAS.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a32, lda: lda, b: b32, ldb: ldb,
                               beta: beta, c: &again, ldc: ldc)
                }
                BLAS.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: aRounded, lda: lda, b: bRounded, ldb: ldb,
                           beta: beta, c: &exact, ldc: ldc)
                BLAS.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a32, lda: lda, b: b32, ldb: ldb,
                           beta: beta, c: &float32, ldc: ldc)
                #expect(ours.map(\.bitPattern) == again.map(\.bitPattern), "deterministic")
                var worst: Float = 0, worstRounding: Float = 0, untouched = true
                for i in 0..<m {
                    for j in 0..<n {
                        var magnitude: Float = 1
                        for p in 0..<k { magnitude += abs(element(a32, lda, transposeA, i, p) * element(b32, ldb, transposeB, p, j)) }
                        let o = ours[i * ldc + j]
                        worst = max(worst, abs(o - exact[i * ldc + j]) / magnitude)
                        worstRounding = max(worstRounding, abs(o - float32[i * ldc + j]) / magnitude)
                    }
                    for j in n..<ldc where ours[i * ldc + j] != start[i * ldc + j] { untouched = false }
                }
                #expect(worst <= 1e-5, "\(m) x \(n) x \(k) beta \(beta): \(worst) of sum |a||b| from the rounded operands' float32 product")
                #expect(worstRounding <= 0x1p-8 + 1e-5, "\(m) x \(n) x \(k) beta \(beta): \(worstRounding) of sum |a||b| from float32")
                #expect(worstRounding > 0, "the product did run in bfloat16")
                #expect(untouched, "C's padding is untouched")
            }
        }
    }

    /// The CPU's conversion instruction rounds as `BFloat16.from` does (ties to even, NaN
    /// kept, overflow to infinity), for every length's vector tail; subnormal inputs, which
    /// the instruction reads as zero, are left out.
    @Test func conversionMatchesTheDefinition() {
        var g = SeededGenerator(seed: 9)
        var values: [Float] = [1, 1 + 0x1p-8, 1 + 3 * 0x1p-8, -2.5, .infinity, -.infinity, .greatestFiniteMagnitude, 0, -0.0, 65504, 1e-30]
        for _ in 0..<1000 { values.append(Float(bitPattern: UInt32.random(in: 0x0080_0000...0x7F7F_FFFF, using: &g)) * (g.uniformOpen() < 0.5 ? -1 : 1)) }
        for count in [values.count, 1, 15, 16, 17, 33] {
            var out = [UInt16](repeating: 0, count: count)
            values.withUnsafeBufferPointer { BFloat16.convert($0.baseAddress!, count: count, into: &out) }
            #expect(out == values.prefix(count).map(BFloat16.from), "\(count) values")
        }
        var nan = [UInt16](repeating: 0, count: 1)
        [Float.nan].withUnsafeBufferPointer { BFloat16.convert($0.baseAddress!, count: 1, into: &nan) }
        #expect(BFloat16.float(nan[0]).isNaN)
    }

    /// `auto` is bfloat16 only where the CPU has it; asking for bfloat16 on a CPU without it
    /// is an error that says so and names the key.
    @Test func precisionChoices() throws {
        #expect(try PrecisionChoice.auto.resolved(key: "train.precision", bfloat16Supported: false) == .single)
        #expect(try PrecisionChoice.auto.resolved(key: "train.precision", bfloat16Supported: true) == .bfloat16)
        #expect(try PrecisionChoice.single.resolved(key: "train.precision", bfloat16Supported: true) == .single)
        #expect(try PrecisionChoice.bfloat16.resolved(key: "train.precision", bfloat16Supported: true) == .bfloat16)
        let error = #expect(throws: ParawaveError.self) { try PrecisionChoice.bfloat16.resolved(key: "distill.precision", bfloat16Supported: false) }
        #expect(error?.description.contains("distill.precision") == true)
        #expect(error?.description.contains("no bfloat16 arithmetic") == true)
        #expect(MatrixPrecision.available.contains(.single))
        #expect(MatrixPrecision.available.contains(.bfloat16) == BFloat16GEMM.isSupported)
    }

    /// A dilated convolution's forward and backward in bfloat16 (the input, and dOut, rounded
    /// once for all K taps) against float32: every output within bfloat16's bound of the sum of
    /// |a||b| behind it (computed by the same convolution on absolute values), and the products
    /// did run in bfloat16. A convolution that keeps float32 gives float32's results exactly.
    @Test(.enabled(if: BFloat16GEMM.isSupported, "this CPU has no bfloat16 arithmetic"))
    func convolutionInBFloat16() throws {
        let Cin = 48, Cout = 64, T = 3000, B = 2
        var conv = Conv1d.causal(inputChannels: Cin, outputChannels: Cout, kernelSize: 3, dilation: 2)
        let x = GradientCheck.random(B * Cin * T, seed: 12), w = GradientCheck.random(3 * Cout * Cin, seed: 13, scale: 0.2)
        let dy = GradientCheck.random(B * Cout * T, seed: 15)
        func run(_ precision: MatrixPrecision, _ x: [Float], _ w: [Float], _ dy: [Float]) -> ([Float], [Float], [Float]) {
            var out = [Float](repeating: 0, count: B * Cout * T), dx = [Float](repeating: 0, count: B * Cin * T)
            var dw = [Float](repeating: 0, count: w.count)
            BLAS.withPrecision(precision) {
                conv.forward(out: &out, inp: x, weight: w, bias: nil, batch: B, length: T)
                conv.backward(dInp: &dx, dWeight: &dw, dBias: nil, dOut: dy, inp: x, weight: w, batch: B, length: T)
            }
            return (out, dx, dw)
        }
        let half = run(.bfloat16, x, w, dy), single = run(.single, x, w, dy)
        let magnitude = run(.single, x.map(abs), w.map(abs), dy.map(abs))
        for (name, h, f, m) in [("output", half.0, single.0, magnitude.0), ("dInp", half.1, single.1, magnitude.1),
                                ("dWeight", half.2, single.2, magnitude.2)] {
            let worst = zip(zip(h, f), m).map { abs($0.0 - $0.1) / ($1 + 1e-3) }.max() ?? 0
            #expect(worst <= 0x1p-8 + 1e-5, "\(name): \(worst) of sum |a||b|")
            #expect(h != f, "\(name) ran in bfloat16")
        }
        conv.keepsFloat32 = true
        let kept = run(.bfloat16, x, w, dy)
        #expect(kept.0 == single.0 && kept.1 == single.1 && kept.2 == single.2)
    }
}
