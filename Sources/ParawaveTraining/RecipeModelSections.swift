import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels

/// The network-shape keys the `teacher:` and `student:` sections share, decoded, checked and
/// written the same way for both (each section adds its own keys beside them).
public struct StackSection: Equatable, Sendable {
    /// Dilation of layer l is 2^(l mod cycle).
    public var cycle: Int
    public var kernelSize = 3
    public var residualChannels = 64
    /// Outputs of the dilated convolution before the gate halves them (2G).
    public var gateChannels = 128
    public var skipChannels = 64
    /// Width of the speaker embedding when the data (or the teacher) names speakers
    /// (`data.speaker_pattern`); 0 trains without speaker conditioning even then.
    public var speakerChannels = 16
    /// `repeat` (nearest-neighbour repetition, then a 3-sample convolution) or `transposed` (a
    /// transposed convolution of stride hop_length and 2 x hop_length taps).
    public var upsampler = WaveNetStackConfig.Upsampler.nearest

    enum CodingKeys: String, CodingKey, CaseIterable {
        case cycle, kernelSize = "kernel_size", residualChannels = "residual_channels", gateChannels = "gate_channels"
        case skipChannels = "skip_channels", speakerChannels = "speaker_channels", upsampler
    }

    public init(cycle: Int) { self.cycle = cycle }

    /// Reads the keys present in `decoder`'s mapping; `also` names the section's own keys.
    mutating func decode(from decoder: Decoder, also: [String]) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self, also: also)
        try c.update(&cycle, .cycle)
        try c.update(&kernelSize, .kernelSize)
        try c.update(&residualChannels, .residualChannels)
        try c.update(&gateChannels, .gateChannels)
        try c.update(&skipChannels, .skipChannels)
        try c.update(&speakerChannels, .speakerChannels)
        try c.update(&upsampler, .upsampler)
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(cycle, forKey: .cycle)
        try c.encode(kernelSize, forKey: .kernelSize)
        try c.encode(residualChannels, forKey: .residualChannels)
        try c.encode(gateChannels, forKey: .gateChannels)
        try c.encode(skipChannels, forKey: .skipChannels)
        try c.encode(speakerChannels, forKey: .speakerChannels)
        try c.encode(upsampler, forKey: .upsampler)
    }

    /// A stack of `layers` layers of this shape on mels of `mel`'s settings.
    func config(layers: Int, mel: MelSettings, speakerChannels: Int, sourceChannels: Int) -> WaveNetStackConfig {
        WaveNetStackConfig(layers: layers, cycle: cycle, kernelSize: kernelSize, residualChannels: residualChannels,
                           gateOutChannels: gateChannels / 2, skipChannels: skipChannels, conditionChannels: mel.nMels, hop: mel.hopLength,
                           upsampler: upsampler, speakerChannels: speakerChannels, sourceChannels: sourceChannels)
    }

    func check(_ v: inout RecipeValidator) {
        typealias Limits = WaveNetStackConfig.Limits
        v.require(cycle, in: Limits.cycle, "cycle")
        v.require(kernelSize, in: Limits.kernelSize, "kernel_size")
        v.require(residualChannels, in: Limits.channels, "residual_channels")
        v.require(gateChannels, in: (2 * Limits.channels.lowerBound)...(2 * Limits.channels.upperBound), "gate_channels")
        if gateChannels % 2 != 0 { v.fail("gate_channels", "must be even (the gate splits it in halves), got \(gateChannels)") }
        v.require(skipChannels, in: Limits.channels, "skip_channels")
        v.require(speakerChannels, in: Limits.speakerChannels, "speaker_channels")
    }
}

/// `teacher:` the WaveNet's size (DESIGN.md section 3): the shared stack keys, and its own.
public struct TeacherSection: Codable, Equatable, Sendable {
    public var stack = StackSection(cycle: 6)
    public var layers = 24
    public var mixtures = 10
    /// The mixture's log-scale clamp. Left out, it follows `linear_prediction`: -16 with it
    /// (silence sits at the 16-bit noise floor, far below the usual clamp), DESIGN.md's -7
    /// without.
    public var logScaleMin = -16.0
    /// The order of the linear predictor derived from the mel that centres and scales the
    /// mixture (`MelLinearPrediction`; 0: none). The default, 24, won the quality ladder
    /// (QUALITY.md): the teacher learns only the excitation.
    public var linearPrediction = 24
    /// `none`, or `sine` (the default, by the quality ladder): every layer also sees a sine
    /// excitation at the utterance's F0 (DESIGN.md section 10), made of `harmonics` harmonics
    /// weighted by `harmonic_amplitude`.
    public var source = SourceKind.sine
    public var harmonics = 8
    public var harmonicAmplitude = SineSource.Amplitude.inverse
    /// `aligned` (the training source follows the recording's fundamental, so the teacher
    /// learns to follow the source; the default, by measurement) or `random` (a drawn initial
    /// phase per crop).
    public var sourcePhase = SineSource.TrainingPhase.aligned
    /// `logistic`: a mixture of `mixtures` discretised logistics; `gaussian`: one discretised
    /// Gaussian (ClariNet), whose student is distilled with the closed-form KL.
    public var output = SampleDistribution.logistic
    /// In training, with linear prediction: the history the teacher reads carries an error of
    /// this many times each frame's prediction-error deviation, drawn as white noise in the
    /// excitation and passed through the frame's synthesis filter (so about this many times
    /// the frame's own level), while the samples scored are
    /// the recording's (LPCNet's noise injection; 0: none). A teacher generating on its own
    /// samples reads such errors; trained on clean histories only, it follows them.
    public var historyNoise = 0.0

    enum CodingKeys: String, CodingKey, CaseIterable {
        case layers, mixtures, logScaleMin = "log_scale_min", source, harmonics, harmonicAmplitude = "harmonic_amplitude"
        case sourcePhase = "source_phase", linearPrediction = "linear_prediction", output, historyNoise = "history_noise"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self, also: StackSection.CodingKeys.allCases.map(\.stringValue))
        try c.update(&layers, .layers)
        try c.update(&mixtures, .mixtures)
        try c.update(&linearPrediction, .linearPrediction)
        logScaleMin = Self.logScaleMin(linearPrediction: linearPrediction)
        try c.update(&logScaleMin, .logScaleMin)
        try c.update(&source, .source)
        try c.update(&harmonics, .harmonics)
        try c.update(&harmonicAmplitude, .harmonicAmplitude)
        try c.update(&sourcePhase, .sourcePhase)
        try c.update(&output, .output)
        try c.update(&historyNoise, .historyNoise)
        // A Gaussian has one component; `mixtures` given beside it is refused by `check`.
        if output == .gaussian && !c.contains(.mixtures) { mixtures = 1 }
        try stack.decode(from: decoder, also: CodingKeys.allCases.map(\.stringValue))
    }

    /// One flat mapping: the stack keys, then the teacher's.
    public func encode(to encoder: Encoder) throws {
        try stack.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(layers, forKey: .layers)
        try c.encode(mixtures, forKey: .mixtures)
        try c.encode(logScaleMin, forKey: .logScaleMin)
        try c.encode(linearPrediction, forKey: .linearPrediction)
        try c.encode(source, forKey: .source)
        try c.encode(harmonics, forKey: .harmonics)
        try c.encode(harmonicAmplitude, forKey: .harmonicAmplitude)
        try c.encode(sourcePhase, forKey: .sourcePhase)
        try c.encode(output, forKey: .output)
        try c.encode(historyNoise, forKey: .historyNoise)
    }

    /// The sine source this section asks for, nil for `source: none`.
    public var sineSource: SineSource? { source.source(harmonics: harmonics, amplitude: harmonicAmplitude, phase: sourcePhase) }

    /// `log_scale_min` when the recipe leaves it out.
    public static func logScaleMin(linearPrediction: Int) -> Double { linearPrediction > 0 ? -16 : -7 }

    func check(_ v: inout RecipeValidator, audio: AudioSection) {
        stack.check(&v)
        v.require(layers, in: WaveNetStackConfig.Limits.layers, "layers")
        v.require(harmonics, in: 1...64, "harmonics")
        v.require(mixtures, in: 1...64, "mixtures")
        if output == .gaussian && mixtures != 1 { v.fail("mixtures", "applies to output logistic; output gaussian is one component (leave mixtures out)") }
        v.require(logScaleMin, in: -20...0, "log_scale_min")
        v.require(linearPrediction, in: 0...MelLinearPrediction.orders.upperBound, "linear_prediction")
        if linearPrediction >= audio.nFFT / 2 { v.fail("linear_prediction", "must be below n_fft / 2 (\(audio.nFFT / 2)), got \(linearPrediction)") }
        v.require(historyNoise, in: 0...4, "history_noise")
        if historyNoise > 0 && linearPrediction == 0 {
            v.fail("history_noise", "is drawn in units of the linear prediction's error: it needs linear_prediction (got 0)")
        }
    }
}

/// Whether a model sees a source excitation made from F0.
public enum SourceKind: String, Codable, CaseIterable, Sendable {
    case none, sine

    /// The sine source a section's keys ask for, nil for `none`.
    func source(harmonics: Int, amplitude: SineSource.Amplitude, phase: SineSource.TrainingPhase) -> SineSource? {
        self == .sine ? SineSource(harmonics: harmonics, amplitude: amplitude, trainingPhase: phase) : nil
    }
}

/// `student:` the IAF's flows (DESIGN.md section 4): the shared stack keys (every flow has
/// that shape; `speaker_channels` must be positive when the teacher is speaker-conditioned),
/// and its own.
public struct StudentSection: Codable, Equatable, Sendable {
    public var stack = StackSection(cycle: 10)
    /// Layers per flow.
    public var flows = [10, 10, 10, 10]
    /// Each flow's log-scale is clamped to [log_scale_min, log_scale_max].
    public var logScaleMin = -7.0
    public var logScaleMax = 2.0
    /// The student always sees its teacher's source; when given (`none` or `sine`), this must
    /// name it, and distillation refuses a teacher whose source differs.
    public var source: SourceKind?
    /// With a source: the student's noise is centred on it, z + g * source, g learned from
    /// this start (0: plain noise), so its flows begin from the utterance's harmonics. Left
    /// out (nil): `defaultSourceGain` under a teacher with a source, 0 under one without.
    public var sourceGain: Double?
    /// The quality ladder's g0 (QUALITY.md, "Student noise centred on the source").
    public static let defaultSourceGain = 2.0

    /// g0 for a teacher with or without a source.
    public func sourceGain(teacherHasSource: Bool) -> Double { teacherHasSource ? sourceGain ?? Self.defaultSourceGain : 0 }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case flows, logScaleMin = "log_scale_min", logScaleMax = "log_scale_max", source, sourceGain = "source_gain"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self, also: StackSection.CodingKeys.allCases.map(\.stringValue))
        try c.update(&flows, .flows)
        try c.update(&logScaleMin, .logScaleMin)
        try c.update(&logScaleMax, .logScaleMax)
        if let kind = try c.decodeIfPresent(SourceKind.self, forKey: .source) { source = kind }
        if let gain = try c.decodeIfPresent(Double.self, forKey: .sourceGain) { sourceGain = gain }
        try stack.decode(from: decoder, also: CodingKeys.allCases.map(\.stringValue))
    }

    /// One flat mapping: the stack keys, then the student's.
    public func encode(to encoder: Encoder) throws {
        try stack.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(flows, forKey: .flows)
        try c.encode(logScaleMin, forKey: .logScaleMin)
        try c.encode(logScaleMax, forKey: .logScaleMax)
        try c.encodeIfPresent(source, forKey: .source)
        try c.encodeIfPresent(sourceGain, forKey: .sourceGain)
    }

    func check(_ v: inout RecipeValidator) {
        stack.check(&v)
        if let sourceGain { v.require(sourceGain, in: 0...100, "source_gain") }
        v.require(logScaleMin, in: -20...0, "log_scale_min")
        v.require(logScaleMax, in: 0...10, "log_scale_max")
        if flows.isEmpty || flows.count > 16 { v.fail("flows", "must list 1 to 16 flows, got \(flows.count)") }
        for (i, layers) in flows.enumerated() where !(1...128).contains(layers) {
            v.fail("flows", "flow \(i) has \(layers) layers; each must have 1...128")
        }
    }
}
