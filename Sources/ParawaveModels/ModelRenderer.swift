import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine

/// The precision `render` and `evaluate` use for a model, as asked on the command line.
public enum RenderPrecision: String, CaseIterable, Sendable {
    /// A teacher: half. A student: bfloat16 where the CPU has the arithmetic, single otherwise.
    case auto
    /// A teacher's generator reads Float16 weights (float32 arithmetic).
    case half
    /// Float32 throughout.
    case single
    /// A student's products with bfloat16 operands and float32 accumulation (oneDNN).
    case bfloat16

    /// The teacher generator's weight storage this asks for.
    public func teacherWeights() throws -> PackedMatrix.Precision {
        switch self {
        case .auto, .half: return .half
        case .single: return .single
        case .bfloat16:
            throw ParawaveError("--precision bfloat16", "a teacher generates sample by sample with Float16 (half, the default) or Float32 "
                                + "(single) weights; bfloat16 is for a student's parallel pass")
        }
    }

    /// The precision of a student's products this asks for.
    public func studentProducts(bfloat16Supported: Bool = BFloat16GEMM.isSupported) throws -> MatrixPrecision {
        switch self {
        case .auto: return bfloat16Supported ? .bfloat16 : .single
        case .single: return .single
        case .half:
            throw ParawaveError("--precision half", "a student renders with matrix products: auto, single or bfloat16; half is a teacher's")
        case .bfloat16: return try PrecisionChoice.bfloat16.resolved(key: "--precision", bfloat16Supported: bfloat16Supported)
        }
    }
}

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
    /// The precision of a student's or WaveGlow's products (single for a teacher).
    public let products: MatrixPrecision
    /// WaveGlow's sampling standard deviation of z (NVIDIA's inference default: 0.6).
    public let sigma: Float
    public static let defaultSigma: Float = 0.6

    /// `precision`: how a teacher's generator stores the weights every sample reads, or the
    /// precision of a student's products; throws when it does not apply to the model or the CPU.
    public init(_ model: TrainedModel, precision: RenderPrecision = .auto, chunkFrames: Int = Student.defaultChunkFrames,
                sigma: Float = ModelRenderer.defaultSigma) throws {
        self.model = model
        self.chunkFrames = chunkFrames
        self.sigma = sigma
        if case .teacher(let teacher) = model {
            generator = TeacherGenerator(teacher: teacher, batch: 1, precision: try precision.teacherWeights())
            products = .single
        } else {
            generator = nil
            products = try precision.studentProducts()
        }
    }

    /// What renders, in words: "teacher, autoregressive, half precision" or "student, parallel, bfloat16".
    public var description: String {
        if let generator { return "teacher, autoregressive, \(generator.precision) precision" }
        let arithmetic = products == .bfloat16 ? "bfloat16" : "float32"
        if case .waveglow = model { return "waveglow, parallel, \(arithmetic), sigma \(sigma)" }
        return "student, parallel, \(arithmetic)"
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
            let noise = student.noise(count: mel.columns * student.config.flows[0].hop, generator: &random).map { $0 * temperature }
            let source = f0.flatMap { student.sourceSignal(f0: $0, samples: noise.count) }
            return BLAS.withPrecision(products) {
                student.synthesize(mel: mel, noise: noise, speaker: speaker, source: source, chunkFrames: chunkFrames, progress: progress)
            }
        case .waveglow(let waveglow):
            // z ~ N(0, sigma^2) through the inverse pass, in chunks of `chunkFrames` frames.
            var random = SeededGenerator(seed: seed)
            let z = (0..<(mel.columns * waveglow.config.hop)).map { _ in sigma * temperature * random.normal() }
            let source = f0.flatMap { waveglow.sourceSignal(f0: $0, samples: z.count) }
            return BLAS.withPrecision(products) {
                waveglow.synthesize(mel: mel, z: z, source: source, speaker: speaker, chunkFrames: chunkFrames, progress: progress)
            }
        }
    }
}
