import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine

/// A kind of trained model that lives in a checkpoint (teacher, student; WaveGlow next): its
/// parameters in one store under `role`'s prefix, its config, and the per-band mel
/// normalisation it was trained with. Saving and loading are shared (`ModelCheckpoint`).
/// A model's config, stored as JSON in its checkpoint and validated when loaded.
public protocol ModelConfig: Codable, Equatable, Sendable {
    /// Problems with the config, each naming the value; empty when it is usable.
    func problems() -> [String]
}

public protocol CheckpointedModel: AnyObject {
    associatedtype Config: ModelConfig
    /// The checkpoint's `kind` metadata ("parawave.teacher").
    static var kind: String { get }
    /// "teacher", "student": the prefix of its parameter and normalisation tensors.
    static var role: String { get }
    var config: Config { get }
    var store: ParameterStore { get }
    /// Per-band normalisation of the log-mel, (n_mels) each.
    var melMean: [Float] { get set }
    var melStd: [Float] { get set }
    init(config: Config)

    /// The mel front end it was trained with.
    var mel: MelSettings { get }
    /// The speakers it is conditioned on (empty: none).
    var speakers: [String] { get }
    /// The source excitation it is conditioned on (nil: none).
    var source: SineSource? { get }
    /// Its pitch predictor, if it carries one.
    var pitch: PitchPredictor? { get }
}

extension CheckpointedModel {
    /// Metadata for a checkpoint of this model at `step`.
    public func metadata(step: Int) -> [String: String] { ModelCheckpoint.metadata(kind: Self.kind, config: config, step: step) }

    /// A checkpoint with `values` (the store's layout; the EMA weights for rendering) and the
    /// mel normalisation.
    public func checkpoint(values: [Float], step: Int) -> SafeTensors {
        ModelCheckpoint.make(store: store, values: values, normalisation: (melMean, melStd), prefix: Self.role, metadata: metadata(step: step))
    }

    /// Loads a checkpoint of this kind written by `checkpoint`.
    public static func load(_ file: SafeTensors, name: String) throws -> Self {
        let model = Self(config: try ModelCheckpoint.config(Config.self, kind: kind, what: role, file: file, name: name))
        try model.loadValues(from: file, name: name)
        return model
    }

    /// F0 per frame (Hz, 0 where unvoiced) and the voiced probability that the pitch
    /// predictor gives a raw log-mel (Cc, F); nil without a predictor.
    public func predictF0(mel: Matrix) -> (f0: [Float], probability: [Float])? {
        pitch?.track(mel: mel, mean: melMean, std: melStd, store: store)
    }

    /// The pitch predictor's pass on a raw log-mel (B, Cc, F) into `p`, and its loss against
    /// the F0 tracks `f0` (B, F) over the frames where `mask` (B, F) is nonzero; its parameter
    /// gradients are added into the store. Masked frames (padding
    /// past an utterance's end) enter as zeros, as the convolutions' own padding does at
    /// render time. `totals` as for `PitchPredictor.loss`.
    public func pitchLoss(_ p: PitchPredictor.Activations, mel: UnsafePointer<Float>, f0: UnsafePointer<Float>, mask: UnsafePointer<Float>?,
                          totals: (frames: Int, voiced: Int)? = nil) -> PitchPredictor.Loss {
        guard let pitch else { preconditionFailure("this model has no pitch predictor") }
        let B = p.batch, C = melMean.count, F = p.frames
        p.input.withUnsafeMutableBufferPointer { input in
            MelNormalisation.apply(mel, into: input.baseAddress!, mean: melMean, std: melStd, batch: B, frames: F)
            guard let mask else { return }
            for b in 0..<B {
                for f in 0..<F where mask[b * F + f] == 0 {
                    for c in 0..<C { input[(b * C + c) * F + f] = 0 }
                }
            }
        }
        pitch.forward(p, mel: p.input, store: store)
        let loss = pitch.loss(p, f0: f0, mask: mask, totals: totals)
        pitch.backward(p, mel: p.input, store: store)
        return loss
    }

    /// Copies every parameter and the mel normalisation from `file`.
    public func loadValues(from file: SafeTensors, name: String) throws {
        (melMean, melStd) = try ModelCheckpoint.load(file, name: name, store: store, prefix: Self.role, bands: melMean.count)
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
    /// Every value is checked against the ranges the recipe allows, so a damaged or forged
    /// config cannot ask for absurd allocations or divide by zero later.
    static func config<C: ModelConfig>(_ type: C.Type, kind: String, what: String, file: SafeTensors, name: String) throws -> C {
        guard file.metadata["kind"] == kind else {
            throw ParawaveError(name, "not a \(what) checkpoint (kind '\(file.metadata["kind"] ?? "none")')")
        }
        try CheckpointFormat.checkVersion(file, name: name)
        guard let json = file.metadata["config"] else { throw ParawaveError(name, "the checkpoint has no \(what) config") }
        let config: C
        do {
            config = try JSONDecoder().decode(C.self, from: Data(json.utf8))
        } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            throw ParawaveError(name, "the checkpoint's \(what) config is damaged: \(context.debugDescription)")
        } catch {
            throw ParawaveError(name, "the checkpoint's \(what) config is unreadable (\(describe(error)))")
        }
        let problems = config.problems()
        guard problems.isEmpty else {
            throw ParawaveError(name, "the checkpoint's \(what) config is invalid: " + problems.joined(separator: "; "))
        }
        return config
    }

    /// A decoding error in a sentence: the missing or mistyped key.
    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "no '\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "'\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type"
        default:
            return "not valid JSON"
        }
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
