import Foundation
import ParawaveAudio
import ParawaveTestSupport
import Testing

/// Spectral losses for distillation: every kind's loss and dL/dx match PyTorch (torch.stft and
/// autograd in float64, scripts/make_fixtures.py) within 1e-4 relative (looser for the
/// multi-resolution gradient, see `matchesPyTorch`), the FFT path matches a direct
/// Float64 DFT, the gradient matches Float64 central differences of that DFT reference within
/// 1e-3 relative, and the invariants hold: zero for identical signals, the weight scales a
/// gradient that is added, results bit-identical on 1 and 2 threads, white noise of variance v
/// has mean normalised power v at every FFT size.
struct SpectralLossTests {
    typealias Resolution = SpectralLoss.Resolution

    struct GoldenCase: Decodable {
        struct Settings: Decodable {
            var n_fft: Int, hop: Int, win_length: Int
        }
        var name: String, batch: Int, length: Int
        var losses: [String: Double]
        var resolutions: [String: [Settings]]
        /// PyTorch's float32 gradient against its float64 one, by `worstGoldenError`.
        var float32_gradient_error: [String: Double]
    }

    static func goldenCases() throws -> [GoldenCase] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("spectral/cases.json")))
        return try JSONDecoder().decode([GoldenCase].self, from: data)
    }

    /// Small resolutions for the direct-DFT checks (power and magnitude use the first), one with
    /// an odd window length.
    static let small = [Resolution(nFFT: 16, hop: 4, winLength: 12), Resolution(nFFT: 8, hop: 2, winLength: 8),
                        Resolution(nFFT: 32, hop: 8, winLength: 19)]

    /// Losses within 1e-4 relative. Gradients: power and magnitude within 1e-4 at the worst
    /// element (`worstGoldenError`) and 1e-6 in relative RMS; multi-resolution within 5e-3 and
    /// 1e-4. Its log-magnitude term differentiates to 1/|X|, so in a bin where |X| is small,
    /// single-precision FFT rounding (about 1e-7 of the frame) becomes about 1e-3 of the nearby
    /// gradient: PyTorch's own float32 STFT misses its float64 gradient by as much
    /// (`float32_gradient_error`: 4e-4 to 2e-3 at the worst element on these signals).
    @Test(arguments: SpectralLoss.Kind.allCases)
    func matchesPyTorch(_ kind: SpectralLoss.Kind) throws {
        for c in try Self.goldenCases() {
            let x = try NPY.read(Fixtures.path("spectral/\(c.name)_x.npy")).values
            let y = try NPY.read(Fixtures.path("spectral/\(c.name)_y.npy")).values
            let reference = try NPY.read(Fixtures.path("spectral/\(c.name)_\(kind.rawValue)_grad.npy")).values
            let resolutions = c.resolutions[kind.rawValue]!.map { Resolution(nFFT: $0.n_fft, hop: $0.hop, winLength: $0.win_length) }
            let spectral = SpectralLoss(kind: kind, resolutions: resolutions)
            var gradient = [Float](repeating: 0, count: x.count)
            let loss = spectral.evaluate(x, y, batch: c.batch, gradient: &gradient)
            let expected = c.losses[kind.rawValue]!
            let lossError = abs(loss - expected) / expected
            let gradientError = GradientCheck.worstGoldenError(gradient, reference)
            // The direct Float64 DFT reproduces PyTorch's float64 loss to rounding.
            let directError = abs(spectral.referenceLoss(x: x.map(Double.init), y: y.map(Double.init), batch: c.batch, length: c.length) - expected) / expected
            var squaredError = 0.0, squared = 0.0
            for (a, b) in zip(gradient, reference) {
                squaredError += Double(a - b) * Double(a - b)
                squared += Double(b) * Double(b)
            }
            let rmsError = (squaredError / squared).squareRoot()
            print("spectral \(kind.rawValue) case \(c.name): loss relative error \(lossError); gradient worst \(gradientError) "
                  + "(PyTorch float32 \(c.float32_gradient_error[kind.rawValue]!)), relative RMS \(rmsError); direct DFT loss error \(directError)")
            #expect(lossError <= 1e-4, "\(kind) \(c.name) loss")
            #expect(gradientError <= (kind == .multiResolution ? 5e-3 : 1e-4), "\(kind) \(c.name) gradient")
            #expect(rmsError <= (kind == .multiResolution ? 1e-4 : 1e-6), "\(kind) \(c.name) gradient RMS")
            #expect(directError <= 1e-10, "\(kind) \(c.name) direct DFT")
        }
    }

    @Test(arguments: SpectralLoss.Kind.allCases)
    func fftPathMatchesDirectDFT(_ kind: SpectralLoss.Kind) {
        for (batch, length) in [(1, 3), (2, 45), (3, 203)] {
            let x = GradientCheck.random(batch * length, seed: 21, scale: 0.5)
            let y = GradientCheck.random(batch * length, seed: 22, scale: 0.4)
            let spectral = SpectralLoss(kind: kind, resolutions: Self.small)
            let fast = spectral.evaluate(x, y, batch: batch)
            let direct = spectral.referenceLoss(x: x.map(Double.init), y: y.map(Double.init), batch: batch, length: length)
            #expect(abs(fast - direct) <= 1e-5 * direct, "\(kind) B \(batch) T \(length): \(fast) vs \(direct)")
        }
    }

    /// Differences of the Float64 direct-DFT loss, so epsilon can be small (1e-6 on signals of
    /// amplitude 0.5) and the check is limited by the analytic gradient's Float32 FFT alone.
    @Test(arguments: SpectralLoss.Kind.allCases)
    func gradientMatchesFiniteDifferences(_ kind: SpectralLoss.Kind) {
        let batch = 2, length = 45
        let x = GradientCheck.random(batch * length, seed: 31, scale: 0.5)
        let y = GradientCheck.random(batch * length, seed: 32, scale: 0.4)
        let spectral = SpectralLoss(kind: kind, resolutions: Self.small)
        var gradient = [Float](repeating: 0, count: x.count)
        _ = spectral.evaluate(x, y, batch: batch, gradient: &gradient)
        let yd = y.map(Double.init)
        let (error, index) = GradientCheck.worstRelativeError(point: x.map(Double.init), analytic: gradient, epsilon: 1e-6) {
            spectral.referenceLoss(x: $0, y: yd, batch: batch, length: length)
        }
        print("spectral \(kind.rawValue): finite-difference relative error \(error) at \(index)")
        #expect(error < 1e-3, "\(kind): worst relative error \(error) at sample \(index)")
    }

    @Test(arguments: SpectralLoss.Kind.allCases)
    func identicalSignalsGiveZero(_ kind: SpectralLoss.Kind) {
        let x = GradientCheck.random(2 * 300, seed: 41, scale: 0.5)
        var gradient = [Float](repeating: 0, count: x.count)
        let loss = SpectralLoss(kind: kind, resolutions: Self.small).evaluate(x, x, batch: 2, gradient: &gradient)
        #expect(loss == 0)
        #expect(gradient.allSatisfy { $0 == 0 })
    }

    @Test(arguments: SpectralLoss.Kind.allCases)
    func weightScalesAnAddedGradient(_ kind: SpectralLoss.Kind) {
        let batch = 2, length = 300
        let x = GradientCheck.random(batch * length, seed: 51, scale: 0.5)
        let y = GradientCheck.random(batch * length, seed: 52, scale: 0.4)
        let spectral = SpectralLoss(kind: kind, resolutions: Self.small)
        var pure = [Float](repeating: 0, count: x.count)
        let loss = spectral.evaluate(x, y, batch: batch, gradient: &pure)
        let scale = pure.map(abs).max()!
        #expect(scale > 0)
        // Start from values of the gradient's own size, so rounding stays at its scale.
        let start = GradientCheck.random(x.count, seed: 53, scale: scale)
        for weight: Float in [1, -2.5] {
            var gradient = start
            let weighted = spectral.evaluate(x, y, batch: batch, gradient: &gradient, weight: weight)
            #expect(weighted == loss, "the returned loss is unweighted")
            let worst = zip(zip(gradient, start), pure).map { pair, g in abs(pair.0 - pair.1 - weight * g) }.max()!
            #expect(worst <= 1e-6 * abs(weight) * scale, "\(kind) weight \(weight): \(worst)")
        }
    }

    @Test(arguments: SpectralLoss.Kind.allCases)
    func threadCountDoesNotChangeResults(_ kind: SpectralLoss.Kind) {
        let batch = 2, length = 4001
        let x = GradientCheck.random(batch * length, seed: 61, scale: 0.5)
        let y = GradientCheck.random(batch * length, seed: 62, scale: 0.4)
        var results: [(Double, [Float])] = []
        for threads in [1, 2, 2] {
            let spectral = SpectralLoss(kind: kind, resolutions: SpectralLoss.defaultResolutions(kind: kind), threads: threads)
            var gradient = [Float](repeating: 0, count: x.count)
            let loss = spectral.evaluate(x, y, batch: batch, gradient: &gradient)
            results.append((loss, gradient))
        }
        for r in results.dropFirst() {
            #expect(r.0 == results[0].0)
            #expect(r.1 == results[0].1)
        }
    }

    /// Uniform noise on [-a, a] has variance v = a^2 / 3; against silence the power loss is
    /// mean_k (mean_f P)^2 ~ v^2 whatever the FFT size (edge frames and sampling move it ~1%).
    @Test(arguments: [Resolution(nFFT: 64, hop: 16, winLength: 64), Resolution(nFFT: 1024, hop: 256, winLength: 600)])
    func whiteNoiseHasNormalisedPower(_ resolution: Resolution) {
        let length = 64000, amplitude: Float = 0.6
        let x = GradientCheck.random(length, seed: 71, scale: amplitude)
        let silence = [Float](repeating: 0, count: length)
        let loss = SpectralLoss(kind: .power, resolutions: [resolution]).evaluate(x, silence, batch: 1)
        let variance = Double(amplitude * amplitude) / 3
        #expect(abs(loss / (variance * variance) - 1) < 0.05, "nFFT \(resolution.nFFT): \(loss) vs \(variance * variance)")
    }

    @Test func defaultsAndKindNames() {
        #expect(SpectralLoss.Kind(rawValue: "multi_resolution") == .multiResolution)
        #expect(SpectralLoss.defaultResolutions(kind: .magnitude) == [Resolution(nFFT: 1024, hop: 256, winLength: 1024)])
        #expect(SpectralLoss.defaultResolutions(kind: .multiResolution).map(\.hop) == [120, 240, 50])
        let single = SpectralLoss(kind: .power, resolutions: SpectralLoss.defaultResolutions(kind: .multiResolution))
        #expect(single.resolutions == [Resolution(nFFT: 1024, hop: 120, winLength: 600)])
    }
}

extension SpectralLoss {
    /// `evaluate` on (B, T) arrays, adding weight * dL/dx into `gradient`.
    fileprivate func evaluate(_ x: [Float], _ y: [Float], batch: Int, gradient: inout [Float], weight: Float = 1) -> Double {
        precondition(x.count == y.count && x.count == gradient.count && x.count % batch == 0)
        return gradient.withUnsafeMutableBufferPointer { g in
            evaluate(x: x, y: y, batch: batch, length: x.count / batch, dX: g.baseAddress!, weight: weight)
        }
    }

    /// `evaluate` on (B, T) arrays, the loss only.
    fileprivate func evaluate(_ x: [Float], _ y: [Float], batch: Int) -> Double {
        precondition(x.count == y.count && x.count % batch == 0)
        return evaluate(x: x, y: y, batch: batch, length: x.count / batch, dX: nil, weight: 1)
    }
}
