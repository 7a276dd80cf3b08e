import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveTestSupport
import Testing

/// Griffin-Lim reconstructs audio whose spectra are as close to the original's as librosa's
/// `mel_to_stft` + `griffinlim` gets with the same settings (fixture from scripts/make_fixtures.py).
struct GriffinLimTests {
    struct Reference: Decodable {
        var spectral_convergence: Double
        var mel_db_rmse: Double
    }

    @Test func qualityMatchesLibrosa() throws {
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("mel/griffinlim_librosa.json"))))
        let x = try NPY.read(Fixtures.path("mel/signal_speech.npy")).values
        let settings = MelSettings()
        let front = try MelSpectrogram(settings: settings)
        let mel = front.mel(x)
        let y = try GriffinLim(settings: settings, iterations: 32).audio(fromMel: mel, length: x.count)
        #expect(y.count == x.count)
        let stft = front.stft
        let target = stft.magnitude(x), got = stft.magnitude(y)
        var diff: Double = 0, norm: Double = 0
        for (a, b) in zip(target, got) { diff += Double((a - b) * (a - b)); norm += Double(a * a) }
        let convergence = (diff / norm).squareRoot()
        let remel = front.mel(y)
        var squared: Double = 0
        for (a, b) in zip(remel.values, mel.values) {
            let d = 20 * log10(max(Double(a), 1e-5)) - 20 * log10(max(Double(b), 1e-5))
            squared += d * d
        }
        let melDB = (squared / Double(mel.values.count)).squareRoot()
        print("griffin-lim: spectral convergence \(convergence) (librosa \(reference.spectral_convergence)), mel dB RMSE \(melDB) (librosa \(reference.mel_db_rmse))")
        #expect(convergence <= reference.spectral_convergence * 1.15)
        #expect(melDB <= reference.mel_db_rmse + 0.5)
    }

    @Test func magnitudeFromMelReproducesTheMel() throws {
        let x = try NPY.read(Fixtures.path("mel/signal_speech.npy")).values
        let settings = MelSettings()
        let front = try MelSpectrogram(settings: settings)
        let mel = front.mel(x)
        let magnitude = try GriffinLim(settings: settings).linearMagnitude(fromMel: mel)
        #expect(magnitude.allSatisfy { $0 >= 0 })
        // M s ~ m: the fitted magnitudes map back onto the mel they came from.
        let bank = front.filterbank
        var error: Double = 0, total: Double = 0
        for f in 0..<mel.columns {
            for m in 0..<mel.rows {
                var sum: Float = 0
                for k in bank.ranges[m] { sum += bank.weights[m * bank.bins + k] * magnitude[f * bank.bins + k] }
                error += Double((sum - mel[m, f]) * (sum - mel[m, f]))
                total += Double(mel[m, f] * mel[m, f])
            }
        }
        #expect((error / total).squareRoot() < 0.02)
    }

    @Test func wrongBandCountIsAnError() {
        #expect(throws: ParawaveError.self) {
            try GriffinLim(settings: MelSettings()).audio(fromMel: Matrix(rows: 40, columns: 3))
        }
    }
}
