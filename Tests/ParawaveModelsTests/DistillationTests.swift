import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels
import ParawaveTestSupport
import Testing

/// Each term of the distillation loss, on a tiny student and teacher with fixed noise and a
/// mask, against central finite differences in the student's parameters (one direction per
/// parameter tensor, as in StudentTests: the Float32 forward's rounding swamps element-wise
/// differences).
struct DistillationTests {
    static let B = 2, frames = 6, hop = 4, mels = 3

    /// With `linearPrediction`, both models use the mel's order-3 predictor (the teacher's
    /// weights nudged off the zeros it starts its mean and scale outputs at, and its gain
    /// set, so every path carries gradient).
    /// With `gaussian`, a Gaussian teacher and a student on Gaussian noise (the closed-form KL).
    static func setup(_ settings: Distillation.Settings, linearPrediction: Bool = false, gaussian: Bool = false)
        -> (Distillation, mel: [Float], audio: [Float], mask: [Float], z: [Float], eps: [Float]) {
        let teacher = TeacherTests.tinyTeacher(layers: 3, kernel: 2, cycle: 3, channels: 5, mixtures: gaussian ? 1 : 3, mels: mels, hop: hop, seed: 21,
                                               linearPrediction: linearPrediction ? 3 : 0, logScaleMin: linearPrediction ? -16 : -7,
                                               output: gaussian ? .gaussian : .logistic)
        if linearPrediction {
            let nudge = GradientCheck.random(teacher.store.count, seed: 27, scale: 0.2)
            teacher.store.setValues(zip(teacher.store.valueArray, nudge).map { $0 + $1 })
            teacher.store.value(teacher.store.entry("teacher.lp.log_gain")!)[0] = 2
        }
        let student = StudentTests.tinyStudent(flows: [2, 2], kernel: 2, cycle: 2, channels: 4, mels: mels, hop: hop, seed: 22,
                                               initialScale: linearPrediction ? 1 : 0.1, outputScale: 1,
                                               linearPrediction: linearPrediction ? (3, teacher.linearPredictionGain) : (0, 0),
                                               noise: gaussian ? .gaussian : .logistic)
        student.melMean = teacher.melMean
        student.melStd = teacher.melStd
        let T = frames * hop, n = B * T
        let mel = TeacherTests.mel(mels, B * frames, seed: 23)
        let audio = TeacherTests.signal(n, seed: 24).map { $0 * 0.5 }
        var mask = [Float](repeating: 1, count: n)
        for t in (T - 5)..<T { mask[T + t] = 0 }
        var g = SeededGenerator(seed: 25)
        let z = student.noise(count: n, generator: &g), eps = gaussian ? [] : StudentTests.noise(settings.mcSamples * n, seed: 26)
        return (Distillation(student: student, teacher: teacher, batch: B, frames: frames, settings: settings), mel, audio, mask, z, eps)
    }

    /// The directional derivative over all parameters must match within `tolerance`
    /// (measured: 1e-6 to 2e-3), and each tensor's within 10% (its gradient is often 1e-4 of
    /// the loss, where Float32 rounding and the ReLU kinks of both networks' heads show; a
    /// misrouted gradient is off by order 1).
    func check(_ settings: Distillation.Settings, _ label: String, epsilon: Double = 1e-2, tolerance: Double = 5e-3, linearPrediction: Bool = false,
               gaussian: Bool = false) {
        let (d, mel, audio, mask, z, eps) = Self.setup(settings, linearPrediction: linearPrediction, gaussian: gaussian)
        let store = d.student.store
        func loss() -> Double { d.evaluate(mel: mel, audio: audio, mask: mask, noise: z, samples: eps, gradients: false).loss }
        store.zeroGradients()
        let terms = d.evaluate(mel: mel, audio: audio, mask: mask, noise: z, samples: eps, gradients: true)
        #expect(terms.loss.isFinite && abs(terms.loss - loss()) < 1e-9, "\(label): the loss depends on whether gradients are taken")
        let analytic = store.gradientArray
        #expect(analytic.contains { $0 != 0 }, "\(label): no gradient")
        let point = store.valueArray.map(Double.init)
        let errors = GradientCheck.worstDirectionalError(blocks: store.entries.map { ($0.name, $0.offset, $0.count) } + [("all", 0, store.count)],
                                                         point: point, analytic: analytic, epsilon: epsilon) { values in
            store.setValues(values.map(Float.init))
            return loss()
        }
        store.setValues(point.map(Float.init))
        #expect(errors["all"]! < tolerance, "\(label): relative error \(errors["all"]!) over all parameters")
        let worst = errors.max { $0.value < $1.value }!
        #expect(worst.value < 0.1, "\(label): relative error \(worst.value) in \(worst.key)")
    }

    /// Forward-only buffers (for scoring whole utterances) give the same terms as the training
    /// buffers, to Float32 rounding (the forward-only pass sums in another order).
    @Test func forwardOnlyTermsEqualTraining() throws {
        let spectral = SpectralLoss(kind: .magnitude, resolutions: [.init(nFFT: 16, hop: 4, winLength: 16)])
        let settings = Distillation.Settings(mcSamples: 3, spectral: spectral, spectralWeight: 2)
        let (d, mel, audio, mask, z, eps) = Self.setup(settings)
        let light = Distillation(student: d.student, teacher: d.teacher, batch: Self.B, frames: Self.frames, settings: settings, training: false)
        let a = d.evaluate(mel: mel, audio: audio, mask: mask, noise: z, samples: eps, gradients: false)
        let b = light.evaluate(mel: mel, audio: audio, mask: mask, noise: z, samples: eps, gradients: false)
        #expect(a.loss.isFinite && a.crossEntropy != 0 && a.spectral != 0)
        for (x, y) in [(a.crossEntropy, b.crossEntropy), (a.entropy, b.entropy), (a.spectral, b.spectral), (a.loss, b.loss)] {
            #expect(abs(x - y) <= 1e-5 * max(1, abs(y)), "\(x) vs \(y)")
        }
    }

    /// Also with linear prediction: the gradient passes back through the teacher's input and
    /// the synthesis filter, and into the excitation's scaled samples.
    @Test(arguments: [false, true])
    func crossEntropyGradient(linearPrediction: Bool) {
        var s = Distillation.Settings(mcSamples: 4)
        s.entropyWeight = 0
        check(s, "cross-entropy" + (linearPrediction ? " with linear prediction" : ""), linearPrediction: linearPrediction)
    }

    /// With linear prediction the spectral term sees the filtered waveform.
    @Test func spectralGradientWithLinearPrediction() {
        var s = Distillation.Settings(mcSamples: 1, spectral: SpectralLoss(kind: .power, resolutions: [.init(nFFT: 16, hop: 4, winLength: 16)]),
                                      spectralWeight: 1)
        s.crossEntropyWeight = 0
        s.entropyWeight = 0
        check(s, "spectral with linear prediction", epsilon: 1e-3, linearPrediction: true)
    }

    /// With linear prediction the entropy is the excitation's: mean (log s_tot + log sigma_t) + 2,
    /// and the waveform the student renders is the one distillation scores.
    @Test func linearPredictionTerms() throws {
        let (d, mel, audio, mask, z, eps) = Self.setup(Distillation.Settings(mcSamples: 2), linearPrediction: true)
        let terms = d.evaluate(mel: mel, audio: audio, mask: mask, noise: z, samples: eps, gradients: false)
        let T = Self.frames * Self.hop
        let a = d.student.makeActivations(batch: Self.B, frames: Self.frames)
        d.student.forward(a, noise: z, mel: mel)
        var h = 0.0, count = 0
        for b in 0..<Self.B {
            let frames = try #require(d.student.excitationFrames(mel: mel.withUnsafeBufferPointer { $0.baseAddress! } + b * Self.mels * Self.frames,
                                                                 frames: Self.frames))
            for t in 0..<T where mask[b * T + t] != 0 { h += Double(a.logScale[b * T + t]) + Double(frames.logSigma[t]) + 2; count += 1 }
            if b == 0 {
                let rendered = d.student.synthesize(mel: Matrix(rows: Self.mels, columns: Self.frames, values: Array(mel.prefix(Self.mels * Self.frames))),
                                                    noise: Array(z.prefix(T)))
                var x = Array(a.output.prefix(T))
                x.withUnsafeMutableBufferPointer { d.student.shapeExcitation($0.baseAddress!, length: T, frames: frames) }
                #expect(zip(rendered, x).map { abs($0 - $1) / max(1, abs($1)) }.max()! < 1e-5)
                #expect(zip(rendered, a.output.prefix(T)).map { abs($0 - $1) }.max()! > 1e-3, "the filter changes nothing")
            }
        }
        #expect(abs(terms.entropy - h / Double(count)) < 1e-6, "\(terms.entropy) against \(h / Double(count))")
        #expect(terms.kl.isFinite)
    }

    @Test func entropyGradient() {
        var s = Distillation.Settings(mcSamples: 4)
        s.crossEntropyWeight = 0
        check(s, "entropy")
    }

    @Test func spectralGradients() {
        let small: [SpectralLoss.Kind: [SpectralLoss.Resolution]] = [
            .power: [.init(nFFT: 16, hop: 4, winLength: 16)], .magnitude: [.init(nFFT: 16, hop: 4, winLength: 12)],
            .multiResolution: [.init(nFFT: 16, hop: 4, winLength: 12), .init(nFFT: 32, hop: 8, winLength: 24), .init(nFFT: 8, hop: 2, winLength: 6)],
        ]
        for kind in SpectralLoss.Kind.allCases {
            var s = Distillation.Settings(mcSamples: 1, spectral: SpectralLoss(kind: kind, resolutions: small[kind]!), spectralWeight: 1)
            s.crossEntropyWeight = 0
            s.entropyWeight = 0
            // Magnitudes (square roots, logs) of this tiny signal's quiet bins are sharply
            // curved: smaller steps.
            let step: [SpectralLoss.Kind: Double] = [.power: 1e-2, .magnitude: 1e-3, .multiResolution: 3e-4]
            check(s, "spectral \(kind)", epsilon: step[kind]!)
        }
    }

    @Test func contrastiveGradient() {
        var s = Distillation.Settings(mcSamples: 4, contrastiveWeight: 1)
        s.crossEntropyWeight = 0
        s.entropyWeight = 0
        check(s, "contrastive")
    }

    /// The terms as the loss combines them: KL = H(P_S, P_T) - H(P_S), the cross-entropy
    /// estimate is the mean over samples and draws, and the entropy is mean log s_tot + 2.
    @Test func termsAreConsistent() {
        let (d, mel, audio, mask, z, eps) = Self.setup(Distillation.Settings(mcSamples: 4))
        let terms = d.evaluate(mel: mel, audio: audio, mask: mask, noise: z, samples: eps, gradients: false)
        #expect(abs(terms.loss - terms.kl) < 1e-9)
        // Entropy from the student directly.
        let a = d.student.makeActivations(batch: Self.B, frames: Self.frames)
        d.student.forward(a, noise: z, mel: mel)
        var h = 0.0, count = 0
        for i in mask.indices where mask[i] != 0 { h += Double(a.logScale[i]) + 2; count += 1 }
        #expect(abs(terms.entropy - h / Double(count)) < 1e-6)
        // The student starts broad (s_tot 0.1) against a teacher that is not: the KL is positive.
        #expect(terms.kl > 0, "KL \(terms.kl)")
    }
}

/// The closed-form KL of a Gaussian teacher and a student on Gaussian noise (ClariNet).
struct GaussianDistillationTests {
    /// Each term's gradient against finite differences: the cross-entropy, the entropy and
    /// the log-scale penalty alone, with and without linear prediction (the teacher's
    /// parameters depend on the student's past samples, so the gradient passes back through
    /// the teacher's input as well as into mu_q and log s_q).
    @Test(arguments: [false, true])
    func termGradients(linearPrediction: Bool) {
        let suffix = linearPrediction ? " with linear prediction" : ""
        var crossEntropy = Distillation.Settings(mcSamples: 0)
        crossEntropy.entropyWeight = 0
        DistillationTests().check(crossEntropy, "closed-form cross-entropy" + suffix, linearPrediction: linearPrediction, gaussian: true)
        var entropy = Distillation.Settings(mcSamples: 0)
        entropy.crossEntropyWeight = 0
        DistillationTests().check(entropy, "Gaussian entropy" + suffix, linearPrediction: linearPrediction, gaussian: true)
        var penalty = Distillation.Settings(mcSamples: 0)
        penalty.crossEntropyWeight = 0
        penalty.entropyWeight = 0
        penalty.logScalePenaltyWeight = 4
        DistillationTests().check(penalty, "log-scale penalty" + suffix, linearPrediction: linearPrediction, gaussian: true)
        var all = Distillation.Settings(mcSamples: 0)
        all.logScalePenaltyWeight = 4
        DistillationTests().check(all, "the KL and the penalty" + suffix, linearPrediction: linearPrediction, gaussian: true)
    }

    /// The terms equal the Gaussian KL's formulas applied to the two models' own passes: the
    /// student's (sigma_t mu_tot, log sigma_t + log s_tot) and the teacher's (mu, log s) run on
    /// the student's waveform in the excitation domain, over the masked samples; the KL is
    /// positive and the penalty is lambda times the mean squared log-scale gap.
    @Test(arguments: [false, true])
    func termsAreTheFormulas(linearPrediction: Bool) throws {
        var settings = Distillation.Settings(mcSamples: 0)
        settings.logScalePenaltyWeight = 4
        let (d, mel, audio, mask, z, eps) = DistillationTests.setup(settings, linearPrediction: linearPrediction, gaussian: true)
        #expect(d.closedForm)
        let terms = d.evaluate(mel: mel, audio: audio, mask: mask, noise: z, samples: eps, gradients: false)
        let B = DistillationTests.B, frames = DistillationTests.frames, T = frames * DistillationTests.hop, C = DistillationTests.mels
        let s = d.student.makeActivations(batch: B, frames: frames)
        d.student.forward(s, noise: z, mel: mel)
        var x = Array(s.output)
        var logSigma = [Float](repeating: 0, count: B * T)
        for b in 0..<B {
            guard let frames = d.student.excitationFrames(mel: mel.withUnsafeBufferPointer { $0.baseAddress! } + b * C * frames, frames: frames)
            else { continue }
            x.withUnsafeMutableBufferPointer { d.student.shapeExcitation($0.baseAddress! + b * T, length: T, frames: frames) }
            for t in 0..<T { logSigma[b * T + t] = frames.logSigma[t] }
        }
        let t = d.teacher.makeActivations(batch: B, frames: frames)
        d.teacher.forward(t, audio: x, mel: mel, centred: !linearPrediction)
        var ce = 0.0, h = 0.0, penalty = 0.0, count = 0.0
        let floor = Double(d.teacher.config.logScaleMin)
        for b in 0..<B {
            for i in (b * T)..<((b + 1) * T) where mask[i] != 0 {
                let k = GaussianKL.terms(muQ: Double(exp(logSigma[i])) * Double(s.mean[s.mean.startIndex + i]),
                                         logScaleQ: Double(logSigma[i]) + Double(s.logScale[i]),
                                         muP: Double(t.params[b * 2 * T + i - b * T]), logScaleP: Double(t.params[b * 2 * T + T + i - b * T]),
                                         logScaleMin: floor, penaltyWeight: 4)
                ce += k.crossEntropy; h += k.entropy; penalty += k.penalty; count += 1
            }
        }
        #expect(abs(terms.crossEntropy - ce / count) < 1e-5 * max(1, abs(ce / count)), "\(terms.crossEntropy) against \(ce / count)")
        #expect(abs(terms.entropy - h / count) < 1e-5 * max(1, abs(h / count)), "\(terms.entropy) against \(h / count)")
        #expect(abs(terms.logScalePenalty - penalty / count) < 1e-5 * max(1, penalty / count) && terms.logScalePenalty > 0)
        #expect(terms.kl > 0 && abs(terms.loss - (terms.kl + terms.logScalePenalty)) < 1e-9)
    }
}
