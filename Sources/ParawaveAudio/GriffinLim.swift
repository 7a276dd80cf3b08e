import Foundation
import ParawaveCore

/// Audio from a mel spectrogram without a neural network: the baseline and quick preview.
///
/// Two steps, as librosa's `mel_to_audio`:
/// 1. Linear magnitude from mel: a nonnegative least-squares fit of `M s = m` per frame
///    (M the mel filterbank), by multiplicative updates `s <- s * (M^T m) / (M^T M s)`, which
///    keep s nonnegative and decrease ||M s - m||^2.
/// 2. Phase by fast Griffin-Lim (Perraud et al. 2013), librosa's `griffinlim`: from random
///    phases, repeat `rebuilt = STFT(ISTFT(S e^{i phase}))`,
///    `angles = rebuilt - momentum / (1 + momentum) * previous`, phase = angle(angles).
public struct GriffinLim: Sendable {
    public var settings: MelSettings
    public var iterations: Int = 32
    public var momentum: Float = 0.99
    public var nnlsIterations: Int = 100
    public var seed: UInt64 = 0

    public init(settings: MelSettings, iterations: Int = 32, seed: UInt64 = 0) {
        self.settings = settings
        self.iterations = iterations
        self.seed = seed
    }

    /// Audio of `length` samples (default hop * (F - 1)) from a log-mel feature (nMels, F).
    public func audio(fromLogMel logMel: Matrix, length: Int? = nil) throws -> [Float] {
        var mel = logMel
        for i in mel.values.indices { mel.values[i] = exp(mel.values[i]) }
        return try audio(fromMel: mel, length: length)
    }

    /// Audio from a linear mel spectrogram (nMels, F).
    public func audio(fromMel mel: Matrix, length: Int? = nil) throws -> [Float] {
        let magnitude = try linearMagnitude(fromMel: mel)
        let stft = STFT(nFFT: settings.nFFT, hopLength: settings.hopLength, winLength: settings.winLength, center: settings.center)
        return phaseRetrieval(magnitude: magnitude, frames: mel.columns, stft: stft, length: length)
    }

    /// |STFT| estimate (F, nFFT/2 + 1) from a linear mel (nMels, F), undoing `power`.
    public func linearMagnitude(fromMel mel: Matrix) throws -> [Float] {
        guard mel.rows == settings.nMels else {
            throw ParawaveError("griffin-lim", "the mel has \(mel.rows) bands but the settings say \(settings.nMels)")
        }
        let bank = MelFilterbank(settings: settings)
        let bins = bank.bins, frames = mel.columns, nMels = settings.nMels
        let w = bank.weights
        var out = [Float](repeating: 0, count: frames * bins)
        // Column sums of M: the denominator's scale for the starting point.
        var columnSum = [Float](repeating: 0, count: bins)
        for m in 0..<nMels { for k in bank.ranges[m] { columnSum[k] += w[m * bins + k] } }
        Parallel.forEachChunk(frames, minimumChunk: 8) { range in
            var s = [Float](repeating: 0, count: bins)
            var target = [Float](repeating: 0, count: nMels)
            var numerator = [Float](repeating: 0, count: bins)
            var projected = [Float](repeating: 0, count: nMels)
            var denominator = [Float](repeating: 0, count: bins)
            for f in range {
                for m in 0..<nMels { target[m] = max(mel[m, f], 0) }
                // numerator = M^T m; start from s = M^T m / colsum(M)^2, a smooth nonnegative guess.
                for k in 0..<bins { numerator[k] = 0 }
                for m in 0..<nMels { for k in bank.ranges[m] { numerator[k] += w[m * bins + k] * target[m] } }
                for k in 0..<bins { s[k] = columnSum[k] > 0 ? numerator[k] / (columnSum[k] * columnSum[k]) : 0 }
                for _ in 0..<nnlsIterations {
                    for m in 0..<nMels {
                        var sum: Float = 0
                        for k in bank.ranges[m] { sum += w[m * bins + k] * s[k] }
                        projected[m] = sum
                    }
                    for k in 0..<bins { denominator[k] = 0 }
                    for m in 0..<nMels { for k in bank.ranges[m] { denominator[k] += w[m * bins + k] * projected[m] } }
                    for k in 0..<bins where denominator[k] > 0 { s[k] *= numerator[k] / denominator[k] }
                }
                let rootPower = Float(1 / settings.power)
                out.withUnsafeMutableBufferPointer { op in
                    for k in 0..<bins { op[f * bins + k] = rootPower == 1 ? s[k] : pow(s[k], rootPower) }
                }
            }
        }
        return out
    }

    /// Fast Griffin-Lim phase retrieval for magnitudes (F, bins).
    public func phaseRetrieval(magnitude: [Float], frames: Int, stft: STFT, length: Int? = nil) -> [Float] {
        let bins = stft.bins
        let length = length ?? stft.hopLength * max(frames - 1, 0)
        var generator = SeededGenerator(seed: seed)
        // angles: (F, bins, 2) unit complex numbers, random start.
        var angles = [Float](repeating: 0, count: frames * bins * 2)
        for i in 0..<(frames * bins) {
            let phase = 2 * Float.pi * generator.uniformOpen()
            angles[2 * i] = cos(phase)
            angles[2 * i + 1] = sin(phase)
        }
        var previous = [Float](repeating: 0, count: angles.count)
        let beta = momentum / (1 + momentum)
        func synthesise() -> [Float] {
            var spectrum = angles
            for i in 0..<(frames * bins) {
                spectrum[2 * i] *= magnitude[i]
                spectrum[2 * i + 1] *= magnitude[i]
            }
            return stft.inverse(spectrum, frames: frames, length: length)
        }
        for _ in 0..<iterations {
            var rebuilt = stft.forward(synthesise())
            // Frame counts agree because the signal has hop * (F - 1) or more samples.
            if rebuilt.count != angles.count { rebuilt = Array(rebuilt.prefix(angles.count)) + [Float](repeating: 0, count: max(0, angles.count - rebuilt.count)) }
            for i in 0..<(frames * bins) {
                let re = rebuilt[2 * i] - beta * previous[2 * i]
                let im = rebuilt[2 * i + 1] - beta * previous[2 * i + 1]
                let norm = (re * re + im * im).squareRoot() + 1e-16
                angles[2 * i] = re / norm
                angles[2 * i + 1] = im / norm
            }
            previous = rebuilt
        }
        return synthesise()
    }
}
