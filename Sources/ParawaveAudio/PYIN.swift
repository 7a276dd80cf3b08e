import Foundation
import ParawaveCore

/// Settings of the pYIN pitch tracker: librosa 0.11's `pyin` arguments.
///
/// The defaults put F0 on the 16 kHz mel's frame grid: frame_length = n_fft 1024, hop 256,
/// `center=True` with zero padding (librosa's `pad_mode="constant"` for pyin), so frame i is
/// centred on sample i * hop and frames = 1 + floor(T / hop); the range is 50-550 Hz. The
/// rest are librosa's defaults.
public struct PitchSettings: Codable, Equatable, Hashable, Sendable {
    public var sampleRate: Int = 16000
    /// Samples per analysis frame; the difference function spans the whole frame.
    public var frameLength: Int = 1024
    public var hopLength: Int = 256
    public var fMin: Double = 50
    public var fMax: Double = 550
    /// n_thresholds: thresholds k / n, k = 1...n, on the normalised difference.
    public var thresholds: Int = 100
    /// Shape parameters (a, b) of the beta prior over the thresholds.
    public var betaA: Double = 2
    public var betaB: Double = 18
    /// lambda of the Boltzmann prior over troughs: later (longer-period) troughs weigh less.
    public var boltzmannParameter: Double = 2
    /// Width of a pitch bin in semitones.
    public var resolution: Double = 0.1
    /// Largest pitch change between frames, in octaves per second.
    public var maxTransitionRate: Double = 35.92
    /// Probability of switching between voiced and unvoiced from one frame to the next.
    public var switchProbability: Double = 0.01
    /// Weight given to the global minimum at thresholds below every trough.
    public var noTroughProbability: Double = 0.01

    public init() {}

    public init(sampleRate: Int, frameLength: Int = 1024, hopLength: Int = 256, fMin: Double = 50, fMax: Double = 550) {
        self.sampleRate = sampleRate
        self.frameLength = frameLength
        self.hopLength = hopLength
        self.fMin = fMin
        self.fMax = fMax
    }

    /// Frames for a signal of `samples` samples: 1 + floor(samples / hop).
    public func frameCount(samples: Int) -> Int { 1 + max(samples, 0) / hopLength }

    /// Shortest period searched, floor(sr / fMax) samples.
    public var minPeriod: Int { Int((Double(sampleRate) / fMax).rounded(.down)) }
    /// Longest period searched, min(ceil(sr / fMin), frameLength - 1) samples.
    public var maxPeriod: Int { min(Int((Double(sampleRate) / fMin).rounded(.up)), frameLength - 1) }
    /// Pitch bins per semitone, ceil(1 / resolution).
    public var binsPerSemitone: Int { Int((1 / resolution).rounded(.up)) }
    /// Voiced states S: bin q is fMin * 2^(q / (12 binsPerSemitone)), q = 0..<S.
    public var pitchBins: Int { Int((Double(12 * binsPerSemitone) * log2(fMax / fMin)).rounded(.down)) + 1 }
    /// Width in bins of the triangular pitch-transition window: round(rate 12 hop / sr) semitones.
    public var transitionWidth: Int {
        Int((maxTransitionRate * 12 * Double(hopLength) / Double(sampleRate)).rounded(.toNearestOrEven)) * binsPerSemitone + 1
    }

    /// Problems with the settings, each naming the field; empty when they are usable.
    public func problems() -> [String] {
        var out: [String] = []
        if sampleRate < 1000 || sampleRate > 384_000 { out.append("sample_rate \(sampleRate) is outside 1000...384000") }
        if hopLength < 1 { out.append("hop_length \(hopLength) must be at least 1") }
        if !(fMin > 0) { out.append("fmin \(fMin) must be positive") }
        if !(fMax > fMin) { out.append("fmax \(fMax) must exceed fmin \(fMin)") }
        if fMax > Double(sampleRate) / 2 { out.append("fmax \(fMax) exceeds the Nyquist frequency \(sampleRate / 2)") }
        if !out.isEmpty { return out }
        if Double(sampleRate) / fMin >= Double(frameLength - 1) {
            out.append("fmin \(fMin) is too low for frame_length \(frameLength): raise fmin above \(Double(sampleRate) / Double(frameLength - 1)) Hz "
                + "or frame_length to \(Int((Double(sampleRate) / fMin).rounded(.up)) + 2)")
        } else if maxPeriod - minPeriod < 2 {
            out.append("fmin \(fMin) and fmax \(fMax) leave fewer than 3 periods to search at sample_rate \(sampleRate)")
        }
        if thresholds < 1 { out.append("thresholds \(thresholds) must be at least 1") }
        if !(betaA > 0 && betaB > 0) { out.append("beta parameters (\(betaA), \(betaB)) must be positive") }
        if !(boltzmannParameter > 0) { out.append("boltzmann parameter \(boltzmannParameter) must be positive") }
        if !(resolution > 0 && resolution < 1) { out.append("resolution \(resolution) must be in (0, 1)") }
        if !(maxTransitionRate > 0) { out.append("max transition rate \(maxTransitionRate) must be positive") }
        if !(switchProbability > 0 && switchProbability < 1) { out.append("switch probability \(switchProbability) must be in (0, 1)") }
        if !(noTroughProbability >= 0 && noTroughProbability <= 1) { out.append("no-trough probability \(noTroughProbability) must be in [0, 1]") }
        if out.isEmpty {
            if pitchBins < 2 || 2 * pitchBins > Int(UInt16.max) { out.append("\(pitchBins) pitch bins: need 2...32767 (fmin, fmax, resolution)") }
            if transitionWidth > pitchBins { out.append("transition width \(transitionWidth) bins exceeds the \(pitchBins) pitch bins") }
        }
        return out
    }
}

/// A pitch track on the frame grid: F0 in Hz (0 where unvoiced), the voicing decision and the
/// voiced probability, each (F).
public struct PitchTrack: Equatable, Sendable {
    public var f0: [Float]
    public var voiced: [Bool]
    public var voicedProbability: [Float]

    public var frames: Int { f0.count }

    /// The stored form (DESIGN 10), (2, F) row-major: F0, then the voiced probability.
    public var stacked: [Float] { f0 + voicedProbability }
}

/// One frame's YIN evidence: pitch bins that received a trough's probability, and the total.
public struct PitchObservation: Equatable, Sendable {
    /// (bin, probability) pairs, bins ascending and distinct, all in 0..<S.
    public var candidates: [(bin: Int, probability: Double)]
    /// clip(sum of the candidates' probabilities, 0, 1).
    public var voicedProbability: Double

    public static func == (a: Self, b: Self) -> Bool {
        a.voicedProbability == b.voicedProbability && a.candidates.elementsEqual(b.candidates) { $0 == $1 }
    }
}

/// Probabilistic YIN (Mauch and Dixon 2014) as librosa 0.11's `pyin`.
///
/// Per frame (in parallel over frames, in double precision):
/// 1. The difference function from the FFT autocorrelation r and the running energy
///    c[m] = sum_{i<=m} y[i]^2: d(k) = 2 (r(0) - r(k)) - c[k-1], and its cumulative mean
///    normalisation d'(k) = d(k) / ((1/k) sum_{j=1..k} d(j) + tiny), k = minPeriod...maxPeriod.
/// 2. Troughs of d' (local minima, and the first value if below the second) share, for each
///    threshold s_k = k / n with beta prior mass B_k, the prior of the troughs below s_k
///    (Boltzmann pmf in their rank); the global minimum also gets noTrough * sum of B_k over the
///    thresholds below it. A trough's period is refined by parabolic interpolation, and its
///    probability lands in pitch bin round(12 binsPerSemitone log2(sr / (period fMin))).
/// 3. A 2S-state HMM (S voiced pitch bins, S unvoiced twins), observation p for a voiced bin
///    and (1 - voiced probability) / S for every unvoiced one; transition
///    kron([[1 - s, s], [s, 1 - s]], T) with T librosa's `transition_local` triangle of
///    `transitionWidth` bins; uniform start; Viterbi decoding as `librosa.sequence.viterbi`.
///
/// The dense (2S)^2 transition is never formed: every block is s T or (1 - s) T and T is
/// banded, so a frame costs 2 S transitionWidth; transitions outside the band have
/// probability 0, which librosa's log(0 + tiny) turns into a finite penalty that `decode`
/// applies exactly through the previous frame's best state. `decodeDense` is the plain
/// librosa recursion, kept as the reference.
public struct PitchTracker: Sendable {
    public let settings: PitchSettings
    /// Mass of the beta prior between consecutive thresholds, (n).
    let betaProbabilities: [Double]
    /// Thresholds k / n, k = 0...n (numpy's linspace(0, 1, n + 1)).
    let thresholdValues: [Double]
    /// Local transition T, (S, S) row-major, rows summing to 1.
    let localTransition: [Double]
    /// log T[q + d][q] for d = -h...h, (2h + 1, S) with row d + h; -inf outside the matrix or where T is 0.
    let logBand: [Double]
    let half: Int
    /// e^(-lambda j) for ranks j = 0..<F, and (1 - e^-lambda) / (1 - e^(-lambda N)) for N = 0...F.
    let boltzmannDecay: [Double]
    let boltzmannFactor: [Double]

    /// numpy's `finfo(float64).tiny`, librosa's guard against log(0) and 0 / 0.
    static let tiny = Double.leastNormalMagnitude

    public init(settings: PitchSettings = PitchSettings()) throws {
        let problems = settings.problems()
        guard problems.isEmpty else { throw ParawaveError("pitch settings", problems.joined(separator: "; ")) }
        self.settings = settings
        let n = settings.thresholds
        thresholdValues = (0...n).map { $0 == n ? 1 : Double($0) * (1 / Double(n)) }
        let cdf = thresholdValues.map { Self.regularizedIncompleteBeta($0, settings.betaA, settings.betaB) }
        betaProbabilities = (0..<n).map { cdf[$0 + 1] - cdf[$0] }
        let S = settings.pitchBins
        localTransition = Self.localTransition(states: S, width: settings.transitionWidth)
        half = settings.transitionWidth / 2
        var band = [Double](repeating: -.infinity, count: (2 * half + 1) * S)
        for d in -half...half {
            for q in 0..<S where q + d >= 0 && q + d < S {
                let t = localTransition[(q + d) * S + q]
                if t > 0 { band[(d + half) * S + q] = log(t) }
            }
        }
        logBand = band
        let lambda = settings.boltzmannParameter, lags = settings.maxPeriod - settings.minPeriod + 1
        boltzmannDecay = (0..<lags).map { exp(-lambda * Double($0)) }
        boltzmannFactor = (0...lags).map { (1 - exp(-lambda)) / (1 - exp(-lambda * Double($0))) }
    }

    /// F0, voicing and voiced probability of `samples` (at settings.sampleRate), one frame per hop.
    public func track(_ samples: [Float]) -> PitchTrack {
        let observations = observations(samples)
        let states = decode(observations)
        let S = settings.pitchBins
        let perBin = Double(12 * settings.binsPerSemitone)
        var track = PitchTrack(f0: [], voiced: [], voicedProbability: observations.map { Float($0.voicedProbability) })
        for state in states {
            track.voiced.append(state < S)
            track.f0.append(state < S ? Float(settings.fMin * pow(2, Double(state) / perBin)) : 0)
        }
        return track
    }

    // MARK: - Observations

    /// Steps 1 and 2 for every frame, (F).
    public func observations(_ samples: [Float]) -> [PitchObservation] {
        let frames = settings.frameCount(samples: samples.count)
        var out = [PitchObservation](repeating: PitchObservation(candidates: [], voicedProbability: 0), count: frames)
        let L = settings.frameLength
        var size = 1
        while size < 2 * L - 1 { size *= 2 }
        samples.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { result in
                Parallel.forEachChunk(frames, minimumChunk: 8) { range in
                    let fft = RealFFT<Double>(size: size)
                    var yin = [Double](repeating: 0, count: settings.maxPeriod - settings.minPeriod + 1)
                    for t in range {
                        // Frame t covers samples [t hop - L/2, t hop - L/2 + L), zeros outside.
                        let start = t * settings.hopLength - L / 2
                        for i in 0..<size {
                            let s = start + i
                            fft.real[i] = i < L && s >= 0 && s < x.count ? Double(x[s]) : 0
                        }
                        cumulativeMeanNormalizedDifference(fft, into: &yin)
                        result[t] = observation(yin: yin)
                    }
                }
            }
        }
        return out
    }

    /// d'(k) for k = minPeriod...maxPeriod, (maxPeriod - minPeriod + 1), from the frame in
    /// `fft.real` (zero-padded to the FFT size, at least 2L - 1, so the circular
    /// autocorrelation is the linear one); overwrites the FFT's buffers.
    public func cumulativeMeanNormalizedDifference(_ fft: RealFFT<Double>) -> [Double] {
        var yin = [Double](repeating: 0, count: settings.maxPeriod - settings.minPeriod + 1)
        cumulativeMeanNormalizedDifference(fft, into: &yin)
        return yin
    }

    func cumulativeMeanNormalizedDifference(_ fft: RealFFT<Double>, into yin: inout [Double]) {
        let minP = settings.minPeriod, maxP = settings.maxPeriod
        var energy = [Double](repeating: 0, count: maxP)  // c[m], m < maxP
        var running = 0.0
        for m in 0..<maxP {
            running += fft.real[m] * fft.real[m]
            energy[m] = running
        }
        fft.forward()
        for k in 0..<fft.bins {
            let re = fft.complex[2 * k], im = fft.complex[2 * k + 1]
            fft.complex[2 * k] = re * re + im * im
            fft.complex[2 * k + 1] = 0
        }
        fft.inverse()
        let scale = 1 / Double(fft.size)
        let r0 = fft.real[0] * scale
        var sum = 0.0
        for k in 1...maxP {
            let d = 2 * (r0 - fft.real[k] * scale) - energy[k - 1]
            sum += d
            if k >= minP { yin[k - minP] = d / (sum / Double(k) + Self.tiny) }
        }
    }

    /// The same d' by direct sums, O(L maxPeriod): the reference for the FFT path.
    public func cumulativeMeanNormalizedDifferenceDirect(frame: [Double]) -> [Double] {
        let minP = settings.minPeriod, maxP = settings.maxPeriod
        let r0 = frame.reduce(0) { $0 + $1 * $1 }
        var out: [Double] = []
        var sum = 0.0, energy = 0.0
        for k in 1...maxP {
            energy += frame[k - 1] * frame[k - 1]
            var r = 0.0
            for i in 0..<(frame.count - k) { r += frame[i] * frame[i + k] }
            let d = 2 * (r0 - r) - energy
            sum += d
            if k >= minP { out.append(d / (sum / Double(k) + Self.tiny)) }
        }
        return out
    }

    /// Step 2 for one frame's d' (length maxPeriod - minPeriod + 1).
    public func observation(yin: [Double]) -> PitchObservation {
        let F = yin.count, n = settings.thresholds, S = settings.pitchBins
        // Troughs: librosa's localmin (y[i] < y[i-1] and y[i] <= y[i+1]; last if below its
        // neighbour), plus the first value when below the second.
        var troughs: [Int] = []
        for i in 0..<F {
            let isTrough = i == 0 ? yin[0] < yin[1] : i == F - 1 ? yin[i] < yin[i - 1] : yin[i] < yin[i - 1] && yin[i] <= yin[i + 1]
            if isTrough { troughs.append(i) }
        }
        guard !troughs.isEmpty else { return PitchObservation(candidates: [], voicedProbability: 0) }
        // A trough of height h is below the thresholds s_k > h, k = first...n; first(h) in 1...n+1.
        let first = troughs.map { i -> Int in
            var k = 1
            while k <= n && !(yin[i] < thresholdValues[k]) { k += 1 }
            return k
        }
        var probability = [Double](repeating: 0, count: troughs.count)
        for k in 1...n {
            // Boltzmann pmf of rank j among the N troughs below s_k: (1 - e^-l) e^(-l j) / (1 - e^(-l N)).
            var below = 0
            for f in first where f <= k { below += 1 }
            if below == 0 { continue }
            let factor = boltzmannFactor[below]
            var rank = 0
            for j in troughs.indices where first[j] <= k {
                probability[j] += factor * boltzmannDecay[rank] * betaProbabilities[k - 1]
                rank += 1
            }
        }
        var globalMin = 0
        for j in troughs.indices where yin[troughs[j]] < yin[troughs[globalMin]] { globalMin = j }
        var missed = 0.0
        for k in 1..<first[globalMin] { missed += betaProbabilities[k - 1] }
        probability[globalMin] += settings.noTroughProbability * missed

        // Nonzero troughs in period order (troughs are at least 2 lags apart, so bins never
        // rise); a later one in the same bin replaces an earlier one (numpy's fancy
        // assignment), and bin S (above fMax) is overwritten by the unvoiced block: dropped.
        let perBin = Double(12 * settings.binsPerSemitone)
        var candidates: [(bin: Int, probability: Double)] = []
        for j in troughs.indices where probability[j] != 0 {
            let i = troughs[j]
            let period = Double(settings.minPeriod + i) + parabolicShift(yin, i)
            let f0 = Double(settings.sampleRate) / period
            let bin = Int(min(max((perBin * log2(f0 / settings.fMin)).rounded(.toNearestOrEven), 0), Double(S)))
            if let last = candidates.last, last.bin == bin { candidates.removeLast() }
            candidates.append((bin, probability[j]))
        }
        candidates.reverse()
        if let last = candidates.last, last.bin == S { candidates.removeLast() }
        // numpy sums the (S, F) observations over bins in ascending order.
        var total = 0.0
        for c in candidates { total += c.probability }
        return PitchObservation(candidates: candidates, voicedProbability: min(max(total, 0), 1))
    }

    /// Offset of the parabola through (i-1, i, i+1) from i: -b / a with a = y[i+1] + y[i-1] - 2y[i],
    /// b = (y[i+1] - y[i-1]) / 2; 0 at the ends or when the vertex lies beyond a neighbour.
    func parabolicShift(_ y: [Double], _ i: Int) -> Double {
        guard i > 0 && i < y.count - 1 else { return 0 }
        let a = y[i + 1] + y[i - 1] - 2 * y[i]
        let b = (y[i + 1] - y[i - 1]) / 2
        return abs(b) >= abs(a) ? 0 : -b / a
    }

    // MARK: - Priors

    /// librosa's `transition_local(S, width, window="triangle", wrap=False)`, (S, S) row-major:
    /// row i is scipy's symmetric triangle of `width` centred on i, cut at the matrix edges,
    /// divided by its sum.
    static func localTransition(states S: Int, width M: Int) -> [Double] {
        // scipy.signal.windows.triang(M, sym=True).
        var window: [Double]
        if M == 1 {
            window = [1]
        } else {
            let n = (1...((M + 1) / 2)).map(Double.init)
            if M % 2 == 0 {
                let w = n.map { (2 * $0 - 1) / Double(M) }
                window = w + w.reversed()
            } else {
                let w = n.map { 2 * $0 / (Double(M) + 1) }
                window = w + w.dropLast().reversed()
            }
        }
        // pad_center to S, rolled by S/2 + i + 1 for row i, outside [i - M/2, i + M/2] zeroed.
        let left = (S - M) / 2
        var T = [Double](repeating: 0, count: S * S)
        for i in 0..<S {
            let shift = S / 2 + i + 1
            var sum = 0.0
            for j in max(0, i - M / 2)..<min(S, i + M / 2 + 1) {
                let k = ((j - shift) % S + S) % S - left
                let v = k >= 0 && k < M ? window[k] : 0
                T[i * S + j] = v
                sum += v
            }
            for j in 0..<S { T[i * S + j] /= sum }
        }
        return T
    }

    /// I_x(a, b), the beta distribution's CDF, by Lentz's continued fraction (relative error
    /// about 1e-15).
    public static func regularizedIncompleteBeta(_ x: Double, _ a: Double, _ b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x))
        if x < (a + 1) / (a + b + 2) { return front * betaContinuedFraction(x, a, b) / a }
        return 1 - front * betaContinuedFraction(1 - x, b, a) / b
    }

    static func betaContinuedFraction(_ x: Double, _ a: Double, _ b: Double) -> Double {
        let floor = 1e-300
        var c = 1.0, d = 1 - (a + b) * x / (a + 1)
        if abs(d) < floor { d = floor }
        d = 1 / d
        var h = d
        func step(_ coefficient: Double) {
            d = 1 + coefficient * d
            if abs(d) < floor { d = floor }
            c = 1 + coefficient / c
            if abs(c) < floor { c = floor }
            d = 1 / d
            h *= d * c
        }
        for m in 1...10_000 {
            let m = Double(m)
            step(m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)))  // even step
            step(-(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)))  // odd step
            if abs(d * c - 1) < 1e-16 { break }
        }
        return h
    }
}
