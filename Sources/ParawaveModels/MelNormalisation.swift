import ParawaveAudio

/// Per-band normalisation of a raw natural-log mel with the training corpus's statistics.
enum MelNormalisation {
    /// out (B, Cc, F) = (mel - mean[c]) / std[c].
    static func apply(_ mel: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, mean: [Float], std: [Float], batch: Int, frames F: Int) {
        let C = mean.count
        for b in 0..<batch {
            for c in 0..<C {
                let m = mean[c], inv = 1 / std[c]
                let x = mel + (b * C + c) * F, y = out + (b * C + c) * F
                for f in 0..<F { y[f] = (x[f] - m) * inv }
            }
        }
    }

    /// out (Cc, frames) = (mel - mean[c]) / std[c] for one mel (Cc, F), zero past its F
    /// frames (as padding to a batch's longest mel).
    static func apply(_ mel: Matrix, mean: [Float], std: [Float], frames: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(mel.rows == mean.count && frames >= mel.columns, "the mel does not fit")
        out.update(repeating: 0, count: mel.rows * frames)
        mel.values.withUnsafeBufferPointer { m in
            for c in 0..<mel.rows {
                let average = mean[c], inv = 1 / std[c]
                let x = m.baseAddress! + c * mel.columns, y = out + c * frames
                for f in 0..<mel.columns { y[f] = (x[f] - average) * inv }
            }
        }
    }
}
