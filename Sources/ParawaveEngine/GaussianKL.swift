import Foundation

/// The closed-form terms of the KL between two Gaussians per time step (ClariNet's
/// distillation of a Gaussian IAF student q from a single-Gaussian teacher p), in Float64.
///
/// With the log-scales clamped below at `logScaleMin` (l_q = max(l_q, min), the same for
/// l_p), d = mu_q - mu_p, rho = e^(2 (l_q - l_p)) and u^2 = d^2 e^(-2 l_p):
///   cross-entropy  H(q, p) = l_p + log(2 pi)/2 + rho/2 + u^2/2
///   entropy        H(q)    = l_q + log(2 pi e)/2
///   KL(q || p)             = H(q, p) - H(q) = l_p - l_q + (rho + u^2 - 1)/2
///   penalty        lambda (l_q - l_p)^2 (ClariNet's regulariser of the log-scales, lambda 4)
/// and the cross-entropy's and the penalty's derivatives with respect to all four inputs
/// (a clamped log-scale gets none).
public enum GaussianKL {
    /// The entropy's constant per sample, log(2 pi e)/2.
    public static let entropyConstant = StableMath.halfLogTwoPi + 0.5

    public struct Terms: Sendable {
        public var crossEntropy = 0.0, entropy = 0.0, penalty = 0.0
        /// d H(q, p) / d (mu_q, l_q, mu_p, l_p).
        public var dMuQ = 0.0, dLogScaleQ = 0.0, dMuP = 0.0, dLogScaleP = 0.0
        /// d penalty / d l_q; d penalty / d l_p.
        public var dPenaltyQ = 0.0, dPenaltyP = 0.0
        public var kl: Double { crossEntropy - entropy }
    }

    @inline(__always)
    public static func terms(muQ: Double, logScaleQ: Double, muP: Double, logScaleP: Double, logScaleMin: Double, penaltyWeight: Double = 0) -> Terms {
        let lq = max(logScaleQ, logScaleMin), lp = max(logScaleP, logScaleMin)
        let freeQ = logScaleQ > logScaleMin, freeP = logScaleP > logScaleMin
        let d = muQ - muP, invVarianceP = exp(-2 * lp)
        let rho = exp(2 * (lq - lp)), u2 = d * d * invVarianceP
        var t = Terms()
        t.crossEntropy = lp + StableMath.halfLogTwoPi + 0.5 * (rho + u2)
        t.entropy = lq + entropyConstant
        t.dMuQ = d * invVarianceP
        t.dMuP = -t.dMuQ
        t.dLogScaleQ = freeQ ? rho : 0
        t.dLogScaleP = freeP ? 1 - rho - u2 : 0
        if penaltyWeight != 0 {
            let gap = lq - lp
            t.penalty = penaltyWeight * gap * gap
            t.dPenaltyQ = freeQ ? 2 * penaltyWeight * gap : 0
            t.dPenaltyP = freeP ? -2 * penaltyWeight * gap : 0
        }
        return t
    }
}
