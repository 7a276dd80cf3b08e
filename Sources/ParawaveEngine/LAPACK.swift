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
}
