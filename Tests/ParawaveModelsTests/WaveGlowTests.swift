import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels
import ParawaveTestSupport
import Testing

struct WaveGlowTests {
    /// A tiny WaveGlow: 4 flows over groups of 4 with 2 channels leaving after flow 2 (so
    /// flows 0-1 transform 4 channels and 2-3 transform 2), networks of 2 layers of 6
    /// channels, 5 mel bands, frames of 8 samples.
    static let config = WaveGlowConfig(flows: 4, group: 4, earlyEvery: 2, earlySize: 2, layers: 2, residualChannels: 6, kernelSize: 3,
                                       sigma: 1, upsampleKernel: 3, mel: MelSettings(sampleRate: 8000, nFFT: 32, hopLength: 8, nMels: 5))

    /// The same with a sine source of 3 harmonics as a sixth conditioning band, and a pitch
    /// predictor of 2 layers.
    static let sourceConfig: WaveGlowConfig = {
        var c = config
        c.source = SineSource(harmonics: 3, ramp: 4)
        c.pitch = PitchPredictorConfig(melChannels: 5, layers: 2, channels: 4, kernelSize: 3)
        c.sourceGain = 0.7
        return c
    }()

    /// The same again conditioned on 3 speakers by embeddings of 3 values.
    static let speakerConfig: WaveGlowConfig = {
        var c = sourceConfig
        c.speakers = ["ann", "bob", "cy"]
        c.speakerChannels = 3
        return c
    }()

    /// With a source and the mel's order-6 linear prediction under the flow (LP-WaveGlow).
    static let predictionConfig: WaveGlowConfig = {
        var c = sourceConfig
        c.linearPrediction = 6
        return c
    }()

    /// With a source and speakers over frames of 32 samples: 8 squeezed steps per frame, of
    /// which the 6 inside (whose upsampler windows stay in the frame) share one conditioning
    /// vector, so each frame is 3 runs of `ConditioningRuns`.
    static let longFrameConfig: WaveGlowConfig = {
        var c = speakerConfig
        c.mel = MelSettings(sampleRate: 8000, nFFT: 64, hopLength: 32, nMels: 5)
        return c
    }()

    /// The conditionings the tests run with: the mel (0), with a source (1), with a source
    /// and speakers (2), with a source and linear prediction (3), and with a source and
    /// speakers over longer frames (4).
    static let conditionings = [0, 1, 2, 3, 4]

    /// A tiny model with every weight random (the end layers too, so no coupling is the
    /// identity) and the 1x1 convolutions orthogonal as initialised, then perturbed.
    static func model(seed: UInt64, conditioning: Int = 0) -> WaveGlow {
        let model = WaveGlow(config: [config, sourceConfig, speakerConfig, predictionConfig, longFrameConfig][conditioning])
        model.initialise(seed: seed)
        let saved = model.store.valueArray
        let noise = GradientCheck.random(saved.count, seed: seed + 100, scale: 0.3)
        model.store.setValues(zip(saved, noise).map { $0 + $1 })
        return model
    }

    /// B utterances' sources of F frames each from F0 tracks with voiced and unvoiced frames
    /// (nil for a model without a source).
    static func sources(_ model: WaveGlow, batch B: Int, frames F: Int, seed: UInt64) -> [Float]? {
        guard model.source != nil else { return nil }
        var out: [Float] = []
        for b in 0..<B {
            let base = 700 + 90 * Int(seed % 5) + 150 * b
            let f0: [Float] = (0..<F).map { f in f % 3 == 2 ? 0 : Float(base + 60 * f) }
            out += model.sourceSignal(f0: f0, samples: F * model.config.hop, initialPhase: Double(b) * 0.7)!
        }
        return out
    }

    /// Each utterance's speaker row (nil for a model without speakers).
    static func speakers(_ model: WaveGlow, batch B: Int) -> [Int]? {
        model.speakers.isEmpty ? nil : (0..<B).map { (2 * $0 + 1) % model.speakers.count }
    }

    @Test func configSizes() {
        let c = Self.config
        #expect((0..<4).map(c.channels(atFlow:)) == [4, 4, 2, 2])
        #expect(c.exits(before: 2) && !c.exits(before: 0) && !c.exits(before: 1) && !c.exits(before: 3))
        #expect(c.exitOffset(before: 2) == 0 && c.finalOffset == 2)
        let nvidia = WaveGlowConfig()
        #expect((0..<12).map(nvidia.channels(atFlow:)) == [8, 8, 8, 8, 6, 6, 6, 6, 4, 4, 4, 4] && nvidia.finalOffset == 4)
        #expect(nvidia.problems().isEmpty)
        #expect(!WaveGlowConfig(group: 6, earlySize: 2).problems().isEmpty, "hop 256 is no multiple of 6")
        #expect(!WaveGlowConfig(layers: 1_000_000).problems().isEmpty && !WaveGlowConfig(sigma: 0).problems().isEmpty)
        #expect(!WaveGlowConfig(flows: 12, group: 4, earlyEvery: 2, earlySize: 2).problems().isEmpty, "no channels left")
        #expect(Self.sourceConfig.problems().isEmpty && Self.sourceConfig.conditionBands == 6 && Self.config.conditionBands == 5)
        #expect(Self.speakerConfig.problems().isEmpty && Self.speakerConfig.conditionChannels == 6 * 4 + 3)
        var unnamed = Self.speakerConfig
        unnamed.speakers = []
        #expect(!unnamed.problems().isEmpty)
        var orphan = Self.sourceConfig
        orphan.source = nil
        #expect(orphan.problems() == ["a source gain without a source", "a pitch predictor without a source"])
    }

    /// The initial 1x1 convolutions are orthogonal with determinant +1, and the initial
    /// couplings are the identity (their last layer is zero): z is x mixed by the W_k alone,
    /// and log s is 0.
    @Test func initialisation() {
        let model = WaveGlow(config: Self.config)
        model.initialise(seed: 3)
        for k in 0..<Self.config.flows {
            let r = Self.config.channels(atFlow: k)
            let w = model.store.value(model.store.entries.first { $0.name == "waveglow.convinv.\(k).weight" }!)
            let values = (0..<(r * r)).map { Double(w[$0]) }
            let det = LAPACK.logAbsDeterminant(values, n: r)!
            #expect(abs(det.logAbs) < 1e-6 && det.sign == 1)
        }
        let B = 1, F = 3, T = F * Self.config.hop
        let a = model.makeActivations(batch: B, frames: F)
        let audio = GradientCheck.random(B * T, seed: 4), mel = GradientCheck.random(B * 5 * F, seed: 5)
        let loss = model.forward(a, audio: audio, mel: mel)
        #expect(abs(loss.logScale) < 1e-12 && abs(loss.logDeterminant) < 1e-6)
        // Orthogonal mixing keeps the squared norm: sum z^2 = sum x^2.
        let squares = audio.map { Double($0) * Double($0) }.reduce(0, +)
        #expect(abs(loss.gaussian - squares / 2 / Double(T)) < 1e-5)
    }

    /// The inverse pass undoes the forward pass: inverse(forward(x)) = x to 1e-5, with two
    /// utterances, early outputs and every weight random, with and without a source. The
    /// source conditions the flow: another source gives another z.
    @Test(arguments: conditionings)
    func inverseUndoesForward(conditioning: Int) {
        let model = Self.model(seed: 6, conditioning: conditioning)
        let B = 2, F = 4, T = F * model.config.hop
        let a = model.makeActivations(batch: B, frames: F)
        let audio = GradientCheck.random(B * T, seed: 7, scale: 0.5), mel = GradientCheck.random(B * 5 * F, seed: 8)
        let excitation = Self.sources(model, batch: B, frames: F, seed: 1), who = Self.speakers(model, batch: B)
        model.forward(a, audio: audio, mel: mel, source: excitation, speakers: who)
        let z = a.z.array
        #expect(z.contains { abs($0) > 0.1 } && z != audio)
        var back = [Float](repeating: 0, count: B * T)
        let b = model.makeActivations(batch: B, frames: F)
        model.inverse(b, z: z, mel: mel, source: excitation, speakers: who, audio: &back)
        let worst = zip(back, audio).map { abs($0 - $1) }.max() ?? 1
        // With linear prediction the synthesis filter (a recursion whose poles come near the
        // unit circle) carries the flow's float32 rounding into the waveform with its gain:
        // 1e-4 there (measured 3.8e-5), 1e-5 on the flow's own output.
        let bound: Float = model.linearPrediction == nil ? 1e-5 : 1e-4
        #expect(worst < bound, "inverse(forward(x)) differs from x by \(worst)")
        if let other = Self.sources(model, batch: B, frames: F, seed: 2) {
            model.forward(a, audio: audio, mel: mel, source: other, speakers: who)
            let moved = zip(a.z.array, z).map { abs($0 - $1) }.max() ?? 0
            #expect(moved > 1e-3, "z moves by \(moved) with the source")
        }
        if let who {
            model.forward(a, audio: audio, mel: mel, source: excitation, speakers: who.map { ($0 + 1) % 3 })
            let moved = zip(a.z.array, z).map { abs($0 - $1) }.max() ?? 0
            #expect(moved > 1e-3, "z moves by \(moved) with the speakers")
        }
    }

    /// The change of variables: the loss's log-determinant terms (sum log s + T' B sum_k
    /// log|det W_k|, from the loss's parts) equal log|det dz/dx| of the whole flow, the
    /// Jacobian by central differences in x (one utterance of 16 samples, so a 16 x 16
    /// Jacobian), its log-determinant by LU.
    /// With linear prediction the Jacobian includes x -> e, whose log-determinant is
    /// -sum log sigma_t (the loss's excitation term).
    @Test(arguments: [0, 3])
    func logDeterminantMatchesTheJacobian(conditioning: Int) {
        let model = Self.model(seed: 9, conditioning: conditioning)
        let F = 2, T = F * Self.config.hop
        let a = model.makeActivations(batch: 1, frames: F)
        let audio = GradientCheck.random(T, seed: 10, scale: 0.5), mel = GradientCheck.random(5 * F, seed: 11, scale: 2).map { $0 - 3 }
        let excitation = Self.sources(model, batch: 1, frames: F, seed: 5)
        let loss = model.forward(a, audio: audio, mel: mel, source: excitation)
        #expect((loss.excitationScale != 0) == (conditioning == 3))
        let claimed = -(loss.logScale + loss.logDeterminant + loss.excitationScale) * Double(T)
        var jacobian = [Double](repeating: 0, count: T * T)
        let h: Float = 1e-2
        for j in 0..<T {
            var x = audio
            x[j] += h
            model.forward(a, audio: x, mel: mel, source: excitation)
            let up = a.z.array
            x[j] = audio[j] - h
            model.forward(a, audio: x, mel: mel, source: excitation)
            let down = a.z.array
            for i in 0..<T { jacobian[i * T + j] = (Double(up[i]) - Double(down[i])) / (2 * Double(h)) }
        }
        let measured = LAPACK.logAbsDeterminant(jacobian, n: T)!.logAbs
        #expect(abs(measured - claimed) < 2e-3, "log|det J| \(measured), the model's \(claimed)")
        #expect(abs(claimed) > 0.1, "a non-trivial determinant")
    }

    /// The runs of equal conditioning vectors: 3 per frame of 8 steps (the first and last
    /// step, whose upsampler windows reach the neighbouring frames, alone), the utterance's
    /// first and last steps alone too (the window reaches the padding), 3 per frame of 32 at
    /// WG-small's shape, and none shared over frames of 2 steps.
    @Test func conditioningRuns() {
        let runs = ConditioningRuns(config: Self.longFrameConfig, length: 3 * 32)
        #expect(runs.starts == [0, 1, 7, 8, 9, 15, 16, 17, 23] && runs.counts == [1, 6, 1, 1, 6, 1, 1, 6, 1])
        #expect(ConditioningRuns(config: Self.longFrameConfig, length: 64, enabled: false).counts == Array(repeating: 1, count: 16))
        #expect(ConditioningRuns.perFrame(config: Self.longFrameConfig) == 3 && ConditioningRuns.perFrame(config: Self.config) == 2)
        let wgSmall = WaveGlowConfig(mel: MelSettings(sampleRate: 16000))
        #expect(ConditioningRuns.perFrame(config: wgSmall) == 3)
        #expect(wgSmall.multiplyAddsPerSample(everyStep: true) - wgSmall.multiplyAddsPerSample()
                == 12 * 2 * 64 * 8 * 80 * 8 * (32 - 3) / 256)
        var wide = wgSmall
        wide.upsampleKernel = 5
        #expect(ConditioningRuns(config: wide, length: 512).counts == [1, 30, 1, 1, 30, 1], "a window of 2 samples each way")
    }

    /// Multiplying the conditioning once per run gives what multiplying it at every step
    /// gives: the loss, z and every gradient (the conditioning layers' and the upsampler's,
    /// which the runs' gradients reach through their representatives) to float32 rounding,
    /// with a source (multiplied at every step) and speakers, in training and in the inverse.
    @Test func frameRateConditioningEqualsEveryStep() {
        let model = Self.model(seed: 19, conditioning: 4)
        let B = 2, F = 5, T = F * model.config.hop
        let audio = GradientCheck.random(B * T, seed: 20, scale: 0.5), mel = GradientCheck.random(B * 5 * F, seed: 21)
        let excitation = Self.sources(model, batch: B, frames: F, seed: 6), who = Self.speakers(model, batch: B)
        var results: [(loss: Double, z: [Float], gradients: [Float], audio: [Float])] = []
        for shared in [true, false] {
            let a = model.makeActivations(batch: B, frames: F, frameRateConditioning: shared)
            #expect(a.runs.count == (shared ? 3 * F : T / 4))
            let loss = model.forward(a, audio: audio, mel: mel, source: excitation, speakers: who).total
            model.store.zeroGradients()
            model.backward(a)
            let z = a.z.array
            var back = [Float](repeating: 0, count: B * T)
            model.inverse(model.makeActivations(batch: B, frames: F, training: false, frameRateConditioning: shared), z: z, mel: mel,
                          source: excitation, speakers: who, audio: &back)
            results.append((loss, z, model.store.gradientArray, back))
        }
        let (shared, everyStep) = (results[0], results[1])
        #expect(abs(shared.loss - everyStep.loss) < 1e-6 * max(1, abs(everyStep.loss)))
        #expect(GradientCheck.worstGoldenError(shared.z, everyStep.z) < 1e-5 && GradientCheck.worstGoldenError(shared.audio, everyStep.audio) < 1e-5)
        for entry in model.store.entries where !entry.name.hasPrefix("waveglow.pitch") {
            let ours = Array(shared.gradients[entry.offset..<(entry.offset + entry.count)])
            let theirs = Array(everyStep.gradients[entry.offset..<(entry.offset + entry.count)]), scale = theirs.map(abs).max() ?? 0
            let error = zip(ours, theirs).map { abs($0 - $1) / max(abs($1), 1e-3 * scale, 1e-30) }.max() ?? 0
            #expect(error < 1e-4, "grad \(entry.name): \(error)")
            #expect(scale > 0, "\(entry.name) has a gradient")
        }
    }

    /// Every flow parameter's (the pitch predictor's aside) gradient of `loss` against
    /// Richardson-extrapolated central differences along a direction per tensor: the worst
    /// relative error of each, the analytic gradient taken from `loss`'s last forward pass.
    static func flowGradientErrors(_ model: WaveGlow, _ a: WaveGlow.Activations, loss: () -> Double) -> [String: Double] {
        _ = loss()
        model.store.zeroGradients()
        model.backward(a)
        let point = model.store.valueArray.map(Double.init)
        let flow = model.store.entries.filter { !$0.name.hasPrefix("waveglow.pitch") }
        let errors = GradientCheck.worstDirectionalError(blocks: flow.map { ($0.name, $0.offset, $0.count) }, point: point,
                                                         analytic: model.store.gradientArray, epsilon: 1e-2) { values in
            model.store.setValues(values.map(Float.init))
            return loss()
        }
        model.store.setValues(point.map(Float.init))
        return errors
    }

    /// Every parameter's gradient of the loss per sample against Richardson-extrapolated
    /// central differences along a direction per tensor (`worstDirectionalError`): the
    /// upsampler, each 1x1 convolution (through the data term and -log|det W|), and every
    /// layer of each coupling's network, with early outputs on the way.
    /// With a source, the conditioning layers' weights on its band are checked too, and with
    /// speakers the embedding table (the pitch predictor, which the loss does not reach, has
    /// its own tests). Linear prediction only changes the flow's input, which no parameter
    /// touches: its Jacobian test covers it.
    @Test(arguments: [0, 1, 2, 4])
    func gradientsMatchFiniteDifferences(conditioning: Int) {
        let model = Self.model(seed: 12, conditioning: conditioning)
        let B = 2, F = 3, T = F * model.config.hop
        let a = model.makeActivations(batch: B, frames: F)
        let audio = GradientCheck.random(B * T, seed: 13, scale: 0.5), mel = GradientCheck.random(B * 5 * F, seed: 14)
        let excitation = Self.sources(model, batch: B, frames: F, seed: 3), who = Self.speakers(model, batch: B)
        let flow = model.store.entries.filter { !$0.name.hasPrefix("waveglow.pitch") }
        #expect(flow.count == model.store.entries.count - (conditioning > 0 ? 2 * 2 + 2 : 0))
        #expect(flow.contains { $0.name == "waveglow.source_gain" } == (conditioning > 0))
        #expect(flow.contains { $0.name == "waveglow.speaker_embedding" } == (conditioning == 2 || conditioning == 4))
        let errors = Self.flowGradientErrors(model, a) { model.forward(a, audio: audio, mel: mel, source: excitation, speakers: who).total }
        #expect(errors.count == flow.count)
        #expect(errors.values.max()! < 2e-3, "\(errors.sorted { $0.value > $1.value }.prefix(4))")
    }

    /// A crop padded past its utterance's end: the loss counts the squeezed steps whose
    /// samples are all real, divided by their samples (z's Gaussian term by hand), its
    /// gradient matches finite differences, a mask of ones changes nothing, and with linear
    /// prediction the padding's excitation is 0, so what the padding holds changes nothing.
    @Test(arguments: [1, 3])
    func paddingIsMaskedFromTheLoss(conditioning: Int) {
        let model = Self.model(seed: 22, conditioning: conditioning)
        let B = 2, F = 4, hop = model.config.hop, T = F * hop, G = model.config.group
        let a = model.makeActivations(batch: B, frames: F)
        var audio = GradientCheck.random(B * T, seed: 23, scale: 0.5)
        let mel = GradientCheck.random(B * 5 * F, seed: 24)
        let excitation = Self.sources(model, batch: B, frames: F, seed: 7)
        // Row 1 ends 3 samples into its third frame: its last 13 samples are padding (zeros),
        // and its steps 4 to 7 hold some.
        var mask = [Float](repeating: 1, count: B * T)
        for t in (2 * hop + 3)..<T { mask[T + t] = 0; audio[T + t] = 0 }
        let ones = [Float](repeating: 1, count: B * T)
        let plain = model.forward(a, audio: audio, mel: mel, source: excitation).total
        #expect(model.forward(a, audio: audio, mel: mel, source: excitation, mask: ones).total == plain)
        let masked = model.forward(a, audio: audio, mel: mel, source: excitation, mask: mask)
        let realSteps = (0..<(B * T / G)).filter { i in (0..<G).allSatisfy { mask[(i / (T / G)) * T + (i % (T / G)) * G + $0] != 0 } }
        #expect(realSteps.count == 2 * T / G - 4)
        var squares = 0.0
        for i in realSteps { for g in 0..<G { let v = Double(a.z[((i / (T / G)) * G + g) * (T / G) + i % (T / G)]); squares += v * v } }
        #expect(abs(masked.gaussian - squares / 2 / Double(realSteps.count * G)) < 1e-9 * max(1, squares))
        #expect(masked.total.isFinite && abs(masked.total - plain) > 1e-6)
        if model.linearPrediction != nil {
            var loud = audio
            for t in (2 * hop + 3)..<T { loud[T + t] = 0.9 }
            #expect(model.forward(a, audio: loud, mel: mel, source: excitation, mask: mask).total == masked.total)
        }
        let errors = Self.flowGradientErrors(model, a) { model.forward(a, audio: audio, mel: mel, source: excitation, mask: mask).total }
        #expect(errors.values.max()! < 2e-3, "\(errors.sorted { $0.value > $1.value }.prefix(4))")
    }

    /// Against an independent implementation of NVIDIA's glow.py equations in PyTorch
    /// float64 (scripts/make_fixtures.py waveglow): z, the loss's three parts and every
    /// parameter's gradient, to 1e-4 (float32 against float64). Measured: 4e-5 at worst.
    @Test func matchesPyTorchReference() throws {
        let file = try SafeTensors.read(Fixtures.path("models/waveglow.safetensors"))
        let model = WaveGlow(config: Self.config)
        for entry in model.store.entries {
            let tensor = try #require(file.tensors[entry.name], "\(entry.name) is in the fixture")
            #expect(tensor.shape == entry.shape, "\(entry.name)")
            model.store.value(entry).update(from: tensor.values, count: entry.count)
        }
        let B = 2, F = 3
        let a = model.makeActivations(batch: B, frames: F)
        let audio = file.tensors["input.audio"]!.values, mel = file.tensors["input.mel"]!.values
        let loss = model.forward(a, audio: audio, mel: mel)
        let reference = file.tensors["output.loss"]!.values
        for (ours, theirs, name) in [(loss.total, reference[0], "loss"), (loss.gaussian, reference[1], "gaussian"),
                                     (loss.logScale, reference[2], "log s"), (loss.logDeterminant, reference[3], "log det")] {
            #expect(abs(ours - Double(theirs)) <= 1e-4 * max(1, abs(Double(theirs))), "\(name): \(ours) against \(theirs)")
        }
        #expect(GradientCheck.worstGoldenError(a.z.array, file.tensors["output.z"]!.values) < 1e-4)
        model.store.zeroGradients()
        model.backward(a)
        for entry in model.store.entries {
            let ours = Array(UnsafeBufferPointer(start: model.store.gradient(entry), count: entry.count))
            let theirs = file.tensors["grad." + entry.name]!.values, scale = theirs.map(abs).max() ?? 0
            // Each element against its own size, or 1% of the tensor's largest where smaller:
            // the conditioning layer's smallest gradients are 4e-4 of its largest, where float32
            // sums round at 1e-7 of the scale.
            let error = zip(ours, theirs).map { abs($0 - $1) / max(abs($1), 1e-2 * scale, 1e-30) }.max() ?? 0
            #expect(error < 1e-4, "grad \(entry.name): \(error)")
        }
    }

    /// A checkpoint holds the config, every weight and the mel normalisation, and loads
    /// back bit-identical; a damaged config or a wrong kind is refused.
    @Test(arguments: conditionings)
    func checkpointRoundTrip(conditioning: Int) throws {
        let model = Self.model(seed: 15, conditioning: conditioning)
        model.melMean = [-5, -4, -3, -2, -1]
        model.melStd = [1, 2, 3, 4, 5]
        let file = model.checkpoint(values: model.store.valueArray, step: 7)
        let loaded = try WaveGlow.load(file, name: "x")
        #expect(loaded.config == model.config && loaded.melMean == model.melMean && loaded.melStd == model.melStd)
        #expect(loaded.store.valueArray.map(\.bitPattern) == model.store.valueArray.map(\.bitPattern))
        var forged = file
        forged.metadata["config"] = file.metadata["config"]!.replacingOccurrences(of: "\"flows\":4", with: "\"flows\":-3")
        #expect(forged.metadata["config"] != file.metadata["config"])
        #expect(throws: ParawaveError.self) { try WaveGlow.load(forged, name: "x") }
        var wrong = file
        wrong.metadata["kind"] = "parawave.teacher"
        #expect(throws: ParawaveError.self) { try WaveGlow.load(wrong, name: "x") }
    }

    /// Rendering in chunks (each with `chunkContext` frames of context on both sides, here
    /// 8: 4 flows x 3 squeezed steps each way x 4 samples, plus the upsampler's sample and a
    /// frame) equals one pass over the utterance, whatever the chunk size, with inference
    /// buffers that every flow's network shares.
    @Test(arguments: conditionings)
    func chunkedSynthesisEqualsOnePass(conditioning: Int) {
        let model = Self.model(seed: 16, conditioning: conditioning)
        let F = 40, T = F * model.config.hop
        let mel = Matrix(rows: 5, columns: F, values: GradientCheck.random(5 * F, seed: 17))
        let z = GradientCheck.random(T, seed: 18)
        let excitation = Self.sources(model, batch: 1, frames: F, seed: 4)
        var whole = [Float](repeating: 0, count: T)
        let speaker = Self.speakers(model, batch: 2)?.last
        model.inverse(model.makeActivations(batch: 1, frames: F), z: z, mel: mel.values, source: excitation, speakers: speaker.map { [$0] },
                      audio: &whole)
        #expect(model.chunkContext == (conditioning == 4 ? 3 : 8))
        for chunk in [1, 7, 16, 40, 100] {
            var done: [Int] = []
            let chunked = model.synthesize(mel: mel, z: z, source: excitation, speaker: speaker, chunkFrames: chunk) { done.append($0) }
            // Relative to the output's peak: with linear prediction the synthesis filter's gain
            // carries the flow's float32 rounding into the waveform.
            let worst = zip(chunked, whole).map { abs($0 - $1) }.max() ?? 1, peak = whole.map(abs).max() ?? 0
            #expect(worst < 1e-5 * max(1, peak), "chunks of \(chunk): \(worst) (peak \(peak))")
            #expect(done.last == T && done == done.sorted())
        }
    }
}
