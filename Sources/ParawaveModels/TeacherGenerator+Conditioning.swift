import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import Synchronization

/// The generator's per-utterance biases and its mel conditioning, upsampled and projected
/// one block of samples at a time.
extension TeacherGenerator {
    /// Every layer's bias of h per utterance, from the stack (with the speakers' terms).
    func setBiases(utterances B: Int, speakers: [Int]?) {
        let H = 2 * G, LH = L * H
        var embeddings = [Float](repeating: 0, count: B * teacher.config.stack.speakerChannels)
        SpeakerTable.embed(speakers, table: teacher.speakerTable, batch: B, store: teacher.store, into: &embeddings, model: "teacher")
        var layerBias = [Float](repeating: 0, count: B * H)
        embeddings.withUnsafeBufferPointer { e in
            layerBias.withUnsafeMutableBufferPointer { bias in
                for l in 0..<L {
                    teacher.stack.gateBias(l, speaker: e.isEmpty ? nil : e.baseAddress!, batch: B, store: teacher.store, into: bias.baseAddress!)
                    for b in 0..<B {
                        for (position, row) in rowOrder.enumerated() { conditionBias[b * LH + l * H + position] = bias[b * H + row] }
                    }
                }
            }
        }
    }

    /// Fills a block of conditioning for samples [start, start + blockLength) from the normalised mels.
    func prepareConditioning(into conditionBlock: UnsafeMutablePointer<Float>, normalised: [Float], utterances B: Int, frames F: Int,
                             start: Int) {
        conditionRows(0..<upsampleBlock(normalised: normalised, utterances: B, frames: F, start: start), utterances: B, into: conditionBlock)
    }

    /// Upsampled, normalised conditioning (B, Cc, blockPositions) at the block's positions for
    /// samples [start, start + blockLength); returns how many positions are inside the mels.
    func upsampleBlock(normalised: [Float], utterances B: Int, frames F: Int, start: Int) -> Int {
        let stack = teacher.stack, store = teacher.store
        // Frames beyond the block whose conditioning reaches into it: the window around the
        // block is upsampled whole and its middle kept, equal to the full-length pass there.
        let halo = (stack.config.upsampleReach + hop - 1) / hop + 1
        let f0 = start / hop, f1 = min(F, (start + blockLength) / hop)
        guard f1 > f0 else { return 0 }
        let lo = max(0, f0 - halo), hi = min(F, f1 + halo), n = hi - lo
        let P = positions, blockPositions = blockPositions
        var window = [Float](repeating: 0, count: C * n)
        var repeated = [Float](repeating: 0, count: stack.transposedUpsample == nil && P == hop ? C * n * hop : 0)
        var upsampled = [Float](repeating: 0, count: C * n * P)
        let first = (f0 - lo) * P, count = (f1 - f0) * P
        for b in 0..<B {
            for c in 0..<C {
                for f in 0..<n { window[c * n + f] = normalised[(b * C + c) * F + lo + f] }
            }
            upsampled.withUnsafeMutableBufferPointer { u in
                if P == hop {
                    repeated.withUnsafeMutableBufferPointer { r in
                        stack.upsample(mel: window, batch: 1, frames: n, into: u.baseAddress!, repeated: r.baseAddress, store: store)
                    }
                } else {
                    stack.representatives(mel: window, batch: 1, frames: n, into: u.baseAddress!, store: store)
                }
            }
            for c in 0..<C {
                upsampled.withUnsafeBufferPointer { u in
                    (upsampledBlock + (b * C + c) * blockPositions).update(from: u.baseAddress! + c * n * P + first, count: count)
                }
            }
        }
        return count
    }

    /// Rows `rows` of `conditionBlock`: every layer's conditioning product plus its dilated
    /// convolution's bias, per utterance (position, L*2G) = c_up^T (position, Cc) W^T (Cc, L*2G).
    func conditionRows(_ rows: Range<Int>, utterances B: Int, into conditionBlock: UnsafeMutablePointer<Float>) {
        guard !rows.isEmpty else { return }
        let LH = L * 2 * G, blockPositions = blockPositions
        for b in 0..<B {
            let out = conditionBlock + (b * blockPositions + rows.lowerBound) * LH
            for t in 0..<rows.count { (out + t * LH).update(from: conditionBias + b * LH, count: LH) }
            BLAS.sgemm(transposeA: true, transposeB: true, m: rows.count, n: LH, k: C,
                       a: upsampledBlock + b * C * blockPositions + rows.lowerBound, lda: blockPositions,
                       b: condition, ldb: C, beta: 1, c: out, ldc: LH)
        }
    }
}
