import Foundation
import ParawaveAudio

/// Statistics of a set of log-mel features: per band and overall mean and standard
/// deviation, and the range. Checkpoints record those of their training mels so that
/// `render` can tell when an input mel was made another way (log10, dB, normalised).
public struct MelStatistics: Codable, Equatable, Sendable {
    public var frames: Int = 0
    /// Per band, (n_mels).
    public var mean: [Double] = []
    public var std: [Double] = []
    public var overallMean: Double = 0
    public var overallStd: Double = 0
    public var minimum: Double = 0
    public var maximum: Double = 0

    enum CodingKeys: String, CodingKey {
        case frames, mean, std, overallMean = "overall_mean", overallStd = "overall_std", minimum = "min", maximum = "max"
    }

    public init() {}

    /// Accumulates sums over log-mels (n_mels, F) in Float64.
    public struct Accumulator: Sendable {
        var sum: [Double] = []
        var squares: [Double] = []
        var frames = 0
        var minimum = Double.infinity
        var maximum = -Double.infinity

        public init() {}

        public mutating func add(_ mel: Matrix) {
            if sum.isEmpty {
                sum = [Double](repeating: 0, count: mel.rows)
                squares = sum
            }
            precondition(mel.rows == sum.count, "band count changed between mels")
            for b in 0..<mel.rows {
                var s = 0.0, q = 0.0
                for f in 0..<mel.columns {
                    let v = Double(mel[b, f])
                    s += v
                    q += v * v
                    minimum = min(minimum, v)
                    maximum = max(maximum, v)
                }
                sum[b] += s
                squares[b] += q
            }
            frames += mel.columns
        }

        public var statistics: MelStatistics {
            var out = MelStatistics()
            guard frames > 0 else { return out }
            let n = Double(frames)
            out.frames = frames
            out.mean = sum.map { $0 / n }
            out.std = zip(squares, out.mean).map { max($0 / n - $1 * $1, 0).squareRoot() }
            let total = n * Double(sum.count)
            out.overallMean = sum.reduce(0, +) / total
            out.overallStd = max(squares.reduce(0, +) / total - out.overallMean * out.overallMean, 0).squareRoot()
            out.minimum = minimum
            out.maximum = maximum
            return out
        }
    }
}
