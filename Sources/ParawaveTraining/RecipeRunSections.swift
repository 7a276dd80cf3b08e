import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels

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
    /// A budget of training time in minutes, counted over resumes: the run validates,
    /// checkpoints and stops cleanly once it is spent, even before `steps`. 0: no budget.
    public var maxMinutes = 0.0
    /// A budget of the process's CPU time in minutes (all threads, so two busy cores spend two
    /// CPU-minutes a minute), counted over resumes like `max_minutes`. Unlike wall time it
    /// is not spent while other programs hold the cores. 0: no budget.
    public var maxCPUMinutes = 0.0
    /// The arithmetic of the step's matrix products: `auto` (bfloat16 where the CPU has
    /// AVX512_BF16 or AMX, single otherwise), `single` (float32) or `bfloat16` (bfloat16
    /// operands, float32 accumulation; weights, gradients, optimiser and validation float32).
    public var precision = PrecisionChoice.auto
    public var seed = 1

    enum CodingKeys: String, CodingKey, CaseIterable {
        case steps, batchSize = "batch_size", crop, learningRate = "learning_rate", schedule, warmupSteps = "warmup_steps"
        case decayEvery = "decay_every", decayFactor = "decay_factor", lrFloor = "lr_floor", emaDecay = "ema_decay"
        case clipNorm = "clip_norm", checkpointEvery = "checkpoint_every", validateEvery = "validate_every", logEvery = "log_every"
        case validationUtterances = "validation_utterances", maxSkippedSteps = "max_skipped_steps", maxMinutes = "max_minutes"
        case maxCPUMinutes = "max_cpu_minutes", precision, seed
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
        try c.update(&maxMinutes, .maxMinutes)
        try c.update(&maxCPUMinutes, .maxCPUMinutes)
        try c.update(&precision, .precision)
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
        v.require(maxMinutes, in: 0...1_000_000, "max_minutes")
        v.require(maxCPUMinutes, in: 0...1_000_000, "max_cpu_minutes")
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

    /// The default kind, multi_resolution, was chosen by measurement
    /// (`scripts/compare-spectral-losses.sh`, BENCHMARKS.md): after 300 demo distillation
    /// steps it brought the student's log-mel distance to the real audio from 20.3 dB (no
    /// spectral term) to 13.3 dB and its mel-cepstral distortion from 56.2 to 45.6 dB; power
    /// (weight 2000) and magnitude (weight 50) moved them by less than 1 dB either way. The
    /// weight, 2 against the KL's 0.05, won the quality ladder over 1 (QUALITY.md, stft2).
    public var kind = Kind.multiResolution
    public var weight = 2.0

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
    /// The KL's weight in the loss. The default, 0.05, is ClariNet-GAN's balance against the
    /// STFT loss for a teacher that is still weak, and won the quality ladder over 1.
    public var klWeight = 0.05
    /// The untrained student's output scale s_tot. Left out (nil): `initialScale(teacherLinearPrediction:)`.
    public var initialScale: Double?
    /// The least-squares adversarial term on the student's waveform (Yamamoto et al. 2019,
    /// Parallel WaveGAN): its weight (0: none), the step it starts at (after a warm-up on
    /// the other terms), and the discriminator's shape and learning rate (Adam, constant).
    public var adversarialWeight = 0.0
    public var adversarialStart = 200
    public var discriminatorLayers = 10
    public var discriminatorChannels = 64
    public var discriminatorLearningRate = 0.0002
    /// lambda of ClariNet's penalty lambda (log s_student - log s_teacher)^2 in the
    /// closed-form KL of a Gaussian teacher (which uses no `mc_samples`); a logistic
    /// teacher's Monte Carlo KL has none.
    public var logScalePenalty = 4.0

    public var steps: Int { get { run.steps } set { run.steps = newValue } }

    /// s_tot for a teacher with or without linear prediction: under one, the student's output
    /// is the excitation, in units of the frame's prediction error, so 1; under none, the
    /// waveform, 0.05.
    public func initialScale(teacherLinearPrediction: Bool) -> Double { initialScale ?? (teacherLinearPrediction ? 1 : 0.05) }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case mcSamples = "mc_samples", spectralLoss = "spectral_loss", contrastiveWeight = "contrastive_weight", initialScale = "initial_scale"
        case klWeight = "kl_weight", adversarialWeight = "adversarial_weight", adversarialStart = "adversarial_start"
        case discriminatorLayers = "discriminator_layers", discriminatorChannels = "discriminator_channels"
        case discriminatorLearningRate = "discriminator_learning_rate", logScalePenalty = "log_scale_penalty"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self, also: TrainSection.CodingKeys.allCases.map(\.stringValue))
        try c.update(&mcSamples, .mcSamples)
        try c.update(&logScalePenalty, .logScalePenalty)
        try c.update(&spectralLoss, .spectralLoss)
        try c.update(&contrastiveWeight, .contrastiveWeight)
        if let scale = try c.decodeIfPresent(Double.self, forKey: .initialScale) { initialScale = scale }
        try c.update(&klWeight, .klWeight)
        try c.update(&adversarialWeight, .adversarialWeight)
        try c.update(&adversarialStart, .adversarialStart)
        try c.update(&discriminatorLayers, .discriminatorLayers)
        try c.update(&discriminatorChannels, .discriminatorChannels)
        try c.update(&discriminatorLearningRate, .discriminatorLearningRate)
        try run.decode(from: decoder, also: CodingKeys.allCases.map(\.stringValue))
    }

    /// One flat mapping: the train keys, then the distill keys.
    public func encode(to encoder: Encoder) throws {
        try run.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(mcSamples, forKey: .mcSamples)
        try c.encode(spectralLoss, forKey: .spectralLoss)
        try c.encode(contrastiveWeight, forKey: .contrastiveWeight)
        try c.encodeIfPresent(initialScale, forKey: .initialScale)
        try c.encode(klWeight, forKey: .klWeight)
        try c.encode(adversarialWeight, forKey: .adversarialWeight)
        try c.encode(adversarialStart, forKey: .adversarialStart)
        try c.encode(discriminatorLayers, forKey: .discriminatorLayers)
        try c.encode(discriminatorChannels, forKey: .discriminatorChannels)
        try c.encode(discriminatorLearningRate, forKey: .discriminatorLearningRate)
        try c.encode(logScalePenalty, forKey: .logScalePenalty)
    }

    /// The discriminator of the adversarial term, nil without one.
    public var discriminator: DiscriminatorConfig? {
        adversarialWeight > 0 ? DiscriminatorConfig(layers: discriminatorLayers, channels: discriminatorChannels) : nil
    }

    func check(_ v: inout RecipeValidator) {
        run.check(&v)
        v.require(mcSamples, in: 1...1000, "mc_samples")
        v.require(spectralLoss.weight, in: 0...1e6, "spectral_loss.weight")
        v.require(contrastiveWeight, in: 0...10, "contrastive_weight")
        if let initialScale { v.require(initialScale, in: 1e-4...10, "initial_scale") }
        v.require(klWeight, in: 0...10, "kl_weight")
        v.require(adversarialWeight, in: 0...1000, "adversarial_weight")
        v.require(adversarialStart, in: 0...100_000_000, "adversarial_start")
        v.require(discriminatorLayers, in: 2...64, "discriminator_layers")
        v.require(discriminatorChannels, in: 1...1024, "discriminator_channels")
        v.require(discriminatorLearningRate, in: 1e-7...1, "discriminator_learning_rate")
        v.require(logScalePenalty, in: 0...100, "log_scale_penalty")
        if klWeight == 0 && (spectralLoss.kind == .none || spectralLoss.weight == 0) { v.fail("kl_weight", "0 leaves no loss without a spectral term") }
        if contrastiveWeight > 0 && run.batchSize < 2 { v.fail("contrastive_weight", "needs batch_size of at least 2 (it pairs each mel with another)") }
    }
}
