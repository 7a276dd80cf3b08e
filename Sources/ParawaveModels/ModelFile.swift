import Foundation
import ParawaveCore
import ParawaveEngine

/// A trained model found from a run directory or a checkpoint file, by its `kind`.
public enum TrainedModel {
    case teacher(Teacher)

    /// Loads `path`: a run directory (its `model.safetensors`) or a checkpoint file.
    public static func load(_ path: String) throws -> TrainedModel {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ParawaveError(path, "no such model: give a run directory or a .safetensors checkpoint")
        }
        let file = isDirectory.boolValue ? path + "/model.safetensors" : path
        if isDirectory.boolValue && !FileManager.default.fileExists(atPath: file) {
            throw ParawaveError(path, "is not a run directory with a model (no model.safetensors); has its training written a checkpoint yet?")
        }
        let checkpoint = try SafeTensors.read(file)
        switch checkpoint.metadata["kind"] {
        case Teacher.kind?:
            return .teacher(try Teacher.load(checkpoint, name: file))
        case let kind?:
            throw ParawaveError(file, "holds a '\(kind)', not a model `render` can use (a teacher or a student)")
        case nil:
            throw ParawaveError(file, "has no model kind in its metadata; it was not written by Parawave")
        }
    }
}
