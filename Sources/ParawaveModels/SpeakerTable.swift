import ParawaveCore
import ParawaveEngine

/// A model's table of speaker embeddings, (N, E) under `PREFIX.speaker_embedding`: gathers the
/// rows of a batch's speakers and scatters their gradients back.
struct SpeakerTable: Sendable {
    let entry: ParameterStore.Entry
    let count: Int, channels: Int

    init(prefix: String, speakers: Int, channels: Int, store: ParameterStore) {
        count = speakers
        self.channels = channels
        entry = store.add("\(prefix).speaker_embedding", shape: [speakers, channels])
    }

    /// Unit-variance uniform entries (as an embedding's N(0, 1) start, bounded).
    func initialise(_ store: ParameterStore, generator: inout SeededGenerator) {
        store.initUniform(entry, bound: Float(3).squareRoot(), generator: &generator)
    }

    /// The embeddings (B, E) of a batch's speakers into `out`, for a model whose table is
    /// `table` (nil: the model is not speaker-conditioned, and `speakers` must be nil too).
    static func embed(_ speakers: [Int]?, table: SpeakerTable?, batch: Int, store: ParameterStore, into out: inout [Float], model: String) {
        guard let table else {
            precondition(speakers == nil, "this \(model) is not speaker-conditioned")
            return
        }
        guard let speakers, speakers.count == batch else { preconditionFailure("a speaker-conditioned \(model) needs one speaker per utterance") }
        table.gather(speakers, store: store, into: &out)
    }

    /// Rows of `speakers` into `out` (B, E).
    func gather(_ speakers: [Int], store: ParameterStore, into out: inout [Float]) {
        let table = store.value(entry)
        for (b, s) in speakers.enumerated() {
            precondition(s >= 0 && s < count, "speaker \(s) is not in the model's table of \(count)")
            for i in 0..<channels { out[b * channels + i] = table[s * channels + i] }
        }
    }

    /// Adds each row of `gradient` (B, E) into its speaker's row of the table's gradient.
    func scatter(_ gradient: [Float], speakers: [Int], store: ParameterStore) {
        let table = store.gradient(entry)
        for (b, s) in speakers.enumerated() {
            for i in 0..<channels { table[s * channels + i] += gradient[b * channels + i] }
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
