import ParawaveCore

/// Central finite differences in Float64, for checking analytic gradients.
public enum GradientCheck {
    /// The largest relative error between `analytic` and the central difference of `loss`
    /// at `point`, over `indices` (default all). Elements where both gradients are below
    /// `1e-4` of the largest analytic magnitude are compared absolutely against that scale,
    /// so tiny gradients do not turn rounding into large relative errors.
    ///
    /// With `richardson`, the difference is extrapolated from steps epsilon and epsilon/2,
    /// (4 D(eps/2) - D(eps)) / 3, which cancels the eps^2 error term: a large step then keeps
    /// a Float32 loss's rounding small without the step's curvature error.
    public static func worstRelativeError(point: [Double], analytic: [Float], indices: [Int]? = nil,
                                          epsilon: Double = 1e-4, richardson: Bool = false,
                                          loss: ([Double]) -> Double) -> (error: Double, index: Int) {
        precondition(point.count == analytic.count, "point and gradient differ in size")
        let scale = max(analytic.map { Double(abs($0)) }.max() ?? 0, 1e-12)
        var worst = 0.0, worstIndex = -1
        var x = point
        for i in indices ?? Array(point.indices) {
            let saved = x[i]
            func difference(_ h: Double) -> Double {
                x[i] = saved + h
                let up = loss(x)
                x[i] = saved - h
                let down = loss(x)
                x[i] = saved
                return (up - down) / (2 * h)
            }
            let numeric = richardson ? (4 * difference(epsilon / 2) - difference(epsilon)) / 3 : difference(epsilon)
            let a = Double(analytic[i])
            let denominator = max(abs(a), abs(numeric), 1e-4 * scale)
            let error = abs(a - numeric) / denominator
            if error > worst { worst = error; worstIndex = i }
        }
        return (worst, worstIndex)
    }

    /// Random values in [-scale, scale] from a seeded generator.
    public static func random(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var g = SeededGenerator(seed: seed)
        return (0..<count).map { _ in (2 * g.uniformOpen() - 1) * scale }
    }

    /// Every index when `count` is small, else `samples` spread evenly plus both ends.
    public static func indices(_ count: Int, samples: Int = 200) -> [Int] {
        if count <= samples { return Array(0..<count) }
        return Array(Set((0..<samples).map { $0 * (count - 1) / (samples - 1) })).sorted()
    }

    /// The largest relative difference from a golden reference, each element against
    /// max(|reference|, 1e-3 x the reference's largest magnitude), so elements near zero are
    /// compared at the tensor's scale; infinity when the sizes differ.
    public static func worstGoldenError(_ ours: [Float], _ reference: [Float]) -> Float {
        guard ours.count == reference.count else { return .infinity }
        let scale = reference.map(abs).max() ?? 0
        var worst: Float = 0
        for (a, b) in zip(ours, reference) { worst = max(worst, abs(a - b) / max(abs(b), 1e-3 * scale, 1e-30)) }
        return worst
    }
}

extension GradientCheck {
    /// Per named block of parameters (`blocks`: name, offset, count), the relative error of
    /// the analytic directional derivative g.v against the Richardson-extrapolated central
    /// difference of `loss` along a unit direction v inside that block: half the analytic
    /// gradient's direction and half a random direction, so a wrong gradient in any element
    /// shows while the signal stays near the block's gradient norm.
    ///
    /// For whole models in Float32 this is the sharper check: one difference measures the
    /// whole block's gradient, so its signal is far above the loss's rounding, which swamps
    /// element-by-element differences.
    public static func worstDirectionalError(blocks: [(name: String, offset: Int, count: Int)], point: [Double], analytic: [Float],
                                             epsilon: Double = 1e-2, seed: UInt64 = 1,
                                             loss: ([Double]) -> Double) -> [String: Double] {
        var generator = SeededGenerator(seed: seed)
        var errors: [String: Double] = [:]
        for block in blocks {
            func unit(_ v: [Double]) -> [Double] {
                let norm = v.map { $0 * $0 }.reduce(0, +).squareRoot()
                return v.map { $0 / max(norm, 1e-30) }
            }
            let random = unit((0..<block.count).map { _ in Double(generator.normal()) })
            let along = unit((0..<block.count).map { Double(analytic[block.offset + $0]) })
            let direction = unit(zip(random, along).map { $0 + $1 })
            var expected = 0.0
            for j in 0..<block.count { expected += Double(analytic[block.offset + j]) * direction[j] }
            func difference(_ h: Double) -> Double {
                var up = point, down = point
                for j in 0..<block.count {
                    up[block.offset + j] += h * direction[j]
                    down[block.offset + j] -= h * direction[j]
                }
                return (loss(up) - loss(down)) / (2 * h)
            }
            let numeric = (4 * difference(epsilon / 2) - difference(epsilon)) / 3
            errors[block.name] = abs(expected - numeric) / max(abs(expected), abs(numeric), 1e-12)
        }
        return errors
    }
}
