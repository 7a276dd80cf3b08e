import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels

extension Recipe {
    /// The teacher this recipe describes, without speaker conditioning.
    public var teacherConfig: TeacherConfig { teacherConfig(speakers: []) }

    /// The teacher this recipe describes for data naming `speakers`: conditioned on them
    /// unless there are none or `teacher.speaker_channels` is 0.
    public func teacherConfig(speakers: [String]) -> TeacherConfig {
        let t = teacher
        let conditioned = !speakers.isEmpty && t.stack.speakerChannels > 0
        let stack = t.stack.config(layers: t.layers, mel: audio.mel, speakerChannels: conditioned ? t.stack.speakerChannels : 0,
                                   sourceChannels: t.sineSource == nil ? 0 : 1)
        return TeacherConfig(stack: stack, mixtures: t.mixtures, bits: audio.bits, logScaleMin: Float(t.logScaleMin), mel: audio.mel,
                             speakers: conditioned ? speakers : [], source: t.sineSource,
                             pitch: t.sineSource == nil ? nil : pitch.predictor(melChannels: audio.nMels), linearPrediction: t.linearPrediction,
                             output: t.output)
    }
}

extension Recipe {
    /// Settings that are valid but probably not meant, one sentence each, for the training
    /// commands to print before they start.
    public var warnings: [String] {
        var out: [String] = []
        let teacherField = teacherConfig.stack.receptiveField
        if train.crop < teacherField {
            out.append("train.crop (\(train.crop) samples) is shorter than the teacher's receptive field (\(teacherField) samples): "
                       + "no sample of a crop sees a full past, which rendering always does; raise train.crop")
        }
        let studentField = studentConfig(mel: audio.mel).receptiveField
        if distill.run.crop < studentField {
            out.append("distill.crop (\(distill.run.crop) samples) is shorter than the student's receptive field (\(studentField) samples); "
                       + "raise distill.crop")
        }
        return out
    }
}

/// Maximum-likelihood training of a teacher (`train-teacher`): masked mean NLL of the crops,
/// validation NLL in nats and bits per sample. The loop is `RunTrainer`'s.
public final class TeacherTrainer: RunTrainer {
    public static let stateKind = "parawave.teacher.train-state"

    public let teacher: Teacher
    let activations: Teacher.Activations
    /// The pitch predictor's training, when the teacher has one.
    let pitch: PitchTraining<Teacher>?
    /// `teacher.history_noise`: the error added to the history the teacher reads in training.
    let historyNoise: Double

    /// Every crop carries one frame more than the recipe's `crop`: in a crop that starts
    /// inside its utterance that frame is history for the scored samples, not scored itself
    /// (`CropSampler.lead`). Without it the first samples of such a crop were scored against a
    /// history of zeros, and the linear prediction from them against nothing; a teacher then
    /// learnt that with no history any sample is likely, and in generation, whose history
    /// starts at zero, drew a first sample hundreds of prediction-error scales wide, which
    /// the near-unit-circle poles of a silent frame's predictor rang up to full scale.
    public static let lead = 1

    /// Sets up a new run in `run` (which must not hold one), or with `resume` continues the
    /// one there from its last checkpoint.
    public init(recipe: Recipe, data: TrainingData, run: RunDirectory, resume: Bool, communicator: Communicator = .single) throws {
        teacher = Teacher(config: recipe.teacherConfig(speakers: data.speakers))
        if !teacher.config.speakers.isEmpty {
            try Self.checkSpeakers(data, known: teacher.config.speakers, model: "teacher")
        }
        teacher.initialise(seed: UInt64(recipe.train.seed))
        historyNoise = recipe.teacher.historyNoise
        teacher.melMean = data.melMean
        teacher.melStd = data.melStd
        let frames = recipe.audio.mel.frames(forCrop: recipe.train.crop) + Self.lead
        activations = teacher.makeActivations(batch: max(1, recipe.train.batchSize / communicator.size), frames: frames)
        pitch = PitchTraining(teacher, data: data, validationUtterances: recipe.train.validationUtterances, hop: recipe.audio.hopLength,
                              logFloor: recipe.audio.mel.logFloor, augmentDB: recipe.pitch.augmentDB, communicator: communicator)
        try super.init(recipe: recipe, settings: recipe.train, data: data, run: run, resume: resume, store: teacher.store,
                       groups: teacher.parameterGroups(clipNorm: recipe.train.clipNorm), label: "train-teacher", stateKind: Self.stateKind, source: teacher.config.source,
                       lead: Self.lead, communicator: communicator)
        try start(resume: resume)
    }

    /// LPCNet's noise injection (Valin and Skoglund 2019): the batch with each row's audio
    /// x + d, d white Gaussian noise of `scale` times each frame's prediction-error deviation
    /// per sample (the mel's, `MelLinearPrediction.analyse`, sqrt(E) over the window's
    /// energy) passed through the frame's synthesis filter 1/A(z), so that the history
    /// carries errors shaped like those a generation's own draws leave in its past. The noise
    /// is drawn for the whole batch in row order, so a step does not depend on the rank count.
    public static func noisyHistory(_ whole: CropBatch, linearPrediction lp: MelLinearPrediction, melRows C: Int, scale: Float,
                                    generator: inout SeededGenerator) -> CropBatch {
        var out = whole
        let T = whole.length, F = whole.frames, P = lp.order
        var coefficients = [Float](repeating: 0, count: F * P), logRMS = [Float](repeating: 0, count: F)
        var d = [Float](repeating: 0, count: T)
        // The frame's error deviation per sample: ln sqrt(E) is of the windowed frame.
        let deviation = Float(lp.logDeviationPerRMS)
        for b in 0..<whole.batch {
            whole.mel.withUnsafeBufferPointer { mel in
                lp.analyse(logMel: mel.baseAddress! + b * C * F, frames: F, coefficients: &coefficients, logRMS: &logRMS)
            }
            for t in 0..<T { d[t] = scale * exp(logRMS[lp.frame(ofSample: t, frames: F)] + deviation) * generator.normal() }
            lp.synthesize(&d, length: T, coefficients: coefficients, frames: F)
            for t in 0..<T { out.audio[b * T + t] += d[t] }
        }
        return out
    }

    /// Mean validation NLL (nats per sample) under the EMA weights.
    public func validationLoss() -> Double? { validate()?.first?.1 }

    override func trainingStep(_ whole: CropBatch) -> [(String, Double)] {
        let (batch, shard) = part(whole)
        // The history the teacher reads: the recording's, or with `history_noise` the
        // recording's plus the error a generation leaves (the samples scored stay the recording's).
        var history = batch
        if historyNoise > 0, let lp = teacher.linearPrediction {
            history = part(Self.noisyHistory(whole, linearPrediction: lp, melRows: teacher.config.stack.conditionChannels,
                                             scale: Float(historyNoise), generator: &generator)).0
        }
        teacher.forward(activations, audio: history.audio, mel: batch.mel, speakers: Self.speakerRows(batch, table: teacher.config.speakers),
                        source: batch.source.isEmpty ? nil : batch.source, continues: batch.continues)
        var (nll, count) = teacher.loss(activations, audio: batch.audio, mask: batch.mask)
        if !shard.isWhole {
            // The mean over the whole batch's samples: every rank divides by their count.
            let sums = shard.sum([nll * Double(count), Double(count)])
            count = max(1, Int(sums[1]))
            nll = sums[0] / Double(count)
        }
        teacher.backward(activations, audio: batch.audio, mask: batch.mask, count: count)
        var values = [("loss", nll), ("bits", nll / M_LN2)]
        if let pitch { values += pitch.step(generator: &generator, shard: shard) }
        return values
    }

    override func validationValues(_ batches: [CropBatch]) -> [(String, Double)] {
        var sum = 0.0, count = 0
        for whole in batches {
            let (batch, _) = part(whole)
            teacher.forward(activations, audio: batch.audio, mel: batch.mel, speakers: Self.speakerRows(batch, table: teacher.config.speakers),
                            source: batch.source.isEmpty ? nil : batch.source)
            let (nll, n) = teacher.loss(activations, audio: batch.audio, mask: batch.mask)
            sum += nll * Double(n)
            count += n
        }
        var pitchMetrics = pitch?.validate() ?? PitchMetrics.Accumulator()
        let ranks = communicator.size
        if ranks > 1 {
            let sums = communicator.sum([sum, Double(count)] + pitchMetrics.sums, what: "validation sums")
            (sum, count) = (sums[0], Int(sums[1]))
            pitchMetrics = PitchMetrics.Accumulator(sums: Array(sums[2...]))
        }
        let nll = sum / Double(max(count, 1))
        return [("nll", nll), ("bits", nll / M_LN2)] + (pitch?.values(pitchMetrics) ?? [])
    }

    override func modelCheckpoint(values: [Float]) -> SafeTensors { teacher.checkpoint(values: values, step: step) }

    override func stateTensors() -> [String: SafeTensors.Tensor] {
        Self.normalisationTensors(prefix: "teacher", mean: teacher.melMean, std: teacher.melStd)
    }

    override func stateMetadata() -> [String: String] { teacher.metadata(step: step) }

    override func restoreModelState(from file: SafeTensors, path: String) throws {
        try checkSavedConfig(teacher.config, what: "teacher", in: file, path: path)
        (teacher.melMean, teacher.melStd) = try Self.normalisation(prefix: "teacher", bands: teacher.config.stack.conditionChannels, in: file, path: path)
    }

    override func describe(_ values: [(String, Double)], validation: [(String, Double)]?) -> String {
        let loss = values.first?.1 ?? .nan
        var detail = String(format: "loss %.3f nats (%.3f bits)", loss, loss / M_LN2)
        if let v = validation?.first?.1 { detail += String(format: ", validation %.3f bits", v / M_LN2) }
        return detail + PitchTraining<Teacher>.describe(validation)
    }
}
