import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels
import ParawaveTestSupport
import Testing

/// The teacher with a single discretised Gaussian output (ClariNet), and its student on
/// Gaussian noise: configs, the likelihood's gradients, the generator against the parallel
/// pass, and the closed-form distillation's wiring.
struct GaussianTeacherTests {
    static func teacher(linearPrediction: Bool, source: Bool = false, seed: UInt64 = 7) -> Teacher {
        TeacherTests.tinyTeacher(layers: 3, kernel: 2, cycle: 3, channels: 6, mixtures: 1, mels: 5, hop: 8, seed: seed,
                                 source: source ? SineSource(harmonics: 3, ramp: 4) : nil, linearPrediction: linearPrediction ? 6 : 0,
                                 logScaleMin: linearPrediction ? -16 : -7, output: .gaussian)
    }

    /// A logistic config writes no `output` key and a student no `noise` key, so older
    /// checkpoints and their recipes stay byte-identical; a Gaussian one writes and reads back
    /// its output; a Gaussian with several components or an unknown output is refused.
    @Test func configs() throws {
        let logistic = TeacherTests.tinyTeacher().config
        let logisticJSON = String(decoding: try JSONEncoder().encode(logistic), as: UTF8.self)
        #expect(!logisticJSON.contains("\"output\"") && logistic.outputChannels == 9 && logistic.meanChannel(1) == 4 && logistic.logScaleChannel(2) == 8)
        let gaussian = Self.teacher(linearPrediction: true).config
        let json = try JSONEncoder().encode(gaussian)
        #expect(String(decoding: json, as: UTF8.self).contains("\"output\":\"gaussian\""))
        #expect(try JSONDecoder().decode(TeacherConfig.self, from: json) == gaussian)
        #expect(gaussian.outputChannels == 2 && gaussian.components == 1 && gaussian.meanChannel(0) == 0 && gaussian.logScaleChannel(0) == 1)
        var several = gaussian
        several.mixtures = 3
        #expect(several.problems().contains { $0.contains("output gaussian") })
        let unknown = String(decoding: json, as: UTF8.self).replacingOccurrences(of: "\"gaussian\"", with: "\"cauchy\"")
        #expect(throws: (any Error).self) { try JSONDecoder().decode(TeacherConfig.self, from: Data(unknown.utf8)) }
        let student = StudentTests.tinyStudent().config
        #expect(!String(decoding: try JSONEncoder().encode(student), as: UTF8.self).contains("\"noise\"") && student.noise.unitEntropy == 2)
        let gaussianStudent = StudentTests.tinyStudent(noise: .gaussian).config
        #expect(try JSONDecoder().decode(StudentConfig.self, from: try JSONEncoder().encode(gaussianStudent)) == gaussianStudent)
        #expect(abs(gaussianStudent.noise.unitEntropy - 0.5 * log(2 * Double.pi * M_E)) < 1e-12)
    }

    /// A checkpoint of a Gaussian teacher loads back bit-identical, with its output kind.
    @Test func checkpointRoundTrip() throws {
        let teacher = Self.teacher(linearPrediction: true, source: true)
        let loaded = try Teacher.load(teacher.checkpoint(values: teacher.store.valueArray, step: 4), name: "gaussian")
        #expect(loaded.config == teacher.config && loaded.config.output == .gaussian)
        #expect(loaded.store.valueArray.map(\.bitPattern) == teacher.store.valueArray.map(\.bitPattern))
    }

    /// The NLL's gradient against finite differences for every parameter, with and without
    /// the mel's linear prediction (the gain included); untrained, the excitation's mean is
    /// near 0 and its log-scale the white-noise deviation's (not the logistic's scale).
    @Test(arguments: [false, true])
    func likelihoodGradients(linearPrediction: Bool) throws {
        let hop = 8, B = 2, frames = 4, T = frames * hop
        let teacher = Self.teacher(linearPrediction: linearPrediction)
        let x = TeacherTests.signal(B * T, seed: 3), mel = TeacherTests.mel(5, B * frames, seed: 4)
        let a = teacher.makeActivations(batch: B, frames: frames)
        if let lp = teacher.linearPrediction {
            teacher.forward(a, audio: x, mel: mel, centred: false)
            var worstMean: Float = 0, worstLogScale: Float = 0
            for b in 0..<B {
                for t in 0..<T {
                    let logSigma = a.lpLogRMS[b * frames + lp.frame(ofSample: t, frames: frames)] + Float(lp.logDeviationPerRMS)
                    worstMean = max(worstMean, abs(a.params[b * 2 * T + t] / exp(logSigma)))
                    worstLogScale = max(worstLogScale, abs(a.params[b * 2 * T + T + t] - logSigma))
                }
            }
            #expect(worstMean < 0.5 && worstLogScale < 0.2, "untrained means \(worstMean) scales, log-scales off by \(worstLogScale)")
            teacher.store.value(teacher.store.entry("teacher.lp.log_gain")!)[0] = 2
        }
        let nudge = GradientCheck.random(teacher.store.count, seed: 5, scale: 0.2)
        teacher.store.setValues(zip(teacher.store.valueArray, nudge).map { $0 + $1 })
        func loss() -> Double {
            teacher.forward(a, audio: x, mel: mel)
            return teacher.loss(a, audio: x).nll
        }
        let count = teacher.loss(a, audio: x).count
        #expect(loss().isFinite)
        teacher.store.zeroGradients()
        teacher.backward(a, audio: x, count: count)
        let analytic = teacher.store.gradientArray
        let point = teacher.store.valueArray.map(Double.init)
        let errors = GradientCheck.worstDirectionalError(blocks: teacher.store.entries.map { ($0.name, $0.offset, $0.count) } + [("all", 0, teacher.store.count)],
                                                         point: point, analytic: analytic, epsilon: 2e-2) { values in
            teacher.store.setValues(values.map(Float.init))
            return loss()
        }
        teacher.store.setValues(point.map(Float.init))
        #expect(errors["all"]! < 5e-3, "relative error \(errors["all"]!) over all parameters")
        let worst = errors.filter { $0.key != "teacher.lp.log_gain" }.max { $0.value < $1.value }!
        #expect(worst.value < 0.05, "relative error \(worst.value) in \(worst.key)")
        if let gain = teacher.store.entry("teacher.lp.log_gain") {
            func lossAt(_ value: Float) -> Double {
                teacher.store.value(gain)[0] = value
                return loss()
            }
            let g0 = Float(point[gain.offset]), h: Float = 1e-2
            let numeric = (lossAt(g0 + h) - lossAt(g0 - h)) / Double(2 * h)
            _ = lossAt(g0)
            #expect(abs(numeric - Double(analytic[gain.offset])) < 1e-2 * max(1, abs(numeric)), "gain: \(numeric) against \(analytic[gain.offset])")
        }
    }

    /// The sample-by-sample generator computes the parallel pass's (mu, log s) under teacher
    /// forcing, with linear prediction and a source; its draws are seeded, finite and in [-1, 1].
    @Test func incrementalEqualsParallelAndDrawsAreSeeded() {
        let hop = 8
        let teacher = Self.teacher(linearPrediction: true, source: true)
        teacher.store.value(teacher.store.entry("teacher.lp.log_gain")!)[0] = 0.3
        let frameCounts = [7, 5]
        let mels = frameCounts.enumerated().map { i, f in Matrix(rows: 5, columns: f, values: TeacherTests.mel(5, f, seed: UInt64(10 + i))) }
        let audio = frameCounts.enumerated().map { i, f in TeacherTests.signal(f * hop, seed: UInt64(20 + i)) }
        let sources = frameCounts.enumerated().map { i, f in
            teacher.sourceSignal(f0: (0..<f).map { $0 % 4 == 3 ? 0 : Float(900 + 150 * i + 40 * $0) }, samples: f * hop, initialPhase: 0.5)!
        }
        var incremental = frameCounts.map { [Float](repeating: .nan, count: 2 * $0 * hop) }
        let generator = TeacherGenerator(teacher: teacher, batch: 2, blockFrames: 2, threads: 1)
        generator.teacherForced(mels: mels, audio: audio, sources: sources) { b, t, theta in
            for j in 0..<2 { incremental[b][j * frameCounts[b] * hop + t] = theta[j] }
        }
        for (b, frames) in frameCounts.enumerated() {
            let a = teacher.makeActivations(batch: 1, frames: frames)
            teacher.forward(a, audio: audio[b], mel: mels[b].values, source: sources[b])
            let worst = zip(incremental[b], a.params).map { abs($0 - $1) / max(1, abs($1)) }.max()!
            #expect(worst <= 1e-5, "utterance \(b): worst difference \(worst)")
        }
        let one = generator.generate(mels: mels, sources: sources, seed: 3), again = generator.generate(mels: mels, sources: sources, seed: 3)
        let other = generator.generate(mels: mels, sources: sources, seed: 4)
        #expect(one == again && one != other)
        #expect(one.allSatisfy { $0.allSatisfy { $0.isFinite && abs($0) <= 1 } } && one.map(\.count) == frameCounts.map { $0 * hop })
    }
}
