import Foundation
import ParawaveCore

/// Computes mel spectrograms exactly as `librosa.feature.melspectrogram` does with the
/// same settings (`pad_mode="reflect"`), and the log-mel feature ln(max(mel, floor)).
///
/// An instance holds its FFT plans and filterbank; reuse it for many signals.
public final class MelSpectrogram: @unchecked Sendable {
    public let settings: MelSettings
    public let stft: STFT
    public let filterbank: MelFilterbank

    public init(settings: MelSettings) throws {
        let problems = settings.problems()
        if !problems.isEmpty { throw ParawaveError("mel settings", problems.joined(separator: "; ")) }
        self.settings = settings
        stft = STFT(nFFT: settings.nFFT, hopLength: settings.hopLength, winLength: settings.winLength, center: settings.center)
        filterbank = MelFilterbank(settings: settings)
    }

    /// Linear mel spectrogram, (nMels, F), F = 1 + floor(T / hop).
    public func mel(_ samples: [Float]) -> Matrix { compute(samples, logFloor: nil) }

    /// The feature: ln(max(mel, logFloor)), (nMels, F).
    public func logMel(_ samples: [Float]) -> Matrix { compute(samples, logFloor: settings.logFloor) }

    /// Mel per frame on the worker threads; with `logFloor`, the log is taken there too.
    private func compute(_ samples: [Float], logFloor: Double?) -> Matrix {
        let frames = stft.frameCount(samples: samples.count)
        let bins = stft.bins
        let power = settings.power
        let nMels = settings.nMels
        var out = Matrix(rows: settings.nMels, columns: frames)
        // One scratch row of magnitudes per worker thread.
        var scratch = [Double](repeating: 0, count: stft.workers * bins)
        out.values.withUnsafeMutableBufferPointer { op in
            scratch.withUnsafeMutableBufferPointer { sp in
                let outBase = op.baseAddress!, scratchBase = sp.baseAddress!
                stft.forEachFrame(of: samples) { worker, f, spectrum in
                    let row = scratchBase + worker * bins
                    STFT.magnitudes(spectrum, into: row, bins: bins, power: power)
                    filterbank.apply(row, into: outBase + f, stride: frames)
                    if let logFloor {
                        let floor = Float(logFloor)
                        for m in 0..<nMels { outBase[f + m * frames] = log(max(outBase[f + m * frames], floor)) }
                    }
                }
            }
        }
        return out
    }
}
