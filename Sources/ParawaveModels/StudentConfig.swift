import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine

/// Everything that fixes a student's shape and conventions; stored as JSON in its checkpoint.
public struct StudentConfig: ModelConfig {
    /// One stack per flow, in order of application.
    public var flows: [WaveNetStackConfig]
    /// Each flow's log-scale is clamped to [logScaleMin, logScaleMax] in the forward pass.
    public var logScaleMin: Float
    public var logScaleMax: Float
    /// The mel front end (the teacher's).
    public var mel: MelSettings
    /// The speakers it is conditioned on (the teacher's), one embedding table shared by the
    /// flows; empty when it is not speaker-conditioned (every flow's `speakerChannels` is 0).
    public var speakers: [String]
    /// The sine excitation every flow's layers see (the teacher's; nil: none, then every
    /// flow's `sourceChannels` is 0, else 1).
    public var source: SineSource?
    /// The F0 predictor (its teacher's, copied at the start of distillation and not trained
    /// further), so that a mel alone renders; nil: none.
    public var pitch: PitchPredictorConfig?
    /// The teacher's linear prediction from the mel (order; 0: none) and its learned log gain:
    /// the flows' output is the excitation in units of the mel's error scale, which the
    /// synthesis filter shapes (`Student.shapeExcitation`).
    public var linearPrediction: Int
    public var linearPredictionGain: Float
    /// With a source: the noise is centred on it, x^0 = z + g * source, with g a learned
    /// scalar (`student.source_gain` in the store) that starts at this value; 0: plain noise.
    /// A shift fixed by the conditioning, so the density stays exact (DESIGN.md section 10).
    public var sourceGain: Float = 0
    /// The noise z the flows transform: logistic (Parallel WaveNet), or Gaussian (ClariNet's,
    /// for a Gaussian teacher), so that every sample is that distribution given its past.
    public var noise: SampleDistribution = .logistic

    public init(flows: [WaveNetStackConfig], logScaleMin: Float = -7, logScaleMax: Float = 2, mel: MelSettings, speakers: [String] = [],
                source: SineSource? = nil, pitch: PitchPredictorConfig? = nil, linearPrediction: Int = 0, linearPredictionGain: Float = 0,
                sourceGain: Float = 0, noise: SampleDistribution = .logistic) {
        precondition(!flows.isEmpty, "a student needs a flow")
        precondition(flows.allSatisfy { $0.speakerChannels == flows[0].speakerChannels } && speakers.isEmpty == (flows[0].speakerChannels == 0),
                     "speakers and one speaker width for every flow go together")
        precondition(flows.allSatisfy { $0.sourceChannels == (source == nil ? 0 : 1) }, "a source and one source channel in every flow go together")
        precondition(flows.allSatisfy { $0.hop == mel.hopLength && $0.conditionChannels == mel.nMels }, "every flow's hop and channels are the mel's")
        self.flows = flows
        self.logScaleMin = logScaleMin
        self.logScaleMax = logScaleMax
        self.mel = mel
        self.speakers = speakers
        self.source = source
        precondition(pitch.map { $0.problems().isEmpty && $0.melChannels == flows[0].conditionChannels } ?? true, "invalid pitch predictor")
        self.pitch = pitch
        self.linearPrediction = linearPrediction
        self.linearPredictionGain = linearPredictionGain
        self.sourceGain = sourceGain
        self.noise = noise
    }

    enum CodingKeys: String, CodingKey {
        case flows, logScaleMin, logScaleMax, mel, speakers, source, pitch, linearPrediction, linearPredictionGain, sourceGain, noise
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        flows = try c.decode([WaveNetStackConfig].self, forKey: .flows)
        logScaleMin = try c.decode(Float.self, forKey: .logScaleMin)
        logScaleMax = try c.decode(Float.self, forKey: .logScaleMax)
        mel = try c.decode(MelSettings.self, forKey: .mel)
        linearPrediction = try c.decodeIfPresent(Int.self, forKey: .linearPrediction) ?? 0
        linearPredictionGain = try c.decodeIfPresent(Float.self, forKey: .linearPredictionGain) ?? 0
        for i in flows.indices {
            if let disagreement = flows[i].derive(from: mel) {
                throw DecodingError.dataCorruptedError(forKey: .flows, in: c, debugDescription: "flow \(i): " + disagreement)
            }
        }
        speakers = try c.decodeIfPresent([String].self, forKey: .speakers) ?? []
        if flows.isEmpty || !flows.allSatisfy({ $0.speakerChannels == flows[0].speakerChannels })
            || speakers.isEmpty != (flows[0].speakerChannels == 0) {
            throw DecodingError.dataCorruptedError(forKey: .flows, in: c, debugDescription: "flows and speakers disagree")
        }
        source = try c.decodeIfPresent(SineSource.self, forKey: .source)
        if !flows.allSatisfy({ $0.sourceChannels == (source == nil ? 0 : 1) }) || !(source?.problems().isEmpty ?? true) {
            throw DecodingError.dataCorruptedError(forKey: .source, in: c, debugDescription: "flows and source disagree")
        }
        pitch = try PitchPredictorConfig.decode(from: c, forKey: .pitch, melChannels: flows[0].conditionChannels)
        sourceGain = try c.decodeIfPresent(Float.self, forKey: .sourceGain) ?? 0
        noise = try c.decodeIfPresent(SampleDistribution.self, forKey: .noise) ?? .logistic
    }

    /// Problems with the config, each naming the value; empty when it is usable.
    public func problems() -> [String] {
        var out = mel.problems()
        if !(1...16).contains(flows.count) { out.append("\(flows.count) flows is outside 1...16") }
        for (i, flow) in flows.enumerated() { out += flow.problems().map { "flows[\(i)]." + $0 } }
        if !(-20...0).contains(logScaleMin) { out.append("logScaleMin \(logScaleMin) is outside -20...0") }
        if !(0...10).contains(logScaleMax) { out.append("logScaleMax \(logScaleMax) is outside 0...10") }
        out += MelLinearPrediction.problems(order: linearPrediction, mel: mel)
        if !linearPredictionGain.isFinite || abs(linearPredictionGain) > 20 { out.append("linearPredictionGain \(linearPredictionGain) is outside -20...20") }
        if !sourceGain.isFinite || !(0...100).contains(sourceGain) { out.append("sourceGain \(sourceGain) is outside 0...100") }
        if sourceGain > 0 && source == nil { out.append("sourceGain \(sourceGain) needs a source") }
        return out + (pitch?.problems().map { "pitch." + $0 } ?? [])
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(flows, forKey: .flows)
        try c.encode(logScaleMin, forKey: .logScaleMin)
        try c.encode(logScaleMax, forKey: .logScaleMax)
        try c.encode(mel, forKey: .mel)
        if !speakers.isEmpty { try c.encode(speakers, forKey: .speakers) }
        try c.encodeIfPresent(source, forKey: .source)
        try c.encodeIfPresent(pitch, forKey: .pitch)
        if linearPrediction > 0 {
            try c.encode(linearPrediction, forKey: .linearPrediction)
            try c.encode(linearPredictionGain, forKey: .linearPredictionGain)
        }
        if sourceGain > 0 { try c.encode(sourceGain, forKey: .sourceGain) }
        if noise != .logistic { try c.encode(noise, forKey: .noise) }
    }

    /// Samples of the past (of the noise) an output sample depends on besides its own:
    /// flow k reads its input up to one sample back plus its stack's receptive field.
    public var receptiveField: Int { flows.map(\.receptiveField).reduce(0, +) }

    /// Multiply-adds per output sample of every flow's convolutions and head.
    public var multiplyAddsPerSample: Int {
        flows.map { $0.multiplyAddsPerSample + $0.skipChannels * ($0.skipChannels + 2) }.reduce(0, +)
    }

    /// What synthesis computes per sample: `multiplyAddsPerSample` without the conditioning
    /// products it computes per frame (`WaveNetStackConfig.conditioningMultiplyAddsPerSample`).
    public var synthesisMultiplyAddsPerSample: Int {
        multiplyAddsPerSample - flows.map(\.conditioningMultiplyAddsPerSample).reduce(0, +)
    }
}
