import Foundation
import ParawaveCore

/// The discretised mixture of logistics (PixelCNN++), the teacher's output distribution.
///
/// Parameters per sample, layout (B, 3M, T): channels [0, M) mixture logits pi,
/// [M, 2M) means mu, [2M, 3M) log-scales log s (clamped below at `logScaleMin`).
/// Audio x in [-1, 1] is quantised to Q = 2^bits levels with centres -1 + 2i/(Q-1) and
/// half-bin h = 1/(Q-1). With a = (x + h - mu)/s and b = (x - h - mu)/s, component m gives
///   bottom bin (x < -1 + h):  log P = log sigma(a)
///   top bin    (x >  1 - h):  log P = log(1 - sigma(b)) = log sigma(-b)
///   otherwise:                log P = log(sigma(a) - sigma(b))   (in log space)
///   and if that mass is below 1e-5, the density at the centre times 2h:
///                             log P = m - log s - 2 softplus(m) + log 2h,  m = (x - mu)/s
/// and `log p(x) = logsumexp_m(log_softmax(pi)_m + log P_m)`.
public struct DiscretizedMixture: Sendable {
    public let mixtures: Int
    public let bits: Int
    public let logScaleMin: Float

    public init(mixtures: Int, bits: Int = 16, logScaleMin: Float = -7) {
        precondition(mixtures >= 1 && (1...24).contains(bits), "invalid mixture settings")
        self.mixtures = mixtures
        self.bits = bits
        self.logScaleMin = logScaleMin
    }

    /// Half-bin width h = 1 / (2^bits - 1).
    public var halfBin: Float { Float(1 / (pow(2.0, Double(bits)) - 1)) }

    /// Channels of the parameter tensor, 3M.
    public var channels: Int { 3 * mixtures }

    static let massFloor: Float = 1e-5

    /// log P_m(x) for one component and its derivatives with respect to mu and log s
    /// (at the clamped log-scale).
    @inline(__always)
    func component(x: Float, mu: Float, logScale: Float) -> (logP: Float, dMu: Float, dLogScale: Float) {
        let h = halfBin
        let inv = exp(-logScale)
        let c = x - mu
        if x < -1 + h {
            // Bottom bin: log sigma(a); d/da = sigma(-a).
            let a = (c + h) * inv
            let g = StableMath.sigmoid(-a)
            return (StableMath.logSigmoid(a), -inv * g, -a * g)
        }
        if x > 1 - h {
            // Top bin: log sigma(-b); d/db = -sigma(b).
            let b = (c - h) * inv
            let g = StableMath.sigmoid(b)
            return (StableMath.logSigmoid(-b), inv * g, b * g)
        }
        let a = (c + h) * inv, b = (c - h) * inv
        let logMass = StableMath.logSigmoidDifference(a, b)
        if logMass > log(Self.massFloor) {
            // d/da log sigma(a) = sigma(-a); d/db log sigma(-b) = -sigma(b);
            // d/d delta log(1 - e^-delta) = 1 / expm1(delta), delta = a - b = 2h / s.
            let sa = StableMath.sigmoid(-a), sb = StableMath.sigmoid(b)
            let delta = a - b
            return (logMass, inv * (sb - sa), -a * sa + b * sb - delta / expm1(delta))
        }
        // Underflow: density at the centre times 2h.
        let m = c * inv
        let g = 1 - 2 * StableMath.sigmoid(m)
        return (m - logScale - 2 * StableMath.softplus(m) + log(2 * h), -inv * g, -m * g - 1)
    }

    /// logProb (B, T) = log p(x_t | parameters_t); params (B, 3M, T); x (B, T).
    public func forward(logProb: UnsafeMutablePointer<Float>, params: UnsafePointer<Float>, x: UnsafePointer<Float>, batch: Int, length: Int) {
        let M = mixtures, T = length
        Parallel.forEachChunk(batch * T, minimumChunk: 256) { range in
            var terms = [Float](repeating: 0, count: M)
            terms.withUnsafeMutableBufferPointer { terms in
                for i in range {
                    let b = i / T, t = i % T
                    let p = params + b * 3 * M * T + t
                    let logNorm = StableMath.logSumExp(p, count: M, stride: T)
                    for m in 0..<M {
                        let logScale = max(p[(2 * M + m) * T], logScaleMin)
                        terms[m] = p[m * T] - logNorm + component(x: x[i], mu: p[(M + m) * T], logScale: logScale).logP
                    }
                    logProb[i] = StableMath.logSumExp(terms.baseAddress!, count: M)
                }
            }
        }
    }

    /// dParams (B, 3M, T) += dLogProb (B, T) * d log p / d params. Log-scales at or below
    /// the clamp get no gradient, as with PyTorch's clamp in the forward pass.
    public func backward(dParams: UnsafeMutablePointer<Float>, dLogProb: UnsafePointer<Float>, params: UnsafePointer<Float>,
                         x: UnsafePointer<Float>, batch: Int, length: Int) {
        let M = mixtures, T = length
        Parallel.forEachChunk(batch * T, minimumChunk: 256) { range in
            var scratch = [Float](repeating: 0, count: 4 * M)
            scratch.withUnsafeMutableBufferPointer { s in
                let terms = s.baseAddress!, dMu = terms + M, dLogScale = terms + 2 * M, softmax = terms + 3 * M
                for i in range {
                    let b = i / T, t = i % T
                    let p = params + b * 3 * M * T + t
                    let dp = dParams + b * 3 * M * T + t
                    let logNorm = StableMath.logSumExp(p, count: M, stride: T)
                    for m in 0..<M {
                        let logScale = max(p[(2 * M + m) * T], logScaleMin)
                        let c = component(x: x[i], mu: p[(M + m) * T], logScale: logScale)
                        softmax[m] = exp(p[m * T] - logNorm)
                        terms[m] = p[m * T] - logNorm + c.logP
                        dMu[m] = c.dMu
                        dLogScale[m] = p[(2 * M + m) * T] > logScaleMin ? c.dLogScale : 0
                    }
                    let logP = StableMath.logSumExp(terms, count: M)
                    let g = dLogProb[i]
                    for m in 0..<M {
                        // Responsibility r_m = posterior weight of component m.
                        let r = exp(terms[m] - logP)
                        dp[m * T] += g * (r - softmax[m])
                        dp[(M + m) * T] += g * r * dMu[m]
                        dp[(2 * M + m) * T] += g * r * dLogScale[m]
                    }
                }
            }
        }
    }
}
