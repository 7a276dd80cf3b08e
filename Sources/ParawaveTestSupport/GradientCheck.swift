import ParawaveCore

/// Central finite differences in Float64, for checking analytic gradients.
public enum GradientCheck {
    /// The largest relative error between `analytic` and the central difference of `loss`
    /// at `point`, over `indices` (default all). Elements where both gradients are below
    /// `1e-4` of the largest analytic magnitude are compared absolutely against that scale,
    /// so tiny gradients do not turn rounding into large relative errors.
    public static func worstRelativeError(point: [Double], analytic: [Float], indices: [Int]? = nil,
                                          epsilon: Double = 1e-4, loss: ([Double]) -> Double) -> (error: Double, index: Int) {
        precondition(point.count == analytic.count, "point and gradient differ in size")
        let scale = max(analytic.map { Double(abs($0)) }.max() ?? 0, 1e-12)
        var worst = 0.0, worstIndex = -1
        var x = point
        for i in indices ?? Array(point.indices) {
            let saved = x[i]
            x[i] = saved + epsilon
            let up = loss(x)
            x[i] = saved - epsilon
            let down = loss(x)
            x[i] = saved
            let numeric = (up - down) / (2 * epsilon)
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
