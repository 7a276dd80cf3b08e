import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveTestSupport
import Testing

/// The evaluation metrics against librosa/scipy float64 (`scripts/make_fixtures.py quality`).
struct QualityMetricsTests {
    static let cases = ["noisy", "lowpassed", "longer", "silent"]

    @Test(arguments: cases)
    func metricsMatchLibrosa(_ name: String) throws {
        let reference = try NPY.read(Fixtures.path("quality/reference.npy")).values
        let generated = try NPY.read(Fixtures.path("quality/generated_\(name).npy")).values
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("quality/metrics.json")))
        let expected = try JSONDecoder().decode([String: QualityMetrics].self, from: data)[name]!
        let meter = try QualityMeter(settings: MelSettings(sampleRate: 16000, nFFT: 1024, hopLength: 256, nMels: 80, fMax: 8000))
        let got = try meter.compare(reference: reference, generated: generated)
        for (label, a, b) in [("log-mel dB", got.logMelDB, expected.logMelDB), ("spectral convergence", got.spectralConvergence, expected.spectralConvergence),
                              ("log magnitude", got.logMagnitude, expected.logMagnitude), ("MCD", got.mcd, expected.mcd)] {
            #expect(abs(a - b) <= 1e-4 * abs(b) + 1e-6, "\(name) \(label): \(a) vs librosa \(b)")
        }
    }

    /// A signal against itself is at distance zero on every measure; the order matters only
    /// for the spectral convergence (normalised by the reference).
    @Test func identicalSignalsAreAtZero() throws {
        let x = try NPY.read(Fixtures.path("quality/reference.npy")).values
        let meter = try QualityMeter(settings: MelSettings(sampleRate: 16000, nFFT: 1024, hopLength: 256, nMels: 80, fMax: 8000))
        let same = try meter.compare(reference: x, generated: x)
        #expect(same == QualityMetrics(logMelDB: 0, spectralConvergence: 0, logMagnitude: 0, mcd: 0))
        #expect(throws: ParawaveError.self) { _ = try meter.compare(reference: x, generated: []) }
    }

    /// The DCT is scipy's orthonormal DCT-II: orthonormal rows, so it preserves energy.
    /// The burst measure: 0 dB for identical signals, the window's gain where one 100 ms
    /// stretch is 10 dB louder, and no burst for hiss at -70 dB over digital silence.
    @Test func loudnessExcessFindsBursts() throws {
        let sr = 16000
        var g = SeededGenerator(seed: 3)
        let speech = (0..<sr).map { i in 0.3 * sin(Float(i) * 0.07) * (0.5 + 0.5 * g.uniformOpen()) }
        #expect(try #require(LoudnessExcess.worstDB(reference: speech, generated: speech, sampleRate: sr)) == 0)
        var burst = speech
        for i in 4000..<5600 { burst[i] *= Float(pow(10, 0.5)) }
        let db = try #require(LoudnessExcess.worstDB(reference: speech, generated: burst, sampleRate: sr))
        #expect(abs(db - 10) < 0.01, "\(db)")
        let silence = [Float](repeating: 0, count: sr)
        let hiss = (0..<sr).map { _ in Float(pow(10, -3.5)) * (g.uniformOpen() * 2 - 1) * Float(3).squareRoot() }
        #expect(try #require(LoudnessExcess.worstDB(reference: silence, generated: hiss, sampleRate: sr)) < 0.5)
        #expect(LoudnessExcess.worstDB(reference: speech, generated: Array(speech.prefix(100)), sampleRate: sr) == nil)
    }

    @Test func dctIsOrthonormal() {
        let dct = OrthonormalDCT(size: 7)
        let x = (0..<7).map { sin(Double($0) * 1.3) + 0.2 * Double($0) }
        let y = dct.transform(x)
        let energyIn = x.map { $0 * $0 }.reduce(0, +), energyOut = y.map { $0 * $0 }.reduce(0, +)
        #expect(abs(energyOut - energyIn) < 1e-12)
        let dc = x.reduce(0, +) / 7.0.squareRoot()
        #expect(abs(y[0] - dc) < 1e-12)
        let k = 3
        var direct = 0.0
        for n in 0..<7 { direct += x[n] * cos(Double.pi * Double(k) * Double(2 * n + 1) / 14) }
        direct *= (2.0 / 7).squareRoot()
        #expect(abs(y[k] - direct) < 1e-12)
    }
}
