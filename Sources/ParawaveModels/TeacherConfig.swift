import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine

/// The distribution a teacher's head parameterises per sample, and a student's noise.
public enum SampleDistribution: String, Codable, Sendable, CaseIterable {
    /// A teacher's discretised mixture of `mixtures` logistics (PixelCNN++, Parallel WaveNet);
    /// a student's logistic noise.
    case logistic
    /// A teacher's single discretised Gaussian and a student's Gaussian noise (ClariNet),
    /// distilled with the closed-form KL.
    case gaussian

    /// The entropy of the unit distribution per sample: 2 for the logistic, log(2 pi e)/2 for
    /// the Gaussian (a student's H(P_S) = mean log s_tot + this).
    public var unitEntropy: Double { self == .logistic ? 2 : GaussianKL.entropyConstant }
}

/// Everything that fixes a teacher's shape and conventions; stored as JSON in its checkpoint.
public struct TeacherConfig: ModelConfig {
    public var stack: WaveNetStackConfig
    /// M, the mixture components.
    public var mixtures: Int
    /// The likelihood's bit depth: 2^bits levels on [-1, 1].
    public var bits: Int
    /// Log-scales are clamped below at this value.
    public var logScaleMin: Float
    /// The mel front end the teacher was trained with.
    public var mel: MelSettings
    /// The speakers it is conditioned on (rows of its embedding table, in order); empty when
    /// it is not speaker-conditioned (then `stack.speakerChannels` is 0).
    public var speakers: [String]
    /// The sine excitation made from the utterance's F0 that every layer sees (nil: none;
    /// then `stack.sourceChannels` is 0, else 1).
    public var source: SineSource?
    /// The F0 predictor trained beside it, so that a mel alone renders (nil: none).
    public var pitch: PitchPredictorConfig?
    /// The order of the linear predictor derived from the mel (`MelLinearPrediction`) that
    /// centres the mixture and scales it (0: none).
    public var linearPrediction: Int
    /// The output distribution (a logistic mixture unless the checkpoint says otherwise).
    public var output: SampleDistribution

    public init(stack: WaveNetStackConfig, mixtures: Int, bits: Int = 16, logScaleMin: Float = -7, mel: MelSettings,
                speakers: [String] = [], source: SineSource? = nil, pitch: PitchPredictorConfig? = nil, linearPrediction: Int = 0,
                output: SampleDistribution = .logistic) {
        precondition(speakers.isEmpty == (stack.speakerChannels == 0), "speakers and speaker channels go together")
        precondition((source == nil) == (stack.sourceChannels == 0), "a source and source channels go together")
        precondition(stack.hop == mel.hopLength && stack.conditionChannels == mel.nMels, "the stack's hop and channels are the mel's")
        self.stack = stack
        self.mixtures = mixtures
        self.bits = bits
        self.logScaleMin = logScaleMin
        self.mel = mel
        self.speakers = speakers
        self.source = source
        precondition(pitch.map { $0.problems().isEmpty && $0.melChannels == stack.conditionChannels } ?? true, "invalid pitch predictor")
        self.pitch = pitch
        self.linearPrediction = linearPrediction
        self.output = output
    }

    /// The head's output channels per sample: pi, mu, log s of each logistic (3M), or the
    /// Gaussian's mu and log s.
    public var outputChannels: Int { output == .logistic ? 3 * mixtures : 2 }
    /// The distribution's components (M, or the Gaussian's 1).
    public var components: Int { output == .logistic ? mixtures : 1 }
    /// The channel of component m's mean, and of its log-scale.
    public func meanChannel(_ m: Int) -> Int { output == .logistic ? mixtures + m : 0 }
    public func logScaleChannel(_ m: Int) -> Int { output == .logistic ? 2 * mixtures + m : 1 }

    enum CodingKeys: String, CodingKey { case stack, mixtures, bits, logScaleMin, mel, speakers, source, pitch, linearPrediction, output }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        stack = try c.decode(WaveNetStackConfig.self, forKey: .stack)
        mixtures = try c.decode(Int.self, forKey: .mixtures)
        bits = try c.decode(Int.self, forKey: .bits)
        logScaleMin = try c.decode(Float.self, forKey: .logScaleMin)
        mel = try c.decode(MelSettings.self, forKey: .mel)
        if let disagreement = stack.derive(from: mel) { throw DecodingError.dataCorruptedError(forKey: .stack, in: c, debugDescription: disagreement) }
        speakers = try c.decodeIfPresent([String].self, forKey: .speakers) ?? []
        if speakers.isEmpty != (stack.speakerChannels == 0) {
            throw DecodingError.dataCorruptedError(forKey: .speakers, in: c, debugDescription: "speakers without speaker channels or the reverse")
        }
        source = try c.decodeIfPresent(SineSource.self, forKey: .source)
        if (source == nil) != (stack.sourceChannels == 0) || stack.sourceChannels > 1 || !(source?.problems().isEmpty ?? true) {
            throw DecodingError.dataCorruptedError(forKey: .source, in: c, debugDescription: "a source without one source channel or the reverse")
        }
        pitch = try PitchPredictorConfig.decode(from: c, forKey: .pitch, melChannels: stack.conditionChannels)
        linearPrediction = try c.decodeIfPresent(Int.self, forKey: .linearPrediction) ?? 0
        output = try c.decodeIfPresent(SampleDistribution.self, forKey: .output) ?? .logistic
    }

    /// Problems with the config, each naming the value; empty when it is usable.
    public func problems() -> [String] {
        var out = mel.problems() + stack.problems().map { "stack." + $0 }
        if !(1...64).contains(mixtures) { out.append("mixtures \(mixtures) is outside 1...64") }
        if output == .gaussian && mixtures != 1 { out.append("mixtures \(mixtures) with output gaussian: a Gaussian teacher has 1 component") }
        if !(2...16).contains(bits) { out.append("bits \(bits) is outside 2...16") }
        if !(-20...0).contains(logScaleMin) { out.append("logScaleMin \(logScaleMin) is outside -20...0") }
        out += MelLinearPrediction.problems(order: linearPrediction, mel: mel)
        return out + (pitch?.problems().map { "pitch." + $0 } ?? [])
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(stack, forKey: .stack)
        try c.encode(mixtures, forKey: .mixtures)
        try c.encode(bits, forKey: .bits)
        try c.encode(logScaleMin, forKey: .logScaleMin)
        try c.encode(mel, forKey: .mel)
        if !speakers.isEmpty { try c.encode(speakers, forKey: .speakers) }
        try c.encodeIfPresent(source, forKey: .source)
        try c.encodeIfPresent(pitch, forKey: .pitch)
        if linearPrediction > 0 { try c.encode(linearPrediction, forKey: .linearPrediction) }
        if output != .logistic { try c.encode(output, forKey: .output) }
    }
}
