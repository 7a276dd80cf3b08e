import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine

/// Probability density distillation (DESIGN.md section 5): the loss of a student against a
/// frozen teacher on one batch, and its gradient with respect to the student's parameters.
///
/// With the student's sample x = z s_tot + mu_tot and the teacher run once on x (its input
/// shifted by one), p_T(. | x_<t) is known at every t, so
///
///   H(P_S, P_T) ~ mean_t mean_n -log p_T(mu_tot_t + s_tot_t eps_n | x_<t)   (N fresh eps_n ~ Logistic(0, 1))
///   H(P_S)      = mean_t log s_tot_t + 2
///   KL          = H(P_S, P_T) - H(P_S)
///
/// scored with the teacher's continuous logistic-mixture density. The loss is
/// `KL + w_spec * spectral(x, y) - gamma * KL(P_S(c) || P_T(c')) + w_adv * adversarial(x)` where y is the real audio of
/// the same mels and c' is another utterance's mel and speaker (the next in the batch). Gradients reach
/// the student through x (back through the frozen teacher to its input), through the samples
/// x_t^n (to mu_tot and log s_tot) and through log s_tot. Means are over the samples where
/// the mask is nonzero.
///
/// With linear prediction (a teacher and student that share the mel's predictor) the same
/// holds for the excitation: the student's excitation sigma_t (z s_tot + mu_tot) is one
/// logistic per sample, the teacher (run on x = 1/A(z) excitation, its means not centred on
/// the prediction) gives the excitation's mixture, and the filter's unit Jacobian leaves the
/// KL unchanged; H(P_S) gains mean_t log sigma_t, a constant. Gradients with respect to x
/// pass back through the filter (`Student.shapeExcitationBackward`).
///
/// With a Gaussian teacher and a student on Gaussian noise (ClariNet) both are Gaussians per
/// sample given the past, and the KL is taken in closed form (`GaussianKL`), with no eps:
/// H(P_S, P_T) = mean_t [l_p + log(2 pi)/2 + (e^(2 (l_q - l_p)) + (mu_q - mu_p)^2 e^(-2 l_p))/2]
/// and H(P_S) = mean_t l_q + log(2 pi e)/2, with mu_q = sigma_t mu_tot and l_q = log sigma_t +
/// log s_tot (the excitation's), and ClariNet's penalty lambda mean_t (l_q - l_p)^2 on the
/// log-scales. The teacher's parameters depend on x_<t, so its gradients pass back through
/// the teacher to x as for the logistic teacher.
public final class Distillation {
    public struct Settings: Sendable {
        /// N, samples per time step of the cross-entropy estimate.
        public var mcSamples: Int
        /// The spectral term (nil: none) and its weight.
        public var spectral: SpectralLoss?
        public var spectralWeight: Float
        /// gamma of the contrastive term (0: none; it needs a batch of at least 2).
        public var contrastiveWeight: Float
        /// Weights of the cross-entropy and the entropy in the loss; 1 and 1 make the KL.
        /// (Tests set them to isolate one term.)
        public var crossEntropyWeight: Float = 1
        public var entropyWeight: Float = 1
        /// lambda of the closed-form KL's log-scale penalty (a Gaussian teacher only).
        public var logScalePenaltyWeight: Float = 0

        public init(mcSamples: Int = 16, spectral: SpectralLoss? = nil, spectralWeight: Float = 0, contrastiveWeight: Float = 0) {
            self.mcSamples = mcSamples
            self.spectral = spectral
            self.spectralWeight = spectralWeight
            self.contrastiveWeight = contrastiveWeight
        }
    }

    /// Per-sample averages (nats) of one batch.
    public struct Terms: Sendable {
        public var crossEntropy = 0.0, entropy = 0.0, spectral = 0.0, contrastive = 0.0, adversarial = 0.0, loss = 0.0
        /// lambda mean_t (l_q - l_p)^2 (the closed form's penalty; 0 without).
        public var logScalePenalty = 0.0
        public var kl: Double { crossEntropy - entropy }
        public init() {}
    }

    public let student: Student, teacher: Teacher
    public let settings: Settings
    /// A term on the student's waveform from outside (the adversarial one), with its weight:
    /// given the waveform (B, T) and the mask, it returns its value and, when given a
    /// gradient buffer, adds weight times its gradient with respect to the waveform into it.
    public var waveformTerm: (weight: Float, evaluate: (UnsafePointer<Float>, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?) -> Double)?
    public let batch: Int, frames: Int, length: Int
    /// Whether the buffers for gradients exist.
    public let training: Bool
    /// The teacher's continuous mixture density (nil for a Gaussian teacher, whose KL is
    /// in closed form).
    let density: LogisticMixture?
    /// Whether the KL is the Gaussians' closed form (a Gaussian teacher).
    public var closedForm: Bool { density == nil }
    let studentActivations: Student.Activations, teacherActivations: Teacher.Activations
    /// (B, T): samples x_t^n, their log-density and its gradient, their gradient, the
    /// gradients with respect to x, mu_tot, log s_tot and the teacher's shifted input.
    var samples: [Float], logDensity: [Float], dLogDensity: [Float], dSamples: [Float]
    var dOutput: [Float], dMean: [Float], dLogScale: [Float], dTeacherInput: [Float]
    /// The student's output as (B, T) and masked copies for the spectral term.
    var output: [Float], maskedOutput: [Float], maskedAudio: [Float], dSpectral: [Float]
    /// Teacher output-parameter gradient (B, P, T); the other utterances' mels.
    var dParams: [Float], otherMel: [Float], otherSource: [Float]
    /// With linear prediction: each utterance's predictors and scales, and sigma (B, T)
    /// (all 1 without).
    var excitation: [(coefficients: [Float], logSigma: [Float])] = [], sigma: [Float]

    /// Buffers for `batch` crops of `frames` frames. Without `training`, only what `evaluate`
    /// needs without gradients (forward-only buffers, about a layer's worth per model), so
    /// whole utterances can be scored.
    public init(student: Student, teacher: Teacher, batch: Int, frames: Int, settings: Settings, training: Bool = true) {
        self.student = student
        self.teacher = teacher
        self.settings = settings
        self.batch = batch
        self.frames = frames
        self.training = training
        length = frames * teacher.config.stack.hop
        precondition(student.config.noise == teacher.config.output,
                     "a \(teacher.config.output.rawValue) teacher distils a student on \(teacher.config.output.rawValue) noise")
        precondition(teacher.config.output == .gaussian || settings.logScalePenaltyWeight == 0, "the log-scale penalty is the Gaussian KL's")
        density = teacher.config.output == .logistic ? LogisticMixture(mixtures: teacher.config.mixtures, logScaleMin: teacher.config.logScaleMin) : nil
        studentActivations = student.makeActivations(batch: batch, frames: frames, training: training)
        teacherActivations = teacher.makeActivations(batch: batch, frames: frames, training: training)
        let n = batch * length
        samples = [Float](repeating: 0, count: n)
        logDensity = samples; output = samples; maskedOutput = samples; maskedAudio = samples; dSpectral = samples
        let gradientBuffer = training ? samples : []
        dLogDensity = gradientBuffer; dSamples = gradientBuffer
        dOutput = gradientBuffer; dMean = gradientBuffer; dLogScale = gradientBuffer; dTeacherInput = gradientBuffer
        dParams = [Float](repeating: 0, count: training ? n * teacher.config.outputChannels : 0)
        otherMel = [Float](repeating: 0, count: batch * teacher.config.stack.conditionChannels * frames)
        otherSource = [Float](repeating: 0, count: teacher.config.source == nil ? 0 : n)
        precondition(student.config.linearPrediction == teacher.config.linearPrediction, "the student shapes its excitation with its teacher's predictor")
        sigma = [Float](repeating: 1, count: n)
    }

    /// The loss on one batch: mel (B, Cc, F) raw log-mel, audio (B, T) the real audio, mask
    /// (B, T) (nil: all), noise z (B, T) and eps (N, B, T) logistic noise, and for
    /// speaker-conditioned models the utterances' speakers (rows of both models' tables, which
    /// list the same speakers), and for source-conditioned models (both are, with the same
    /// source) the utterances' sources (B, T). With `gradients`, the student's parameter
    /// gradients are added into its store.
    ///
    /// Data parallelism: with a `shard` these B rows are part of a larger batch. Every term is
    /// then the whole batch's (means over its samples, sums formed by `shard.sum`), and the
    /// gradients are the whole batch's loss's with respect to this part. The contrastive term
    /// then needs `neighbours`: each row's next utterance in the whole batch (mel (B, Cc, F),
    /// source (B, T) and speakers), which may live on another rank.
    public func evaluate(mel: UnsafePointer<Float>, audio: UnsafePointer<Float>, mask: UnsafePointer<Float>?,
                         noise z: UnsafePointer<Float>, samples eps: UnsafePointer<Float>, speakers: [Int]? = nil,
                         source: UnsafePointer<Float>? = nil, gradients: Bool, shard: BatchShard? = nil,
                         neighbours: (mel: [Float], source: [Float], speakers: [Int]?)? = nil) -> Terms {
        precondition(training || !gradients, "gradients need a Distillation made with training: true")
        let B = batch, T = length, n = B * T
        let shard = shard ?? .whole(B)
        precondition(shard.count == B, "the shard must describe these rows")
        let count = shard.total(mask.map { m in (0..<n).reduce(0) { $0 + (m[$1] != 0 ? 1 : 0) } } ?? n)
        let weight = { (i: Int) -> Float in (mask?[i] ?? 1) != 0 ? 1 : 0 }
        var terms = Terms()
        student.forward(studentActivations, noise: z, mel: mel, speakers: speakers, source: source)
        output.withUnsafeMutableBufferPointer { o in
            studentActivations.output.withUnsafeBufferPointer { o.baseAddress!.update(from: $0.baseAddress!, count: n) }
        }
        if student.linearPrediction != nil {
            let C = teacher.config.stack.conditionChannels
            excitation = (0..<B).map { student.excitationFrames(mel: mel + $0 * C * frames, frames: frames)! }
            output.withUnsafeMutableBufferPointer { o in
                for b in 0..<B {
                    student.shapeExcitation(o.baseAddress! + b * T, length: T, frames: excitation[b])
                    for t in 0..<T { sigma[b * T + t] = exp(excitation[b].logSigma[t]) }
                }
            }
        }
        if gradients {
            dOutput.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            dMean.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            dLogScale.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        }

        // Entropy: mean log s_tot + 2 (logistic) or + log(2 pi e)/2 (Gaussian), and mean
        // log sigma_t with linear prediction. In closed form the excitation's log-scale is
        // clamped as the teacher's are (`GaussianKL`), so that KL = H(P_S, P_T) - H(P_S) holds.
        var entropy = 0.0
        let constant = student.config.noise.unitEntropy, floor = Double(teacher.config.logScaleMin)
        let entropyGradient = (-settings.entropyWeight + settings.contrastiveWeight) / Float(count)
        for b in 0..<B {
            for t in 0..<T {
                let i = b * T + t
                var l = Double(studentActivations.logScale[i]) + (excitation.isEmpty ? 0 : Double(excitation[b].logSigma[t]))
                let free = !closedForm || l > floor
                if closedForm { l = max(l, floor) }
                if weight(i) != 0 { entropy += l + constant }
                if gradients && free { dLogScale[i] += entropyGradient * weight(i) }
            }
        }
        terms.entropy = entropy / Double(count)

        // Cross-entropy against the teacher on this batch's mels, and the contrastive pass on
        // the next utterance's.
        var penalty = 0.0
        terms.crossEntropy = crossEntropy(mel: mel, speakers: speakers, source: source, eps: eps, mask: mask, count: count,
                                          scale: settings.crossEntropyWeight, gradients: gradients,
                                          penalty: (settings.logScalePenaltyWeight, { penalty = $0 }))
        var contrastiveCE = 0.0
        if settings.contrastiveWeight != 0 {
            precondition(shard.total >= 2, "the contrastive term needs a batch of at least 2")
            let C = teacher.config.stack.conditionChannels, size = C * frames
            var otherSpeakers = speakers.map { s in (0..<B).map { s[($0 + 1) % B] } }
            if let neighbours {
                precondition(neighbours.mel.count == B * size, "one neighbour per row")
                otherMel = neighbours.mel
                if source != nil { otherSource = neighbours.source }
                otherSpeakers = neighbours.speakers
            } else {
                precondition(shard.isWhole, "a part of a batch needs its rows' neighbours for the contrastive term")
                for b in 0..<B { for i in 0..<size { otherMel[b * size + i] = mel[((b + 1) % B) * size + i] } }
                if let source { for b in 0..<B { for t in 0..<T { otherSource[b * T + t] = source[((b + 1) % B) * T + t] } } }
            }
            let other = otherMel
            contrastiveCE = other.withUnsafeBufferPointer { m in
                otherSource.withUnsafeBufferPointer { s in
                    crossEntropy(mel: m.baseAddress!, speakers: otherSpeakers, source: source == nil ? nil : s.baseAddress, eps: eps, mask: mask,
                                 count: count, scale: -settings.contrastiveWeight, gradients: gradients)
                }
            }
        }
        if !shard.isWhole {
            let sums = shard.sum([terms.entropy, terms.crossEntropy, contrastiveCE, penalty])
            (terms.entropy, terms.crossEntropy, contrastiveCE, penalty) = (sums[0], sums[1], sums[2], sums[3])
        }
        terms.logScalePenalty = penalty
        if settings.contrastiveWeight != 0 { terms.contrastive = contrastiveCE - terms.entropy }

        // Spectral distance of the masked sample from the masked real audio.
        if let spectral = settings.spectral, settings.spectralWeight != 0 {
            for i in 0..<n { maskedOutput[i] = output[i] * weight(i); maskedAudio[i] = audio[i] * weight(i) }
            if gradients { dSpectral.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
            terms.spectral = maskedOutput.withUnsafeBufferPointer { x in
                maskedAudio.withUnsafeBufferPointer { y in
                    dSpectral.withUnsafeMutableBufferPointer { d in
                        spectral.evaluate(x: x.baseAddress!, y: y.baseAddress!, batch: B, length: T, dX: gradients ? d.baseAddress! : nil,
                                          weight: settings.spectralWeight, shard: shard)
                    }
                }
            }
            if gradients { for i in 0..<n { dOutput[i] += dSpectral[i] * weight(i) } }
        }
        if let term = waveformTerm {
            terms.adversarial = output.withUnsafeBufferPointer { x in
                dOutput.withUnsafeMutableBufferPointer { d in term.evaluate(x.baseAddress!, mask, gradients ? d.baseAddress! : nil) }
            }
        }
        terms.loss = Double(settings.crossEntropyWeight) * terms.crossEntropy - Double(settings.entropyWeight) * terms.entropy
            + Double(settings.spectralWeight) * terms.spectral - Double(settings.contrastiveWeight) * terms.contrastive
            + Double(waveformTerm?.weight ?? 0) * terms.adversarial + terms.logScalePenalty
        if gradients {
            if !excitation.isEmpty {
                dOutput.withUnsafeMutableBufferPointer { d in
                    for b in 0..<B { student.shapeExcitationBackward(d.baseAddress! + b * T, length: T, frames: excitation[b]) }
                }
            }
            dOutput.withUnsafeBufferPointer { dx in
                dMean.withUnsafeBufferPointer { dm in
                    dLogScale.withUnsafeBufferPointer { dl in
                        student.backward(studentActivations, dOutput: dx.baseAddress!, dMean: dm.baseAddress!, dLogScale: dl.baseAddress!)
                    }
                }
            }
        }
        return terms
    }

    /// mean -log p_T(x_t^n | x_<t, mel) over t and n, the teacher run on the student's output
    /// (in closed form with a Gaussian teacher, and then `penalty`'s weight times the mean
    /// squared log-scale gap is handed to its closure and added to the gradients); with
    /// `gradients`, scale times its gradient is added into dOutput, dMean and dLogScale.
    func crossEntropy(mel: UnsafePointer<Float>, speakers: [Int]?, source: UnsafePointer<Float>?, eps: UnsafePointer<Float>,
                      mask: UnsafePointer<Float>?, count: Int, scale: Float, gradients: Bool,
                      penalty: (weight: Float, value: (Double) -> Void)? = nil) -> Double {
        let B = batch, T = length, N = settings.mcSamples
        let ta = teacherActivations
        output.withUnsafeBufferPointer {
            teacher.forward(ta, audio: $0.baseAddress!, mel: mel, speakers: speakers, source: source, centred: excitation.isEmpty)
        }
        if gradients { dParams.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
        let mean = studentActivations.mean
        var total = 0.0
        if let density {
            total = monteCarlo(density, eps: eps, mask: mask, count: count, scale: scale, gradients: gradients)
        } else {
            // Per sample the two Gaussians of the excitation: the student's (sigma mu_tot,
            // log sigma + log s_tot) and the teacher's (channel 0 and 1 of its output).
            let g = Double(scale) / Double(count), lambda = Double(penalty?.weight ?? 0), floor = Double(teacher.config.logScaleMin)
            var penaltySum = 0.0
            for b in 0..<B {
                for t in 0..<T {
                    let i = b * T + t
                    guard (mask?[i] ?? 1) != 0 else { continue }
                    let logSigma = excitation.isEmpty ? 0 : Double(excitation[b].logSigma[t])
                    let muP = b * 2 * T + t, logScaleP = muP + T
                    let k = GaussianKL.terms(muQ: Double(sigma[i]) * Double(mean[mean.startIndex + i]),
                                             logScaleQ: logSigma + Double(studentActivations.logScale[i]),
                                             muP: Double(ta.params[muP]), logScaleP: Double(ta.params[logScaleP]), logScaleMin: floor,
                                             penaltyWeight: lambda)
                    total += k.crossEntropy
                    penaltySum += k.penalty
                    guard gradients else { continue }
                    dMean[i] += Float(g * Double(sigma[i]) * k.dMuQ)
                    dLogScale[i] += Float(g * k.dLogScaleQ + k.dPenaltyQ / Double(count))
                    dParams[muP] = Float(g * k.dMuP)
                    dParams[logScaleP] = Float(g * k.dLogScaleP + k.dPenaltyP / Double(count))
                }
            }
            penalty?.value(penaltySum / Double(count))
        }
        if gradients {
            dTeacherInput.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            dParams.withUnsafeBufferPointer { dp in
                dTeacherInput.withUnsafeMutableBufferPointer { di in
                    teacher.backward(ta, dParams: dp.baseAddress!, dInput: di.baseAddress!, weights: false)
                }
            }
            dTeacherInput.withUnsafeBufferPointer { di in
                dOutput.withUnsafeMutableBufferPointer { teacher.addAudioGradient(ta, dInput: di.baseAddress!, into: $0.baseAddress!) }
            }
        }
        return total / Double((closedForm ? 1 : N) * count)
    }

    /// The Monte Carlo estimate over the N eps samples against the teacher's logistic mixture
    /// (the sum of -log p over the samples); with `gradients`, scale times its gradient is
    /// added into dMean and dLogScale and the teacher parameters' into dParams.
    func monteCarlo(_ density: LogisticMixture, eps: UnsafePointer<Float>, mask: UnsafePointer<Float>?, count: Int, scale: Float,
                    gradients: Bool) -> Double {
        let B = batch, T = length, n = B * T, N = settings.mcSamples
        let ta = teacherActivations
        let mean = studentActivations.mean, scales = studentActivations.logScale.map { exp($0) }
        var total = 0.0
        let perSample = -scale / Float(N * count)
        for k in 0..<N {
            let e = eps + k * n
            for i in 0..<n { samples[i] = sigma[i] * (mean[mean.startIndex + i] + scales[i] * e[i]) }
            ta.params.withUnsafeBufferPointer { p in
                samples.withUnsafeBufferPointer { x in
                    logDensity.withUnsafeMutableBufferPointer { lp in
                        density.forward(logDensity: lp.baseAddress!, params: p.baseAddress!, x: x.baseAddress!, batch: B, length: T)
                    }
                }
            }
            for i in 0..<n where (mask?[i] ?? 1) != 0 { total -= Double(logDensity[i]) }
            guard gradients else { continue }
            for i in 0..<n { dLogDensity[i] = (mask?[i] ?? 1) != 0 ? perSample : 0 }
            dSamples.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            ta.params.withUnsafeBufferPointer { p in
                samples.withUnsafeBufferPointer { x in
                    dSamples.withUnsafeMutableBufferPointer { dx in
                        dParams.withUnsafeMutableBufferPointer { dp in
                            density.backward(dParams: dp.baseAddress!, dX: dx.baseAddress!, dLogDensity: dLogDensity, params: p.baseAddress!,
                                             x: x.baseAddress!, batch: B, length: T)
                        }
                    }
                }
            }
            // x_t^n = sigma (mu_tot + exp(log s_tot) eps).
            for i in 0..<n {
                dMean[i] += dSamples[i] * sigma[i]
                dLogScale[i] += dSamples[i] * sigma[i] * scales[i] * e[i]
            }
        }
        return total
    }
}
