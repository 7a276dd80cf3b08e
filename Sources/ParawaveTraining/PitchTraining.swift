import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels

/// The pitch predictor that a source-conditioned model (a teacher, WaveGlow) carries, so
/// that a mel alone renders: trained beside the model on crops of its own, from the pYIN
/// tracks of the training data, and scored on the validation utterances' tracks.
final class PitchTraining<Model: CheckpointedModel> {
    /// The predictor trains on `crops` crops of `cropFrames` frames (about 2 s at hop 256)
    /// per step: longer than its context on both sides, so that it learns from real frames
    /// rather than padding, and many of them, since a predictor fed 4 a step fits the
    /// corpus's voices more slowly. Measured cost: about 90 ms a step, a third more on the
    /// demo teacher's step (0.32 s) and a twentieth on T-small's (1.9 s).
    static var cropFrames: Int { 128 }
    static var crops: Int { 16 }

    /// The crops a rank trains on: an even share of the 16 (none when ranks outnumber them).
    static func rows(rank: Int, of ranks: Int) -> Range<Int> { (rank * crops / ranks)..<((rank + 1) * crops / ranks) }

    let model: Model
    let communicator: Communicator
    let activations: PitchPredictor.Activations?
    let sampler: CropSampler
    let validation: [(mel: Matrix, f0: [Float])]
    /// The level and tilt augmentation's reach in dB (`pitch.augment_db`; 0: none).
    let augmentDB: Double
    let logFloor: Float

    /// Nil for a model without a pitch predictor.
    init?(_ model: Model, data: TrainingData, validationUtterances: Int, hop: Int, logFloor: Double, augmentDB: Double = 0,
          communicator: Communicator) {
        guard let pitch = model.pitch else { return nil }
        self.model = model
        self.communicator = communicator
        self.augmentDB = augmentDB
        self.logFloor = Float(log(logFloor))
        let rows = Self.rows(rank: communicator.rank, of: communicator.size)
        activations = rows.isEmpty ? nil : pitch.makeActivations(batch: rows.count, frames: Self.cropFrames)
        sampler = CropSampler(data.train, frames: Self.cropFrames, hop: hop, logFloor: logFloor)
        validation = data.validation.prefix(validationUtterances).compactMap { u in u.f0.map { (u.mel, $0) } }
    }

    /// One step on this rank's share of the crops, dividing by all the crops' frames; every
    /// rank draws all of them, so the random stream stays the same. The predictor's losses,
    /// summed over the ranks.
    func step(generator: inout SeededGenerator, shard: BatchShard) -> [(String, Double)] {
        var crops = sampler.next(batch: Self.crops, generator: &generator)
        if augmentDB > 0 { crops.augmentLevelAndTilt(decibels: augmentDB, logFloor: logFloor, generator: &generator) }
        var totals: (frames: Int, voiced: Int)?
        if !shard.isWhole {
            let mask = crops.frameMask
            totals = (mask.filter { $0 != 0 }.count, mask.indices.filter { mask[$0] != 0 && crops.f0[$0] > 0 }.count)
        }
        var pitch = [0.0, 0]
        if let activations {
            let mine = crops.rows(Self.rows(rank: communicator.rank, of: communicator.size))
            let loss = model.pitchLoss(activations, mel: mine.mel, f0: mine.f0, mask: mine.frameMask, totals: totals)
            pitch = [loss.voicing, loss.f0]
        }
        if !shard.isWhole { pitch = shard.sum(pitch) }
        return [("pitch_loss", pitch[0] + pitch[1]), ("pitch_voicing_loss", pitch[0]), ("pitch_f0_loss", pitch[1])]
    }

    /// This rank's share of the validation utterances' pitch metrics (sum them over ranks).
    func validate() -> PitchMetrics.Accumulator {
        var pitch = PitchMetrics.Accumulator()
        let ranks = communicator.size
        for (i, (mel, f0)) in validation.enumerated() where i % ranks == communicator.rank {
            pitch.add(reference: f0, generated: model.predictF0(mel: mel)!.f0)
        }
        return pitch
    }

    /// The validation values of summed metrics.
    func values(_ pitch: PitchMetrics.Accumulator) -> [(String, Double)] {
        guard !validation.isEmpty else { return [] }
        let m = pitch.metrics
        return [("pitch_within_50_cents", m.within50 ?? 0), ("pitch_vuv_error", m.voicingError)]
    }

    /// The progress line's words for the validation values, if they hold the pitch metrics.
    static func describe(_ validation: [(String, Double)]?) -> String {
        guard let within = validation?.first(where: { $0.0 == "pitch_within_50_cents" })?.1,
              let vuv = validation?.first(where: { $0.0 == "pitch_vuv_error" })?.1 else { return "" }
        return String(format: ", predicted F0 %.0f%% within 50 c, V/UV error %.0f%%", 100 * within, 100 * vuv)
    }
}
