import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine

/// WaveGlow's sizes (DESIGN.md section 6): the audio squeezed into `group` channels of
/// T / group samples, `flows` steps of (invertible 1x1 convolution, affine coupling), and
/// `earlySize` channels leaving early every `earlyEvery` steps. Each coupling's network has
/// `layers` non-causal dilated layers (dilation 2^i, kernel `kernelSize`) of
/// `residualChannels` channels. The mel (`melChannels`, frames of `hop` samples) is repeated
/// to the sample rate, smoothed by a learned centred convolution of `upsampleKernel` taps,
/// and squeezed like the audio. With a `source` the sine excitation made from the
/// utterance's F0 (DESIGN.md section 10) is squeezed too and joins the mel as one more
/// conditioning band, and a `pitch` predictor, trained beside the flow, gives the F0 when
/// only a mel is at hand. With `speakers`, each utterance's row of a learned table of
/// `speakerChannels` values conditions every step as constant channels.
///
/// With `linearPrediction` P > 0 the flow models the excitation instead of the waveform
/// (LP-WaveGlow): e_t = (x_t - p_t) / sigma_t, p_t the order-P prediction from the past
/// samples that the mel alone gives (`MelLinearPrediction`) and sigma_t the per-sample
/// deviation of its frame's prediction error. x -> e is lower-triangular with diagonal
/// 1 / sigma_t, so the likelihood stays exact: log p(x) = log p(e) - sum_t log sigma_t.
/// Sampling inverts the flow to e and filters sigma e through 1 / A(z): an untrained flow
/// already renders noise under the mel's spectral envelope at its level.
///
/// With a source and `sourceGain` g0 > 0 the flow models the excitation (or waveform) less
/// g s_t, the source times a gain g learned from g0: a shift, so the likelihood is unchanged
/// in form, and sampling adds g s back, so even an untrained flow renders the harmonics.
public struct WaveGlowConfig: ModelConfig {
    public var flows = 12
    public var group = 8
    public var earlyEvery = 4
    public var earlySize = 2
    public var layers = 8
    public var residualChannels = 64
    public var kernelSize = 3
    /// The standard deviation of z in training (NVIDIA's code: 1.0).
    public var sigma: Float = 1
    public var upsampleKernel = 3
    /// The mel front end it is conditioned on (its bands and hop).
    public var mel = MelSettings()
    /// The source excitation it is conditioned on (nil: none).
    public var source: SineSource?
    /// The pitch predictor it carries (with a source).
    public var pitch: PitchPredictorConfig?
    /// The speakers of its embedding table (empty: not speaker-conditioned) and the width of
    /// an embedding.
    public var speakers: [String] = []
    public var speakerChannels = 0
    /// The order of the linear prediction from the mel under the flow (0: none).
    public var linearPrediction = 0
    /// The audio's bit depth (the prediction's quantisation-noise floor).
    public var bits = 16
    /// The start of the learned gain of the source subtracted before the flow (0: none).
    public var sourceGain: Float = 0

    public var melChannels: Int { mel.nMels }
    public var hop: Int { mel.hopLength }
    /// The conditioning's bands before squeezing: the mel's, and the source's one.
    public var conditionBands: Int { melChannels + (source == nil ? 0 : 1) }
    /// The couplings' conditioning channels: the squeezed bands, then the speaker's embedding.
    public var conditionChannels: Int { conditionBands * group + speakerChannels }

    public init(flows: Int = 12, group: Int = 8, earlyEvery: Int = 4, earlySize: Int = 2, layers: Int = 8, residualChannels: Int = 64,
                kernelSize: Int = 3, sigma: Float = 1, upsampleKernel: Int = 3, mel: MelSettings = MelSettings(), source: SineSource? = nil,
                pitch: PitchPredictorConfig? = nil, speakers: [String] = [], speakerChannels: Int = 0, linearPrediction: Int = 0,
                bits: Int = 16, sourceGain: Float = 0) {
        self.flows = flows; self.group = group; self.earlyEvery = earlyEvery; self.earlySize = earlySize; self.layers = layers
        self.residualChannels = residualChannels; self.kernelSize = kernelSize; self.sigma = sigma; self.upsampleKernel = upsampleKernel
        self.mel = mel
        self.source = source
        self.pitch = pitch
        self.speakers = speakers
        self.speakerChannels = speakerChannels
        self.linearPrediction = linearPrediction
        self.bits = bits
        self.sourceGain = sourceGain
    }

    enum CodingKeys: String, CodingKey {
        case flows, group, earlyEvery, earlySize, layers, residualChannels, kernelSize, sigma, upsampleKernel, mel, source, pitch
        case speakers, speakerChannels, linearPrediction, bits, sourceGain
    }

    /// Checkpoints from before speaker conditioning and linear prediction lack their keys.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        flows = try c.decode(Int.self, forKey: .flows)
        group = try c.decode(Int.self, forKey: .group)
        earlyEvery = try c.decode(Int.self, forKey: .earlyEvery)
        earlySize = try c.decode(Int.self, forKey: .earlySize)
        layers = try c.decode(Int.self, forKey: .layers)
        residualChannels = try c.decode(Int.self, forKey: .residualChannels)
        kernelSize = try c.decode(Int.self, forKey: .kernelSize)
        sigma = try c.decode(Float.self, forKey: .sigma)
        upsampleKernel = try c.decode(Int.self, forKey: .upsampleKernel)
        mel = try c.decode(MelSettings.self, forKey: .mel)
        source = try c.decodeIfPresent(SineSource.self, forKey: .source)
        pitch = try c.decodeIfPresent(PitchPredictorConfig.self, forKey: .pitch)
        speakers = try c.decodeIfPresent([String].self, forKey: .speakers) ?? []
        speakerChannels = try c.decodeIfPresent(Int.self, forKey: .speakerChannels) ?? 0
        linearPrediction = try c.decodeIfPresent(Int.self, forKey: .linearPrediction) ?? 0
        bits = try c.decodeIfPresent(Int.self, forKey: .bits) ?? 16
        sourceGain = try c.decodeIfPresent(Float.self, forKey: .sourceGain) ?? 0
    }

    /// Whether channels leave before flow `k` (every `earlyEvery` flows, not before the first).
    public func exits(before k: Int) -> Bool { k > 0 && k % earlyEvery == 0 }

    /// The channels flow `k` transforms.
    public func channels(atFlow k: Int) -> Int { group - earlySize * (k / earlyEvery) }

    /// Where the channels that leave before flow `k` sit in z (the early outputs first, in
    /// order, then the last flow's output, as NVIDIA's `glow.py` concatenates them).
    public func exitOffset(before k: Int) -> Int { earlySize * (k / earlyEvery - 1) }

    /// Where the last flow's output sits in z.
    public var finalOffset: Int { group - channels(atFlow: flows - 1) }

    /// What is wrong with these sizes, if anything.
    public func problems() -> [String] {
        var found: [String] = mel.problems()
        if !(1...64).contains(flows) { found.append("flows \(flows) is outside 1...64") }
        if !(2...64).contains(group) { found.append("group \(group) is outside 2...64") }
        if !(1...64).contains(layers) { found.append("layers \(layers) is outside 1...64") }
        if !(1...1024).contains(residualChannels) { found.append("residual_channels \(residualChannels) is outside 1...1024") }
        if !(1...31).contains(kernelSize) || !(1...31).contains(upsampleKernel) { found.append("kernel sizes must be in 1...31") }
        if !(sigma > 0 && sigma <= 10) { found.append("sigma \(sigma) is outside (0, 10]") }
        if group % 2 != 0 { found.append("group \(group) must be even") }
        if !(1...64).contains(earlyEvery) { found.append("early_every \(earlyEvery) is outside 1...64") }
        if !(0...64).contains(earlySize) { found.append("early_size \(earlySize) is outside 0...64") }
        if kernelSize % 2 == 0 || upsampleKernel % 2 == 0 { found.append("kernel sizes must be odd") }
        if hop < 1 || hop % max(group, 1) != 0 { found.append("hop_length (\(hop)) must be a multiple of group (\(group))") }
        found += source?.problems().map { "source: " + $0 } ?? []
        found += MelLinearPrediction.problems(order: linearPrediction, mel: mel)
        if !(8...32).contains(bits) { found.append("bits \(bits) is outside 8...32") }
        if !(sourceGain >= 0 && sourceGain <= 100) { found.append("source_gain \(sourceGain) is outside 0...100") }
        if sourceGain > 0 && source == nil { found.append("a source gain without a source") }
        if speakers.isEmpty != (speakerChannels == 0) || !(0...1024).contains(speakerChannels) {
            found.append("speakers (\(speakers.count)) and speaker_channels (\(speakerChannels)) must both be set or both be none, channels at most 1024")
        }
        if let pitch {
            if source == nil { found.append("a pitch predictor without a source") }
            if pitch.melChannels != melChannels { found.append("the pitch predictor reads \(pitch.melChannels) bands, the mel has \(melChannels)") }
            found += pitch.problems().map { "pitch." + $0 }
        }
        if found.isEmpty {
            for k in 0..<flows where channels(atFlow: k) < 2 || channels(atFlow: k) % 2 != 0 {
                found.append("flow \(k) would transform \(channels(atFlow: k)) channels; every flow needs an even number of at least 2")
                break
            }
        }
        return found
    }

    /// (B, T / group) from a sample mask (B, T; nil: all real): 1 for a squeezed step whose
    /// samples are all real, 0 for one that holds padding. The loss counts the 1s.
    public func stepMask(_ mask: UnsafePointer<Float>?, rows B: Int, length T: Int) -> [Float] {
        let G = group, Tq = T / G
        guard let mask else { return [Float](repeating: 1, count: B * Tq) }
        return (0..<(B * Tq)).map { i in (0..<G).allSatisfy { mask[(i / Tq) * T + (i % Tq) * G + $0] != 0 } ? 1 : 0 }
    }

    /// Multiply-adds per output sample of one pass as it runs (the couplings' networks, the
    /// 1x1 convolutions, the conditioning layers and the upsampler), for comparison with a
    /// student's. The conditioning layers multiply the mel and speaker columns once per run of
    /// equal vectors (`ConditioningRuns`, 3 per frame at WG-small's shape), the source's at
    /// every step; `everyStep` counts them at every step, as a plain implementation runs.
    public func multiplyAddsPerSample(everyStep: Bool = false) -> Int {
        let R = residualChannels, K = kernelSize, O = 2 * R * layers
        let shared = melChannels * group + speakerChannels, sourceRows = source == nil ? 0 : group
        let stepsPerFrame = hop / group, runsPerFrame = everyStep ? stepsPerFrame : ConditioningRuns.perFrame(config: self)
        var steps = 0
        for k in 0..<flows {
            let r = channels(atFlow: k), h = r / 2
            steps += r * r + h * R + sourceRows * O + layers * K * R * 2 * R + (layers - 1) * R * 2 * R + R * R + R * r
        }
        return steps / group + flows * shared * O * runsPerFrame / hop + melChannels * melChannels * upsampleKernel
    }
}

/// WaveGlow (Prenger, Valle and Catanzaro 2019): a flow from audio to Gaussian noise trained
/// by maximum likelihood, written to the conventions of NVIDIA's `glow.py`. The audio (B, T)
/// is squeezed to x (B, group, T / group) with x[b, g, t] = audio[b, t * group + g]; flow k
/// multiplies its channels by an invertible matrix W_k (log|det W_k| by LU), splits them into
/// halves a and b, and maps b to exp(log s) b + t with (t, log s) from a WaveNet-like network
/// of a and the conditioning (the first half of its output is t, the second log s). The
/// loss per sample is `[sum z^2 / (2 sigma^2) - sum log s - T' B sum_k log|det W_k|] / (B T)`.
/// Weight normalisation, which NVIDIA's code adds to the coupling layers, is left out: it
/// changes the optimisation, not the model.
public final class WaveGlow: CheckpointedModel, @unchecked Sendable {
    public static let kind = "parawave.waveglow"
    public static let role = "waveglow"
    public let config: WaveGlowConfig
    public let store: ParameterStore
    /// Per-band normalisation of the log-mel, (n_mels) each (the training data's statistics).
    public var melMean: [Float]
    public var melStd: [Float]
    public var mel: MelSettings { config.mel }
    public var speakers: [String] { config.speakers }
    public var source: SineSource? { config.source }
    public let pitch: PitchPredictor?

    public convenience init(config: WaveGlowConfig) { self.init(config: config, store: ParameterStore()) }
    let upsample: Conv1d
    let upsampleWeight: ParameterStore.Entry, upsampleBias: ParameterStore.Entry
    public let couplings: [Coupling]
    let mixing: [Conv1d]
    let mixingWeights: [ParameterStore.Entry]
    let speakerTable: SpeakerTable?
    /// The linear prediction from the mel under the flow (nil: the flow models the waveform).
    public let linearPrediction: MelLinearPrediction?
    /// g, the learned gain of the source subtracted before the flow (with `sourceGain` > 0).
    let sourceGainEntry: ParameterStore.Entry?

    public init(config: WaveGlowConfig, store: ParameterStore) {
        precondition(config.problems().isEmpty, "invalid WaveGlow config: \(config.problems())")
        self.config = config
        self.store = store
        melMean = [Float](repeating: 0, count: config.melChannels)
        melStd = [Float](repeating: 1, count: config.melChannels)
        let C = config.melChannels
        upsample = Conv1d(inputChannels: C, outputChannels: C, kernelSize: config.upsampleKernel, padding: (config.upsampleKernel - 1) / 2)
        upsampleWeight = store.add("waveglow.upsample.weight", shape: [config.upsampleKernel, C, C])
        upsampleBias = store.add("waveglow.upsample.bias", shape: [C])
        var couplings: [Coupling] = [], mixing: [Conv1d] = [], weights: [ParameterStore.Entry] = []
        for k in 0..<config.flows {
            let r = config.channels(atFlow: k)
            // The 1x1 convolutions mix the audio itself: float32 in bfloat16 runs too.
            var mix = Conv1d(inputChannels: r, outputChannels: r)
            mix.keepsFloat32 = true
            mixing.append(mix)
            weights.append(store.add("waveglow.convinv.\(k).weight", shape: [1, r, r]))
            couplings.append(Coupling(prefix: "waveglow.WN.\(k)", channels: r, config: config, store: store))
        }
        self.couplings = couplings
        self.mixing = mixing
        mixingWeights = weights
        speakerTable = config.speakers.isEmpty ? nil
            : SpeakerTable(prefix: "waveglow", speakers: config.speakers.count, channels: config.speakerChannels, store: store)
        linearPrediction = config.linearPrediction > 0 ? MelLinearPrediction(mel: config.mel, order: config.linearPrediction, bits: config.bits) : nil
        sourceGainEntry = config.sourceGain > 0 ? store.add("waveglow.source_gain", shape: [1]) : nil
        // Last in the store: the optimizer clips it on its own (`parameterGroups`).
        pitch = config.pitch.map { PitchPredictor(config: $0, prefix: "waveglow.pitch", store: store) }
    }

    /// The optimizer's groups: the flow and, clipped on its own, the pitch predictor.
    public func parameterGroups(clipNorm: Double) -> [ParameterGroup] {
        ParameterGroup.split(store, at: pitch?.entries.first, clipNorm: clipNorm)
    }

    /// The source of an utterance of `samples` samples from its F0 track on the mel's frames
    /// (Hz, 0 where unvoiced); nil without source conditioning.
    public func sourceSignal(f0: [Float], samples: Int, initialPhase: Double = 0) -> [Float]? {
        config.source?.signal(f0: f0, hop: config.hop, sampleRate: config.mel.sampleRate, samples: samples, initialPhase: initialPhase)
    }

    /// Random orthogonal W_k with determinant +1 (Glow's initialisation), PyTorch's default
    /// uniform bound 1/sqrt(fan-in) for the networks, and each network's last layer at zero,
    /// so every coupling starts as the identity.
    public func initialise(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        let C = config.melChannels
        let bound = 1 / Float(C * config.upsampleKernel).squareRoot()
        store.initUniform(upsampleWeight, bound: bound, generator: &generator)
        store.initUniform(upsampleBias, bound: bound, generator: &generator)
        for (k, entry) in mixingWeights.enumerated() {
            let r = config.channels(atFlow: k)
            var q = LAPACK.orthogonalFactor((0..<(r * r)).map { _ in Double(generator.normal()) }, n: r)
            if let det = LAPACK.logAbsDeterminant(q, n: r), det.sign < 0 { for i in 0..<r { q[i * r] = -q[i * r] } }
            let w = store.value(entry)
            for i in 0..<(r * r) { w[i] = Float(q[i]) }
        }
        for coupling in couplings { coupling.initialise(store, generator: &generator) }
        speakerTable?.initialise(store, generator: &generator)
        if let sourceGainEntry { store.fill(sourceGainEntry, config.sourceGain) }
        pitch?.initialise(store, generator: &generator)
    }

    /// Buffers of one pass over `batch` utterances of `frames` mel frames.
    public final class Activations {
        public let batch: Int, frames: Int, length: Int, squeezed: Int
        let normalised: FloatBuffer, repeated: FloatBuffer, upsampled: FloatBuffer, conditioning: FloatBuffer, dConditioning: FloatBuffer, dUpsampled: FloatBuffer
        /// Per flow: its input (B, r, T'), the mixed channels y = W x, the network's input a
        /// (the first half of y) and output (t; log s), and the network's own activations.
        let inputs: [FloatBuffer], mixed: [FloatBuffer], halves: [FloatBuffer], outputs: [FloatBuffer]
        let networks: [Coupling.Activations]
        /// z (B, group, T'): the early outputs, then the last flow's output.
        public let z: FloatBuffer
        /// Scratch of the backward pass and the inverse.
        let dCurrent: FloatBuffer, dPrevious: FloatBuffer, dOutput: FloatBuffer, dHalf: FloatBuffer, dMixed: FloatBuffer

        /// False for the inverse pass alone: one flow's buffers, reused by every flow.
        public let training: Bool
        /// The batch's speakers (rows of the table) and their embeddings (B, E).
        var speakers: [Int] = [], speakerVectors: [Float]
        /// The batch's sources (B, T), kept for the source gain's gradient.
        var sourceSamples: [Float] = []
        /// (B, T'): 1 for a squeezed step whose samples are all real, 0 for one that holds
        /// padding (all 1 without a mask); the loss's sample count n.
        var stepMask: [Float] = []
        var lossSamples = 1.0

        /// The squeezed steps whose conditioning vectors are equal, as runs (see
        /// `ConditioningRuns`), and those vectors, one per run (B, conditionChannels, runs).
        public let runs: ConditioningRuns
        let representatives: FloatBuffer

        init(config c: WaveGlowConfig, batch: Int, frames: Int, training: Bool, frameRateConditioning: Bool) {
            self.batch = batch
            self.frames = frames
            self.training = training
            length = frames * c.hop
            squeezed = length / c.group
            let runs = ConditioningRuns(config: c, length: length, enabled: frameRateConditioning)
            self.runs = runs
            representatives = FloatBuffer(batch * c.conditionChannels * runs.count)
            let B = batch, Tq = squeezed, C = c.melChannels
            let slots = training ? c.flows : 1
            func channels(_ k: Int) -> Int { training ? c.channels(atFlow: k) : c.group }
            normalised = FloatBuffer(B * C * frames)
            repeated = FloatBuffer(B * C * length)
            upsampled = FloatBuffer(B * C * length)
            dUpsampled = FloatBuffer(training ? B * C * length : 0)
            conditioning = FloatBuffer(B * c.conditionChannels * Tq)
            dConditioning = FloatBuffer(training ? B * c.conditionChannels * Tq : 0)
            speakerVectors = [Float](repeating: 0, count: B * c.speakerChannels)
            inputs = (0..<slots).map { FloatBuffer(B * channels($0) * Tq) }
            mixed = (0..<slots).map { FloatBuffer(B * channels($0) * Tq) }
            halves = (0..<slots).map { FloatBuffer(B * channels($0) / 2 * Tq) }
            outputs = (0..<slots).map { FloatBuffer(B * channels($0) * Tq) }
            networks = (0..<slots).map { _ in Coupling.Activations(config: c, batch: B, length: Tq, runs: runs.count, training: training) }
            z = FloatBuffer(B * c.group * Tq)
            dCurrent = FloatBuffer(B * c.group * Tq)
            dPrevious = FloatBuffer(B * c.group * Tq)
            dOutput = FloatBuffer(training ? B * c.group * Tq : 0)
            dHalf = FloatBuffer(training ? B * c.group / 2 * Tq : 0)
            dMixed = FloatBuffer(training ? B * c.group * Tq : 0)
        }
    }

    /// Buffers for `forward` and `backward` (`training`), or for `inverse` alone. Without
    /// `frameRateConditioning` the couplings' conditioning layers multiply every squeezed
    /// step's vector, equal or not (the reference the shared products are tested against).
    public func makeActivations(batch: Int, frames: Int, training: Bool = true, frameRateConditioning: Bool = true) -> Activations {
        Activations(config: config, batch: batch, frames: frames, training: training, frameRateConditioning: frameRateConditioning)
    }

    /// The parts of the loss per sample (nats): z's Gaussian term sum z^2 / (2 sigma^2), the
    /// couplings' -sum log s and the convolutions' -sum log|det W|, each over B T.
    /// With linear prediction, `excitationScale` is sum_t log sigma_t over B T: the
    /// Jacobian of x -> e, constant in the parameters.
    public struct Loss: Sendable {
        public var gaussian: Double, logScale: Double, logDeterminant: Double, excitationScale: Double

        public init(gaussian: Double, logScale: Double, logDeterminant: Double, excitationScale: Double = 0) {
            self.gaussian = gaussian
            self.logScale = logScale
            self.logDeterminant = logDeterminant
            self.excitationScale = excitationScale
        }
        /// The training loss, as NVIDIA's code reports it (and the excitation's scale term).
        public var total: Double { gaussian + logScale + logDeterminant + excitationScale }
        /// The negative log-likelihood per sample with the Gaussian's constant, in nats.
        public func negativeLogLikelihood(sigma: Float) -> Double { total + 0.5 * log(2 * Double.pi) + log(Double(sigma)) }
    }

    /// z of `audio` (B, T) given the raw log-mel `mel` (B, C, F) (normalised here by
    /// `melMean` and `melStd`), with every activation the backward pass needs; returns the
    /// loss's parts per sample. With `totalRows` (data parallelism: these rows are part of a
    /// batch of that many) the parts are divided by the whole batch's samples, so that the
    /// parts' losses and gradients add up to the whole batch's. A source-conditioned WaveGlow
    /// needs `source` (B, T), each row the utterance's `sourceSignal`.
    ///
    /// With a `mask` (B, T; 0 where a crop is padded past its utterance's end) the loss
    /// counts only the squeezed steps whose samples are all real, and is divided by their
    /// samples (`maskedTotal`: the whole batch's, with data parallelism). The other steps
    /// pass through the couplings unchanged (their exact zeros would otherwise reward an
    /// unbounded log s) and are context for their neighbours; with linear prediction the padding's excitation is 0, so
    /// the prediction's error at the step from audio into silence (where the mel's error
    /// scale falls to the 16-bit floor) reaches no network.
    @discardableResult
    public func forward(_ a: Activations, audio: UnsafePointer<Float>, mel: UnsafePointer<Float>, source: UnsafePointer<Float>? = nil,
                        speakers: [Int]? = nil, totalRows: Int? = nil, mask: UnsafePointer<Float>? = nil, maskedTotal: Int? = nil) -> Loss {
        precondition(a.training, "forward needs training activations")
        let c = config, B = a.batch, Tq = a.squeezed, G = c.group, sigma = Double(c.sigma)
        a.stepMask = c.stepMask(mask, rows: B, length: a.length)
        let realSteps = a.stepMask.reduce(0, +)
        a.lossSamples = Double(maskedTotal ?? (mask == nil ? (totalRows ?? B) * a.length : Int(realSteps) * G))
        conditioningForward(a, mel: mel, source: source, speakers: speakers)
        // With linear prediction the flow's input is the excitation e (B, T) of the audio.
        var excitation: [Float] = [], excitationScale = 0.0
        if let lp = linearPrediction {
            excitation = [Float](repeating: 0, count: B * a.length)
            var prediction = [Float](repeating: 0, count: a.length)
            for b in 0..<B {
                let frames = excitationFrames(mel: mel + b * c.melChannels * a.frames, frames: a.frames)
                let x = audio + b * a.length
                lp.predict(x, length: a.length, coefficients: frames.coefficients, frames: a.frames, into: &prediction)
                for t in 0..<a.length where mask?[b * a.length + t] ?? 1 != 0 {
                    let logSigma = frames.logSigma[lp.frame(ofSample: t, frames: a.frames)]
                    excitation[b * a.length + t] = (x[t] - prediction[t]) * exp(-logSigma)
                    if a.stepMask[b * Tq + t / G] != 0 { excitationScale += Double(logSigma) }
                }
            }
        }
        // x[b, g, t] = audio[b, t * group + g] (less g s), into the first flow's input.
        let x0 = a.inputs[0].pointer
        excitation.withUnsafeBufferPointer { e in
            let input = linearPrediction == nil ? audio : UnsafePointer(e.baseAddress!)
            for b in 0..<B { for g in 0..<G { for t in 0..<Tq { x0[(b * G + g) * Tq + t] = input[b * a.length + t * G + g] } } }
        }
        if let sourceGainEntry, let source {
            let gain = store.value(sourceGainEntry)[0]
            a.sourceSamples = Array(UnsafeBufferPointer(start: source, count: B * a.length))
            for b in 0..<B { for g in 0..<G { for t in 0..<Tq { x0[(b * G + g) * Tq + t] -= gain * source[b * a.length + t * G + g] } } }
        }
        var logScale = 0.0, logDeterminant = 0.0
        for k in 0..<c.flows {
            let r = c.channels(atFlow: k), h = r / 2
            if c.exits(before: k) {
                // The first earlySize channels of the previous flow's output leave to z.
                let rp = c.channels(atFlow: k - 1), e = c.earlySize, offset = c.exitOffset(before: k), mixedPrevious = a.mixed[k - 1].pointer
                for b in 0..<B {
                    // The previous flow's output is (a; b') held as (mixed[:h] ; the coupled half).
                    for ch in 0..<rp {
                        let source = mixedPrevious + (b * rp + ch) * Tq
                        let target = ch < e ? a.z.pointer + (b * G + offset + ch) * Tq : a.inputs[k].pointer + (b * r + ch - e) * Tq
                        target.update(from: source, count: Tq)
                    }
                }
            } else if k > 0 {
                let rp = c.channels(atFlow: k - 1)
                a.inputs[k].pointer.update(from: a.mixed[k - 1].pointer, count: B * rp * Tq)
            }
            // y = W x.
            let w = UnsafePointer(store.value(mixingWeights[k]))
            mixing[k].forward(out: a.mixed[k].pointer, inp: a.inputs[k].pointer, weight: w, bias: nil, batch: B, length: Tq)
            if let det = LAPACK.logAbsDeterminant((0..<(r * r)).map { Double(w[$0]) }, n: r) { logDeterminant += Double(realSteps) * det.logAbs }
            // (t; log s) = WN(a), then b <- exp(log s) b + t, in place in `mixed`.
            let half = a.halves[k].pointer, y = a.mixed[k].pointer, out = a.outputs[k].pointer
            for b in 0..<B { (half + b * h * Tq).update(from: y + b * r * Tq, count: h * Tq) }
            couplings[k].forward(a.networks[k], input: half, conditioning: a.sharedConditioning, out: out, store: store)
            for b in 0..<B {
                let tRows = out + b * r * Tq, sRows = tRows + h * Tq, bRows = y + (b * r + h) * Tq
                // A step that holds padding passes through unchanged: outside the loss, its
                // zeros would reward any log s, which grows until exp(s) overflows.
                let steps = a.stepMask.withUnsafeBufferPointer { $0.baseAddress! + b * Tq }
                for i in 0..<(h * Tq) where steps[i % Tq] != 0 {
                    let s = sRows[i]
                    logScale += Double(s)
                    bRows[i] = exp(s) * bRows[i] + tRows[i]
                }
            }
        }
        // The last flow's output is z's final channels.
        let last = c.flows - 1, rl = c.channels(atFlow: last), offset = c.finalOffset
        for b in 0..<B { (a.z.pointer + (b * G + offset) * Tq).update(from: a.mixed[last].pointer + b * rl * Tq, count: rl * Tq) }
        var squares = 0.0
        for i in 0..<(B * G * Tq) where a.stepMask[(i / (G * Tq)) * Tq + i % Tq] != 0 { squares += Double(a.z[i]) * Double(a.z[i]) }
        let n = a.lossSamples
        return Loss(gaussian: squares / (2 * sigma * sigma) / n, logScale: -logScale / n, logDeterminant: -logDeterminant / n,
                    excitationScale: excitationScale / n)
    }

    /// A raw log-mel's (C, F) frame predictors and each frame's ln sigma, the deviation per
    /// sample of its prediction error.
    func excitationFrames(mel: UnsafePointer<Float>, frames F: Int) -> (coefficients: [Float], logSigma: [Float]) {
        guard let lp = linearPrediction else { return ([], []) }
        var coefficients = [Float](repeating: 0, count: F * lp.order), logRMS = [Float](repeating: 0, count: F)
        lp.analyse(logMel: mel, frames: F, coefficients: &coefficients, logRMS: &logRMS)
        return (coefficients, logRMS.map { $0 + Float(lp.logDeviationPerRMS) })
    }

    /// The waveform of an excitation (T) in place: e sigma_t through the synthesis filter.
    func shapeExcitation(_ y: UnsafeMutablePointer<Float>, length T: Int, frames: (coefficients: [Float], logSigma: [Float])) {
        guard let lp = linearPrediction else { return }
        let F = frames.logSigma.count
        for t in 0..<T { y[t] *= exp(frames.logSigma[lp.frame(ofSample: t, frames: F)]) }
        lp.synthesize(y, length: T, coefficients: frames.coefficients, frames: F)
    }

    /// Adds the gradient of the loss per sample (as `forward` returned it) to every parameter's
    /// gradient in `store`, from the activations of the last `forward`. The mixed channels of
    /// `a` are overwritten. The loss's mask and sample count are the forward pass's.
    public func backward(_ a: Activations) {
        let c = config, B = a.batch, Tq = a.squeezed, G = c.group, sigma = c.sigma
        let n = Float(a.lossSamples), stepMask = a.stepMask, realSteps = Double(stepMask.reduce(0, +))
        a.dConditioning.zero()
        // dL/dz = z / (sigma^2 n) for the last flow's output.
        let last = c.flows - 1, offset = c.finalOffset
        var r = c.channels(atFlow: last)
        var dCurrent = a.dCurrent.pointer, dPrevious = a.dPrevious.pointer
        for b in 0..<B {
            for i in 0..<(r * Tq) { dCurrent[b * r * Tq + i] = a.z[(b * G + offset) * Tq + i] / (sigma * sigma * n) * stepMask[b * Tq + i % Tq] }
        }
        for k in stride(from: last, through: 0, by: -1) {
            r = c.channels(atFlow: k)
            let h = r / 2
            let out = a.outputs[k].pointer, y = a.mixed[k].pointer, dOut = a.dOutput.pointer, dy = a.dMixed.pointer
            // y holds (a; exp(s) b + t): recover b to form dlog s = db' exp(s) b - 1 / n.
            for bi in 0..<B {
                let tRows = out + bi * r * Tq, sRows = tRows + h * Tq, coupled = y + (bi * r + h) * Tq
                let dCoupled = dCurrent + (bi * r + h) * Tq, dT = dOut + bi * r * Tq, dS = dT + h * Tq
                let dB = dy + (bi * r + h) * Tq
                for i in 0..<(h * Tq) {
                    guard stepMask[bi * Tq + i % Tq] != 0 else {
                        (dT[i], dS[i], dB[i]) = (0, 0, dCoupled[i])
                        continue
                    }
                    let scale = exp(sRows[i]), original = (coupled[i] - tRows[i]) / scale
                    dT[i] = dCoupled[i]
                    dS[i] = dCoupled[i] * scale * original - 1 / n
                    dB[i] = dCoupled[i] * scale
                }
                (dy + bi * r * Tq).update(from: dCurrent + bi * r * Tq, count: h * Tq)
            }
            // The network's input a gets its gradient through (t, log s) too.
            let dHalf = a.dHalf.pointer
            dHalf.update(repeating: 0, count: B * h * Tq)
            couplings[k].backward(a.networks[k], dOut: dOut, input: a.halves[k].pointer, dInput: dHalf,
                                  conditioning: a.sharedConditioning, dConditioning: a.dConditioning.pointer, store: store)
            for bi in 0..<B {
                let target = dy + bi * r * Tq, source = dHalf + bi * h * Tq
                for i in 0..<(h * Tq) { target[i] += source[i] }
            }
            // y = W x: dW += dy x^T, dx = W^T dy; and -log|det W| adds -(B T' / n) W^-T.
            let w = UnsafePointer(store.value(mixingWeights[k])), dW = store.gradient(mixingWeights[k])
            dPrevious.update(repeating: 0, count: B * r * Tq)
            mixing[k].backward(dInp: dPrevious, dWeight: dW, dBias: nil, dOut: dy, inp: a.inputs[k].pointer, weight: w, batch: B, length: Tq)
            if let inverse = LAPACK.inverse((0..<(r * r)).map { Double(w[$0]) }, n: r) {
                let factor = realSteps / Double(n)
                for i in 0..<r { for j in 0..<r { dW[i * r + j] -= Float(factor * inverse[j * r + i]) } }
            }
            if c.exits(before: k) {
                // The previous flow's output: (the channels that left to z; this flow's input).
                let rp = c.channels(atFlow: k - 1), e = c.earlySize, exit = c.exitOffset(before: k)
                for bi in 0..<B {
                    for ch in 0..<rp {
                        let target = dCurrent + (bi * rp + ch) * Tq
                        if ch < e {
                            for t in 0..<Tq { target[t] = a.z[(bi * G + exit + ch) * Tq + t] / (sigma * sigma * n) * stepMask[bi * Tq + t] }
                        } else {
                            target.update(from: dPrevious + (bi * r + ch - e) * Tq, count: Tq)
                        }
                    }
                }
            } else {
                swap(&dCurrent, &dPrevious)
            }
        }
        if let sourceGainEntry {
            // The first flow's input is (x - g s): dL/dg = -sum dL/dinput s.
            var sum = 0.0
            for b in 0..<B { for g in 0..<G { for t in 0..<Tq {
                sum -= Double(dCurrent[(b * G + g) * Tq + t]) * Double(a.sourceSamples[b * a.length + t * G + g])
            } } }
            store.gradient(sourceGainEntry)[0] += Float(sum)
        }
        conditioningBackward(a)
    }

    /// audio (B, T) from z (B, group, T') given `mel` (B, C, F) (and `source` (B, T), as for
    /// `forward`, and `speakers`, one row of the table per utterance, with speakers): the
    /// inverse pass.
    public func inverse(_ a: Activations, z: UnsafePointer<Float>, mel: UnsafePointer<Float>, source: UnsafePointer<Float>? = nil,
                        speakers: [Int]? = nil, audio: UnsafeMutablePointer<Float>) {
        invertFlow(a, z: z, mel: mel, source: source, speakers: speakers, output: audio)
        for b in 0..<a.batch where linearPrediction != nil {
            shapeExcitation(audio + b * a.length, length: a.length, frames: excitationFrames(mel: mel + b * config.melChannels * a.frames, frames: a.frames))
        }
    }

    /// The flow's inverse alone: the excitation with linear prediction, else the audio.
    func invertFlow(_ a: Activations, z: UnsafePointer<Float>, mel: UnsafePointer<Float>, source: UnsafePointer<Float>?, speakers: [Int]?,
                    output audio: UnsafeMutablePointer<Float>) {
        let c = config, B = a.batch, Tq = a.squeezed, G = c.group
        conditioningForward(a, mel: mel, source: source, speakers: speakers)
        let last = c.flows - 1
        var r = c.channels(atFlow: last)
        var current = a.dCurrent.pointer, previous = a.dPrevious.pointer
        for b in 0..<B { (current + b * r * Tq).update(from: z + (b * G + c.finalOffset) * Tq, count: r * Tq) }
        for k in stride(from: last, through: 0, by: -1) {
            r = c.channels(atFlow: k)
            let slot = a.training ? k : 0
            let h = r / 2, half = a.halves[slot].pointer, out = a.outputs[slot].pointer
            for b in 0..<B { (half + b * h * Tq).update(from: current + b * r * Tq, count: h * Tq) }
            couplings[k].forward(a.networks[slot], input: half, conditioning: a.sharedConditioning, out: out, store: store)
            for b in 0..<B {
                let tRows = out + b * r * Tq, sRows = tRows + h * Tq, rows = current + (b * r + h) * Tq
                for i in 0..<(h * Tq) { rows[i] = (rows[i] - tRows[i]) / exp(sRows[i]) }
            }
            // x = W^-1 y.
            let w = store.value(mixingWeights[k])
            let inverse = (LAPACK.inverse((0..<(r * r)).map { Double(w[$0]) }, n: r) ?? []).map { Float($0) }
            precondition(inverse.count == r * r, "flow \(k)'s 1x1 convolution is singular")
            previous.update(repeating: 0, count: B * r * Tq)
            mixing[k].forward(out: previous, inp: current, weight: inverse, bias: nil, batch: B, length: Tq)
            if c.exits(before: k) {
                let rp = c.channels(atFlow: k - 1), e = c.earlySize, exit = c.exitOffset(before: k)
                for b in 0..<B {
                    for ch in 0..<rp {
                        let target = current + (b * rp + ch) * Tq
                        if ch < e { target.update(from: z + (b * G + exit + ch) * Tq, count: Tq) }
                        else { target.update(from: previous + (b * r + ch - e) * Tq, count: Tq) }
                    }
                }
            } else {
                swap(&current, &previous)
            }
        }
        // audio[b, t * group + g] = x[b, g, t] (plus g s).
        for b in 0..<B { for g in 0..<G { for t in 0..<Tq { audio[b * a.length + t * G + g] = current[(b * G + g) * Tq + t] } } }
        if let sourceGainEntry, let source {
            let gain = store.value(sourceGainEntry)[0]
            for i in 0..<(B * a.length) { audio[i] += gain * source[i] }
        }
    }

    /// Frames of context a chunk needs on each side so that its core renders as in one pass:
    /// every flow's network sees (2^L - 1)(K - 1)/2 squeezed steps each way, the upsampler
    /// (K_u - 1)/2 samples, and a frame more for the rounding.
    public var chunkContext: Int {
        let c = config
        let steps = c.flows * ((1 << c.layers) - 1) * (c.kernelSize - 1) / 2
        return (steps * c.group + (c.upsampleKernel - 1) / 2 + c.hop - 1) / c.hop + 1
    }

    /// audio (F * hop) of one utterance from its raw log-mel (C, F) and z (group, F * hop /
    /// group), in chunks of `chunkFrames` frames, each inverted with `chunkContext` frames of
    /// mel and z (and `source`, F * hop, with source conditioning) on both sides, so memory
    /// follows the chunk and the output is the one-pass output (to float32 rounding).
    /// `progress` gets the samples done.
    public func synthesize(mel: Matrix, z: [Float], source: [Float]? = nil, speaker: Int? = nil, chunkFrames: Int,
                           progress: ((Int) -> Void)? = nil) -> [Float] {
        let c = config, F = mel.columns, C = c.melChannels, hop = c.hop, G = c.group, perFrame = hop / G
        precondition(mel.rows == C && z.count == F * hop, "mel and z shapes")
        precondition((source != nil) == (c.source != nil) && (source?.count ?? F * hop) == F * hop,
                     "a source-conditioned WaveGlow needs a source of F * hop samples, and only it takes one")
        var audio = [Float](repeating: 0, count: F * hop)
        let context = chunkContext, chunk = max(1, chunkFrames)
        var start = 0
        while start < F {
            let end = min(F, start + chunk), from = max(0, start - context), to = min(F, end + context), frames = to - from
            var windowMel = [Float](repeating: 0, count: C * frames)
            for ch in 0..<C { for f in 0..<frames { windowMel[ch * frames + f] = mel.values[ch * F + from + f] } }
            let Tq = F * perFrame, windowTq = frames * perFrame
            var windowZ = [Float](repeating: 0, count: G * windowTq)
            for g in 0..<G { for t in 0..<windowTq { windowZ[g * windowTq + t] = z[g * Tq + from * perFrame + t] } }
            var windowAudio = [Float](repeating: 0, count: frames * hop)
            let windowSource = source.map { Array($0[(from * hop)..<(to * hop)]) }
            let a = makeActivations(batch: 1, frames: frames, training: false)
            let speakers = speaker.map { [$0] }
            // With linear prediction each chunk gives its excitation; the synthesis filter, a
            // recursion, runs once over the whole utterance below.
            if let windowSource {
                invertFlow(a, z: windowZ, mel: windowMel, source: windowSource, speakers: speakers, output: &windowAudio)
            } else {
                invertFlow(a, z: windowZ, mel: windowMel, source: nil, speakers: speakers, output: &windowAudio)
            }
            for i in 0..<((end - start) * hop) { audio[start * hop + i] = windowAudio[(start - from) * hop + i] }
            start = end
            progress?(start * hop)
        }
        if linearPrediction != nil {
            audio.withUnsafeMutableBufferPointer { shapeExcitation($0.baseAddress!, length: F * hop, frames: excitationFrames(mel: mel.values, frames: F)) }
        }
        return audio
    }

    /// The mel repeated to the sample rate, smoothed by the learned convolution, and squeezed:
    /// conditioning[b, c * group + g, t] = upsampled[b, c, t * group + g], c < C; with a
    /// source, its squeezed samples are band C; with speakers, each utterance's embedding
    /// fills the last E channels at every step.
    func conditioningForward(_ a: Activations, mel: UnsafePointer<Float>, source: UnsafePointer<Float>?, speakers: [Int]?) {
        precondition((source != nil) == (config.source != nil), "a source-conditioned WaveGlow needs a source, and only it takes one")
        let c = config, B = a.batch, C = c.melChannels, CB = c.conditionBands, T = a.length, Tq = a.squeezed, G = c.group
        let CC = c.conditionChannels, E = c.speakerChannels
        MelNormalisation.apply(mel, into: a.normalised.pointer, mean: melMean, std: melStd, batch: B, frames: a.frames)
        RepeatUpsample.forward(out: a.repeated.pointer, inp: a.normalised.pointer, rows: B * C, frames: a.frames, hop: c.hop)
        upsample.forward(out: a.upsampled.pointer, inp: a.repeated.pointer, weight: store.value(upsampleWeight),
                         bias: store.value(upsampleBias), batch: B, length: T)
        let up = a.upsampled.pointer, cond = a.conditioning.pointer
        for b in 0..<B { for ch in 0..<C { for g in 0..<G { for t in 0..<Tq {
            cond[(b * CC + ch * G + g) * Tq + t] = up[(b * C + ch) * T + t * G + g]
        } } } }
        if let source {
            for b in 0..<B { for g in 0..<G { for t in 0..<Tq { cond[(b * CC + C * G + g) * Tq + t] = source[b * T + t * G + g] } } }
        }
        SpeakerTable.embed(speakers, table: speakerTable, batch: B, store: store, into: &a.speakerVectors, model: "WaveGlow")
        a.speakers = speakers ?? []
        for b in 0..<B where E > 0 {
            for e in 0..<E { (cond + (b * CC + CB * G + e) * Tq).update(repeating: a.speakerVectors[b * E + e], count: Tq) }
        }
        let n = a.runs.count, starts = a.runs.starts, representatives = a.representatives.pointer
        for row in 0..<(B * CC) {
            let source = cond + row * Tq, target = representatives + row * n
            for i in 0..<n { target[i] = source[starts[i]] }
        }
    }

    /// The upsampling convolution's gradients from dConditioning.
    func conditioningBackward(_ a: Activations) {
        let c = config, B = a.batch, C = c.melChannels, T = a.length, Tq = a.squeezed, G = c.group
        let CC = c.conditionChannels, CB = c.conditionBands, E = c.speakerChannels
        let dUp = a.dUpsampled.pointer, dCond = a.dConditioning.pointer
        if let speakerTable {
            // Each embedding value conditions every step: its gradient is the sum over them.
            var dSpeakers = [Float](repeating: 0, count: B * E)
            for b in 0..<B { for e in 0..<E {
                var sum: Float = 0
                let row = dCond + (b * CC + CB * G + e) * Tq
                for t in 0..<Tq { sum += row[t] }
                dSpeakers[b * E + e] = sum
            } }
            speakerTable.scatter(dSpeakers, speakers: a.speakers, store: store)
        }
        for b in 0..<B { for ch in 0..<C { for g in 0..<G { for t in 0..<Tq {
            dUp[(b * C + ch) * T + t * G + g] = dCond[(b * CC + ch * G + g) * Tq + t]
        } } } }
        upsample.backward(dInp: nil, dWeight: store.gradient(upsampleWeight), dBias: store.gradient(upsampleBias), dOut: dUp,
                          inp: a.repeated.pointer, weight: store.value(upsampleWeight), batch: B, length: T)
    }
}

extension WaveGlow {
    /// The coupling's network (NVIDIA's `WN`): a 1x1 start from the h input channels to R,
    /// L non-causal dilated layers (dilation 2^i, kernel K, gated tanh-sigmoid units) each
    /// conditioned through its slice of one 1x1 layer on the squeezed mel, residual and skip
    /// paths (the last layer writes the skip path only, no sqrt(0.5) scaling), and a 1x1 end
    /// to 2h outputs (t, then log s) that starts at zero.
    public struct Coupling: Sendable {
        public let inputs: Int, outputs: Int
        let R: Int, L: Int, conditionChannels: Int
        /// The conditioning's channels: the squeezed mel bands, the squeezed source, the
        /// speaker's embedding, in that order.
        let melRows: Int, sourceRows: Int, speakerRows: Int
        let start: Conv1d, dilated: [Conv1d], residualSkip: [Conv1d], end: Conv1d
        let startWeight: ParameterStore.Entry, startBias: ParameterStore.Entry
        let conditionWeight: ParameterStore.Entry, conditionBias: ParameterStore.Entry
        let dilatedWeights: [ParameterStore.Entry], dilatedBiases: [ParameterStore.Entry]
        let residualSkipWeights: [ParameterStore.Entry], residualSkipBiases: [ParameterStore.Entry]
        let endWeight: ParameterStore.Entry, endBias: ParameterStore.Entry

        init(prefix: String, channels r: Int, config c: WaveGlowConfig, store: ParameterStore) {
            let h = r / 2, R = c.residualChannels, L = c.layers, K = c.kernelSize, Cg = c.conditionChannels
            inputs = h
            outputs = 2 * (r - h)
            self.R = R
            self.L = L
            conditionChannels = Cg
            melRows = c.melChannels * c.group
            sourceRows = c.source == nil ? 0 : c.group
            speakerRows = c.speakerChannels
            // The layers that read the audio (start, the first dilated layer) and write (t, log s)
            // stay float32 in bfloat16 runs, as a student's do.
            var start = Conv1d(inputChannels: h, outputChannels: R), end = Conv1d(inputChannels: R, outputChannels: 2 * (r - h))
            start.keepsFloat32 = true
            end.keepsFloat32 = true
            self.start = start
            self.end = end
            dilated = (0..<L).map { i in
                let d = 1 << i
                var layer = Conv1d(inputChannels: R, outputChannels: 2 * R, kernelSize: K, dilation: d, padding: (K - 1) / 2 * d)
                layer.keepsFloat32 = i == 0
                return layer
            }
            residualSkip = (0..<L).map { Conv1d(inputChannels: R, outputChannels: $0 < L - 1 ? 2 * R : R) }
            startWeight = store.add("\(prefix).start.weight", shape: [1, R, h])
            startBias = store.add("\(prefix).start.bias", shape: [R])
            conditionWeight = store.add("\(prefix).cond_layer.weight", shape: [1, 2 * R * L, Cg])
            conditionBias = store.add("\(prefix).cond_layer.bias", shape: [2 * R * L])
            dilatedWeights = (0..<L).map { store.add("\(prefix).in_layers.\($0).weight", shape: [K, 2 * R, R]) }
            dilatedBiases = (0..<L).map { store.add("\(prefix).in_layers.\($0).bias", shape: [2 * R]) }
            residualSkipWeights = (0..<L).map { store.add("\(prefix).res_skip_layers.\($0).weight", shape: [1, $0 < L - 1 ? 2 * R : R, R]) }
            residualSkipBiases = (0..<L).map { store.add("\(prefix).res_skip_layers.\($0).bias", shape: [$0 < L - 1 ? 2 * R : R]) }
            endWeight = store.add("\(prefix).end.weight", shape: [1, 2 * (r - h), R])
            endBias = store.add("\(prefix).end.bias", shape: [2 * (r - h)])
        }

        func initialise(_ store: ParameterStore, generator: inout SeededGenerator) {
            func uniform(_ entry: ParameterStore.Entry, fanIn: Int) {
                store.initUniform(entry, bound: 1 / Float(fanIn).squareRoot(), generator: &generator)
            }
            uniform(startWeight, fanIn: inputs); uniform(startBias, fanIn: inputs)
            uniform(conditionWeight, fanIn: conditionChannels); uniform(conditionBias, fanIn: conditionChannels)
            for i in 0..<L {
                uniform(dilatedWeights[i], fanIn: dilated[i].kernelSize * R); uniform(dilatedBiases[i], fanIn: dilated[i].kernelSize * R)
                uniform(residualSkipWeights[i], fanIn: R); uniform(residualSkipBiases[i], fanIn: R)
            }
            // The end layer stays zero: the coupling starts as the identity.
        }

        /// The network's activations over (B, ., T').
        public final class Activations {
            let batch: Int, length: Int
            let residual: [FloatBuffer], preGate: [FloatBuffer], gated: [FloatBuffer], residualSkip: [FloatBuffer]
            let conditioned: FloatBuffer, skip: FloatBuffer
            let dResidual: FloatBuffer, dSkip: FloatBuffer, dPreGate: FloatBuffer, dGated: FloatBuffer
            let dResidualSkip: FloatBuffer, dConditioned: FloatBuffer
            /// The conditioning layer's output at each run's representative (2RL, runs), its
            /// gradient summed over each run, and the gradient of the representatives (C, runs).
            let runOutputs: FloatBuffer, dRunOutputs: FloatBuffer, dRepresentatives: FloatBuffer

            /// Without `training`, the layers share one set of buffers (two residual ones, used
            /// in turn) and there are no gradient buffers.
            init(config c: WaveGlowConfig, batch B: Int, length T: Int, runs: Int, training: Bool) {
                batch = B
                length = T
                runOutputs = FloatBuffer(2 * c.residualChannels * c.layers * runs)
                dRunOutputs = FloatBuffer(training ? 2 * c.residualChannels * c.layers * runs : 0)
                dRepresentatives = FloatBuffer(training ? c.conditionChannels * runs : 0)
                let R = c.residualChannels, L = c.layers, g = training ? B * T : 0
                if training {
                    residual = (0..<L).map { _ in FloatBuffer(B * R * T) }
                    preGate = (0..<L).map { _ in FloatBuffer(B * 2 * R * T) }
                    gated = (0..<L).map { _ in FloatBuffer(B * R * T) }
                    residualSkip = (0..<L).map { _ in FloatBuffer(B * 2 * R * T) }
                } else {
                    let pair = [FloatBuffer(B * R * T), FloatBuffer(B * R * T)]
                    let pre = FloatBuffer(B * 2 * R * T), z = FloatBuffer(B * R * T), rs = FloatBuffer(B * 2 * R * T)
                    residual = (0..<L).map { pair[$0 % 2] }
                    preGate = Array(repeating: pre, count: L)
                    gated = Array(repeating: z, count: L)
                    residualSkip = Array(repeating: rs, count: L)
                }
                conditioned = FloatBuffer(B * 2 * R * L * T)
                skip = FloatBuffer(B * R * T)
                dResidual = FloatBuffer(R * g)
                dSkip = FloatBuffer(R * g)
                dPreGate = FloatBuffer(2 * R * g)
                dGated = FloatBuffer(R * g)
                dResidualSkip = FloatBuffer(2 * R * g)
                dConditioned = FloatBuffer(2 * R * L * g)
            }
        }

        /// The squeezed conditioning (B, C, T') and its vector at each run's representative
        /// (B, C, runs).
        struct Conditioning {
            let full: UnsafePointer<Float>, representatives: UnsafePointer<Float>, runs: ConditioningRuns
        }

        /// a.conditioned (B, 2RL, T') = W c + bias: the mel and speaker columns of W once per
        /// run, each result copied over its run's steps, and the source's at every step.
        func conditionForward(_ a: Activations, conditioning k: Conditioning, store: ParameterStore) {
            let B = a.batch, T = a.length, O = 2 * R * L, CC = conditionChannels, n = k.runs.count
            let W = UnsafePointer(store.value(conditionWeight)), bias = store.value(conditionBias)
            let speakerColumn = melRows + sourceRows, out = a.runOutputs.pointer
            for b in 0..<B {
                let representatives = k.representatives + b * CC * n
                for o in 0..<O { (out + o * n).update(repeating: bias[o], count: n) }
                BLAS.sgemm(m: O, n: n, k: melRows, a: W, lda: CC, b: representatives, ldb: n, beta: 1, c: out, ldc: n)
                if speakerRows > 0 {
                    BLAS.sgemm(m: O, n: n, k: speakerRows, a: W + speakerColumn, lda: CC, b: representatives + speakerColumn * n, ldb: n,
                               beta: 1, c: out, ldc: n)
                }
                let conditioned = a.conditioned.pointer + b * O * T
                for o in 0..<O {
                    let row = conditioned + o * T, values = out + o * n
                    for i in 0..<n {
                        let count = k.runs.counts[i], first = k.runs.starts[i]
                        if count == 1 { row[first] = values[i] } else { (row + first).update(repeating: values[i], count: count) }
                    }
                }
                if sourceRows > 0 {
                    BLAS.sgemm(m: O, n: T, k: sourceRows, a: W + melRows, lda: CC, b: k.full + (b * CC + melRows) * T, ldb: T, beta: 1,
                               c: conditioned, ldc: T)
                }
            }
        }

        /// The conditioning layer's gradients from a.dConditioned: the weight's and bias's, and
        /// at each run's representative the mel and speaker rows of dConditioning get the whole
        /// run's (the source has no gradient to take).
        func conditionBackward(_ a: Activations, conditioning k: Conditioning, dConditioning: UnsafeMutablePointer<Float>, store: ParameterStore) {
            let B = a.batch, T = a.length, O = 2 * R * L, CC = conditionChannels, n = k.runs.count
            let W = UnsafePointer(store.value(conditionWeight)), dW = store.gradient(conditionWeight), dBias = store.gradient(conditionBias)
            let speakerColumn = melRows + sourceRows, dRuns = a.dRunOutputs.pointer, dIn = a.dRepresentatives.pointer
            for b in 0..<B {
                let dConditioned = UnsafePointer(a.dConditioned.pointer + b * O * T), representatives = k.representatives + b * CC * n
                for o in 0..<O {
                    let row = dConditioned + o * T, sums = dRuns + o * n
                    for i in 0..<n {
                        let count = k.runs.counts[i], first = k.runs.starts[i]
                        sums[i] = count == 1 ? row[first] : VectorMath.sum(row + first, count: count)
                    }
                    dBias[o] += VectorMath.sum(sums, count: n)
                }
                BLAS.sgemm(transposeB: true, m: O, n: melRows, k: n, a: dRuns, lda: n, b: representatives, ldb: n, beta: 1, c: dW, ldc: CC)
                BLAS.sgemm(transposeA: true, m: melRows, n: n, k: O, a: W, lda: CC, b: dRuns, ldb: n, beta: 0, c: dIn, ldc: n)
                if speakerRows > 0 {
                    BLAS.sgemm(transposeB: true, m: O, n: speakerRows, k: n, a: dRuns, lda: n, b: representatives + speakerColumn * n, ldb: n,
                               beta: 1, c: dW + speakerColumn, ldc: CC)
                    BLAS.sgemm(transposeA: true, m: speakerRows, n: n, k: O, a: W + speakerColumn, lda: CC, b: dRuns, ldb: n, beta: 0,
                               c: dIn + speakerColumn * n, ldc: n)
                }
                if sourceRows > 0 {
                    BLAS.sgemm(transposeB: true, m: O, n: sourceRows, k: T, a: dConditioned, lda: T, b: k.full + (b * CC + melRows) * T, ldb: T,
                               beta: 1, c: dW + melRows, ldc: CC)
                }
                for rows in [0..<melRows, speakerColumn..<CC] {
                    for row in rows {
                        let target = dConditioning + (b * CC + row) * T, values = dIn + row * n
                        for i in 0..<n { target[k.runs.starts[i]] += values[i] }
                    }
                }
            }
        }

        /// out (B, 2h, T') = (t; log s) of input (B, h, T') and the squeezed conditioning.
        func forward(_ a: Activations, input: UnsafePointer<Float>, conditioning: Conditioning, out: UnsafeMutablePointer<Float>,
                     store: ParameterStore) {
            let B = a.batch, T = a.length
            func w(_ e: ParameterStore.Entry) -> UnsafePointer<Float> { UnsafePointer(store.value(e)) }
            start.forward(out: a.residual[0].pointer, inp: input, weight: w(startWeight), bias: w(startBias), batch: B, length: T)
            conditionForward(a, conditioning: conditioning, store: store)
            a.skip.zero()
            for i in 0..<L {
                let pre = a.preGate[i].pointer
                dilated[i].forward(out: pre, inp: a.residual[i].pointer, weight: w(dilatedWeights[i]), bias: w(dilatedBiases[i]), batch: B, length: T)
                for b in 0..<B {
                    let target = pre + b * 2 * R * T, source = a.conditioned.pointer + (b * 2 * R * L + i * 2 * R) * T
                    for j in 0..<(2 * R * T) { target[j] += source[j] }
                }
                GatedUnit.forward(out: a.gated[i].pointer, inp: pre, batch: B, channels: R, length: T)
                let rs = a.residualSkip[i].pointer
                residualSkip[i].forward(out: rs, inp: a.gated[i].pointer, weight: w(residualSkipWeights[i]), bias: w(residualSkipBiases[i]),
                                        batch: B, length: T)
                let width = i < L - 1 ? 2 * R : R
                for b in 0..<B {
                    let rows = rs + b * width * T, skip = a.skip.pointer + b * R * T
                    if i < L - 1 {
                        let current = a.residual[i].pointer + b * R * T, next = a.residual[i + 1].pointer + b * R * T
                        for j in 0..<(R * T) { next[j] = current[j] + rows[j] }
                        for j in 0..<(R * T) { skip[j] += rows[R * T + j] }
                    } else {
                        for j in 0..<(R * T) { skip[j] += rows[j] }
                    }
                }
            }
            end.forward(out: out, inp: a.skip.pointer, weight: w(endWeight), bias: w(endBias), batch: B, length: T)
        }

        /// Parameter gradients into `store`; dInput += d/d input; dConditioning += d/d conditioning.
        func backward(_ a: Activations, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>, dInput: UnsafeMutablePointer<Float>,
                      conditioning: Conditioning, dConditioning: UnsafeMutablePointer<Float>, store: ParameterStore) {
            let B = a.batch, T = a.length
            func w(_ e: ParameterStore.Entry) -> UnsafePointer<Float> { UnsafePointer(store.value(e)) }
            func g(_ e: ParameterStore.Entry) -> UnsafeMutablePointer<Float> { store.gradient(e) }
            a.dSkip.zero()
            end.backward(dInp: a.dSkip.pointer, dWeight: g(endWeight), dBias: g(endBias), dOut: dOut, inp: a.skip.pointer, weight: w(endWeight),
                         batch: B, length: T)
            // dResidual: the gradient reaching layer i's residual input from above.
            a.dResidual.zero()
            for i in stride(from: L - 1, through: 0, by: -1) {
                let width = i < L - 1 ? 2 * R : R
                let drs = a.dResidualSkip.pointer
                for b in 0..<B {
                    let rows = drs + b * width * T
                    if i < L - 1 {
                        (rows).update(from: a.dResidual.pointer + b * R * T, count: R * T)
                        (rows + R * T).update(from: a.dSkip.pointer + b * R * T, count: R * T)
                    } else {
                        rows.update(from: a.dSkip.pointer + b * R * T, count: R * T)
                    }
                }
                a.dGated.zero()
                residualSkip[i].backward(dInp: a.dGated.pointer, dWeight: g(residualSkipWeights[i]), dBias: g(residualSkipBiases[i]), dOut: drs,
                                         inp: a.gated[i].pointer, weight: w(residualSkipWeights[i]), batch: B, length: T)
                a.dPreGate.zero()
                GatedUnit.backward(dInp: a.dPreGate.pointer, dOut: a.dGated.pointer, inp: a.preGate[i].pointer, batch: B, channels: R, length: T)
                for b in 0..<B {
                    (a.dConditioned.pointer + (b * 2 * R * L + i * 2 * R) * T).update(from: a.dPreGate.pointer + b * 2 * R * T, count: 2 * R * T)
                }
                // The residual input gets the identity path (from layer i + 1) plus the dilated layer's.
                if i == L - 1 { a.dResidual.zero() }
                dilated[i].backward(dInp: a.dResidual.pointer, dWeight: g(dilatedWeights[i]), dBias: g(dilatedBiases[i]), dOut: a.dPreGate.pointer,
                                    inp: a.residual[i].pointer, weight: w(dilatedWeights[i]), batch: B, length: T)
            }
            start.backward(dInp: dInput, dWeight: g(startWeight), dBias: g(startBias), dOut: a.dResidual.pointer, inp: input,
                           weight: w(startWeight), batch: B, length: T)
            conditionBackward(a, conditioning: conditioning, dConditioning: dConditioning, store: store)
        }
    }
}

extension WaveGlow.Activations {
    /// The conditioning every coupling reads: the squeezed vectors and one per run of equal ones.
    var sharedConditioning: WaveGlow.Coupling.Conditioning {
        WaveGlow.Coupling.Conditioning(full: UnsafePointer(conditioning.pointer), representatives: UnsafePointer(representatives.pointer), runs: runs)
    }
}

/// The squeezed steps whose conditioning vectors are equal, as runs of consecutive steps.
///
/// The mel is repeated over each frame's hop and smoothed by a convolution reaching `back`
/// samples into the past and `ahead` into the future, so every sample whose window lies inside
/// its own frame gets that frame's value. A squeezed step all of whose samples are such
/// samples has the same vector (mel bands and speaker embedding) as every other such step of
/// its frame: they form one run, and a coupling's conditioning layer multiplies it once. The
/// other steps (at a frame's edges, where the window reaches a neighbour or the padding) are
/// runs of one. With hop 256, groups of 8 and the upsampler's kernel of 3 that is 3 runs per
/// frame for 32 steps. The source, which changes every sample, is multiplied at every step.
public struct ConditioningRuns: Sendable {
    /// Each run's first squeezed step (its representative) and its length.
    public let starts: [Int], counts: [Int]
    public var count: Int { starts.count }

    /// The runs of a frame with frames on both sides.
    public static func perFrame(config c: WaveGlowConfig) -> Int {
        let runs = ConditioningRuns(config: c, length: 3 * c.hop), perFrame = c.hop / c.group
        return runs.starts.filter { $0 >= perFrame && $0 < 2 * perFrame }.count
    }

    /// Runs over `length` samples; without `enabled`, every squeezed step is a run of one.
    public init(config c: WaveGlowConfig, length T: Int, enabled: Bool = true) {
        let G = c.group, hop = c.hop, Tq = T / G
        let back = (c.upsampleKernel - 1) / 2, ahead = c.upsampleKernel - 1 - back
        /// The frame every sample of step t reads alone, or nil.
        func frame(_ t: Int) -> Int? {
            let first = t * G - back, last = t * G + G - 1 + ahead
            guard enabled, first >= 0, last < T, first / hop == last / hop else { return nil }
            return first / hop
        }
        var starts: [Int] = [], counts: [Int] = []
        var previous: Int?
        for t in 0..<Tq {
            let f = frame(t)
            if let f, f == previous { counts[counts.count - 1] += 1 } else { starts.append(t); counts.append(1) }
            previous = f
        }
        self.starts = starts
        self.counts = counts
    }
}
