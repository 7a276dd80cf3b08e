import Foundation

/// Leading and trailing silence removal in the manner of `librosa.effects.trim`.
///
/// The signal is cut into centred frames of `frameLength` every `hopLength` samples (zero
/// padding at the edges); a frame is silent when its RMS is more than `topDB` below the
/// loudest frame's. The kept span runs from the first non-silent frame's start to the end
/// of the last one. An all-silent signal trims to nothing.
public enum SilenceTrimmer {
    /// The half-open sample range to keep.
    public static func span(_ samples: [Float], topDB: Double, frameLength: Int = 1024, hopLength: Int = 256) -> Range<Int> {
        let n = samples.count
        guard n > 0 else { return 0..<0 }
        let frames = 1 + n / hopLength
        var rms = [Double](repeating: 0, count: frames)
        let half = frameLength / 2
        for f in 0..<frames {
            let lo = max(0, f * hopLength - half), hi = min(n, f * hopLength - half + frameLength)
            var sum = 0.0
            if lo < hi { for i in lo..<hi { sum += Double(samples[i]) * Double(samples[i]) } }
            rms[f] = (sum / Double(frameLength)).squareRoot()
        }
        let loudest = rms.max() ?? 0
        guard loudest > 0 else { return 0..<0 }
        let threshold = loudest * pow(10, -topDB / 20)
        guard let first = rms.firstIndex(where: { $0 > threshold }), let last = rms.lastIndex(where: { $0 > threshold }) else {
            return 0..<0
        }
        return min(n, first * hopLength)..<min(n, (last + 1) * hopLength)
    }
}
