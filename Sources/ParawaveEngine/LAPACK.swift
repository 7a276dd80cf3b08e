import Foundation
import COpenBLAS

/// Dense linear algebra from LAPACK (the copy inside OpenBLAS), in double precision.
public enum LAPACK {
    /// The Moore-Penrose pseudo-inverse (cols, rows) of a row-major (rows, cols) matrix, by
    /// LAPACK's SVD least squares (`dgelsd`): singular values below `rcond` times the largest
    /// count as zero, so rank-deficient matrices (an empty mel band) are handled. Nil if
    /// LAPACK reports a failure.
    public static func pseudoInverse(_ a: [Double], rows m: Int, columns n: Int, rcond: Double = 1e-12) -> [Double]? {
        precondition(a.count == m * n && m > 0 && n > 0, "matrix shape")
        let ldb = max(m, n)
        // Column-major A (m, n) and B (ldb, m) = the identity in its first m rows.
        var colA = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { colA[i + j * m] = a[i * n + j] } }
        var b = [Double](repeating: 0, count: ldb * m)
        for i in 0..<m { b[i + i * ldb] = 1 }
        var M = Int32(m), N = Int32(n), nrhs = Int32(m), lda = Int32(m), ldB = Int32(ldb), rank: Int32 = 0, info: Int32 = 0
        var rc = rcond
        var s = [Double](repeating: 0, count: min(m, n))
        // Workspace query, then the solve.
        var query = 0.0, iquery: Int32 = 0, lwork: Int32 = -1
        dgelsd_(&M, &N, &nrhs, &colA, &lda, &b, &ldB, &s, &rc, &rank, &query, &lwork, &iquery, &info)
        guard info == 0 else { return nil }
        lwork = Int32(query)
        var work = [Double](repeating: 0, count: max(1, Int(query)))
        var iwork = [Int32](repeating: 0, count: max(1, Int(iquery)))
        dgelsd_(&M, &N, &nrhs, &colA, &lda, &b, &ldB, &s, &rc, &rank, &work, &lwork, &iwork, &info)
        guard info == 0 else { return nil }
        // X (n, m) column-major in B's first n rows: X[j][i] = b[j + i * ldb].
        var x = [Double](repeating: 0, count: n * m)
        for j in 0..<n { for i in 0..<m { x[j * m + i] = b[j + i * ldb] } }
        return x
    }

    /// log|det A| and the sign of det A of a square row-major (n x n) matrix, from its LU
    /// factorisation (`dgetrf`); nil when A is singular.
    public static func logAbsDeterminant(_ a: [Double], n: Int) -> (logAbs: Double, sign: Double)? {
        precondition(a.count == n * n && n > 0, "matrix shape")
        // det(A^T) = det(A), so the row-major array is used as it stands (column-major A^T).
        var lu = a, N = Int32(n), info: Int32 = 0
        var pivots = [Int32](repeating: 0, count: n)
        dgetrf_(&N, &N, &lu, &N, &pivots, &info)
        guard info == 0 else { return nil }
        var logAbs = 0.0, sign = 1.0
        for i in 0..<n {
            let u = lu[i * n + i]
            logAbs += log(abs(u))
            if u < 0 { sign = -sign }
            if pivots[i] != Int32(i + 1) { sign = -sign }
        }
        return (logAbs, sign)
    }

    /// The inverse of a square row-major (n x n) matrix (`dgetrf`, `dgetri`); nil when singular.
    public static func inverse(_ a: [Double], n: Int) -> [Double]? {
        precondition(a.count == n * n && n > 0, "matrix shape")
        // inv(A^T) = inv(A)^T: LAPACK sees A^T, so its result read row-major is inv(A).
        var m = a, N = Int32(n), info: Int32 = 0
        var pivots = [Int32](repeating: 0, count: n)
        dgetrf_(&N, &N, &m, &N, &pivots, &info)
        guard info == 0 else { return nil }
        var lwork = Int32(max(1, n * 64))
        var work = [Double](repeating: 0, count: Int(lwork))
        dgetri_(&N, &m, &N, &pivots, &work, &lwork, &info)
        return info == 0 ? m : nil
    }

    /// The orthogonal factor Q of A = QR for a square row-major (n x n) matrix (`dgeqrf`,
    /// `dorgqr`), as a row-major array.
    public static func orthogonalFactor(_ a: [Double], n: Int) -> [Double] {
        precondition(a.count == n * n && n > 0, "matrix shape")
        // Column-major A from the row-major array.
        var colA = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { colA[i + j * n] = a[i * n + j] } }
        var N = Int32(n), info: Int32 = 0, lwork = Int32(max(1, n * 64))
        var tau = [Double](repeating: 0, count: n), work = [Double](repeating: 0, count: Int(lwork))
        dgeqrf_(&N, &N, &colA, &N, &tau, &work, &lwork, &info)
        precondition(info == 0, "dgeqrf failed: \(info)")
        dorgqr_(&N, &N, &N, &colA, &N, &tau, &work, &lwork, &info)
        precondition(info == 0, "dorgqr failed: \(info)")
        var q = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { q[i * n + j] = colA[i + j * n] } }
        return q
    }
}
