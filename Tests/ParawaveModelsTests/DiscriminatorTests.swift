import Foundation
import ParawaveCore
import ParawaveEngine
import ParawaveModels
import ParawaveTestSupport
import Testing

struct DiscriminatorTests {
    /// The forward pass against the definition written out sample by sample in Double:
    /// centred dilated convolutions (dilations 1, 1, 2), leaky ReLU 0.2, zeros outside.
    @Test func forwardMatchesTheDefinition() {
        let config = DiscriminatorConfig(layers: 4, channels: 3, kernelSize: 3)
        let d = Discriminator(config: config)
        d.initialise(seed: 5)
        let B = 2, T = 13
        let x = GradientCheck.random(B * T, seed: 6)
        let a = d.makeActivations(batch: B, length: T)
        d.forward(a, x: x)
        let values = d.store.valueArray.map(Double.init)
        var offset = 0
        var h: [[Double]] = (0..<B).map { b in (0..<T).map { Double(x[b * T + $0]) } }   // (B, Cin * T)
        var cin = 1
        for l in 0..<config.layers {
            let cout = l == config.layers - 1 ? 1 : config.channels, K = config.kernelSize, dil = config.dilation(l)
            let w = Array(values[offset..<(offset + K * cout * cin)])
            offset += K * cout * cin
            let bias = Array(values[offset..<(offset + cout)])
            offset += cout
            h = h.map { input in
                var out = [Double](repeating: 0, count: cout * T)
                for o in 0..<cout {
                    for t in 0..<T {
                        var s = bias[o]
                        for k in 0..<K {
                            let src = t + (k - (K - 1) / 2) * dil
                            guard src >= 0 && src < T else { continue }
                            for i in 0..<cin { s += w[(k * cout + o) * cin + i] * input[i * T + src] }
                        }
                        out[o * T + t] = l == config.layers - 1 ? s : (s > 0 ? s : 0.2 * s)
                    }
                }
                return out
            }
            cin = cout
        }
        let expected = h.flatMap { $0 }
        #expect(zip(a.logits, expected).map { abs(Double($0) - $1) }.max()! < 1e-5)
        #expect(config.reach == 1 + 1 + 2 + 3)
    }

    /// Every parameter's gradient and the input's, of L = least-squares loss against 1 over a
    /// mask, against central finite differences (Richardson, step 1e-2). With slope 1 the
    /// network is smooth and the bound is 1e-3; with the leaky ReLU's 0.2 a step can carry a
    /// pre-activation across the kink (measured worst: 3.8e-3, on a bias, which moves every
    /// sample's), so the bound is 1e-2. A wrong gradient term errs by order 1.
    @Test(arguments: [(Float(1), 1e-3), (Float(0.2), 1e-2)])
    func gradientsMatchFiniteDifferences(_ slope: Float, _ bound: Double) {
        let d = Discriminator(config: DiscriminatorConfig(layers: 4, channels: 5, kernelSize: 3, negativeSlope: slope))
        d.initialise(seed: 8)
        let B = 2, T = 11, n = B * T
        var x = GradientCheck.random(n, seed: 9)
        let mask: [Float] = (0..<n).map { $0 % 7 == 3 ? 0 : 1 }
        let a = d.makeActivations(batch: B, length: T)
        var dLogits = [Float](repeating: 0, count: n)
        func loss() -> Double {
            d.forward(a, x: x)
            return mask.withUnsafeBufferPointer { Discriminator.leastSquares(a.logits, target: 1, mask: $0.baseAddress, weight: 1, dLogits: &dLogits) }
        }
        _ = loss()
        d.store.zeroGradients()
        d.backward(a, dLogits: dLogits, x: x, parameters: true, input: true)
        let dInput = a.dInput
        let point = d.store.valueArray.map(Double.init)
        let errors = GradientCheck.worstDirectionalError(blocks: d.store.entries.map { ($0.name, $0.offset, $0.count) }, point: point,
                                                         analytic: d.store.gradientArray, epsilon: 1e-2) { values in
            d.store.setValues(values.map(Float.init))
            return loss()
        }
        d.store.setValues(point.map(Float.init))
        #expect(errors.values.max()! < bound, "\(errors.sorted { $0.value > $1.value }.prefix(3))")
        // The input's gradient along a random direction.
        let direction = GradientCheck.random(n, seed: 10)
        let original = x
        func along(_ h: Double) -> Double {
            x = zip(original, direction).map { $0 + Float(h) * $1 }
            return loss()
        }
        let h = 1e-2
        let numeric = (8 * (along(h / 2) - along(-h / 2)) - (along(h) - along(-h))) / (6 * h)
        x = original
        let analytic = zip(dInput, direction).map { Double($0) * Double($1) }.reduce(0, +)
        #expect(abs(numeric - analytic) <= bound * max(1, abs(analytic)), "input: \(numeric) vs \(analytic)")
        // Without the parameters' gradient the store is left alone.
        d.store.zeroGradients()
        _ = loss()
        d.backward(a, dLogits: dLogits, x: x, parameters: false, input: true)
        #expect(d.store.gradientArray.allSatisfy { $0 == 0 } && a.dInput == dInput)
    }

    /// Least squares: (D - target)^2 averaged over the unmasked samples, gradient 2 (D - target) w / count.
    @Test func leastSquaresLoss() {
        var d = [Float](repeating: 0, count: 4)
        let mask: [Float] = [1, 1, 0, 1]
        let value = mask.withUnsafeBufferPointer { Discriminator.leastSquares([0.5, -1, 7, 2], target: 1, mask: $0.baseAddress, weight: 3, dLogits: &d) }
        #expect(abs(value - (0.25 + 4 + 1) / 3) < 1e-12)
        #expect(d == [-1, -4, 0, 2])
        #expect(DiscriminatorConfig(kernelSize: 4).problems().contains { $0.contains("odd") })
    }
}
