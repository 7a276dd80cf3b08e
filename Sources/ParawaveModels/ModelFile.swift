import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine

/// A trained model found from a run directory or a checkpoint file, by its `kind`.
public enum TrainedModel {
    case teacher(Teacher)
    case student(Student)

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
        case let kind?:
            throw ParawaveError(file, "holds a '\(kind)', not a model `render` can use (a teacher or a student)")
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

    /// The model's mel front end.
    public var mel: MelSettings {
        switch self {
        case .teacher(let t): t.config.mel
        case .student(let s): s.config.mel
        }
    }

    /// The speakers the model is conditioned on (empty: none).
    public var speakers: [String] {
        switch self {
        case .teacher(let t): t.config.speakers
        case .student(let s): s.config.speakers
        }
    }

    /// The source excitation the model is conditioned on (nil: none).
    public var source: SineSource? {
        switch self {
        case .teacher(let t): t.config.source
        case .student(let s): s.config.source
        }
    }

    /// F0 per frame (Hz, 0 where unvoiced) that the model's pitch predictor gives a raw
    /// log-mel (Cc, F); nil for a model without one.
    public func predictF0(mel: Matrix) -> [Float]? {
        switch self {
        case .teacher(let t): t.predictF0(mel: mel)?.f0
        case .student(let s): s.predictF0(mel: mel)?.f0
        }
    }

    /// True when the model carries a pitch predictor.
    public var hasPitchPredictor: Bool {
        switch self {
        case .teacher(let t): t.pitch != nil
        case .student(let s): s.pitch != nil
        }
    }

    /// "teacher" or "student".
    public var role: String {
        switch self {
        case .teacher: "teacher"
        case .student: "student"
        }
    }
}

/// Speaker names as a model's table knows them.
public enum SpeakerNames {
    /// The row of `name` in `speakers`, or a clear error naming the ones there are.
    public static func index(of name: String, in speakers: [String], model: String) throws -> Int {
        guard !speakers.isEmpty else {
            throw ParawaveError("speaker '\(name)'", "the \(model) is not speaker-conditioned; leave the speaker out")
        }
        if let i = speakers.firstIndex(of: name) { return i }
        throw ParawaveError("speaker '\(name)'", "not one of the \(model)'s speakers: \(listing(speakers))")
    }

    /// Up to 12 names, then how many there are in all.
    static func listing(_ speakers: [String]) -> String {
        speakers.prefix(12).joined(separator: ", ") + (speakers.count > 12 ? ", ... (\(speakers.count) in all)" : "")
    }

    /// The speakers to render with: `name` looked up when given; a speaker-conditioned model
    /// without a name is an error that lists its speakers; nil for a model without speakers.
    public static func choose(_ name: String?, in speakers: [String], model: String) throws -> Int? {
        if let name { return try index(of: name, in: speakers, model: model) }
        guard speakers.isEmpty else {
            throw ParawaveError("--speaker", "the \(model) is speaker-conditioned; name one of its \(speakers.count) speakers (\(listing(speakers)))")
        }
        return nil
    }
}

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

/// Per-band normalisation of a raw natural-log mel with the training corpus's statistics.
enum MelNormalisation {
    /// out (B, Cc, F) = (mel - mean[c]) / std[c].
    static func apply(_ mel: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, mean: [Float], std: [Float], batch: Int, frames F: Int) {
        let C = mean.count
        for b in 0..<batch {
            for c in 0..<C {
                let m = mean[c], inv = 1 / std[c]
                let x = mel + (b * C + c) * F, y = out + (b * C + c) * F
                for f in 0..<F { y[f] = (x[f] - m) * inv }
            }
        }
    }
}
