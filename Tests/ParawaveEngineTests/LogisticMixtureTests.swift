import Foundation
import ParawaveCore
import ParawaveEngine
import ParawaveTestSupport
import Testing

/// The continuous logistic mixture (distillation's teacher density) and the sampler.
struct LogisticMixtureTests {
    /// The density by its definition, in Float64.
    static func reference(params: [Double], x: [Double], M: Int, T: Int, logScaleMin: Double) -> [Double] {
        (0..<T).map { t in
            let logits = (0..<M).map { params[$0 * T + t] }
            let top = logits.max()!
            let logNorm = top + log(logits.map { exp($0 - top) }.reduce(0, +))
            let terms = (0..<M).map { k -> Double in
                let ls = max(params[(2 * M + k) * T + t], logScaleMin)
                let m = (x[t] - params[(M + k) * T + t]) / exp(ls)
                return logits[k] - logNorm + m - ls - 2 * log1p(exp(m))
            }
            let best = terms.max()!
            return best + log(terms.map { exp($0 - best) }.reduce(0, +))
        }
    }

    static func parameters(M: Int, T: Int) -> ([Float], [Float]) {
        var g = SeededGenerator(seed: UInt64(M * 100 + T))
        var params = [Float](repeating: 0, count: 3 * M * T)
        for t in 0..<T {
            for k in 0..<M {
                params[k * T + t] = 2 * g.normal()
                params[(M + k) * T + t] = 0.3 * g.normal()
                params[(2 * M + k) * T + t] = -3 + 1.5 * g.normal()
            }
        }
        params[2 * M * T] = -7.5  // one log-scale below the clamp
        let x = (0..<T).map { t in params[M * T + t] + 0.05 * g.normal() }
        return (params, x)
    }

    /// The density and its gradients against the definition in Float64, with T = 12 (8 time
    /// steps on vectors and 4 one by one) and M = 1, 4 and 10; some samples sit tens of scales
    /// from every component, where softplus is linear.
    @Test(arguments: [1, 4, 10])
    func densityAndGradientsMatchReference(_ M: Int) {
        let T = 12
        var (params, x) = Self.parameters(M: M, T: T)
        x[2] += 3
        x[9] -= 3
        let mixture = LogisticMixture(mixtures: M)
        var logp = [Float](repeating: 0, count: T)
        mixture.forward(logDensity: &logp, params: params, x: x, batch: 1, length: T)
        let expected = Self.reference(params: params.map(Double.init), x: x.map(Double.init), M: M, T: T, logScaleMin: -7)
        for t in 0..<T { #expect(abs(Double(logp[t]) - expected[t]) <= 1e-5 * max(1, abs(expected[t])), "t \(t)") }
        let w = GradientCheck.random(T, seed: 3)
        var dParams = [Float](repeating: 0, count: params.count), dX = [Float](repeating: 0, count: T)
        mixture.backward(dParams: &dParams, dX: &dX, dLogDensity: w, params: params, x: x, batch: 1, length: T)
        let wd = w.map(Double.init), pd = params.map(Double.init), xd = x.map(Double.init)
        let ep = GradientCheck.worstRelativeError(point: pd, analytic: dParams, epsilon: 1e-6) {
            zip(Self.reference(params: $0, x: xd, M: M, T: T, logScaleMin: -7), wd).map(*).reduce(0, +)
        }
        let ex = GradientCheck.worstRelativeError(point: xd, analytic: dX, epsilon: 1e-6) {
            zip(Self.reference(params: pd, x: $0, M: M, T: T, logScaleMin: -7), wd).map(*).reduce(0, +)
        }
        #expect(ep.error < 1e-3, "parameters \(ep)")
        #expect(ex.error < 1e-3, "x \(ex)")
        #expect(dParams[2 * M * T] == 0, "no gradient below the clamp")
    }

    /// Rows of 21 time steps (two vector blocks and five single steps each) in a batch of 3:
    /// every density as the definition gives it, every gradient as the one-row pass gives it.
    @Test func rowsAgreeWithSingleRows() {
        let M = 10, T = 21, B = 3
        let (base, baseX) = Self.parameters(M: M, T: T)
        var params: [Float] = [], x: [Float] = []
        for b in 0..<B {
            params += base.map { $0 + 0.1 * Float(b) }
            x += baseX.map { $0 - 0.01 * Float(b) }
        }
        let mixture = LogisticMixture(mixtures: M)
        var logp = [Float](repeating: 0, count: B * T)
        mixture.forward(logDensity: &logp, params: params, x: x, batch: B, length: T)
        let w = GradientCheck.random(B * T, seed: 5)
        var dParams = [Float](repeating: 0, count: params.count), dX = [Float](repeating: 0, count: B * T)
        mixture.backward(dParams: &dParams, dX: &dX, dLogDensity: w, params: params, x: x, batch: B, length: T)
        for b in 0..<B {
            let p = Array(params[(b * 3 * M * T)..<((b + 1) * 3 * M * T)]), xb = Array(x[(b * T)..<((b + 1) * T)])
            let expected = Self.reference(params: p.map(Double.init), x: xb.map(Double.init), M: M, T: T, logScaleMin: -7)
            for t in 0..<T { #expect(abs(Double(logp[b * T + t]) - expected[t]) <= 1e-5 * max(1, abs(expected[t])), "b \(b) t \(t)") }
            var one = [Float](repeating: 0, count: 3 * M * T), oneX = [Float](repeating: 0, count: T)
            mixture.backward(dParams: &one, dX: &oneX, dLogDensity: Array(w[(b * T)..<((b + 1) * T)]), params: p, x: xb, batch: 1, length: T)
            #expect(Array(dParams[(b * 3 * M * T)..<((b + 1) * 3 * M * T)]) == one && Array(dX[(b * T)..<((b + 1) * T)]) == oneX)
        }
    }

    /// The vector path against the scalar one on 4 rows of 1,000 steps with 10 components:
    /// densities within 2e-6 of each other (relative above 1), gradients within 1e-5.
    @Test func vectorPathMatchesScalarPath() {
        let M = 10, T = 1000, B = 4
        var params: [Float] = [], x: [Float] = []
        for b in 0..<B {
            let (p, xb) = Self.parameters(M: M, T: T + b)
            params += p.prefix(3 * M * T)
            x += xb.prefix(T).map { $0 + (b == 3 ? 0.5 : 0) }
        }
        func run(_ vectorised: Bool) -> ([Float], [Float], [Float]) {
            let mixture = LogisticMixture(mixtures: M, vectorised: vectorised)
            var logp = [Float](repeating: 0, count: B * T)
            mixture.forward(logDensity: &logp, params: params, x: x, batch: B, length: T)
            var dParams = [Float](repeating: 0, count: params.count), dX = [Float](repeating: 0, count: B * T)
            mixture.backward(dParams: &dParams, dX: &dX, dLogDensity: GradientCheck.random(B * T, seed: 9), params: params, x: x, batch: B, length: T)
            return (logp, dParams, dX)
        }
        let vector = run(true), scalar = run(false)
        let density = zip(vector.0, scalar.0).map { abs($0 - $1) / max(1, abs($1)) }.max()!
        let gradients = zip(vector.1 + vector.2, scalar.1 + scalar.2).map { abs($0 - $1) / max(1, abs($1)) }.max()!
        #expect(density < 2e-6 && gradients < 1e-5, "densities \(density), gradients \(gradients)")
        #expect(vector.0 != scalar.0, "the two paths are different code")
    }

    @Test func samplerFollowsWeightsMeansScalesAndTemperature() {
        // Two components: weights softmax(0, ln 3) = (1/4, 3/4), means -0.5 and 0.4, scale 0.02.
        let T = 40_000
        var params = [Float](repeating: 0, count: 6 * T)
        for t in 0..<T {
            params[t] = 0; params[T + t] = log(3)
            params[2 * T + t] = -0.5; params[3 * T + t] = 0.4
            params[4 * T + t] = log(0.02); params[5 * T + t] = log(0.02)
        }
        let mixture = LogisticMixture(mixtures: 2)
        for temperature: Float in [1, 0.5] {
            var generator = SeededGenerator(seed: 77)
            var x = [Float](repeating: 0, count: T)
            mixture.sample(out: &x, params: params, batch: 1, length: T, temperature: temperature, generator: &generator)
            let low = x.filter { $0 < 0 }, high = x.filter { $0 >= 0 }
            #expect(abs(Double(low.count) / Double(T) - 0.25) < 0.01)
            let mean = Double(high.reduce(0, +)) / Double(high.count)
            #expect(abs(mean - 0.4) < 0.002)
            // A logistic's variance is s^2 pi^2 / 3.
            let variance = high.map { (Double($0) - mean) * (Double($0) - mean) }.reduce(0, +) / Double(high.count)
            let expected = pow(0.02 * Double(temperature), 2) * Double.pi * Double.pi / 3
            #expect(abs(variance / expected - 1) < 0.05, "temperature \(temperature): variance \(variance) vs \(expected)")
            #expect(x.allSatisfy { $0 >= -1 && $0 <= 1 })
        }
    }

    @Test func samplingIsDeterministicGivenTheSeed() {
        let (params, _) = Self.parameters(M: 3, T: 50)
        let mixture = LogisticMixture(mixtures: 3)
        var a = [Float](repeating: 0, count: 50), b = a
        var g1 = SeededGenerator(seed: 5), g2 = SeededGenerator(seed: 5)
        mixture.sample(out: &a, params: params, batch: 1, length: 50, generator: &g1)
        mixture.sample(out: &b, params: params, batch: 1, length: 50, generator: &g2)
        #expect(a == b)
        #expect(LogisticMixture.logisticEntropy(logScale: -3) == -1)
    }
}
