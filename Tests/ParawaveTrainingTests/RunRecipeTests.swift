import Foundation
import ParawaveCore
import ParawaveTestSupport
import Testing

import ParawaveTraining

/// Which recipe a training command runs with, and the run-directory checks made before any
/// slow work: a new run needs --recipe and an empty run; resuming needs a run and defaults to
/// its own recipe.yaml; a --recipe whose training settings differ from the run's is said.
struct RunRecipeTests {
    @Test func chooseTheRecipeAndCheckTheRun() throws {
        let dir = Fixtures.temporaryDirectory()
        let run = RunDirectory(dir + "/run")
        let given = dir + "/given.yaml"
        try "train: {steps: 40, learning_rate: 0.002}\n".write(toFile: given, atomically: true, encoding: .utf8)
        #expect(throws: ParawaveError("--recipe", "is required to start a run (with --resume it defaults to RUN/recipe.yaml)")) {
            try RunRecipe.resolve(recipe: nil, section: "train", run: run, resume: false)
        }
        // Resuming a run that does not exist names the run, not the recipe.
        #expect(throws: ParawaveError(run.path, "has no train-state.safetensors to resume from; start the run without --resume")) {
            try RunRecipe.resolve(recipe: given, section: "train", run: run, resume: true)
        }
        let fresh = try RunRecipe.resolve(recipe: given, overrides: ["train.seed=3"], steps: 50, section: "train", run: run, resume: false)
        #expect(fresh.recipe.train.steps == 50 && fresh.recipe.train.seed == 3 && fresh.warning == nil)

        // A run with its recipe and state: resuming takes its recipe, --steps extends it.
        try run.create()
        try fresh.recipe.yaml().write(toFile: run.recipe, atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: run.trainState, contents: Data())
        #expect(throws: ParawaveError.self) { try RunRecipe.resolve(recipe: given, section: "train", run: run, resume: false) }
        let resumed = try RunRecipe.resolve(recipe: nil, steps: 80, section: "train", run: run, resume: true)
        #expect(resumed.recipe.train.steps == 80 && resumed.recipe.train.seed == 3 && resumed.warning == nil)
        // The same settings through --recipe: no warning; other ones: a warning naming the run.
        #expect(try RunRecipe.resolve(recipe: run.recipe, section: "train", run: run, resume: true).warning == nil)
        let changed = try RunRecipe.resolve(recipe: given, section: "train", run: run, resume: true)
        #expect(changed.warning?.contains("differ from the run's own \(run.recipe) (train.steps 40, the run's 50") == true, "\(changed.warning ?? "")")
        // Distillation's settings are the distill section's.
        #expect(try RunRecipe.resolve(recipe: given, section: "distill", run: run, resume: true).warning == nil)
        try FileManager.default.removeItem(atPath: run.recipe)
        #expect(throws: ParawaveError(run.path, "has no recipe.yaml to resume with; give --recipe")) {
            try RunRecipe.resolve(recipe: nil, section: "train", run: run, resume: true)
        }
    }
}
