import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels

/// Maximum-likelihood training of WaveGlow (`train-waveglow`): the loss per sample of its
/// crops (NVIDIA's, without the Gaussian's constant) and, for validation, the negative
/// log-likelihood with it, in nats and bits per sample, of the audio with uniform
/// dequantisation noise (`dequantised`). The loop is `RunTrainer`'s. The flow transforms
/// whole crops, and the loss counts the squeezed steps that hold no padding beyond an
/// utterance's end (`WaveGlow.forward`'s mask).
public final class WaveGlowTrainer: RunTrainer {
    public static let stateKind = "parawave.waveglow.train-state"

    public let model: WaveGlow
    let activations: WaveGlow.Activations
    /// The pitch predictor's training, with source conditioning.
    let pitch: PitchTraining<WaveGlow>?

    /// Sets up a new run in `run` (which must not hold one), or with `resume` continues the
    /// one there from its last checkpoint.
    public init(recipe: Recipe, data: TrainingData, run: RunDirectory, resume: Bool, communicator: Communicator = .single) throws {
        let settings = recipe.waveglow.run
        model = WaveGlow(config: recipe.waveglowConfig(speakers: data.speakers))
        if !model.config.speakers.isEmpty {
            try Self.checkSpeakers(data, known: model.config.speakers, model: "WaveGlow")
        }
        model.initialise(seed: UInt64(settings.seed))
        model.melMean = data.melMean
        model.melStd = data.melStd
        // With linear prediction a crop that starts inside its utterance carries one frame of
        // lead, masked from the loss, so the prediction of its first scored samples reads their
        // real past (`TeacherTrainer.lead`): predicted from zeros, in a quiet frame whose error
        // scale is small, their excitation is hundreds of deviations, and the couplings'
        // scales overflow on it.
        let lead = model.linearPrediction == nil ? 0 : TeacherTrainer.lead
        activations = model.makeActivations(batch: max(1, settings.batchSize / communicator.size),
                                            frames: recipe.audio.mel.frames(forCrop: settings.crop) + lead)
        pitch = PitchTraining(model, data: data, validationUtterances: settings.validationUtterances, hop: recipe.audio.hopLength,
                              logFloor: recipe.audio.mel.logFloor, augmentDB: recipe.pitch.augmentDB, communicator: communicator)
        try super.init(recipe: recipe, settings: settings, data: data, run: run, resume: resume, store: model.store,
                       groups: model.parameterGroups(clipNorm: settings.clipNorm), label: "train-waveglow", stateKind: Self.stateKind,
                       source: model.source, lead: lead, communicator: communicator)
        try start(resume: resume)
    }

    /// Mean validation NLL (nats per sample, with the Gaussian's constant) under the EMA weights.
    public func validationLoss() -> Double? { validate()?.first?.1 }

    /// The batch's real samples spread uniformly over their quantisation bins (uniform
    /// dequantisation, as RealNVP and Glow train on discrete data): a flow's density on the
    /// exact 16-bit values is unbounded where they repeat (digital silence), and its log s
    /// grows there until exp(s) overflows. The noise is drawn for the whole batch, so a step
    /// does not depend on the rank count.
    public static func dequantised(_ whole: CropBatch, bits: Int, generator: inout SeededGenerator) -> CropBatch {
        var out = whole
        let width = Float(2 / (pow(2.0, Double(bits)) - 1))
        for i in out.audio.indices {
            let u = Float(generator.uniform()) - 0.5
            if out.mask[i] != 0 { out.audio[i] += width * u }
        }
        return out
    }

    override func trainingStep(_ whole: CropBatch) -> [(String, Double)] {
        let whole = Self.dequantised(whole, bits: model.config.bits, generator: &generator)
        let (batch, shard) = part(whole)
        var loss = forward(batch, realSamples: realSamples(whole))
        model.backward(activations)
        if !shard.isWhole { loss = Self.summed(loss, shard) }
        let values = [("loss", loss.total), ("gaussian", loss.gaussian), ("log_s", loss.logScale), ("log_det_w", loss.logDeterminant)]
        return values + (pitch?.step(generator: &generator, shard: shard) ?? [])
    }

    /// The loss of this rank's rows, counted over the squeezed steps that hold no padding and
    /// divided by the whole batch's samples in them (`realSamples` of the whole batch).
    func forward(_ batch: CropBatch, realSamples: Int) -> WaveGlow.Loss {
        batch.source.withUnsafeBufferPointer { source in
            model.forward(activations, audio: batch.audio, mel: batch.mel, source: model.source == nil ? nil : source.baseAddress,
                          speakers: Self.speakerRows(batch, table: model.config.speakers), mask: batch.mask, maskedTotal: realSamples)
        }
    }

    /// The samples of a batch's squeezed steps that hold no padding (the loss's count).
    func realSamples(_ whole: CropBatch) -> Int {
        let steps = whole.mask.withUnsafeBufferPointer { model.config.stepMask($0.baseAddress, rows: whole.batch, length: whole.length) }
        return max(Int(steps.reduce(0, +)) * model.config.group, 1)
    }

    /// The whole batch's loss from the ranks' parts.
    static func summed(_ loss: WaveGlow.Loss, _ shard: BatchShard) -> WaveGlow.Loss {
        let parts = shard.sum([loss.gaussian, loss.logScale, loss.logDeterminant, loss.excitationScale])
        return WaveGlow.Loss(gaussian: parts[0], logScale: parts[1], logDeterminant: parts[2], excitationScale: parts[3])
    }

    override func validationValues(_ batches: [CropBatch]) -> [(String, Double)] {
        var sum = 0.0
        // Fixed dequantisation noise, so that validations compare.
        var noise = SeededGenerator(seed: 0x5741_5645)
        for fixed in batches {
            let whole = Self.dequantised(fixed, bits: model.config.bits, generator: &noise)
            let (batch, shard) = part(whole)
            var loss = forward(batch, realSamples: realSamples(whole))
            if !shard.isWhole { loss = Self.summed(loss, shard) }
            sum += loss.negativeLogLikelihood(sigma: model.config.sigma)
        }
        let nll = sum / Double(max(batches.count, 1))
        var pitchMetrics = pitch?.validate() ?? PitchMetrics.Accumulator()
        if pitch != nil && communicator.size > 1 {
            pitchMetrics = PitchMetrics.Accumulator(sums: communicator.sum(pitchMetrics.sums, what: "validation sums"))
        }
        return [("nll", nll), ("bits", nll / M_LN2)] + (pitch?.values(pitchMetrics) ?? [])
    }

    override func modelCheckpoint(values: [Float]) -> SafeTensors { model.checkpoint(values: values, step: step) }

    override func stateTensors() -> [String: SafeTensors.Tensor] {
        Self.normalisationTensors(prefix: WaveGlow.role, mean: model.melMean, std: model.melStd)
    }

    override func stateMetadata() -> [String: String] { model.metadata(step: step) }

    override func restoreModelState(from file: SafeTensors, path: String) throws {
        try checkSavedConfig(model.config, what: "WaveGlow", in: file, path: path)
        (model.melMean, model.melStd) = try Self.normalisation(prefix: WaveGlow.role, bands: model.config.melChannels, in: file, path: path)
    }

    override func describe(_ values: [(String, Double)], validation: [(String, Double)]?) -> String {
        var detail = String(format: "loss %.4f nats", values.first?.1 ?? .nan)
        if let v = validation?.first?.1 { detail += String(format: ", validation NLL %.4f nats (%.3f bits)", v, v / M_LN2) }
        return detail + PitchTraining<WaveGlow>.describe(validation)
    }
}
