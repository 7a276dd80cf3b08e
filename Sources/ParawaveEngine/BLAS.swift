import COpenBLAS
import Foundation
import ParawaveCore

/// The arithmetic of the engine's matrix products.
public enum MatrixPrecision: String, Sendable, CaseIterable {
    /// float32 operands and accumulation (OpenBLAS's SGEMM).
    case single
    /// Operands rounded to bfloat16, float32 accumulation and output (oneDNN), the mixed
    /// precision of PyTorch's autocast on CPUs: weights, gradients and optimiser stay float32.
    case bfloat16

    /// The precisions this CPU runs: single, and bfloat16 where it has the arithmetic.
    public static var available: [MatrixPrecision] { BFloat16GEMM.isSupported ? [.single, .bfloat16] : [.single] }
}

/// A precision as a recipe or the command line asks for it.
public enum PrecisionChoice: String, Codable, CaseIterable, Sendable {
    /// bfloat16 where the CPU has the arithmetic (AVX512_BF16 or AMX), single otherwise.
    case auto
    case single
    case bfloat16

    /// The precision to run; asking for bfloat16 on a CPU without it is an error naming `key`.
    public func resolved(key: String, bfloat16Supported: Bool = BFloat16GEMM.isSupported) throws -> MatrixPrecision {
        switch self {
        case .auto: return bfloat16Supported ? .bfloat16 : .single
        case .single: return .single
        case .bfloat16:
            guard bfloat16Supported else {
                throw ParawaveError(key, "bfloat16 was asked for, but this CPU has no bfloat16 arithmetic (AVX512_BF16 or AMX); "
                                    + "use single, or auto (bfloat16 where the CPU has it)")
            }
            return .bfloat16
        }
    }
}

/// Matrix products through OpenBLAS (cblas), the only place the engine calls BLAS, or in
/// bfloat16 through oneDNN while `precision` says so.
///
/// Row-major throughout: `C (M x N) = alpha * op(A) (M x K) * op(B) (K x N) + beta * C`,
/// with `op` the identity or the transpose, `lda`, `ldb`, `ldc` the row strides.
public enum BLAS {
    /// The precision of `sgemm`'s products on the calling thread (set it with `withPrecision`);
    /// worker threads a pass starts must be given it (`WaveNetStack` does).
    public static var precision: MatrixPrecision {
        pthread_getspecific(precisionKey) == nil ? .single : .bfloat16
    }

    /// Runs `body` with every product of `sgemm` on this thread in `precision`.
    public static func withPrecision<R>(_ precision: MatrixPrecision, _ body: () throws -> R) rethrows -> R {
        let saved = pthread_getspecific(precisionKey)
        pthread_setspecific(precisionKey, precision == .bfloat16 ? UnsafeRawPointer(bitPattern: 1) : nil)
        defer { pthread_setspecific(precisionKey, saved) }
        return try body()
    }

    /// The thread-specific slot of `precision`: nil for single, any other value for bfloat16.
    private static let precisionKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Products smaller than this many multiply-adds stay float32 even in bfloat16: rounding
    /// their operands and calling oneDNN costs more than it saves.
    public static let bfloat16MinimumWork = 1 << 18

    /// Sets OpenBLAS's worker-thread count. The engine runs BLAS calls and its own parallel
    /// elementwise loops one after the other, never together, so both may use every core.
    public static func setThreads(_ count: Int) {
        openblas_set_num_threads(Int32(max(1, count)))
    }

    /// OpenBLAS's current worker-thread count.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// `C = alpha * op(A) * op(B) + beta * C` (row-major).
    @inline(__always)
    public static func sgemm(transposeA: Bool = false, transposeB: Bool = false,
                             m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0,
                             c: UnsafeMutablePointer<Float>, ldc: Int) {
        if precision == .bfloat16 && m * n * k >= bfloat16MinimumWork && alpha == 1 && (beta == 0 || beta == 1) {
            bfloat16Product(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb,
                            beta: beta, c: c, ldc: ldc)
            return
        }
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// The product with A and B rounded to bfloat16 and multiplied by oneDNN in float32
    /// accumulation. With `threads` above 1 the product is split into that many blocks of
    /// columns (or rows, when there are more rows) that the workers round and multiply
    /// independently, each with single-threaded oneDNN: the split is fixed by the shape, so
    /// results do not depend on timing, and no OpenMP pool spins beside OpenBLAS's.
    static func bfloat16Product(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                                a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let splitColumns = n >= m
        let parts = max(1, min(threads, (splitColumns ? n : m) / 64))
        // Operands inside a region `withRoundedOperands` rounded already are read from there.
        let state = BFloat16ThreadState.current
        let (aRows, aColumns) = transposeA ? (k, m) : (m, k), (bRows, bColumns) = transposeB ? (n, k) : (k, n)
        let aRounded = state.rounded(a, extent: (aRows - 1) * lda + aColumns)
        let bRounded = state.rounded(b, extent: (bRows - 1) * ldb + bColumns)
        // Blocks of whole 16s, so each one's rounding runs at full vector width.
        func bound(_ p: Int) -> Int {
            let total = splitColumns ? n : m
            return p == parts ? total : (total * p / parts) / 16 * 16
        }
        let body = { (p: Int) in
            let lo = bound(p), hi = bound(p + 1)
            guard hi > lo else { return }
            if splitColumns {
                // Columns lo..<hi of op(B) and of C.
                let offset = transposeB ? lo * ldb : lo
                bfloat16Block(transposeA: transposeA, transposeB: transposeB, m: m, n: hi - lo, k: k, a: a, aRounded: aRounded, lda: lda,
                              b: b + offset, bRounded: bRounded.map { $0 + offset }, ldb: ldb, beta: beta, c: c + lo, ldc: ldc)
            } else {
                // Rows lo..<hi of op(A) and of C.
                let offset = transposeA ? lo : lo * lda
                bfloat16Block(transposeA: transposeA, transposeB: transposeB, m: hi - lo, n: n, k: k, a: a + offset,
                              aRounded: aRounded.map { $0 + offset }, lda: lda, b: b, bRounded: bRounded, ldb: ldb, beta: beta,
                              c: c + lo * ldc, ldc: ldc)
            }
        }
        if parts == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: parts, execute: body) }
    }

    /// One block of `bfloat16Product`, on the calling thread: an operand without a rounded
    /// copy is rounded into the thread's buffers.
    static func bfloat16Block(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                              a: UnsafePointer<Float>, aRounded: UnsafePointer<UInt16>?, lda: Int,
                              b: UnsafePointer<Float>, bRounded: UnsafePointer<UInt16>?, ldb: Int,
                              beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let state = BFloat16ThreadState.current
        // A is stored (m x k) or, transposed, (k x m); B (k x n) or (n x k).
        let (aRows, aColumns) = transposeA ? (k, m) : (m, k), (bRows, bColumns) = transposeB ? (n, k) : (k, n)
        var a16 = aRounded, b16 = bRounded, ldA = lda, ldB = ldb
        if a16 == nil {
            let buffer = state.buffer(0, count: aRows * aColumns)
            BFloat16.convert(a, rows: aRows, columns: aColumns, stride: lda, into: buffer)
            a16 = UnsafePointer(buffer)
            ldA = aColumns
        }
        if b16 == nil {
            let buffer = state.buffer(1, count: bRows * bColumns)
            BFloat16.convert(b, rows: bRows, columns: bColumns, stride: ldb, into: buffer)
            b16 = UnsafePointer(buffer)
            ldB = bColumns
        }
        do {
            try BFloat16GEMM.shared.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                                         a: a16!, lda: ldA, b: b16!, ldb: ldB, beta: beta, c: c, ldc: ldc, threads: 1)
        } catch {
            preconditionFailure("a bfloat16 product was asked for where oneDNN cannot make one: \(error)")
        }
    }

    /// Runs `body` with each of `regions` (a float32 pointer and a count of values) rounded to
    /// bfloat16 once, in bfloat16 runs: the products in `body` whose operand lies inside a
    /// region read the rounded copy instead of rounding it again (a convolution's K taps are K
    /// products on shifted views of one input). The regions must not change inside `body`.
    public static func withRoundedOperands<R>(_ regions: [(UnsafePointer<Float>, Int)], _ body: () throws -> R) rethrows -> R {
        guard precision == .bfloat16 else { return try body() }
        let state = BFloat16ThreadState.current
        let added = state.round(regions)
        defer { state.forget(added) }
        return try body()
    }

    /// The same product by three loops in Float64 accumulation: the reference `sgemm` is tested against.
    public static func sgemmNaive(transposeA: Bool = false, transposeB: Bool = false,
                                  m: Int, n: Int, k: Int, alpha: Float = 1,
                                  a: UnsafePointer<Float>, lda: Int,
                                  b: UnsafePointer<Float>, ldb: Int,
                                  beta: Float = 0,
                                  c: UnsafeMutablePointer<Float>, ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k {
                    let x = transposeA ? a[p * lda + i] : a[i * lda + p]
                    let y = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                    sum += Double(x) * Double(y)
                }
                c[i * ldc + j] = alpha * Float(sum) + (beta == 0 ? 0 : beta * c[i * ldc + j])
            }
        }
    }
}
