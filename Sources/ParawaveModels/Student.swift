import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine

/// The IAF student (DESIGN.md section 4): K WaveNet-like flows on logistic noise z.
///
/// Flow k reads its input shifted right by one sample (zero first), so its output at t sees
/// x^(k-1)_<t only, and gives (mu^k, log s^k) per sample from a `WaveNetHead` (P = 2):
///
///   x^k = x^(k-1) * s^k + mu^k,   x^0 = z ~ Logistic(0, 1)
///
/// so the output is one logistic per sample given z: `x = z * s_tot + mu_tot` with
/// `log s_tot = sum_k log s^k` and `mu_tot = sum_k mu^k prod_(j>k) s^j`, kept as the running
/// `mu_tot^k = mu_tot^(k-1) s^k + mu^k`. Each log s^k is clamped to the config's range (no
/// gradient outside it). Synthesis is one parallel pass over time per flow.
///
/// With its teacher's linear prediction (`config.linearPrediction` > 0) the flows' output y
/// is the excitation in units of the mel's error scale: the waveform is
/// x = 1/A(z) (sigma * y), sigma_t the teacher's scale of the sample's frame
/// (`shapeExcitation`). Both steps are fixed by the mel, and the filter's Jacobian is unit
/// lower-triangular, so the density of x is that of y shifted by sum_t log sigma_t.
///
/// With `config.sourceGain` > 0 the noise is centred on the sine source: x^0 = z + g e_t,
/// g a learned scalar. The shift is a function of the conditioning only, so x stays one
/// logistic per sample given z, with mu_tot carrying g e_t s_tot (mu_tot^0 = g e_t), and the
/// entropy is unchanged; the flows start from a signal that already has the utterance's
/// harmonics, as a neural source-filter model's filter does.
public final class Student: @unchecked Sendable {
    public static let kind = "parawave.student"

    public let config: StudentConfig
    public let store = ParameterStore()
    public let flows: [WaveNetStack]
    public let heads: [WaveNetHead]
    /// g of the source-centred noise, with `config.sourceGain` > 0.
    let sourceGain: ParameterStore.Entry?
    /// The speaker embeddings, with speaker conditioning.
    let speakerTable: SpeakerTable?
    /// The teacher's F0 predictor (copied by `adopt(from:)`; a frozen parameter group).
    public let pitch: PitchPredictor?
    /// The teacher's linear prediction from the mel, with linear prediction.
    public let linearPrediction: MelLinearPrediction?
    /// Per-band normalisation of the log-mel (the teacher's, copied at the start of distillation).
    public var melMean: [Float]
    public var melStd: [Float]

    public init(config: StudentConfig) {
        self.config = config
        let store = self.store
        var flows: [WaveNetStack] = [], heads: [WaveNetHead] = []
        for (k, c) in config.flows.enumerated() {
            flows.append(WaveNetStack(config: c, prefix: "student.flows.\(k)", store: store))
            heads.append(WaveNetHead(prefix: "student.flows.\(k).head", inputChannels: c.skipChannels, outputChannels: 2, store: store))
        }
        self.flows = flows
        self.heads = heads
        sourceGain = config.sourceGain > 0 ? store.add("student.source_gain", shape: [1]) : nil
        speakerTable = config.speakers.isEmpty ? nil
            : SpeakerTable(prefix: "student", speakers: config.speakers.count, channels: config.flows[0].speakerChannels, store: store)
        pitch = config.pitch.map { PitchPredictor(config: $0, prefix: "student.pitch", store: store) }
        linearPrediction = config.linearPrediction > 0
            ? MelLinearPrediction(mel: config.mel, order: config.linearPrediction, bits: 16) : nil
        melMean = [Float](repeating: 0, count: config.flows[0].conditionChannels)
        melStd = [Float](repeating: 1, count: config.flows[0].conditionChannels)
    }

    /// Seeded initialisation: PyTorch's default bounds, except that each flow's last layer
    /// starts small (`outputScale` of its usual bound) with mean bias 0 and log-scale bias
    /// log(initialScale) / K, so the untrained student outputs mu_tot near 0 and s_tot near
    /// `initialScale`.
    public func initialise(seed: UInt64, initialScale: Float = 0.05, outputScale: Float = 0.01) {
        var generator = SeededGenerator(seed: seed)
        let logScale = log(initialScale) / Float(flows.count)
        for (stack, head) in zip(flows, heads) {
            stack.initialise(store, generator: &generator)
            head.initialise(store, generator: &generator, outputScale: outputScale)
            let bias = head.outputBias(store)
            bias[0] = 0
            bias[1] = logScale
        }
        if let sourceGain { store.fill(sourceGain, config.sourceGain) }
        speakerTable?.initialise(store, generator: &generator)
    }

    /// Takes the teacher's F0 predictor and mel normalisation (both must match the student's).
    public func adopt(from teacher: Teacher) {
        melMean = teacher.melMean
        melStd = teacher.melStd
        if let pitch {
            guard let theirs = teacher.pitch else { preconditionFailure("the student has a pitch predictor and its teacher none") }
            pitch.copyValues(from: theirs, in: teacher.store, into: store)
        }
    }

    /// The optimizer's groups: the flows and, frozen, the teacher's pitch predictor.
    public func parameterGroups(clipNorm: Double) -> [ParameterGroup] {
        ParameterGroup.split(store, at: pitch?.entries.first, clipNorm: clipNorm, frozen: true)
    }

    /// Buffers for one batch shape. With `training`, everything the backward pass needs for
    /// every flow; without, one flow's forward buffers shared by all flows.
    public final class Activations: @unchecked Sendable {
        public let batch: Int, frames: Int, length: Int, training: Bool
        let flowCount: Int
        let flows: [WaveNetStack.Activations], heads: [WaveNetHead.Activations]
        /// The normalised mel (B, Cc, F) and the shifted input of the current flow (B, T).
        var mel: [Float], input: [Float]
        /// x^k and mu_tot^k for k = 0...K: (K + 1, B, T) (2 slots used in turn without training).
        var states: [Float], means: [Float]
        /// Each flow's head output (mu^k, unclamped log s^k): (K, B, 2, T) (1 slot without training).
        var outputs: [Float]
        /// log s_tot (B, T).
        public internal(set) var logScale: [Float]
        /// Gradient scratch: running dx and dmu_tot (B, T), head output (B, 2, T), skip (B, S, T), input (B, T).
        var dState: [Float], dMean: [Float], dOutput: [Float], dSkip: [Float], dInput: [Float]
        /// The batch's speakers (rows of the table), their embeddings (B, E) and gradient.
        var speakers: [Int] = [], speakerVectors: [Float], dSpeakerVectors: [Float]
        /// The batch's sources (B, 1, T), with source conditioning.
        var source: [Float]

        init(student: Student, batch: Int, frames: Int, training: Bool) {
            let configs = student.config.flows, K = configs.count
            self.batch = batch
            self.frames = frames
            self.training = training
            flowCount = K
            length = frames * configs[0].hop
            let n = batch * length
            if training {
                flows = zip(student.flows, configs).map { $0.0.makeActivations(batch: batch, frames: frames) }
                heads = student.heads.map { $0.makeActivations(batch: batch, length: frames * configs[0].hop) }
            } else {
                flows = [student.flows[0].makeActivations(batch: batch, frames: frames, training: false)]
                heads = [student.heads[0].makeActivations(batch: batch, length: frames * configs[0].hop, training: false)]
            }
            mel = [Float](repeating: 0, count: batch * configs[0].conditionChannels * frames)
            input = [Float](repeating: 0, count: n)
            states = [Float](repeating: 0, count: (training ? K + 1 : 2) * n)
            means = states
            outputs = [Float](repeating: 0, count: (training ? K : 1) * 2 * n)
            logScale = [Float](repeating: 0, count: n)
            dState = training ? [Float](repeating: 0, count: n) : []
            dMean = dState
            dInput = dState
            dOutput = training ? [Float](repeating: 0, count: 2 * n) : []
            dSkip = training ? [Float](repeating: 0, count: batch * configs[0].skipChannels * length) : []
            speakerVectors = [Float](repeating: 0, count: batch * configs[0].speakerChannels)
            dSpeakerVectors = training ? speakerVectors : []
            source = [Float](repeating: 0, count: student.config.source == nil ? 0 : n)
        }

        @inline(__always) func stateSlot(_ k: Int) -> Int { training ? k : k % 2 }
        @inline(__always) func outputSlot(_ k: Int) -> Int { training ? k : 0 }

        /// The student's output x (B, T) after `forward`.
        public var output: ArraySlice<Float> { states[slice(stateSlot(flowCount))] }

        /// mu_tot (B, T) after `forward`.
        public var mean: ArraySlice<Float> { means[slice(stateSlot(flowCount))] }

        func slice(_ slot: Int) -> Range<Int> { (slot * batch * length)..<((slot + 1) * batch * length) }
    }

    public func makeActivations(batch: Int, frames: Int, training: Bool = true) -> Activations {
        precondition(training || config.flows.allSatisfy { f in
            let g = config.flows[0]
            return f.residualChannels == g.residualChannels && f.gateOutChannels == g.gateOutChannels && f.skipChannels == g.skipChannels
                && f.upsampleKernel == g.upsampleKernel && f.upsampler == g.upsampler
        }, "shared forward buffers need flows of one width")
        return Activations(student: self, batch: batch, frames: frames, training: training)
    }

    /// Forward on noise z (B, T), T = F * hop, conditioned on the raw log-mel (B, Cc, F).
    /// Afterwards `a.output` is x, `a.mean` is mu_tot and `a.logScale` is log s_tot. A
    /// speaker-conditioned student needs `speakers`, one row of its table per utterance, and
    /// a source-conditioned one `source` (B, T), each row the utterance's `sourceSignal`.
    public func forward(_ a: Activations, noise z: UnsafePointer<Float>, mel: UnsafePointer<Float>, speakers: [Int]? = nil,
                        source: UnsafePointer<Float>? = nil) {
        let B = a.batch, T = a.length, n = B * T
        precondition((source != nil) == (config.source != nil), "a source-conditioned student needs a source, and only it takes one")
        if let source { a.source.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: source, count: n) } }
        SpeakerTable.embed(speakers, table: speakerTable, batch: B, store: store, into: &a.speakerVectors, model: "student")
        a.speakers = speakers ?? []
        let low = config.logScaleMin, high = config.logScaleMax
        a.mel.withUnsafeMutableBufferPointer {
            MelNormalisation.apply(mel, into: $0.baseAddress!, mean: melMean, std: melStd, batch: B, frames: a.frames)
        }
        a.states.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: z, count: n) }
        a.means.withUnsafeMutableBufferPointer { $0.baseAddress!.update(repeating: 0, count: n) }
        if let sourceGain {
            // x^0 = z + g e, mu_tot^0 = g e.
            let g = store.value(sourceGain)[0]
            a.states.withUnsafeMutableBufferPointer { x in
                a.means.withUnsafeMutableBufferPointer { mu in
                    for i in 0..<n {
                        mu[i] = g * a.source[i]
                        x[i] += mu[i]
                    }
                }
            }
        }
        a.logScale.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        for k in flows.indices {
            let stackActivations = a.flows[a.training ? k : 0], headActivations = a.heads[a.training ? k : 0]
            a.states.withUnsafeMutableBufferPointer { states in
                a.means.withUnsafeMutableBufferPointer { means in
                    a.outputs.withUnsafeMutableBufferPointer { outputs in
                        let x = states.baseAddress! + a.stateSlot(k) * n, next = states.baseAddress! + a.stateSlot(k + 1) * n
                        let mu = means.baseAddress! + a.stateSlot(k) * n, nextMu = means.baseAddress! + a.stateSlot(k + 1) * n
                        let out = outputs.baseAddress! + a.outputSlot(k) * 2 * n
                        a.input.withUnsafeMutableBufferPointer { inp in
                            for b in 0..<B {
                                inp[b * T] = 0
                                (inp.baseAddress! + b * T + 1).update(from: x + b * T, count: T - 1)
                            }
                        }
                        a.input.withUnsafeBufferPointer { inp in
                            a.mel.withUnsafeBufferPointer { m in
                                a.speakerVectors.withUnsafeBufferPointer { e in
                                    a.source.withUnsafeBufferPointer { s in
                                        flows[k].forward(stackActivations, x: inp.baseAddress!, mel: m.baseAddress!,
                                                         speaker: e.baseAddress, source: config.source == nil ? nil : s.baseAddress, store: store)
                                    }
                                }
                            }
                        }
                        heads[k].forward(headActivations, skip: stackActivations.skipSum.pointer, out: out, store: store, batch: B, length: T)
                        a.logScale.withUnsafeMutableBufferPointer { logScale in
                            let logScale = logScale.baseAddress!
                            Parallel.forEachChunk(n, minimumChunk: 4096) { range in
                                for i in range {
                                    let b = i / T, t = i % T
                                    let muK = out[(2 * b) * T + t], logS = min(max(out[(2 * b + 1) * T + t], low), high)
                                    let s = exp(logS)
                                    next[i] = x[i] * s + muK
                                    nextMu[i] = mu[i] * s + muK
                                    logScale[i] += logS
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Backward from the gradients of a loss with respect to the output x, mu_tot and
    /// log s_tot (each (B, T), any may be nil): parameter gradients are added into the store.
    public func backward(_ a: Activations, dOutput dX: UnsafePointer<Float>?, dMean dMu: UnsafePointer<Float>?,
                         dLogScale dLogS: UnsafePointer<Float>?) {
        precondition(a.training, "the backward pass needs training activations")
        let B = a.batch, T = a.length, n = B * T
        let low = config.logScaleMin, high = config.logScaleMax
        a.dState.withUnsafeMutableBufferPointer { d in
            if let dX { d.baseAddress!.update(from: dX, count: n) } else { d.update(repeating: 0) }
        }
        a.dMean.withUnsafeMutableBufferPointer { d in
            if let dMu { d.baseAddress!.update(from: dMu, count: n) } else { d.update(repeating: 0) }
        }
        a.dSpeakerVectors.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        for k in flows.indices.reversed() {
            a.states.withUnsafeBufferPointer { states in
                a.means.withUnsafeBufferPointer { means in
                    a.outputs.withUnsafeBufferPointer { outputs in
                        a.dState.withUnsafeMutableBufferPointer { dState in
                            a.dMean.withUnsafeMutableBufferPointer { dMean in
                                a.dOutput.withUnsafeMutableBufferPointer { dOut in
                                    let x = states.baseAddress! + k * n, mu = means.baseAddress! + k * n
                                    let out = outputs.baseAddress! + k * 2 * n
                                    let dx = dState.baseAddress!, dm = dMean.baseAddress!, dOut = dOut.baseAddress!
                                    // x^(k+1) = x^k s + mu^k, mu_tot^(k+1) = mu_tot^k s + mu^k, log s_tot += log s.
                                    Parallel.forEachChunk(n, minimumChunk: 4096) { range in
                                        for i in range {
                                            let b = i / T, t = i % T
                                            let raw = out[(2 * b + 1) * T + t]
                                            let s = exp(min(max(raw, low), high))
                                            dOut[(2 * b) * T + t] = dx[i] + dm[i]
                                            dOut[(2 * b + 1) * T + t] = raw > low && raw < high
                                                ? s * (dx[i] * x[i] + dm[i] * mu[i]) + (dLogS?[i] ?? 0) : 0
                                            dx[i] *= s
                                            dm[i] *= s
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            a.dOutput.withUnsafeBufferPointer { dOut in
                a.dSkip.withUnsafeMutableBufferPointer { dSkip in
                    heads[k].backward(a.heads[k], dOut: dOut.baseAddress!, skip: a.flows[k].skipSum.pointer, dSkip: dSkip.baseAddress!,
                                      store: store, batch: B, length: T)
                }
            }
            // The stack's input is x^k shifted: entry t is x^k_(t-1). Rebuild it from the state.
            a.states.withUnsafeBufferPointer { states in
                a.input.withUnsafeMutableBufferPointer { inp in
                    let x = states.baseAddress! + k * n
                    for b in 0..<B {
                        inp[b * T] = 0
                        (inp.baseAddress! + b * T + 1).update(from: x + b * T, count: T - 1)
                    }
                }
            }
            a.dInput.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            a.input.withUnsafeBufferPointer { inp in
                a.mel.withUnsafeBufferPointer { m in
                    a.dSkip.withUnsafeBufferPointer { ds in
                        a.dInput.withUnsafeMutableBufferPointer { di in
                            a.speakerVectors.withUnsafeBufferPointer { e in
                                a.dSpeakerVectors.withUnsafeMutableBufferPointer { de in
                                    a.source.withUnsafeBufferPointer { s in
                                        flows[k].backward(a.flows[k], dSkip: ds.baseAddress!, dX: di.baseAddress!, x: inp.baseAddress!,
                                                          mel: m.baseAddress!, speaker: e.baseAddress, dSpeaker: de.baseAddress,
                                                          source: config.source == nil ? nil : s.baseAddress, store: store)
                                    }
                                }
                            }
                        }
                    }
                }
            }
            a.dState.withUnsafeMutableBufferPointer { dx in
                a.dInput.withUnsafeBufferPointer { di in
                    for b in 0..<B {
                        for t in 0..<(T - 1) { dx[b * T + t] += di[b * T + t + 1] }
                    }
                }
            }
        }
        if let sourceGain {
            // dL/dg = sum_t (dL/dx^0_t + dL/dmu_tot^0_t) e_t.
            var sum = 0.0
            a.dState.withUnsafeBufferPointer { dx in
                a.dMean.withUnsafeBufferPointer { dm in
                    for i in 0..<n { sum += Double((dx[i] + dm[i]) * a.source[i]) }
                }
            }
            store.gradient(sourceGain)[0] += Float(sum)
        }
        speakerTable?.scatter(a.dSpeakerVectors, speakers: a.speakers, store: store)
    }

    // MARK: synthesis

    /// Frames per chunk of `synthesize` by default. Each chunk also recomputes the flows'
    /// receptive field on its left (32 frames for S-small): 512-frame chunks spend 6% on it
    /// where 256-frame chunks spent 11%. S-small's buffers take about 1.5 KB per sample of a
    /// chunk, so `render` peaks near 277 MB on 100 s (178 MB with 256-frame chunks).
    public static let defaultChunkFrames = 512

    /// Frames of context a chunk needs on each side so that its kept frames equal the
    /// unchunked pass: the noise receptive field (plus the upsampler's reach) on the left, the
    /// upsampler's reach on the right.
    public var chunkContext: (left: Int, right: Int) {
        let hop = config.flows[0].hop, reach = config.flows.map(\.upsampleReach).max()!
        return ((config.receptiveField + reach + hop - 1) / hop, (reach + hop - 1) / hop)
    }

    /// Renders one utterance from its raw log-mel (Cc, F) and noise z (F * hop) in chunks of
    /// `chunkFrames` frames with the context of `chunkContext`, so memory stays bounded by
    /// the chunk size and the result equals the unchunked pass. `speaker` is a row of the
    /// speaker table (for a speaker-conditioned student); `source` (F * hop) the utterance's
    /// `sourceSignal` (for a source-conditioned one). `progress` gets the samples done so far.
    public func synthesize(mel: Matrix, noise: [Float], speaker: Int? = nil, source: [Float]? = nil, chunkFrames: Int = Student.defaultChunkFrames,
                           progress: ((Int) -> Void)? = nil) -> [Float] {
        let C = config.flows[0].conditionChannels, hop = config.flows[0].hop, F = mel.columns
        precondition(mel.rows == C && noise.count == F * hop && (source?.count ?? F * hop) == F * hop, "mel, noise and source shapes disagree")
        let (left, right) = chunkContext
        var output = [Float](repeating: 0, count: F * hop)
        var activations: Activations?
        var start = 0
        while start < F {
            let end = min(F, start + max(chunkFrames, 1))
            let from = max(0, start - left), to = min(F, end + right), frames = to - from
            if activations?.frames != frames { activations = nil; activations = makeActivations(batch: 1, frames: frames, training: false) }
            let a = activations!
            var chunkMel = [Float](repeating: 0, count: C * frames)
            for c in 0..<C { for f in 0..<frames { chunkMel[c * frames + f] = mel.values[c * F + from + f] } }
            noise.withUnsafeBufferPointer { z in
                (source ?? []).withUnsafeBufferPointer { s in
                    forward(a, noise: z.baseAddress! + from * hop, mel: chunkMel, speakers: speaker.map { [$0] },
                            source: source == nil ? nil : s.baseAddress! + from * hop)
                }
            }
            let kept = a.output
            let offset = kept.startIndex + (start - from) * hop
            output.replaceSubrange((start * hop)..<(end * hop), with: kept[offset..<(offset + (end - start) * hop)])
            start = end
            progress?(end * hop)
        }
        if let frames = excitationFrames(mel: mel.values, frames: F) {
            output.withUnsafeMutableBufferPointer { shapeExcitation($0.baseAddress!, length: F * hop, frames: frames) }
        }
        return output
    }

    /// With linear prediction: the frames' predictors (F, P) of a raw log-mel (Cc, F) and
    /// ln sigma_t per sample (F * hop); nil without.
    public func excitationFrames(mel: UnsafePointer<Float>, frames F: Int) -> (coefficients: [Float], logSigma: [Float])? {
        guard let lp = linearPrediction else { return nil }
        var coefficients = [Float](repeating: 0, count: F * lp.order), logRMS = [Float](repeating: 0, count: F)
        lp.analyse(logMel: mel, frames: F, coefficients: &coefficients, logRMS: &logRMS)
        let gain = Float(lp.whiteLogScale(config.noise)) + config.linearPredictionGain
        let logSigma = (0..<(F * config.flows[0].hop)).map { logRMS[lp.frame(ofSample: $0, frames: F)] + gain }
        return (coefficients, logSigma)
    }

    /// The waveform from the flows' output y (T), in place: x = 1/A(z) (sigma * y).
    public func shapeExcitation(_ y: UnsafeMutablePointer<Float>, length T: Int, frames: (coefficients: [Float], logSigma: [Float])) {
        guard let lp = linearPrediction else { return }
        for t in 0..<T { y[t] *= exp(frames.logSigma[t]) }
        lp.synthesize(y, length: T, coefficients: frames.coefficients, frames: frames.coefficients.count / lp.order)
    }

    /// The backward of `shapeExcitation`, in place: dL/dx (T) becomes dL/dy.
    public func shapeExcitationBackward(_ g: UnsafeMutablePointer<Float>, length T: Int, frames: (coefficients: [Float], logSigma: [Float])) {
        guard let lp = linearPrediction else { return }
        lp.synthesizeBackward(g, length: T, coefficients: frames.coefficients, frames: frames.coefficients.count / lp.order)
        for t in 0..<T { g[t] *= exp(frames.logSigma[t]) }
    }

    /// The source of an utterance of `samples` samples from its F0 track on the mel's frames
    /// (Hz, 0 where unvoiced); nil for a student without source conditioning.
    public func sourceSignal(f0: [Float], samples: Int, initialPhase: Double = 0) -> [Float]? {
        config.source?.signal(f0: f0, hop: config.flows[0].hop, sampleRate: config.mel.sampleRate, samples: samples, initialPhase: initialPhase)
    }

    /// Logistic noise z = log u - log(1 - u), u ~ U(1e-5, 1 - 1e-5), `count` samples.
    public static func noise(count: Int, generator: inout SeededGenerator) -> [Float] {
        (0..<count).map { _ in
            let u = min(max(generator.uniformOpen(), 1e-5), 1 - 1e-5)
            return log(u) - log(1 - u)
        }
    }

    /// `count` samples of the unit noise of `distribution`: logistic as above, or N(0, 1).
    public static func noise(count: Int, distribution: SampleDistribution, generator: inout SeededGenerator) -> [Float] {
        distribution == .logistic ? noise(count: count, generator: &generator) : (0..<count).map { _ in generator.normal() }
    }

    /// `count` samples of this student's noise (`StudentConfig.noise`).
    public func noise(count: Int, generator: inout SeededGenerator) -> [Float] {
        Student.noise(count: count, distribution: config.noise, generator: &generator)
    }
}

extension Student: CheckpointedModel {
    public static let role = "student"
    public var mel: MelSettings { config.mel }
    public var speakers: [String] { config.speakers }
    public var source: SineSource? { config.source }
}
