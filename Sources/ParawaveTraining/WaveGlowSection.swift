import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveModels

/// `waveglow:` the flow trained by maximum likelihood (DESIGN.md section 6), with NVIDIA's
/// key names, and beside them every key of `train:` for its run (steps, batch_size, crop,
/// learning_rate, schedule, ema_decay, clip_norm, checkpoint_every, precision, ...), with
/// defaults of its own.
public struct WaveGlowSection: Codable, Equatable, Sendable {
    public var run: TrainSection = {
        var t = TrainSection()
        t.steps = 20000
        t.batchSize = 4
        t.crop = 8000
        t.learningRate = 0.0001
        return t
    }()
    public var flows = 12
    public var group = 8
    public var earlyEvery = 4
    public var earlySize = 2
    public var layers = 8
    public var residualChannels = 64
    public var kernelSize = 3
    /// z's standard deviation in training (NVIDIA's code: 1.0); `render --sigma` sets the
    /// sampling one.
    public var sigma = 1.0
    public var upsampleKernel = 3
    /// `sine`: the couplings also see the sine excitation made from the utterance's F0
    /// (DESIGN.md section 10) as one more conditioning band, of `harmonics` harmonics weighted
    /// by `harmonic_amplitude`; the recipe's `pitch:` section then sizes the pitch predictor
    /// trained beside the flow (the default, by measurement: QUALITY.md). `none`: the mel alone.
    public var source = SourceKind.sine
    public var harmonics = 8
    public var harmonicAmplitude = SineSource.Amplitude.inverse
    /// `aligned` (the training source follows the recording's fundamental) or `random`.
    public var sourcePhase = SineSource.TrainingPhase.aligned
    /// Width of the speaker embedding when the data names speakers (`data.speaker_pattern`);
    /// 0 trains without speaker conditioning even then.
    public var speakerChannels = 16
    /// P > 0: the flow models the excitation of the order-P linear prediction that the mel
    /// gives (LP-WaveGlow), which the synthesis filter shapes into the waveform; 0: the
    /// waveform itself (NVIDIA's). The default, 24, by measurement (QUALITY.md).
    public var linearPrediction = 24
    /// With a source: g0 > 0 makes the flow model its input less g s, the source times a gain
    /// learned from g0, and sampling add g s back (the student's `source_gain`); 0: none.
    /// Left out, 2 with a source (by measurement) and 0 without.
    public var sourceGain = StudentSection.defaultSourceGain

    enum CodingKeys: String, CodingKey, CaseIterable {
        case flows = "n_flows", group = "n_group", earlyEvery = "n_early_every", earlySize = "n_early_size", layers
        case residualChannels = "residual_channels", kernelSize = "kernel_size", sigma, upsampleKernel = "upsample_kernel"
        case source, harmonics, harmonicAmplitude = "harmonic_amplitude", sourcePhase = "source_phase"
        case speakerChannels = "speaker_channels", linearPrediction = "linear_prediction", sourceGain = "source_gain"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self, also: TrainSection.CodingKeys.allCases.map(\.stringValue))
        try c.update(&flows, .flows)
        try c.update(&group, .group)
        try c.update(&earlyEvery, .earlyEvery)
        try c.update(&earlySize, .earlySize)
        try c.update(&layers, .layers)
        try c.update(&residualChannels, .residualChannels)
        try c.update(&kernelSize, .kernelSize)
        try c.update(&sigma, .sigma)
        try c.update(&upsampleKernel, .upsampleKernel)
        try c.update(&source, .source)
        try c.update(&harmonics, .harmonics)
        try c.update(&harmonicAmplitude, .harmonicAmplitude)
        try c.update(&sourcePhase, .sourcePhase)
        try c.update(&speakerChannels, .speakerChannels)
        try c.update(&linearPrediction, .linearPrediction)
        sourceGain = source == .sine ? StudentSection.defaultSourceGain : 0
        try c.update(&sourceGain, .sourceGain)
        try run.decode(from: decoder, also: CodingKeys.allCases.map(\.stringValue))
    }

    /// One flat mapping: the train keys, then WaveGlow's.
    public func encode(to encoder: Encoder) throws {
        try run.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(flows, forKey: .flows)
        try c.encode(group, forKey: .group)
        try c.encode(earlyEvery, forKey: .earlyEvery)
        try c.encode(earlySize, forKey: .earlySize)
        try c.encode(layers, forKey: .layers)
        try c.encode(residualChannels, forKey: .residualChannels)
        try c.encode(kernelSize, forKey: .kernelSize)
        try c.encode(sigma, forKey: .sigma)
        try c.encode(upsampleKernel, forKey: .upsampleKernel)
        try c.encode(source, forKey: .source)
        try c.encode(harmonics, forKey: .harmonics)
        try c.encode(harmonicAmplitude, forKey: .harmonicAmplitude)
        try c.encode(sourcePhase, forKey: .sourcePhase)
        try c.encode(speakerChannels, forKey: .speakerChannels)
        try c.encode(linearPrediction, forKey: .linearPrediction)
        try c.encode(sourceGain, forKey: .sourceGain)
    }

    /// The sine source this section asks for, nil for `source: none`.
    public var sineSource: SineSource? { source.source(harmonics: harmonics, amplitude: harmonicAmplitude, phase: sourcePhase) }

    /// The model these keys describe for the recipe's mel front end, with `pitch` (the
    /// recipe's predictor, used with a source) and the data's `speakers` (used when
    /// `speaker_channels` is positive).
    public func config(mel: MelSettings, pitch: PitchPredictorConfig? = nil, speakers: [String] = [], bits: Int = 16) -> WaveGlowConfig {
        let conditioned = !speakers.isEmpty && speakerChannels > 0
        return WaveGlowConfig(flows: flows, group: group, earlyEvery: earlyEvery, earlySize: earlySize, layers: layers,
                              residualChannels: residualChannels, kernelSize: kernelSize, sigma: Float(sigma), upsampleKernel: upsampleKernel,
                              mel: mel, source: sineSource, pitch: sineSource == nil ? nil : pitch, speakers: conditioned ? speakers : [],
                              speakerChannels: conditioned ? speakerChannels : 0, linearPrediction: linearPrediction, bits: bits,
                              sourceGain: sineSource == nil ? 0 : Float(sourceGain))
    }

    func check(_ v: inout RecipeValidator, audio: AudioSection) {
        run.check(&v)
        v.require(flows, in: 1...64, "n_flows")
        v.require(group, in: 2...64, "n_group")
        v.require(earlyEvery, in: 1...64, "n_early_every")
        v.require(earlySize, in: 0...64, "n_early_size")
        v.require(layers, in: 1...64, "layers")
        v.require(residualChannels, in: 1...1024, "residual_channels")
        v.require(kernelSize, in: 1...31, "kernel_size")
        v.require(sigma, in: 1e-3...10, "sigma")
        v.require(upsampleKernel, in: 1...31, "upsample_kernel")
        v.require(harmonics, in: 1...64, "harmonics")
        v.require(speakerChannels, in: 0...1024, "speaker_channels")
        v.require(linearPrediction, in: 0...64, "linear_prediction")
        v.require(sourceGain, in: 0...100, "source_gain")
        guard v.problems.isEmpty else { return }
        for problem in config(mel: audio.mel).problems() where !problem.contains("n_fft") && !problem.contains("sample_rate") {
            v.fail("n_group", problem)
            break
        }
    }
}

extension Recipe {
    /// The WaveGlow that `waveglow:` describes, with the `pitch:` section's predictor when it
    /// has a source, for data that names `speakers`.
    public func waveglowConfig(speakers: [String] = []) -> WaveGlowConfig {
        waveglow.config(mel: audio.mel, pitch: pitch.predictor(melChannels: audio.nMels), speakers: speakers, bits: audio.bits)
    }
}
