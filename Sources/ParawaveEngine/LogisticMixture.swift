import Foundation
import ParawaveCore

/// The continuous mixture of logistics and its sampler, sharing the discretised mixture's
/// parameter layout (B, 3M, T): logits, means, log-scales (clamped below at `logScaleMin`).
///
/// Density: `log p(x) = logsumexp_m(log_softmax(pi)_m + m_m - log s_m - 2 softplus(m_m))`
/// with `m_m = (x - mu_m) / s_m`. Distillation scores the student's samples with it; its
/// gradient reaches x as well as the parameters. A single logistic is M = 1.
public struct LogisticMixture: Sendable {
    public let mixtures: Int
    public let logScaleMin: Float
    /// Eight time steps at a time on vectors (the default); false runs every step on the
    /// scalar path, the reference that tests and `parawave-bench mixture` compare against.
    public let vectorised: Bool

    public init(mixtures: Int, logScaleMin: Float = -7, vectorised: Bool = true) {
        precondition(mixtures >= 1, "a mixture needs a component")
        self.mixtures = mixtures
        self.logScaleMin = logScaleMin
        self.vectorised = vectorised
    }

    /// logDensity (B, T) = log p(x (B, T) | params (B, 3M, T)). Eight time steps of a row at
    /// a time on 8-lane vectors (`VectorMath`), the rest one by one.
    public func forward(logDensity: UnsafeMutablePointer<Float>, params: UnsafePointer<Float>, x: UnsafePointer<Float>, batch: Int, length T: Int) {
        let M = mixtures
        Parallel.forEachChunk(batch * T, minimumChunk: 256) { range in
            var terms = [Float](repeating: 0, count: M)
            var vectors = [VectorMath.Vector](repeating: .zero, count: 3 * M)
            terms.withUnsafeMutableBufferPointer { terms in
                var i = range.lowerBound
                while i < range.upperBound {
                    if vectorised && i % T + 8 <= T && i + 8 <= range.upperBound {
                        let p = params + (i / T) * 3 * M * T + i % T
                        VectorMath.store(vectorLogDensity(p, stride: T, x: VectorMath.load(x + i), terms: &vectors).density, logDensity + i)
                        i += 8
                        continue
                    }
                    let p = params + (i / T) * 3 * M * T + i % T
                    let logNorm = StableMath.logSumExp(p, count: M, stride: T)
                    for k in 0..<M {
                        let logScale = max(p[(2 * M + k) * T], logScaleMin)
                        let m = (x[i] - p[(M + k) * T]) * exp(-logScale)
                        terms[k] = p[k * T] - logNorm + m - logScale - 2 * StableMath.softplus(m)
                    }
                    logDensity[i] = StableMath.logSumExp(terms.baseAddress!, count: M)
                    i += 1
                }
            }
        }
    }

    /// The log-density of 8 consecutive time steps whose parameters start at `p`, the
    /// components `stride` apart, and the log-normaliser of the weights. `terms` (3M vectors)
    /// receives each component's log-weighted density, then its standardised sample m, then
    /// its 1 / s, which the backward pass reuses.
    @inline(__always)
    func vectorLogDensity(_ p: UnsafePointer<Float>, stride T: Int, x: VectorMath.Vector,
                          terms: inout [VectorMath.Vector]) -> (density: VectorMath.Vector, logNorm: VectorMath.Vector) {
        let M = mixtures
        let logNorm = Self.logSumExp(M) { VectorMath.load(p + $0 * T) }
        let floor = VectorMath.Vector(repeating: logScaleMin)
        for k in 0..<M {
            let raw = VectorMath.load(p + (2 * M + k) * T)
            let logScale = raw.replacing(with: floor, where: raw .< floor)
            let inverse = VectorMath.exp(-logScale)
            let m = (x - VectorMath.load(p + (M + k) * T)) * inverse
            terms[k] = VectorMath.load(p + k * T) - logNorm + m - logScale - 2 * VectorMath.softplus(m)
            terms[M + k] = m
            terms[2 * M + k] = inverse
        }
        return (Self.logSumExp(M) { terms[$0] }, logNorm)
    }

    /// log sum_k e^{v_k} lane by lane over `count` vectors.
    @inline(__always)
    static func logSumExp(_ count: Int, _ value: (Int) -> VectorMath.Vector) -> VectorMath.Vector {
        var top = value(0)
        for k in 1..<max(count, 1) { let v = value(k); top.replace(with: v, where: v .> top) }
        var sum = VectorMath.Vector(repeating: 0)
        for k in 0..<count { sum += VectorMath.exp(value(k) - top) }
        return top + VectorMath.log(sum)
    }

    /// dParams (B, 3M, T) and dX (B, T) += dLogDensity * gradients. With g = 1 - 2 sigma(m):
    /// d/dx = r g / s, d/dmu = -r g / s, d/dlog s = r (-g m - 1), d/dpi = r - softmax(pi),
    /// r the component's responsibility. Log-scales at or below the clamp get no gradient.
    public func backward(dParams: UnsafeMutablePointer<Float>?, dX: UnsafeMutablePointer<Float>?, dLogDensity: UnsafePointer<Float>,
                         params: UnsafePointer<Float>, x: UnsafePointer<Float>, batch: Int, length T: Int) {
        let M = mixtures
        Parallel.forEachChunk(batch * T, minimumChunk: 256) { range in
            var scratch = [Float](repeating: 0, count: 5 * M)
            var vectors = [VectorMath.Vector](repeating: .zero, count: 3 * M)
            scratch.withUnsafeMutableBufferPointer { s in
                let terms = s.baseAddress!, gate = terms + M, standard = terms + 2 * M, softmax = terms + 3 * M, inverse = terms + 4 * M
                var i = range.lowerBound
                while i < range.upperBound {
                    if vectorised && i % T + 8 <= T && i + 8 <= range.upperBound {
                        let offset = (i / T) * 3 * M * T + i % T
                        let dx = vectorBackward(params + offset, stride: T, x: VectorMath.load(x + i), g: VectorMath.load(dLogDensity + i),
                                                dp: dParams.map { $0 + offset }, terms: &vectors)
                        if let dX { VectorMath.store(VectorMath.load(dX + i) + dx, dX + i) }
                        i += 8
                        continue
                    }
                    let offset = (i / T) * 3 * M * T + i % T
                    let p = params + offset
                    let logNorm = StableMath.logSumExp(p, count: M, stride: T)
                    for k in 0..<M {
                        let logScale = max(p[(2 * M + k) * T], logScaleMin)
                        let inv = exp(-logScale)
                        let m = (x[i] - p[(M + k) * T]) * inv
                        softmax[k] = exp(p[k * T] - logNorm)
                        terms[k] = p[k * T] - logNorm + m - logScale - 2 * StableMath.softplus(m)
                        gate[k] = 1 - 2 * StableMath.sigmoid(m)
                        inverse[k] = inv
                        standard[k] = m
                    }
                    let total = StableMath.logSumExp(terms, count: M)
                    let g = dLogDensity[i]
                    let dp = dParams.map { $0 + offset }
                    var dx: Float = 0
                    for k in 0..<M {
                        let r = exp(terms[k] - total)
                        dx += r * gate[k] * inverse[k]
                        if let dp {
                            dp[k * T] += g * (r - softmax[k])
                            dp[(M + k) * T] -= g * r * gate[k] * inverse[k]
                            if p[(2 * M + k) * T] > logScaleMin {
                                dp[(2 * M + k) * T] += g * r * (-gate[k] * standard[k] - 1)
                            }
                        }
                    }
                    dX?[i] += g * dx
                    i += 1
                }
            }
        }
    }

    /// The backward pass of 8 consecutive time steps (as `vectorLogDensity`): adds into `dp`
    /// and returns g * dlog p / dx.
    @inline(__always)
    func vectorBackward(_ p: UnsafePointer<Float>, stride T: Int, x: VectorMath.Vector, g: VectorMath.Vector,
                        dp: UnsafeMutablePointer<Float>?, terms: inout [VectorMath.Vector]) -> VectorMath.Vector {
        typealias V = VectorMath.Vector
        let M = mixtures
        let (total, logNorm) = vectorLogDensity(p, stride: T, x: x, terms: &terms)
        let floor = V(repeating: logScaleMin)
        var dx = V(repeating: 0)
        for k in 0..<M {
            let m = terms[M + k], inverse = terms[2 * M + k]
            let gate = 1 - 2 * VectorMath.sigmoid(m)
            let r = VectorMath.exp(terms[k] - total)
            dx += r * gate * inverse
            guard let dp else { continue }
            let softmax = VectorMath.exp(VectorMath.load(p + k * T) - logNorm)
            let weight = dp + k * T, mean = dp + (M + k) * T, scale = dp + (2 * M + k) * T
            VectorMath.store(VectorMath.load(weight) + g * (r - softmax), weight)
            VectorMath.store(VectorMath.load(mean) - g * r * gate * inverse, mean)
            let dScale = (g * r * (-gate * m - 1)).replacing(with: 0, where: .!(VectorMath.load(p + (2 * M + k) * T) .> floor))
            VectorMath.store(VectorMath.load(scale) + dScale, scale)
        }
        return g * dx
    }

    /// Draws x (B, T): a component by Gumbel-max on the logits, then
    /// `x = mu + s * temperature * (log u - log(1 - u))`, u ~ U(1e-5, 1 - 1e-5), clipped to [-1, 1].
    public func sample(out: UnsafeMutablePointer<Float>, params: UnsafePointer<Float>, batch: Int, length T: Int,
                       temperature: Float = 1, generator: inout SeededGenerator) {
        let M = mixtures
        for i in 0..<(batch * T) {
            let p = params + (i / T) * 3 * M * T + i % T
            out[i] = Self.draw(p, stride: T, mixtures: M, logScaleMin: logScaleMin, temperature: temperature, generator: &generator)
        }
    }

    /// One draw from the mixture whose parameters are `stride` apart starting at `p`, clipped
    /// to [-1, 1] unless `clip` is false.
    @inline(__always)
    public static func draw(_ p: UnsafePointer<Float>, stride T: Int, mixtures M: Int, logScaleMin: Float,
                            temperature: Float, clip: Bool = true, generator: inout SeededGenerator) -> Float {
        var best = 0
        if M > 1 {
            var top = -Float.infinity
            for k in 0..<M {
                let u = clampedUniform(&generator)
                let score = p[k * T] - log(-log(u))
                if score > top { top = score; best = k }
            }
        }
        let u = clampedUniform(&generator)
        let scale = exp(max(p[(2 * M + best) * T], logScaleMin)) * temperature
        let x = p[(M + best) * T] + scale * (log(u) - log(1 - u))
        return clip ? max(-1, min(1, x)) : x
    }

    @inline(__always)
    static func clampedUniform(_ generator: inout SeededGenerator) -> Float {
        min(max(generator.uniformOpen(), 1e-5), 1 - 1e-5)
    }

    /// Entropy of a single logistic with log-scale `logScale`: log s + 2 (nats).
    @inline(__always)
    public static func logisticEntropy(logScale: Float) -> Float { logScale + 2 }
}
