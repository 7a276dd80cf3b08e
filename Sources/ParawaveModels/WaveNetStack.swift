import Foundation
import ParawaveCore
import ParawaveEngine

/// A mel-conditioned stack of gated, dilated causal convolution layers (DESIGN.md section 3):
///
///   c_up = Conv_u(repeat(c, hop))                          (B, Cc, T)
///          (or with `upsampler: transposed`, ConvTranspose_u(c) with stride hop)
///   x_res = Conv1x1_in(x)                                   (B, R, T)
///   per layer: h = DilatedCausalConv_K(x_res; d) + Conv1x1_c(c_up) [+ W_g e] [+ Conv1x1_s(s)]   (B, 2G, T)
///              z = tanh(h[:G]) * sigmoid(h[G:])              (B, G, T)
///              skip += Conv1x1_skip(z)                       (B, S, T)
///              x_res = (x_res + Conv1x1_res(z)) * sqrt(0.5)
///
/// With speaker conditioning (`speakerChannels` E > 0) every layer adds `W_g e` to h, where
/// e (B, E) is the utterance's speaker embedding (the model owns the embedding table) and W_g
/// a (2G x E) matrix per layer: a per-utterance bias, constant over time. With source
/// conditioning (`sourceChannels` Cs > 0) every layer adds `W_s s_t`, where s (B, Cs, T) is a
/// sample-rate excitation computed from the utterance's F0 (`SineSource`), and W_s a
/// (2G x Cs) matrix per layer.
///
/// Parameters live in a `ParameterStore` under `prefix`; activations needed by the backward
/// pass are kept in `Activations`, which the caller owns and reuses between steps.
public struct WaveNetStack: Sendable {
    public let config: WaveNetStackConfig
    public let prefix: String

    struct Layer: Sendable {
        var dilated: Conv1d, condition: Conv1d, skip: Conv1d, residual: Conv1d
        var dilatedWeight: ParameterStore.Entry, dilatedBias: ParameterStore.Entry, conditionWeight: ParameterStore.Entry
        var skipWeight: ParameterStore.Entry, skipBias: ParameterStore.Entry
        var residualWeight: ParameterStore.Entry, residualBias: ParameterStore.Entry
        /// W_g (1, 2G, E), with speaker conditioning.
        var speakerWeight: ParameterStore.Entry?
        /// Conv1x1_s and W_s (1, 2G, Cs), with source conditioning.
        var source: Conv1d?
        var sourceWeight: ParameterStore.Entry?
    }

    let input: Conv1d, upsample: Conv1d
    /// The transposed-convolution upsampler, when the config asks for it (then `upsample` is unused).
    let transposedUpsample: TransposedConv1d?
    let inputWeight: ParameterStore.Entry, inputBias: ParameterStore.Entry
    let upsampleWeight: ParameterStore.Entry, upsampleBias: ParameterStore.Entry
    let layers: [Layer]

    /// Adds the stack's parameters to `store`, named `prefix.*`.
    public init(config c: WaveNetStackConfig, prefix: String, store: ParameterStore) {
        config = c
        self.prefix = prefix
        let R = c.residualChannels, G = c.gateOutChannels, S = c.skipChannels, C = c.conditionChannels
        var input = Conv1d(inputChannels: 1, outputChannels: R)
        input.keepsFloat32 = true  // it reads the waveform
        self.input = input
        inputWeight = store.add("\(prefix).input.weight", shape: [1, R, 1])
        inputBias = store.add("\(prefix).input.bias", shape: [R])
        upsample = Conv1d(inputChannels: C, outputChannels: C, kernelSize: c.upsampleKernel, padding: (c.upsampleKernel - 1) / 2)
        transposedUpsample = c.upsampler == .transposed
            ? TransposedConv1d(inputChannels: C, outputChannels: C, stride: c.hop, kernelSize: c.upsampleKernel) : nil
        upsampleWeight = store.add("\(prefix).upsample.weight", shape: [c.upsampleKernel, C, C])
        upsampleBias = store.add("\(prefix).upsample.bias", shape: [C])
        layers = (0..<c.layers).map { l in
            let name = "\(prefix).layers.\(l)"
            var dilated = Conv1d.causal(inputChannels: R, outputChannels: 2 * G, kernelSize: c.kernelSize, dilation: c.dilation(l))
            // The first layer reads the waveform's embedding: float32 in bfloat16 runs too.
            dilated.keepsFloat32 = l == 0
            return Layer(
                dilated: dilated,
                condition: Conv1d(inputChannels: C, outputChannels: 2 * G),
                skip: Conv1d(inputChannels: G, outputChannels: S),
                residual: Conv1d(inputChannels: G, outputChannels: R),
                dilatedWeight: store.add("\(name).dilated.weight", shape: [c.kernelSize, 2 * G, R]),
                dilatedBias: store.add("\(name).dilated.bias", shape: [2 * G]),
                conditionWeight: store.add("\(name).condition.weight", shape: [1, 2 * G, C]),
                skipWeight: store.add("\(name).skip.weight", shape: [1, S, G]),
                skipBias: store.add("\(name).skip.bias", shape: [S]),
                residualWeight: store.add("\(name).residual.weight", shape: [1, R, G]),
                residualBias: store.add("\(name).residual.bias", shape: [R]),
                speakerWeight: c.speakerChannels > 0 ? store.add("\(name).speaker.weight", shape: [1, 2 * G, c.speakerChannels]) : nil,
                source: c.sourceChannels > 0 ? Conv1d(inputChannels: c.sourceChannels, outputChannels: 2 * G) : nil,
                sourceWeight: c.sourceChannels > 0 ? store.add("\(name).source.weight", shape: [1, 2 * G, c.sourceChannels]) : nil)
        }
    }

    /// Uniform initialisation with bound 1/sqrt(fan_in) (PyTorch's default for convolutions).
    public func initialise(_ store: ParameterStore, generator: inout SeededGenerator) {
        let c = config
        func uniform(_ entry: ParameterStore.Entry, fanIn: Int) { store.initUniform(entry, bound: 1 / Float(fanIn).squareRoot(), generator: &generator) }
        uniform(inputWeight, fanIn: 1); uniform(inputBias, fanIn: 1)
        uniform(upsampleWeight, fanIn: c.upsampleKernel * c.conditionChannels); uniform(upsampleBias, fanIn: c.upsampleKernel * c.conditionChannels)
        for layer in layers {
            uniform(layer.dilatedWeight, fanIn: c.kernelSize * c.residualChannels); uniform(layer.dilatedBias, fanIn: c.kernelSize * c.residualChannels)
            uniform(layer.conditionWeight, fanIn: c.conditionChannels)
            uniform(layer.skipWeight, fanIn: c.gateOutChannels); uniform(layer.skipBias, fanIn: c.gateOutChannels)
            uniform(layer.residualWeight, fanIn: c.gateOutChannels); uniform(layer.residualBias, fanIn: c.gateOutChannels)
            if let speakerWeight = layer.speakerWeight { uniform(speakerWeight, fanIn: c.speakerChannels) }
            if let sourceWeight = layer.sourceWeight { uniform(sourceWeight, fanIn: c.sourceChannels) }
        }
    }

    /// Buffers for one batch shape, kept between forward and backward. Without `training`
    /// only two residual slots and one pre-gate slot are kept (used in turn by the layers) and
    /// there are no gradient buffers: enough for the forward pass.
    public final class Activations: @unchecked Sendable {
        public let batch: Int, length: Int, frames: Int, training: Bool
        /// Samples per time tile of the forward-only pass, and its workers.
        let tile: Int, workers: Int
        /// Forward-only with the nearest upsampler (and hop >= its kernel): c_up is constant over
        /// each frame but for the kernel's reach at its edges, so it is computed at `upsampleKernel`
        /// positions per frame only, as is each layer's W_c c_up.
        public let frameRate: Bool
        /// With `frameRate`: c_up at those positions, (B, Cc, F * kernel), and one layer's
        /// W_c c_up plus its bias of h there, (B, 2G, F * kernel).
        let representatives: FloatBuffer, conditionTerms: FloatBuffer
        /// repeat(c): (B, Cc, T); c_up: (B, Cc, T).
        let repeated: FloatBuffer, conditioned: FloatBuffer
        /// x_res entering each layer and after the last: (L + 1, B, R, T) (2 slots without training).
        let residual: FloatBuffer
        /// h of each layer: (L, B, 2G, T) (per worker one time tile, (2G, tile), without training).
        let preGate: FloatBuffer
        /// Scratch: z (B, G, T) (per worker (G, tile) without training), and gradients.
        let gated: FloatBuffer, dGated: FloatBuffer, dPreGate: FloatBuffer, dResidual: FloatBuffer, dConditioned: FloatBuffer
        /// Without training, per worker: a tile's layer input at the K taps' shifts stacked
        /// over its source and its conditioning, (KR + Cs + Cc, tile), and its skip and residual
        /// outputs, (S + R, tile). And one layer's weights stacked to match: (2G, KR + Cs + Cc)
        /// and (S + R, G).
        let stacked: FloatBuffer, outputs: FloatBuffer, stackedWeight: FloatBuffer, skipResidualWeight: FloatBuffer
        /// The skip sum, (B, S, T).
        let skipSum: FloatBuffer
        /// The current layer's bias of h per utterance (B, 2G), and scratch for its gradient.
        let gateBias: FloatBuffer, dGateBias: FloatBuffer

        /// A copy of the skip sum, (B, S, T).
        public var skip: [Float] { skipSum.array }

        init(config c: WaveNetStackConfig, batch: Int, frames: Int, training: Bool) {
            self.batch = batch
            self.frames = frames
            self.training = training
            length = frames * c.hop
            let T = length, R = c.residualChannels, G = c.gateOutChannels
            frameRate = !training && c.conditioningAtFrameRate
            let conditionedCount = frameRate ? 0 : batch * c.conditionChannels * T
            conditioned = FloatBuffer(conditionedCount)
            repeated = FloatBuffer(c.upsampler == .nearest ? conditionedCount : 0)
            representatives = FloatBuffer(frameRate ? batch * c.conditionChannels * frames * c.upsampleKernel : 0)
            conditionTerms = FloatBuffer(frameRate ? batch * 2 * G * frames * c.upsampleKernel : 0)
            residual = FloatBuffer((training ? c.layers + 1 : 2) * batch * R * T)
            // Without training, h and z are only held for one time tile per worker.
            tile = max(1, min(T, WaveNetStack.forwardTile))
            workers = training ? 1 : max(1, min(Parallel.threads, (batch * T + tile - 1) / tile))
            let W = workers, K = c.kernelSize, C = c.conditionChannels, S = c.skipChannels, Cs = c.sourceChannels
            preGate = FloatBuffer(training ? c.layers * batch * 2 * G * T : W * 2 * G * tile)
            gated = FloatBuffer(training ? batch * G * T : W * G * tile)
            stacked = FloatBuffer(training ? 0 : W * (K * R + Cs + (frameRate ? 0 : C)) * tile)
            outputs = FloatBuffer(training ? 0 : W * (S + R) * tile)
            stackedWeight = FloatBuffer(training ? 0 : 2 * G * (K * R + Cs + C))
            skipResidualWeight = FloatBuffer(training ? 0 : (S + R) * G)
            dGated = FloatBuffer(training ? gated.count : 0)
            dPreGate = FloatBuffer(training ? batch * 2 * G * T : 0)
            dResidual = FloatBuffer(training ? 2 * batch * R * T : 0)
            dConditioned = FloatBuffer(training ? conditionedCount : 0)
            skipSum = FloatBuffer(batch * c.skipChannels * T)
            gateBias = FloatBuffer(batch * 2 * G)
            dGateBias = FloatBuffer(training ? gateBias.count : 0)
        }

        /// Slot of layer l's input residual.
        @inline(__always) func residualSlot(_ l: Int) -> Int { training ? l : l % 2 }
    }

    public func makeActivations(batch: Int, frames: Int, training: Bool = true) -> Activations {
        Activations(config: config, batch: batch, frames: frames, training: training)
    }

    /// c_up (B, Cc, T) into `a.conditioned` from the mel (B, Cc, F).
    func upsampleForward(_ a: Activations, mel: UnsafePointer<Float>, store: ParameterStore) {
        upsample(mel: mel, batch: a.batch, frames: a.frames, into: a.conditioned.pointer, repeated: a.repeated.count > 0 ? a.repeated.pointer : nil,
                 store: store)
    }

    /// c_up (B, Cc, F * hop) into `out` from the mel (B, Cc, F). `repeated`, scratch of the
    /// same size, is needed by the nearest upsampler only.
    func upsample(mel: UnsafePointer<Float>, batch B: Int, frames F: Int, into out: UnsafeMutablePointer<Float>,
                  repeated: UnsafeMutablePointer<Float>?, store: ParameterStore) {
        let c = config
        let weight = UnsafePointer(store.value(upsampleWeight)), bias = UnsafePointer(store.value(upsampleBias))
        if let transposed = transposedUpsample {
            transposed.forward(out: out, inp: mel, weight: weight, bias: bias, batch: B, frames: F)
            return
        }
        guard let repeated else { preconditionFailure("the nearest upsampler needs scratch") }
        RepeatUpsample.forward(out: repeated, inp: mel, rows: B * c.conditionChannels, frames: F, hop: c.hop)
        upsample.forward(out: out, inp: repeated, weight: weight, bias: bias, batch: B, length: F * c.hop)
    }

    /// Layer `layer`'s bias of h for each of `batch` utterances into `out` (B, 2G): the dilated
    /// convolution's bias, plus `W_g e_b` with speaker conditioning (`speaker`: (B, E)). Every
    /// pass (training, tiled, incremental) takes the bias from here, so they agree.
    func gateBias(_ layer: Int, speaker: UnsafePointer<Float>?, batch B: Int, store: ParameterStore, into out: UnsafeMutablePointer<Float>) {
        let H = 2 * config.gateOutChannels, E = config.speakerChannels
        let bias = store.value(layers[layer].dilatedBias)
        for b in 0..<B { (out + b * H).update(from: bias, count: H) }
        guard let weight = layers[layer].speakerWeight.map({ store.value($0) }) else { return }
        precondition(speaker != nil, "a speaker-conditioned stack needs speaker embeddings")
        for b in 0..<B {
            let e = speaker! + b * E, y = out + b * H
            for o in 0..<H {
                var sum: Float = 0
                for i in 0..<E { sum += weight[o * E + i] * e[i] }
                y[o] += sum
            }
        }
    }

    /// Forward: x (B, 1, T), mel (B, Cc, F) with T = F * hop, with speaker conditioning the
    /// utterances' speaker embeddings (B, E), and with source conditioning their sources
    /// (B, Cs, T); the skip sum lands in `a.skip` (B, S, T).
    public func forward(_ a: Activations, x: UnsafePointer<Float>, mel: UnsafePointer<Float>, speaker: UnsafePointer<Float>? = nil,
                        source: UnsafePointer<Float>? = nil, store: ParameterStore) {
        precondition((source != nil) == (config.sourceChannels > 0), "a source goes with source conditioning, and only with it")
        if !a.training {
            forwardTiled(a, x: x, mel: mel, speaker: speaker, source: source, store: store)
            return
        }
        let c = config, B = a.batch, T = a.length, R = c.residualChannels, G = c.gateOutChannels
        let scale = Float(0.5.squareRoot())
        let w = { (e: ParameterStore.Entry) in UnsafePointer(store.value(e)) }
        upsampleForward(a, mel: mel, store: store)
        let stride = B * R * T, hStride = B * 2 * G * T
        let res = a.residual.pointer, pre = a.preGate.pointer, bias = a.gateBias.pointer, z = a.gated.pointer
        input.forward(out: res, inp: x, weight: w(inputWeight), bias: w(inputBias), batch: B, length: T)
        a.skipSum.zero()
        for (l, layer) in layers.enumerated() {
            let xIn = res + a.residualSlot(l) * stride, xOut = res + a.residualSlot(l + 1) * stride
            let h = pre + l * hStride
            gateBias(l, speaker: speaker, batch: B, store: store, into: bias)
            for b in 0..<B {
                layer.dilated.forward(out: h + b * 2 * G * T, inp: xIn + b * R * T, weight: w(layer.dilatedWeight), bias: bias + b * 2 * G,
                                      batch: 1, length: T)
            }
            layer.condition.forward(out: h, inp: a.conditioned.pointer, weight: w(layer.conditionWeight), bias: nil, batch: B, length: T, accumulate: true)
            if let sourceConv = layer.source, let sourceWeight = layer.sourceWeight, let source {
                sourceConv.forward(out: h, inp: source, weight: w(sourceWeight), bias: nil, batch: B, length: T, accumulate: true)
            }
            GatedUnit.forward(out: z, inp: h, batch: B, channels: G, length: T)
            layer.skip.forward(out: a.skipSum.pointer, inp: z, weight: w(layer.skipWeight), bias: w(layer.skipBias), batch: B, length: T, accumulate: true)
            layer.residual.forward(out: xOut, inp: z, weight: w(layer.residualWeight), bias: w(layer.residualBias), batch: B, length: T)
            for i in 0..<stride { xOut[i] = (xIn[i] + xOut[i]) * scale }
        }
    }

    /// The speaker term of one layer from `a.dPreGate`: with r_b = sum_t dh[b, :, t],
    /// dW_g += sum_b r_b e_b^T and de_b += W_g^T r_b.
    func backwardSpeaker(_ a: Activations, weight entry: ParameterStore.Entry, speaker: UnsafePointer<Float>?,
                         dSpeaker: UnsafeMutablePointer<Float>?, store: ParameterStore) {
        guard let speaker else { preconditionFailure("a speaker-conditioned stack needs speaker embeddings") }
        let B = a.batch, T = a.length, H = 2 * config.gateOutChannels, E = config.speakerChannels
        let weight = store.value(entry), dWeight = store.gradient(entry)
        let dh = a.dPreGate.pointer, r = a.dGateBias.pointer
        for b in 0..<B {
            for o in 0..<H { r[b * H + o] = VectorMath.sum(dh + (b * H + o) * T, count: T) }
        }
        for b in 0..<B {
            let e = speaker + b * E, rb = r + b * H
            for o in 0..<H {
                for i in 0..<E { dWeight[o * E + i] += rb[o] * e[i] }
            }
            guard let dSpeaker else { continue }
            for i in 0..<E {
                var sum: Float = 0
                for o in 0..<H { sum += weight[o * E + i] * rb[o] }
                dSpeaker[b * E + i] += sum
            }
        }
    }

    /// Backward from dSkip (B, S, T): parameter gradients are added into the store (only when
    /// `weights`; a frozen stack, such as the teacher in distillation, skips them); the
    /// gradient with respect to x (B, 1, T) is added into `dX` when given. With speaker
    /// conditioning, `speaker` is the forward pass's (B, E) and the gradient with respect to it
    /// is added into `dSpeaker` (only when `weights`: a frozen model's embedding is frozen too).
    /// With source conditioning, `source` is the forward pass's (B, Cs, T); the source is a
    /// fixed function of the conditioning, so it gets no gradient.
    public func backward(_ a: Activations, dSkip: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>?,
                         x: UnsafePointer<Float>, mel: UnsafePointer<Float>, speaker: UnsafePointer<Float>? = nil,
                         dSpeaker: UnsafeMutablePointer<Float>? = nil, source: UnsafePointer<Float>? = nil, store: ParameterStore,
                         weights: Bool = true) {
        precondition(a.training, "the backward pass needs training activations")
        let c = config, B = a.batch, T = a.length, R = c.residualChannels, G = c.gateOutChannels
        let scale = Float(0.5.squareRoot())
        let w = { (e: ParameterStore.Entry) in UnsafePointer(store.value(e)) }
        let g = { (e: ParameterStore.Entry) in weights ? store.gradient(e) : nil }
        let stride = B * R * T, hStride = B * 2 * G * T
        a.dConditioned.zero()
        // dResidual holds two (B, R, T) buffers: the gradient of x_res after the layer and before it.
        a.dResidual.zero()
        let res = a.residual.pointer, pre = a.preGate.pointer, z = a.gated.pointer, dz = a.dGated.pointer, dh = a.dPreGate.pointer
        var after = a.dResidual.pointer, before = after + stride
        for (l, layer) in layers.enumerated().reversed() {
            let xIn = res + l * stride, h = pre + l * hStride
            // x_out = (x_in + Res(z)) * scale
            for i in 0..<stride { after[i] *= scale }
            before.update(from: after, count: stride)
            GatedUnit.forward(out: z, inp: h, batch: B, channels: G, length: T)
            a.dGated.zero()
            layer.residual.backward(dInp: dz, dWeight: g(layer.residualWeight), dBias: g(layer.residualBias),
                                    dOut: after, inp: z, weight: w(layer.residualWeight), batch: B, length: T)
            layer.skip.backward(dInp: dz, dWeight: g(layer.skipWeight), dBias: g(layer.skipBias),
                                dOut: dSkip, inp: z, weight: w(layer.skipWeight), batch: B, length: T)
            a.dPreGate.zero()
            GatedUnit.backward(dInp: dh, dOut: dz, inp: h, batch: B, channels: G, length: T)
            if weights, let speakerWeight = layer.speakerWeight {
                backwardSpeaker(a, weight: speakerWeight, speaker: speaker, dSpeaker: dSpeaker, store: store)
            }
            if weights {
                layer.condition.backward(dInp: a.dConditioned.pointer, dWeight: g(layer.conditionWeight), dBias: nil, dOut: dh,
                                         inp: a.conditioned.pointer, weight: w(layer.conditionWeight), batch: B, length: T)
                if let sourceConv = layer.source, let sourceWeight = layer.sourceWeight {
                    guard let source else { preconditionFailure("a source-conditioned stack needs its source") }
                    sourceConv.backward(dInp: nil, dWeight: g(sourceWeight), dBias: nil, dOut: dh, inp: source, weight: w(sourceWeight), batch: B, length: T)
                }
            }
            layer.dilated.backward(dInp: before, dWeight: g(layer.dilatedWeight), dBias: g(layer.dilatedBias),
                                   dOut: dh, inp: xIn, weight: w(layer.dilatedWeight), batch: B, length: T)
            swap(&after, &before)
        }
        // `after` now holds the gradient of the first x_res.
        input.backward(dInp: dX, dWeight: g(inputWeight), dBias: g(inputBias), dOut: after, inp: x, weight: w(inputWeight), batch: B, length: T)
        if weights {
            if let transposed = transposedUpsample {
                transposed.backward(dInp: nil, dWeight: g(upsampleWeight), dBias: g(upsampleBias), dOut: a.dConditioned.pointer, inp: mel,
                                    weight: w(upsampleWeight), batch: B, frames: a.frames)
            } else {
                upsample.backward(dInp: nil, dWeight: g(upsampleWeight), dBias: g(upsampleBias), dOut: a.dConditioned.pointer, inp: a.repeated.pointer,
                                  weight: w(upsampleWeight), batch: B, length: T)
            }
        }
    }
}
