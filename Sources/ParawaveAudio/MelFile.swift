import ParawaveCore

/// Reads a vocoder input mel from `.npy`, checking it the way a user needs it checked.
///
/// The convention is shape (n_mels, frames). A (frames, n_mels) file is read only when the
/// caller says so (`framesFirst`), never by guessing from the shape.
public enum MelFile {
    public static func read(_ path: String, nMels: Int, framesFirst: Bool = false) throws -> Matrix {
        let array = try NPY.read(path)
        guard array.shape.count == 2 else {
            throw ParawaveError(path, "a mel must be a 2-D array (n_mels, frames), but this one has shape \(array.shape)")
        }
        var matrix = Matrix(rows: array.shape[0], columns: array.shape[1], values: array.values)
        if framesFirst { matrix = matrix.transposed() }
        guard matrix.rows == nMels else {
            let hint = matrix.columns == nMels && !framesFirst
                ? "; it looks like (frames, n_mels): pass --frames-first if that is how it was saved"
                : ""
            throw ParawaveError(path, "the mel has \(matrix.rows) bands but the model expects \(nMels) (shape \(array.shape))\(hint)")
        }
        guard matrix.columns > 0 else { throw ParawaveError(path, "the mel has no frames") }
        if let bad = matrix.values.firstIndex(where: { !$0.isFinite }) {
            let kind = matrix.values[bad].isNaN ? "NaN" : "an infinite value"
            throw ParawaveError(path, "the mel contains \(kind) at band \(bad / matrix.columns), frame \(bad % matrix.columns)")
        }
        return matrix
    }
}

extension Matrix {
    /// The transpose, (columns, rows).
    public func transposed() -> Matrix {
        var out = Matrix(rows: columns, columns: rows)
        for r in 0..<rows { for c in 0..<columns { out.values[c * rows + r] = values[r * columns + c] } }
        return out
    }
}
