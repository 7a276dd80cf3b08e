import Foundation
import ParawaveCore

/// Short-time objective intelligibility (Taal, Hendriks, Heusdens and Jensen 2011), as
/// pystoi 0.4.1's `stoi(x, y, fs)` (the original measure, not the extended one).
///
/// 1. Both signals are resampled to 10 kHz by `Resampler` (libsoxr HQ).
/// 2. Silent frames go: 256-sample frames at hop 128 under w = numpy's hanning(258)[1:-1];
///    a frame stays when 20 log10(||w x|| + eps) is within 40 dB of the reference's loudest
///    frame; the kept windowed frames of both signals are overlap-added back together.
/// 3. The same framing again, 512-point FFT: X(k, m), k = 0...256.
/// 4. 15 one-third-octave bands with centres 150 2^(j/3) Hz, edges rounded to the nearest FFT
///    bin: X_j(m) = sqrt(sum_{k in band j} |X(k, m)|^2), likewise Y_j(m).
/// 5. For each segment of N = 30 frames ending at m = N...M and each band, with x and y the
///    envelopes over the segment: y' = min(y ||x|| / (||y|| + eps), x (1 + 10^(-beta/20))),
///    beta = -15 dB; d = <x - mean x, y' - mean y'> / ((||x - mean x|| + eps)(||y' - mean y'|| + eps))
///    (eps = 2^-52, each vector divided by its norm first, as pystoi).
/// 6. The score is the mean of d over segments and bands; 1e-5 when fewer than N frames remain.
///
/// That 1e-5 is pystoi's marker for a measure that is undefined (it warns "Not enough STFT
/// frames"), not a score: `definedScore` returns nil there instead, so that a mean over
/// utterances (`Evaluation`) leaves out the ones with under 0.4 s of speech rather than
/// counting them as unintelligible for every system alike.
///
/// The resampler is the one difference from pystoi, which uses its own Octave-style polyphase
/// filter (Kaiser window, 60 dB stop band, 5 kHz cut-off). Both are flat up to the top band's
/// edge (4.3 kHz); on the fixtures the scores differ by at most 3e-6, except when the
/// degraded signal has bands holding nothing but rounding noise (an 8th-order 1 kHz low-pass
/// run forwards and backwards), where the two filters' residues decide those bands'
/// correlations: 0.76976 here against pystoi's 0.77653.
public enum STOI {
    /// Analysis rate (Hz), frame length, hop, FFT size, bands, lowest centre (Hz), frames per
    /// segment, clipping bound (dB) and silence range (dB), as pystoi's constants.
    public static let sampleRate = 10000
    public static let frameLength = 256, hopLength = 128, nFFT = 512
    public static let bands = 15, lowestCentre = 150.0
    public static let segmentFrames = 30
    public static let beta = -15.0, dynamicRange = 40.0
    static let eps = Double.ulpOfOne

    /// STOI of `degraded` against the clean `reference`, both at `sampleRate` Hz, in [-1, 1]
    /// (higher is more intelligible); pystoi's 1e-5 where the measure is undefined.
    public static func score(reference: [Float], degraded: [Float], sampleRate rate: Int) throws -> Double {
        try definedScore(reference: reference, degraded: degraded, sampleRate: rate) ?? 1e-5
    }

    /// STOI of `degraded` against `reference`, or nil when fewer than 30 frames (about 0.4 s)
    /// of the reference are within 40 dB of its loudest frame, where the measure is undefined.
    public static func definedScore(reference: [Float], degraded: [Float], sampleRate rate: Int) throws -> Double? {
        guard reference.count == degraded.count else {
            throw ParawaveError("stoi", "the reference has \(reference.count) samples and the degraded signal \(degraded.count): they must be the same length")
        }
        guard rate > 0 else { throw ParawaveError("stoi", "invalid sample rate \(rate)") }
        let x = try Resampler.resample(Audio(samples: reference, sampleRate: rate), to: sampleRate).samples
        let y = try Resampler.resample(Audio(samples: degraded, sampleRate: rate), to: sampleRate).samples
        guard x.count > frameLength else {
            throw ParawaveError("stoi", "signals of \(reference.count) samples at \(rate) Hz are too short: STOI needs more than \(frameLength) samples at 10 kHz (about 26 ms), and 30 frames (about 0.4 s) of speech to be meaningful")
        }
        return definedScore(resampledReference: x.map(Double.init), degraded: y.map(Double.init))
    }

    /// Steps 2-6 on signals already at 10 kHz, of the same length (more than 256 samples), or
    /// nil when fewer than 30 frames remain after silence removal.
    public static func definedScore(resampledReference x: [Double], degraded y: [Double]) -> Double? {
        precondition(x.count == y.count && x.count > frameLength, "STOI needs two signals of the same length over \(frameLength) samples")
        let (xs, ys) = removeSilentFrames(reference: x, degraded: y)
        let X = bandEnvelopes(xs), Y = bandEnvelopes(ys)  // (M, bands)
        let M = X.count / bands
        guard M >= segmentFrames else { return nil }
        let clip = 1 + pow(10, -beta / 20)
        let N = segmentFrames
        var total = 0.0
        var xv = [Double](repeating: 0, count: N), yv = xv
        for end in N...M {
            for j in 0..<bands {
                for n in 0..<N {
                    xv[n] = X[(end - N + n) * bands + j]
                    yv[n] = Y[(end - N + n) * bands + j]
                }
                let alpha = norm(xv) / (norm(yv) + eps)
                for n in 0..<N { yv[n] = min(yv[n] * alpha, xv[n] * clip) }
                center(&xv)
                center(&yv)
                let nx = norm(xv) + eps, ny = norm(yv) + eps
                var dot = 0.0
                for n in 0..<N { dot += (yv[n] / ny) * (xv[n] / nx) }
                total += dot
            }
        }
        return total / Double((M - N + 1) * bands)
    }

    /// numpy's hanning(frameLength + 2)[1:-1]: w[n] = 0.5 - 0.5 cos(2 pi (n + 1) / (L + 1)).
    static let window: [Double] = (0..<frameLength).map { 0.5 - 0.5 * cos(2 * Double.pi * Double($0 + 1) / Double(frameLength + 1)) }

    /// Frame starts 0, hop, ... below count - frameLength (pystoi's `range(0, len - L, hop)`).
    static func frameStarts(_ count: Int) -> StrideTo<Int> { stride(from: 0, to: count - frameLength, by: hopLength) }

    /// Step 2: both signals without the frames where the reference is over 40 dB below its
    /// loudest frame, each of length (K - 1) hop + frameLength for K kept frames.
    public static func removeSilentFrames(reference x: [Double], degraded y: [Double]) -> ([Double], [Double]) {
        let starts = Array(frameStarts(x.count))
        let energies = starts.map { start -> Double in
            var sum = 0.0
            for n in 0..<frameLength { let v = window[n] * x[start + n]; sum += v * v }
            return 20 * log10(sum.squareRoot() + eps)
        }
        guard let loudest = energies.max() else { return ([], []) }
        let kept = starts.indices.filter { loudest - dynamicRange - energies[$0] < 0 }
        let length = (kept.count - 1) * hopLength + frameLength
        var xs = [Double](repeating: 0, count: length), ys = xs
        for (k, f) in kept.enumerated() {
            for n in 0..<frameLength {
                xs[k * hopLength + n] += window[n] * x[starts[f] + n]
                ys[k * hopLength + n] += window[n] * y[starts[f] + n]
            }
        }
        return (xs, ys)
    }

    /// FFT bins of each one-third-octave band j: [nearest bin to 150 2^((2j-1)/6), nearest bin
    /// to 150 2^((2j+1)/6)), bins at k 10000/512 Hz (pystoi's `thirdoct`).
    public static let bandBins: [Range<Int>] = (0..<bands).map { j in
        let step = Double(sampleRate) / Double(nFFT)
        func nearest(_ f: Double) -> Int {
            var best = 0
            for k in 0...(nFFT / 2) where (Double(k) * step - f) * (Double(k) * step - f) < (Double(best) * step - f) * (Double(best) * step - f) { best = k }
            return best
        }
        let low = nearest(lowestCentre * pow(2, Double(2 * j - 1) / 6))
        let high = nearest(lowestCentre * pow(2, Double(2 * j + 1) / 6))
        return low..<max(low, high)
    }

    /// Steps 3 and 4: band envelopes of `signal`, (M, bands) row-major.
    static func bandEnvelopes(_ signal: [Double]) -> [Double] {
        let fft = RealFFT<Double>(size: nFFT)
        var out: [Double] = []
        for start in frameStarts(signal.count) {
            for n in 0..<nFFT { fft.real[n] = n < frameLength ? window[n] * signal[start + n] : 0 }
            fft.forward()
            for range in bandBins {
                var power = 0.0
                for k in range { power += fft.complex[2 * k] * fft.complex[2 * k] + fft.complex[2 * k + 1] * fft.complex[2 * k + 1] }
                out.append(power.squareRoot())
            }
        }
        return out
    }

    static func norm(_ v: [Double]) -> Double { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    static func center(_ v: inout [Double]) {
        let mean = v.reduce(0, +) / Double(v.count)
        for i in v.indices { v[i] -= mean }
    }
}
