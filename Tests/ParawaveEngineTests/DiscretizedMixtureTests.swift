import Foundation
import ParawaveAudio
import ParawaveEngine
import ParawaveTestSupport
import Testing

/// The 16-bit discretised mixture of logistics against golden values from an independent
/// PyTorch float64 implementation (scripts/make_fixtures.py): log-likelihood and the
/// gradient of the mean NLL with respect to every parameter, on inputs that hit every
/// branch (x = -1, x = 1, inside, mass underflow, log-scales at and below the -7 clamp,
/// huge scales), for one component and for ten.
struct DiscretizedMixtureTests {
    @Test(arguments: [1, 10])
    func matchesTorchReference(_ M: Int) throws {
        let params = try NPY.read(Fixtures.path("engine/dmol_m\(M)_params.npy"))
        let x = try NPY.read(Fixtures.path("engine/dmol_m\(M)_x.npy")).values
        let expected = try NPY.read(Fixtures.path("engine/dmol_m\(M)_logp.npy")).values
        let expectedGrad = try NPY.read(Fixtures.path("engine/dmol_m\(M)_grad.npy")).values
        let T = x.count
        #expect(params.shape == [3 * M, T])
        let dmol = DiscretizedMixture(mixtures: M, bits: 16, logScaleMin: -7)
        var logp = [Float](repeating: 0, count: T)
        dmol.forward(logProb: &logp, params: params.values, x: x, batch: 1, length: T)
        for t in 0..<T {
            #expect(abs(logp[t] - expected[t]) <= 2e-5 * max(1, abs(expected[t])), "case \(t): \(logp[t]) vs \(expected[t])")
        }
        // Gradient of the mean negative log-likelihood.
        let dLogProb = [Float](repeating: -1 / Float(T), count: T)
        var grad = [Float](repeating: 0, count: params.values.count)
        dmol.backward(dParams: &grad, dLogProb: dLogProb, params: params.values, x: x, batch: 1, length: T)
        let scale = expectedGrad.map(abs).max()!
        for i in grad.indices {
            let tolerance = 1e-4 * max(abs(expectedGrad[i]), 1e-3 * scale)
            #expect(abs(grad[i] - expectedGrad[i]) <= tolerance, "parameter \(i / T) case \(i % T) x \(x[i % T]) value \(params.values[i]): \(grad[i]) vs \(expectedGrad[i])")
        }
    }

    @Test func batchesAreIndependentAndGradientsAccumulate() throws {
        let params = try NPY.read(Fixtures.path("engine/dmol_m10_params.npy")).values
        let x = try NPY.read(Fixtures.path("engine/dmol_m10_x.npy")).values
        let T = x.count
        let dmol = DiscretizedMixture(mixtures: 10)
        var one = [Float](repeating: 0, count: T), two = [Float](repeating: 0, count: 2 * T)
        dmol.forward(logProb: &one, params: params, x: x, batch: 1, length: T)
        dmol.forward(logProb: &two, params: params + params, x: x + x, batch: 2, length: T)
        #expect(Array(two[0..<T]) == one && Array(two[T...]) == one)
        var g1 = [Float](repeating: 0, count: params.count), g2 = [Float](repeating: 0.5, count: params.count)
        let d = [Float](repeating: 1, count: T)
        dmol.backward(dParams: &g1, dLogProb: d, params: params, x: x, batch: 1, length: T)
        dmol.backward(dParams: &g2, dLogProb: d, params: params, x: x, batch: 1, length: T)
        for i in g1.indices { #expect(abs(g2[i] - (g1[i] + 0.5)) <= 1e-5 * max(1, abs(g1[i]))) }
    }

    @Test func probabilitiesOverAllBinsSumToOne() {
        // With 8 bits, sum the bin masses of one mixture over all 256 bins.
        let M = 3, bits = 8, Q = 256
        let dmol = DiscretizedMixture(mixtures: M, bits: bits)
        let x = (0..<Q).map { Float(-1 + 2 * Double($0) / Double(Q - 1)) }
        let one: [Float] = [0.3, -1.0, 0.5, -0.2, 0.1, 0.7, -3, -2.5, -4]
        var params = [Float](repeating: 0, count: 3 * M * Q)
        for c in 0..<(3 * M) { for t in 0..<Q { params[c * Q + t] = one[c] } }
        var logp = [Float](repeating: 0, count: Q)
        dmol.forward(logProb: &logp, params: params, x: x, batch: 1, length: Q)
        let total = logp.map { exp(Double($0)) }.reduce(0, +)
        #expect(abs(total - 1) < 1e-4, "total mass \(total)")
    }
}
