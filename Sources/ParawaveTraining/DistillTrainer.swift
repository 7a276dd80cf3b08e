import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels

extension Recipe {
    /// The student this recipe describes, with the mel front end `mel` (its teacher's).
    public func studentConfig(mel: MelSettings) -> StudentConfig {
        let s = student
        let flows = s.flows.map { s.stack.config(layers: $0, mel: mel, speakerChannels: 0, sourceChannels: 0) }
        return StudentConfig(flows: flows, logScaleMin: Float(s.logScaleMin), logScaleMax: Float(s.logScaleMax), mel: mel)
    }

    /// The student this recipe describes for a teacher conditioned on `speakers` (none: not
    /// speaker-conditioned) and on `source` (nil: none); the student then knows the same
    /// speakers and sees the same source.
    /// With `linearPrediction` (the teacher's order and log gain) its flows' output is the
    /// excitation the teacher's predictor shapes.
    public func studentConfig(mel: MelSettings, speakers: [String], source: SineSource? = nil, pitch: PitchPredictorConfig? = nil,
                              linearPrediction: (order: Int, gain: Float) = (0, 0), noise: SampleDistribution = .logistic) -> StudentConfig {
        var config = studentConfig(mel: mel)
        config.noise = noise
        (config.linearPrediction, config.linearPredictionGain) = linearPrediction
        for k in config.flows.indices { config.flows[k].sourceChannels = source == nil ? 0 : 1 }
        config.source = source
        config.sourceGain = Float(student.sourceGain(teacherHasSource: source != nil))
        config.pitch = pitch
        guard !speakers.isEmpty else { return config }
        for k in config.flows.indices { config.flows[k].speakerChannels = student.stack.speakerChannels }
        config.speakers = speakers
        return config
    }

    /// The spectral loss of `distill.spectral_loss`, nil for kind `none` or weight 0.
    public var spectralLoss: SpectralLoss? {
        let section = distill.spectralLoss
        let kind: SpectralLoss.Kind
        switch section.kind {
        case .none: return nil
        case .power: kind = .power
        case .magnitude: kind = .magnitude
        case .multiResolution: kind = .multiResolution
        }
        if section.weight == 0 { return nil }
        return SpectralLoss(kind: kind, resolutions: SpectralLoss.defaultResolutions(kind: kind))
    }
}

/// Probability density distillation of a student from a frozen teacher (`distill`): each
/// step draws the student's noise z and the cross-entropy's N samples per time step from the
/// run's generator, so a resumed run is bit-identical. Validation reports the KL and its
/// terms on the validation crops with fixed noise. The loop is `RunTrainer`'s.
public final class DistillTrainer: RunTrainer {
    public static let stateKind = "parawave.student.train-state"

    public let student: Student
    public let teacher: Teacher
    let distillation: Distillation
    let mcSamples: Int
    /// The teacher as given (run directory or checkpoint), recorded in the student's checkpoint
    /// so `evaluate` can score the student against it.
    let teacherName: String
    /// The adversarial term's discriminator, its optimizer and buffers (nil without one).
    let adversary: Adversary?

    final class Adversary {
        let discriminator: Discriminator
        let adam: Adam
        let weight: Float, start: Int, learningRate: Double
        let activations: Discriminator.Activations
        /// The batch's fake waveforms, kept for the discriminator's step, and dL/dlogits.
        var fake: [Float], dLogits: [Float]
        /// Where this step's rows sit in the global batch, and the ranks (data parallelism).
        var shard: BatchShard
        let communicator: Communicator

        init(config: DiscriminatorConfig, settings: DistillSection, batch: Int, length: Int, seed: Int, communicator: Communicator) {
            shard = .whole(batch)
            self.communicator = communicator
            discriminator = Discriminator(config: config)
            discriminator.initialise(seed: UInt64(seed) &+ 0xD15C)
            adam = Adam(store: discriminator.store, emaDecay: 0)
            weight = Float(settings.adversarialWeight)
            start = settings.adversarialStart
            learningRate = settings.discriminatorLearningRate
            activations = discriminator.makeActivations(batch: batch, length: length)
            fake = [Float](repeating: 0, count: batch * length)
            dLogits = fake
        }

        /// The global batch's count of real samples (nil: the mask's own, one process).
        func globalCount(_ mask: UnsafePointer<Float>?) -> Int? {
            guard !shard.isWhole else { return nil }
            let n = fake.count
            return shard.total(mask.map { m in (0..<n).reduce(0) { $0 + (m[$1] != 0 ? 1 : 0) } } ?? n)
        }

        /// A rank's part of a loss, summed over the ranks.
        func whole(_ loss: Double) -> Double { shard.isWhole ? loss : shard.sum(loss) }

        /// The generator's term: mean (D(x) - 1)^2, its gradient (times the weight) added into dX.
        func generatorTerm(x: UnsafePointer<Float>, mask: UnsafePointer<Float>?, dX: UnsafeMutablePointer<Float>?) -> Double {
            let n = fake.count
            fake.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: x, count: n) }
            discriminator.forward(activations, x: x)
            let count = globalCount(mask)
            let loss = whole(Discriminator.leastSquares(activations.logits, target: 1, mask: mask, weight: weight, dLogits: &dLogits, count: count))
            if let dX {
                discriminator.backward(activations, dLogits: dLogits, x: x, parameters: false, input: true)
                for i in 0..<n { dX[i] += activations.dInput[i] }
            }
            return loss
        }

        /// One step of the discriminator on the real audio and the fakes of the generator's
        /// step: mean (D(y) - 1)^2 + mean D(x)^2. Returns the two terms.
        func step(real: UnsafePointer<Float>, mask: UnsafePointer<Float>?) -> (real: Double, fake: Double) {
            let store = discriminator.store
            store.zeroGradients()
            let count = globalCount(mask)
            discriminator.forward(activations, x: real)
            let realLoss = whole(Discriminator.leastSquares(activations.logits, target: 1, mask: mask, weight: 1, dLogits: &dLogits, count: count))
            discriminator.backward(activations, dLogits: dLogits, x: real, parameters: true, input: false)
            let fakeLoss = fake.withUnsafeBufferPointer { x in
                discriminator.forward(activations, x: x.baseAddress!)
                let value = whole(Discriminator.leastSquares(activations.logits, target: 0, mask: mask, weight: 1, dLogits: &dLogits, count: count))
                discriminator.backward(activations, dLogits: dLogits, x: x.baseAddress!, parameters: true, input: false)
                return value
            }
            communicator.sum(UnsafeMutableBufferPointer(start: store.gradients, count: store.count), what: "discriminator's gradient sum")
            if store.gradientsAreFinite { _ = adam.update(store, learningRate: learningRate) }
            return (realLoss, fakeLoss)
        }
    }

    /// Sets up a new run in `run` distilling `teacher`, or with `resume` continues the one
    /// there. The recipe's audio settings must be the teacher's. The keys whose defaults
    /// follow the teacher (`student.source_gain`, `distill.initial_scale`) are resolved into
    /// the run's recipe.yaml.
    public init(recipe given: Recipe, data: TrainingData, teacher: Teacher, teacherName: String, run: RunDirectory, resume: Bool,
                communicator: Communicator = .single) throws {
        try Self.check(given, teacher: teacher, teacherName: teacherName)
        var recipe = given
        let initialScale = given.distill.initialScale(teacherLinearPrediction: teacher.config.linearPrediction > 0)
        recipe.student.sourceGain = given.student.sourceGain(teacherHasSource: teacher.config.source != nil)
        recipe.distill.initialScale = initialScale
        let settings = recipe.distill.run
        self.teacher = teacher
        self.teacherName = teacherName
        student = Student(config: recipe.studentConfig(mel: teacher.config.mel, speakers: teacher.config.speakers, source: teacher.config.source,
                                                       pitch: teacher.config.pitch,
                                                       linearPrediction: (teacher.config.linearPrediction, teacher.linearPredictionGain),
                                                       noise: teacher.config.output))
        if !teacher.config.speakers.isEmpty { try Self.checkSpeakers(data, known: teacher.config.speakers, model: "teacher") }
        student.initialise(seed: UInt64(settings.seed), initialScale: Float(initialScale))
        student.adopt(from: teacher)
        // A Gaussian teacher's KL is in closed form: no samples to draw.
        mcSamples = teacher.config.output == .gaussian ? 0 : recipe.distill.mcSamples
        // One frame of lead, as the teacher trains: in a crop that starts inside its utterance
        // the first frame is history for the scored samples (`TeacherTrainer.lead`). Without
        // it the teacher scored the student's first samples after a history of zeros, which
        // it has learnt only at an utterance's silent start.
        let frames = recipe.audio.mel.frames(forCrop: settings.crop) + TeacherTrainer.lead
        var terms = Distillation.Settings(mcSamples: mcSamples, spectral: recipe.spectralLoss,
                                          spectralWeight: Float(recipe.distill.spectralLoss.weight),
                                          contrastiveWeight: Float(recipe.distill.contrastiveWeight))
        terms.crossEntropyWeight = Float(recipe.distill.klWeight)
        terms.entropyWeight = Float(recipe.distill.klWeight)
        if teacher.config.output == .gaussian { terms.logScalePenaltyWeight = Float(recipe.distill.logScalePenalty) }
        let localBatch = max(1, settings.batchSize / communicator.size)
        distillation = Distillation(student: student, teacher: teacher, batch: localBatch, frames: frames, settings: terms)
        adversary = recipe.distill.discriminator.map {
            Adversary(config: $0, settings: recipe.distill, batch: localBatch, length: frames * recipe.audio.hopLength, seed: settings.seed,
                      communicator: communicator)
        }
        try super.init(recipe: recipe, settings: settings, data: data, run: run, resume: resume, store: student.store,
                       groups: student.parameterGroups(clipNorm: settings.clipNorm), label: "distill", stateKind: Self.stateKind, source: teacher.config.source.map(Self.renderingPhase),
                       lead: TeacherTrainer.lead, communicator: communicator)
        try start(resume: resume)
    }

    /// The recipe's audio settings must be the teacher's.
    public static func check(_ recipe: Recipe, teacher: Teacher, teacherName: String) throws {
        try recipe.audio.mel.requireSame(as: teacher.config.mel, mine: "the recipe", theirs: "the teacher", path: teacherName,
                                         remedy: "distill with the teacher's recipe settings")
        if recipe.audio.bits != teacher.config.bits {
            throw ParawaveError(teacherName, "the recipe's audio.bits (\(recipe.audio.bits)) disagrees with the teacher's (\(teacher.config.bits))")
        }
        if let kind = recipe.student.source, kind != (teacher.config.source == nil ? .none : .sine) {
            throw ParawaveError(teacherName, "the recipe's student.source is '\(kind.rawValue)' but the teacher's source is "
                                + "'\(teacher.config.source == nil ? "none" : "sine")'; a student sees its teacher's source (leave student.source out)")
        }
        if let gain = recipe.student.sourceGain, gain > 0 && teacher.config.source == nil {
            throw ParawaveError(teacherName, "the recipe's student.source_gain (\(gain)) centres the student's noise on "
                                + "its teacher's source, but the teacher has none; train it with teacher.source: sine, or set source_gain: 0")
        }
        if !teacher.config.speakers.isEmpty && recipe.student.stack.speakerChannels == 0 {
            throw ParawaveError(teacherName, "the teacher is conditioned on \(teacher.config.speakers.count) speakers; "
                                + "a student of it needs student.speaker_channels > 0")
        }
    }

    /// The student's training sources start from a drawn phase, as at render time, whatever
    /// phase its teacher trained with: it must follow the source it is given.
    static func renderingPhase(_ source: SineSource) -> SineSource {
        var random = source
        random.trainingPhase = .random
        return random
    }

    /// The terms as metric values; the loss first.
    func values(_ t: Distillation.Terms) -> [(String, Double)] {
        var v = [("loss", t.loss), ("kl", t.kl), ("cross_entropy", t.crossEntropy), ("entropy", t.entropy)]
        if distillation.settings.logScalePenaltyWeight != 0 { v.append(("log_scale_penalty", t.logScalePenalty)) }
        if distillation.settings.spectral != nil { v.append(("spectral", t.spectral)) }
        if distillation.settings.contrastiveWeight != 0 { v.append(("contrastive_kl", t.contrastive)) }
        return v
    }

    /// The adversarial terms of a training step (0 before the term starts), so every metrics
    /// line of a run has the same fields.
    func adversarialValues(generator: Double, real: Double, fake: Double) -> [(String, Double)] {
        adversary == nil ? [] : [("adversarial", generator), ("discriminator_real", real), ("discriminator_fake", fake)]
    }

    /// The terms on a global batch: the noise is drawn for all of it (so a step's draws do not
    /// depend on the rank count), and this rank works on its rows.
    func evaluate(_ whole: CropBatch, generator: inout SeededGenerator, gradients: Bool) -> Distillation.Terms {
        let n = whole.batch * whole.length
        let z = student.noise(count: n, generator: &generator)
        let eps = Student.noise(count: mcSamples * n, generator: &generator)
        let (batch, shard) = part(whole)
        adversary?.shard = shard
        let speakers = Self.speakerRows(whole, table: teacher.config.speakers)
        guard !shard.isWhole else {
            return distillation.evaluate(mel: batch.mel, audio: batch.audio, mask: batch.mask, noise: z, samples: eps, speakers: speakers,
                                         source: batch.source.isEmpty ? nil : batch.source, gradients: gradients)
        }
        let T = whole.length, rows = shard.offset..<(shard.offset + shard.count)
        let localNoise = Array(z[(rows.lowerBound * T)..<(rows.upperBound * T)])
        var localSamples: [Float] = []
        localSamples.reserveCapacity(mcSamples * rows.count * T)
        for k in 0..<mcSamples { localSamples += eps[(k * n + rows.lowerBound * T)..<(k * n + rows.upperBound * T)] }
        var neighbours: (mel: [Float], source: [Float], speakers: [Int]?)?
        if distillation.settings.contrastiveWeight != 0 {
            let next = rows.map { ($0 + 1) % whole.batch }
            let size = whole.mel.count / whole.batch
            neighbours = (next.flatMap { whole.mel[($0 * size)..<(($0 + 1) * size)] },
                          whole.source.isEmpty ? [] : next.flatMap { whole.source[($0 * T)..<(($0 + 1) * T)] },
                          speakers.map { s in next.map { s[$0] } })
        }
        return distillation.evaluate(mel: batch.mel, audio: batch.audio, mask: batch.mask, noise: localNoise, samples: localSamples,
                                     speakers: speakers.map { Array($0[rows]) }, source: batch.source.isEmpty ? nil : batch.source,
                                     gradients: gradients, shard: shard, neighbours: neighbours)
    }

    override func trainingStep(_ batch: CropBatch) -> [(String, Double)] {
        guard let adversary, step >= adversary.start else {
            return values(evaluate(batch, generator: &generator, gradients: true)) + adversarialValues(generator: 0, real: 0, fake: 0)
        }
        distillation.waveformTerm = (adversary.weight, { x, mask, dX in adversary.generatorTerm(x: x, mask: mask, dX: dX) })
        defer { distillation.waveformTerm = nil }
        let terms = evaluate(batch, generator: &generator, gradients: true)
        let (local, _) = part(batch)
        let d = local.audio.withUnsafeBufferPointer { real in
            local.mask.withUnsafeBufferPointer { mask in adversary.step(real: real.baseAddress!, mask: mask.isEmpty ? nil : mask.baseAddress!) }
        }
        return values(terms) + adversarialValues(generator: terms.adversarial, real: d.real, fake: d.fake)
    }

    override func validationValues(_ batches: [CropBatch]) -> [(String, Double)] {
        var sums: [(String, Double)] = [], weights = 0.0
        for (i, batch) in batches.enumerated() {
            var fixed = SeededGenerator(seed: 0x5EED_0000 &+ UInt64(i))
            let w = Double(batch.mask.filter { $0 != 0 }.count)
            let v = values(evaluate(batch, generator: &fixed, gradients: false)).dropFirst()
            sums = sums.isEmpty ? v.map { ($0.0, $0.1 * w) } : zip(sums, v).map { ($0.0, $0.1 + $1.1 * w) }
            weights += w
        }
        return sums.map { ($0.0, $0.1 / max(weights, 1)) }
    }

    override func modelCheckpoint(values: [Float]) -> SafeTensors {
        var file = student.checkpoint(values: values, step: step)
        file.metadata["teacher"] = Self.relativePath(to: teacherName, from: URL(fileURLWithPath: run.model).deletingLastPathComponent().path)
        return file
    }

    /// `path` relative to the folder `base` (both made absolute and standardised), so that a
    /// run and its teacher can move together and be evaluated from any working directory.
    public static func relativePath(to path: String, from base: String) -> String {
        let target = URL(fileURLWithPath: path).standardizedFileURL.pathComponents
        let origin = URL(fileURLWithPath: base).standardizedFileURL.pathComponents
        var shared = 0
        while shared < min(target.count, origin.count) && target[shared] == origin[shared] { shared += 1 }
        let parts = Array(repeating: "..", count: origin.count - shared) + target[shared...]
        return parts.isEmpty ? "." : parts.joined(separator: "/")
    }

    override func stateTensors() -> [String: SafeTensors.Tensor] {
        var tensors = Self.normalisationTensors(prefix: "student", mean: student.melMean, std: student.melStd)
        if let adversary {
            let n = adversary.discriminator.store.count
            tensors["discriminator.values"] = .init(shape: [n], values: adversary.discriminator.store.valueArray)
            tensors["discriminator.adam.m"] = .init(shape: [n], values: adversary.adam.m)
            tensors["discriminator.adam.v"] = .init(shape: [n], values: adversary.adam.v)
        }
        return tensors
    }

    override func stateMetadata() -> [String: String] {
        var m = student.metadata(step: step)
        m["teacher_config"] = teacher.metadata(step: 0)["config"]
        if let adversary {
            m["discriminator_adam_step"] = String(adversary.adam.step)
            m["discriminator_config"] = String(decoding: try! JSONEncoder().encode(adversary.discriminator.config), as: UTF8.self)
        }
        return m
    }

    override func restoreModelState(from file: SafeTensors, path: String) throws {
        try checkSavedConfig(student.config, what: "student", in: file, path: path)
        if file.metadata["teacher_config"] != teacher.metadata(step: 0)["config"] {
            throw ParawaveError(path, "was distilled from a teacher of a different shape than --teacher's; resume with the same teacher")
        }
        (student.melMean, student.melStd) = try Self.normalisation(prefix: "student", bands: student.melMean.count, in: file, path: path)
        if let adversary {
            let config = String(decoding: try JSONEncoder().encode(adversary.discriminator.config), as: UTF8.self)
            guard file.metadata["discriminator_config"] == config, let adamStep = file.metadata["discriminator_adam_step"].flatMap({ Int($0) }) else {
                throw ParawaveError(path, "holds no discriminator of the recipe's shape; resume with the run's own recipe (its "
                                    + "distill.adversarial_weight and discriminator_* keys)")
            }
            let n = adversary.discriminator.store.count
            let values = try file.tensor("discriminator.values", shape: [n], file: path)
            let m = try file.tensor("discriminator.adam.m", shape: [n], file: path), v = try file.tensor("discriminator.adam.v", shape: [n], file: path)
            adversary.discriminator.store.setValues(values)
            adversary.adam.restore(m: m, v: v, ema: values, step: adamStep)
        } else if file.metadata["discriminator_config"] != nil {
            throw ParawaveError(path, "was distilled with an adversarial term that the recipe lacks; resume with the run's own recipe")
        }
    }

    override func describe(_ values: [(String, Double)], validation: [(String, Double)]?) -> String {
        let named = Dictionary(values, uniquingKeysWith: { a, _ in a })
        var detail = String(format: "KL %.3f nats (H(S,T) %.3f, H(S) %.3f)", named["kl"] ?? .nan, named["cross_entropy"] ?? .nan,
                            named["entropy"] ?? .nan)
        if let s = named["spectral"] { detail += String(format: ", spectral %.4g", s) }
        if let g = named["adversarial"], g != 0 {
            detail += String(format: ", adversarial %.3f (D real %.3f, fake %.3f)", g, named["discriminator_real"] ?? .nan, named["discriminator_fake"] ?? .nan)
        }
        if let v = validation?.first?.1 { detail += String(format: ", validation KL %.3f", v) }
        return detail
    }
}
