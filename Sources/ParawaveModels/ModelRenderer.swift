import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine

/// Audio from a raw log-mel with a trained model, as `render` and `evaluate` both make it: a
/// teacher generates sample by sample (its `TeacherGenerator`, made once and reused across
/// utterances), a student synthesises in one parallel pass per flow from seeded logistic
/// noise, in chunks of `chunkFrames` frames. A source-conditioned model makes its source
/// from the F0 track it is given (its initial phase fixed at 0, as at render time).
public final class ModelRenderer: @unchecked Sendable {
    public let model: TrainedModel
    public let chunkFrames: Int
    /// The teacher's generator (nil for a student).
    let generator: TeacherGenerator?

    /// `precision`: how a teacher's generator stores the weights every sample reads.
    public init(_ model: TrainedModel, precision: PackedMatrix.Precision = .half, chunkFrames: Int = Student.defaultChunkFrames) {
        self.model = model
        self.chunkFrames = chunkFrames
        if case .teacher(let teacher) = model {
            generator = TeacherGenerator(teacher: teacher, batch: 1, precision: precision)
        } else {
            generator = nil
        }
    }

    /// mel.columns * hop samples rendered from `mel` (Cc, F). `f0` (Hz per frame, 0 where
    /// unvoiced) is needed by a source-conditioned model and ignored by others; `speaker` is a
    /// row of a speaker-conditioned model's table. `temperature` scales a teacher's logistic
    /// scales or a student's noise; `seed` fixes the sampling. `progress` gets the samples done.
    public func render(mel: Matrix, f0: [Float]?, speaker: Int?, temperature: Float = 1, seed: UInt64,
                       progress: ((Int) -> Void)? = nil) -> [Float] {
        precondition(model.source == nil || f0 != nil, "a source-conditioned model renders with an F0 track")
        switch model {
        case .teacher(let teacher):
            let source = f0.flatMap { teacher.sourceSignal(f0: $0, samples: mel.columns * teacher.config.stack.hop) }
            return generator!.generate(mels: [mel], speakers: speaker.map { [$0] }, sources: source.map { [$0] }, temperature: temperature,
                                       seed: seed) { done, _ in progress?(done) }[0]
        case .student(let student):
            var random = SeededGenerator(seed: seed)
            let noise = Student.noise(count: mel.columns * student.config.flows[0].hop, generator: &random).map { $0 * temperature }
            let source = f0.flatMap { student.sourceSignal(f0: $0, samples: noise.count) }
            return student.synthesize(mel: mel, noise: noise, speaker: speaker, source: source, chunkFrames: chunkFrames, progress: progress)
        }
    }
}
