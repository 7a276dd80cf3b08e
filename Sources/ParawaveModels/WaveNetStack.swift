import Foundation
import ParawaveCore
import ParawaveEngine

/// The shape of a WaveNet-like stack (teacher, or one flow of the student).
public struct WaveNetStackConfig: Codable, Equatable, Sendable {
    /// How mel frames become per-sample conditioning.
    public enum Upsampler: String, Codable, CaseIterable, Sendable {
        /// Each frame repeated `hop` times, then a centred convolution of `upsampleKernel` samples.
        case nearest = "repeat"
        /// A transposed convolution of stride `hop` and `upsampleKernel` (= 2 hop) taps.
        case transposed
    }

    public var layers: Int
    /// Dilation of layer l is 2^(l mod cycle).
    public var cycle: Int
    public var kernelSize: Int
    /// R: residual channels.
    public var residualChannels: Int
    /// G: gated channels (the dilated convolution has 2G outputs).
    public var gatedChannels: Int
    /// S: skip channels.
    public var skipChannels: Int
    /// Cc: conditioning channels (mel bands).
    public var conditionChannels: Int
    /// Samples per conditioning frame.
    public var hop: Int
    /// Kernel of the centred convolution after the nearest-neighbour upsampling, or of the
    /// transposed convolution (in samples).
    public var upsampleKernel: Int = 3
    public var upsampler: Upsampler = .nearest
    /// E: width of the speaker embedding each layer projects into its gate input (0: none).
    public var speakerChannels: Int = 0
    /// Cs: channels of sample-rate source conditioning (the sine excitation) each layer
    /// projects into its gate input (0: none).
    public var sourceChannels: Int = 0

    public init(layers: Int, cycle: Int, kernelSize: Int, residualChannels: Int, gatedChannels: Int, skipChannels: Int,
                conditionChannels: Int, hop: Int, upsampleKernel: Int? = nil, upsampler: Upsampler = .nearest, speakerChannels: Int = 0,
                sourceChannels: Int = 0) {
        self.layers = layers
        self.cycle = cycle
        self.kernelSize = kernelSize
        self.residualChannels = residualChannels
        self.gatedChannels = gatedChannels
        self.skipChannels = skipChannels
        self.conditionChannels = conditionChannels
        self.hop = hop
        self.upsampleKernel = upsampleKernel ?? (upsampler == .transposed ? 2 * hop : 3)
        self.upsampler = upsampler
        self.speakerChannels = speakerChannels
        self.sourceChannels = sourceChannels
    }

    enum CodingKeys: String, CodingKey {
        case layers, cycle, kernelSize, residualChannels, gatedChannels, skipChannels, conditionChannels, hop, upsampleKernel
        case speakerChannels, upsampler, sourceChannels
    }

    /// Decodes a stored config; `speakerChannels`, `sourceChannels` and `upsampler` are absent
    /// from configs that use none of them (and from checkpoints written before they existed).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        layers = try c.decode(Int.self, forKey: .layers)
        cycle = try c.decode(Int.self, forKey: .cycle)
        kernelSize = try c.decode(Int.self, forKey: .kernelSize)
        residualChannels = try c.decode(Int.self, forKey: .residualChannels)
        gatedChannels = try c.decode(Int.self, forKey: .gatedChannels)
        skipChannels = try c.decode(Int.self, forKey: .skipChannels)
        conditionChannels = try c.decode(Int.self, forKey: .conditionChannels)
        hop = try c.decode(Int.self, forKey: .hop)
        upsampleKernel = try c.decode(Int.self, forKey: .upsampleKernel)
        speakerChannels = try c.decodeIfPresent(Int.self, forKey: .speakerChannels) ?? 0
        upsampler = try c.decodeIfPresent(Upsampler.self, forKey: .upsampler) ?? .nearest
        sourceChannels = try c.decodeIfPresent(Int.self, forKey: .sourceChannels) ?? 0
    }

    /// Encodes the config; `speakerChannels`, `sourceChannels` and `upsampler` only when they differ from the
    /// defaults, so configs without them stay as they were written before (the distillation
    /// state compares its teacher's config text).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(layers, forKey: .layers)
        try c.encode(cycle, forKey: .cycle)
        try c.encode(kernelSize, forKey: .kernelSize)
        try c.encode(residualChannels, forKey: .residualChannels)
        try c.encode(gatedChannels, forKey: .gatedChannels)
        try c.encode(skipChannels, forKey: .skipChannels)
        try c.encode(conditionChannels, forKey: .conditionChannels)
        try c.encode(hop, forKey: .hop)
        try c.encode(upsampleKernel, forKey: .upsampleKernel)
        if speakerChannels > 0 { try c.encode(speakerChannels, forKey: .speakerChannels) }
        if upsampler != .nearest { try c.encode(upsampler, forKey: .upsampler) }
        if sourceChannels > 0 { try c.encode(sourceChannels, forKey: .sourceChannels) }
    }

    public func dilation(_ layer: Int) -> Int { 1 << (layer % cycle) }

    /// Samples of the past an output sees: 1 + sum_l (K - 1) d_l.
    public var receptiveField: Int { 1 + (0..<layers).map { (kernelSize - 1) * dilation($0) }.reduce(0, +) }

    /// Samples on either side of a sample whose frames its conditioning can depend on beyond
    /// the frame's own span.
    public var upsampleReach: Int { upsampler == .transposed ? upsampleKernel : (upsampleKernel - 1) / 2 }

    /// Multiply-adds per output sample of the convolutions (the upsampler excluded).
    public var multiplyAddsPerSample: Int {
        let R = residualChannels, G = gatedChannels, S = skipChannels, C = conditionChannels
        return residualChannels + layers * (kernelSize * 2 * G * R + 2 * G * (C + sourceChannels) + S * G + R * G)
    }

    /// Of those, the conditioning products W_c c_up, which the forward-only pass computes per
    /// frame rather than per sample with the nearest upsampler (when hop >= its kernel).
    public var conditioningMultiplyAddsPerSample: Int {
        upsampler == .nearest && hop >= upsampleKernel ? layers * 2 * gatedChannels * conditionChannels : 0
    }
}

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
        let R = c.residualChannels, G = c.gatedChannels, S = c.skipChannels, C = c.conditionChannels
        input = Conv1d(inputChannels: 1, outputChannels: R)
        inputWeight = store.add("\(prefix).input.weight", shape: [1, R, 1])
        inputBias = store.add("\(prefix).input.bias", shape: [R])
        upsample = Conv1d(inputChannels: C, outputChannels: C, kernelSize: c.upsampleKernel, padding: (c.upsampleKernel - 1) / 2)
        transposedUpsample = c.upsampler == .transposed
            ? TransposedConv1d(inputChannels: C, outputChannels: C, stride: c.hop, kernelSize: c.upsampleKernel) : nil
        upsampleWeight = store.add("\(prefix).upsample.weight", shape: [c.upsampleKernel, C, C])
        upsampleBias = store.add("\(prefix).upsample.bias", shape: [C])
        layers = (0..<c.layers).map { l in
            let name = "\(prefix).layers.\(l)"
            return Layer(
                dilated: .causal(inputChannels: R, outputChannels: 2 * G, kernelSize: c.kernelSize, dilation: c.dilation(l)),
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
            uniform(layer.skipWeight, fanIn: c.gatedChannels); uniform(layer.skipBias, fanIn: c.gatedChannels)
            uniform(layer.residualWeight, fanIn: c.gatedChannels); uniform(layer.residualBias, fanIn: c.gatedChannels)
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
        var representatives: [Float], conditionTerms: [Float]
        /// repeat(c): (B, Cc, T); c_up: (B, Cc, T).
        var repeated: [Float], conditioned: [Float]
        /// x_res entering each layer and after the last: (L + 1, B, R, T) (2 slots without training).
        var residual: [Float]
        /// h of each layer: (L, B, 2G, T) (per worker one time tile, (2G, tile), without training).
        var preGate: [Float]
        /// Scratch: z (B, G, T) (per worker (G, tile) without training), and gradients.
        var gated: [Float], dGated: [Float], dPreGate: [Float], dResidual: [Float], dConditioned: [Float]
        /// Without training, per worker: a tile's layer input at the K taps' shifts stacked
        /// over its source and its conditioning, (KR + Cs + Cc, tile), and its skip and residual
        /// outputs, (S + R, tile). And one layer's weights stacked to match: (2G, KR + Cs + Cc)
        /// and (S + R, G).
        var stacked: [Float], outputs: [Float], stackedWeight: [Float], skipResidualWeight: [Float]
        /// The skip sum, (B, S, T).
        public var skip: [Float]
        /// The current layer's bias of h per utterance (B, 2G), and scratch for its gradient.
        var gateBias: [Float], dGateBias: [Float]

        init(config c: WaveNetStackConfig, batch: Int, frames: Int, training: Bool) {
            self.batch = batch
            self.frames = frames
            self.training = training
            length = frames * c.hop
            let T = length, R = c.residualChannels, G = c.gatedChannels
            frameRate = !training && c.upsampler == .nearest && c.hop >= c.upsampleKernel
            conditioned = frameRate ? [] : [Float](repeating: 0, count: batch * c.conditionChannels * T)
            repeated = c.upsampler == .nearest ? conditioned : []
            representatives = frameRate ? [Float](repeating: 0, count: batch * c.conditionChannels * frames * c.upsampleKernel) : []
            conditionTerms = frameRate ? [Float](repeating: 0, count: batch * 2 * G * frames * c.upsampleKernel) : []
            residual = [Float](repeating: 0, count: (training ? c.layers + 1 : 2) * batch * R * T)
            // Without training, h and z are only held for one time tile per worker.
            tile = max(1, min(T, WaveNetStack.forwardTile))
            workers = training ? 1 : max(1, min(Parallel.threads, (batch * T + tile - 1) / tile))
            let W = workers, K = c.kernelSize, C = c.conditionChannels, S = c.skipChannels, Cs = c.sourceChannels
            preGate = [Float](repeating: 0, count: training ? c.layers * batch * 2 * G * T : W * 2 * G * tile)
            gated = [Float](repeating: 0, count: training ? batch * G * T : W * G * tile)
            stacked = training ? [] : [Float](repeating: 0, count: W * (K * R + Cs + (frameRate ? 0 : C)) * tile)
            outputs = training ? [] : [Float](repeating: 0, count: W * (S + R) * tile)
            stackedWeight = training ? [] : [Float](repeating: 0, count: 2 * G * (K * R + Cs + C))
            skipResidualWeight = training ? [] : [Float](repeating: 0, count: (S + R) * G)
            dGated = training ? gated : []
            dPreGate = training ? [Float](repeating: 0, count: batch * 2 * G * T) : []
            dResidual = training ? [Float](repeating: 0, count: 2 * batch * R * T) : []
            dConditioned = training ? conditioned : []
            skip = [Float](repeating: 0, count: batch * c.skipChannels * T)
            gateBias = [Float](repeating: 0, count: batch * 2 * G)
            dGateBias = training ? gateBias : []
        }

        /// Slot of layer l's input residual.
        @inline(__always) func residualSlot(_ l: Int) -> Int { training ? l : l % 2 }
    }

    public func makeActivations(batch: Int, frames: Int, training: Bool = true) -> Activations {
        Activations(config: config, batch: batch, frames: frames, training: training)
    }

    /// c_up (B, Cc, T) into `a.conditioned` from the mel (B, Cc, F).
    func upsampleForward(_ a: Activations, mel: UnsafePointer<Float>, store: ParameterStore) {
        a.conditioned.withUnsafeMutableBufferPointer { out in
            a.repeated.withUnsafeMutableBufferPointer { repeated in
                upsample(mel: mel, batch: a.batch, frames: a.frames, into: out.baseAddress!, repeated: repeated.baseAddress, store: store)
            }
        }
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

    /// The nearest upsampler's c_up at `kernel` positions per frame into `a.representatives`
    /// (B, Cc, F * kernel): for kernel k and p = (k - 1) / 2, sample offsets 0 ..< p of each
    /// frame, offset p (which stands for every offset whose window stays inside the frame, up
    /// to hop - k + p), and hop - k + p + 1 ..< hop. c_up(t) = b + sum_j W_j mel(frame of
    /// t + j - p), zero outside the utterance, as the full-length convolution computes it.
    func representativeConditioning(_ a: Activations, mel: UnsafePointer<Float>, store: ParameterStore) {
        a.representatives.withUnsafeMutableBufferPointer { out in
            representatives(mel: mel, batch: a.batch, frames: a.frames, into: out.baseAddress!, store: store)
        }
    }

    /// Position (0 ..< upsampleKernel) standing for each sample offset (0 ..< hop) of a frame
    /// in `representatives`.
    var representativeOfOffset: [Int] {
        let k = config.upsampleKernel, p = (k - 1) / 2, hop = config.hop
        return (0..<hop).map { o in o < p ? o : (o <= hop - k + p ? p : o - hop + k) }
    }

    /// c_up at `upsampleKernel` positions per frame, (B, Cc, F * kernel), from the
    /// normalised mel (B, Cc, F); see `representativeConditioning`.
    func representatives(mel: UnsafePointer<Float>, batch B: Int, frames F: Int, into out: UnsafeMutablePointer<Float>, store: ParameterStore) {
        let c = config, C = c.conditionChannels, k = c.upsampleKernel, p = (k - 1) / 2, hop = c.hop
        let T = F * hop
        let weight = UnsafePointer(store.value(upsampleWeight)), bias = UnsafePointer(store.value(upsampleBias))
        // W_j mel for each tap j: (k, C, F) per utterance.
        let tapped = UnsafeMutablePointer<Float>.allocate(capacity: max(1, k * C * F))
        defer { tapped.deallocate() }
        for b in 0..<B {
            for j in 0..<k {
                BLAS.sgemm(m: C, n: F, k: C, a: weight + j * C * C, lda: C, b: mel + b * C * F, ldb: F, c: tapped + j * C * F, ldc: F)
            }
            let rows = out + b * C * F * k
            for f in 0..<F {
                for r in 0..<k {
                    let offset = r < p ? r : (r == p ? p : hop - k + r), t = f * hop + offset
                    for channel in 0..<C { rows[channel * F * k + f * k + r] = bias[channel] }
                    for j in 0..<k {
                        let source = t + j - p
                        guard source >= 0 && source < T else { continue }
                        let frame = source / hop
                        for channel in 0..<C { rows[channel * F * k + f * k + r] += tapped[(j * C + channel) * F + frame] }
                    }
                }
            }
        }
    }

    /// Layer `layer`'s bias of h for each of `batch` utterances into `out` (B, 2G): the dilated
    /// convolution's bias, plus `W_g e_b` with speaker conditioning (`speaker`: (B, E)). Every
    /// pass (training, tiled, incremental) takes the bias from here, so they agree.
    func gateBias(_ layer: Int, speaker: UnsafePointer<Float>?, batch B: Int, store: ParameterStore, into out: UnsafeMutablePointer<Float>) {
        let H = 2 * config.gatedChannels, E = config.speakerChannels
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
        let c = config, B = a.batch, T = a.length, R = c.residualChannels, G = c.gatedChannels
        let scale = Float(0.5.squareRoot())
        let w = { (e: ParameterStore.Entry) in UnsafePointer(store.value(e)) }
        upsampleForward(a, mel: mel, store: store)
        let stride = B * R * T, hStride = B * 2 * G * T
        a.residual.withUnsafeMutableBufferPointer { res in
            a.preGate.withUnsafeMutableBufferPointer { pre in
                input.forward(out: res.baseAddress!, inp: x, weight: w(inputWeight), bias: w(inputBias), batch: B, length: T)
                a.skip.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
                for (l, layer) in layers.enumerated() {
                    let xIn = res.baseAddress! + a.residualSlot(l) * stride, xOut = res.baseAddress! + a.residualSlot(l + 1) * stride
                    let h = pre.baseAddress! + l * hStride
                    a.gateBias.withUnsafeMutableBufferPointer { bias in
                        gateBias(l, speaker: speaker, batch: B, store: store, into: bias.baseAddress!)
                        for b in 0..<B {
                            layer.dilated.forward(out: h + b * 2 * G * T, inp: xIn + b * R * T, weight: w(layer.dilatedWeight),
                                                  bias: bias.baseAddress! + b * 2 * G, batch: 1, length: T)
                        }
                    }
                    layer.condition.forward(out: h, inp: a.conditioned, weight: w(layer.conditionWeight), bias: nil, batch: B, length: T, accumulate: true)
                    if let sourceConv = layer.source, let sourceWeight = layer.sourceWeight, let source {
                        sourceConv.forward(out: h, inp: source, weight: w(sourceWeight), bias: nil, batch: B, length: T, accumulate: true)
                    }
                    GatedUnit.forward(out: &a.gated, inp: h, batch: B, channels: G, length: T)
                    layer.skip.forward(out: &a.skip, inp: a.gated, weight: w(layer.skipWeight), bias: w(layer.skipBias), batch: B, length: T, accumulate: true)
                    layer.residual.forward(out: xOut, inp: a.gated, weight: w(layer.residualWeight), bias: w(layer.residualBias), batch: B, length: T)
                    for i in 0..<stride { xOut[i] = (xIn[i] + xOut[i]) * scale }
                }
            }
        }
    }

    /// Samples per time tile of forward-only activations made from now on.
    nonisolated(unsafe) public static var forwardTile = 512

    /// The forward pass without training activations: layer by layer, and within a layer in
    /// time tiles of `forwardTile` samples shared among the workers (`Parallel.threads`),
    /// each calling single-threaded BLAS on its own tiles, so a layer costs one meeting of the
    /// workers rather than a thread hand-off per product. Per tile the layer input at the K
    /// taps' shifts is stacked, so the taps are one product with k = KR (S-small: 192); the
    /// skip and residual outputs are one product of (S + R) rows; everything stays in cache.
    /// The conditioning term W_c c_up joins h from `conditionTerms` when c_up is constant over
    /// each frame's interior (the nearest upsampler, `Activations.frameRate`), which saves
    /// the k = Cc part of every layer's product (S-small: 80 of 272); otherwise c_up is
    /// stacked under the taps (k = KR + Cc). A source (sample-rate, Cs channels) is stacked
    /// right under the taps either way. The sums run in a different order from the training
    /// pass, so the two agree to Float32 rounding.
    func forwardTiled(_ a: Activations, x: UnsafePointer<Float>, mel: UnsafePointer<Float>, speaker: UnsafePointer<Float>?,
                      source: UnsafePointer<Float>?, store: ParameterStore) {
        let c = config, B = a.batch, T = a.length, F = a.frames, R = c.residualChannels, G = c.gatedChannels, S = c.skipChannels
        let C = c.conditionChannels, K = c.kernelSize, Cs = c.sourceChannels, KS = K * R + Cs, KC = KS + C, SR = S + R, hop = c.hop
        let frameRate = a.frameRate, reps = c.upsampleKernel, p = (reps - 1) / 2, rows = frameRate ? KS : KC
        let scale = Float(0.5.squareRoot())
        let w = { (e: ParameterStore.Entry) in UnsafePointer(store.value(e)) }
        let tile = a.tile, workers = a.workers
        let tilesPerUtterance = (T + tile - 1) / tile
        let blasThreads = BLAS.threads
        if workers > 1 { BLAS.setThreads(1) }
        defer { if workers > 1 { BLAS.setThreads(blasThreads) } }
        if frameRate { representativeConditioning(a, mel: mel, store: store) } else { upsampleForward(a, mel: mel, store: store) }
        let stride = B * R * T
        a.residual.withUnsafeMutableBufferPointer { res in
          a.preGate.withUnsafeMutableBufferPointer { hBuffer in
            a.gated.withUnsafeMutableBufferPointer { zBuffer in
              a.stacked.withUnsafeMutableBufferPointer { xBuffer in
                a.outputs.withUnsafeMutableBufferPointer { oBuffer in
                  a.stackedWeight.withUnsafeMutableBufferPointer { stackedW in
                    a.skipResidualWeight.withUnsafeMutableBufferPointer { skipResidualW in
                      a.skip.withUnsafeMutableBufferPointer { skip in
                        a.conditioned.withUnsafeBufferPointer { cond in
                          a.representatives.withUnsafeBufferPointer { representatives in
                            a.conditionTerms.withUnsafeMutableBufferPointer { terms in
                              a.gateBias.withUnsafeMutableBufferPointer { gateBiases in
                                let hAll = hBuffer.baseAddress!, zAll = zBuffer.baseAddress!, xAll = xBuffer.baseAddress!, oAll = oBuffer.baseAddress!
                                let wh = stackedW.baseAddress!, wsr = skipResidualW.baseAddress!
                                input.forward(out: res.baseAddress!, inp: x, weight: w(inputWeight), bias: w(inputBias), batch: B, length: T)
                                skip.update(repeating: 0)
                                for (l, layer) in layers.enumerated() {
                                    let dilation = c.dilation(l)
                                    // h = [W_0 .. W_{K-1} (W_s) (W_c)] [x(t - (K-1)d); ..; x(t); (s(t)); (c_up(t))] + bias.
                                    let dilatedW = w(layer.dilatedWeight), conditionW = w(layer.conditionWeight)
                                    let sourceW = layer.sourceWeight.map { w($0) }
                                    for o in 0..<(2 * G) {
                                        for k in 0..<K { (wh + o * KC + k * R).update(from: dilatedW + (k * 2 * G + o) * R, count: R) }
                                        if let sourceW { (wh + o * KC + K * R).update(from: sourceW + o * Cs, count: Cs) }
                                        (wh + o * KC + KS).update(from: conditionW + o * C, count: C)
                                    }
                                    wsr.update(from: w(layer.skipWeight), count: S * G)
                                    (wsr + S * G).update(from: w(layer.residualWeight), count: R * G)
                                    gateBias(l, speaker: speaker, batch: B, store: store, into: gateBiases.baseAddress!)
                                    if frameRate {
                                        // W_c c_up + bias of h at each frame's representative positions.
                                        for b in 0..<B {
                                            let out = terms.baseAddress! + b * 2 * G * F * reps
                                            for o in 0..<(2 * G) { (out + o * F * reps).update(repeating: gateBiases[b * 2 * G + o], count: F * reps) }
                                            BLAS.sgemm(m: 2 * G, n: F * reps, k: C, a: conditionW, lda: C, b: representatives.baseAddress! + b * C * F * reps,
                                                       ldb: F * reps, beta: 1, c: out, ldc: F * reps)
                                        }
                                    }
                                    let skipB = w(layer.skipBias), residualB = w(layer.residualBias)
                                    let input = res.baseAddress! + a.residualSlot(l) * stride, output = res.baseAddress! + a.residualSlot(l + 1) * stride
                                    let gateBias = UnsafePointer(gateBiases.baseAddress!), conditionTerms = frameRate ? UnsafePointer(terms.baseAddress!) : nil
                                    let count = B * tilesPerUtterance
                                    DispatchQueue.concurrentPerform(iterations: workers) { worker in
                                        let h = hAll + worker * 2 * G * tile, z = zAll + worker * G * tile
                                        let stackedX = xAll + worker * rows * tile, out = oAll + worker * SR * tile
                                        for index in (count * worker / workers)..<(count * (worker + 1) / workers) {
                                            let b = index / tilesPerUtterance, t0 = index % tilesPerUtterance * tile, n = min(tile, T - t0)
                                            let xIn = input + b * R * T, xOut = output + b * R * T
                                            // Tap k reads x[t - (K - 1 - k) d]; before the start it reads zeros.
                                            for k in 0..<K {
                                                let shift = (K - 1 - k) * dilation, zeros = min(n, max(0, shift - t0))
                                                for r in 0..<R {
                                                    let row = stackedX + (k * R + r) * n
                                                    if zeros > 0 { row.update(repeating: 0, count: zeros) }
                                                    if zeros < n { (row + zeros).update(from: xIn + r * T + t0 + zeros - shift, count: n - zeros) }
                                                }
                                            }
                                            if let source {
                                                let sb = source + b * Cs * T + t0
                                                for channel in 0..<Cs { (stackedX + (K * R + channel) * n).update(from: sb + channel * T, count: n) }
                                            }
                                            if let conditionTerms {
                                                let termsOfB = conditionTerms + b * 2 * G * F * reps
                                                for o in 0..<(2 * G) {
                                                    WaveNetStack.expandFrames(into: h + o * n, from: termsOfB + o * F * reps, start: t0, count: n, hop: hop,
                                                                              kernel: reps, reach: p)
                                                }
                                            } else {
                                                let cb = cond.baseAddress! + b * C * T + t0
                                                for channel in 0..<C { (stackedX + (KS + channel) * n).update(from: cb + channel * T, count: n) }
                                                let bias = gateBias + b * 2 * G
                                                for o in 0..<(2 * G) { (h + o * n).update(repeating: bias[o], count: n) }
                                            }
                                            BLAS.sgemm(m: 2 * G, n: n, k: rows, a: wh, lda: KC, b: stackedX, ldb: n, beta: 1, c: h, ldc: n)
                                            for channel in 0..<G {
                                                GatedUnit.forwardVector(out: z + channel * n, tanhInput: h + channel * n, sigmoidInput: h + (G + channel) * n, count: n)
                                            }
                                            BLAS.sgemm(m: SR, n: n, k: G, a: wsr, lda: G, b: z, ldb: n, beta: 0, c: out, ldc: n)
                                            // skip += W_s z + b_s; x_out = (x_in + (W_r z + b_r)) * sqrt(0.5)
                                            let sb = skip.baseAddress! + b * S * T + t0
                                            for o in 0..<S {
                                                let row = sb + o * T, source = out + o * n, bo = skipB[o]
                                                for t in 0..<n { row[t] += source[t] + bo }
                                            }
                                            for o in 0..<R {
                                                let src = xIn + o * T + t0, dst = xOut + o * T + t0, source = out + (S + o) * n, bo = residualB[o]
                                                for t in 0..<n { dst[t] = (src[t] + (source[t] + bo)) * scale }
                                            }
                                        }
                                    }
                                }
                              }
                            }
                          }
                        }
                      }
                    }
                  }
                }
              }
            }
          }
        }
    }

    /// Samples [start, start + count) of one row from its values at `kernel` positions per
    /// frame (see `representativeConditioning`): offsets below `reach` and from
    /// hop - kernel + reach + 1 on have their own values; the offsets between share one.
    @inline(__always)
    static func expandFrames(into row: UnsafeMutablePointer<Float>, from values: UnsafePointer<Float>, start: Int, count: Int, hop: Int,
                             kernel: Int, reach: Int) {
        var t = start
        let end = start + count
        while t < end {
            let f = t / hop, frameStart = f * hop, frameEnd = min(end, frameStart + hop), v = values + f * kernel
            while t < frameEnd && t - frameStart < reach { row[t - start] = v[t - frameStart]; t += 1 }
            let interiorEnd = min(frameEnd, frameStart + hop - kernel + reach + 1)
            if t < interiorEnd { (row + t - start).update(repeating: v[reach], count: interiorEnd - t); t = interiorEnd }
            while t < frameEnd { row[t - start] = v[t - frameStart - hop + kernel]; t += 1 }
        }
    }

    /// The speaker term of one layer from `a.dPreGate`: with r_b = sum_t dh[b, :, t],
    /// dW_g += sum_b r_b e_b^T and de_b += W_g^T r_b.
    func backwardSpeaker(_ a: Activations, weight entry: ParameterStore.Entry, speaker: UnsafePointer<Float>?,
                         dSpeaker: UnsafeMutablePointer<Float>?, store: ParameterStore) {
        guard let speaker else { preconditionFailure("a speaker-conditioned stack needs speaker embeddings") }
        let B = a.batch, T = a.length, H = 2 * config.gatedChannels, E = config.speakerChannels
        let weight = store.value(entry), dWeight = store.gradient(entry)
        a.dPreGate.withUnsafeBufferPointer { dh in
            a.dGateBias.withUnsafeMutableBufferPointer { r in
                for b in 0..<B {
                    for o in 0..<H { r[b * H + o] = VectorMath.sum(dh.baseAddress! + (b * H + o) * T, count: T) }
                }
                for b in 0..<B {
                    let e = speaker + b * E, rb = r.baseAddress! + b * H
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
        let c = config, B = a.batch, T = a.length, R = c.residualChannels, G = c.gatedChannels
        let scale = Float(0.5.squareRoot())
        let w = { (e: ParameterStore.Entry) in UnsafePointer(store.value(e)) }
        let g = { (e: ParameterStore.Entry) in weights ? store.gradient(e) : nil }
        let stride = B * R * T, hStride = B * 2 * G * T
        a.dConditioned.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        // dResidual holds two (B, R, T) buffers: the gradient of x_res after the layer and before it.
        a.dResidual.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        a.residual.withUnsafeBufferPointer { res in
            a.preGate.withUnsafeBufferPointer { pre in
                a.dResidual.withUnsafeMutableBufferPointer { dres in
                    var after = dres.baseAddress!, before = after + stride
                    for (l, layer) in layers.enumerated().reversed() {
                        let xIn = res.baseAddress! + l * stride, h = pre.baseAddress! + l * hStride
                        // x_out = (x_in + Res(z)) * scale
                        for i in 0..<stride { after[i] *= scale }
                        before.update(from: after, count: stride)
                        GatedUnit.forward(out: &a.gated, inp: h, batch: B, channels: G, length: T)
                        a.dGated.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
                        layer.residual.backward(dInp: &a.dGated, dWeight: g(layer.residualWeight), dBias: g(layer.residualBias),
                                                dOut: after, inp: a.gated, weight: w(layer.residualWeight), batch: B, length: T)
                        layer.skip.backward(dInp: &a.dGated, dWeight: g(layer.skipWeight), dBias: g(layer.skipBias),
                                            dOut: dSkip, inp: a.gated, weight: w(layer.skipWeight), batch: B, length: T)
                        a.dPreGate.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
                        GatedUnit.backward(dInp: &a.dPreGate, dOut: a.dGated, inp: h, batch: B, channels: G, length: T)
                        if weights, let speakerWeight = layer.speakerWeight {
                            backwardSpeaker(a, weight: speakerWeight, speaker: speaker, dSpeaker: dSpeaker, store: store)
                        }
                        if weights {
                            layer.condition.backward(dInp: &a.dConditioned, dWeight: g(layer.conditionWeight), dBias: nil, dOut: a.dPreGate,
                                                     inp: a.conditioned, weight: w(layer.conditionWeight), batch: B, length: T)
                            if let sourceConv = layer.source, let sourceWeight = layer.sourceWeight {
                                guard let source else { preconditionFailure("a source-conditioned stack needs its source") }
                                sourceConv.backward(dInp: nil, dWeight: g(sourceWeight), dBias: nil, dOut: a.dPreGate, inp: source,
                                                    weight: w(sourceWeight), batch: B, length: T)
                            }
                        }
                        layer.dilated.backward(dInp: before, dWeight: g(layer.dilatedWeight), dBias: g(layer.dilatedBias),
                                               dOut: a.dPreGate, inp: xIn, weight: w(layer.dilatedWeight), batch: B, length: T)
                        swap(&after, &before)
                    }
                    // `after` now holds the gradient of the first x_res.
                    input.backward(dInp: dX, dWeight: g(inputWeight), dBias: g(inputBias), dOut: after, inp: x, weight: w(inputWeight), batch: B, length: T)
                }
            }
        }
        if weights {
            if let transposed = transposedUpsample {
                a.dConditioned.withUnsafeBufferPointer { d in
                    transposed.backward(dInp: nil, dWeight: g(upsampleWeight), dBias: g(upsampleBias), dOut: d.baseAddress!, inp: mel,
                                        weight: w(upsampleWeight), batch: B, frames: a.frames)
                }
            } else {
                upsample.backward(dInp: nil, dWeight: g(upsampleWeight), dBias: g(upsampleBias), dOut: a.dConditioned, inp: a.repeated,
                                  weight: w(upsampleWeight), batch: B, length: T)
            }
        }
    }
}
