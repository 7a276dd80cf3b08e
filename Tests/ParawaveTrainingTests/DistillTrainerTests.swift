import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels
import ParawaveTestSupport
import Testing

import ParawaveTraining

struct DistillTrainerTests {
    /// A tiny teacher trained for 200 steps on the clips (about 8 s), shared by the tests.
    static let teacher: Teacher = {
        let run = RunDirectory(Fixtures.temporaryDirectory() + "/teacher")
        let trainer = try! TeacherTrainer(recipe: try! TeacherTrainerTests.recipe(["train.steps=200", "train.learning_rate=0.01",
                                                                                   "train.ema_decay=0.9"]),
                                          data: data, run: run, resume: false)
        trainer.showProgress = false
        _ = try! trainer.train(shouldStop: { false })
        return try! Teacher.load(try! SafeTensors.read(run.model), name: run.model)
    }()

    static let data: TrainingData = {
        let clip = try! TeacherTrainerTests.clip(), other = try! TeacherTrainerTests.clip(seconds: 0.4, pitch: 190)
        return TrainingData(train: [clip, other], validation: [clip, other], audio: TeacherTrainerTests.settings)
    }()

    static func recipe(_ overrides: [String] = []) throws -> Recipe {
        try TeacherTrainerTests.recipe(["student.flows=[3, 3]", "student.cycle=3", "student.kernel_size=2", "student.residual_channels=8",
                                        "student.gate_channels=16", "student.skip_channels=8", "distill.steps=150", "distill.batch_size=2",
                                        "distill.crop=1024", "distill.learning_rate=0.003", "distill.mc_samples=4",
                                        "distill.spectral_loss={kind: none}", "distill.validate_every=1000", "distill.checkpoint_every=1000",
                                        "distill.log_every=10", "distill.validation_utterances=2", "distill.ema_decay=0.9", "distill.seed=5",
                                        "distill.precision=single"]
                                       + overrides)
    }

    /// Distillation lowers the validation KL (fixed noise, EMA weights) from the untrained
    /// student's 0.48 nats per sample to 0.13 after 250 steps (asserted: below a third of the
    /// start; distillation seeds 1, 3 and 5 end at 0.125-0.129); the student's entropy and
    /// cross-entropy are reported beside it.
    @Test func distillationLowersTheKL() throws {
        let run = RunDirectory(Fixtures.temporaryDirectory() + "/student")
        let trainer = try DistillTrainer(recipe: try Self.recipe(["distill.steps=250"]), data: Self.data, teacher: Self.teacher, teacherName: "teacher",
                                         run: run, resume: false)
        trainer.showProgress = false
        let before = try #require(trainer.validate())
        #expect(before.map(\.0) == ["kl", "cross_entropy", "entropy"])
        let outcome = try trainer.train(shouldStop: { false })
        let after = try #require(outcome.validationLoss)
        #expect(before[0].1 > 0.2, "initial KL \(before[0].1)")
        #expect(after < before[0].1 / 3, "KL after 250 steps \(after) (from \(before[0].1))")
        let student = try Student.load(try SafeTensors.read(run.model), name: run.model)
        #expect(student.melMean == Self.teacher.melMean)
        let metrics = try run.readMetrics()
        #expect(metrics.contains { $0["kl"] != nil && $0["entropy"] != nil && $0["cross_entropy"] != nil })
    }

    /// A teacher with linear prediction from the mel, trained a few steps, and a student
    /// distilled from it: the student takes the teacher's order and learned gain, its
    /// checkpoint keeps them, the KL falls, and the student renders the filtered waveform
    /// (finite, with the clip's loudness within a factor of 4).
    @Test func linearPredictionEndToEnd() throws {
        let teacherRun = RunDirectory(Fixtures.temporaryDirectory() + "/lp-teacher")
        let recipe = try Self.recipe(["teacher.linear_prediction=8", "teacher.log_scale_min=-16", "train.steps=40", "distill.steps=60",
                                      "distill.initial_scale=1"])
        let teacherTrainer = try TeacherTrainer(recipe: recipe, data: Self.data, run: teacherRun, resume: false)
        teacherTrainer.showProgress = false
        let start = try #require(teacherTrainer.validationLoss())
        _ = try teacherTrainer.train(shouldStop: { false })
        let teacher = try Teacher.load(try SafeTensors.read(teacherRun.model), name: teacherRun.model)
        #expect(teacher.config.linearPrediction == 8 && teacher.linearPredictionGain != 0)
        // The mel's predictor alone is far better than an untrained WaveNet's 12 nats per sample.
        #expect(start < 9, "untrained NLL with linear prediction \(start)")

        let run = RunDirectory(Fixtures.temporaryDirectory() + "/lp-student")
        let trainer = try DistillTrainer(recipe: recipe, data: Self.data, teacher: teacher, teacherName: "teacher", run: run, resume: false)
        trainer.showProgress = false
        let before = try #require(trainer.validate())[0].1
        let after = try #require(try trainer.train(shouldStop: { false }).validationLoss)
        #expect(after < before, "KL \(before) -> \(after)")
        let student = try Student.load(try SafeTensors.read(run.model), name: run.model)
        #expect(student.config.linearPrediction == 8 && student.config.linearPredictionGain == teacher.linearPredictionGain)
        let clip = Self.data.validation[0]
        var generator = SeededGenerator(seed: 3)
        let audio = student.synthesize(mel: clip.mel, noise: Student.noise(count: clip.mel.columns * 64, generator: &generator))
        func rms(_ x: [Float]) -> Float { (x.map { $0 * $0 }.reduce(0, +) / Float(max(x.count, 1))).squareRoot() }
        #expect(audio.allSatisfy { $0.isFinite })
        let ratio = rms(audio) / rms(clip.audio)
        #expect(ratio > 0.25 && ratio < 4, "loudness ratio \(ratio)")
    }

    /// ClariNet's route end to end: a Gaussian teacher with linear prediction trained a few
    /// steps (its NLL falls), a student on Gaussian noise distilled from it with the closed-form
    /// KL and the log-scale penalty (the KL falls, the penalty is logged), stopped and resumed
    /// bit-identical to a straight run, and a render that is finite.
    @Test func gaussianEndToEnd() throws {
        let teacherRun = RunDirectory(Fixtures.temporaryDirectory() + "/gaussian-teacher")
        let recipe = try Self.recipe(["teacher.output=gaussian", "teacher.mixtures=1", "teacher.linear_prediction=8", "teacher.log_scale_min=-16", "train.steps=40",
                                      "distill.steps=40", "distill.initial_scale=1", "distill.checkpoint_every=7", "distill.log_every=5"])
        #expect(recipe.teacher.mixtures == 1)
        let teacherTrainer = try TeacherTrainer(recipe: recipe, data: Self.data, run: teacherRun, resume: false)
        teacherTrainer.showProgress = false
        let start = try #require(teacherTrainer.validationLoss())
        let end = try #require(try teacherTrainer.train(shouldStop: { false }).validationLoss)
        #expect(end < start, "Gaussian teacher NLL \(start) -> \(end)")
        let teacher = try Teacher.load(try SafeTensors.read(teacherRun.model), name: teacherRun.model)
        #expect(teacher.config.output == .gaussian)

        let straight = RunDirectory(Fixtures.temporaryDirectory() + "/gaussian-a")
        let a = try DistillTrainer(recipe: recipe, data: Self.data, teacher: teacher, teacherName: "t", run: straight, resume: false)
        a.showProgress = false
        let before = try #require(a.validate())[0].1
        let after = try #require(try a.train(shouldStop: { false }).validationLoss)
        #expect(after < before && after > 0, "closed-form KL \(before) -> \(after)")
        #expect(try straight.readMetrics().contains { $0["log_scale_penalty"] != nil && $0["kl"] != nil })
        let interrupted = RunDirectory(Fixtures.temporaryDirectory() + "/gaussian-b")
        let b = try DistillTrainer(recipe: recipe, data: Self.data, teacher: teacher, teacherName: "t", run: interrupted, resume: false)
        b.showProgress = false
        b.log = { _ in }
        _ = try b.train(shouldStop: { b.step == 21 })
        let c = try DistillTrainer(recipe: recipe, data: Self.data, teacher: teacher, teacherName: "t", run: interrupted, resume: true)
        c.showProgress = false
        _ = try c.train(shouldStop: { false })
        #expect(try Data(contentsOf: URL(fileURLWithPath: straight.model)) == Data(contentsOf: URL(fileURLWithPath: interrupted.model)))
        let student = try Student.load(try SafeTensors.read(straight.model), name: straight.model)
        #expect(student.config.noise == .gaussian)
        var generator = SeededGenerator(seed: 3)
        let clip = Self.data.validation[0]
        let rendered = student.synthesize(mel: clip.mel, noise: student.noise(count: clip.mel.columns * 64, generator: &generator))
        #expect(rendered.allSatisfy { $0.isFinite })
    }

    /// A student records its teacher relative to its own run directory, so evaluating from
    /// any working directory finds it.
    @Test func teacherPathIsRelativeToTheRun() throws {
        #expect(DistillTrainer.relativePath(to: "/w/runs/t", from: "/w/runs/s") == "../t")
        #expect(DistillTrainer.relativePath(to: "/w/runs/t/model.safetensors", from: "/w/runs/t") == "model.safetensors")
        #expect(DistillTrainer.relativePath(to: "/a/b", from: "/c/d/e") == "../../../a/b")
        #expect(DistillTrainer.relativePath(to: "/w/runs/./t/", from: "/w/x/../runs/s") == "../t")
        let cwd = FileManager.default.currentDirectoryPath
        #expect(DistillTrainer.relativePath(to: "runs/t", from: cwd + "/runs/s") == "../t")
    }

    /// A run of `recipe` trained straight through, and another stopped after `stoppingAt`
    /// steps and resumed to the end.
    static func straightAndResumed(_ recipe: Recipe, stoppingAt stop: Int) throws -> (straight: RunDirectory, resumed: RunDirectory) {
        let straight = RunDirectory(Fixtures.temporaryDirectory() + "/a")
        let a = try DistillTrainer(recipe: recipe, data: data, teacher: teacher, teacherName: "t", run: straight, resume: false)
        a.showProgress = false
        _ = try a.train(shouldStop: { false })
        let interrupted = RunDirectory(Fixtures.temporaryDirectory() + "/b")
        let b = try DistillTrainer(recipe: recipe, data: data, teacher: teacher, teacherName: "t", run: interrupted, resume: false)
        b.showProgress = false
        b.log = { _ in }
        _ = try b.train(shouldStop: { b.step == stop })
        let c = try DistillTrainer(recipe: recipe, data: data, teacher: teacher, teacherName: "t", run: interrupted, resume: true)
        c.showProgress = false
        #expect(c.step == stop)
        _ = try c.train(shouldStop: { false })
        return (straight, interrupted)
    }

    /// Stop and resume is exact for distillation too (noise comes from the run's generator),
    /// with the spectral and contrastive terms on.
    @Test func stopAndResumeIsExact() throws {
        var recipe = try Self.recipe(["distill.steps=8", "distill.checkpoint_every=3", "distill.validate_every=4",
                                      "distill.spectral_loss={kind: magnitude, weight: 0.5}", "distill.contrastive_weight=0.2"])
        // Left out, the keys that follow the teacher are resolved into the run's recipe: this
        // teacher has neither linear prediction nor a source.
        (recipe.distill.initialScale, recipe.student.sourceGain) = (nil, nil)
        let (straight, interrupted) = try Self.straightAndResumed(recipe, stoppingAt: 5)
        let saved = try Recipe.load(straight.recipe)
        #expect(saved.distill.initialScale == 0.05 && saved.student.sourceGain == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: straight.model)) == Data(contentsOf: URL(fileURLWithPath: interrupted.model)))
        let s1 = try SafeTensors.read(straight.trainState), s2 = try SafeTensors.read(interrupted.trainState)
        for name in ["values", "adam.m", "adam.v", "adam.ema"] {
            #expect(s1.tensors[name]!.values.map(\.bitPattern) == s2.tensors[name]!.values.map(\.bitPattern), "\(name)")
        }
        // Another teacher shape cannot resume it.
        let other = Self.tiny(layers: 5)
        #expect(throws: ParawaveError.self) {
            _ = try DistillTrainer(recipe: recipe, data: Self.data, teacher: other, teacherName: "other", run: interrupted, resume: true)
        }
    }

    /// The adversarial term: its metrics are 0 before `adversarial_start` and measured after;
    /// the discriminator's weights and Adam moments are kept in the training state, so a run
    /// stopped and resumed ends bit-identical to one that was not (the student's model and the
    /// discriminator alike); a recipe without the term cannot resume such a run.
    @Test func adversarialTermResumesExactly() throws {
        let recipe = try Self.recipe(["distill.steps=8", "distill.checkpoint_every=3", "distill.validate_every=4", "distill.log_every=1",
                                      "distill.spectral_loss={kind: magnitude, weight: 0.5}", "distill.adversarial_weight=2",
                                      "distill.adversarial_start=3", "distill.discriminator_layers=3", "distill.discriminator_channels=4"])
        let (straight, interrupted) = try Self.straightAndResumed(recipe, stoppingAt: 5)
        let metrics = try straight.readMetrics().filter { $0["loss"] != nil }
        #expect(metrics.count == 8)
        for row in metrics {
            let step = row["step"] as! Int, g = row["adversarial"] as! Double, real = row["discriminator_real"] as! Double
            #expect(step <= 3 ? (g == 0 && real == 0) : (g > 0 && real > 0), "step \(step): \(row)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: straight.model)) == Data(contentsOf: URL(fileURLWithPath: interrupted.model)))
        let s1 = try SafeTensors.read(straight.trainState), s2 = try SafeTensors.read(interrupted.trainState)
        for name in ["values", "adam.m", "adam.v", "discriminator.values", "discriminator.adam.m", "discriminator.adam.v"] {
            #expect(s1.tensors[name]!.values.map(\.bitPattern) == s2.tensors[name]!.values.map(\.bitPattern), "\(name)")
        }
        #expect(s1.metadata["discriminator_adam_step"] == "5")
        #expect(throws: ParawaveError.self) {
            _ = try DistillTrainer(recipe: try Self.recipe(["distill.steps=8"]), data: Self.data, teacher: Self.teacher, teacherName: "t",
                                   run: interrupted, resume: true)
        }
    }

    /// A recipe whose audio settings are not the teacher's is refused, naming the teacher.
    @Test func audioMustMatchTheTeacher() throws {
        let run = RunDirectory(Fixtures.temporaryDirectory() + "/student")
        do {
            _ = try DistillTrainer(recipe: try Self.recipe(["audio.fmax=3800"]), data: Self.data, teacher: Self.teacher,
                                   teacherName: "runs/teacher", run: run, resume: false)
            Issue.record("a mismatched recipe was accepted")
        } catch let error as ParawaveError {
            #expect(error.description.contains("runs/teacher") && error.description.contains("fmax"), "\(error)")
        }
    }

    /// A teacher like the trained one but with `layers` layers (same audio settings).
    static func tiny(layers: Int) -> Teacher {
        var config = teacher.config
        config.stack.layers = layers
        let t = Teacher(config: config)
        t.initialise(seed: 1)
        t.melMean = teacher.melMean
        t.melStd = teacher.melStd
        return t
    }
}
