import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels
import ParawaveTestSupport
import Testing

struct PitchPredictorTests {
    static func predictor(mels: Int = 4, layers: Int = 3, channels: Int = 5, kernel: Int = 3, seed: UInt64 = 3)
        -> (PitchPredictor, ParameterStore) {
        let store = ParameterStore()
        let predictor = PitchPredictor(config: PitchPredictorConfig(melChannels: mels, layers: layers, channels: channels, kernelSize: kernel,
                                                                    fMin: 60, fMax: 400),
                                       prefix: "p", store: store)
        var generator = SeededGenerator(seed: seed)
        predictor.initialise(store, generator: &generator)
        return (predictor, store)
    }

    /// F0 targets: about 60% of frames voiced, 70-380 Hz.
    static func targets(_ count: Int, seed: UInt64) -> [Float] {
        var g = SeededGenerator(seed: seed)
        return (0..<count).map { _ in g.uniformOpen() < 0.6 ? 70 + 310 * g.uniformOpen() : 0 }
    }

    /// Forward output, both loss terms and every parameter gradient against a torch float64
    /// model written from the definition (scripts/make_fixtures.py, `pitch_predictor`), with
    /// masked frames; within 1e-4 relative.
    @Test func matchesPyTorchReference() throws {
        let file = try SafeTensors.read(Fixtures.path("models/pitch_predictor.safetensors"))
        let meta = { (key: String) in Int(file.metadata[key] ?? "0")! }
        let B = meta("batch"), F = meta("frames")
        let config = PitchPredictorConfig(melChannels: meta("mels"), layers: meta("layers"), channels: meta("channels"),
                                          kernelSize: meta("kernel"), fMin: Float(file.metadata["fmin"]!)!, fMax: Float(file.metadata["fmax"]!)!)
        let store = ParameterStore()
        let predictor = PitchPredictor(config: config, prefix: "p", store: store)
        for e in store.entries {
            store.value(e).update(from: try file.tensor(e.name, shape: e.shape, file: "fixture"), count: e.count)
        }
        let mel = file.tensors["input.mel"]!.values, f0 = file.tensors["input.f0"]!.values, mask = file.tensors["input.mask"]!.values
        let a = predictor.makeActivations(batch: B, frames: F)
        predictor.forward(a, mel: mel, store: store)
        #expect(GradientCheck.worstGoldenError(a.out, file.tensors["output.out"]!.values) <= 1e-4)
        let loss = predictor.loss(a, f0: f0, mask: mask)
        let reference = file.tensors["output.loss"]!.values
        #expect(abs(loss.total - Double(reference[0])) <= 1e-4 * Double(reference[0]), "loss \(loss.total) vs \(reference[0])")
        #expect(abs(loss.voicing - Double(reference[1])) <= 1e-4 * Double(reference[1]))
        #expect(abs(loss.f0 - Double(reference[2])) <= 1e-4 * Double(reference[2]))
        store.zeroGradients()
        predictor.backward(a, mel: mel, store: store)
        for e in store.entries {
            let ours = Array(UnsafeBufferPointer(start: store.gradient(e), count: e.count))
            let worst = GradientCheck.worstGoldenError(ours, file.tensors["grad." + e.name]!.values)
            #expect(worst <= 1e-4, "\(e.name): worst relative error \(worst)")
        }
    }

    /// Every parameter's gradient against central differences of the loss, with masked frames
    /// and a kernel of 5 (dilations 1, 2, 4 reach past both ends of the sequence).
    @Test func gradientsMatchFiniteDifferences() {
        let (predictor, store) = Self.predictor(kernel: 5)
        let B = 2, F = 13
        let mel = GradientCheck.random(B * 4 * F, seed: 5, scale: 2)
        let f0 = Self.targets(B * F, seed: 6)
        var mask = [Float](repeating: 1, count: B * F)
        for f in 9..<F { mask[F + f] = 0 }
        let a = predictor.makeActivations(batch: B, frames: F)
        func loss() -> Double {
            predictor.forward(a, mel: mel, store: store)
            return predictor.loss(a, f0: f0, mask: mask).total
        }
        _ = loss()
        store.zeroGradients()
        predictor.backward(a, mel: mel, store: store)
        let errors = GradientCheck.worstDirectionalError(blocks: store.entries.map { ($0.name, $0.offset, $0.count) },
                                                         point: store.valueArray.map(Double.init), analytic: store.gradientArray,
                                                         epsilon: 1e-3) { values in
            store.setValues(values.map(Float.init))
            return loss()
        }
        #expect(errors.count == store.entries.count)
        // Float32 logits over 165 bins leave the differences a few 1e-3 of noise (measured
        // worst: 3.5e-3); a wrong gradient is off by order one. The PyTorch fixture above holds
        // the gradients to 1e-4.
        #expect(errors.values.max()! < 1e-2, "worst relative error \(errors.max { $0.value < $1.value }!)")
    }

    /// Masked frames give no loss and no gradient: changing their targets changes nothing.
    @Test func maskedFramesDoNotCount() {
        let (predictor, store) = Self.predictor()
        let B = 1, F = 10
        let mel = GradientCheck.random(B * 4 * F, seed: 9)
        var f0 = Self.targets(F, seed: 10)
        let mask = (0..<F).map { Float($0 < 7 ? 1 : 0) }
        let a = predictor.makeActivations(batch: B, frames: F)
        predictor.forward(a, mel: mel, store: store)
        let first = predictor.loss(a, f0: f0, mask: mask)
        for f in 7..<F { f0[f] = f0[f] > 0 ? 0 : 200 }
        let second = predictor.loss(a, f0: f0, mask: mask)
        #expect(first.total == second.total && first.frames == 7 && second.frames == 7)
    }

    /// The track: voiced where the voicing logit is positive, F0 the centre of the most
    /// probable bin when its neighbours are alike (the local mean is symmetric), pulled towards
    /// a neighbour that is nearly as probable, and 0 where unvoiced.
    @Test func trackGatesAndPicksTheBin() {
        let (predictor, store) = Self.predictor()
        let F = 3, N = predictor.config.bins
        #expect(N == Int(1200 * log2(400 / 60.0) / 20) + 1)
        let a = predictor.makeActivations(batch: 1, frames: F, training: false)
        for e in store.entries { store.fill(e, 0) }
        let bias = store.value(store.entry("p.out.bias")!)
        func track(logit: Float, peaks: [(Int, Float)]) -> ([Float], [Float]) {
            for j in 0...N { bias[j] = 0 }
            bias[0] = logit
            for (j, value) in peaks { bias[1 + j] = value }
            predictor.forward(a, mel: [Float](repeating: 0, count: 4 * F), store: store)
            return predictor.track(a)
        }
        let bin = { (j: Float) in 60 * exp2(j * 20 / 1200) }
        let (f0, probability) = track(logit: 2, peaks: [(37, 6)])
        #expect(f0.allSatisfy { abs($0 - bin(37)) < 1e-3 } && probability.allSatisfy { abs($0 - StableMath.sigmoid(2)) < 1e-6 }, "\(f0)")
        // Two equal neighbours: halfway between them in cents.
        #expect(track(logit: 2, peaks: [(50, 6), (51, 6)]).0.allSatisfy { abs($0 - bin(50.5)) < 1e-2 })
        #expect(track(logit: -2, peaks: [(37, 6)]).0.allSatisfy { $0 == 0 })
        // A far second peak does not pull the estimate.
        #expect(track(logit: 1, peaks: [(20, 6), (90, 5)]).0.allSatisfy { abs($0 - bin(20)) < 1e-3 })
    }

    /// A teacher with a pitch predictor: the predictor's parameters come after the WaveNet's in
    /// the store and form their own optimizer group; the checkpoint round-trips them bit-exactly
    /// and the loaded teacher predicts the same track; a config whose predictor disagrees with
    /// the mel bands is refused on load.
    @Test func teacherCheckpointKeepsThePredictor() throws {
        let stack = WaveNetStackConfig(layers: 2, cycle: 2, kernelSize: 2, residualChannels: 4, gateOutChannels: 4, skipChannels: 4,
                                       conditionChannels: 5, hop: 8, sourceChannels: 1)
        let mel = MelSettings(sampleRate: 16000, nFFT: 32, hopLength: 8, nMels: 5)
        let pitch = PitchPredictorConfig(melChannels: 5, layers: 2, channels: 3, kernelSize: 3)
        let teacher = Teacher(config: TeacherConfig(stack: stack, mixtures: 2, mel: mel, source: SineSource(), pitch: pitch))
        teacher.initialise(seed: 4)
        let plain = Teacher(config: TeacherConfig(stack: stack, mixtures: 2, mel: mel, source: SineSource()))
        plain.initialise(seed: 4)
        // The WaveNet's initial weights do not depend on whether a predictor follows.
        #expect(Array(teacher.store.valueArray.prefix(plain.store.count)) == plain.store.valueArray)
        let groups = teacher.parameterGroups(clipNorm: 10)
        #expect(groups.count == 2 && groups[0].range == 0..<plain.store.count && groups[1].range.upperBound == teacher.store.count)
        #expect(plain.parameterGroups(clipNorm: 10).count == 1)

        let input = Matrix(rows: 5, columns: 12, values: GradientCheck.random(60, seed: 8, scale: 2).map { $0 - 5 })
        let predicted = try #require(teacher.predictF0(mel: input))
        let path = Fixtures.temporaryDirectory() + "/teacher.safetensors"
        try teacher.checkpoint(values: teacher.store.valueArray, step: 3).write(to: path)
        let loaded = try Teacher.load(try SafeTensors.read(path), name: path)
        #expect(loaded.config == teacher.config && loaded.store.valueArray == teacher.store.valueArray)
        #expect(loaded.predictF0(mel: input)!.f0 == predicted.f0)
        #expect(plain.predictF0(mel: input) == nil)

        var file = try SafeTensors.read(path)
        file.metadata["config"] = file.metadata["config"]!.replacingOccurrences(of: "\"melChannels\":5", with: "\"melChannels\":6")
        #expect(throws: ParawaveError.self) { try Teacher.load(file, name: "edited") }
    }
}
