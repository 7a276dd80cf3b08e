import Foundation

/// Numerically stable scalar functions used by the distributions, in Float32.
public enum StableMath {
    /// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|).
    @inline(__always)
    public static func softplus(_ x: Float) -> Float { max(x, 0) + log1p(exp(-abs(x))) }

    /// log sigma(x) = -softplus(-x).
    @inline(__always)
    public static func logSigmoid(_ x: Float) -> Float { -softplus(-x) }

    /// sigma(x) = 1 / (1 + e^-x), without overflow for large |x|.
    @inline(__always)
    public static func sigmoid(_ x: Float) -> Float {
        if x >= 0 { return 1 / (1 + exp(-x)) }
        let e = exp(x)
        return e / (1 + e)
    }

    /// log(sigma(a) - sigma(b)) for a > b, in log space:
    /// sigma(a) - sigma(b) = sigma(a) sigma(-b) (1 - e^-(a-b)), so the log is
    /// log sigma(a) + log sigma(-b) + log(-expm1(-(a - b))).
    @inline(__always)
    public static func logSigmoidDifference(_ a: Float, _ b: Float) -> Float {
        logSigmoid(a) + logSigmoid(-b) + log(-expm1(b - a))
    }

    /// log(sum_i e^{x_i}) over `count` values `stride` apart.
    @inline(__always)
    public static func logSumExp(_ x: UnsafePointer<Float>, count: Int, stride: Int = 1) -> Float {
        var top = -Float.infinity
        for i in 0..<count { top = max(top, x[i * stride]) }
        if top == -.infinity { return top }
        var sum: Float = 0
        for i in 0..<count { sum += exp(x[i * stride] - top) }
        return top + log(sum)
    }

    // MARK: The standard normal, in Float64

    /// log(2 pi) / 2.
    public static let halfLogTwoPi = 0.5 * log(2 * Double.pi)

    /// log phi(u), the standard normal's log-density.
    @inline(__always)
    public static func logNormalDensity(_ u: Double) -> Double { -0.5 * u * u - halfLogTwoPi }

    /// log Phi(z), the log of the standard normal's CDF, accurate in both tails: through
    /// erfc down to z = -30, and below that from the asymptotic series
    /// Phi(z) = phi(z)/(-z) (1 - 1/z^2 + 3/z^4 - 15/z^6 + 105/z^8 - ...), whose next term is
    /// under 2e-12 of the sum there.
    public static func logNormalCDF(_ z: Double) -> Double {
        if z > 0 { return log1p(-0.5 * erfc(z / 2.squareRoot())) }
        if z >= -30 { return log(0.5 * erfc(-z / 2.squareRoot())) }
        let w = 1 / (z * z)
        return logNormalDensity(z) - log(-z) + log1p(w * (-1 + w * (3 + w * (-15 + w * 105))))
    }

    /// log(Phi(a) - Phi(b)) for a > b, without cancellation: straddling 0 the two erf terms
    /// add; on one side of 0 the difference is taken in log space on the side where both
    /// CDFs are small (reflecting Phi(a) - Phi(b) = Phi(-b) - Phi(-a) when b >= 0).
    public static func logNormalMass(_ a: Double, _ b: Double) -> Double {
        if b < 0 && a > 0 {
            let r = 1 / 2.squareRoot()
            return log(0.5 * (erf(a * r) - erf(b * r)))
        }
        let (hi, lo) = b >= 0 ? (-b, -a) : (a, b)
        let logHi = logNormalCDF(hi)
        return logHi + log(-expm1(logNormalCDF(lo) - logHi))
    }
}
