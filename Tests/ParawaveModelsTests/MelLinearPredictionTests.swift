import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels
import ParawaveTestSupport
import Testing

struct MelLinearPredictionTests {
    static func load() throws -> (lp: MelLinearPrediction, file: SafeTensors, frames: Int) {
        let file = try SafeTensors.read(Fixtures.path("models/linear_prediction.safetensors"))
        let order = Int(file.metadata["order"]!)!, bits = Int(file.metadata["bits"]!)!
        let lp = MelLinearPrediction(mel: MelSettings(sampleRate: 16000), order: order, bits: bits)
        return (lp, file, file.tensors["input.mel"]!.shape[1])
    }

    /// The fixture's predictors by `MelLinearPrediction`, its audio and the predictions.
    static func analysed() throws -> (lp: MelLinearPrediction, frames: Int, a: [Float], logRMS: [Float], x: [Float], p: [Float]) {
        let (lp, file, F) = try load()
        var a = [Float](repeating: 0, count: F * lp.order), logRMS = [Float](repeating: 0, count: F)
        lp.analyse(logMel: file.tensors["input.mel"]!.values, frames: F, coefficients: &a, logRMS: &logRMS)
        let x = file.tensors["input.audio"]!.values
        var p = [Float](repeating: 0, count: x.count)
        lp.predict(x, length: x.count, coefficients: a, frames: F, into: &p)
        return (lp, F, a, logRMS, x, p)
    }

    /// The predictors of a log-mel against numpy and scipy (scripts/make_fixtures.py: the
    /// pseudo-inverse by SVD, the autocorrelation by an inverse FFT, the predictor by a
    /// Toeplitz solve, not Levinson-Durbin), over voiced, quiet and silent frames: ln sqrt(E)
    /// within 1e-3 and every frame's predictor within 1e-3 of the largest coefficient.
    @Test func matchesNumPyReference() throws {
        let (lp, file, F) = try Self.load()
        let P = lp.order
        var coefficients = [Float](repeating: 0, count: F * P), logRMS = [Float](repeating: 0, count: F)
        lp.analyse(logMel: file.tensors["input.mel"]!.values, frames: F, coefficients: &coefficients, logRMS: &logRMS)
        let expectedA = file.tensors["output.coefficients"]!.values, expectedRMS = file.tensors["output.log_rms"]!.values
        var worstRMS: Float = 0, worstA: Float = 0
        for f in 0..<F {
            worstRMS = max(worstRMS, abs(logRMS[f] - expectedRMS[f]))
            let scale = max(1, (0..<P).map { abs(expectedA[f * P + $0]) }.max()!)
            for k in 0..<P { worstA = max(worstA, abs(coefficients[f * P + k] - expectedA[f * P + k]) / scale) }
        }
        #expect(worstRMS < 1e-3, "ln sqrt(E): worst error \(worstRMS)")
        #expect(worstA < 1e-3, "coefficients: worst relative error \(worstA)")
        // Silent frames sit at the quantisation floor: white, so E is the noise power.
        let floor = Float(0.5 * log(lp.noisePower))
        #expect(abs(expectedRMS.min()! - floor) < 0.01 && abs(logRMS.min()! - floor) < 0.01, "\(logRMS.min()!) against \(floor)")
    }

    /// The synthesis filter inverts the prediction (x = e + p recovers x from its residual),
    /// and its backward pass is its adjoint: <S e, g> = <e, S^T g> for random e and g.
    @Test func synthesisInvertsPredictionAndBackwardIsTheAdjoint() throws {
        let (lp, F, a, _, x, p) = try Self.analysed()
        let P = lp.order, T = x.count
        var e = zip(x, p).map { $0 - $1 }
        lp.synthesize(&e, length: T, coefficients: a, frames: F)
        let worst = zip(e, x).map { abs($0 - $1) }.max()!
        // The residual's single-precision rounding (about 1e-7) passes through 1 / A(z), whose
        // gain near a sharp formant reaches thousands: 1.8e-4 measured.
        #expect(worst < 5e-4, "reconstruction error \(worst)")

        let n = 3000
        let slice = Array(a.prefix(12 * P))
        let u = GradientCheck.random(n, seed: 1, scale: 0.1), g = GradientCheck.random(n, seed: 2, scale: 0.1)
        var su = u, sg = g
        lp.synthesize(&su, length: n, coefficients: slice, frames: 12)
        lp.synthesizeBackward(&sg, length: n, coefficients: slice, frames: 12)
        let left = zip(su, g).map { Double($0) * Double($1) }.reduce(0, +), right = zip(u, sg).map { Double($0) * Double($1) }.reduce(0, +)
        #expect(abs(left - right) <= 1e-4 * max(1, abs(left)), "<Su, g> = \(left), <u, S'g> = \(right)")
    }

    /// The point of it: with no training at all, the mel's predictor and scale model the
    /// audio far better than repeating the previous sample with the same scale model (nats per
    /// sample of a logistic of scale 0.030 sqrt(E) per frame, over the voiced samples).
    @Test func predictsBetterThanThePreviousSample() throws {
        let (lp, F, _, logRMS, x, p) = try Self.analysed()
        func nll(_ prediction: (Int) -> Float) -> Double {
            var total = 0.0, count = 0
            for t in 2000..<(2000 + 9600) {
                let s = exp(Double(logRMS[lp.frame(ofSample: t, frames: F)]) + lp.logScalePerRMS)
                let z = Double(x[t] - prediction(t)) / s
                total += z + log(s) + 2 * log1p(exp(-z))
                count += 1
            }
            return total / Double(count)
        }
        let mel = nll { p[$0] }, previous = nll { x[$0 - 1] }
        #expect(mel < previous - 1, "mel predictor \(mel), previous sample \(previous) nats per sample")
    }
}
