import ArgumentParser
import Foundation
import ParawaveCore
import ParawaveEngine
import ParawaveModels
import ParawaveTraining

/// `--data`, `--run` and `--resume`, shared by the training commands.
struct RunOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Prepared data directory (from `parawave prepare`).", valueName: "DATA"))
    var data: String

    @Option(name: .customLong("run"), help: ArgumentHelp("Run directory to create or resume.", valueName: "RUN"))
    var runPath: String

    @Flag(name: .long, help: "Continue the run in RUN from its last checkpoint.")
    var resume = false

    /// The run's lock, taken before anything is loaded when the run's folder exists, so a
    /// second command on a run in training refuses at once (the trainer takes it otherwise).
    /// Under MPI rank 0 alone holds it.
    func lockExistingRun() throws -> FolderLock? {
        guard Communicator.world.isRoot else { return nil }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: runPath, isDirectory: &isFolder), isFolder.boolValue else { return nil }
        return try FolderLock(folder: runPath, what: "--run")
    }

    /// The data directory, loaded for `recipe` (rank 0 alone shows the progress).
    func trainingData(_ recipe: Recipe) throws -> TrainingData {
        try TrainingData(data, audio: recipe.audio.mel, progress: Communicator.world.isRoot)
    }

    /// What a run that took no step says.
    static func nothingTrained(_ outcome: RunTrainer.Outcome, section: String) -> String {
        outcome.budgetReached
            ? "step \(outcome.step): the run's time budget is spent; nothing to train (raise \(section).max_minutes or \(section).max_cpu_minutes)"
            : "step \(outcome.step): the run is already at \(section).steps; nothing to train (extend it with --steps)"
    }
}

/// `--steps` and `--seed`, shared by the training commands.
struct TrainingOverrides: ParsableArguments {
    @Option(name: .long, help: "Train to this many steps in all (overrides the recipe).")
    var steps: Int?

    @Option(name: .long, help: "Random seed for initialisation and data order (overrides train.seed).")
    var seed: Int?
}

struct TrainTeacherCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-teacher",
        abstract: "Train a WaveNet teacher by maximum likelihood on a prepared data directory.",
        discussion: """
            Writes RUN/model.safetensors (EMA weights, what `render` uses), \
            RUN/train-state.safetensors (everything --resume needs), RUN/recipe.yaml (the \
            resolved recipe) and RUN/metrics.jsonl. Checkpoints are written atomically every \
            train.checkpoint_every steps, at the end, and on Ctrl-C. A run resumed with \
            --resume ends bit-identical to one that was never interrupted. With --resume the \
            run's own recipe.yaml is used unless --recipe is given; --steps extends a run.
            """)

    @OptionGroup var recipeOptions: RecipeOptions
    @OptionGroup var overrides: TrainingOverrides
    @OptionGroup var runOptions: RunOptions

    func run() throws {
        let runDirectory = RunDirectory(runOptions.runPath)
        let lock = try runOptions.lockExistingRun()
        defer { withExtendedLifetime(lock) {} }
        let recipe = try overrides.recipe(recipeOptions, section: "train", run: runDirectory, resume: runOptions.resume)
        for warning in recipe.warnings where warning.hasPrefix("train.") { print("warning: " + warning) }
        let corpus = try runOptions.trainingData(recipe)
        let trainer = try TeacherTrainer(recipe: recipe, data: corpus, run: runDirectory, resume: runOptions.resume, communicator: .world)
        if let layout = trainer.layout() { print(layout) }
        let t = trainer.teacher.config
        print("teacher: \(t.stack.layers) layers, R \(t.stack.residualChannels), G \(t.stack.gateOutChannels), S \(t.stack.skipChannels), "
              + (t.output == .gaussian ? "a Gaussian output, " : "M \(t.mixtures), ") + "\(trainer.teacher.store.count) parameters, receptive field \(t.stack.receptiveField) samples"
              + Self.speakerNote(t.speakers, channels: t.stack.speakerChannels, dataSpeakers: corpus.speakers.count)
              + (t.pitch.map { "; a pitch predictor of \($0.layers) layers x \($0.channels) channels beside it" } ?? ""))
        print("data: \(corpus.train.count) training and \(corpus.validation.count) validation utterances; "
              + (runOptions.resume ? "resuming at step \(trainer.step)" : "starting") + " toward \(recipe.train.steps) steps")
        StopSignal.install()
        let outcome = try trainer.train()
        if outcome.trainLoss.isNaN {
            print(RunOptions.nothingTrained(outcome, section: "train"))
        } else {
            var line = String(format: "step %d: training loss %.4f nats (%.4f bits) per sample", outcome.step, outcome.trainLoss,
                              outcome.trainLoss / M_LN2)
            if let v = outcome.validationLoss { line += String(format: ", validation %.4f nats (%.4f bits)", v, v / M_LN2) }
            if outcome.skippedSteps > 0 { line += ", \(outcome.skippedSteps) non-finite steps skipped" }
            print(line)
        }
        print("run: \(runOptions.runPath) (model.safetensors, train-state.safetensors, recipe.yaml, metrics.jsonl); "
              + "training time \(ProgressReporter.clock(outcome.seconds))")
        if outcome.interrupted { throw ExitCode(130) }
    }
}

struct TrainWaveGlowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-waveglow",
        abstract: "Train a WaveGlow flow by maximum likelihood on a prepared data directory.",
        discussion: """
            The recipe's waveglow: section sets the model (n_flows, n_group, n_early_every, \
            n_early_size, layers, residual_channels, kernel_size, sigma) and its run (every \
            key of train:). The run directory, checkpoints, --resume and Ctrl-C work as for \
            train-teacher. The loss is NVIDIA's per sample (sum z^2 / 2 sigma^2 - sum log s - \
            sum log|det W|); validation reports the negative log-likelihood with the \
            Gaussian's constant, in nats and bits per sample.
            """)

    @OptionGroup var recipeOptions: RecipeOptions
    @OptionGroup var overrides: TrainingOverrides
    @OptionGroup var runOptions: RunOptions

    func run() throws {
        let runDirectory = RunDirectory(runOptions.runPath)
        let lock = try runOptions.lockExistingRun()
        defer { withExtendedLifetime(lock) {} }
        let recipe = try overrides.recipe(recipeOptions, section: "waveglow", run: runDirectory, resume: runOptions.resume)
        let corpus = try runOptions.trainingData(recipe)
        let trainer = try WaveGlowTrainer(recipe: recipe, data: corpus, run: runDirectory, resume: runOptions.resume, communicator: .world)
        if let layout = trainer.layout() { print(layout) }
        let c = trainer.model.config
        print("waveglow: \(c.flows) flows over groups of \(c.group), \(c.earlySize) channels out every \(c.earlyEvery); coupling networks of "
              + "\(c.layers) layers x \(c.residualChannels) channels; \(trainer.model.store.count) parameters, "
              + String(format: "%.2f M multiply-adds per sample", Double(c.multiplyAddsPerSample()) / 1e6)
              + (c.source.map { "; a sine source of \($0.harmonics) harmonics" } ?? "")
              + TrainTeacherCommand.speakerNote(c.speakers, channels: c.speakerChannels, dataSpeakers: corpus.speakers.count))
        print("data: \(corpus.train.count) training and \(corpus.validation.count) validation utterances; "
              + (runOptions.resume ? "resuming at step \(trainer.step)" : "starting") + " toward \(recipe.waveglow.run.steps) steps")
        StopSignal.install()
        let outcome = try trainer.train()
        if outcome.trainLoss.isNaN {
            print(RunOptions.nothingTrained(outcome, section: "waveglow"))
        } else {
            var line = String(format: "step %d: training loss %.4f nats per sample", outcome.step, outcome.trainLoss)
            if let v = outcome.validationLoss { line += String(format: ", validation NLL %.4f nats (%.4f bits)", v, v / M_LN2) }
            if outcome.skippedSteps > 0 { line += ", \(outcome.skippedSteps) non-finite steps skipped" }
            print(line)
        }
        print("run: \(runOptions.runPath) (model.safetensors, train-state.safetensors, recipe.yaml, metrics.jsonl); "
              + "training time \(ProgressReporter.clock(outcome.seconds))")
        if outcome.interrupted { throw ExitCode(130) }
    }
}

extension TrainTeacherCommand {
    /// How the model uses the data's speakers, for the summary line.
    static func speakerNote(_ speakers: [String], channels: Int, dataSpeakers: Int) -> String {
        if !speakers.isEmpty { return "; conditioned on \(speakers.count) speakers (embedding \(channels))" }
        return dataSpeakers > 0 ? "; not speaker-conditioned (speaker_channels 0) though the data names \(dataSpeakers) speakers" : ""
    }
}

extension TrainingOverrides {
    /// The run's recipe (`RunRecipe`), with its warning shown on stderr.
    func recipe(_ options: RecipeOptions, section: String, run: RunDirectory, resume: Bool) throws -> Recipe {
        let resolved = try RunRecipe.resolve(recipe: options.recipe, overrides: options.overrides, steps: steps, seed: seed, section: section,
                                             run: run, resume: resume)
        if let warning = resolved.warning, Communicator.world.isRoot { FileHandle.standardError.write(Data((warning + "\n").utf8)) }
        // Every rank checks the run before rank 0 creates it.
        Communicator.world.barrier(what: "start-up")
        return resolved.recipe
    }
}

struct DistillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distill",
        abstract: "Distill an IAF student from a trained teacher (probability density distillation).",
        discussion: """
            The loss per sample is KL(student || teacher) = H(student, teacher) - H(student), \
            the cross-entropy estimated with distill.mc_samples draws per time step through \
            the frozen teacher, plus the spectral term of distill.spectral_loss against the \
            real audio (and the contrastive term when distill.contrastive_weight > 0). The run \
            directory, checkpoints, --resume, --steps, --seed and --set work as for \
            train-teacher (the keys are distill.*). --teacher takes the teacher's run \
            directory or checkpoint; the recipe's audio settings must be the teacher's.
            """)

    @OptionGroup var recipeOptions: RecipeOptions
    @OptionGroup var overrides: TrainingOverrides

    @OptionGroup var runOptions: RunOptions

    @Option(name: .long, help: ArgumentHelp("The teacher: its run directory or checkpoint.", valueName: "TEACHER_RUN"))
    var teacher: String

    func run() throws {
        let runDirectory = RunDirectory(runOptions.runPath)
        let lock = try runOptions.lockExistingRun()
        defer { withExtendedLifetime(lock) {} }
        let recipe = try overrides.recipe(recipeOptions, section: "distill", run: runDirectory, resume: runOptions.resume)
        for warning in recipe.warnings where warning.hasPrefix("distill.") { print("warning: " + warning) }
        guard case .teacher(let teacherModel) = try TrainedModel.load(teacher) else {
            throw ParawaveError(teacher, "is not a teacher; --teacher takes a train-teacher run directory or its model.safetensors")
        }
        try DistillTrainer.check(recipe, teacher: teacherModel, teacherName: teacher)
        let corpus = try runOptions.trainingData(recipe)
        let trainer = try DistillTrainer(recipe: recipe, data: corpus, teacher: teacherModel, teacherName: teacher, run: runDirectory,
                                         resume: runOptions.resume, communicator: .world)
        if let layout = trainer.layout() { print(layout) }
        let c = trainer.student.config, d = recipe.distill
        print("student: \(c.flows.count) flows of \(c.flows.map { String($0.layers) }.joined(separator: ", ")) layers, "
              + "R \(c.flows[0].residualChannels), G \(c.flows[0].gateOutChannels), \(trainer.student.store.count) parameters; "
              + "teacher \(teacher) (\(teacherModel.config.stack.layers) layers, \(teacherModel.config.output == .gaussian ? "Gaussian" : "M \(teacherModel.config.mixtures)"))"
              + (c.speakers.isEmpty ? "" : "; conditioned on the teacher's \(c.speakers.count) speakers (embedding \(c.flows[0].speakerChannels))"))
        print("distillation: " + (teacherModel.config.output == .gaussian ? "the closed-form Gaussian KL (log-scale penalty \(d.logScalePenalty))"
                                  : "\(d.mcSamples) samples per step of time") + ", spectral loss \(d.spectralLoss.kind.rawValue) "
              + "(weight \(d.spectralLoss.weight))" + (d.contrastiveWeight > 0 ? ", contrastive \(d.contrastiveWeight)" : "")
              + "; \(corpus.train.count) training utterances; " + (runOptions.resume ? "resuming at step \(trainer.step)" : "starting")
              + " toward \(d.steps) steps")
        StopSignal.install()
        let outcome = try trainer.train()
        if outcome.trainLoss.isNaN {
            print(RunOptions.nothingTrained(outcome, section: "distill"))
        } else {
            var line = String(format: "step %d: training loss %.4f", outcome.step, outcome.trainLoss)
            if let v = outcome.validationLoss { line += String(format: ", validation KL %.4f nats per sample", v) }
            if outcome.skippedSteps > 0 { line += ", \(outcome.skippedSteps) non-finite steps skipped" }
            print(line)
        }
        print("run: \(runOptions.runPath) (model.safetensors, train-state.safetensors, recipe.yaml, metrics.jsonl); "
              + "training time \(ProgressReporter.clock(outcome.seconds))")
        if outcome.interrupted { throw ExitCode(130) }
    }
}
