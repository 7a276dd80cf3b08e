import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels

extension Recipe {
    /// The teacher this recipe describes.
    public var teacherConfig: TeacherConfig {
        let t = teacher
        let stack = WaveNetStackConfig(layers: t.layers, cycle: t.cycle, kernelSize: t.kernelSize, residualChannels: t.residualChannels,
                                       gatedChannels: t.gateChannels / 2, skipChannels: t.skipChannels, conditionChannels: audio.nMels,
                                       hop: audio.hopLength)
        return TeacherConfig(stack: stack, mixtures: t.mixtures, bits: audio.bits, logScaleMin: Float(t.logScaleMin), mel: audio.mel)
    }
}

/// Maximum-likelihood training of a teacher in a run directory, resumable bit-exactly.
///
/// Every step: a batch of random frame-aligned crops, forward, masked mean NLL, backward, a
/// guard against non-finite values (the step is skipped, counted and logged; too many in a
/// row stop the run with the last checkpoint intact), Adam with clipping, the schedule and
/// the EMA. Validation NLL (EMA weights) at `validate_every`, checkpoints at
/// `checkpoint_every`, at the end and when a stop is requested (Ctrl-C).
public final class TeacherTrainer {
    public static let stateKind = "parawave.teacher.train-state"

    public let recipe: Recipe
    public let run: RunDirectory
    public let teacher: Teacher
    public let adam: Adam
    let sampler: CropSampler
    let validationBatches: [CropBatch]
    let activations: Teacher.Activations
    public private(set) var generator: SeededGenerator
    public private(set) var step = 0
    public private(set) var skippedSteps = 0
    public private(set) var consecutiveSkipped = 0
    /// Training time of earlier sessions of this run, seconds.
    var previousSeconds = 0.0
    /// Called after the backward pass and before the update (tests inject faults here).
    public var beforeUpdate: ((Int, ParameterStore) -> Void)?
    /// Where progress and notices go.
    public var log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    public var showProgress = true

    public struct Outcome: Sendable {
        public var step: Int
        public var trainLoss: Double
        public var validationLoss: Double?
        public var skippedSteps: Int
        public var interrupted: Bool
        public var seconds: Double
    }

    /// Sets up a new run in `run` (which must not hold one), or with `resume` continues the
    /// one there from its last checkpoint.
    public init(recipe: Recipe, data: TrainingData, run: RunDirectory, resume: Bool) throws {
        self.recipe = recipe
        self.run = run
        let config = recipe.teacherConfig
        teacher = Teacher(config: config)
        let train = recipe.train
        sampler = CropSampler(data.train, cropSamples: train.crop, hop: recipe.audio.hopLength, logFloor: recipe.audio.mel.logFloor)
        let validation = Array(data.validation.prefix(train.validationUtterances))
        validationBatches = validation.isEmpty ? [] :
            CropSampler(validation, cropSamples: train.crop, hop: recipe.audio.hopLength, logFloor: recipe.audio.mel.logFloor)
                .fixedBatches(batch: train.batchSize)
        activations = teacher.makeActivations(batch: train.batchSize, frames: sampler.frames)
        try run.checkStart(resume: resume)
        if resume {
            teacher.initialise(seed: UInt64(train.seed))
            adam = Adam(store: teacher.store, clipNorm: train.clipNorm, emaDecay: Float(train.emaDecay))
            generator = SeededGenerator(seed: 0)
            try restore()
            try run.truncateMetrics(after: step)
        } else {
            try run.create()
            teacher.initialise(seed: UInt64(train.seed))
            teacher.melMean = data.melMean
            teacher.melStd = data.melStd
            adam = Adam(store: teacher.store, clipNorm: train.clipNorm, emaDecay: Float(train.emaDecay))
            generator = SeededGenerator(seed: UInt64(train.seed) &* 0x9E37_79B9 &+ 0x5EED)
            try? FileManager.default.removeItem(atPath: run.metrics)
        }
        try AtomicFile.write(Data(try recipe.yaml().utf8), to: run.recipe)
    }

    // MARK: checkpoints

    /// Writes `model.safetensors` (EMA weights) and `train-state.safetensors`, each atomically;
    /// the state goes last, so a kill between the two resumes from the older state.
    public func checkpoint(seconds: Double) throws {
        try teacher.checkpoint(values: adam.ema, step: step).write(to: run.model)
        let n = teacher.store.count, C = teacher.config.stack.conditionChannels
        var state = SafeTensors(tensors: ["values": .init(shape: [n], values: teacher.store.valueArray),
                                          "adam.m": .init(shape: [n], values: adam.m), "adam.v": .init(shape: [n], values: adam.v),
                                          "adam.ema": .init(shape: [n], values: adam.ema),
                                          "teacher.mel_mean": .init(shape: [C], values: teacher.melMean),
                                          "teacher.mel_std": .init(shape: [C], values: teacher.melStd)],
                                metadata: teacher.metadata(step: step))
        state.metadata["kind"] = Self.stateKind
        state.metadata["adam_step"] = String(adam.step)
        state.metadata["rng"] = String(generator.state)
        state.metadata["skipped_steps"] = String(skippedSteps)
        state.metadata["consecutive_skipped"] = String(consecutiveSkipped)
        state.metadata["training_seconds"] = String(format: "%.3f", seconds)
        try state.write(to: run.trainState)
    }

    func restore() throws {
        let path = run.trainState
        let file = try SafeTensors.read(path)
        guard file.metadata["kind"] == Self.stateKind else { throw ParawaveError(path, "is not a teacher training state") }
        guard let json = file.metadata["config"], let saved = try? JSONDecoder().decode(TeacherConfig.self, from: Data(json.utf8)) else {
            throw ParawaveError(path, "has no readable teacher config")
        }
        if saved != teacher.config {
            throw ParawaveError(path, "was trained with a different teacher or audio configuration than the recipe's; "
                                + "resume with the run's own recipe.yaml (the default) or start a new run")
        }
        func meta(_ key: String) throws -> String {
            guard let v = file.metadata[key] else { throw ParawaveError(path, "is missing '\(key)'; the state is damaged") }
            return v
        }
        let n = teacher.store.count
        let values = try file.tensor("values", shape: [n], file: path)
        let m = try file.tensor("adam.m", shape: [n], file: path), v = try file.tensor("adam.v", shape: [n], file: path)
        let ema = try file.tensor("adam.ema", shape: [n], file: path)
        for array in [values, m, v, ema] where array.contains(where: { !$0.isFinite }) {
            throw ParawaveError(path, "holds non-finite values; the state is damaged")
        }
        guard let savedStep = Int(try meta("step")), let adamStep = Int(try meta("adam_step")), let rng = UInt64(try meta("rng")),
              let skipped = Int(try meta("skipped_steps")), let consecutive = Int(try meta("consecutive_skipped")) else {
            throw ParawaveError(path, "has unreadable step counters; the state is damaged")
        }
        teacher.store.setValues(values)
        let C = teacher.config.stack.conditionChannels
        teacher.melMean = try file.tensor("teacher.mel_mean", shape: [C], file: path)
        teacher.melStd = try file.tensor("teacher.mel_std", shape: [C], file: path)
        adam.restore(m: m, v: v, ema: ema, step: adamStep)
        step = savedStep
        generator = SeededGenerator(seed: rng)
        skippedSteps = skipped
        consecutiveSkipped = consecutive
        previousSeconds = Double(file.metadata["training_seconds"] ?? "0") ?? 0
    }

    // MARK: training

    /// Mean NLL (nats per sample) of the validation crops under the EMA weights.
    public func validate() -> Double? {
        guard !validationBatches.isEmpty else { return nil }
        let saved = teacher.store.valueArray
        teacher.store.setValues(adam.ema)
        defer { teacher.store.setValues(saved) }
        var sum = 0.0, count = 0
        for batch in validationBatches {
            teacher.forward(activations, audio: batch.audio, mel: batch.mel)
            let (nll, n) = teacher.loss(activations, audio: batch.audio, mask: batch.mask)
            sum += nll * Double(n)
            count += n
        }
        return count > 0 ? sum / Double(count) : nil
    }

    /// Trains up to `recipe.train.steps`, or until `shouldStop` says so (then checkpoints).
    public func train(shouldStop: () -> Bool = { StopSignal.requested }) throws -> Outcome {
        let train = recipe.train
        let total = train.steps
        let schedule = train.learningRateSchedule
        let start = Date()
        let startStep = step
        let samplesPerStep = train.batchSize * sampler.frames * recipe.audio.hopLength
        let progress = showProgress ? ProgressReporter("train-teacher", total: max(total - startStep, 0), unit: "steps") : nil
        var lastLoss = Double.nan, lastValidation: Double?
        var windowLoss = 0.0, windowSteps = 0
        var interrupted = false
        func seconds() -> Double { previousSeconds + Date().timeIntervalSince(start) }
        if step == 0, let v = validate() {
            lastValidation = v
            try run.appendMetrics([("step", .int(0)), ("validation_nll", .double(v)), ("validation_bits", .double(v / M_LN2))])
        }
        while step < total {
            if shouldStop() { interrupted = true; break }
            let batch = sampler.next(batch: train.batchSize, generator: &generator)
            teacher.store.zeroGradients()
            teacher.forward(activations, audio: batch.audio, mel: batch.mel)
            let (nll, count) = teacher.loss(activations, audio: batch.audio, mask: batch.mask)
            teacher.backward(activations, audio: batch.audio, mask: batch.mask, count: count)
            beforeUpdate?(step + 1, teacher.store)
            step += 1
            let rate = schedule.rate(base: train.learningRate, step: step)
            var fields: [(String, MetricValue)] = []
            if nll.isFinite && teacher.store.gradientsAreFinite {
                let norm = adam.update(teacher.store, learningRate: rate)
                consecutiveSkipped = 0
                lastLoss = nll
                windowLoss += nll
                windowSteps += 1
                if step % train.logEvery == 0 || step == total {
                    let elapsed = Date().timeIntervalSince(start)
                    fields = [("loss", .double(windowLoss / Double(windowSteps))), ("bits", .double(windowLoss / Double(windowSteps) / M_LN2)),
                              ("learning_rate", .double(rate)), ("grad_norm", .double(norm)),
                              ("samples_per_second", .double(Double((step - startStep) * samplesPerStep) / max(elapsed, 1e-9))),
                              ("seconds", .double(seconds()))]
                    windowLoss = 0
                    windowSteps = 0
                }
            } else {
                skippedSteps += 1
                consecutiveSkipped += 1
                let what = nll.isFinite ? "gradient" : "loss"
                log("step \(step): non-finite \(what); the step is skipped (\(consecutiveSkipped) in a row, \(skippedSteps) in all)")
                try run.appendMetrics([("step", .int(step)), ("skipped", .bool(true)), ("reason", .string("non-finite \(what)"))])
                if consecutiveSkipped >= train.maxSkippedSteps {
                    progress?.finish()
                    throw ParawaveError(run.path, "training stopped at step \(step): \(consecutiveSkipped) steps in a row had a non-finite "
                                        + "loss or gradient. The last checkpoint is intact; lower train.learning_rate or "
                                        + "train.clip_norm and continue with --resume")
                }
            }
            if step % train.validateEvery == 0 || step == total, let v = validate() {
                lastValidation = v
                fields += [("validation_nll", .double(v)), ("validation_bits", .double(v / M_LN2))]
            }
            if !fields.isEmpty { try run.appendMetrics([("step", .int(step))] + fields) }
            if consecutiveSkipped == 0 && (step % train.checkpointEvery == 0 || step == total) { try checkpoint(seconds: seconds()) }
            let elapsed = max(Date().timeIntervalSince(start), 1e-9)
            var detail = String(format: "loss %.3f nats (%.3f bits)", lastLoss, lastLoss / M_LN2)
            if let v = lastValidation { detail += String(format: ", validation %.3f bits", v / M_LN2) }
            detail += String(format: ", %.0f samples/s", Double((step - startStep) * samplesPerStep) / elapsed)
            progress?.advance(detail: detail)
        }
        if interrupted {
            if consecutiveSkipped == 0 { try checkpoint(seconds: seconds()) }
            progress?.finish()
            log("stopped at step \(step); checkpoint written to \(run.path). Continue with --resume.")
        } else {
            progress?.finish()
        }
        return Outcome(step: step, trainLoss: lastLoss, validationLoss: lastValidation, skippedSteps: skippedSteps,
                       interrupted: interrupted, seconds: seconds())
    }
}
