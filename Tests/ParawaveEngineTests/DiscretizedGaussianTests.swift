import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveTestSupport
import Testing

/// The 16-bit discretised Gaussian against golden values at 50 digits (mpmath, in
/// scripts/make_fixtures.py): the log-likelihood and the gradient of the mean NLL with
/// respect to the mean and log-scale, on inputs that hit every branch (edge bins near and
/// far, deep tails thousands of scales out, log-scales at and below the clamp, a scale
/// under one bin, a mean outside [-1, 1]); and the normal CDF helpers against values from
/// the same definition.
struct DiscretizedGaussianTests {
    @Test func matchesTheReference() throws {
        let x = try NPY.read(Fixtures.path("engine/dgauss_x.npy")).values
        let params = try NPY.read(Fixtures.path("engine/dgauss_params.npy"))
        let clamps = try NPY.read(Fixtures.path("engine/dgauss_clamp.npy")).values
        let expected = try NPY.read(Fixtures.path("engine/dgauss_logp.npy")).values
        let expectedGrad = try NPY.read(Fixtures.path("engine/dgauss_grad.npy")).values
        let T = x.count
        #expect(params.shape == [2, T])
        for t in 0..<T {
            // One case at a time: each has its own clamp.
            let model = DiscretizedGaussian(bits: 16, logScaleMin: clamps[t])
            let p = [params.values[t], params.values[T + t]]
            var logp: [Float] = [0]
            model.forward(logProb: &logp, params: p, x: [x[t]], batch: 1, length: 1)
            #expect(abs(logp[0] - expected[t]) <= 1e-5 * max(1, abs(expected[t])), "case \(t): \(logp[0]) vs \(expected[t])")
            var grad: [Float] = [0, 0]
            model.backward(dParams: &grad, dLogProb: [-1 / Float(T)], params: p, x: [x[t]], batch: 1, length: 1)
            for (c, name) in ["mean", "log-scale"].enumerated() {
                let e = expectedGrad[c * T + t]
                #expect(abs(grad[c] - e) <= 1e-4 * abs(e) + 1e-9, "case \(t) \(name): \(grad[c]) vs \(e)")
            }
        }
    }

    @Test func normalHelpersFollowTheDefinition() {
        // log Phi(z) through erfc, across the branch at -30 (continuous) and far below it.
        for z in [-0.5, 0.0, 1.0, 6.0, -5.0, -12.0] {
            #expect(abs(StableMath.logNormalCDF(z) - log(0.5 * erfc(-z / 2.squareRoot()))) <= 1e-13 * max(1, abs(log(0.5 * erfc(-z / 2.squareRoot())))))
        }
        let below = StableMath.logNormalCDF(-30.000001), above = StableMath.logNormalCDF(-29.999999)
        #expect(abs(below - log(0.5 * erfc(30.000001 / 2.squareRoot()))) < 1e-10, "\(below)")
        // The slope there, phi(z)/Phi(z), is about -z + 1/(-z) = 30.03.
        let slope = (above - below) / 2e-6
        #expect(slope > 30 && slope < 30.07, "slope \(slope)")
        // At z = -1000: -z^2/2 - log(-z) - log(2 pi)/2 + log(1 - 1/z^2 + ...).
        let deep = -500_000 - log(1000.0) - 0.5 * log(2 * Double.pi) + log1p(-1e-6 + 3e-12)
        #expect(abs(StableMath.logNormalCDF(-1000) - deep) < 1e-9)
        #expect(StableMath.logNormalCDF(40) == 0 && StableMath.logNormalCDF(8) < 0)
        // The mass on either side of 0 and across it equals the plain difference where that is exact.
        for (a, b) in [(0.3, -0.2), (1.5, 0.5), (-0.5, -1.5), (2.0, 1.999)] {
            let plain = log(0.5 * erfc(-a / 2.squareRoot()) - 0.5 * erfc(-b / 2.squareRoot()))
            #expect(abs(StableMath.logNormalMass(a, b) - plain) < 1e-9 * max(1, abs(plain)), "(\(a), \(b))")
        }
        // Far out on the right the mass matches the reflected left tail's.
        #expect(abs(StableMath.logNormalMass(41, 40) - StableMath.logNormalMass(-40, -41)) < 1e-12)
    }

    @Test func probabilitiesOverAllBinsSumToOne() {
        let bits = 8, Q = 256
        for (mean, logScale) in [(0.1, -3.0), (-0.95, -2.0), (0.5, 1.0), (0.0, -8.0)] {
            let model = DiscretizedGaussian(bits: bits, logScaleMin: -16)
            let x = (0..<Q).map { Float(-1 + 2 * Double($0) / Double(Q - 1)) }
            let params = [Float](repeating: Float(mean), count: Q) + [Float](repeating: Float(logScale), count: Q)
            var logp = [Float](repeating: 0, count: Q)
            model.forward(logProb: &logp, params: params, x: x, batch: 1, length: Q)
            let total = logp.map { exp(Double($0)) }.reduce(0, +)
            #expect(abs(total - 1) < 1e-5, "mean \(mean) log-scale \(logScale): total mass \(total)")
        }
    }

    /// The backward pass against central differences of the forward in Float64 (the bin's
    /// function), over random inputs, and batches that are independent and accumulate.
    @Test func gradientsMatchFiniteDifferencesAndAccumulate() {
        var rng = SeededGenerator(seed: 9)
        let model = DiscretizedGaussian(bits: 16, logScaleMin: -9)
        for _ in 0..<200 {
            let level: Double = (rng.uniform() * 65535).rounded()
            let q: Double = level / 65535 * 2 - 1
            let mu: Double = q + Double(rng.normal()) * 0.05
            let logScale: Double = -6 + 5 * rng.uniform()
            let d = model.bin(x: q, mu: mu, logScale: logScale)
            let e = 1e-6
            let muUp = model.bin(x: q, mu: mu + e, logScale: logScale).logP, muDown = model.bin(x: q, mu: mu - e, logScale: logScale).logP
            let lsUp = model.bin(x: q, mu: mu, logScale: logScale + e).logP, lsDown = model.bin(x: q, mu: mu, logScale: logScale - e).logP
            let dMu = (muUp - muDown) / (2 * e), dLs = (lsUp - lsDown) / (2 * e)
            #expect(abs(d.dMu - dMu) <= 1e-5 * max(1, abs(dMu)), "x \(q) mu \(mu) log s \(logScale): \(d.dMu) vs \(dMu)")
            #expect(abs(d.dLogScale - dLs) <= 1e-5 * max(1, abs(dLs)), "x \(q) mu \(mu) log s \(logScale): \(d.dLogScale) vs \(dLs)")
        }
        let T = 5
        let x: [Float] = [-1, -0.3, 0, 0.4, 1]
        let params: [Float] = [-0.9, -0.31, 0.01, 0.5, 0.8, -3, -4, -8, -2, -1]
        var one = [Float](repeating: 0, count: T), two = [Float](repeating: 0, count: 2 * T)
        model.forward(logProb: &one, params: params, x: x, batch: 1, length: T)
        model.forward(logProb: &two, params: params + params, x: x + x, batch: 2, length: T)
        #expect(Array(two[0..<T]) == one && Array(two[T...]) == one)
        var g1 = [Float](repeating: 0, count: 2 * T), g2 = [Float](repeating: 0.5, count: 2 * T)
        let dLogProb = [Float](repeating: 1, count: T)
        model.backward(dParams: &g1, dLogProb: dLogProb, params: params, x: x, batch: 1, length: T)
        model.backward(dParams: &g2, dLogProb: dLogProb, params: params, x: x, batch: 1, length: T)
        for i in g1.indices { #expect(abs(g2[i] - (g1[i] + 0.5)) <= 1e-5 * max(1, abs(g1[i]))) }
        // A log-scale below the clamp gets no gradient; its mean still does.
        var clamped = [Float](repeating: 0, count: 2)
        model.backward(dParams: &clamped, dLogProb: [1], params: [0.01, -10], x: [0], batch: 1, length: 1)
        #expect(clamped[1] == 0 && clamped[0] != 0)
    }

    /// Draws have the parameters' mean and standard deviation (times the temperature),
    /// repeat with the seed, and are clipped to [-1, 1] unless asked not to be.
    @Test func drawsFollowTheParameters() {
        let n = 100_000
        for (mean, logScale, temperature) in [(Float(0.2), Float(-3), Float(1)), (-0.5, -2, 0.5), (0, -12, 1)] {
            let p: [Float] = [mean, logScale]
            var rng = SeededGenerator(seed: 3)
            var sum = 0.0, squares = 0.0
            for _ in 0..<n {
                let x = Double(DiscretizedGaussian.draw(p, stride: 1, logScaleMin: -9, temperature: temperature, generator: &rng))
                sum += x; squares += x * x
            }
            let m = sum / Double(n), sd = (squares / Double(n) - m * m).squareRoot()
            let expected = Double(exp(max(logScale, -9)) * temperature)
            #expect(abs(m - Double(mean)) < 5 * expected / Double(n).squareRoot() + 1e-6, "mean \(m)")
            #expect(abs(sd / expected - 1) < 0.02, "standard deviation \(sd) vs \(expected)")
        }
        var a = SeededGenerator(seed: 8), b = SeededGenerator(seed: 8)
        let p: [Float] = [0.95, -1]
        let first = (0..<50).map { _ in DiscretizedGaussian.draw(p, stride: 1, logScaleMin: -7, temperature: 1, generator: &a) }
        let second = (0..<50).map { _ in DiscretizedGaussian.draw(p, stride: 1, logScaleMin: -7, temperature: 1, generator: &b) }
        #expect(first == second && first.allSatisfy { abs($0) <= 1 } && first.contains(1))
        var c = SeededGenerator(seed: 8)
        let unclipped = (0..<50).map { _ in DiscretizedGaussian.draw(p, stride: 1, logScaleMin: -7, temperature: 1, clip: false, generator: &c) }
        #expect(unclipped.contains { $0 > 1 } && zip(unclipped, first).allSatisfy { max(-1, min(1, $0)) == $1 })
    }
}
