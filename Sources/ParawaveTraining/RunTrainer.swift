import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels

/// The training loop shared by `train-teacher` and `distill`, in a run directory and
/// resumable bit-exactly.
///
/// Every step: a batch of random frame-aligned crops, the subclass's forward and backward
/// (`trainingStep`), a guard against non-finite values (the step is skipped, counted and
/// logged; too many in a row stop the run with the last checkpoint intact), Adam with
/// clipping, the schedule and the EMA. Validation (EMA weights) at `validate_every`,
/// checkpoints at `checkpoint_every`, at the end and when a stop is requested (Ctrl-C).
/// Subclasses supply the model's step, validation, checkpoint and saved state.
///
/// Under MPI (`communicator` of several ranks) the loop is synchronous data parallelism: every
/// rank draws the same global batch (so what a step sees depends only on the seed, the step
/// and `batch_size`) and works on its own rows of it (`part`), the gradients are summed in
/// rank order, and every rank applies the same Adam step. Decisions to stop (Ctrl-C, the time
/// budget) are taken together; rank 0 alone writes files and shows progress.
public class RunTrainer {
    public let recipe: Recipe
    public let run: RunDirectory
    /// The optimisation and bookkeeping keys of the run (`train:` or `distill:`).
    public let settings: TrainSection
    public let store: ParameterStore
    public let adam: Adam
    /// The precision of the training step's products (the section's `precision`, resolved).
    public let precision: MatrixPrecision
    /// The ranks of a data-parallel run (`Communicator.single` for one process).
    public let communicator: Communicator
    /// The rows of the global batch each rank works on: batch_size / ranks.
    public var localBatch: Int { settings.batchSize / communicator.size }
    let sampler: CropSampler
    let validationBatches: [CropBatch]
    let label: String, stateKind: String
    public internal(set) var generator: SeededGenerator
    public private(set) var step = 0
    public private(set) var skippedSteps = 0
    public private(set) var consecutiveSkipped = 0
    /// Held while this trainer exists.
    var lock: FolderLock?
    /// Training time of earlier sessions of this run, seconds.
    var previousSeconds = 0.0
    /// CPU time of earlier sessions of this run, seconds.
    var previousCPUSeconds = 0.0
    /// Called after the backward pass and before the update (tests inject faults here).
    public var beforeUpdate: ((Int, ParameterStore) -> Void)?
    /// The clock that times the run (its training seconds, samples/s and `max_minutes`).
    public var now: () -> Date = { Date() }
    /// The process's CPU time in seconds (`max_cpu_minutes` counts it).
    public var cpuClock: () -> Double = { ProcessClock.cpuSeconds() }
    /// Where progress and notices go.
    public var log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    public var showProgress = true

    public struct Outcome: Sendable {
        public var step: Int
        /// The main training loss of the last step (NaN when no step ran).
        public var trainLoss: Double
        /// The main validation value at the end, if validated.
        public var validationLoss: Double?
        public var skippedSteps: Int
        public var interrupted: Bool
        /// Stopped before `steps` because `max_minutes` of training time (or
        /// `max_cpu_minutes` of CPU time) were spent.
        public var budgetReached: Bool
        public var seconds: Double
        public var cpuSeconds: Double
    }

    /// `model` must hold freshly initialised weights (a new run); with `resume` they are
    /// replaced by the run's saved state.
    /// With a `source`, every crop comes with its source (`CropBatch.source`).
    /// `groups` are the optimizer's parameter groups (default: one, clipped at `clip_norm`).
    /// With a `lead`, every crop has `lead` more frames than `crop` gives, history only where
    /// the crop starts inside its utterance (`CropSampler.lead`).
    init(recipe: Recipe, settings: TrainSection, data: TrainingData, run: RunDirectory, resume: Bool, store: ParameterStore,
         groups: [ParameterGroup]? = nil, label: String, stateKind: String, source: SineSource? = nil, lead: Int = 0,
         communicator: Communicator = .single) throws {
        let ranks = communicator.size
        guard settings.batchSize % ranks == 0 else {
            throw ParawaveError(run.path, "\(Self.section(label)).batch_size (\(settings.batchSize)) does not divide evenly over \(ranks) ranks; "
                                + "the global batch is split across them: use a batch_size that is a multiple of \(ranks), or another rank count")
        }
        self.communicator = communicator
        self.recipe = recipe
        self.run = run
        self.settings = settings
        self.store = store
        self.label = label
        self.stateKind = stateKind
        precision = try settings.precision.resolved(key: Self.section(label) + ".precision")
        let hop = recipe.audio.hopLength, logFloor = recipe.audio.mel.logFloor, rate = recipe.audio.sampleRate
        let frames = recipe.audio.mel.frames(forCrop: settings.crop) + lead
        if source != nil { try data.requireF0(for: label == "distill" ? "student" : label == "train-waveglow" ? "WaveGlow" : "teacher") }
        sampler = CropSampler(data.train, frames: frames, hop: hop, logFloor: logFloor, source: source, sampleRate: rate, lead: lead)
        let validation = Array(data.validation.prefix(settings.validationUtterances))
        validationBatches = validation.isEmpty ? [] :
            CropSampler(validation, frames: frames, hop: hop, logFloor: logFloor, source: source, sampleRate: rate, lead: lead)
                .fixedBatches(batch: settings.batchSize)
        adam = Adam(store: store, clipNorm: settings.clipNorm, emaDecay: Float(settings.emaDecay), groups: groups)
        generator = SeededGenerator(seed: UInt64(settings.seed) &* 0x9E37_79B9 &+ 0x5EED)
        if !communicator.isRoot {
            // Rank 0 checks, locks and writes the run; the others only read its state.
            log = { _ in }
            showProgress = false
            return
        }
        try run.checkStart(resume: resume)
        // One writer per run: a second training command on this run refuses here.
        let existed = FileManager.default.fileExists(atPath: run.path)
        do {
            lock = try FolderLock(folder: run.path, what: "--run")
        } catch {
            if !existed { try? FileManager.default.removeItem(atPath: run.path) }
            throw error
        }
    }

    /// The recipe section of a run's settings, from the trainer's label.
    static func section(_ label: String) -> String {
        switch label {
        case "distill": "distill"
        case "train-waveglow": "waveglow"
        default: "train"
        }
    }

    /// After the subclass is set up: restores the saved state, or creates the run.
    func start(resume: Bool) throws {
        if resume {
            try restore()
            if communicator.isRoot { try run.truncateMetrics(after: step) }
        } else if !communicator.isRoot {
            return
        } else {
            try run.create()
            try? FileManager.default.removeItem(atPath: run.metrics)
        }
        // The run's recipe records the precision the steps use (auto resolved).
        var recorded = recipe
        let choice = PrecisionChoice(rawValue: precision.rawValue) ?? .single
        switch Self.section(label) {
        case "distill": recorded.distill.run.precision = choice
        case "waveglow": recorded.waveglow.run.precision = choice
        default: recorded.train.precision = choice
        }
        if communicator.isRoot { try AtomicFile.write(Data(try recorded.yaml().utf8), to: run.recipe) }
    }

    /// Appends a line to the run's metrics (rank 0 alone writes them).
    func record(_ fields: [(String, MetricValue)]) throws {
        if communicator.isRoot { try run.appendMetrics(fields) }
    }

    /// This rank's rows of a global batch, and the shard that sums over the ranks' rows.
    func part(_ batch: CropBatch) -> (CropBatch, BatchShard) {
        let ranks = communicator.size
        guard ranks > 1 else { return (batch, .whole(batch.batch)) }
        let local = batch.batch / ranks, offset = communicator.rank * local
        let communicator = self.communicator
        return (batch.rows(offset..<(offset + local)), BatchShard(offset: offset, count: local, total: batch.batch, sum: { communicator.sum($0, what: "loss sums") }))
    }

    /// The layout of a data-parallel run, for rank 0 to print: ranks, hosts, threads and rows.
    public func layout() -> String? {
        let pids = communicator.gather(Int64(getpid()), what: "start-up"), threads = communicator.gather(Int64(Parallel.threads), what: "start-up")
        let hosts = communicator.gather(text: communicator.hostName)
        guard communicator.size > 1 else { return nil }
        let ranks = (0..<communicator.size).map { "rank \($0): \(hosts[$0]) pid \(pids[$0]), \(threads[$0]) thread\(threads[$0] == 1 ? "" : "s")" }
        return "data parallel over \(communicator.size) ranks, \(localBatch) of the \(settings.batchSize) rows of each batch per rank; "
            + ranks.joined(separator: "; ")
    }

    // MARK: what subclasses provide

    /// Forward and backward on one batch; parameter gradients are added into `store` (zeroed
    /// before). Returns the loss (the first value, which the guard checks) and other values
    /// to average into the metrics, all per sample.
    /// Under data parallelism `batch` is the global batch, of which each rank works on its
    /// rows (`part`); the values returned are the global batch's, the same on every rank.
    func trainingStep(_ batch: CropBatch) -> [(String, Double)] { fatalError("subclass") }

    /// Validation values over `validationBatches` with the weights in the store (the EMA
    /// weights when called by the loop); the first is the main one. Under data parallelism each
    /// rank works on its rows of every batch (`part`), and the values are the same on every rank.
    func validationValues(_ batches: [CropBatch]) -> [(String, Double)] { fatalError("subclass") }

    /// The model file for `values` (the EMA weights).
    func modelCheckpoint(values: [Float]) -> SafeTensors { fatalError("subclass") }

    /// Tensors besides the optimiser's kept in the training state, and the state's metadata.
    func stateTensors() -> [String: SafeTensors.Tensor] { [:] }
    func stateMetadata() -> [String: String] { [:] }

    /// Checks a saved state belongs to this model and restores the subclass's part of it.
    func restoreModelState(from file: SafeTensors, path: String) throws {}

    /// A saved state's model config, which must equal `expected` (the recipe's).
    func checkSavedConfig<C: Decodable & Equatable>(_ expected: C, what: String, in file: SafeTensors, path: String) throws {
        guard let json = file.metadata["config"], let saved = try? JSONDecoder().decode(C.self, from: Data(json.utf8)) else {
            throw ParawaveError(path, "has no readable \(what) config")
        }
        if saved != expected {
            throw ParawaveError(path, "was trained with a different \(what), audio or speaker configuration than the recipe and data give; "
                                + "resume with the run's own recipe.yaml (the default) or start a new run")
        }
    }

    /// The rows of a batch's speakers in a model's table `table` (nil for a model without
    /// speakers); rows without a speaker (padding, masked out) take row 0.
    static func speakerRows(_ batch: CropBatch, table: [String]) -> [Int]? {
        guard !table.isEmpty else { return nil }
        let rows = Dictionary(uniqueKeysWithValues: table.enumerated().map { ($1, $0) })
        return batch.speakers.map { name in name.flatMap { rows[$0] } ?? 0 }
    }

    /// Every utterance of a speaker-conditioned model's data must name a speaker it knows.
    static func checkSpeakers(_ data: TrainingData, known: [String], model: String) throws {
        let place = data.directory?.path ?? "the data"
        let known = Set(known)
        for u in data.train + data.validation {
            guard let speaker = u.speaker else {
                throw ParawaveError(place, "utterance \(u.id) names no speaker, but the \(model) is speaker-conditioned")
            }
            if !known.contains(speaker) {
                throw ParawaveError(place, "utterance \(u.id) is by speaker '\(speaker)', whom the \(model) does not know")
            }
        }
    }

    /// The mel normalisation kept in the state as `PREFIX.mel_mean` / `PREFIX.mel_std`.
    static func normalisationTensors(prefix: String, mean: [Float], std: [Float]) -> [String: SafeTensors.Tensor] {
        [prefix + ".mel_mean": .init(shape: [mean.count], values: mean), prefix + ".mel_std": .init(shape: [std.count], values: std)]
    }

    static func normalisation(prefix: String, bands: Int, in file: SafeTensors, path: String) throws -> ([Float], [Float]) {
        (try file.tensor(prefix + ".mel_mean", shape: [bands], file: path), try file.tensor(prefix + ".mel_std", shape: [bands], file: path))
    }

    /// The progress line's description of the last step's values.
    func describe(_ values: [(String, Double)], validation: [(String, Double)]?) -> String { "" }

    // MARK: checkpoints

    /// Writes `model.safetensors` (EMA weights) and `train-state.safetensors`, each atomically;
    /// the state goes last, so a kill between the two resumes from the older state.
    public func checkpoint(seconds: Double, cpuSeconds: Double? = nil) throws {
        guard communicator.isRoot else { return }
        try modelCheckpoint(values: adam.ema).write(to: run.model)
        let n = store.count
        var tensors = stateTensors()
        tensors["values"] = .init(shape: [n], values: store.valueArray)
        tensors["adam.m"] = .init(shape: [n], values: adam.m)
        tensors["adam.v"] = .init(shape: [n], values: adam.v)
        tensors["adam.ema"] = .init(shape: [n], values: adam.ema)
        var state = SafeTensors(tensors: tensors, metadata: stateMetadata())
        state.metadata["kind"] = stateKind
        state.metadata["step"] = String(step)
        state.metadata["adam_step"] = String(adam.step)
        state.metadata["rng"] = String(generator.state)
        state.metadata["skipped_steps"] = String(skippedSteps)
        state.metadata["consecutive_skipped"] = String(consecutiveSkipped)
        state.metadata["training_seconds"] = String(format: "%.3f", seconds)
        state.metadata["training_cpu_seconds"] = String(format: "%.3f", cpuSeconds ?? previousCPUSeconds)
        try state.write(to: run.trainState)
    }

    func restore() throws {
        let path = run.trainState
        let file = try SafeTensors.read(path)
        guard file.metadata["kind"] == stateKind else {
            throw ParawaveError(path, "is not a \(label) training state (kind '\(file.metadata["kind"] ?? "none")')")
        }
        try restoreModelState(from: file, path: path)
        func meta(_ key: String) throws -> String {
            guard let v = file.metadata[key] else { throw ParawaveError(path, "is missing '\(key)'; the state is damaged") }
            return v
        }
        let n = store.count
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
        store.setValues(values)
        adam.restore(m: m, v: v, ema: ema, step: adamStep)
        step = savedStep
        generator = SeededGenerator(seed: rng)
        skippedSteps = skipped
        consecutiveSkipped = consecutive
        previousSeconds = Double(file.metadata["training_seconds"] ?? "0") ?? 0
        previousCPUSeconds = Double(file.metadata["training_cpu_seconds"] ?? "0") ?? 0
    }

    // MARK: training

    /// Validation values under the EMA weights (nil without validation utterances).
    public func validate() -> [(String, Double)]? {
        guard !validationBatches.isEmpty else { return nil }
        let saved = store.valueArray
        store.setValues(adam.ema)
        defer { store.setValues(saved) }
        return validationValues(validationBatches)
    }

    /// Trains up to `settings.steps`, or until `shouldStop` says so (then checkpoints).
    public func train(shouldStop: () -> Bool = { StopSignal.requested }) throws -> Outcome {
        let total = settings.steps
        let schedule = settings.learningRateSchedule
        let start = now(), startCPU = cpuClock()
        let startStep = step
        let samplesPerStep = settings.batchSize * sampler.frames * recipe.audio.hopLength
        let progress = showProgress ? ProgressReporter(label, total: max(total - startStep, 0), unit: "steps") : nil
        var last: [(String, Double)] = [], lastValidation: [(String, Double)]?
        var window: [(String, Double)] = [], windowSteps = 0
        var interrupted = false, budgetReached = false
        // The run's clocks, agreed by every rank at the same points of the loop: rank 0's
        // training time and the CPU time of all ranks together (what the budgets count).
        var clocks = (seconds: previousSeconds, cpu: previousCPUSeconds)
        /// Updates `clocks`; true when any rank asks to stop.
        @discardableResult
        func agree(stopping: Bool = false) -> Bool {
            let wall = previousSeconds + now().timeIntervalSince(start), cpu = cpuClock() - startCPU
            guard communicator.size > 1 else {
                clocks = (wall, previousCPUSeconds + cpu)
                return stopping
            }
            let v = communicator.sum([communicator.isRoot ? wall : 0, cpu, stopping ? 1 : 0], what: "step's bookkeeping")
            clocks = (v[0], previousCPUSeconds + v[1])
            return v[2] > 0
        }
        func seconds() -> Double { clocks.seconds }
        func cpuSeconds() -> Double { clocks.cpu }
        // The budgets (train.max_minutes, train.max_cpu_minutes) count the run's time over resumes.
        func budgetLeft() -> Double? {
            var left: Double?
            if settings.maxMinutes > 0 { left = settings.maxMinutes * 60 - seconds() }
            if settings.maxCPUMinutes > 0 { left = min(left ?? .infinity, settings.maxCPUMinutes * 60 - cpuSeconds()) }
            return left
        }
        func budgetSpent() -> Bool { (budgetLeft() ?? 1) <= 0 }
        func save() throws { try checkpoint(seconds: seconds(), cpuSeconds: cpuSeconds()) }
        func validationFields(_ values: [(String, Double)]) -> [(String, MetricValue)] { values.map { ("validation_" + $0.0, .double($0.1)) } }
        if step < total {
            let asked = settings.precision == .auto ? " (auto: \(precision == .bfloat16 ? "this CPU has bfloat16 arithmetic" : "this CPU has no bfloat16 arithmetic"))" : ""
            log("\(label): matrix products in \(precision == .bfloat16 ? "bfloat16 (float32 accumulation)" : "float32")\(asked)")
        }
        if step == 0, let v = validate() {
            lastValidation = v
            try record([("step", .int(0))] + validationFields(v))
        }
        while step < total {
            if agree(stopping: shouldStop()) { interrupted = true; break }
            if budgetSpent() { budgetReached = true; break }
            let batch = sampler.next(batch: settings.batchSize, generator: &generator)
            store.zeroGradients()
            let values = BLAS.withPrecision(precision) { trainingStep(batch) }
            communicator.sum(UnsafeMutableBufferPointer(start: store.gradients, count: store.count))
            beforeUpdate?(step + 1, store)
            step += 1
            agree()
            let rate = schedule.rate(base: settings.learningRate, step: step)
            var fields: [(String, MetricValue)] = []
            let loss = values.first?.1 ?? .nan
            if loss.isFinite && store.gradientsAreFinite {
                let norm = adam.update(store, learningRate: rate)
                consecutiveSkipped = 0
                last = values
                window = window.isEmpty ? values : zip(window, values).map { ($0.0, $0.1 + $1.1) }
                windowSteps += 1
                if step % settings.logEvery == 0 || step == total {
                    let elapsed = now().timeIntervalSince(start)
                    fields = window.map { ($0.0, .double($0.1 / Double(windowSteps))) }
                    fields += [("learning_rate", .double(rate)), ("grad_norm", .double(norm)),
                               ("samples_per_second", .double(Double((step - startStep) * samplesPerStep) / max(elapsed, 1e-9))),
                               ("seconds", .double(seconds())), ("cpu_seconds", .double(cpuSeconds()))]
                    window = []
                    windowSteps = 0
                }
            } else {
                skippedSteps += 1
                consecutiveSkipped += 1
                let what = loss.isFinite ? "gradient" : "loss"
                log("step \(step): non-finite \(what); the step is skipped (\(consecutiveSkipped) in a row, \(skippedSteps) in all)")
                try record([("step", .int(step)), ("skipped", .bool(true)), ("reason", .string("non-finite \(what)"))])
                if consecutiveSkipped >= settings.maxSkippedSteps {
                    progress?.finish()
                    throw ParawaveError(run.path, "training stopped at step \(step): \(consecutiveSkipped) steps in a row had a non-finite "
                                        + "loss or gradient. The last checkpoint is intact; lower the learning rate or clip_norm "
                                        + "and continue with --resume")
                }
            }
            let outOfTime = budgetSpent()
            let finalStep = step == total || outOfTime
            if step % settings.validateEvery == 0 || finalStep, let v = validate() {
                lastValidation = v
                fields += validationFields(v)
            }
            if !fields.isEmpty { try record([("step", .int(step))] + fields) }
            if consecutiveSkipped == 0 && (step % settings.checkpointEvery == 0 || finalStep) { try save() }
            let elapsed = max(now().timeIntervalSince(start), 1e-9)
            let budget = budgetLeft().map { ", " + ProgressReporter.clock(max(0, $0)) + " of the time budget left" } ?? ""
            progress?.advance(detail: describe(last, validation: lastValidation)
                              + String(format: ", %.0f samples/s", Double((step - startStep) * samplesPerStep) / elapsed) + budget)
            if outOfTime && step < total {
                budgetReached = true
                break
            }
        }
        agree()
        if !interrupted && consecutiveSkipped == 0 && !FileManager.default.fileExists(atPath: run.trainState) {
            // A new run that took no step (steps 0, or a budget spent at once) still leaves
            // its model: the initial weights.
            try save()
        }
        if interrupted {
            if consecutiveSkipped == 0 { try save() }
            progress?.finish()
            log("stopped at step \(step); checkpoint written to \(run.path). Continue with --resume.")
        } else {
            progress?.finish()
            if budgetReached {
                let spent = [settings.maxMinutes > 0 && seconds() >= settings.maxMinutes * 60 ? "\(settings.maxMinutes) minutes" : nil,
                             settings.maxCPUMinutes > 0 && cpuSeconds() >= settings.maxCPUMinutes * 60
                                ? "\(settings.maxCPUMinutes) CPU-minutes" : nil].compactMap { $0 }.joined(separator: " and ")
                log("stopped at step \(step): the time budget of \(spent) is spent; checkpoint written to \(run.path)")
            }
        }
        return Outcome(step: step, trainLoss: last.first?.1 ?? .nan, validationLoss: lastValidation?.first?.1, skippedSteps: skippedSteps,
                       interrupted: interrupted, budgetReached: budgetReached, seconds: seconds(), cpuSeconds: cpuSeconds())
    }
}
