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
}
