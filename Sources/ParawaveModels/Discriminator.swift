import Foundation
import ParawaveCore
import ParawaveEngine

/// The shape of a waveform discriminator.
public struct DiscriminatorConfig: Codable, Equatable, Sendable {
    /// Convolutions in all, the last one giving the logit.
    public var layers: Int
    public var channels: Int
    public var kernelSize: Int
    /// The leaky ReLU's slope below zero.
    public var negativeSlope: Float

    public init(layers: Int = 10, channels: Int = 64, kernelSize: Int = 3, negativeSlope: Float = 0.2) {
        self.layers = layers
        self.channels = channels
        self.kernelSize = kernelSize
        self.negativeSlope = negativeSlope
    }

    /// Layer l's dilation: 1 for the first, then l (Parallel WaveGAN's linear growth).
    public func dilation(_ l: Int) -> Int { max(1, l) }

    /// Samples on each side that one logit sees.
    public var reach: Int { (0..<layers).map { dilation($0) * (kernelSize - 1) / 2 }.reduce(0, +) }

    public func problems() -> [String] {
        var out: [String] = []
        if !(2...64).contains(layers) { out.append("discriminator layers \(layers) is outside 2...64") }
        if !(1...1024).contains(channels) { out.append("discriminator channels \(channels) is outside 1...1024") }
        if kernelSize < 1 || kernelSize > 31 || kernelSize % 2 == 0 { out.append("discriminator kernel size \(kernelSize) must be odd, 1...31") }
        if !(0...1).contains(negativeSlope) { out.append("discriminator slope \(negativeSlope) is outside 0...1") }
        return out
    }
}

/// A non-causal dilated-convolution discriminator over waveforms (Parallel WaveGAN; Yamamoto
/// et al. 2019 used it beside probability density distillation), which gives every sample
/// a logit from the samples around it:
///
///   h_0 = lrelu(conv_0(x)),   h_l = lrelu(conv_l(h_(l-1))) for l = 1 ... L-2,   D(x) = conv_(L-1)(h_(L-2))
///
/// each conv of kernel K, centred, dilation 1, 1, 2, ..., L-2, the hidden ones `channels`
/// wide, the last one to one channel. Trained with the least-squares GAN losses
/// (`leastSquares`). It has its own parameter store, so its own optimizer.
public final class Discriminator: @unchecked Sendable {
    public let config: DiscriminatorConfig
    public let store = ParameterStore()
    let convolutions: [Conv1d]
    let weights: [ParameterStore.Entry], biases: [ParameterStore.Entry]

    public init(config: DiscriminatorConfig) {
        precondition(config.problems().isEmpty, "invalid discriminator: \(config.problems())")
        self.config = config
        let L = config.layers, C = config.channels, K = config.kernelSize
        convolutions = (0..<L).map { l in
            let d = config.dilation(l)
            return Conv1d(inputChannels: l == 0 ? 1 : C, outputChannels: l == L - 1 ? 1 : C, kernelSize: K, dilation: d, padding: (K - 1) / 2 * d)
        }
        var w: [ParameterStore.Entry] = [], b: [ParameterStore.Entry] = []
        for (l, conv) in convolutions.enumerated() {
            w.append(store.add("discriminator.\(l).weight", shape: [K, conv.outputChannels, conv.inputChannels]))
            b.append(store.add("discriminator.\(l).bias", shape: [conv.outputChannels]))
        }
        weights = w
        biases = b
    }

    /// PyTorch's default uniform bound 1/sqrt(Cin K) for every weight and bias.
    public func initialise(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        for (l, conv) in convolutions.enumerated() {
            let bound = 1 / Float(conv.inputChannels * conv.kernelSize).squareRoot()
            store.initUniform(weights[l], bound: bound, generator: &generator)
            store.initUniform(biases[l], bound: bound, generator: &generator)
        }
    }

    /// Buffers for `batch` waveforms of `length` samples.
    public final class Activations: @unchecked Sendable {
        public let batch: Int, length: Int
        /// Each hidden layer's pre-activation and output (B, C, T); the logits (B, T).
        var pre: [[Float]], h: [[Float]]
        public internal(set) var logits: [Float]
        /// Gradient scratch (B, C, T) and the gradient of the input (B, T).
        var dH: [Float], dPre: [Float]
        public internal(set) var dInput: [Float]

        init(discriminator: Discriminator, batch: Int, length: Int) {
            self.batch = batch
            self.length = length
            let n = batch * discriminator.config.channels * length
            pre = [[Float]](repeating: [Float](repeating: 0, count: n), count: discriminator.config.layers - 1)
            h = pre
            logits = [Float](repeating: 0, count: batch * length)
            dH = [Float](repeating: 0, count: n)
            dPre = dH
            dInput = logits
        }
    }

    public func makeActivations(batch: Int, length: Int) -> Activations {
        Activations(discriminator: self, batch: batch, length: length)
    }

    /// a.logits (B, T) = D(x), x (B, T).
    public func forward(_ a: Activations, x: UnsafePointer<Float>) {
        let B = a.batch, T = a.length, L = config.layers, slope = config.negativeSlope
        let w = { (e: ParameterStore.Entry) in UnsafePointer(self.store.value(e)) }
        for l in 0..<(L - 1) {
            if l == 0 {
                convolutions[0].forward(out: &a.pre[0], inp: x, weight: w(weights[0]), bias: w(biases[0]), batch: B, length: T)
            } else {
                convolutions[l].forward(out: &a.pre[l], inp: a.h[l - 1], weight: w(weights[l]), bias: w(biases[l]), batch: B, length: T)
            }
            let count = a.pre[l].count
            a.pre[l].withUnsafeBufferPointer { u in
                a.h[l].withUnsafeMutableBufferPointer { h in
                    for i in 0..<count { h[i] = u[i] > 0 ? u[i] : slope * u[i] }
                }
            }
        }
        convolutions[L - 1].forward(out: &a.logits, inp: a.h[L - 2], weight: w(weights[L - 1]), bias: w(biases[L - 1]), batch: B, length: T)
    }

    /// From dL/dlogits (B, T), after `forward` on `x`: adds the parameter gradients into the
    /// store when `parameters`, and leaves dL/dx in `a.dInput` when `input`.
    public func backward(_ a: Activations, dLogits: UnsafePointer<Float>, x: UnsafePointer<Float>, parameters: Bool, input: Bool) {
        let B = a.batch, T = a.length, L = config.layers, slope = config.negativeSlope
        let w = { (e: ParameterStore.Entry) in UnsafePointer(self.store.value(e)) }
        let g = { (e: ParameterStore.Entry) in self.store.gradient(e) }
        a.dH.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        convolutions[L - 1].backward(dInp: &a.dH, dWeight: parameters ? g(weights[L - 1]) : nil, dBias: parameters ? g(biases[L - 1]) : nil,
                                     dOut: dLogits, inp: a.h[L - 2], weight: w(weights[L - 1]), batch: B, length: T)
        for l in stride(from: L - 2, through: 0, by: -1) {
            let count = a.dPre.count
            a.pre[l].withUnsafeBufferPointer { u in
                a.dH.withUnsafeBufferPointer { dh in
                    a.dPre.withUnsafeMutableBufferPointer { dp in
                        for i in 0..<count { dp[i] = u[i] > 0 ? dh[i] : slope * dh[i] }
                    }
                }
            }
            if l > 0 {
                a.dH.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
                convolutions[l].backward(dInp: &a.dH, dWeight: parameters ? g(weights[l]) : nil, dBias: parameters ? g(biases[l]) : nil,
                                         dOut: a.dPre, inp: a.h[l - 1], weight: w(weights[l]), batch: B, length: T)
            } else {
                let dW = parameters ? g(weights[0]) : nil, dB = parameters ? g(biases[0]) : nil
                let first = convolutions[0], dPre = a.dPre
                if input {
                    a.dInput.withUnsafeMutableBufferPointer { d in
                        d.update(repeating: 0)
                        first.backward(dInp: d.baseAddress!, dWeight: dW, dBias: dB, dOut: dPre, inp: x, weight: w(weights[0]), batch: B, length: T)
                    }
                } else {
                    first.backward(dInp: nil, dWeight: dW, dBias: dB, dOut: dPre, inp: x, weight: w(weights[0]), batch: B, length: T)
                }
            }
        }
    }

    /// The least-squares GAN loss mean over the samples with nonzero `mask` (nil: all) of
    /// (D - target)^2, and its gradient with respect to the logits in `dLogits` (scaled by
    /// `weight`): target 1 for real audio (and for the generator's loss on fakes), 0 for fakes.
    /// A `count` replaces the mask's count as the divisor (data parallelism: the whole batch's).
    public static func leastSquares(_ logits: [Float], target: Float, mask: UnsafePointer<Float>?, weight: Float,
                                    dLogits: inout [Float], count given: Int? = nil) -> Double {
        let n = logits.count
        let count = given ?? max(1, mask.map { m in (0..<n).reduce(0) { $0 + (m[$1] != 0 ? 1 : 0) } } ?? n)
        var sum = 0.0
        for i in 0..<n {
            let on: Float = (mask?[i] ?? 1) != 0 ? 1 : 0
            let r = logits[i] - target
            sum += Double(on * r * r)
            dLogits[i] = on * 2 * r * weight / Float(count)
        }
        return sum / Double(count)
    }
}
