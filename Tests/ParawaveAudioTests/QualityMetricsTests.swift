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
