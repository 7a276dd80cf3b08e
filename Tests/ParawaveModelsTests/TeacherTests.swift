import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels
import ParawaveTestSupport
import Testing

struct TeacherTests {
    static func tinyTeacher(layers: Int = 3, kernel: Int = 3, cycle: Int = 2, channels: Int = 6, mixtures: Int = 3, mels: Int = 5,
                            hop: Int = 8, bits: Int = 16, seed: UInt64 = 7, speakers: [String] = [],
                            upsampler: WaveNetStackConfig.Upsampler = .nearest, source: SineSource? = nil, linearPrediction: Int = 0,
                            logScaleMin: Float = -7, output: SampleDistribution = .logistic) -> Teacher {
        let stack = WaveNetStackConfig(layers: layers, cycle: cycle, kernelSize: kernel, residualChannels: channels, gateOutChannels: channels,
                                       skipChannels: channels, conditionChannels: mels, hop: hop, upsampler: upsampler,
                                       speakerChannels: speakers.isEmpty ? 0 : 3, sourceChannels: source == nil ? 0 : 1)
        let mel = MelSettings(sampleRate: 16000, nFFT: 4 * hop, hopLength: hop, nMels: mels)
        let teacher = Teacher(config: TeacherConfig(stack: stack, mixtures: mixtures, bits: bits, logScaleMin: logScaleMin, mel: mel, speakers: speakers,
                                                    source: source, linearPrediction: linearPrediction, output: output))
        teacher.initialise(seed: seed)
        var g = SeededGenerator(seed: seed + 1)
        teacher.melMean = (0..<mels).map { _ in g.uniformOpen() - 5 }
        teacher.melStd = (0..<mels).map { _ in 0.5 + g.uniformOpen() }
        return teacher
    }

    /// A smooth waveform in [-0.8, 0.8] and a log-mel of the right shape.
    static func signal(_ T: Int, seed: UInt64) -> [Float] {
        let noise = GradientCheck.random(T, seed: seed, scale: 0.05)
        return (0..<T).map { 0.6 * sin(Float($0) * 0.21 + Float(seed)) + noise[$0] }
    }

    static func mel(_ bands: Int, _ frames: Int, seed: UInt64) -> [Float] {
        GradientCheck.random(bands * frames, seed: seed, scale: 2).map { $0 - 5 }
    }

    /// The whole teacher (normalisation, shift, stack, head, 16-bit mixture NLL over a mask)
    /// against a PyTorch float64 model written from DESIGN.md (scripts/make_fixtures.py):
    /// mixture parameters, loss, every parameter gradient and the gradient with respect to the
    /// shifted input, within 1e-4 relative. The inputs include x = -1 and x = 1. The second
    /// fixture is the same teacher conditioned on 3 speakers (embedding table and per-layer
    /// projections; the batch is by speakers 2 and 0).
    @Test(arguments: ["teacher", "teacher_speakers"])
    func matchesPyTorchReference(fixture: String) throws {
        let file = try SafeTensors.read(Fixtures.path("models/\(fixture).safetensors"))
        let meta = { (key: String) in Int(file.metadata[key] ?? "0")! }
        let channels = meta("channels"), hop = meta("hop"), B = meta("batch"), frames = meta("frames")
        let stack = WaveNetStackConfig(layers: meta("layers"), cycle: 10, kernelSize: meta("kernel"), residualChannels: channels,
                                       gateOutChannels: channels, skipChannels: channels, conditionChannels: meta("mels"), hop: hop,
                                       speakerChannels: meta("speaker_channels"))
        let teacher = Teacher(config: TeacherConfig(stack: stack, mixtures: meta("mixtures"), bits: meta("bits"),
                                                    mel: MelSettings(sampleRate: 16000, nFFT: 16, hopLength: hop, nMels: meta("mels")),
                                                    speakers: (0..<meta("speakers")).map { "speaker\($0)" }))
        try teacher.loadValues(from: file, name: "fixture")
        #expect(teacher.store.entries.contains { $0.name.hasSuffix("speaker.weight") } == (meta("speakers") > 0))
        let x = file.tensors["input.x"]!.values, mel = file.tensors["input.mel"]!.values, mask = file.tensors["input.mask"]!.values
        let speakers = file.tensors["input.speakers"].map { $0.values.map { Int($0) } }
        let a = teacher.makeActivations(batch: B, frames: frames)
        teacher.forward(a, audio: x, mel: mel, speakers: speakers)
        func expectClose(_ ours: [Float], _ reference: [Float], _ label: String, tolerance: Float = 1e-4) {
            let worst = GradientCheck.worstGoldenError(ours, reference)
            #expect(worst <= tolerance, "\(label): worst relative error \(worst)")
        }
        expectClose(a.params, file.tensors["output.params"]!.values, "mixture parameters")
        let (nll, count) = teacher.loss(a, audio: x, mask: mask)
        let expected = Double(file.tensors["output.loss"]!.values[0])
        #expect(abs(nll - expected) <= 1e-5 * abs(expected), "loss \(nll) vs \(expected)")
        #expect(count == mask.filter { $0 != 0 }.count)
        teacher.store.zeroGradients()
        var dInput = [Float](repeating: 0, count: x.count)
        teacher.backward(a, audio: x, mask: mask, count: count, dInput: &dInput)
        // Float32 against float64: 1e-4, except that the speaker fixture's draw puts one
        // element of a skip weight's gradient at 1.7e-4 (the speaker terms themselves are within 1e-4).
        for e in teacher.store.entries {
            expectClose(Array(UnsafeBufferPointer(start: teacher.store.gradient(e), count: e.count)), file.tensors["grad." + e.name]!.values,
                        "gradient of \(e.name)", tolerance: fixture == "teacher" || e.name.contains("speaker") ? 1e-4 : 2e-4)
        }
        // The input gradient crosses every layer twice (forward and back) in Float32: 2e-4 (measured 1.4e-4).
        expectClose(dInput, file.tensors["grad.input"]!.values, "gradient of the shifted input", tolerance: 2e-4)
    }

    /// Fast WaveNet generation under teacher forcing reproduces the parallel pass's mixture
    /// parameters to 1e-5 (relative to max(1, |value|)), for a batch of utterances of different
    /// lengths, across several conditioning blocks, with dilations up to 8 and kernel 3, on one
    /// worker and on two (rows split between them).
    /// With speaker conditioning the utterances are by different speakers; the fourth case
    /// upsamples with a transposed convolution (whose reach crosses the blocks); the last ones
    /// are conditioned on a sine source made from a pitch track with voiced and unvoiced frames;
    /// the last two centre and scale the mixture by the mel's linear prediction (order 6).
    @Test(arguments: [(1, false, false, false, false), (2, false, false, false, false), (2, true, false, false, false),
                      (2, false, true, false, false), (1, false, false, true, false), (2, true, false, true, false),
                      (1, false, false, false, true), (2, true, false, true, true)])
    func incrementalEqualsParallel(threads: Int, speakers: Bool, transposed: Bool, source: Bool, linearPrediction: Bool) {
        let hop = 8
        let teacher = Self.tinyTeacher(layers: 4, kernel: 3, cycle: 4, channels: 8, mixtures: 3, mels: 5, hop: hop,
                                       speakers: speakers ? ["x", "y", "z"] : [], upsampler: transposed ? .transposed : .nearest,
                                       source: source ? SineSource(harmonics: 3, ramp: 4) : nil, linearPrediction: linearPrediction ? 6 : 0)
        if linearPrediction { teacher.store.value(teacher.store.entry("teacher.lp.log_gain")!)[0] = 0.3 }
        let who = speakers ? [2, 1] : nil
        let frameCounts = [9, 6]
        let mels = frameCounts.enumerated().map { i, f in Matrix(rows: 5, columns: f, values: Self.mel(5, f, seed: UInt64(10 + i))) }
        let audio = frameCounts.enumerated().map { i, f in Self.signal(f * hop, seed: UInt64(20 + i)) }
        let sources = source ? frameCounts.enumerated().map { i, f in
            teacher.sourceSignal(f0: (0..<f).map { $0 % 4 == 3 ? 0 : Float(900 + 150 * i + 40 * $0) }, samples: f * hop, initialPhase: 0.5)!
        } : nil
        var incremental = frameCounts.map { [Float](repeating: .nan, count: 9 * $0 * hop) }
        let generator = TeacherGenerator(teacher: teacher, batch: 3, blockFrames: 2, threads: threads)
        generator.teacherForced(mels: mels, audio: audio, speakers: who, sources: sources) { b, t, theta in
            for j in 0..<9 { incremental[b][j * frameCounts[b] * hop + t] = theta[j] }
        }
        for (b, frames) in frameCounts.enumerated() {
            let a = teacher.makeActivations(batch: 1, frames: frames)
            teacher.forward(a, audio: audio[b], mel: mels[b].values, speakers: who.map { [$0[b]] }, source: sources?[b])
            var worst: Float = 0
            for (u, v) in zip(incremental[b], a.params) { worst = max(worst, abs(u - v) / max(1, abs(v))) }
            #expect(worst <= 1e-5, "utterance \(b): worst difference \(worst)")
        }
    }

    /// Float16 storage of the per-sample weights: the teacher-forced mixture parameters move
    /// only by the weights' rounding, and the audio's NLL by under 1e-4 nats per sample.
    /// A teacher with a weight beyond Float16's range keeps Float32.
    @Test func halfPrecisionStaysClose() {
        let hop = 8, frames = 12, T = frames * hop, M = 4
        let teacher = Self.tinyTeacher(layers: 6, kernel: 3, cycle: 3, channels: 32, mixtures: M, mels: 5, hop: hop)
        let mels = [Matrix(rows: 5, columns: frames, values: Self.mel(5, frames, seed: 3))]
        let audio = [Self.signal(T, seed: 4)]
        func forced(_ precision: PackedMatrix.Precision) -> [Float] {
            let generator = TeacherGenerator(teacher: teacher, batch: 1, precision: precision)
            #expect(generator.precision == precision)
            var params = [Float](repeating: .nan, count: 3 * M * T)
            generator.teacherForced(mels: mels, audio: audio) { _, t, theta in
                for j in 0..<(3 * M) { params[j * T + t] = theta[j] }
            }
            return params
        }
        let single = forced(.single), half = forced(.half)
        var worst: Float = 0
        for (a, b) in zip(single, half) { worst = max(worst, abs(a - b)) }
        let mixture = DiscretizedMixture(mixtures: M, bits: 16, logScaleMin: teacher.config.logScaleMin)
        func nll(_ params: [Float]) -> Double {
            var logProb = [Float](repeating: 0, count: T)
            mixture.forward(logProb: &logProb, params: params, x: audio[0], batch: 1, length: T)
            return -logProb.reduce(0.0) { $0 + Double($1) } / Double(T)
        }
        let difference = abs(nll(single) - nll(half))
        // Measured: parameters within 5.8e-5 of each other, NLL 8e-6 nats apart.
        #expect(worst > 0 && worst <= 1e-3, "worst parameter difference \(worst)")
        #expect(difference <= 1e-4, "NLL difference \(difference) nats per sample")

        let huge = Self.tinyTeacher(hop: hop)
        huge.store.values[0] = 1e5
        #expect(TeacherGenerator(teacher: huge, batch: 1, precision: .half).precision == .single)
    }

    /// Sampling is deterministic for a seed, stays in [-1, 1], and a lower temperature narrows it.
    @Test func samplingIsSeededAndBounded() {
        let teacher = Self.tinyTeacher(hop: 8)
        let mel = [Matrix(rows: 5, columns: 4, values: Self.mel(5, 4, seed: 1))]
        let generator = TeacherGenerator(teacher: teacher, batch: 1, threads: 2)
        let first = generator.generate(mels: mel, seed: 5)[0]
        #expect(TeacherGenerator(teacher: teacher, batch: 1, threads: 1).generate(mels: mel, seed: 5)[0] == first,
                "one worker and two draw the same samples")
        let again = generator.generate(mels: mel, seed: 5)[0]
        let other = generator.generate(mels: mel, seed: 6)[0]
        #expect(first.count == 32)
        #expect(first == again)
        #expect(first != other)
        #expect(first.allSatisfy { abs($0) <= 1 })
    }

    /// With linear prediction a draw past full scale is clipped in the audio only: the
    /// prediction and the stack go on from the draws themselves. Teacher-forcing the generator
    /// with its own unclipped draws gives back every step's mixture exactly; with the clipped
    /// audio, where clipping happened, it does not.
    @Test func linearPredictionGeneratesFromUnclippedDraws() throws {
        let hop = 8, frames = 6, T = frames * hop, M = 3
        let teacher = Self.tinyTeacher(layers: 3, kernel: 2, cycle: 3, channels: 6, mixtures: M, mels: 5, hop: hop, linearPrediction: 6,
                                       logScaleMin: -16)
        // A gain at which some of the draws (with this untrained network and mel) overshoot.
        teacher.store.value(try #require(teacher.store.entry("teacher.lp.log_gain")))[0] = -2
        let mels = [Matrix(rows: 5, columns: frames, values: Self.mel(5, frames, seed: 11))]
        let generator = TeacherGenerator(teacher: teacher, batch: 1, precision: .single)
        var params = [Float](repeating: .nan, count: 3 * M * T), draws = [Float](repeating: .nan, count: T)
        let audio = generator.generate(mels: mels, seed: 9) { _, t, theta, x in
            for j in 0..<(3 * M) { params[j * T + t] = theta[j] }
            draws[t] = x
        }[0]
        let clipped = draws.filter { abs($0) > 1 }.count
        #expect(clipped >= 3 && clipped < T / 2, "\(clipped) of \(T) draws past full scale")
        #expect(audio == draws.map { max(-1, min(1, $0)) })
        func forced(_ audio: [Float]) -> Float {
            var worst: Float = 0
            generator.teacherForced(mels: mels, audio: [audio]) { _, t, theta in
                for j in 0..<(3 * M) { worst = max(worst, abs(theta[j] - params[j * T + t]) / max(1, abs(params[j * T + t]))) }
            }
            return worst
        }
        #expect(forced(draws) <= 1e-5)
        #expect(forced(audio) > 1e-2)
    }

    /// A checkpoint round-trips every value bit-exactly, with its config and normalisation.
    @Test func checkpointRoundTrip() throws {
        let teacher = Self.tinyTeacher()
        let file = teacher.checkpoint(values: teacher.store.valueArray, step: 12)
        let path = Fixtures.temporaryDirectory() + "/teacher.safetensors"
        try file.write(to: path)
        let loaded = try Teacher.load(try SafeTensors.read(path), name: path)
        #expect(loaded.config == teacher.config)
        #expect(loaded.store.valueArray.map(\.bitPattern) == teacher.store.valueArray.map(\.bitPattern))
        #expect(loaded.melMean == teacher.melMean && loaded.melStd == teacher.melStd)
        #expect(file.metadata["step"] == "12")

        var wrong = file
        wrong.metadata["kind"] = "parawave.student"
        #expect(throws: ParawaveError.self) { try Teacher.load(wrong, name: "x") }
        var damaged = file
        damaged.tensors["teacher.head.1.bias"]!.values[0] = .nan
        #expect(throws: ParawaveError.self) { try Teacher.load(damaged, name: "x") }

        // A source-conditioned teacher records its source; a config claiming a source without
        // the channels for it is refused.
        let sourced = Self.tinyTeacher(source: SineSource(harmonics: 5, amplitude: .equal, ramp: 32))
        let sourcedFile = sourced.checkpoint(values: sourced.store.valueArray, step: 3)
        let reloaded = try Teacher.load(sourcedFile, name: "sourced")
        #expect(reloaded.config.source == SineSource(harmonics: 5, amplitude: .equal, ramp: 32) && reloaded.config.stack.sourceChannels == 1)
        #expect(reloaded.store.valueArray.map(\.bitPattern) == sourced.store.valueArray.map(\.bitPattern))
        var claiming = file
        claiming.metadata["config"] = file.metadata["config"]!.replacingOccurrences(of: "\"speakers\"", with: "\"source\":{\"harmonics\":8,\"amplitude\":\"inverse\",\"ramp\":64},\"speakers\"")
        if !claiming.metadata["config"]!.contains("source") {
            claiming.metadata["config"] = String(file.metadata["config"]!.dropLast()) + ",\"source\":{\"harmonics\":8,\"amplitude\":\"inverse\",\"ramp\":64}}"
        }
        #expect(throws: ParawaveError.self) { try Teacher.load(claiming, name: "claiming") }
    }

    /// A checkpoint's config is validated on load: absurd or contradictory values are refused
    /// with a message naming them, before anything is allocated. The stack's hop and mel bands
    /// are not stored (the mel settings hold them); an older checkpoint that stored copies
    /// loads when they agree and is refused when they do not.
    @Test func checkpointConfigIsValidatedOnLoad() throws {
        let teacher = Self.tinyTeacher()
        let file = teacher.checkpoint(values: teacher.store.valueArray, step: 1)
        let json = file.metadata["config"]!
        #expect(!json.contains("\"hop\"") && !json.contains("conditionChannels") && json.contains("\"gatedChannels\":6"))
        func message(_ edit: (String) -> String) -> String? {
            var changed = file
            changed.metadata["config"] = edit(json)
            do {
                _ = try Teacher.load(changed, name: "edited")
                return nil
            } catch {
                return "\(error)"
            }
        }
        func replacing(_ old: String, _ new: String) -> (String) -> String {
            { text in
                #expect(text.contains(old), "\(old) not in \(text)")
                return text.replacingOccurrences(of: old, with: new)
            }
        }
        #expect(message { $0 } == nil)
        let stack = "\"stack\":{"
        // Copies written by older versions: agreeing ones load, others are refused.
        #expect(message(replacing(stack, stack + "\"hop\":8,\"conditionChannels\":5,")) == nil)
        #expect(message(replacing(stack, stack + "\"hop\":4,"))?.contains("hop (4) disagrees with its mel hop_length (8)") == true)
        #expect(message(replacing(stack, stack + "\"conditionChannels\":7,"))?.contains("n_mels (5)") == true)
        for (old, new, named) in [("\"layers\":3", "\"layers\":1000000000", "layers 1000000000"), ("\"layers\":3", "\"layers\":-3", "layers -3"),
                                  ("\"cycle\":2", "\"cycle\":0", "cycle 0"), ("\"hopLength\":8", "\"hopLength\":0", "hop_length 0"),
                                  ("\"bits\":16", "\"bits\":99", "bits 99"), ("\"mixtures\":3", "\"mixtures\":0", "mixtures 0"),
                                  ("\"gatedChannels\":6", "\"gatedChannels\":0", "gateOutChannels 0")] {
            let m = message(replacing(old, new))
            #expect(m?.contains(named) == true && m?.contains("edited") == true, "\(new): \(m ?? "loaded")")
        }
        #expect(message(replacing("\"mixtures\":3,", ""))?.contains("no 'mixtures'") == true)
        #expect(message { _ in "{" }?.contains("unreadable") == true)
    }

    /// Linear prediction from the mel: the NLL's gradient matches finite differences for every
    /// parameter, the learned log gain included; the gain offsets every component's log-scale
    /// by the same amount; an untrained teacher's means sit on the prediction, and centring off
    /// (distillation's excitation domain) removes exactly the prediction.
    @Test func linearPredictionGradientsAndOffsets() throws {
        let hop = 8, B = 2, frames = 4, T = frames * hop
        let teacher = Self.tinyTeacher(layers: 2, kernel: 2, cycle: 2, channels: 4, mixtures: 2, mels: 5, hop: hop, linearPrediction: 6,
                                       logScaleMin: -16)
        let gain = try #require(teacher.store.entry("teacher.lp.log_gain"))
        #expect(teacher.store.value(gain)[0] == 0 && teacher.store.entries.last?.name == "teacher.lp.log_gain")
        let x = Self.signal(B * T, seed: 3), mel = Self.mel(5, B * frames, seed: 4)
        let a = teacher.makeActivations(batch: B, frames: frames)
        func loss() -> Double {
            teacher.forward(a, audio: x, mel: mel)
            return teacher.loss(a, audio: x).nll
        }
        // Untrained, the excitation's means are spread within half a scale of 0 and its scale
        // is the white-noise value, both give or take the head's small weights.
        teacher.forward(a, audio: x, mel: mel, centred: false)
        let lp = try #require(teacher.linearPrediction)
        var startMean: Float = 0, startLogScale: Float = 0
        for b in 0..<B {
            for t in 0..<T {
                let logSigma = a.lpLogRMS[b * frames + lp.frame(ofSample: t, frames: frames)] + Float(lp.logScalePerRMS)
                for m in 0..<2 {
                    startMean = max(startMean, abs(a.params[(b * 6 + 2 + m) * T + t] / exp(logSigma)))
                    startLogScale = max(startLogScale, abs(a.params[(b * 6 + 4 + m) * T + t] - logSigma))
                }
            }
        }
        #expect(startMean < 0.7 && startLogScale < 0.2, "untrained means \(startMean) scales, log-scales off by \(startLogScale)")
        // Away from the zeros of the start (where some blocks' gradients vanish), and with a wide
        // scale, which keeps the density smooth at the finite differences' step.
        let nudge = GradientCheck.random(teacher.store.count, seed: 5, scale: 0.2)
        teacher.store.setValues(zip(teacher.store.valueArray, nudge).map { $0 + $1 })
        teacher.store.value(gain)[0] = 3
        let count = teacher.loss(a, audio: x).count
        _ = loss()
        teacher.store.zeroGradients()
        teacher.backward(a, audio: x, count: count)
        let analytic = teacher.store.gradientArray
        #expect(analytic[gain.offset] != 0)
        let point = teacher.store.valueArray.map(Double.init)
        let errors = GradientCheck.worstDirectionalError(blocks: teacher.store.entries.map { ($0.name, $0.offset, $0.count) } + [("all", 0, teacher.store.count)],
                                                         point: point,
                                                         analytic: analytic, epsilon: 5e-2) { values in
            teacher.store.setValues(values.map(Float.init))
            return loss()
        }
        teacher.store.setValues(point.map(Float.init))
        // The gain (one value, which a directional check cannot probe) by a central difference.
        func lossAt(gain value: Double) -> Double {
            var moved = point
            moved[gain.offset] = value
            teacher.store.setValues(moved.map(Float.init))
            return loss()
        }
        let h = 1e-2, numeric = (lossAt(gain: point[gain.offset] + h) - lossAt(gain: point[gain.offset] - h)) / (2 * h)
        teacher.store.setValues(point.map(Float.init))
        #expect(abs(numeric - Double(analytic[gain.offset])) <= 1e-3 * abs(numeric), "log gain: \(analytic[gain.offset]) against \(numeric)")
        // All parameters at once within 5e-3, each block within 10% (the float32 loss's reach
        // for blocks deep in the stack, which matchesPyTorchReference checks closely).
        #expect(errors["all"]! < 5e-3, "relative error \(errors["all"]!) over all parameters")
        #expect(errors.values.max()! < 0.1, "worst relative error \(errors.max { $0.value < $1.value }!)")

        // Centred and not: the means differ by the prediction exactly, the log-scales not at all.
        teacher.forward(a, audio: x, mel: mel)
        let centred = a.params, prediction = a.lpPrediction
        #expect(prediction.contains { abs($0) > 1e-3 })
        teacher.forward(a, audio: x, mel: mel, centred: false)
        let M = 2
        var worstMean: Float = 0, worstScale: Float = 0
        for b in 0..<B {
            for m in 0..<M {
                for t in 0..<T {
                    let mean = (b * 3 * M + M + m) * T + t, scale = mean + M * T
                    worstMean = max(worstMean, abs(centred[mean] - a.params[mean] - prediction[b * T + t]))
                    worstScale = max(worstScale, abs(centred[scale] - a.params[scale]))
                }
            }
        }
        #expect(worstMean < 1e-6 && worstScale == 0, "means \(worstMean), log-scales \(worstScale)")
    }

    /// A training crop that continues inside its utterance: the stack reads an excitation of 0
    /// for its first P samples, whose prediction lacks the samples before the crop, and from
    /// then on exactly what a crop with a known (silent) history reads; rows that do not
    /// continue are untouched.
    @Test func continuingRowsReadNoPartPrediction() throws {
        let hop = 8, B = 2, frames = 5, T = frames * hop, P = 6
        let teacher = Self.tinyTeacher(layers: 2, kernel: 2, cycle: 2, channels: 4, mixtures: 2, mels: 5, hop: hop, linearPrediction: P,
                                       logScaleMin: -16)
        let x = Self.signal(B * T, seed: 7), mel = Self.mel(5, B * frames, seed: 8)
        let a = teacher.makeActivations(batch: B, frames: frames)
        teacher.forward(a, audio: x, mel: mel)
        let known = a.input
        #expect(known[1..<(P + 1)].contains { abs($0) > 1e-3 }, "the part-prediction's error is not 0 to begin with")
        teacher.forward(a, audio: x, mel: mel, continues: [false, true])
        #expect(Array(a.input[0..<T]) == Array(known[0..<T]))
        for t in 0..<T {
            let expected = t >= 1 && t <= P ? 0 : known[T + t]
            #expect(a.input[T + t] == expected, "position \(t): \(a.input[T + t]) against \(expected)")
        }
    }
}
