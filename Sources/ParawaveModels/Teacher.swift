import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine

/// The WaveNet teacher (DESIGN.md section 3): a residual stack on the one-sample-shifted
/// waveform, conditioned on the normalised log-mel, and a head
/// `relu -> 1x1 (S->S) -> relu -> 1x1 (S->3M)` giving a discretised mixture of logistics
/// per sample.
///
/// The log-mel is normalised per band with the training corpus's mean and standard
/// deviation (`melMean`, `melStd`, kept in the checkpoint beside the weights), so callers
/// always pass the raw natural-log mel.
///
/// With linear prediction (`config.linearPrediction` > 0) the head models the excitation in
/// units of the mel's prediction-error scale sigma_t = exp(ln sqrt(E_f) + g), E_f of the
/// sample's frame (`MelLinearPrediction`) and g a learned gain (`teacher.lp.log_gain`, from
/// the white-noise value): component means mu = p_t + sigma_t mu' around the prediction
/// p_t = -sum_k a_k x_(t-k), log-scales log s = log sigma_t + log s'. The head's mean and
/// log-scale outputs start near 0, so an untrained teacher scores about what the mel's
/// predictor does, and every output is on the same footing in loud and quiet frames. The
/// stack reads the past excitation in the same units (`prepareLinearPrediction`), where
/// voicing shows as pulses at the pitch period whatever the formants and the loudness.
public final class Teacher: @unchecked Sendable {
    public static let kind = "parawave.teacher"

    public let config: TeacherConfig
    public let store = ParameterStore()
    public let stack: WaveNetStack
    /// The output distribution: the logistic mixture or the Gaussian.
    public let likelihood: TeacherLikelihood
    let head: WaveNetHead
    /// The speaker embeddings, with speaker conditioning.
    let speakerTable: SpeakerTable?
    /// The F0 predictor, trained beside the teacher (its parameters follow the teacher's in
    /// the store, as their own parameter group).
    public let pitch: PitchPredictor?
    /// The mel's linear predictor and the learned log gain of its scale, with linear prediction.
    public let linearPrediction: MelLinearPrediction?
    let logGain: ParameterStore.Entry?
    /// Per-band normalisation of the log-mel, (n_mels) each.
    public var melMean: [Float]
    public var melStd: [Float]

    public init(config: TeacherConfig) {
        self.config = config
        let S = config.stack.skipChannels, M = config.mixtures
        stack = WaveNetStack(config: config.stack, prefix: "teacher", store: store)
        head = WaveNetHead(prefix: "teacher.head", inputChannels: S, outputChannels: config.outputChannels, store: store)
        speakerTable = config.speakers.isEmpty ? nil
            : SpeakerTable(prefix: "teacher", speakers: config.speakers.count, channels: config.stack.speakerChannels, store: store)
        switch config.output {
        case .logistic: likelihood = .mixture(DiscretizedMixture(mixtures: M, bits: config.bits, logScaleMin: config.logScaleMin))
        case .gaussian: likelihood = .gaussian(DiscretizedGaussian(bits: config.bits, logScaleMin: config.logScaleMin))
        }
        linearPrediction = config.linearPrediction > 0 ? MelLinearPrediction(mel: config.mel, order: config.linearPrediction, bits: config.bits) : nil
        logGain = config.linearPrediction > 0 ? store.add("teacher.lp.log_gain", shape: [1]) : nil
        let store = self.store
        pitch = config.pitch.map { PitchPredictor(config: $0, prefix: "teacher.pitch", store: store) }
        melMean = [Float](repeating: 0, count: config.stack.conditionChannels)
        melStd = [Float](repeating: 1, count: config.stack.conditionChannels)
    }

    /// The learned log gain of the linear prediction's scale (0 without linear prediction).
    public var linearPredictionGain: Float { logGain.map { store.value($0)[0] } ?? 0 }

    /// Seeded initialisation: PyTorch's default uniform bounds everywhere, but for linear
    /// prediction's zeros.
    public func initialise(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        stack.initialise(store, generator: &generator)
        head.initialise(store, generator: &generator)
        speakerTable?.initialise(store, generator: &generator)
        if let logGain {
            // The excitation's means and log-scales start near 0 (weights a tenth of their
            // usual size): an untrained teacher is about the mel's predictor with the
            // white-noise scale, and learns corrections to it. The components' means start
            // spread over [-1/2, 1/2] scales, so they differ and every output has a gradient
            // (identical components would give the mixture logits none).
            let M = config.components, c = config
            let spread = (0..<M).map { M > 1 ? Float($0) / Float(M - 1) - 0.5 : 0 }
            head.restartOutputs(c.meanChannel(0)..<(c.meanChannel(0) + M), factor: 0.1, biases: spread, store: store)
            head.restartOutputs(c.logScaleChannel(0)..<(c.logScaleChannel(0) + M), factor: 0.1, biases: [Float](repeating: 0, count: M), store: store)
            store.fill(logGain, 0)
        }
        pitch?.initialise(store, generator: &generator)
    }

    /// The optimizer's groups: the WaveNet and, clipped on its own, the pitch predictor.
    public func parameterGroups(clipNorm: Double) -> [ParameterGroup] {
        ParameterGroup.split(store, at: pitch?.entries.first, clipNorm: clipNorm)
    }

    /// Buffers for one batch shape.
    public final class Activations: @unchecked Sendable {
        public let batch: Int, frames: Int, length: Int
        let stack: WaveNetStack.Activations
        /// The shifted input (B, 1, T) and the normalised mel (B, Cc, F).
        public internal(set) var input: [Float]
        var mel: [Float]
        let head: WaveNetHead.Activations
        /// Mixture parameters (B, 3M, T) and their gradient.
        public internal(set) var params: [Float]
        var dParams: [Float]
        /// Per-sample log-likelihood (B, T) and its gradient.
        public internal(set) var logProb: [Float]
        var dLogProb: [Float]
        var dSkip: [Float]
        /// The batch's speakers (rows of the table), their embeddings (B, E) and gradient.
        var speakers: [Int] = [], speakerVectors: [Float], dSpeakerVectors: [Float]
        /// The batch's sources (B, 1, T), with source conditioning.
        var source: [Float]
        /// With linear prediction: each utterance's frame predictors (B, F, P), ln sqrt(E)
        /// per frame (B, F) and the predictions the means are centred on (B, T; 0 where not
        /// centred).
        public internal(set) var lpCoefficients: [Float], lpLogRMS: [Float], lpPrediction: [Float]

        init(teacher: Teacher, batch: Int, frames: Int, training: Bool) {
            let c = teacher.config, S = c.stack.skipChannels
            self.batch = batch
            self.frames = frames
            length = frames * c.stack.hop
            stack = teacher.stack.makeActivations(batch: batch, frames: frames, training: training)
            head = teacher.head.makeActivations(batch: batch, length: length, training: training)
            input = [Float](repeating: 0, count: batch * length)
            mel = [Float](repeating: 0, count: batch * c.stack.conditionChannels * frames)
            dSkip = training ? [Float](repeating: 0, count: batch * S * length) : []
            params = [Float](repeating: 0, count: batch * c.outputChannels * length)
            dParams = training ? params : []
            logProb = [Float](repeating: 0, count: batch * length)
            dLogProb = training ? logProb : []
            speakerVectors = [Float](repeating: 0, count: batch * c.stack.speakerChannels)
            dSpeakerVectors = training ? speakerVectors : []
            source = [Float](repeating: 0, count: batch * c.stack.sourceChannels * length)
            lpCoefficients = [Float](repeating: 0, count: batch * frames * c.linearPrediction)
            lpLogRMS = [Float](repeating: 0, count: c.linearPrediction > 0 ? batch * frames : 0)
            lpPrediction = [Float](repeating: 0, count: c.linearPrediction > 0 ? batch * length : 0)
        }
    }

    /// Buffers for `batch` crops of `frames` frames; without `training`, only what the forward
    /// pass needs (one layer's worth of stack activations).
    public func makeActivations(batch: Int, frames: Int, training: Bool = true) -> Activations {
        Activations(teacher: self, batch: batch, frames: frames, training: training)
    }

    /// Normalises a raw log-mel (B, Cc, F) into `out`.
    func normalise(_ mel: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, batch: Int, frames F: Int) {
        MelNormalisation.apply(mel, into: out, mean: melMean, std: melStd, batch: batch, frames: F)
    }

    /// Forward on audio x (B, T), T = F * hop, conditioned on the raw log-mel (B, Cc, F):
    /// the stack sees x shifted right by one sample (zero first), so `a.params[t]` is the
    /// distribution of x_t given x_<t. A speaker-conditioned teacher needs `speakers`, one row
    /// of its table per utterance, and a source-conditioned one `source` (B, T), each row the
    /// utterance's `sourceSignal`. With linear prediction and `centred` false the means are
    /// the excitation's, not offset by the prediction (distillation scores a student's
    /// excitation under them: a common shift of the samples and the means leaves the
    /// continuous mixture density unchanged).
    /// Rows that `continues` (`CropBatch.continues`: a training crop that starts inside its
    /// utterance, its first samples history only) have unknown audio before them: with linear
    /// prediction the stack reads an excitation of 0 where the prediction would need it.
    public func forward(_ a: Activations, audio x: UnsafePointer<Float>, mel: UnsafePointer<Float>, speakers: [Int]? = nil,
                        source: UnsafePointer<Float>? = nil, centred: Bool = true, continues: [Bool]? = nil) {
        let B = a.batch, T = a.length
        setSpeakers(a, speakers)
        precondition((source != nil) == (config.source != nil), "a source-conditioned teacher needs a source, and only it takes one")
        if let source { a.source.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: source, count: B * T) } }
        if linearPrediction != nil {
            prepareLinearPrediction(a, audio: x, mel: mel, centred: centred, continues: continues)
        } else {
            a.input.withUnsafeMutableBufferPointer { inp in
                for b in 0..<B {
                    inp[b * T] = 0
                    (inp.baseAddress! + b * T + 1).update(from: x + b * T, count: T - 1)
                }
            }
        }
        a.mel.withUnsafeMutableBufferPointer { normalise(mel, into: $0.baseAddress!, batch: B, frames: a.frames) }
        a.input.withUnsafeBufferPointer { inp in
            a.mel.withUnsafeBufferPointer { m in
                a.speakerVectors.withUnsafeBufferPointer { e in
                    a.source.withUnsafeBufferPointer { s in
                        stack.forward(a.stack, x: inp.baseAddress!, mel: m.baseAddress!, speaker: e.baseAddress,
                                      source: config.source == nil ? nil : s.baseAddress, store: store)
                    }
                }
            }
        }
        forwardHead(a)
        offsetMixture(a)
    }

    /// With linear prediction, before the stack: the frames' predictors and scales, the
    /// prediction p_t from the audio's past into `a.lpPrediction` (0 where not `centred`),
    /// and the stack's shifted input, the excitation in units of the
    /// prior's scale: e_t = (x_t - p_t) / sigma0_t, sigma0_t = exp(ln sqrt(E_f) + the
    /// white-noise scale) (without the learned gain, so the input depends on no parameter).
    /// In a row that `continues`, e_t for t < P is 0: its prediction lacks the samples before
    /// the row, and a model generates from zeros, not from such a part-prediction's error.
    func prepareLinearPrediction(_ a: Activations, audio x: UnsafePointer<Float>, mel: UnsafePointer<Float>, centred: Bool,
                                 continues: [Bool]? = nil) {
        guard let lp = linearPrediction else { return }
        let B = a.batch, T = a.length, F = a.frames, P = lp.order, C = config.stack.conditionChannels
        let white = Float(lp.logScalePerRMS)
        var p = [Float](repeating: 0, count: T)
        a.lpCoefficients.withUnsafeMutableBufferPointer { coefficients in
            a.lpLogRMS.withUnsafeMutableBufferPointer { logRMS in
                a.input.withUnsafeMutableBufferPointer { input in
                    for b in 0..<B {
                        let co = coefficients.baseAddress! + b * F * P, rms = logRMS.baseAddress! + b * F
                        lp.analyse(logMel: mel + b * C * F, frames: F, coefficients: co, logRMS: rms)
                        lp.predict(x + b * T, length: T, coefficients: co, frames: F, into: &p)
                        input[b * T] = 0
                        for t in 0..<(T - 1) {
                            input[b * T + t + 1] = (x[b * T + t] - p[t]) * exp(-(rms[lp.frame(ofSample: t, frames: F)] + white))
                        }
                        if continues?[b] == true {
                            for t in 0..<min(P, T - 1) { input[b * T + t + 1] = 0 }
                        }
                        for t in 0..<T { a.lpPrediction[b * T + t] = centred ? p[t] : 0 }
                    }
                }
            }
        }
    }

    /// With linear prediction, after the head: the mixture's means mu = p_t + sigma_t mu' and
    /// log-scales log s = log sigma_t + log s', log sigma_t = ln sqrt(E_f) + the white-noise
    /// scale + the learned gain.
    func offsetMixture(_ a: Activations) {
        guard let lp = linearPrediction, let logGain else { return }
        let c = config, B = a.batch, T = a.length, F = a.frames, P = c.outputChannels
        let gain = Float(lp.whiteLogScale(c.output)) + store.value(logGain)[0]
        a.params.withUnsafeMutableBufferPointer { params in
            for b in 0..<B {
                for m in 0..<c.components {
                    let means = params.baseAddress! + (b * P + c.meanChannel(m)) * T, logScales = params.baseAddress! + (b * P + c.logScaleChannel(m)) * T
                    for t in 0..<T {
                        let logSigma = a.lpLogRMS[b * F + lp.frame(ofSample: t, frames: F)] + gain
                        means[t] = a.lpPrediction[b * T + t] + exp(logSigma) * means[t]
                        logScales[t] += logSigma
                    }
                }
            }
        }
    }

    /// Adds to `dAudio` (B, T) the gradient with respect to the audio x given `dInput`
    /// (B, T), the gradient with respect to the stack's shifted input (from `backward`): the
    /// input at t is x_(t-1), or with linear prediction the excitation e_(t-1), an FIR of x
    /// (A(z) / sigma0), whose transpose this applies. (The means' centring on p_t is not
    /// differentiated: it is used only where x is data.)
    public func addAudioGradient(_ a: Activations, dInput: UnsafePointer<Float>, into dAudio: UnsafeMutablePointer<Float>) {
        let B = a.batch, T = a.length, F = a.frames
        guard let lp = linearPrediction else {
            for b in 0..<B { for t in 0..<(T - 1) { dAudio[b * T + t] += dInput[b * T + t + 1] } }
            return
        }
        let P = lp.order, white = Float(lp.logScalePerRMS)
        for b in 0..<B {
            for t in 0..<(T - 1) {
                let f = lp.frame(ofSample: t, frames: F)
                let g = dInput[b * T + t + 1] * exp(-(a.lpLogRMS[b * F + f] + white))
                dAudio[b * T + t] += g
                for k in 1...P where k <= t { dAudio[b * T + t - k] += g * a.lpCoefficients[(b * F + f) * P + k - 1] }
            }
        }
    }

    /// The source of an utterance of `samples` samples from its F0 track on the mel's frames
    /// (Hz, 0 where unvoiced); nil for a teacher without source conditioning.
    public func sourceSignal(f0: [Float], samples: Int, initialPhase: Double = 0) -> [Float]? {
        config.source?.signal(f0: f0, hop: config.stack.hop, sampleRate: config.mel.sampleRate, samples: samples, initialPhase: initialPhase)
    }

    /// Keeps the batch's speakers and gathers their embeddings.
    func setSpeakers(_ a: Activations, _ speakers: [Int]?) {
        SpeakerTable.embed(speakers, table: speakerTable, batch: a.batch, store: store, into: &a.speakerVectors, model: "teacher")
        a.speakers = speakers ?? []
    }

    func forwardHead(_ a: Activations) {
        a.params.withUnsafeMutableBufferPointer { p in
            head.forward(a.head, skip: a.stack.skipSum.pointer, out: p.baseAddress!, store: store, batch: a.batch, length: a.length)
        }
    }

    /// After `forward`: the log-likelihood of x (B, T) per sample into `a.logProb`; returns the
    /// mean negative log-likelihood (nats per sample) over the samples where `mask` is nonzero
    /// (all when nil), and the count of those samples.
    @discardableResult
    public func loss(_ a: Activations, audio x: UnsafePointer<Float>, mask: UnsafePointer<Float>? = nil) -> (nll: Double, count: Int) {
        let B = a.batch, T = a.length
        a.params.withUnsafeBufferPointer { p in
            a.logProb.withUnsafeMutableBufferPointer { lp in
                likelihood.forward(logProb: lp.baseAddress!, params: p.baseAddress!, x: x, batch: B, length: T)
            }
        }
        var sum = 0.0, count = 0
        for i in 0..<(B * T) where mask?[i] ?? 1 != 0 {
            sum -= Double(a.logProb[i])
            count += 1
        }
        return (count > 0 ? sum / Double(count) : 0, count)
    }

    /// Backward of the masked mean NLL returned by `loss`: parameter gradients are added into
    /// `store`. `dInput` (B, T), when given, receives the gradient with respect to the stack's
    /// (shifted) input.
    public func backward(_ a: Activations, audio x: UnsafePointer<Float>, mask: UnsafePointer<Float>? = nil, count: Int,
                         lossScale: Float = 1, dInput: UnsafeMutablePointer<Float>? = nil) {
        let B = a.batch, T = a.length
        let scale = -lossScale / Float(max(count, 1))
        for i in 0..<(B * T) { a.dLogProb[i] = (mask?[i] ?? 1) != 0 ? scale : 0 }
        a.dParams.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        a.params.withUnsafeBufferPointer { p in
            a.dParams.withUnsafeMutableBufferPointer { dp in
                likelihood.backward(dParams: dp.baseAddress!, dLogProb: a.dLogProb, params: p.baseAddress!, x: x, batch: B, length: T)
            }
        }
        backwardFromParameters(a, dInput: dInput)
    }

    /// Backward from a gradient with respect to the output parameters, dParams (B, P, T)
    /// (distillation scores the student's samples under them). `dInput` (B, T) receives the
    /// gradient with respect to the stack's shifted input: entry t belongs to x_(t-1). The
    /// teacher's own parameter gradients are computed only when `weights`.
    public func backward(_ a: Activations, dParams: UnsafePointer<Float>, dInput: UnsafeMutablePointer<Float>?, weights: Bool) {
        a.dParams.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: dParams, count: $0.count) }
        backwardFromParameters(a, dInput: dInput, weights: weights)
    }

    func backwardFromParameters(_ a: Activations, dInput: UnsafeMutablePointer<Float>?, weights: Bool = true) {
        if let lp = linearPrediction, let logGain {
            // mu = p + sigma mu' and log s = log sigma + log s', with log sigma = ln sqrt(E_f) +
            // the gain: the head's mean outputs get sigma times the means' gradient, and the
            // gain sum_t dmu (mu - p) + sum_t dlog s (the mixture gives none where clamped).
            let c = config, T = a.length, F = a.frames, P = c.outputChannels
            let gain = Float(lp.whiteLogScale(c.output)) + store.value(logGain)[0]
            var sum: Float = 0
            for b in 0..<a.batch {
                for m in 0..<c.components {
                    let mean = (b * P + c.meanChannel(m)) * T, logScale = (b * P + c.logScaleChannel(m)) * T
                    for t in 0..<T {
                        let dMean = a.dParams[mean + t]
                        sum += dMean * (a.params[mean + t] - a.lpPrediction[b * T + t]) + a.dParams[logScale + t]
                        a.dParams[mean + t] = dMean * exp(a.lpLogRMS[b * F + lp.frame(ofSample: t, frames: F)] + gain)
                    }
                }
            }
            if weights { store.gradient(logGain)[0] += sum }
        }
        a.dSkip.withUnsafeMutableBufferPointer { ds in
            head.backward(a.head, dOut: a.dParams, skip: a.stack.skipSum.pointer, dSkip: ds.baseAddress!, store: store,
                          batch: a.batch, length: a.length, weights: weights)
        }
        a.dSpeakerVectors.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        a.input.withUnsafeBufferPointer { inp in
            a.mel.withUnsafeBufferPointer { m in
                a.dSkip.withUnsafeBufferPointer { ds in
                    a.speakerVectors.withUnsafeBufferPointer { e in
                        a.dSpeakerVectors.withUnsafeMutableBufferPointer { de in
                            a.source.withUnsafeBufferPointer { s in
                                stack.backward(a.stack, dSkip: ds.baseAddress!, dX: dInput, x: inp.baseAddress!, mel: m.baseAddress!,
                                               speaker: e.baseAddress, dSpeaker: de.baseAddress,
                                               source: config.source == nil ? nil : s.baseAddress, store: store, weights: weights)
                            }
                        }
                    }
                }
            }
        }
        if weights, let speakerTable { speakerTable.scatter(a.dSpeakerVectors, speakers: a.speakers, store: store) }
    }
}

extension Teacher: CheckpointedModel {
    public static let role = "teacher"
    public var mel: MelSettings { config.mel }
    public var speakers: [String] { config.speakers }
    public var source: SineSource? { config.source }
}

/// A teacher's output distribution per sample, over the head's parameters (B, P, T).
public enum TeacherLikelihood: Sendable {
    case mixture(DiscretizedMixture)
    case gaussian(DiscretizedGaussian)

    /// logProb (B, T) = log P(x_t | the parameters at t).
    public func forward(logProb: UnsafeMutablePointer<Float>, params: UnsafePointer<Float>, x: UnsafePointer<Float>, batch: Int, length: Int) {
        switch self {
        case .mixture(let d): d.forward(logProb: logProb, params: params, x: x, batch: batch, length: length)
        case .gaussian(let d): d.forward(logProb: logProb, params: params, x: x, batch: batch, length: length)
        }
    }

    /// dParams (B, P, T) += dLogProb * d log P / d params.
    public func backward(dParams: UnsafeMutablePointer<Float>, dLogProb: UnsafePointer<Float>, params: UnsafePointer<Float>,
                         x: UnsafePointer<Float>, batch: Int, length: Int) {
        switch self {
        case .mixture(let d): d.backward(dParams: dParams, dLogProb: dLogProb, params: params, x: x, batch: batch, length: length)
        case .gaussian(let d): d.backward(dParams: dParams, dLogProb: dLogProb, params: params, x: x, batch: batch, length: length)
        }
    }
}
