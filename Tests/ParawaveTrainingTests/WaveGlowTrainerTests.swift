import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels
import ParawaveTestSupport
import Testing

import ParawaveTraining

struct WaveGlowTrainerTests {
    static func recipe(_ overrides: [String] = []) throws -> Recipe {
        try TeacherTrainerTests.recipe(["waveglow.n_flows=4", "waveglow.n_group=4", "waveglow.n_early_every=2", "waveglow.n_early_size=2",
                                        "waveglow.layers=3", "waveglow.residual_channels=8", "waveglow.batch_size=2", "waveglow.crop=1024",
                                        "waveglow.learning_rate=0.002", "waveglow.validation_utterances=2", "waveglow.precision=single",
                                        "waveglow.seed=4"] + overrides)
    }

    static let data: TrainingData = {
        let clip = try! TeacherTrainerTests.clip(), other = try! TeacherTrainerTests.clip(seconds: 0.4, pitch: 190)
        return TrainingData(train: [clip, other], validation: [clip, other], audio: TeacherTrainerTests.settings)
    }()

    /// 150 steps on two clips lower the validation NLL (EMA weights, with the Gaussian's
    /// constant) by more than 1 nat per sample from the identity flow's start, and the
    /// run's model renders back what it encodes (inverse of forward).
    @Test func trainingLowersTheNLL() throws {
        let run = RunDirectory(Fixtures.temporaryDirectory() + "/waveglow")
        let trainer = try WaveGlowTrainer(recipe: try Self.recipe(["waveglow.steps=150", "waveglow.ema_decay=0.9", "waveglow.validate_every=1000",
                                                                    "waveglow.checkpoint_every=1000"]),
                                          data: Self.data, run: run, resume: false)
        trainer.showProgress = false
        trainer.log = { _ in }
        let before = try #require(trainer.validationLoss())
        let outcome = try trainer.train(shouldStop: { false })
        let after = try #require(outcome.validationLoss)
        #expect(after < before - 1, "validation NLL \(before) -> \(after)")
        let model = try WaveGlow.load(try SafeTensors.read(run.model), name: run.model)
        #expect(model.melMean == Self.data.melMean)
    }

    /// Uniform dequantisation moves every real sample by at most half a 16-bit bin (and some
    /// by more than a tenth of one), leaves the padding past an utterance's end at zero, and
    /// draws the same noise from the same seed.
    @Test func dequantisationStaysInTheBin() throws {
        let settings = TeacherTrainerTests.settings
        let frames = Self.data.train.map(\.mel.columns).max()! + 3
        let batch = try #require(CropSampler(Self.data.train, frames: frames, hop: settings.hopLength, logFloor: settings.logFloor)
            .fixedBatches(batch: 2).first)
        var g = SeededGenerator(seed: 1), h = SeededGenerator(seed: 1)
        let out = WaveGlowTrainer.dequantised(batch, bits: 16, generator: &g)
        let half = Float(1 / (pow(2.0, 16) - 1))
        let moves = zip(out.audio, batch.audio).map { abs($0 - $1) }
        #expect(batch.mask.contains(0) && batch.mask.contains(1))
        #expect(zip(moves, batch.mask).allSatisfy { $1 == 0 ? $0 == 0 : $0 <= half * 1.0001 })
        #expect(zip(moves, batch.mask).filter { $1 != 0 && $0 > 0.1 * half }.count > batch.mask.filter { $0 != 0 }.count / 2)
        #expect(WaveGlowTrainer.dequantised(batch, bits: 16, generator: &h).audio == out.audio)
    }

    /// A stop request checkpoints at once; resuming from it ends bit-identical to a run that
    /// was never stopped (weights, EMA, moments), and the run's recipe keeps the waveglow
    /// section's precision.
    @Test func stopAndResumeIsExact() throws {
        let recipe = try Self.recipe(["waveglow.steps=10", "waveglow.checkpoint_every=4", "waveglow.validate_every=3", "waveglow.log_every=2"])
        let straight = RunDirectory(Fixtures.temporaryDirectory() + "/run")
        let a = try WaveGlowTrainer(recipe: recipe, data: Self.data, run: straight, resume: false)
        a.showProgress = false
        a.log = { _ in }
        _ = try a.train(shouldStop: { false })
        let interrupted = RunDirectory(Fixtures.temporaryDirectory() + "/run")
        let b = try WaveGlowTrainer(recipe: recipe, data: Self.data, run: interrupted, resume: false)
        b.showProgress = false
        b.log = { _ in }
        let first = try b.train(shouldStop: { b.step == 6 })
        #expect(first.interrupted && first.step == 6)
        let c = try WaveGlowTrainer(recipe: recipe, data: Self.data, run: interrupted, resume: true)
        c.showProgress = false
        c.log = { _ in }
        #expect(c.step == 6)
        _ = try c.train(shouldStop: { false })
        #expect(try Data(contentsOf: URL(fileURLWithPath: straight.model)) == Data(contentsOf: URL(fileURLWithPath: interrupted.model)))
        let s1 = try SafeTensors.read(straight.trainState), s2 = try SafeTensors.read(interrupted.trainState)
        for name in ["values", "adam.m", "adam.v", "adam.ema"] {
            #expect(s1.tensors[name]!.values.map(\.bitPattern) == s2.tensors[name]!.values.map(\.bitPattern), "\(name)")
        }
        #expect(try Recipe.load(straight.recipe).waveglow.run.precision == .single)
        // Another model size cannot resume this run.
        let changed = try Self.recipe(["waveglow.steps=10", "waveglow.layers=2"])
        #expect(throws: ParawaveError.self) { _ = try WaveGlowTrainer(recipe: changed, data: Self.data, run: interrupted, resume: true) }
    }
}
