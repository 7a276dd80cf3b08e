import Foundation
import ParawaveCore

/// The discretised single Gaussian (ClariNet's teacher output), on the same grid as
/// `DiscretizedMixture`.
///
/// Parameters per sample, layout (B, 2, T): channel 0 the mean mu, channel 1 the log-scale
/// log s (the standard deviation's log, clamped below at `logScaleMin`). Audio x in [-1, 1]
/// is quantised to Q = 2^bits levels with centres -1 + 2i/(Q-1) and half-bin h = 1/(Q-1).
/// With a = (x + h - mu)/s and b = (x - h - mu)/s:
///   bottom bin (x < -1 + h):  log P = log Phi(a)
///   top bin    (x >  1 - h):  log P = log Phi(-b)
///   otherwise:                log P = log(Phi(a) - Phi(b))
/// Every case is the bin's exact mass (no density fallback), evaluated in Float64 through
/// erfc and log-space differences (`StableMath.logNormalMass`), so the reported bits stay
/// exact even where s is smaller than a bin.
public struct DiscretizedGaussian: Sendable {
    public let bits: Int
    public let logScaleMin: Float
    /// Half-bin width h = 1 / (2^bits - 1).
    public let halfBin: Double

    public init(bits: Int = 16, logScaleMin: Float = -7) {
        precondition((1...24).contains(bits), "invalid bit depth \(bits)")
        self.bits = bits
        self.logScaleMin = logScaleMin
        halfBin = 1 / (pow(2.0, Double(bits)) - 1)
    }

    /// log P(x) and its derivatives with respect to mu and log s (at the clamped log-scale).
    @inline(__always)
    public func bin(x: Double, mu: Double, logScale: Double) -> (logP: Double, dMu: Double, dLogScale: Double) {
        let h = halfBin, inv = exp(-logScale)
        let a = (x + h - mu) * inv, b = (x - h - mu) * inv
        if x < -1 + h {
            // d/da log Phi(a) = phi(a) / Phi(a).
            let logP = StableMath.logNormalCDF(a)
            let lambda = exp(StableMath.logNormalDensity(a) - logP)
            return (logP, -lambda * inv, -a * lambda)
        }
        if x > 1 - h {
            // d/db log Phi(-b) = -phi(b) / Phi(-b).
            let logP = StableMath.logNormalCDF(-b)
            let kappa = exp(StableMath.logNormalDensity(b) - logP)
            return (logP, kappa * inv, b * kappa)
        }
        let logP = StableMath.logNormalMass(a, b)
        let ra = exp(StableMath.logNormalDensity(a) - logP), rb = exp(StableMath.logNormalDensity(b) - logP)
        return (logP, (rb - ra) * inv, b * rb - a * ra)
    }

    /// logProb (B, T) = log P(x_t | mu_t, log s_t); params (B, 2, T); x (B, T).
    public func forward(logProb: UnsafeMutablePointer<Float>, params: UnsafePointer<Float>, x: UnsafePointer<Float>, batch: Int, length T: Int) {
        Parallel.forEachChunk(batch * T, minimumChunk: 256) { range in
            for i in range {
                let p = params + (i / T) * 2 * T + i % T
                let logScale = max(p[T], logScaleMin)
                logProb[i] = Float(bin(x: Double(x[i]), mu: Double(p[0]), logScale: Double(logScale)).logP)
            }
        }
    }

    /// dParams (B, 2, T) += dLogProb (B, T) * d log P / d params. Log-scales at or below the
    /// clamp get no gradient, as with a clamp in the forward pass.
    public func backward(dParams: UnsafeMutablePointer<Float>, dLogProb: UnsafePointer<Float>, params: UnsafePointer<Float>,
                         x: UnsafePointer<Float>, batch: Int, length T: Int) {
        Parallel.forEachChunk(batch * T, minimumChunk: 256) { range in
            for i in range {
                let offset = (i / T) * 2 * T + i % T
                let p = params + offset, dp = dParams + offset
                let raw = p[T], logScale = max(raw, logScaleMin)
                let d = bin(x: Double(x[i]), mu: Double(p[0]), logScale: Double(logScale))
                let g = Double(dLogProb[i])
                dp[0] += Float(g * d.dMu)
                if raw > logScaleMin { dp[T] += Float(g * d.dLogScale) }
            }
        }
    }

    /// One draw x = mu + e^(max(log s, min)) * temperature * n, n ~ N(0, 1), from the
    /// parameters at `p` (mean) and `p + stride` (log-scale); clipped to [-1, 1] unless
    /// `clip` is false (a generator on linear prediction continues from the unclipped draw).
    public static func draw(_ p: UnsafePointer<Float>, stride T: Int, logScaleMin: Float, temperature: Float, clip: Bool = true,
                            generator: inout SeededGenerator) -> Float {
        let x = p[0] + exp(max(p[T], logScaleMin)) * temperature * generator.normal()
        return clip ? max(-1, min(1, x)) : x
    }
}
