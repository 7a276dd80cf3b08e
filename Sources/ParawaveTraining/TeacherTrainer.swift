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
        let conditioned = !speakers.isEmpty && t.speakerChannels > 0
        let stack = WaveNetStackConfig(layers: t.layers, cycle: t.cycle, kernelSize: t.kernelSize, residualChannels: t.residualChannels,
                                       gatedChannels: t.gateChannels / 2, skipChannels: t.skipChannels, conditionChannels: audio.nMels,
                                       hop: audio.hopLength, upsampler: t.upsampler, speakerChannels: conditioned ? t.speakerChannels : 0,
                                       sourceChannels: t.sineSource == nil ? 0 : 1)
        return TeacherConfig(stack: stack, mixtures: t.mixtures, bits: audio.bits, logScaleMin: Float(t.logScaleMin), mel: audio.mel,
                             speakers: conditioned ? speakers : [], source: t.sineSource)
    }
}

/// Maximum-likelihood training of a teacher (`train-teacher`): masked mean NLL of the crops,
/// validation NLL in nats and bits per sample. The loop is `RunTrainer`'s.
public final class TeacherTrainer: RunTrainer {
    public static let stateKind = "parawave.teacher.train-state"

    public let teacher: Teacher
    let activations: Teacher.Activations

    /// Sets up a new run in `run` (which must not hold one), or with `resume` continues the
    /// one there from its last checkpoint.
    public init(recipe: Recipe, data: TrainingData, run: RunDirectory, resume: Bool) throws {
        teacher = Teacher(config: recipe.teacherConfig(speakers: data.speakers))
        if !teacher.config.speakers.isEmpty {
            try Self.checkSpeakers(data, known: teacher.config.speakers, model: "teacher")
        }
        teacher.initialise(seed: UInt64(recipe.train.seed))
        teacher.melMean = data.melMean
        teacher.melStd = data.melStd
        let frames = max(recipe.train.crop / recipe.audio.hopLength, 1)
        activations = teacher.makeActivations(batch: recipe.train.batchSize, frames: frames)
        try super.init(recipe: recipe, settings: recipe.train, data: data, run: run, resume: resume, store: teacher.store,
                       label: "train-teacher", stateKind: Self.stateKind, source: teacher.config.source)
        precondition(sampler.frames == frames, "crop frames disagree")
        try start(resume: resume)
    }

    /// Mean validation NLL (nats per sample) under the EMA weights.
    public func validationLoss() -> Double? { validate()?.first?.1 }

    override func trainingStep(_ batch: CropBatch) -> [(String, Double)] {
        teacher.forward(activations, audio: batch.audio, mel: batch.mel, speakers: Self.speakerRows(batch, table: teacher.config.speakers),
                        source: batch.source.isEmpty ? nil : batch.source)
        let (nll, count) = teacher.loss(activations, audio: batch.audio, mask: batch.mask)
        teacher.backward(activations, audio: batch.audio, mask: batch.mask, count: count)
        return [("loss", nll), ("bits", nll / M_LN2)]
    }

    override func validationValues(_ batches: [CropBatch]) -> [(String, Double)] {
        var sum = 0.0, count = 0
        for batch in batches {
            teacher.forward(activations, audio: batch.audio, mel: batch.mel, speakers: Self.speakerRows(batch, table: teacher.config.speakers),
                            source: batch.source.isEmpty ? nil : batch.source)
            let (nll, n) = teacher.loss(activations, audio: batch.audio, mask: batch.mask)
            sum += nll * Double(n)
            count += n
        }
        let nll = sum / Double(max(count, 1))
        return [("nll", nll), ("bits", nll / M_LN2)]
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
        return detail
    }
}
