import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels
import ParawaveTestSupport
import Testing

/// A 3-layer residual stack (dilations 1, 2, 4, kernel 3, R = 8, mel conditioning) against
/// a PyTorch model written from DESIGN.md (scripts/make_fixtures.py): skip output, loss,
/// every parameter gradient and the input gradient, within 1e-4 relative.
struct WaveNetStackTests {
    /// A config decoded from JSON as a checkpoint's is: the hop and the mel bands come from
    /// the model's mel settings, not the stack's JSON.
    static func decoded(_ json: Data, hop: Int, mels: Int) -> WaveNetStackConfig? {
        guard var config = try? JSONDecoder().decode(WaveNetStackConfig.self, from: json), config.hop == 0 && config.conditionChannels == 0 else { return nil }
        let problem = config.derive(from: MelSettings(sampleRate: 16000, nFFT: 64, hopLength: hop, nMels: mels))
        return problem == nil ? config : nil
    }

    @Test func matchesPyTorchReference() throws {
        let file = try SafeTensors.read(Fixtures.path("models/stack3.safetensors"))
        let meta = { (key: String) in Int(file.metadata[key]!)! }
        let config = WaveNetStackConfig(layers: meta("layers"), cycle: 10, kernelSize: meta("kernel"), residualChannels: meta("residual"),
                                        gateOutChannels: meta("gated"), skipChannels: meta("skip"), conditionChannels: meta("mels"),
                                        hop: meta("hop"), upsampleKernel: meta("upsample_kernel"))
        let B = meta("batch"), frames = meta("frames")
        let store = ParameterStore()
        let stack = WaveNetStack(config: config, prefix: "stack", store: store)
        for entry in store.entries {
            let values = try file.tensor(entry.name, shape: entry.shape)
            store.value(entry).update(from: values, count: values.count)
        }
        let x = file.tensors["input.x"]!.values, mel = file.tensors["input.mel"]!.values, proj = file.tensors["input.proj"]!.values
        let activations = stack.makeActivations(batch: B, frames: frames)
        stack.forward(activations, x: x, mel: mel, store: store)

        func expectClose(_ ours: [Float], _ reference: [Float], _ label: String) {
            let worst = GradientCheck.worstGoldenError(ours, reference)
            #expect(worst <= 1e-4, "\(label): worst relative error \(worst)")
        }
        expectClose(activations.skip, file.tensors["output.skip"]!.values, "skip output")
        let loss = zip(activations.skip, proj).map { Double($0) * Double($1) }.reduce(0, +)
        let expectedLoss = Double(file.tensors["output.loss"]!.values[0])
        #expect(abs(loss - expectedLoss) <= 1e-4 * abs(expectedLoss))

        store.zeroGradients()
        var dX = [Float](repeating: 0, count: x.count)
        stack.backward(activations, dSkip: proj, dX: &dX, x: x, mel: mel, store: store)
        for entry in store.entries {
            let ours = Array(UnsafeBufferPointer(start: store.gradient(entry), count: entry.count))
            expectClose(ours, file.tensors["grad." + entry.name]!.values, "gradient of \(entry.name)")
        }
        expectClose(dX, file.tensors["grad.x"]!.values, "gradient of x")
    }

    /// Speaker conditioning, and the transposed-convolution upsampler: every parameter's
    /// gradient (the per-layer projections W_g and the upsampler included), the gradient with
    /// respect to the speaker embeddings and to x, against central
    /// finite differences along a direction per tensor (Float32 forward, step 1e-2, Richardson
    /// extrapolated; L = sum(skip * proj) is smooth). And the forward-only pass (time tiles,
    /// stacked taps) equals the training pass to Float32 rounding.
    @Test(arguments: [WaveNetStackConfig.Upsampler.nearest, .transposed])
    func speakerConditioningGradients(upsampler: WaveNetStackConfig.Upsampler) {
        let config = WaveNetStackConfig(layers: 3, cycle: 3, kernelSize: 3, residualChannels: 5, gateOutChannels: 4, skipChannels: 6,
                                        conditionChannels: 3, hop: 4, upsampler: upsampler, speakerChannels: 3)
        let store = ParameterStore()
        let stack = WaveNetStack(config: config, prefix: "s", store: store)
        #expect(store.entry("s.upsample.weight")?.shape == [upsampler == .transposed ? 8 : 3, 3, 3])
        // The config round-trips through its JSON (checkpoints store it so).
        let json = try! JSONEncoder().encode(config)
        #expect(Self.decoded(json, hop: config.hop, mels: 3) == config)
        #expect(String(decoding: json, as: UTF8.self).contains("transposed") == (upsampler == .transposed))
        #expect(store.entry("s.layers.2.speaker.weight")?.shape == [1, 8, 3])
        var generator = SeededGenerator(seed: 5)
        stack.initialise(store, generator: &generator)
        let B = 2, frames = 5, T = frames * 4, E = 3
        let x = GradientCheck.random(B * T, seed: 6), mel = GradientCheck.random(B * 3 * frames, seed: 7)
        let proj = GradientCheck.random(B * 6 * T, seed: 8), embedding = GradientCheck.random(B * E, seed: 9, scale: 1.5)
        let a = stack.makeActivations(batch: B, frames: frames)
        func loss(_ e: [Float]) -> Double {
            stack.forward(a, x: x, mel: mel, speaker: e, store: store)
            return zip(a.skip, proj).map { Double($0) * Double($1) }.reduce(0, +)
        }
        _ = loss(embedding)
        let light = stack.makeActivations(batch: B, frames: frames, training: false)
        stack.forward(light, x: x, mel: mel, speaker: embedding, store: store)
        let worst = zip(light.skip, a.skip).map { abs($0 - $1) / max(1, abs($1)) }.max()!
        #expect(worst <= 1e-5, "the forward-only pass differs from the training pass by \(worst)")
        store.zeroGradients()
        var dX = [Float](repeating: 0, count: B * T), dE = [Float](repeating: 0, count: B * E)
        stack.backward(a, dSkip: proj, dX: &dX, x: x, mel: mel, speaker: embedding, dSpeaker: &dE, store: store)
        let n = store.count
        let analytic = store.gradientArray + dE
        let point = (store.valueArray + embedding).map(Double.init)
        let blocks = store.entries.map { ($0.name, $0.offset, $0.count) } + [("speaker embeddings", n, B * E)]
        let errors = GradientCheck.worstDirectionalError(blocks: blocks, point: point, analytic: analytic, epsilon: 1e-2) { values in
            store.setValues(values[0..<n].map(Float.init))
            return loss(values[n...].map(Float.init))
        }
        store.setValues(point[0..<n].map(Float.init))
        #expect(errors.values.max()! < 2e-3, "worst relative error \(errors.max { $0.value < $1.value }!)")
        #expect(errors.keys.contains("s.layers.0.speaker.weight") && errors.keys.contains("speaker embeddings"))

        let xGradient = GradientCheck.worstDirectionalError(blocks: [("x", 0, B * T)], point: x.map(Double.init), analytic: dX, epsilon: 1e-2) { values in
            stack.forward(a, x: values.map(Float.init), mel: mel, speaker: embedding, store: store)
            return zip(a.skip, proj).map { Double($0) * Double($1) }.reduce(0, +)
        }
        #expect(xGradient["x"]! < 2e-3, "gradient of x: \(xGradient["x"]!)")
    }

    /// Source conditioning (a sample-rate excitation through each layer's W_s): every
    /// parameter's gradient (W_s included) and the gradient with respect to x against central
    /// finite differences, as for speakers; the config round-trips; and the forward-only pass
    /// equals the training pass, with the conditioning at frame rate (hop >= kernel) or per sample.
    @Test(arguments: [4, 2])
    func sourceConditioningGradients(hop: Int) {
        let config = WaveNetStackConfig(layers: 3, cycle: 3, kernelSize: 3, residualChannels: 5, gateOutChannels: 4, skipChannels: 6,
                                        conditionChannels: 3, hop: hop, sourceChannels: 2)
        let store = ParameterStore()
        let stack = WaveNetStack(config: config, prefix: "s", store: store)
        #expect(store.entry("s.layers.1.source.weight")?.shape == [1, 8, 2])
        let json = try! JSONEncoder().encode(config)
        #expect(Self.decoded(json, hop: config.hop, mels: 3) == config)
        #expect(!String(decoding: try! JSONEncoder().encode(WaveNetStackConfig(layers: 1, cycle: 1, kernelSize: 2, residualChannels: 2, gateOutChannels: 2, skipChannels: 2,
                                                                              conditionChannels: 2, hop: 4)), as: UTF8.self).contains("source"),
                "a config without a source is written as before")
        var generator = SeededGenerator(seed: 15)
        stack.initialise(store, generator: &generator)
        let B = 2, frames = 6, T = frames * hop
        let x = GradientCheck.random(B * T, seed: 16), mel = GradientCheck.random(B * 3 * frames, seed: 17)
        let source = GradientCheck.random(B * 2 * T, seed: 18, scale: 1.4), proj = GradientCheck.random(B * 6 * T, seed: 19)
        let a = stack.makeActivations(batch: B, frames: frames)
        func loss() -> Double {
            stack.forward(a, x: x, mel: mel, source: source, store: store)
            return zip(a.skip, proj).map { Double($0) * Double($1) }.reduce(0, +)
        }
        _ = loss()
        let before = WaveNetStack.forwardTile
        WaveNetStack.forwardTile = 5
        let light = stack.makeActivations(batch: B, frames: frames, training: false)
        WaveNetStack.forwardTile = before
        #expect(light.frameRate == (hop >= 3))
        stack.forward(light, x: x, mel: mel, source: source, store: store)
        let worst = zip(light.skip, a.skip).map { abs($0 - $1) / max(1, abs($1)) }.max()!
        #expect(worst <= 1e-5, "the forward-only pass differs from the training pass by \(worst)")
        // The source matters: without its term the output changes.
        var silent = source
        for i in silent.indices { silent[i] = 0 }
        stack.forward(light, x: x, mel: mel, source: silent, store: store)
        #expect(zip(light.skip, a.skip).contains { abs($0 - $1) > 1e-3 })

        store.zeroGradients()
        var dX = [Float](repeating: 0, count: B * T)
        stack.backward(a, dSkip: proj, dX: &dX, x: x, mel: mel, source: source, store: store)
        let errors = GradientCheck.worstDirectionalError(blocks: store.entries.map { ($0.name, $0.offset, $0.count) },
                                                         point: store.valueArray.map(Double.init), analytic: store.gradientArray, epsilon: 1e-2) { values in
            store.setValues(values.map(Float.init))
            return loss()
        }
        #expect(errors.values.max()! < 2e-3, "worst relative error \(errors.max { $0.value < $1.value }!)")
        #expect(errors.keys.contains("s.layers.2.source.weight"))
    }

    @Test func causalInTheAudioInput() {
        let config = WaveNetStackConfig(layers: 4, cycle: 4, kernelSize: 2, residualChannels: 4, gateOutChannels: 4, skipChannels: 3,
                                        conditionChannels: 2, hop: 8)
        #expect(config.receptiveField == 16)
        let store = ParameterStore()
        let stack = WaveNetStack(config: config, prefix: "s", store: store)
        var generator = SeededGenerator(seed: 1)
        stack.initialise(store, generator: &generator)
        let frames = 6, T = frames * 8
        var x = GradientCheck.random(T, seed: 2)
        let mel = GradientCheck.random(2 * frames, seed: 3)
        let a = stack.makeActivations(batch: 1, frames: frames)
        stack.forward(a, x: x, mel: mel, store: store)
        let before = a.skip
        x[30] += 0.5
        stack.forward(a, x: x, mel: mel, store: store)
        for c in 0..<3 {
            for t in 0..<30 { #expect(a.skip[c * T + t] == before[c * T + t], "t \(t) saw the future") }
            #expect(a.skip[c * T + 30] != before[c * T + 30])
        }
    }

    /// The forward-only pass computes the nearest upsampler's c_up, and each layer's W_c c_up,
    /// at `upsampleKernel` positions per frame when hop >= kernel (and at every sample
    /// otherwise): it equals the training pass for odd and even kernels, with edges at both
    /// ends of the utterance and tiles that cut frames.
    @Test(arguments: [(3, 4), (5, 6), (4, 5), (5, 5), (3, 2)])
    func frameRateConditioningEqualsTraining(kernel: Int, hop: Int) {
        let config = WaveNetStackConfig(layers: 3, cycle: 2, kernelSize: 2, residualChannels: 4, gateOutChannels: 3, skipChannels: 5,
                                        conditionChannels: 3, hop: hop, upsampleKernel: kernel)
        let store = ParameterStore()
        let stack = WaveNetStack(config: config, prefix: "s", store: store)
        var generator = SeededGenerator(seed: 12)
        stack.initialise(store, generator: &generator)
        let B = 2, frames = 7, T = frames * hop
        let x = GradientCheck.random(B * T, seed: 13), mel = GradientCheck.random(B * 3 * frames, seed: 14, scale: 2)
        let full = stack.makeActivations(batch: B, frames: frames)
        stack.forward(full, x: x, mel: mel, store: store)
        let before = WaveNetStack.forwardTile
        WaveNetStack.forwardTile = 7
        defer { WaveNetStack.forwardTile = before }
        let light = stack.makeActivations(batch: B, frames: frames, training: false)
        #expect(light.frameRate == (hop >= kernel))
        stack.forward(light, x: x, mel: mel, store: store)
        let worst = zip(light.skip, full.skip).map { abs($0 - $1) / max(1, abs($1)) }.max()!
        #expect(worst <= 1e-5, "kernel \(kernel), hop \(hop): worst difference \(worst)")
    }
}
