import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine

/// The shape of a pitch predictor (DESIGN.md section 10); stored in its model's config.
public struct PitchPredictorConfig: Codable, Equatable, Sendable {
    /// Mel bands in.
    public var melChannels: Int
    /// Hidden convolution layers; layer l has dilation 2^l.
    public var layers: Int
    /// Width of every hidden layer.
    public var channels: Int
    /// Odd kernel size of every hidden layer (centred: context on both sides).
    public var kernelSize: Int
    /// The F0 range in Hz, divided into bins of `binCents` cents from fMin up.
    public var fMin: Float
    public var fMax: Float

    public init(melChannels: Int, layers: Int = 4, channels: Int = 64, kernelSize: Int = 5, fMin: Float = 50, fMax: Float = 550) {
        self.melChannels = melChannels
        self.layers = layers
        self.channels = channels
        self.kernelSize = kernelSize
        self.fMin = fMin
        self.fMax = fMax
    }

    /// What is wrong with these numbers (empty when they are usable).
    public func problems() -> [String] {
        var out: [String] = []
        if !(1...1024).contains(melChannels) { out.append("melChannels must be in 1...1024") }
        if !(1...12).contains(layers) { out.append("layers must be in 1...12") }
        if !(1...1024).contains(channels) { out.append("channels must be in 1...1024") }
        if !(1...15).contains(kernelSize) || kernelSize % 2 == 0 { out.append("kernelSize must be odd, 1...15") }
        if !(fMin > 0 && fMax > fMin && fMax < 100_000) { out.append("the F0 range must satisfy 0 < fMin < fMax") }
        return out
    }

    /// Dilation of hidden layer `l`.
    public func dilation(_ l: Int) -> Int { 1 << l }

    /// Width of an F0 bin, cents.
    public static let binCents: Float = 20
    /// Standard deviation of the Gaussian that blurs a training target over the bins, cents
    /// (CREPE's choice for 20-cent bins).
    public static let targetCents: Float = 25

    /// F0 bins: centre j is `fMin * 2^(j * binCents / 1200)`, up to fMax.
    public var bins: Int { Int((1200 * log2(fMax / fMin) / Self.binCents).rounded(.down)) + 1 }
}

/// F0 per frame from a mel alone, for models whose source excitation needs an F0 track when
/// no recording is at hand (mels from an acoustic model). A few centred dilated 1-D
/// convolutions over the normalised log-mel (B, Cc, F):
///
///   h_0 = relu(conv_0(mel)),   h_l = h_(l-1) + relu(conv_l(h_(l-1))),   out = W_o h_(L-1) + b_o
///
/// out (B, 1 + N, F) holds the voicing logit v and the logits of N log-spaced F0 bins (20
/// cents apart from fMin, as CREPE classifies pitch). The track is voiced where
/// sigmoid(v) > 1/2, with F0 the probability-weighted mean (in cents) of the bins within 4 of
/// the most probable one, and 0 elsewhere. Trained against pYIN tracks (`loss`): the binary
/// cross-entropy of the voicing over the real frames plus, over the frames pYIN calls
/// voiced, the cross-entropy of the bins against the target's log-F0 blurred by a Gaussian
/// of 25 cents. Classification learns pitch from a mel far faster than a regression of
/// log-F0, which drifts to the mean of the voices it hears.
///
/// Parameters live in the owning model's store as `PREFIX.{l}.{weight,bias}` and
/// `PREFIX.out.{weight,bias}`.
public struct PitchPredictor: Sendable {
    public let config: PitchPredictorConfig
    let hidden: [Conv1d]
    let output: Conv1d
    let weights: [ParameterStore.Entry], biases: [ParameterStore.Entry]
    let outputWeight: ParameterStore.Entry, outputBias: ParameterStore.Entry

    public init(config: PitchPredictorConfig, prefix: String, store: ParameterStore) {
        precondition(config.problems().isEmpty, "invalid pitch predictor: \(config.problems())")
        self.config = config
        let C = config.channels, K = config.kernelSize
        hidden = (0..<config.layers).map { l in
            let d = config.dilation(l)
            return Conv1d(inputChannels: l == 0 ? config.melChannels : C, outputChannels: C, kernelSize: K, dilation: d, padding: (K - 1) / 2 * d)
        }
        weights = hidden.enumerated().map { l, conv in
            store.add("\(prefix).\(l).weight", shape: [K, C, conv.inputChannels])
        }
        biases = (0..<config.layers).map { store.add("\(prefix).\($0).bias", shape: [C]) }
        output = Conv1d(inputChannels: C, outputChannels: 1 + config.bins)
        outputWeight = store.add("\(prefix).out.weight", shape: [1, 1 + config.bins, C])
        outputBias = store.add("\(prefix).out.bias", shape: [1 + config.bins])
    }

    /// The store's entries of this predictor, in order.
    public var entries: [ParameterStore.Entry] {
        var out: [ParameterStore.Entry] = []
        for l in 0..<config.layers { out += [weights[l], biases[l]] }
        return out + [outputWeight, outputBias]
    }

    /// PyTorch's default uniform bound 1/sqrt(Cin K) for every weight and bias.
    public func initialise(_ store: ParameterStore, generator: inout SeededGenerator) {
        for (l, conv) in hidden.enumerated() {
            let bound = 1 / Float(conv.inputChannels * conv.kernelSize).squareRoot()
            store.initUniform(weights[l], bound: bound, generator: &generator)
            store.initUniform(biases[l], bound: bound, generator: &generator)
        }
        let bound = 1 / Float(config.channels).squareRoot()
        store.initUniform(outputWeight, bound: bound, generator: &generator)
        store.initUniform(outputBias, bound: bound, generator: &generator)
    }

    /// Copies this predictor's values from `other` (the same config) in `source` into `store`.
    public func copyValues(from other: PitchPredictor, in source: ParameterStore, into store: ParameterStore) {
        precondition(other.config == config, "pitch predictors differ in shape")
        for (to, from) in zip(entries, other.entries) { store.value(to).update(from: source.value(from), count: to.count) }
    }

    /// Buffers for `batch` sequences of `frames` frames.
    public final class Activations: @unchecked Sendable {
        public let batch: Int, frames: Int
        /// The normalised log-mel (B, Cc, F), for callers that normalise into it.
        var input: [Float]
        /// Each hidden layer's pre-activation and output, (B, C, F).
        var pre: [[Float]], h: [[Float]]
        /// (B, 1 + N, F): voicing logit and the F0 bins' logits per frame, and its gradient.
        public internal(set) var out: [Float]
        var dOut: [Float]
        /// Gradient scratch, (B, C, F).
        var dH: [Float], dPre: [Float]

        init(predictor: PitchPredictor, batch: Int, frames: Int, training: Bool) {
            self.batch = batch
            self.frames = frames
            let n = batch * predictor.config.channels * frames
            input = [Float](repeating: 0, count: batch * predictor.config.melChannels * frames)
            pre = [[Float]](repeating: [Float](repeating: 0, count: n), count: predictor.config.layers)
            h = pre
            out = [Float](repeating: 0, count: batch * (1 + predictor.config.bins) * frames)
            dOut = training ? out : []
            dH = training ? [Float](repeating: 0, count: n) : []
            dPre = dH
        }
    }

    public func makeActivations(batch: Int, frames: Int, training: Bool = true) -> Activations {
        Activations(predictor: self, batch: batch, frames: frames, training: training)
    }

    /// a.out (B, 2, F) from the normalised log-mel (B, Cc, F).
    public func forward(_ a: Activations, mel: UnsafePointer<Float>, store: ParameterStore) {
        let B = a.batch, F = a.frames, n = B * config.channels * F
        let w = { (e: ParameterStore.Entry) in UnsafePointer(store.value(e)) }
        for l in 0..<config.layers {
            if l == 0 {
                hidden[0].forward(out: &a.pre[0], inp: mel, weight: w(weights[0]), bias: w(biases[0]), batch: B, length: F)
            } else {
                hidden[l].forward(out: &a.pre[l], inp: a.h[l - 1], weight: w(weights[l]), bias: w(biases[l]), batch: B, length: F)
            }
            a.pre[l].withUnsafeBufferPointer { u in
                a.h[l].withUnsafeMutableBufferPointer { ReLU.forward(out: $0.baseAddress!, inp: u.baseAddress!, count: n) }
            }
            if l > 0 { for i in 0..<n { a.h[l][i] += a.h[l - 1][i] } }
        }
        output.forward(out: &a.out, inp: a.h[config.layers - 1], weight: w(outputWeight), bias: w(outputBias), batch: B, length: F)
    }

    /// The losses of one batch against pYIN.
    public struct Loss: Sendable {
        /// voicing + f0: what is minimised.
        public var total: Double
        /// Mean binary cross-entropy of the voicing over the real frames (nats).
        public var voicing: Double
        /// Mean cross-entropy of the F0 bins over the real frames pYIN calls voiced (nats).
        public var f0: Double
        public var frames: Int, voicedFrames: Int
    }

    /// After `forward`: the loss against `f0` (B, F) in Hz (0 where unvoiced) over the frames
    /// where `mask` (B, F) is nonzero (all when nil); its gradient with respect to `a.out`,
    /// times `lossScale`, is left in the activations for `backward`. With `totals` (data
    /// parallelism: these crops are part of a larger batch) the means divide by the whole
    /// batch's real and voiced frames, so that the parts' losses and gradients add up.
    @discardableResult
    public func loss(_ a: Activations, f0: UnsafePointer<Float>, mask: UnsafePointer<Float>? = nil, lossScale: Float = 1,
                     totals: (frames: Int, voiced: Int)? = nil) -> Loss {
        let B = a.batch, F = a.frames, N = config.bins, rows = 1 + N
        var frames = 0, voiced = 0
        for i in 0..<(B * F) where (mask?[i] ?? 1) != 0 {
            frames += 1
            if f0[i] > 0 { voiced += 1 }
        }
        if let totals { (frames, voiced) = totals }
        let voicingScale = lossScale / Float(max(frames, 1)), pitchScale = lossScale / Float(max(voiced, 1))
        var bce = 0.0, crossEntropy = 0.0
        var logits = [Float](repeating: 0, count: N), target = logits
        a.dOut.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        for b in 0..<B {
            for f in 0..<F where (mask?[b * F + f] ?? 1) != 0 {
                let i = b * F + f, base = b * rows * F + f
                let v = a.out[base], y: Float = f0[i] > 0 ? 1 : 0
                // -log p(y) = softplus(v) - y v; its derivative sigma(v) - y.
                bce += Double(StableMath.softplus(v) - y * v)
                a.dOut[base] = (StableMath.sigmoid(v) - y) * voicingScale
                guard f0[i] > 0 else { continue }
                // Cross-entropy -sum_j q_j log softmax(l)_j with q the blurred target; its
                // derivative softmax(l)_j - q_j.
                for j in 0..<N { logits[j] = a.out[base + (1 + j) * F] }
                targetDistribution(f0[i], into: &target)
                let logZ = logits.withUnsafeBufferPointer { StableMath.logSumExp($0.baseAddress!, count: N) }
                for j in 0..<N {
                    crossEntropy -= Double(target[j] * (logits[j] - logZ))
                    a.dOut[base + (1 + j) * F] = (exp(logits[j] - logZ) - target[j]) * pitchScale
                }
            }
        }
        let voicing = bce / Double(max(frames, 1)), pitch = crossEntropy / Double(max(voiced, 1))
        return Loss(total: voicing + pitch, voicing: voicing, f0: pitch, frames: frames, voicedFrames: voiced)
    }

    /// The training target of an F0 (Hz) over the bins: a Gaussian of `targetCents` around its
    /// log-F0 (clamped to the range), normalised to sum 1.
    func targetDistribution(_ f0: Float, into q: inout [Float]) {
        let cents = min(max(1200 * log2(f0 / config.fMin), 0), Float(config.bins - 1) * PitchPredictorConfig.binCents)
        var sum: Float = 0
        for j in q.indices {
            let d = (Float(j) * PitchPredictorConfig.binCents - cents) / PitchPredictorConfig.targetCents
            q[j] = exp(-0.5 * d * d)
            sum += q[j]
        }
        for j in q.indices { q[j] /= sum }
    }

    /// From the gradient `loss` left in `a` back to the parameters, whose gradients are added
    /// into `store`. `mel` is the forward pass's input.
    public func backward(_ a: Activations, mel: UnsafePointer<Float>, store: ParameterStore) {
        let B = a.batch, F = a.frames, n = B * config.channels * F
        let w = { (e: ParameterStore.Entry) in UnsafePointer(store.value(e)) }
        a.dH.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        output.backward(dInp: &a.dH, dWeight: store.gradient(outputWeight), dBias: store.gradient(outputBias), dOut: a.dOut,
                        inp: a.h[config.layers - 1], weight: w(outputWeight), batch: B, length: F)
        for l in stride(from: config.layers - 1, through: 0, by: -1) {
            // h_l = h_(l-1) + relu(u_l): dh_(l-1) = dh_l + conv_l^T (relu'(u_l) dh_l), kept in dH.
            a.dPre.withUnsafeMutableBufferPointer { dp in
                dp.update(repeating: 0)
                a.dH.withUnsafeBufferPointer { dh in
                    a.pre[l].withUnsafeBufferPointer { ReLU.backward(dInp: dp.baseAddress!, dOut: dh.baseAddress!, inp: $0.baseAddress!, count: n) }
                }
            }
            let (dW, dB) = (store.gradient(weights[l]), store.gradient(biases[l]))
            if l == 0 {
                hidden[0].backward(dInp: nil, dWeight: dW, dBias: dB, dOut: a.dPre, inp: mel, weight: w(weights[0]), batch: B, length: F)
            } else {
                hidden[l].backward(dInp: &a.dH, dWeight: dW, dBias: dB, dOut: a.dPre, inp: a.h[l - 1], weight: w(weights[l]), batch: B, length: F)
            }
        }
    }

    /// After `forward`: the track (B, F), F0 in Hz (0 where unvoiced) and the voiced probability.
    public func track(_ a: Activations) -> (f0: [Float], probability: [Float]) {
        let B = a.batch, F = a.frames, N = config.bins, rows = 1 + N
        var f0 = [Float](repeating: 0, count: B * F), probability = f0
        for b in 0..<B {
            for f in 0..<F {
                let base = b * rows * F + f
                let p = StableMath.sigmoid(a.out[base])
                probability[b * F + f] = p
                guard p > 0.5 else { continue }
                var best = 0
                for j in 1..<N where a.out[base + (1 + j) * F] > a.out[base + (1 + best) * F] { best = j }
                // The softmax's weights around the peak, relative to it.
                var weight: Float = 0, cents: Float = 0
                for j in max(0, best - 4)...min(N - 1, best + 4) {
                    let w = exp(a.out[base + (1 + j) * F] - a.out[base + (1 + best) * F])
                    weight += w
                    cents += w * Float(j) * PitchPredictorConfig.binCents
                }
                f0[b * F + f] = config.fMin * exp2(cents / weight / 1200)
            }
        }
        return (f0, probability)
    }

    /// The track of one raw log-mel (Cc, F), normalised with `mean` and `std` per band.
    public func track(mel: Matrix, mean: [Float], std: [Float], store: ParameterStore) -> (f0: [Float], probability: [Float]) {
        precondition(mel.rows == config.melChannels, "the mel has \(mel.rows) bands, the predictor \(config.melChannels)")
        let a = makeActivations(batch: 1, frames: mel.columns, training: false)
        a.input.withUnsafeMutableBufferPointer { MelNormalisation.apply(mel, mean: mean, std: std, frames: mel.columns, into: $0.baseAddress!) }
        forward(a, mel: a.input, store: store)
        return track(a)
    }
}

extension PitchPredictorConfig {
    /// The optional predictor of a model's config; an unusable one, or one whose mel bands are
    /// not the model's, is a decoding error.
    static func decode<K: CodingKey>(from c: KeyedDecodingContainer<K>, forKey key: K, melChannels: Int) throws -> PitchPredictorConfig? {
        guard let config = try c.decodeIfPresent(PitchPredictorConfig.self, forKey: key) else { return nil }
        if !config.problems().isEmpty || config.melChannels != melChannels {
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "an invalid pitch predictor: \(config.problems())")
        }
        return config
    }
}

extension ParameterGroup {
    /// The store's parameters before `entry`, clipped at `clipNorm`, and from `entry` on (a
    /// model's pitch predictor), clipped on their own or `frozen`; one group without `entry`.
    static func split(_ store: ParameterStore, at entry: ParameterStore.Entry?, clipNorm: Double, frozen: Bool = false) -> [ParameterGroup] {
        guard let start = entry?.offset else { return [ParameterGroup(range: 0..<store.count, clipNorm: clipNorm)] }
        return [ParameterGroup(range: 0..<start, clipNorm: clipNorm), ParameterGroup(range: start..<store.count, clipNorm: clipNorm, frozen: frozen)]
    }
}
