import Foundation

/// How well a rendered waveform keeps the real recording's pitch, by the measures vocoder
/// papers report, from two F0 tracks on the same frame grid (the same tracker run on both):
///
/// - `rmseCents`: sqrt(mean over frames voiced in both of (1200 log2(f_g / f_r))^2);
/// - `within50`: the fraction of those frames with |1200 log2(f_g / f_r)| < 50 cents;
/// - `voicingError`: the fraction of all frames whose voiced/unvoiced decisions differ.
///
/// Both are nil when no frame is voiced in both. `Accumulator` pools frames over utterances,
/// so a split's figures weight every frame equally.
public struct PitchMetrics: Codable, Equatable, Sendable {
    public var rmseCents: Double?
    public var within50: Double?
    public var voicingError: Double
    /// Frames voiced in both tracks, and all frames compared.
    public var bothVoiced: Int
    public var frames: Int

    enum CodingKeys: String, CodingKey {
        case rmseCents = "f0_rmse_cents", within50 = "f0_within_50_cents", voicingError = "vuv_error", bothVoiced = "both_voiced_frames", frames
    }

    /// Compares two tracks of F0 in Hz (0 or non-finite where unvoiced) over their common length.
    public static func compare(reference: [Float], generated: [Float]) -> PitchMetrics {
        var accumulator = Accumulator()
        accumulator.add(reference: reference, generated: generated)
        return accumulator.metrics
    }

    /// Sums over frames of several utterances.
    public struct Accumulator: Sendable {
        var squaredCents = 0.0, within = 0, both = 0, disagreements = 0, frames = 0

        public init() {}

        public mutating func add(reference: [Float], generated: [Float]) {
            let n = min(reference.count, generated.count)
            for i in 0..<n {
                let r = reference[i], g = generated[i]
                let rv = r.isFinite && r > 0, gv = g.isFinite && g > 0
                frames += 1
                if rv != gv { disagreements += 1 }
                guard rv && gv else { continue }
                let cents = 1200 * log2(Double(g) / Double(r))
                squaredCents += cents * cents
                if abs(cents) < 50 { within += 1 }
                both += 1
            }
        }

        /// The counts and sums as numbers (to add over processes), and back.
        public var sums: [Double] { [squaredCents, Double(within), Double(both), Double(disagreements), Double(frames)] }

        public init(sums v: [Double]) {
            (squaredCents, within, both, disagreements, frames) = (v[0], Int(v[1]), Int(v[2]), Int(v[3]), Int(v[4]))
        }

        public mutating func add(_ other: Accumulator) {
            squaredCents += other.squaredCents
            within += other.within
            both += other.both
            disagreements += other.disagreements
            frames += other.frames
        }

        public var metrics: PitchMetrics {
            PitchMetrics(rmseCents: both > 0 ? (squaredCents / Double(both)).squareRoot() : nil,
                         within50: both > 0 ? Double(within) / Double(both) : nil,
                         voicingError: frames > 0 ? Double(disagreements) / Double(frames) : 0, bothVoiced: both, frames: frames)
        }
    }
}
