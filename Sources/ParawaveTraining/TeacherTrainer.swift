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
                             pitch: t.sineSource == nil ? nil : pitch.predictor(melChannels: audio.nMels), linearPrediction: t.linearPrediction)
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
    /// The pitch predictor's buffers, crops and validation utterances (mel and pYIN track),
    /// when the teacher has one.
    let pitchActivations: PitchPredictor.Activations?
    let pitchSampler: CropSampler?
    let pitchValidation: [(mel: Matrix, f0: [Float])]
    /// The pitch predictor trains on `pitchCrops` crops of `pitchCropFrames` frames (about 2 s
    /// at hop 256) per step: longer than its context on both sides, so that it learns from real
    /// frames rather than padding, and many of them, since a predictor fed 4 a step fits the
    /// corpus's voices more slowly. Measured cost: about 90 ms a step, a third more on the
    /// demo teacher's step (0.32 s) and a twentieth on T-small's (1.9 s).
    public static let pitchCropFrames = 128, pitchCrops = 16

    /// Every crop carries one frame more than the recipe's `crop`: in a crop that starts
    /// inside its utterance that frame is history for the scored samples, not scored itself
    /// (`CropSampler.lead`). Without it the first samples of such a crop were scored against a
    /// history of zeros, and the linear prediction from them against nothing; a teacher then
    /// learnt that with no history any sample is likely, and in generation, whose history
    /// starts at zero, drew a first sample hundreds of prediction-error scales wide, which
    /// the near-unit-circle poles of a silent frame's predictor rang up to full scale.
    public static let lead = 1

    /// The pitch crops a rank trains on: an even share of the 16 (none when ranks outnumber them).
    static func pitchRows(rank: Int, of ranks: Int) -> Range<Int> { (rank * pitchCrops / ranks)..<((rank + 1) * pitchCrops / ranks) }

    /// Sets up a new run in `run` (which must not hold one), or with `resume` continues the
    /// one there from its last checkpoint.
    public init(recipe: Recipe, data: TrainingData, run: RunDirectory, resume: Bool, communicator: Communicator = .single) throws {
        teacher = Teacher(config: recipe.teacherConfig(speakers: data.speakers))
        if !teacher.config.speakers.isEmpty {
            try Self.checkSpeakers(data, known: teacher.config.speakers, model: "teacher")
        }
        teacher.initialise(seed: UInt64(recipe.train.seed))
        teacher.melMean = data.melMean
        teacher.melStd = data.melStd
        let frames = recipe.audio.mel.frames(forCrop: recipe.train.crop) + Self.lead
        activations = teacher.makeActivations(batch: max(1, recipe.train.batchSize / communicator.size), frames: frames)
        let hop = recipe.audio.hopLength
        let pitchRows = Self.pitchRows(rank: communicator.rank, of: communicator.size)
        pitchActivations = pitchRows.isEmpty ? nil : teacher.pitch?.makeActivations(batch: pitchRows.count, frames: Self.pitchCropFrames)
        pitchSampler = teacher.pitch == nil ? nil
            : CropSampler(data.train, frames: Self.pitchCropFrames, hop: hop, logFloor: recipe.audio.mel.logFloor)
        pitchValidation = teacher.pitch == nil ? []
            : data.validation.prefix(recipe.train.validationUtterances).compactMap { u in u.f0.map { (u.mel, $0) } }
        try super.init(recipe: recipe, settings: recipe.train, data: data, run: run, resume: resume, store: teacher.store,
                       groups: teacher.parameterGroups(clipNorm: recipe.train.clipNorm), label: "train-teacher", stateKind: Self.stateKind, source: teacher.config.source,
                       lead: Self.lead, communicator: communicator)
        try start(resume: resume)
    }

    /// Mean validation NLL (nats per sample) under the EMA weights.
    public func validationLoss() -> Double? { validate()?.first?.1 }

    override func trainingStep(_ whole: CropBatch) -> [(String, Double)] {
        let (batch, shard) = part(whole)
        teacher.forward(activations, audio: batch.audio, mel: batch.mel, speakers: Self.speakerRows(batch, table: teacher.config.speakers),
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
        if let pitchSampler {
            // Every rank draws all the crops (the random stream stays the same) and trains the
            // pitch predictor on its share, dividing by all the crops' frames.
            let crops = pitchSampler.next(batch: Self.pitchCrops, generator: &generator)
            var totals: (frames: Int, voiced: Int)?
            if !shard.isWhole {
                let mask = crops.frameMask
                totals = (mask.filter { $0 != 0 }.count, mask.indices.filter { mask[$0] != 0 && crops.f0[$0] > 0 }.count)
            }
            var pitch = [0.0, 0]
            if let pitchActivations {
                let mine = crops.rows(Self.pitchRows(rank: communicator.rank, of: communicator.size))
                let loss = teacher.pitchLoss(pitchActivations, mel: mine.mel, f0: mine.f0, mask: mine.frameMask, totals: totals)
                pitch = [loss.voicing, loss.f0]
            }
            if !shard.isWhole { pitch = shard.sum(pitch) }
            values += [("pitch_loss", pitch[0] + pitch[1]), ("pitch_voicing_loss", pitch[0]), ("pitch_f0_loss", pitch[1])]
        }
        return values
    }

    override func validationValues(_ batches: [CropBatch]) -> [(String, Double)] {
        var sum = 0.0, count = 0
        var pitch = PitchMetrics.Accumulator()
        for whole in batches {
            let (batch, _) = part(whole)
            teacher.forward(activations, audio: batch.audio, mel: batch.mel, speakers: Self.speakerRows(batch, table: teacher.config.speakers),
                            source: batch.source.isEmpty ? nil : batch.source)
            let (nll, n) = teacher.loss(activations, audio: batch.audio, mask: batch.mask)
            sum += nll * Double(n)
            count += n
        }
        let ranks = communicator.size
        for (i, (mel, f0)) in pitchValidation.enumerated() where i % ranks == communicator.rank {
            pitch.add(reference: f0, generated: teacher.predictF0(mel: mel)!.f0)
        }
        if ranks > 1 {
            let sums = communicator.sum([sum, Double(count)] + pitch.sums, what: "validation sums")
            (sum, count) = (sums[0], Int(sums[1]))
            pitch = PitchMetrics.Accumulator(sums: Array(sums[2...]))
        }
        let nll = sum / Double(max(count, 1))
        var values = [("nll", nll), ("bits", nll / M_LN2)]
        if !pitchValidation.isEmpty {
            let m = pitch.metrics
            values += [("pitch_within_50_cents", m.within50 ?? 0), ("pitch_vuv_error", m.voicingError)]
        }
        return values
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
        if let within = validation?.first(where: { $0.0 == "pitch_within_50_cents" })?.1,
           let vuv = validation?.first(where: { $0.0 == "pitch_vuv_error" })?.1 {
            detail += String(format: ", predicted F0 %.0f%% within 50 c, V/UV error %.0f%%", 100 * within, 100 * vuv)
        }
        return detail
    }
}
