import Foundation
import ParawaveCore
import ParawaveEngine
import Testing

/// The closed-form Gaussian KL terms: zero at q = p and positive elsewhere, equal to a Monte
/// Carlo estimate of E_q[log q - log p] and of E_q[-log p] from the densities themselves,
/// and every derivative against central differences; clamped log-scales get none.
struct GaussianKLTests {
    @Test func zeroAtEqualityPositiveElsewhere() {
        let same = GaussianKL.terms(muQ: 0.3, logScaleQ: -2, muP: 0.3, logScaleP: -2, logScaleMin: -9)
        #expect(abs(same.kl) < 1e-14)
        var rng = SeededGenerator(seed: 4)
        for _ in 0..<500 {
            let t = GaussianKL.terms(muQ: Double(rng.normal()), logScaleQ: -3 + 3 * rng.uniform(), muP: Double(rng.normal()),
                                     logScaleP: -3 + 3 * rng.uniform(), logScaleMin: -9)
            #expect(t.kl > 0)
        }
    }

    @Test func matchesMonteCarloOverTheDensities() {
        var rng = SeededGenerator(seed: 5)
        for (muQ, lq, muP, lp) in [(0.1, -2.0, 0.15, -1.5), (-0.4, -1.0, 0.3, -2.5), (0.0, -4.0, 0.001, -4.2)] {
            let t = GaussianKL.terms(muQ: muQ, logScaleQ: lq, muP: muP, logScaleP: lp, logScaleMin: -9)
            func logDensity(_ x: Double, _ mu: Double, _ l: Double) -> Double {
                let u = (x - mu) * exp(-l)
                return -0.5 * u * u - l - 0.5 * log(2 * Double.pi)
            }
            let n = 400_000
            var ce = 0.0, ce2 = 0.0, kl = 0.0, kl2 = 0.0
            for _ in 0..<n {
                let x = muQ + exp(lq) * Double(rng.normal())
                let c = -logDensity(x, muP, lp), k = logDensity(x, muQ, lq) + c
                ce += c; ce2 += c * c; kl += k; kl2 += k * k
            }
            ce /= Double(n); kl /= Double(n)
            let ceError = ((ce2 / Double(n) - ce * ce) / Double(n)).squareRoot(), klError = ((kl2 / Double(n) - kl * kl) / Double(n)).squareRoot()
            #expect(abs(t.crossEntropy - ce) < 4 * ceError + 1e-6, "cross-entropy \(t.crossEntropy) vs \(ce) ± \(ceError)")
            #expect(abs(t.kl - kl) < 4 * klError + 1e-6, "KL \(t.kl) vs \(kl) ± \(klError)")
        }
    }

    @Test func derivativesMatchFiniteDifferences() {
        var rng = SeededGenerator(seed: 6)
        let e = 1e-6, lambda = 4.0
        for _ in 0..<200 {
            let v = [Double(rng.normal()) * 0.2, -4 + 3 * rng.uniform(), Double(rng.normal()) * 0.2, -4 + 3 * rng.uniform()]
            func at(_ w: [Double]) -> GaussianKL.Terms {
                GaussianKL.terms(muQ: w[0], logScaleQ: w[1], muP: w[2], logScaleP: w[3], logScaleMin: -9, penaltyWeight: lambda)
            }
            let t = at(v)
            let analytic = [t.dMuQ, t.dLogScaleQ, t.dMuP, t.dLogScaleP], penalty = [0, t.dPenaltyQ, 0, t.dPenaltyP]
            for k in 0..<4 {
                var up = v, down = v
                up[k] += e; down[k] -= e
                let (a, b) = (at(up), at(down))
                let numeric = (a.crossEntropy - b.crossEntropy) / (2 * e), numericPenalty = (a.penalty - b.penalty) / (2 * e)
                #expect(abs(analytic[k] - numeric) <= 1e-6 * max(1, abs(numeric)), "input \(k): \(analytic[k]) vs \(numeric)")
                #expect(abs(penalty[k] - numericPenalty) <= 1e-6 * max(1, abs(numericPenalty)), "penalty input \(k)")
                // The entropy depends on l_q alone, with slope 1.
                let numericEntropy = (a.entropy - b.entropy) / (2 * e)
                #expect(abs(numericEntropy - (k == 1 ? 1 : 0)) < 1e-6)
            }
        }
        let clamped = GaussianKL.terms(muQ: 0, logScaleQ: -12, muP: 0.1, logScaleP: -11, logScaleMin: -9, penaltyWeight: lambda)
        #expect(clamped.dLogScaleQ == 0 && clamped.dLogScaleP == 0 && clamped.dPenaltyQ == 0 && clamped.dPenaltyP == 0 && clamped.dMuQ != 0)
        #expect(clamped.entropy == -9 + GaussianKL.entropyConstant)
    }
}
