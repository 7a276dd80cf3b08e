import Foundation
import ParawaveAudio
import ParawaveCore

/// One utterance of a prepared data directory: a line of `manifest.jsonl`.
public struct ManifestEntry: Codable, Equatable, Sendable {
    public enum Split: String, Codable, Sendable { case train, validation }

    public var id: String
    /// The corpus file it came from.
    public var source: String
    /// Audio (16-bit WAV at the recipe's rate), relative to the data directory.
    public var audio: String
    /// Log-mel feature (.npy, (n_mels, frames) float32), relative to the data directory.
    public var mel: String
    public var seconds: Double
    public var samples: Int
    public var frames: Int
    public var split: Split
    /// The speaker, when the corpus was prepared with `data.speaker_pattern`.
    public var speaker: String? = nil
    /// The F0 track (.npy, (2, frames) float32: F0 in Hz, 0 where unvoiced, and the voiced
    /// probability), relative to the data directory; nil in data prepared before F0 was tracked.
    public var f0: String? = nil
}

/// A prepared data directory: `manifest.jsonl`, `audio/`, `mel/`, `stats.json`, `prepare.json`.
public struct DataDirectory: Sendable {
    public let path: String
    public let entries: [ManifestEntry]

    /// Opens `path`, reading its manifest.
    public init(_ path: String) throws {
        self.path = path
        let manifest = path + "/manifest.jsonl"
        guard let data = FileManager.default.contents(atPath: manifest) else {
            throw ParawaveError(path, "not a prepared data directory (no manifest.jsonl); run `parawave prepare` first")
        }
        entries = try Self.parseManifest(data, name: manifest)
    }

    /// The entries of a manifest's bytes, one JSON object a line; `name` labels errors.
    public static func parseManifest(_ data: Data, name: String) throws -> [ManifestEntry] {
        let decoder = JSONDecoder()
        var entries: [ManifestEntry] = []
        for (number, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() where !line.isEmpty {
            do {
                entries.append(try decoder.decode(ManifestEntry.self, from: Data(line.utf8)))
            } catch {
                throw ParawaveError(name, "line \(number + 1) is not a valid manifest entry")
            }
        }
        if entries.isEmpty { throw ParawaveError(name, "the manifest lists no utterances") }
        return entries
    }

    public func entries(_ split: ManifestEntry.Split) -> [ManifestEntry] { entries.filter { $0.split == split } }

    /// The mel settings the data was prepared with (`prepare.json`), or nil when that file is
    /// missing or unreadable.
    public var preparedSettings: MelSettings? {
        guard let data = FileManager.default.contents(atPath: path + "/prepare.json"),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let melObject = object["mel"], let melData = try? JSONSerialization.data(withJSONObject: melObject) else { return nil }
        return try? JSONDecoder().decode(MelSettings.self, from: melData)
    }

    /// The F0 tracker's settings the data was prepared with (`prepare.json`); for data
    /// prepared before F0 was tracked, the default range on its mel's frame grid.
    public var pitchSettings: PitchSettings {
        if let data = FileManager.default.contents(atPath: path + "/prepare.json"),
           let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let pitchObject = object["pitch"], let pitchData = try? JSONSerialization.data(withJSONObject: pitchObject),
           let settings = try? JSONDecoder().decode(PitchSettings.self, from: pitchData) {
            return settings
        }
        let mel = preparedSettings ?? MelSettings()
        return PitchSettings(sampleRate: mel.sampleRate, frameLength: mel.nFFT, hopLength: mel.hopLength)
    }

    /// Absolute path of a file named in the manifest.
    public func file(_ relative: String) -> String { path + "/" + relative }

    /// Writes `entries` as `manifest.jsonl` in `directory`, atomically, sorted by id.
    static func writeManifest(_ entries: [ManifestEntry], in directory: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var text = Data()
        for entry in entries.sorted(by: { $0.id < $1.id }) {
            text.append(try encoder.encode(entry))
            text.append(0x0A)
        }
        try AtomicFile.write(text, to: directory + "/manifest.jsonl")
    }
}
