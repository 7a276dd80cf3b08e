import Foundation

/// The sinusoidal source excitation of a neural source-filter vocoder (DESIGN.md section 10):
/// a sample-rate signal that oscillates at the utterance's F0 in voiced frames and is silent
/// elsewhere. It is a deterministic function of the F0 track (and an initial phase), so a
/// model conditioned on it stays a function of its conditioning.
///
/// From a frame-rate track (frame i centred on sample i * hop, F0 in Hz, 0 where unvoiced):
///
///   f0_t   = exp of log F0 interpolated linearly between the centres of voiced frames
///            (held flat before the first and after the last; across an unvoiced gap it
///            runs from one voiced run's last value to the next one's first)
///   phi_t  = phi_(t-1) + 2 pi f0_t / sr,  phi_(-1) = initial phase
///   e_t    = sum over h = 1..H with h f0_t < sr / 2 of a_h sin(h phi_t)
///   s_t    = v_t e_t / sqrt(sum_h a_h^2 / 2)
///
/// with a_h = 1 (`.equal`) or 1 / h (`.inverse`), and v_t the voicing of sample t: 1 where the
/// nearest frame is voiced, 0 where it is not, with linear ramps of `ramp` samples centred on
/// each voicing boundary. In a steady voiced stretch with every harmonic below Nyquist the
/// source has unit RMS.
public struct SineSource: Codable, Equatable, Hashable, Sendable {
    /// How the harmonics are weighted.
    public enum Amplitude: String, Codable, CaseIterable, Sendable {
        /// Every harmonic at amplitude 1.
        case equal
        /// Harmonic h at amplitude 1 / h (a sawtooth's spectrum).
        case inverse
    }

    /// How a model's training sources get their phase.
    public enum TrainingPhase: String, Codable, CaseIterable, Sendable {
        /// A uniformly drawn initial phase per crop (at render time the phase starts at 0).
        case random
        /// Aligned to the recording's fundamental (`signal(f0:hop:sampleRate:alignedTo:)`), so
        /// a teacher learns that its output's fundamental follows the source; at render time
        /// the phase accumulates from 0 and the output follows it.
        case aligned
    }

    /// H, the harmonics summed (those at or above Nyquist are left out sample by sample).
    public var harmonics: Int
    public var amplitude: Amplitude
    /// Samples over which the source fades in and out at voicing boundaries.
    public var ramp: Int
    public var trainingPhase: TrainingPhase

    public init(harmonics: Int = 8, amplitude: Amplitude = .inverse, ramp: Int = 64, trainingPhase: TrainingPhase = .random) {
        self.harmonics = harmonics
        self.amplitude = amplitude
        self.ramp = ramp
        self.trainingPhase = trainingPhase
    }

    enum CodingKeys: String, CodingKey { case harmonics, amplitude, ramp, trainingPhase }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        harmonics = try c.decode(Int.self, forKey: .harmonics)
        amplitude = try c.decode(Amplitude.self, forKey: .amplitude)
        ramp = try c.decode(Int.self, forKey: .ramp)
        trainingPhase = try c.decodeIfPresent(TrainingPhase.self, forKey: .trainingPhase) ?? .random
    }

    /// A training crop's source: aligned to `audio` or from `initialPhase`, as `trainingPhase` says.
    public func trainingSignal(f0: [Float], hop: Int, sampleRate: Int, audio: [Float], initialPhase: Double) -> [Float] {
        trainingPhase == .aligned ? signal(f0: f0, hop: hop, sampleRate: sampleRate, alignedTo: audio)
            : signal(f0: f0, hop: hop, sampleRate: sampleRate, samples: audio.count, initialPhase: initialPhase)
    }

    /// Problems with the settings, each naming the field; empty when they are usable.
    public func problems() -> [String] {
        var out: [String] = []
        if harmonics < 1 || harmonics > 64 { out.append("harmonics \(harmonics) is outside 1...64") }
        if ramp < 0 || ramp > 4096 { out.append("ramp \(ramp) is outside 0...4096") }
        return out
    }

    /// The source for `samples` samples from a track of F0 values per frame (Hz, 0 or
    /// negative or non-finite where unvoiced) on a grid of `hop` samples per frame.
    public func signal(f0: [Float], hop: Int, sampleRate: Int, samples: Int, initialPhase: Double = 0) -> [Float] {
        precondition(hop >= 1 && sampleRate >= 1 && samples >= 0)
        guard let frequency = Self.frequencies(f0: f0, hop: hop, samples: samples) else { return [Float](repeating: 0, count: samples) }
        let phase = Self.accumulatedPhase(frequency, sampleRate: sampleRate, initialPhase: initialPhase)
        return harmonicSum(phase: phase, frequency: frequency, voicing: voicing(f0: f0, hop: hop, samples: samples), sampleRate: sampleRate)
    }

    /// The source with its phase aligned to `audio`'s fundamental, for teacher training: the
    /// accumulated phase phi_t (from 0) plus delta_t, the angle of audio_t e^(-i phi_t)
    /// averaged over a centred window of two periods (which cancels every harmonic but the
    /// fundamental), so that sin(phi_t + delta_t) follows the fundamental's cycles. The
    /// instantaneous frequency stays near F0 since delta_t moves slowly; in unvoiced samples
    /// the source is silent as before.
    public func signal(f0: [Float], hop: Int, sampleRate: Int, alignedTo audio: [Float]) -> [Float] {
        let samples = audio.count
        guard let frequency = Self.frequencies(f0: f0, hop: hop, samples: samples) else { return [Float](repeating: 0, count: samples) }
        let phi = Self.accumulatedPhase(frequency, sampleRate: sampleRate, initialPhase: 0)
        // Prefix sums of audio_t e^(-i phi_t).
        var re = [Double](repeating: 0, count: samples + 1), im = re
        for t in 0..<samples {
            re[t + 1] = re[t] + Double(audio[t]) * cos(phi[t])
            im[t + 1] = im[t] - Double(audio[t]) * sin(phi[t])
        }
        var phase = phi
        for t in 0..<samples {
            let half = max(1, Int((Double(sampleRate) / frequency[t]).rounded()))
            let lo = max(0, t - half), hi = min(samples, t + half)
            let sumRe = re[hi] - re[lo], sumIm = im[hi] - im[lo]
            // cos(phi + delta) has e^(i delta) / 2 as its average demodulated value; sin lags cos by pi/2.
            if sumRe != 0 || sumIm != 0 { phase[t] = phi[t] + atan2(sumIm, sumRe) + Double.pi / 2 }
        }
        return harmonicSum(phase: phase, frequency: frequency, voicing: voicing(f0: f0, hop: hop, samples: samples), sampleRate: sampleRate)
    }

    /// phi_t = phi_(t-1) + 2 pi f0_t / sr from phi_(-1) = `initialPhase`, kept in [0, 2 pi).
    static func accumulatedPhase(_ frequency: [Double], sampleRate: Int, initialPhase: Double) -> [Double] {
        var phase = [Double](repeating: 0, count: frequency.count)
        var phi = initialPhase
        for t in frequency.indices {
            phi += 2 * Double.pi * frequency[t] / Double(sampleRate)
            if phi >= 2 * Double.pi { phi -= 2 * Double.pi }
            phase[t] = phi
        }
        return phase
    }

    /// F0 per sample: log F0 interpolated between the centres of voiced frames, held beyond
    /// the first and last; nil when no frame is voiced or there are no samples.
    static func frequencies(f0: [Float], hop: Int, samples: Int) -> [Double]? {
        let voicedFrames = f0.indices.filter { isVoiced(f0[$0]) }
        guard samples > 0, !voicedFrames.isEmpty else { return nil }
        var out = [Double](repeating: 0, count: samples)
        var next = 0  // index into voicedFrames of the first voiced centre at or after t
        for t in 0..<samples {
            while next < voicedFrames.count && voicedFrames[next] * hop < t { next += 1 }
            let logF0: Double
            if next == 0 {
                logF0 = log(Double(f0[voicedFrames[0]]))
            } else if next == voicedFrames.count {
                logF0 = log(Double(f0[voicedFrames[next - 1]]))
            } else {
                let a = voicedFrames[next - 1], b = voicedFrames[next]
                let u = Double(t - a * hop) / Double((b - a) * hop)
                logF0 = (1 - u) * log(Double(f0[a])) + u * log(Double(f0[b]))
            }
            out[t] = exp(logF0)
        }
        return out
    }

    /// Voicing per sample (nearest frame), ramped at each boundary.
    func voicing(f0: [Float], hop: Int, samples: Int) -> [Float] {
        var voicing = [Float](repeating: 0, count: samples)
        for t in 0..<samples {
            let frame = min(f0.count - 1, (t + hop / 2) / hop)
            voicing[t] = Self.isVoiced(f0[frame]) ? 1 : 0
        }
        return ramp > 1 ? Self.centredRamps(voicing, width: ramp) : voicing
    }

    /// s_t = v_t sum_h a_h sin(h phase_t) / sqrt(sum_h a_h^2 / 2) over harmonics below Nyquist.
    func harmonicSum(phase: [Double], frequency: [Double], voicing: [Float], sampleRate: Int) -> [Float] {
        let nyquist = Double(sampleRate) / 2
        let weights = (1...harmonics).map { amplitude == .equal ? 1.0 : 1.0 / Double($0) }
        let norm = 1 / (weights.map { $0 * $0 }.reduce(0, +) / 2).squareRoot()
        var out = [Float](repeating: 0, count: phase.count)
        for t in phase.indices where voicing[t] > 0 {
            var e = 0.0
            for h in 0..<harmonics where Double(h + 1) * frequency[t] < nyquist { e += weights[h] * sin(Double(h + 1) * phase[t]) }
            out[t] = Float(Double(voicing[t]) * e * norm)
        }
        return out
    }

    /// A track value that counts as voiced: finite and positive.
    @inline(__always)
    static func isVoiced(_ f0: Float) -> Bool { f0.isFinite && f0 > 0 }

    /// The 0/1 mask with every step replaced by a linear ramp of `width` samples centred on it:
    /// the mask convolved with a centred box of `width` samples (the edges held).
    static func centredRamps(_ mask: [Float], width: Int) -> [Float] {
        let n = mask.count, half = width / 2
        var prefix = [Double](repeating: 0, count: n + 1)
        for i in 0..<n { prefix[i + 1] = prefix[i] + Double(mask[i]) }
        // Sum over [t - half, t - half + width), with the mask held beyond both ends.
        func sum(_ lo: Int, _ hi: Int) -> Double {
            var s = 0.0
            if lo < 0 { s += Double(-lo) * Double(mask[0]) }
            if hi > n { s += Double(hi - n) * Double(mask[n - 1]) }
            return s + prefix[min(max(hi, 0), n)] - prefix[min(max(lo, 0), n)]
        }
        return (0..<n).map { t in Float(sum(t - half, t - half + width) / Double(width)) }
    }
}
