import CFFTW
import ParawaveCore
import Foundation

/// The orthonormal DCT-II of one size through FFTW (REDFT10), as scipy's
/// `dct(x, type=2, norm="ortho")`: y[k] = s_k * 2 * sum_n x[n] cos(pi k (2n + 1) / (2N)) with
/// s_0 = sqrt(1 / (4N)) and s_k = sqrt(1 / (2N)). One thread at a time per instance.
public final class OrthonormalDCT: @unchecked Sendable {
    public let size: Int
    private let input: UnsafeMutablePointer<Double>
    private let output: UnsafeMutablePointer<Double>
    private let plan: fftw_plan

    public init(size: Int) {
        precondition(size >= 1, "DCT size must be at least 1")
        self.size = size
        input = fftw_alloc_real(size)
        output = fftw_alloc_real(size)
        let (input, output) = (input, output)
        plan = FFTWPlanner.locked { fftw_plan_r2r_1d(Int32(size), input, output, FFTW_REDFT10, UInt32(FFTW_ESTIMATE)) }
    }

    deinit {
        let plan = plan
        FFTWPlanner.locked { fftw_destroy_plan(plan) }
        fftw_free(input)
        fftw_free(output)
    }

    /// The transform of `x` (size values).
    public func transform(_ x: [Double]) -> [Double] {
        precondition(x.count == size, "DCT input has \(x.count) values, not \(size)")
        for i in 0..<size { input[i] = x[i] }
        fftw_execute(plan)
        let first = (1 / (4 * Double(size))).squareRoot(), rest = (1 / (2 * Double(size))).squareRoot()
        return (0..<size).map { output[$0] * ($0 == 0 ? first : rest) }
    }
}

/// How far a rendered waveform is from the real recording it was rendered from, by the
/// measures vocoder papers report. Both signals are compared over their common length, frame
/// by frame on the same grid (a vocoder renders on the mel's own frames, so no alignment is
/// needed).
///
/// - `logMelDB`: RMSE in dB between the mels (the feature's settings; magnitude Slaney mel),
///   20 log10(max(mel, 1e-5)), over every band and frame.
/// - `spectralConvergence`, `logMagnitude`: the multi-resolution STFT distance at FFT sizes
///   512, 1024 and 2048 (hop N/4, Hann window of N, centred, reflect-padded), each the mean
///   over the resolutions of ||S_r - S_g||_F / ||S_r||_F and of mean |ln S_r - ln S_g| with
///   S = sqrt(max(|X|^2, 1e-7)); `stftDistance` is their sum (the multi-resolution STFT loss).
/// - `mcd`: mel-cepstral distortion in dB, (10 / ln 10) sqrt(2 sum_{d=1..24} (c_d - c'_d)^2)
///   averaged over frames, with c the orthonormal DCT-II over bands of the natural-log mel
///   ln(max(mel, 1e-5)) (c_0, the level, left out).
public struct QualityMetrics: Codable, Equatable, Sendable {
    public var logMelDB: Double
    public var spectralConvergence: Double
    public var logMagnitude: Double
    public var mcd: Double
    public var stftDistance: Double { spectralConvergence + logMagnitude }

    public init(logMelDB: Double, spectralConvergence: Double, logMagnitude: Double, mcd: Double) {
        self.logMelDB = logMelDB
        self.spectralConvergence = spectralConvergence
        self.logMagnitude = logMagnitude
        self.mcd = mcd
    }

    enum CodingKeys: String, CodingKey {
        case logMelDB = "log_mel_db", spectralConvergence = "spectral_convergence", logMagnitude = "log_magnitude", mcd = "mcd_db"
    }

    /// The STFT resolutions (nFFT, hop, window) of the multi-resolution distance.
    public static let resolutions = [(512, 128, 512), (1024, 256, 1024), (2048, 512, 2048)]
    /// Cepstral coefficients c1...c24 enter the mel-cepstral distortion.
    public static let cepstra = 24
    static let melFloor = 1e-5, powerFloor = 1e-7

    /// Mean of each metric over `items` (equal weights).
    public static func mean(_ items: [QualityMetrics]) -> QualityMetrics {
        let n = Double(max(items.count, 1))
        return QualityMetrics(logMelDB: items.map(\.logMelDB).reduce(0, +) / n,
                              spectralConvergence: items.map(\.spectralConvergence).reduce(0, +) / n,
                              logMagnitude: items.map(\.logMagnitude).reduce(0, +) / n, mcd: items.map(\.mcd).reduce(0, +) / n)
    }
}

/// Computes `QualityMetrics` with the FFT plans made once.
public final class QualityMeter: @unchecked Sendable {
    public let settings: MelSettings
    let melSpectrogram: MelSpectrogram
    let stfts: [STFT]
    let dct: OrthonormalDCT
    let lock = NSLock()

    /// `settings` are the mel front end's (the model's and the data's).
    public init(settings: MelSettings) throws {
        var magnitude = settings
        magnitude.power = 1
        self.settings = magnitude
        melSpectrogram = try MelSpectrogram(settings: magnitude)
        stfts = QualityMetrics.resolutions.map { STFT(nFFT: $0.0, hopLength: $0.1, winLength: $0.2, center: true) }
        dct = OrthonormalDCT(size: settings.nMels)
    }

    /// The metrics of `generated` against `reference` (the real recording), over their common
    /// length. Throws when that is empty.
    public func compare(reference: [Float], generated: [Float]) throws -> QualityMetrics {
        let n = min(reference.count, generated.count)
        guard n > 0 else { throw ParawaveError("quality metrics", "nothing to compare: a signal is empty") }
        let r = Array(reference.prefix(n)), g = Array(generated.prefix(n))

        let melR = melSpectrogram.mel(r), melG = melSpectrogram.mel(g)
        let floor = QualityMetrics.melFloor
        var squared = 0.0
        for (a, b) in zip(melR.values, melG.values) {
            let d = 20 * (log10(max(Double(a), floor)) - log10(max(Double(b), floor)))
            squared += d * d
        }
        let logMelDB = (squared / Double(melR.values.count)).squareRoot()

        var sc = 0.0, lm = 0.0
        for stft in stfts {
            let pr = stft.magnitude(r, power: 2), pg = stft.magnitude(g, power: 2)
            var diff = 0.0, norm = 0.0, logs = 0.0
            for (a, b) in zip(pr, pg) {
                let sa = max(Double(a), QualityMetrics.powerFloor).squareRoot(), sb = max(Double(b), QualityMetrics.powerFloor).squareRoot()
                diff += (sa - sb) * (sa - sb)
                norm += sa * sa
                logs += abs(log(sa) - log(sb))
            }
            sc += (diff / norm).squareRoot()
            lm += logs / Double(pr.count)
        }
        sc /= Double(stfts.count)
        lm /= Double(stfts.count)

        let bands = melR.rows, frames = melR.columns
        let D = min(QualityMetrics.cepstra, bands - 1)
        var mcd = 0.0
        lock.lock()
        for f in 0..<frames {
            let cr = dct.transform((0..<bands).map { log(max(Double(melR[$0, f]), floor)) })
            let cg = dct.transform((0..<bands).map { log(max(Double(melG[$0, f]), floor)) })
            var sum = 0.0
            for d in stride(from: 1, through: D, by: 1) { sum += (cr[d] - cg[d]) * (cr[d] - cg[d]) }
            mcd += 10 / M_LN10 * (2 * sum).squareRoot()
        }
        lock.unlock()
        mcd /= Double(frames)
        return QualityMetrics(logMelDB: logMelDB, spectralConvergence: sc, logMagnitude: lm, mcd: mcd)
    }
}

/// Bursts: how much louder a rendering gets than the real recording anywhere. Over windows
/// of 100 ms every 50 ms, the largest 10 log10((E_g + E_0) / (E_r + E_0)), with E the mean
/// square of the window and E_0 = 1e-6 (-60 dB full scale), so that a quiet hiss over the
/// recording's silence is not a burst. 0 for identical signals; an autoregressive model that
/// runs away on its own samples shows tens of dB.
public enum LoudnessExcess {
    public static let windowSeconds = 0.1, floor = 1e-6

    /// The worst window's excess in dB over the signals' common length (nil when shorter
    /// than a window).
    public static func worstDB(reference: [Float], generated: [Float], sampleRate: Int) -> Double? {
        let n = min(reference.count, generated.count), window = max(1, Int(Double(sampleRate) * windowSeconds)), hop = max(1, window / 2)
        guard n >= window else { return nil }
        var worst = -Double.infinity, start = 0
        while start + window <= n {
            var er = 0.0, eg = 0.0
            for i in start..<(start + window) {
                er += Double(reference[i]) * Double(reference[i])
                eg += Double(generated[i]) * Double(generated[i])
            }
            worst = max(worst, 10 * log10((eg / Double(window) + floor) / (er / Double(window) + floor)))
            start += hop
        }
        return worst
    }
}
