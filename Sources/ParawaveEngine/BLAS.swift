import COpenBLAS
import ParawaveCore

/// Matrix products through OpenBLAS (cblas), the only place the engine calls BLAS.
///
/// Row-major throughout: `C (M x N) = alpha * op(A) (M x K) * op(B) (K x N) + beta * C`,
/// with `op` the identity or the transpose, `lda`, `ldb`, `ldc` the row strides.
public enum BLAS {
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
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
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
