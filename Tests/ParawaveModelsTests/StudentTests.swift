import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels
import ParawaveTestSupport
import Testing

struct StudentTests {
    static func tinyStudent(flows: [Int] = [2, 3], kernel: Int = 2, cycle: Int = 2, channels: Int = 4, mels: Int = 3, hop: Int = 4,
                            seed: UInt64 = 11, initialScale: Float = 0.5, outputScale: Float = 1, speakers: [String] = [],
                            speakerChannels: Int = 3, upsampler: WaveNetStackConfig.Upsampler = .nearest, source: SineSource? = nil,
                            logScaleRange: ClosedRange<Float> = -7...2, linearPrediction: (order: Int, gain: Float) = (0, 0),
                            sourceGain: Float = 0, noise: SampleDistribution = .logistic) -> Student {
        let stacks = flows.map {
            WaveNetStackConfig(layers: $0, cycle: cycle, kernelSize: kernel, residualChannels: channels, gateOutChannels: channels,
                               skipChannels: channels, conditionChannels: mels, hop: hop, upsampler: upsampler,
                               speakerChannels: speakers.isEmpty ? 0 : speakerChannels, sourceChannels: source == nil ? 0 : 1)
        }
        let student = Student(config: StudentConfig(flows: stacks, logScaleMin: logScaleRange.lowerBound, logScaleMax: logScaleRange.upperBound,
                                                    mel: MelSettings(sampleRate: 16000, nFFT: 4 * hop, hopLength: hop, nMels: mels),
                                                    speakers: speakers, source: source, linearPrediction: linearPrediction.order,
                                                    linearPredictionGain: linearPrediction.gain, sourceGain: sourceGain, noise: noise))
        student.initialise(seed: seed, initialScale: initialScale, outputScale: outputScale)
        var g = SeededGenerator(seed: seed + 1)
        student.melMean = (0..<mels).map { _ in g.uniformOpen() - 5 }
        student.melStd = (0..<mels).map { _ in 0.5 + g.uniformOpen() }
        return student
    }

    /// sum_i wx_i x_i + wm_i mu_tot_i + wl_i log s_tot_i: a scalar of every output, whose
    /// gradient is (wx, wm, wl), for the finite-difference checks.
    static func weightedSum(_ a: Student.Activations, wx: [Float], wm: [Float], wl: [Float]) -> Double {
        var sum = 0.0
        for i in wx.indices {
            sum += Double(wx[i]) * Double(a.output[a.output.startIndex + i]) + Double(wm[i]) * Double(a.mean[a.mean.startIndex + i])
                + Double(wl[i]) * Double(a.logScale[i])
        }
        return sum
    }

    static func noise(_ count: Int, seed: UInt64) -> [Float] {
        var g = SeededGenerator(seed: seed)
        return Student.noise(count: count, generator: &g)
    }

    /// The student's per-sample (mu_tot, log s_tot) and output equal a direct composition of
    /// its flows: each flow run on its own (shifted input, stack, head, clamp), then
    /// s_tot = prod_k s^k, mu_tot = sum_k mu^k prod_(j>k) s^j, x = z s_tot + mu_tot.
    @Test func outputIsTheCompositionOfItsFlows() {
        let student = Self.tinyStudent()
        let B = 2, frames = 5, T = frames * 4, C = 3
        let z = Self.noise(B * T, seed: 3), mel = TeacherTests.mel(C, B * frames, seed: 4)
        let a = student.makeActivations(batch: B, frames: frames)
        student.forward(a, noise: z, mel: mel)

        // Direct composition, flow by flow, from the public pieces.
        var normalised = [Float](repeating: 0, count: mel.count)
        for b in 0..<B { for c in 0..<C { for f in 0..<frames {
            let i = (b * C + c) * frames + f
            normalised[i] = (mel[i] - student.melMean[c]) / student.melStd[c]
        } } }
        var x = z.map(Double.init)
        var mus: [[Double]] = [], logScales: [[Double]] = []
        for k in student.flows.indices {
            var shifted = [Float](repeating: 0, count: B * T)
            for b in 0..<B { for t in 1..<T { shifted[b * T + t] = Float(x[b * T + t - 1]) } }
            let sa = student.flows[k].makeActivations(batch: B, frames: frames)
            student.flows[k].forward(sa, x: shifted, mel: normalised, store: student.store)
            let ha = student.heads[k].makeActivations(batch: B, length: T)
            var out = [Float](repeating: 0, count: B * 2 * T)
            student.heads[k].forward(ha, skip: sa.skip, out: &out, store: student.store, batch: B, length: T)
            var mu = [Double](repeating: 0, count: B * T), logS = mu
            for b in 0..<B { for t in 0..<T {
                mu[b * T + t] = Double(out[2 * b * T + t])
                logS[b * T + t] = Double(min(max(out[(2 * b + 1) * T + t], -7), 2))
            } }
            for i in 0..<(B * T) { x[i] = x[i] * exp(logS[i]) + mu[i] }
            mus.append(mu)
            logScales.append(logS)
        }
        var worst = (mean: 0.0, logScale: 0.0, output: 0.0)
        let K = mus.count
        for i in 0..<(B * T) {
            var logTotal = 0.0, meanTotal = 0.0
            for k in 0..<K {
                logTotal += logScales[k][i]
                var product = 1.0
                for j in (k + 1)..<K { product *= exp(logScales[j][i]) }
                meanTotal += mus[k][i] * product
            }
            worst.mean = max(worst.mean, abs(Double(a.mean[a.mean.startIndex + i]) - meanTotal))
            worst.logScale = max(worst.logScale, abs(Double(a.logScale[i]) - logTotal))
            let composed = Double(z[i]) * exp(logTotal) + meanTotal
            worst.output = max(worst.output, abs(Double(a.output[a.output.startIndex + i]) - composed), abs(x[i] - composed))
        }
        #expect(worst.mean < 1e-5 && worst.logScale < 1e-5 && worst.output < 1e-5, "\(worst)")
    }

    /// mu_tot and s_tot at t depend on z_<t only; x_t on z_<=t.
    @Test func autoregressiveInTheNoise() {
        let student = Self.tinyStudent()
        let frames = 6, T = frames * 4
        var z = Self.noise(T, seed: 5)
        let mel = TeacherTests.mel(3, frames, seed: 6)
        let a = student.makeActivations(batch: 1, frames: frames)
        student.forward(a, noise: z, mel: mel)
        let (x0, mu0, s0) = (Array(a.output), Array(a.mean), a.logScale)
        z[13] += 1
        student.forward(a, noise: z, mel: mel)
        let (x1, mu1, s1) = (Array(a.output), Array(a.mean), a.logScale)
        for t in 0..<13 { #expect(x1[t] == x0[t], "x_\(t) saw the future") }
        for t in 0...13 { #expect(mu1[t] == mu0[t] && s1[t] == s0[t], "the distribution at \(t) saw z_13") }
        #expect(x1[13] != x0[13] && (mu1[14] != mu0[14] || s1[14] != s0[14]))
    }

    /// Every parameter tensor's gradient of L = sum(a x) + sum(b mu_tot) + sum(c log s_tot)
    /// against a central finite difference along a direction inside that tensor (the forward
    /// runs in Float32, so element-wise differences drown in rounding; step 1e-2, Richardson
    /// extrapolated). Measured worst: 7e-4 relative; a wrong gradient term gives errors of
    /// order 1. (The heads' ReLUs and the log-scale clamp make the loss piecewise smooth: a
    /// check point must keep their inputs farther from the kinks than the step; this one does.
    /// The speaker terms are checked on the stack, where there is no kink.)
    @Test func gradientsMatchFiniteDifferences() {
        let student = Self.tinyStudent()
        let B = 2, frames = 3, T = frames * 4
        let z = Self.noise(B * T, seed: 7), mel = TeacherTests.mel(3, B * frames, seed: 8)
        let wx = GradientCheck.random(B * T, seed: 9), wm = GradientCheck.random(B * T, seed: 10), wl = GradientCheck.random(B * T, seed: 12)
        let a = student.makeActivations(batch: B, frames: frames)
        func loss() -> Double {
            student.forward(a, noise: z, mel: mel)
            return Self.weightedSum(a, wx: wx, wm: wm, wl: wl)
        }
        _ = loss()
        student.store.zeroGradients()
        student.backward(a, dOutput: wx, dMean: wm, dLogScale: wl)
        let analytic = student.store.gradientArray
        let point = student.store.valueArray.map(Double.init)
        let errors = GradientCheck.worstDirectionalError(blocks: student.store.entries.map { ($0.name, $0.offset, $0.count) }, point: point, analytic: analytic, epsilon: 1e-2) { values in
            student.store.setValues(values.map(Float.init))
            return loss()
        }
        student.store.setValues(point.map(Float.init))
        #expect(errors.values.max()! < 2e-3, "worst relative error \(errors.max { $0.value < $1.value }!)")
    }

    /// Speaker conditioning: chunked rendering still equals one pass, each speaker's output
    /// differs from the others' on the same mel and noise, and the checkpoint keeps the
    /// speakers and round-trips bit-exactly.
    @Test func speakerConditioning() throws {
        let student = Self.tinyStudent(flows: [3, 2], kernel: 3, speakers: ["p225", "p226"], speakerChannels: 4)
        let frames = 23, hop = 4
        let mel = Matrix(rows: 3, columns: frames, values: TeacherTests.mel(3, frames, seed: 31))
        let z = Self.noise(frames * hop, seed: 32)
        let first = student.synthesize(mel: mel, noise: z, speaker: 0, chunkFrames: frames)
        let second = student.synthesize(mel: mel, noise: z, speaker: 1, chunkFrames: frames)
        #expect(zip(first, second).map { abs($0 - $1) }.max()! > 1e-3, "the speaker changes nothing")
        for chunk in [1, 7] {
            let chunked = student.synthesize(mel: mel, noise: z, speaker: 1, chunkFrames: chunk)
            #expect(zip(second, chunked).map { abs($0 - $1) }.max()! <= 1e-6, "chunks of \(chunk)")
        }
        let a = student.makeActivations(batch: 2, frames: frames)
        student.forward(a, noise: z + z, mel: mel.values + mel.values, speakers: [0, 1])
        // The forward-only pass sums in another order (stacked taps, tiles): Float32 rounding apart.
        let both = first + second
        #expect(zip(a.output, both).map { abs($0 - $1) / max(1, abs($1)) }.max()! <= 1e-5,
                "the training pass differs from the forward-only pass")

        let data = student.checkpoint(values: student.store.valueArray, step: 3).encode()
        let loaded = try Student.load(try SafeTensors.decode(data), name: "s")
        #expect(loaded.config.speakers == ["p225", "p226"] && loaded.config == student.config)
        #expect(loaded.store.valueArray.map(\.bitPattern) == student.store.valueArray.map(\.bitPattern))
        #expect(loaded.checkpoint(values: loaded.store.valueArray, step: 3).encode() == data)
    }

    /// Rendering in chunks (with the context of `chunkContext`) equals one pass over the whole
    /// utterance, for chunk sizes that do and do not divide the length, with either upsampler.
    @Test(arguments: [WaveNetStackConfig.Upsampler.nearest, .transposed])
    func chunkedSynthesisEqualsOnePass(upsampler: WaveNetStackConfig.Upsampler) {
        let student = Self.tinyStudent(flows: [3, 2, 2], kernel: 3, upsampler: upsampler)
        let frames = 41, hop = 4
        let mel = Matrix(rows: 3, columns: frames, values: TeacherTests.mel(3, frames, seed: 13))
        let z = Self.noise(frames * hop, seed: 14)
        let whole = student.synthesize(mel: mel, noise: z, chunkFrames: frames)
        #expect(student.chunkContext.left >= (student.config.receptiveField + 1 + hop - 1) / hop)
        for chunk in [1, 5, 8, 40] {
            let chunked = student.synthesize(mel: mel, noise: z, chunkFrames: chunk)
            let worst = zip(whole, chunked).map { abs($0 - $1) }.max()!
            #expect(chunked.count == whole.count && worst <= 1e-6, "chunks of \(chunk): worst difference \(worst)")
        }
        // The forward-only pass equals the training pass to Float32 rounding (it sums in
        // another order).
        let a = student.makeActivations(batch: 1, frames: frames)
        student.forward(a, noise: z, mel: mel.values)
        #expect(zip(a.output, whole).map { abs($0 - $1) / max(1, abs($1)) }.max()! <= 1e-5)
    }

    /// Source conditioning: every flow sees the sine source. Its gradients match finite
    /// differences through the flows, chunked rendering equals one pass (the source is cut
    /// with the noise), the forward-only pass equals the training pass, the source changes the
    /// output, and the checkpoint records it and round-trips bit-exactly.
    @Test func sourceConditioning() throws {
        let student = Self.tinyStudent(flows: [3, 2], kernel: 3, source: SineSource(harmonics: 4, ramp: 8))
        let frames = 23, hop = 4
        let mel = Matrix(rows: 3, columns: frames, values: TeacherTests.mel(3, frames, seed: 41))
        let z = Self.noise(frames * hop, seed: 42)
        let f0: [Float] = (0..<frames).map { (f: Int) -> Float in f % 6 == 5 ? 0 : Float(700 + 37 * f) }
        let source = try #require(student.sourceSignal(f0: f0, samples: frames * hop, initialPhase: 1))
        let whole = student.synthesize(mel: mel, noise: z, source: source, chunkFrames: frames)
        for chunk in [1, 7] {
            let chunked = student.synthesize(mel: mel, noise: z, source: source, chunkFrames: chunk)
            #expect(zip(whole, chunked).map { abs($0 - $1) }.max()! <= 1e-6, "chunks of \(chunk)")
        }
        let silent = student.synthesize(mel: mel, noise: z, source: [Float](repeating: 0, count: source.count), chunkFrames: frames)
        #expect(zip(whole, silent).map { abs($0 - $1) }.max()! > 1e-3, "the source changes nothing")
        let a = student.makeActivations(batch: 1, frames: frames)
        student.forward(a, noise: z, mel: mel.values, source: source)
        #expect(zip(a.output, whole).map { abs($0 - $1) / max(1, abs($1)) }.max()! <= 1e-5, "the training pass differs from the forward-only pass")

        // Finite differences of every flow's W_s in the setting of `gradientsMatchFiniteDifferences`,
        // with a source. (The other parameters are checked there and in the stack's tests: with
        // a source, a head ReLU's kink falls within a 1e-2 step of this point for a skip bias,
        // whose derivative agrees with the analytic one at a 1e-3 step.) Measured worst: 2.1e-3
        // relative, through two flows in Float32.
        let fdStudent = Self.tinyStudent(source: SineSource(harmonics: 4, ramp: 8), logScaleRange: -30...30)
        let B = 2, short = 3, n = B * short * hop
        let fdZ = Self.noise(n, seed: 7), fdMel = TeacherTests.mel(3, B * short, seed: 8)
        let fdF0: [Float] = [900, 1300, 0]
        let fdSource = fdStudent.sourceSignal(f0: fdF0, samples: short * hop)! + fdStudent.sourceSignal(f0: fdF0.reversed(), samples: short * hop, initialPhase: 2)!
        let wx = GradientCheck.random(n, seed: 9), wm = GradientCheck.random(n, seed: 10), wl = GradientCheck.random(n, seed: 12)
        let b = fdStudent.makeActivations(batch: B, frames: short)
        func loss() -> Double {
            fdStudent.forward(b, noise: fdZ, mel: fdMel, source: fdSource)
            return Self.weightedSum(b, wx: wx, wm: wm, wl: wl)
        }
        _ = loss()
        fdStudent.store.zeroGradients()
        fdStudent.backward(b, dOutput: wx, dMean: wm, dLogScale: wl)
        let point = fdStudent.store.valueArray.map(Double.init)
        let sourceBlocks = fdStudent.store.entries.filter { $0.name.hasSuffix(".source.weight") }
        #expect(sourceBlocks.count == 5)
        let errors = GradientCheck.worstDirectionalError(blocks: sourceBlocks.map { ($0.name, $0.offset, $0.count) }, point: point,
                                                         analytic: fdStudent.store.gradientArray, epsilon: 1e-2) { values in
            fdStudent.store.setValues(values.map(Float.init))
            return loss()
        }
        fdStudent.store.setValues(point.map(Float.init))
        #expect(errors.values.max()! < 5e-3, "worst relative errors \(errors.sorted { $0.value > $1.value }.prefix(4))")
        #expect(errors.keys.contains("student.flows.1.layers.0.source.weight"))

        let data = student.checkpoint(values: student.store.valueArray, step: 5).encode()
        let loaded = try Student.load(try SafeTensors.decode(data), name: "s")
        #expect(loaded.config.source == SineSource(harmonics: 4, ramp: 8) && loaded.config == student.config)
        #expect(loaded.store.valueArray.map(\.bitPattern) == student.store.valueArray.map(\.bitPattern))
    }

    /// Noise centred on the source, x^0 = z + g e: the output is exactly the plain student's
    /// on the noise z + g e (one logistic per sample with mu_tot shifted by g e s_tot, log s_tot
    /// unchanged); g's gradient (and every other) matches finite differences; the gain is a
    /// parameter of the checkpoint; and without a source the config is refused.
    @Test func sourceCentredNoise() throws {
        let source = SineSource(harmonics: 4, ramp: 8)
        let centred = Self.tinyStudent(source: source, logScaleRange: -30...30, sourceGain: 1.5)
        let plain = Self.tinyStudent(source: source, logScaleRange: -30...30)
        #expect(centred.store.count == plain.store.count + 1 && centred.store.valueArray.contains(1.5))
        let B = 2, frames = 3, hop = 4, n = B * frames * hop
        let z = Self.noise(n, seed: 7), mel = TeacherTests.mel(3, B * frames, seed: 8)
        let f0: [Float] = [900, 1300, 0]
        let e = centred.sourceSignal(f0: f0, samples: frames * hop)! + centred.sourceSignal(f0: f0.reversed(), samples: frames * hop, initialPhase: 2)!
        // The same weights apart from g: the plain student on z + g e gives the same output.
        let shared = plain.store.entries.map(\.name)
        for name in shared {
            let from = centred.store.entry(name)!, to = plain.store.entry(name)!
            plain.store.value(to).update(from: centred.store.value(from), count: to.count)
        }
        let a = centred.makeActivations(batch: B, frames: frames), b = plain.makeActivations(batch: B, frames: frames)
        centred.forward(a, noise: z, mel: mel, source: e)
        plain.forward(b, noise: zip(z, e).map { $0 + 1.5 * $1 }, mel: mel, source: e)
        #expect(zip(a.output, b.output).map { abs($0 - $1) }.max()! <= 1e-5)
        #expect(zip(a.logScale, b.logScale).map { abs($0 - $1) }.max()! == 0)
        // mu_tot = x - z s_tot: the noise's own mean, now g e s_tot, is in it.
        for i in 0..<n {
            let expected = a.output[a.output.startIndex + i] - z[i] * exp(a.logScale[i])
            #expect(abs(a.mean[a.mean.startIndex + i] - expected) <= 1e-4 * max(1, abs(expected)))
        }
        let wx = GradientCheck.random(n, seed: 9), wm = GradientCheck.random(n, seed: 10), wl = GradientCheck.random(n, seed: 12)
        func loss() -> Double {
            centred.forward(a, noise: z, mel: mel, source: e)
            return Self.weightedSum(a, wx: wx, wm: wm, wl: wl)
        }
        _ = loss()
        centred.store.zeroGradients()
        centred.backward(a, dOutput: wx, dMean: wm, dLogScale: wl)
        let point = centred.store.valueArray.map(Double.init)
        let gain = try #require(centred.store.entry("student.source_gain"))
        #expect(centred.store.gradient(gain)[0] != 0)
        let errors = GradientCheck.worstDirectionalError(blocks: [(gain.name, gain.offset, gain.count)], point: point,
                                                         analytic: centred.store.gradientArray, epsilon: 1e-2) { values in
            centred.store.setValues(values.map(Float.init))
            return loss()
        }
        centred.store.setValues(point.map(Float.init))
        #expect(errors.values.max()! < 2e-3, "\(errors)")

        let saved = Self.tinyStudent(source: source, sourceGain: 1.5)
        let data = saved.checkpoint(values: saved.store.valueArray, step: 5).encode()
        let loaded = try Student.load(try SafeTensors.decode(data), name: "s")
        #expect(loaded.config.sourceGain == 1.5 && loaded.config == saved.config)
        #expect(loaded.store.valueArray.map(\.bitPattern) == saved.store.valueArray.map(\.bitPattern))
        var unsourced = plain.config
        unsourced.sourceGain = 1
        unsourced.source = nil
        #expect(unsourced.problems().contains { $0.contains("needs a source") })
    }

    /// The untrained student outputs small scales and means near zero (DESIGN.md section 4).
    @Test func initialisationIsQuiet() {
        let student = Self.tinyStudent(flows: [4, 4, 4, 4], initialScale: 0.05, outputScale: 0.01)
        let frames = 8, T = frames * 4
        let a = student.makeActivations(batch: 1, frames: frames, training: false)
        student.forward(a, noise: Self.noise(T, seed: 15), mel: TeacherTests.mel(3, frames, seed: 16))
        let scales = a.logScale.map { exp($0) }
        #expect(scales.allSatisfy { abs($0 - 0.05) < 0.01 }, "\(scales.min()!)...\(scales.max()!)")
        #expect(a.mean.allSatisfy { abs($0) < 0.05 })
    }

    @Test func checkpointRoundTripsBitExactly() throws {
        let student = Self.tinyStudent()
        let data = student.checkpoint(values: student.store.valueArray, step: 42).encode()
        let loaded = try Student.load(try SafeTensors.decode(data), name: "s")
        #expect(loaded.config == student.config)
        #expect(loaded.store.valueArray == student.store.valueArray)
        #expect(loaded.melMean == student.melMean && loaded.melStd == student.melStd)
        #expect(loaded.checkpoint(values: loaded.store.valueArray, step: 42).encode() == data)
        let teacher = TeacherTests.tinyTeacher()
        #expect(throws: ParawaveError.self) { _ = try Student.load(teacher.checkpoint(values: teacher.store.valueArray, step: 1), name: "t") }
    }
}
