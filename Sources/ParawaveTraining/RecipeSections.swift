import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels

/// `audio:` the signal conventions every model and data directory of a recipe shares.
public struct AudioSection: Codable, Equatable, Sendable {
    public var sampleRate = 16000
    public var nFFT = 1024
    public var hopLength = 256
    public var winLength = 1024
    public var nMels = 80
    public var fMin = 0.0
    public var fMax = 8000.0
    /// Quantisation of the teacher's likelihood: 2^bits levels on [-1, 1].
    public var bits = 16

    enum CodingKeys: String, CodingKey, CaseIterable {
        case sampleRate = "sample_rate", nFFT = "n_fft", hopLength = "hop_length", winLength = "win_length"
        case nMels = "n_mels", fMin = "fmin", fMax = "fmax", bits
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        try c.update(&sampleRate, .sampleRate)
        try c.update(&nFFT, .nFFT)
        try c.update(&hopLength, .hopLength)
        // win_length defaults to n_fft, as in librosa.
        winLength = nFFT
        try c.update(&winLength, .winLength)
        try c.update(&nMels, .nMels)
        try c.update(&fMin, .fMin)
        fMax = Double(sampleRate) / 2
        try c.update(&fMax, .fMax)
        try c.update(&bits, .bits)
    }

    /// The mel front end these settings describe (Slaney scale and norm, power 1, log floor 1e-5).
    public var mel: MelSettings {
        MelSettings(sampleRate: sampleRate, nFFT: nFFT, hopLength: hopLength, winLength: winLength, nMels: nMels, fMin: fMin, fMax: fMax)
    }

    func check(_ v: inout RecipeValidator) {
        for problem in mel.problems() {
            let key = String(problem.prefix { $0 != " " })
            v.fail(key, String(problem.dropFirst(key.count + 1)))
        }
        v.require(bits, in: 2...16, "bits")
    }
}

/// `pitch:` the F0 tracker (pYIN) that `prepare`, `pitch` and `evaluate` run, on the mel's
/// frame grid (frames of n_fft samples every hop_length, centred), and the F0 predictor that
/// `train-teacher` trains beside a source-conditioned teacher, so that a mel alone renders.
public struct PitchSection: Codable, Equatable, Sendable {
    /// The F0 search range in Hz (also the predictor's output range).
    public var fMin = 50.0
    public var fMax = 550.0
    /// The predictor's hidden layers (dilations 1, 2, 4, ...); 0 trains no predictor.
    public var predictorLayers = 4
    public var predictorChannels = 64
    /// Odd; the layers are centred, so a frame's prediction sees frames on both sides.
    public var predictorKernelSize = 5

    enum CodingKeys: String, CodingKey, CaseIterable {
        case fMin = "fmin", fMax = "fmax", predictorLayers = "predictor_layers", predictorChannels = "predictor_channels"
        case predictorKernelSize = "predictor_kernel_size"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        try c.update(&fMin, .fMin)
        try c.update(&fMax, .fMax)
        try c.update(&predictorLayers, .predictorLayers)
        try c.update(&predictorChannels, .predictorChannels)
        try c.update(&predictorKernelSize, .predictorKernelSize)
    }

    /// The tracker's settings for audio with these `audio` settings.
    public func settings(audio: AudioSection) -> PitchSettings {
        PitchSettings(sampleRate: audio.sampleRate, frameLength: audio.nFFT, hopLength: audio.hopLength, fMin: fMin, fMax: fMax)
    }

    /// The predictor for mels of `melChannels` bands; nil with `predictor_layers` 0.
    public func predictor(melChannels: Int) -> PitchPredictorConfig? {
        guard predictorLayers > 0 else { return nil }
        return PitchPredictorConfig(melChannels: melChannels, layers: predictorLayers, channels: predictorChannels,
                                    kernelSize: predictorKernelSize, fMin: Float(fMin), fMax: Float(fMax))
    }

    func check(_ v: inout RecipeValidator, audio: AudioSection) {
        v.require(fMin, in: 20...2000, "fmin")
        v.require(fMax, in: 40...4000, "fmax")
        if fMax <= fMin { v.fail("fmax", "must exceed fmin (\(fMin))") }
        v.require(predictorLayers, in: 0...12, "predictor_layers")
        v.require(predictorChannels, in: 1...1024, "predictor_channels")
        v.require(predictorKernelSize, in: 1...15, "predictor_kernel_size")
        if predictorKernelSize % 2 == 0 { v.fail("predictor_kernel_size", "must be odd (the layers are centred), not \(predictorKernelSize)") }
        guard v.problems.isEmpty else { return }
        for problem in settings(audio: audio).problems() {
            let key = String(problem.prefix { $0 != " " })
            v.fail(key, String(problem.dropFirst(key.count + 1)))
        }
    }
}

/// `data:` where the corpus comes from and how `prepare` splits and cleans it.
public struct DataSection: Codable, Equatable, Sendable {
    /// Folders (or files) searched for audio when `prepare` is given none.
    public var sources: [String] = []
    /// Fraction of utterances held out for validation, chosen by a hash of the id.
    public var validationFraction = 0.05
    /// Remove leading and trailing silence quieter than `trimDB` below the loudest frame.
    public var trimSilence = true
    public var trimDB = 40.0
    /// Utterances shorter than this (after trimming) are skipped.
    public var minSeconds = 0.25
    /// Longer utterances are cut into pieces of at most this length.
    public var maxSeconds = 30.0
    /// Spectrogram PNGs written for validation utterances spread over the split.
    public var previewImages = 4
    /// Files with more than this fraction of samples at full scale (|x| >= 0.999) are
    /// saturated recordings and are skipped: a vocoder trained on them learns distortion.
    public var maxClippedFraction = 0.001
    /// A regular expression searched in each source file's path; its first capture group (or
    /// the whole match without one) names the utterance's speaker, for speaker-conditioned
    /// models. Empty: the corpus is not split by speaker.
    public var speakerPattern = ""

    enum CodingKeys: String, CodingKey, CaseIterable {
        case sources, validationFraction = "validation_fraction", trimSilence = "trim_silence", trimDB = "trim_db"
        case minSeconds = "min_seconds", maxSeconds = "max_seconds", previewImages = "preview_images"
        case maxClippedFraction = "max_clipped_fraction", speakerPattern = "speaker_pattern"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        try c.update(&sources, .sources)
        try c.update(&validationFraction, .validationFraction)
        try c.update(&trimSilence, .trimSilence)
        try c.update(&trimDB, .trimDB)
        try c.update(&minSeconds, .minSeconds)
        try c.update(&maxSeconds, .maxSeconds)
        try c.update(&previewImages, .previewImages)
        try c.update(&maxClippedFraction, .maxClippedFraction)
        try c.update(&speakerPattern, .speakerPattern)
    }

    /// The compiled `speakerPattern`, nil when it is empty.
    public func speakerExpression() throws -> NSRegularExpression? {
        guard !speakerPattern.isEmpty else { return nil }
        do {
            return try NSRegularExpression(pattern: speakerPattern)
        } catch {
            throw ParawaveError("data.speaker_pattern", "'\(speakerPattern)' is not a valid regular expression")
        }
    }

    /// The speaker `expression` finds in `path`: its first capture group, or the whole match.
    public static func speaker(in path: String, expression: NSRegularExpression) -> String? {
        let range = NSRange(path.startIndex..., in: path)
        guard let match = expression.firstMatch(in: path, range: range) else { return nil }
        let group = match.numberOfRanges > 1 && match.range(at: 1).location != NSNotFound ? match.range(at: 1) : match.range
        guard let found = Range(group, in: path), !found.isEmpty else { return nil }
        return String(path[found])
    }

    func check(_ v: inout RecipeValidator) {
        v.require(validationFraction, in: 0...0.5, "validation_fraction")
        v.require(trimDB, in: 10...120, "trim_db")
        v.require(minSeconds, in: 0...60, "min_seconds")
        v.require(maxSeconds, in: 1...3600, "max_seconds")
        if maxSeconds <= minSeconds { v.fail("max_seconds", "must exceed min_seconds (\(minSeconds))") }
        v.require(previewImages, in: 0...1000, "preview_images")
        v.require(maxClippedFraction, in: 0...1, "max_clipped_fraction")
        if !speakerPattern.isEmpty && (try? speakerExpression()) == nil { v.fail("speaker_pattern", "'\(speakerPattern)' is not a valid regular expression") }
    }
}

/// `teacher:` the WaveNet's size (DESIGN.md section 3).
public struct TeacherSection: Codable, Equatable, Sendable {
    public var layers = 24
    /// Dilation of layer l is 2^(l mod cycle).
    public var cycle = 6
    public var kernelSize = 3
    public var residualChannels = 64
    /// Outputs of the dilated convolution before the gate halves them.
    public var gateChannels = 128
    public var skipChannels = 64
    public var mixtures = 10
    public var logScaleMin = -7.0
    /// Width of the speaker embedding when the data names speakers (`data.speaker_pattern`);
    /// 0 trains without speaker conditioning even then.
    public var speakerChannels = 16
    /// `repeat` (nearest-neighbour repetition, then a 3-sample convolution) or `transposed` (a
    /// transposed convolution of stride hop_length and 2 x hop_length taps).
    public var upsampler = WaveNetStackConfig.Upsampler.nearest
    /// `none`, or `sine`: every layer also sees a sine excitation at the utterance's F0
    /// (DESIGN.md section 10), made of `harmonics` harmonics weighted by `harmonic_amplitude`.
    public var source = SourceKind.none
    public var harmonics = 8
    public var harmonicAmplitude = SineSource.Amplitude.inverse
    /// `aligned` (the training source follows the recording's fundamental, so the teacher
    /// learns to follow the source; the default, by measurement) or `random` (a drawn initial
    /// phase per crop).
    public var sourcePhase = SineSource.TrainingPhase.aligned

    enum CodingKeys: String, CodingKey, CaseIterable {
        case layers, cycle, kernelSize = "kernel_size", residualChannels = "residual_channels"
        case gateChannels = "gate_channels", skipChannels = "skip_channels", mixtures, logScaleMin = "log_scale_min"
        case speakerChannels = "speaker_channels", upsampler, source, harmonics, harmonicAmplitude = "harmonic_amplitude"
        case sourcePhase = "source_phase"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        try c.update(&layers, .layers)
        try c.update(&cycle, .cycle)
        try c.update(&kernelSize, .kernelSize)
        try c.update(&residualChannels, .residualChannels)
        try c.update(&gateChannels, .gateChannels)
        try c.update(&skipChannels, .skipChannels)
        try c.update(&mixtures, .mixtures)
        try c.update(&logScaleMin, .logScaleMin)
        try c.update(&speakerChannels, .speakerChannels)
        try c.update(&upsampler, .upsampler)
        try c.update(&source, .source)
        try c.update(&harmonics, .harmonics)
        try c.update(&harmonicAmplitude, .harmonicAmplitude)
        try c.update(&sourcePhase, .sourcePhase)
    }

    /// The sine source this section asks for, nil for `source: none`.
    public var sineSource: SineSource? {
        source == .sine ? SineSource(harmonics: harmonics, amplitude: harmonicAmplitude, trainingPhase: sourcePhase) : nil
    }

    func check(_ v: inout RecipeValidator) {
        v.require(speakerChannels, in: 0...1024, "speaker_channels")
        v.require(harmonics, in: 1...64, "harmonics")
        v.require(layers, in: 1...256, "layers")
        v.require(cycle, in: 1...20, "cycle")
        v.require(kernelSize, in: 2...16, "kernel_size")
        v.require(residualChannels, in: 1...4096, "residual_channels")
        v.require(gateChannels, in: 2...8192, "gate_channels")
        if gateChannels % 2 != 0 { v.fail("gate_channels", "must be even (the gate splits it in halves), got \(gateChannels)") }
        v.require(skipChannels, in: 1...4096, "skip_channels")
        v.require(mixtures, in: 1...64, "mixtures")
        v.require(logScaleMin, in: -20...0, "log_scale_min")
    }
}

/// Whether a model sees a source excitation made from F0.
public enum SourceKind: String, Codable, CaseIterable, Sendable {
    case none, sine
}

/// `student:` the IAF's flows (DESIGN.md section 4).
public struct StudentSection: Codable, Equatable, Sendable {
    /// Layers per flow.
    public var flows = [10, 10, 10, 10]
    /// Dilation of layer l in a flow is 2^(l mod cycle).
    public var cycle = 10
    public var kernelSize = 3
    public var residualChannels = 64
    public var gateChannels = 128
    public var skipChannels = 64
    /// Each flow's log-scale is clamped to [log_scale_min, log_scale_max].
    public var logScaleMin = -7.0
    public var logScaleMax = 2.0
    /// Width of the speaker embedding (shared by the flows) when the teacher is
    /// speaker-conditioned; it must then be positive.
    public var speakerChannels = 16
    /// Every flow's upsampler: `repeat` or `transposed` (as `teacher.upsampler`).
    public var upsampler = WaveNetStackConfig.Upsampler.nearest
    /// The student always sees its teacher's source; when given (`none` or `sine`), this must
    /// name it, and distillation refuses a teacher whose source differs.
    public var source: SourceKind?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case flows, cycle, kernelSize = "kernel_size", residualChannels = "residual_channels", gateChannels = "gate_channels"
        case skipChannels = "skip_channels", logScaleMin = "log_scale_min", logScaleMax = "log_scale_max"
        case speakerChannels = "speaker_channels", upsampler, source
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        try c.update(&flows, .flows)
        try c.update(&cycle, .cycle)
        try c.update(&kernelSize, .kernelSize)
        try c.update(&residualChannels, .residualChannels)
        try c.update(&gateChannels, .gateChannels)
        try c.update(&skipChannels, .skipChannels)
        try c.update(&logScaleMin, .logScaleMin)
        try c.update(&logScaleMax, .logScaleMax)
        try c.update(&speakerChannels, .speakerChannels)
        try c.update(&upsampler, .upsampler)
        if let kind = try c.decodeIfPresent(SourceKind.self, forKey: .source) { source = kind }
    }

    func check(_ v: inout RecipeValidator) {
        v.require(speakerChannels, in: 0...1024, "speaker_channels")
        v.require(skipChannels, in: 1...4096, "skip_channels")
        v.require(logScaleMin, in: -20...0, "log_scale_min")
        v.require(logScaleMax, in: 0...10, "log_scale_max")
        if flows.isEmpty || flows.count > 16 { v.fail("flows", "must list 1 to 16 flows, got \(flows.count)") }
        for (i, layers) in flows.enumerated() where !(1...128).contains(layers) {
            v.fail("flows", "flow \(i) has \(layers) layers; each must have 1...128")
        }
        v.require(cycle, in: 1...20, "cycle")
        v.require(kernelSize, in: 2...16, "kernel_size")
        v.require(residualChannels, in: 1...4096, "residual_channels")
        v.require(gateChannels, in: 2...8192, "gate_channels")
        if gateChannels % 2 != 0 { v.fail("gate_channels", "must be even (the gate splits it in halves), got \(gateChannels)") }
    }
}

/// `train:` maximum-likelihood training of the teacher.
public struct TrainSection: Codable, Equatable, Sendable {
    public enum Schedule: String, Codable, CaseIterable, Sendable {
        /// The base rate throughout (after the warm-up, if any).
        case constant
        /// Multiplied by `decay_factor` every `decay_every` steps.
        case step
        /// Linear warm-up over `warmup_steps`, then half a cosine down to `lr_floor` x base.
        case cosine
    }

    public var steps = 20000
    public var batchSize = 4
    /// Samples per training crop (rounded down to whole mel frames).
    public var crop = 8000
    public var learningRate = 0.001
    public var schedule = Schedule.constant
    public var warmupSteps = 0
    public var decayEvery = 100_000
    public var decayFactor = 0.5
    public var lrFloor = 0.01
    /// Polyak averaging of the weights; the average is what gets rendered. In the first steps
    /// the decay is min(ema_decay, (1 + step) / (10 + step)), so short runs are not dominated
    /// by the initial weights.
    public var emaDecay = 0.9999
    /// Global gradient-norm clip; 0 disables it.
    public var clipNorm = 10.0
    public var checkpointEvery = 500
    public var validateEvery = 500
    /// A metrics line every this many steps.
    public var logEvery = 50
    /// Validation utterances scored (one crop each, from its start); 0 disables validation.
    public var validationUtterances = 32
    /// Consecutive non-finite steps after which training stops.
    public var maxSkippedSteps = 20
    public var seed = 1

    enum CodingKeys: String, CodingKey, CaseIterable {
        case steps, batchSize = "batch_size", crop, learningRate = "learning_rate", schedule, warmupSteps = "warmup_steps"
        case decayEvery = "decay_every", decayFactor = "decay_factor", lrFloor = "lr_floor", emaDecay = "ema_decay"
        case clipNorm = "clip_norm", checkpointEvery = "checkpoint_every", validateEvery = "validate_every", logEvery = "log_every"
        case validationUtterances = "validation_utterances", maxSkippedSteps = "max_skipped_steps", seed
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        try decode(from: decoder)
    }

    /// Reads the keys present in `decoder`'s mapping; `also` names other keys allowed there
    /// (the distill section shares these keys beside its own).
    mutating func decode(from decoder: Decoder, also: [String] = []) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self, also: also)
        try c.update(&steps, .steps)
        try c.update(&batchSize, .batchSize)
        try c.update(&crop, .crop)
        try c.update(&learningRate, .learningRate)
        try c.update(&schedule, .schedule)
        try c.update(&warmupSteps, .warmupSteps)
        try c.update(&decayEvery, .decayEvery)
        try c.update(&decayFactor, .decayFactor)
        try c.update(&lrFloor, .lrFloor)
        try c.update(&emaDecay, .emaDecay)
        try c.update(&clipNorm, .clipNorm)
        try c.update(&checkpointEvery, .checkpointEvery)
        try c.update(&validateEvery, .validateEvery)
        try c.update(&logEvery, .logEvery)
        try c.update(&validationUtterances, .validationUtterances)
        try c.update(&maxSkippedSteps, .maxSkippedSteps)
        try c.update(&seed, .seed)
    }

    /// The learning-rate schedule these keys describe.
    public var learningRateSchedule: LearningRateSchedule {
        switch schedule {
        case .constant: return warmupSteps > 0 ? .warmupCosine(warmup: warmupSteps, total: Int.max / 2, floor: 1) : .constant
        case .step: return .step(every: decayEvery, factor: decayFactor)
        case .cosine: return .warmupCosine(warmup: warmupSteps, total: steps, floor: lrFloor)
        }
    }

    func check(_ v: inout RecipeValidator) {
        v.requireRun(steps: steps, batchSize: batchSize, crop: crop, learningRate: learningRate)
        v.require(warmupSteps, in: 0...100_000_000, "warmup_steps")
        v.require(decayEvery, in: 1...100_000_000, "decay_every")
        v.require(decayFactor, in: 1e-6...1, "decay_factor")
        v.require(lrFloor, in: 0...1, "lr_floor")
        v.require(emaDecay, in: 0...1, "ema_decay")
        v.require(clipNorm, in: 0...1e9, "clip_norm")
        v.require(checkpointEvery, in: 1...100_000_000, "checkpoint_every")
        v.require(validateEvery, in: 1...100_000_000, "validate_every")
        v.require(logEvery, in: 1...100_000_000, "log_every")
        v.require(validationUtterances, in: 0...100_000, "validation_utterances")
        v.require(maxSkippedSteps, in: 1...100_000, "max_skipped_steps")
        v.require(seed, in: 0...Int(Int32.max), "seed")
    }
}

/// `distill.spectral_loss:` which spectral term is added to the KL, and its weight.
public struct SpectralLossSection: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, CaseIterable, Sendable {
        /// The paper's || mean_frames |STFT(x)|^2 - mean_frames |STFT(y)|^2 ||^2.
        case power
        /// The same with |STFT| in place of |STFT|^2.
        case magnitude
        /// Spectral convergence + L1 log magnitude at several FFT sizes.
        case multiResolution = "multi_resolution"
        case none
    }

    /// The default, multi_resolution at weight 1, was chosen by measurement
    /// (`scripts/compare-spectral-losses.sh`, BENCHMARKS.md): after 300 demo distillation
    /// steps it brought the student's log-mel distance to the real audio from 20.3 dB (no
    /// spectral term) to 13.3 dB and its mel-cepstral distortion from 56.2 to 45.6 dB; power
    /// (weight 2000) and magnitude (weight 50) moved them by less than 1 dB either way.
    public var kind = Kind.multiResolution
    public var weight = 1.0

    enum CodingKeys: String, CodingKey, CaseIterable { case kind, weight }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        try c.update(&kind, .kind)
        try c.update(&weight, .weight)
    }
}

/// `distill:` probability density distillation of the student (DESIGN.md section 5). Besides
/// its own keys it takes every key of `train:` (steps, batch_size, crop, learning_rate,
/// schedule, ema_decay, clip_norm, checkpoint_every, ...) for the distillation run, with
/// defaults of its own.
public struct DistillSection: Codable, Equatable, Sendable {
    /// The run's optimisation and bookkeeping, the keys of `train:`.
    public var run: TrainSection = {
        var t = TrainSection()
        t.steps = 20000
        t.batchSize = 2
        t.crop = 8000
        t.learningRate = 0.0005
        return t
    }()
    /// Samples per time step in the Monte-Carlo cross-entropy.
    public var mcSamples = 16
    public var spectralLoss = SpectralLossSection()
    public var contrastiveWeight = 0.0
    /// The untrained student's output scale s_tot.
    public var initialScale = 0.05

    public var steps: Int { get { run.steps } set { run.steps = newValue } }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case mcSamples = "mc_samples", spectralLoss = "spectral_loss", contrastiveWeight = "contrastive_weight", initialScale = "initial_scale"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self, also: TrainSection.CodingKeys.allCases.map(\.stringValue))
        try c.update(&mcSamples, .mcSamples)
        try c.update(&spectralLoss, .spectralLoss)
        try c.update(&contrastiveWeight, .contrastiveWeight)
        try c.update(&initialScale, .initialScale)
        try run.decode(from: decoder, also: CodingKeys.allCases.map(\.stringValue))
    }

    /// One flat mapping: the train keys, then the distill keys.
    public func encode(to encoder: Encoder) throws {
        try run.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(mcSamples, forKey: .mcSamples)
        try c.encode(spectralLoss, forKey: .spectralLoss)
        try c.encode(contrastiveWeight, forKey: .contrastiveWeight)
        try c.encode(initialScale, forKey: .initialScale)
    }

    func check(_ v: inout RecipeValidator) {
        run.check(&v)
        v.require(mcSamples, in: 1...1000, "mc_samples")
        v.require(spectralLoss.weight, in: 0...1e6, "spectral_loss.weight")
        v.require(contrastiveWeight, in: 0...10, "contrastive_weight")
        v.require(initialScale, in: 1e-4...1, "initial_scale")
        if contrastiveWeight > 0 && run.batchSize < 2 { v.fail("contrastive_weight", "needs batch_size of at least 2 (it pairs each mel with another)") }
    }
}
