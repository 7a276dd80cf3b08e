import Foundation
import ParawaveAudio
import ParawaveCore

/// Finds the audio files of a speech corpus.
///
/// A folder with `metadata.csv` and `wavs/` is read as LJSpeech (`ID|text|normalised text`
/// lines naming `wavs/ID.wav`); any other folder is searched recursively for files whose
/// ending libsndfile reads (`AudioFile.extensions`); a file is taken as it is. Each file
/// gets an id from its folder's name and its path inside it (`klettres_fr_alpha_a-15`).
public enum Corpus {
    public struct File: Equatable, Sendable {
        public var path: String
        public var id: String
    }

    /// The files under `roots`, sorted by id, ids unique; and files listed but missing.
    public static func discover(_ roots: [String]) throws -> (files: [File], missing: [String]) {
        guard !roots.isEmpty else {
            throw ParawaveError("prepare", "no corpus folder given and the recipe's data.sources is empty")
        }
        var files: [File] = [], missing: [String] = []
        for root in roots {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory) else {
                throw ParawaveError(root, "no such corpus folder")
            }
            let rootURL = URL(fileURLWithPath: root).standardizedFileURL
            let prefix = sanitise(rootURL.lastPathComponent)
            if !isDirectory.boolValue {
                files.append(File(path: rootURL.path, id: sanitise(rootURL.deletingPathExtension().lastPathComponent)))
                continue
            }
            let metadata = rootURL.appendingPathComponent("metadata.csv").path
            if FileManager.default.fileExists(atPath: metadata) && FileManager.default.fileExists(atPath: rootURL.appendingPathComponent("wavs").path) {
                let text = (try? String(contentsOfFile: metadata, encoding: .utf8)) ?? ""
                for line in text.split(whereSeparator: \.isNewline) {
                    let name = String(line.prefix { $0 != "|" }).trimmingCharacters(in: .whitespaces)
                    guard !name.isEmpty else { continue }
                    let path = rootURL.appendingPathComponent("wavs/\(name).wav").path
                    if FileManager.default.fileExists(atPath: path) {
                        files.append(File(path: path, id: sanitise(name)))
                    } else {
                        missing.append(path)
                    }
                }
                continue
            }
            guard let walker = FileManager.default.enumerator(at: rootURL, includingPropertiesForKeys: [.isRegularFileKey], options: [.skipsHiddenFiles]) else {
                throw ParawaveError(root, "cannot list the folder")
            }
            for case let url as URL in walker where AudioFile.extensions.contains(url.pathExtension.lowercased()) {
                let relative = url.standardizedFileURL.path.dropFirst(rootURL.path.count + 1)
                let stem = (relative as NSString).deletingPathExtension
                files.append(File(path: url.standardizedFileURL.path, id: prefix + "_" + sanitise(stem)))
            }
        }
        if files.isEmpty {
            let kinds = AudioFile.extensions.sorted().prefix(8).map { "." + $0 }.joined(separator: ", ")
            throw ParawaveError(roots.joined(separator: ", "), "no audio files found (looked for \(kinds), ...)")
        }
        files.sort { $0.id < $1.id || ($0.id == $1.id && $0.path < $1.path) }
        var seen: [String: Int] = [:]
        for i in files.indices {
            let count = seen[files[i].id, default: 0]
            seen[files[i].id] = count + 1
            if count > 0 { files[i].id += "-\(count + 1)" }
        }
        return (files, missing)
    }

    /// Letters, digits, `-` and `.` kept; anything else (path separators included) becomes `_`.
    static func sanitise(_ text: String) -> String {
        String(text.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") ? $0 : "_" })
    }

    /// Deterministic split: a hash of the id, as a fraction of 2^64, below `fraction`.
    public static func isValidation(_ id: String, fraction: Double) -> Bool {
        hashFraction(id) < fraction
    }

    /// FNV-1a over the id's bytes, then MurmurHash3's 64-bit finaliser. FNV alone leaves its
    /// top bits almost blind to the last bytes, so numbered recordings of one speaker
    /// ("..._a-01" to "..._a-27") would land on the same side together; the finaliser lets
    /// every input bit reach every output bit.
    static func hashFraction(_ id: String) -> Double {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in id.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        hash ^= hash >> 33
        hash &*= 0xFF51_AFD7_ED55_8CCD
        hash ^= hash >> 33
        hash &*= 0xC4CE_B9FE_1A85_EC53
        hash ^= hash >> 33
        return Double(hash >> 11) * 0x1.0p-53
    }
}
