import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels
import ParawaveTestSupport
import Testing
import ParawaveTraining

struct ScratchTests {
    @Test func predictorOnDemo() throws {
        let env = ProcessInfo.processInfo.environment
        let batch = Int(env["PB"] ?? "4")!, lr = Double(env["PLR"] ?? "0.001")!, steps = Int(env["PSTEPS"] ?? "1200")!
        let layers = Int(env["PL"] ?? "4")!, channels = Int(env["PC"] ?? "64")!, kernel = Int(env["PK"] ?? "5")!
        let data = try TrainingData("/work/main/data/demo", audio: MelSettings(sampleRate: 16000), progress: false)
        let store = ParameterStore()
        let config = PitchPredictorConfig(melChannels: 80, layers: layers, channels: channels, kernelSize: kernel)
        let p = PitchPredictor(config: config, prefix: "p", store: store)
        var g = SeededGenerator(seed: 1)
        p.initialise(store, generator: &g)
        let adam = Adam(store: store, clipNorm: 10, emaDecay: Float(env["PEMA"] ?? "0.999")!)
        let sampler = CropSampler(data.train, cropSamples: 128 * 256, hop: 256, logFloor: 1e-5)
        let a = p.makeActivations(batch: batch, frames: 128)
        var input = [Float](repeating: 0, count: batch * 80 * 128)
        func validate() -> PitchMetrics {
            var acc = PitchMetrics.Accumulator()
            for u in data.validation { acc.add(reference: u.f0!, generated: p.track(mel: u.mel, mean: data.melMean, std: data.melStd, store: store).f0) }
            return acc.metrics
        }
        var trainAcc = PitchMetrics.Accumulator()
        defer {
            for u in data.validation {
                let m = PitchMetrics.compare(reference: u.f0!, generated: p.track(mel: u.mel, mean: data.melMean, std: data.melStd, store: store).f0)
                let voiced = u.f0!.filter { $0 > 0 }
                print("utt", u.id, m.frames, m.bothVoiced, m.within50 ?? -1, m.rmseCents ?? -1, m.voicingError, voiced.reduce(0, +) / Float(max(voiced.count, 1)))
            }
        }
        for step in 1...steps {
            let crops = sampler.next(batch: batch, generator: &g)
            let mask = crops.frameMask
            for b in 0..<batch { for c in 0..<80 { for f in 0..<128 {
                let i = (b * 80 + c) * 128 + f
                input[i] = mask[b * 128 + f] == 0 ? 0 : (crops.mel[i] - data.melMean[c]) / data.melStd[c]
            } } }
            p.forward(a, mel: input, store: store)
            _ = p.loss(a, f0: crops.f0, mask: mask)
            store.zeroGradients()
            p.backward(a, mel: input, store: store)
            adam.update(store, learningRate: lr)
            if step % 400 == 0 {
                let saved = store.valueArray
                store.setValues(adam.ema)
                print("step \(step) ema", validate())
                store.setValues(saved)
                print("step \(step) raw", validate())
                for u in data.train.prefix(200) { trainAcc.add(reference: u.f0!, generated: p.track(mel: u.mel, mean: data.melMean, std: data.melStd, store: store).f0) }
                print("step \(step) train", trainAcc.metrics); trainAcc = PitchMetrics.Accumulator()
            }
        }
    }
}
