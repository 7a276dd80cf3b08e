import Foundation

/// librosa's mel filterbank (`librosa.filters.mel`), (nMels, nFFT/2 + 1).
///
/// Band m is a triangle over FFT bin frequencies with corners at mel points m, m+1, m+2 of
/// nMels + 2 points spaced evenly in mel between fMin and fMax:
/// `w[m, k] = max(0, min((f_k - f_m) / (f_{m+1} - f_m), (f_{m+2} - f_k) / (f_{m+2} - f_{m+1})))`,
/// times `2 / (f_{m+2} - f_m)` with Slaney normalisation. Computed in Float64, stored as
/// Float32 (as librosa does). Each band also keeps its nonzero bin range so that applying
/// the bank costs one multiply-add per nonzero weight.
public struct MelFilterbank: Sendable {
    public let nMels: Int
    public let bins: Int
    /// Dense weights, (nMels, bins).
    public let weights: [Float]
    /// The same weights widened to Float64 for the double-precision front end.
    private let weights64: [Double]
    /// Per band, the half-open range of bins with nonzero weight.
    public let ranges: [Range<Int>]

    public init(settings s: MelSettings) {
        nMels = s.nMels
        bins = s.nFFT / 2 + 1
        let fftFrequencies = (0..<bins).map { Double($0) * Double(s.sampleRate) / Double(s.nFFT) }
        let melPoints = Self.melFrequencies(count: s.nMels + 2, fMin: s.fMin, fMax: s.fMax, htk: s.htk)
        var w = [Float](repeating: 0, count: s.nMels * bins)
        var ranges: [Range<Int>] = []
        for m in 0..<s.nMels {
            let lowWidth = melPoints[m + 1] - melPoints[m]
            let highWidth = melPoints[m + 2] - melPoints[m + 1]
            let enorm = s.slaneyNorm ? 2 / (melPoints[m + 2] - melPoints[m]) : 1
            var first = bins, last = -1
            for k in 0..<bins {
                let lower = (fftFrequencies[k] - melPoints[m]) / lowWidth
                let upper = (melPoints[m + 2] - fftFrequencies[k]) / highWidth
                let value = max(0, min(lower, upper)) * enorm
                w[m * bins + k] = Float(value)
                if value > 0 { first = min(first, k); last = k }
            }
            ranges.append(last >= first ? first..<(last + 1) : 0..<0)
        }
        weights = w
        weights64 = w.map(Double.init)
        self.ranges = ranges
    }

    /// Hz to mel: Slaney's scale (linear below 1 kHz at 3 mel per 200 Hz, logarithmic above,
    /// 27 mel per factor 6.4) or HTK's 2595 log10(1 + f / 700).
    public static func hzToMel(_ f: Double, htk: Bool) -> Double {
        if htk { return 2595 * log10(1 + f / 700) }
        let fSp = 200.0 / 3
        let minLogHz = 1000.0, minLogMel = minLogHz / fSp, logStep = log(6.4) / 27
        return f >= minLogHz ? minLogMel + log(f / minLogHz) / logStep : f / fSp
    }

    /// Mel to Hz, the inverse of `hzToMel`.
    public static func melToHz(_ m: Double, htk: Bool) -> Double {
        if htk { return 700 * (pow(10, m / 2595) - 1) }
        let fSp = 200.0 / 3
        let minLogHz = 1000.0, minLogMel = minLogHz / fSp, logStep = log(6.4) / 27
        return m >= minLogMel ? minLogHz * exp(logStep * (m - minLogMel)) : fSp * m
    }

    /// `count` frequencies evenly spaced on the mel scale from fMin to fMax (inclusive).
    public static func melFrequencies(count: Int, fMin: Double, fMax: Double, htk: Bool) -> [Double] {
        let lo = hzToMel(fMin, htk: htk), hi = hzToMel(fMax, htk: htk)
        return (0..<count).map { i in
            let mel = count > 1 ? lo + (hi - lo) * Double(i) / Double(count - 1) : lo
            return melToHz(mel, htk: htk)
        }
    }

    /// out[m * stride] = sum_k w[m, k] spectrum[k]: one frame through the bank.
    @inline(__always)
    public func apply(_ spectrum: UnsafePointer<Double>, into out: UnsafeMutablePointer<Float>, stride: Int) {
        weights64.withUnsafeBufferPointer { w in
            for m in 0..<nMels {
                var sum: Double = 0
                let row = w.baseAddress! + m * bins
                for k in ranges[m] { sum += row[k] * spectrum[k] }
                out[m * stride] = Float(sum)
            }
        }
    }
}
