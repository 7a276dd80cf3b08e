import Foundation
import ParawaveCore
import ParawaveEngine

/// The checkpoint layout shared by every model: one tensor per parameter under its store
/// name, the per-band mel normalisation as `PREFIX.mel_mean` / `PREFIX.mel_std`, and metadata
/// with the kind, the config as JSON, the step and the format version.
enum ModelCheckpoint {
    static func metadata<C: Encodable>(kind: String, config: C, step: Int) -> [String: String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: (try? encoder.encode(config)) ?? Data(), as: UTF8.self)
        return ["kind": kind, "config": json, "step": String(step), "format_version": String(CheckpointFormat.version)]
    }

    static func make(store: ParameterStore, values: [Float], normalisation: ([Float], [Float]), prefix: String,
                     metadata: [String: String]) -> SafeTensors {
        precondition(values.count == store.count, "parameter count mismatch")
        var tensors: [String: SafeTensors.Tensor] = [:]
        for e in store.entries {
            tensors[e.name] = SafeTensors.Tensor(shape: e.shape, values: Array(values[e.offset..<(e.offset + e.count)]))
        }
        tensors[prefix + ".mel_mean"] = SafeTensors.Tensor(shape: [normalisation.0.count], values: normalisation.0)
        tensors[prefix + ".mel_std"] = SafeTensors.Tensor(shape: [normalisation.1.count], values: normalisation.1)
        return SafeTensors(tensors: tensors, metadata: metadata)
    }

    /// The config of a checkpoint of `kind`, or a clear error.
    static func config<C: Decodable>(_ type: C.Type, kind: String, what: String, file: SafeTensors, name: String) throws -> C {
        guard file.metadata["kind"] == kind else {
            throw ParawaveError(name, "not a \(what) checkpoint (kind '\(file.metadata["kind"] ?? "none")')")
        }
        try CheckpointFormat.checkVersion(file, name: name)
        guard let json = file.metadata["config"], let config = try? JSONDecoder().decode(C.self, from: Data(json.utf8)) else {
            throw ParawaveError(name, "the checkpoint's \(what) config is missing or unreadable")
        }
        return config
    }

    /// Copies every parameter of `store` from `file` and returns the mel normalisation.
    static func load(_ file: SafeTensors, name: String, store: ParameterStore, prefix: String, bands: Int) throws -> ([Float], [Float]) {
        var values = [Float](repeating: 0, count: store.count)
        for e in store.entries {
            let v = try file.tensor(e.name, shape: e.shape, file: name)
            values.replaceSubrange(e.offset..<(e.offset + e.count), with: v)
        }
        for (i, v) in values.enumerated() where !v.isFinite {
            throw ParawaveError(name, "parameter \(i) is not finite (\(v)); the checkpoint is damaged")
        }
        store.setValues(values)
        let mean = try file.tensor(prefix + ".mel_mean", shape: [bands], file: name)
        let std = try file.tensor(prefix + ".mel_std", shape: [bands], file: name)
        if std.contains(where: { !($0 > 0) }) || mean.contains(where: { !$0.isFinite }) {
            throw ParawaveError(name, "the checkpoint's mel normalisation is damaged")
        }
        return (mean, std)
    }
}

/// The version of the checkpoint layout written by this build.
public enum CheckpointFormat {
    public static let version = 1

    static func checkVersion(_ file: SafeTensors, name: String) throws {
        guard let text = file.metadata["format_version"], let v = Int(text) else {
            throw ParawaveError(name, "the checkpoint has no format_version")
        }
        if v > version {
            throw ParawaveError(name, "checkpoint format \(v) is newer than this build reads (\(version)); update Parawave")
        }
    }
}
