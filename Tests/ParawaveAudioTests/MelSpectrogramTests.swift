import Foundation
import ParawaveAudio
import ParawaveTestSupport
import Testing

/// Mel parity with librosa 0.11 (`scripts/make_fixtures.py`, float64 reference).
struct MelSpectrogramTests {
    static let parameterSets = ["sr16k", "sr22k", "htk"]
    static let signals = ["speech", "silence", "noise", "short", "tiny"]

    static func settings(_ name: String) throws -> MelSettings {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("mel/params.json")))
        let all = try JSONSerialization.jsonObject(with: data) as! [String: [String: Any]]
        let p = all[name]!
        var s = MelSettings(sampleRate: p["sr"] as! Int, nFFT: p["n_fft"] as! Int, hopLength: p["hop_length"] as! Int,
                            winLength: p["win_length"] as? Int, nMels: p["n_mels"] as! Int,
                            fMin: (p["fmin"] as! NSNumber).doubleValue, fMax: (p["fmax"] as! NSNumber).doubleValue,
                            htk: p["htk"] as! Bool)
        s.power = 1
        return s
    }

    /// The largest of |ours - ref| / max(|ref|, floor) over all elements: relative error,
    /// except below the log floor (1e-5), where the feature clamps and absolute error counts.
    static func worstRelativeError(_ ours: [Float], _ reference: [Float], floor: Float = 1e-5) -> Float {
        var worst: Float = 0
        for (a, b) in zip(ours, reference) { worst = max(worst, abs(a - b) / max(abs(b), floor)) }
        return worst
    }

    @Test(arguments: parameterSets)
    func filterbankMatchesLibrosa(_ name: String) throws {
        let settings = try Self.settings(name)
        let reference = try NPY.read(Fixtures.path("mel/filterbank_\(name).npy"))
        let bank = MelFilterbank(settings: settings)
        #expect(reference.shape == [settings.nMels, settings.nFFT / 2 + 1])
        let maxWeight = reference.values.map(abs).max()!
        var worst: Float = 0
        for (a, b) in zip(bank.weights, reference.values) { worst = max(worst, abs(a - b)) }
        #expect(worst <= 1e-6 * maxWeight, "filterbank \(name) differs by \(worst)")
        // The sparse ranges cover every nonzero weight.
        for m in 0..<settings.nMels {
            for k in 0..<bank.bins where bank.weights[m * bank.bins + k] != 0 { #expect(bank.ranges[m].contains(k)) }
        }
    }

    @Test(arguments: parameterSets, signals)
    func melMatchesLibrosa(_ name: String, _ signal: String) throws {
        let settings = try Self.settings(name)
        let x = try NPY.read(Fixtures.path("mel/signal_\(signal).npy")).values
        let reference = try NPY.read(Fixtures.path("mel/mel_\(signal)_\(name).npy"))
        let mel = try MelSpectrogram(settings: settings).mel(x)
        #expect(reference.shape == [mel.rows, mel.columns])
        #expect(mel.columns == 1 + x.count / settings.hopLength)
        let worst = Self.worstRelativeError(mel.values, reference.values)
        #expect(worst <= 1e-4, "mel \(signal)/\(name): worst relative error \(worst)")
    }

    @Test func logMelIsNaturalLogWithFloor() throws {
        let mel = try MelSpectrogram(settings: MelSettings())
        let x = try NPY.read(Fixtures.path("mel/signal_speech.npy")).values
        let linear = mel.mel(x), feature = mel.logMel(x)
        for i in linear.values.indices {
            #expect(abs(feature.values[i] - log(max(linear.values[i], 1e-5))) <= 1e-6 * max(1, abs(feature.values[i])))
        }
        let silent = mel.logMel([Float](repeating: 0, count: 4000))
        #expect(silent.values.allSatisfy { abs($0 - log(Float(1e-5))) < 1e-6 })
    }

    @Test func reflectPaddingMatchesNumpy() {
        // np.pad(np.arange(5.), 12, mode="reflect")
        let padded = STFT.reflectPad([0, 1, 2, 3, 4], by: 12)
        let expected: [Float] = [4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0]
        #expect(padded == expected)
        #expect(STFT.reflectPad([7], by: 2) == [7, 7, 7, 7, 7])
    }
}
