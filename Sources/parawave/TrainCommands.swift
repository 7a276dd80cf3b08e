import ArgumentParser
import Foundation
import ParawaveCore
import ParawaveEngine
import ParawaveTraining

/// `--steps`, `--seed` and `--threads`, shared by the training commands.
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

    @Option(name: .long, help: ArgumentHelp("Prepared data directory (from `parawave prepare`).", valueName: "DATA"))
    var data: String

    @Option(name: .customLong("run"), help: ArgumentHelp("Run directory to create or resume.", valueName: "RUN"))
    var runPath: String

    @Flag(name: .long, help: "Continue the run in RUN from its last checkpoint.")
    var resume = false

    func run() throws {
        let runDirectory = RunDirectory(runPath)
        var sets = recipeOptions.overrides
        if let steps = overrides.steps { sets.append("train.steps=\(steps)") }
        if let seed = overrides.seed { sets.append("train.seed=\(seed)") }
        let recipe: Recipe
        if let path = recipeOptions.recipe {
            recipe = try Recipe.load(path, overrides: sets)
        } else if resume && FileManager.default.fileExists(atPath: runDirectory.recipe) {
            recipe = try Recipe.load(runDirectory.recipe, overrides: sets)
        } else {
            throw ValidationError("--recipe is required (with --resume it defaults to RUN/recipe.yaml)")
        }
        // Before loading the corpus: a wrong start fails at once, in one line.
        try runDirectory.checkStart(resume: resume)
        let corpus = try TrainingData(data, audio: recipe.audio.mel)
        let trainer = try TeacherTrainer(recipe: recipe, data: corpus, run: runDirectory, resume: resume)
        let t = recipe.teacherConfig
        print("teacher: \(t.stack.layers) layers, R \(t.stack.residualChannels), G \(t.stack.gatedChannels), S \(t.stack.skipChannels), "
              + "M \(t.mixtures), \(trainer.teacher.store.count) parameters, receptive field \(t.stack.receptiveField) samples")
        print("data: \(corpus.train.count) training and \(corpus.validation.count) validation utterances; "
              + (resume ? "resuming at step \(trainer.step)" : "starting") + " toward \(recipe.train.steps) steps")
        StopSignal.install()
        let outcome = try trainer.train()
        if outcome.trainLoss.isNaN {
            print("step \(outcome.step): the run is already at train.steps; nothing to train (extend it with --steps)")
        } else {
            var line = String(format: "step %d: training loss %.4f nats (%.4f bits) per sample", outcome.step, outcome.trainLoss,
                              outcome.trainLoss / M_LN2)
            if let v = outcome.validationLoss { line += String(format: ", validation %.4f nats (%.4f bits)", v, v / M_LN2) }
            if outcome.skippedSteps > 0 { line += ", \(outcome.skippedSteps) non-finite steps skipped" }
            print(line)
        }
        print("run: \(runPath) (model.safetensors, train-state.safetensors, recipe.yaml, metrics.jsonl); "
              + "training time \(ProgressReporter.clock(outcome.seconds))")
        if outcome.interrupted { throw ExitCode(130) }
    }
}
