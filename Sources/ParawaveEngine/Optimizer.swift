import Foundation

/// Learning-rate schedules.
public enum LearningRateSchedule: Codable, Equatable, Sendable {
    /// The base rate throughout.
    case constant
    /// Multiplied by `factor` every `every` steps.
    case step(every: Int, factor: Double)
    /// Linear warm-up from 0 over `warmup` steps, then half a cosine down to `floor` x base at `total`.
    case warmupCosine(warmup: Int, total: Int, floor: Double)

    /// The rate at 1-based `step`.
    public func rate(base: Double, step: Int) -> Double {
        switch self {
        case .constant:
            return base
        case .step(let every, let factor):
            return base * pow(factor, Double((step - 1) / max(every, 1)))
        case .warmupCosine(let warmup, let total, let floor):
            if step <= warmup { return base * Double(step) / Double(max(warmup, 1)) }
            let progress = min(1, Double(step - warmup) / Double(max(total - warmup, 1)))
            return base * (floor + (1 - floor) * 0.5 * (1 + cos(Double.pi * progress)))
        }
    }
}

/// A contiguous range of a store's parameters that the optimizer treats as one: clipped by its
/// own gradient norm, or frozen (never updated). PyTorch's parameter groups.
public struct ParameterGroup: Equatable, Sendable {
    public var range: Range<Int>
    /// Gradient-norm clip of this group alone; 0 disables clipping.
    public var clipNorm: Double
    /// A frozen group keeps its values: its moments stay zero and its EMA its value.
    public var frozen: Bool

    public init(range: Range<Int>, clipNorm: Double = 0, frozen: Bool = false) {
        self.range = range
        self.clipNorm = clipNorm
        self.frozen = frozen
    }
}

/// Adam (Kingma & Ba) with bias correction over a `ParameterStore`'s flat buffers, with
/// optional gradient-norm clipping per parameter group and a Polyak (exponential moving)
/// average of the weights, which is what gets rendered with.
///
///   g <- g * min(1, clip / ||g||)    (||g|| over the group)
///   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
///   w <- w - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
///   ema <- d_t * ema + (1 - d_t) * w,  d_t = min(decay, (1 + t) / (10 + t))
///
/// The ramp on the EMA decay (as TensorFlow's ExponentialMovingAverage with num_updates) keeps
/// a short run's average from being dominated by the initial weights.
public final class Adam: @unchecked Sendable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public var emaDecay: Float
    /// The groups, disjoint and covering the store; the first is the model's main one.
    public let groups: [ParameterGroup]
    /// First and second moments and the EMA weights, each the store's layout.
    public private(set) var m: [Float]
    public private(set) var v: [Float]
    public var ema: [Float]
    /// Steps taken so far.
    public private(set) var step = 0
    /// Each group's gradient norm before clipping at the last update.
    public private(set) var lastNorms: [Double]

    /// One group of every parameter clipped at `clipNorm` (0: no clipping), or `groups`.
    public init(store: ParameterStore, clipNorm: Double = 0, emaDecay: Float = 0.9999, groups: [ParameterGroup]? = nil) {
        self.emaDecay = emaDecay
        let groups = groups ?? [ParameterGroup(range: 0..<store.count, clipNorm: clipNorm)]
        precondition(groups.map(\.range.count).reduce(0, +) == store.count
                     && zip(groups, groups.dropFirst()).allSatisfy { $0.range.upperBound == $1.range.lowerBound }
                     && groups.first?.range.lowerBound == 0, "parameter groups must cover the store in order")
        self.groups = groups
        m = [Float](repeating: 0, count: store.count)
        v = m
        ema = store.valueArray
        lastNorms = [Double](repeating: 0, count: groups.count)
    }

    /// Restores moments, EMA and step (from a checkpoint).
    public func restore(m: [Float], v: [Float], ema: [Float], step: Int) {
        precondition(m.count == self.m.count && v.count == self.v.count && ema.count == self.ema.count, "optimizer state size mismatch")
        self.m = m
        self.v = v
        self.ema = ema
        self.step = step
    }

    /// The EMA decay used at 1-based `step`.
    public static func emaDecay(_ decay: Float, step: Int) -> Float { min(decay, (1 + Float(step)) / (10 + Float(step))) }

    /// One update with learning rate `lr`; returns the first group's gradient norm before clipping.
    @discardableResult
    public func update(_ store: ParameterStore, learningRate lr: Double) -> Double {
        precondition(store.count == m.count, "the store changed size")
        step += 1
        let c1 = 1 - pow(beta1, Float(step)), c2 = 1 - pow(beta2, Float(step))
        let rate = Float(lr)
        let (b1, b2, eps) = (beta1, beta2, epsilon)
        let decay = Self.emaDecay(emaDecay, step: step)
        let w = store.values, g = store.gradients
        for (index, group) in groups.enumerated() where !group.frozen {
            var sum = 0.0
            for i in group.range { sum += Double(g[i]) * Double(g[i]) }
            let norm = sum.squareRoot()
            lastNorms[index] = norm
            let clip: Float = group.clipNorm > 0 && norm > group.clipNorm ? Float(group.clipNorm / norm) : 1
            m.withUnsafeMutableBufferPointer { m in
                v.withUnsafeMutableBufferPointer { v in
                    ema.withUnsafeMutableBufferPointer { e in
                        for i in group.range {
                            let gi = g[i] * clip
                            m[i] = b1 * m[i] + (1 - b1) * gi
                            v[i] = b2 * v[i] + (1 - b2) * gi * gi
                            w[i] -= rate * (m[i] / c1) / ((v[i] / c2).squareRoot() + eps)
                            e[i] = decay * e[i] + (1 - decay) * w[i]
                        }
                    }
                }
            }
        }
        return lastNorms[0]
    }
}
