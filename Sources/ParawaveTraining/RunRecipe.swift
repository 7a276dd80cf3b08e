import Foundation
import ParawaveCore
import ParawaveEngine

/// The recipe a training command (`train-teacher`, `distill`) runs with: the given recipe
/// file, or when resuming without one the run's own `recipe.yaml`; `steps` and `seed` become
/// `section.steps` / `section.seed` overrides after the `--set` ones. The run directory is
/// checked before anything slow happens: resuming needs a run, starting needs none.
public struct RunRecipe: Sendable {
    public var recipe: Recipe
    /// Set when a run is resumed with a recipe whose `section` settings differ from the run's
    /// own (the learning-rate schedule follows `steps`), for the command to show.
    public var warning: String?

    /// `section` is "train", "distill" or "waveglow".
    public static func resolve(recipe path: String?, overrides: [String] = [], steps: Int? = nil, seed: Int? = nil, section: String,
                               run: RunDirectory, resume: Bool) throws -> RunRecipe {
        try run.checkStart(resume: resume)
        var sets = overrides
        if let steps { sets.append("\(section).steps=\(steps)") }
        if let seed { sets.append("\(section).seed=\(seed)") }
        let hasOwn = FileManager.default.fileExists(atPath: run.recipe)
        let recipe: Recipe
        if let path {
            recipe = try Recipe.load(path, overrides: sets)
        } else if resume && hasOwn {
            recipe = try Recipe.load(run.recipe, overrides: sets)
        } else if resume {
            throw ParawaveError(run.path, "has no recipe.yaml to resume with; give --recipe")
        } else {
            throw ParawaveError("--recipe", "is required to start a run (with --resume it defaults to RUN/recipe.yaml)")
        }
        var warning: String?
        if resume, path != nil, hasOwn, let saved = try? Recipe.load(run.recipe) {
            warning = changedSettings(recipe, saved: saved, section: section, run: run, steps: steps != nil, seed: seed != nil)
        }
        return RunRecipe(recipe: recipe, warning: warning)
    }

    /// The warning for resuming with `recipe` a run made with `saved`, nil when their `section`
    /// settings agree (steps and seed given on the command line aside).
    static func changedSettings(_ recipe: Recipe, saved: Recipe, section: String, run: RunDirectory, steps: Bool, seed: Bool) -> String? {
        func settings(_ r: Recipe) -> TrainSection {
            switch section {
            case "train": r.train
            case "waveglow": r.waveglow.run
            default: r.distill.run
            }
        }
        let given = settings(recipe)
        var before = settings(saved)
        if steps { before.steps = given.steps }
        if seed { before.seed = given.seed }
        // The run's recipe records what `auto` chose; the same choice here is no change.
        if given.precision == .auto, let chosen = try? given.precision.resolved(key: section + ".precision"),
           before.precision.rawValue == chosen.rawValue {
            before.precision = .auto
        }
        guard given != before else { return nil }
        let detail = given.steps != before.steps
            ? " (\(section).steps \(given.steps), the run's \(before.steps); the learning-rate schedule follows it)" : ""
        return "warning: --recipe's \(section) settings differ from the run's own \(run.recipe)\(detail); "
            + "the run continues with --recipe's. Leave out --recipe to continue with the run's own."
    }
}
