import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine

/// A trained model found from a run directory or a checkpoint file, by its `kind`.
public enum TrainedModel {
    case teacher(Teacher)
    case student(Student)
    case waveglow(WaveGlow)

    /// Loads `path`: a run directory (its `model.safetensors`) or a checkpoint file.
    public static func load(_ path: String) throws -> TrainedModel {
        try loadWithMetadata(path).model
    }

    /// As `load`, also handing back the checkpoint's metadata.
    public static func loadWithMetadata(_ path: String) throws -> (model: TrainedModel, metadata: [String: String]) {
        let file = try checkpointFile(path)
        let checkpoint = try SafeTensors.read(file)
        switch checkpoint.metadata["kind"] {
        case Teacher.kind?:
            return (.teacher(try Teacher.load(checkpoint, name: file)), checkpoint.metadata)
        case Student.kind?:
            return (.student(try Student.load(checkpoint, name: file)), checkpoint.metadata)
        case WaveGlow.kind?:
            return (.waveglow(try WaveGlow.load(checkpoint, name: file)), checkpoint.metadata)
        case let kind?:
            throw ParawaveError(file, "holds a '\(kind)', not a model `render` can use (a teacher, a student or a WaveGlow)")
        case nil:
            throw ParawaveError(file, "has no model kind in its metadata; it was not written by Parawave")
        }
    }

    /// The checkpoint file of `path`: the file itself, or a run directory's `model.safetensors`.
    public static func checkpointFile(_ path: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ParawaveError(path, "no such model: give a run directory or a .safetensors checkpoint")
        }
        let file = isDirectory.boolValue ? path + "/model.safetensors" : path
        if isDirectory.boolValue && !FileManager.default.fileExists(atPath: file) {
            throw ParawaveError(path, "is not a run directory with a model (no model.safetensors); has its training written a checkpoint yet?")
        }
        return file
    }

    /// The model, whatever its kind.
    public var model: any CheckpointedModel {
        switch self {
        case .teacher(let t): t
        case .student(let s): s
        case .waveglow(let w): w
        }
    }

    /// The model's mel front end.
    public var mel: MelSettings { model.mel }

    /// The speakers the model is conditioned on (empty: none).
    public var speakers: [String] { model.speakers }

    /// The source excitation the model is conditioned on (nil: none).
    public var source: SineSource? { model.source }

    /// F0 per frame (Hz, 0 where unvoiced) that the model's pitch predictor gives a raw
    /// log-mel (Cc, F); nil for a model without one.
    public func predictF0(mel: Matrix) -> [Float]? { model.predictF0(mel: mel)?.f0 }

    /// The pitch predictor's F0 (Hz, 0 where unvoiced) and voiced probability per frame of a
    /// raw log-mel (Cc, F); nil for a model without one.
    public func predictPitch(mel: Matrix) -> (f0: [Float], probability: [Float])? { model.predictF0(mel: mel) }

    /// True when the model carries a pitch predictor.
    public var hasPitchPredictor: Bool { model.pitch != nil }

    /// "teacher", "student" or "waveglow".
    public var role: String { type(of: model).role }
}
