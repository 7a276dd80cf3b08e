import Foundation
import ParawaveAudio
import ParawaveCore

/// `parawave prepare`: turns a speech corpus into a data directory.
///
/// For every audio file: read (any format libsndfile reads, channels averaged), skip it if
/// it is saturated (more than `data.max_clipped_fraction` of samples at full scale), convert
/// to the recipe's rate with libsoxr, scale it down if its peak exceeds full scale (lossy
/// codecs overshoot; hard clipping would add distortion), optionally trim leading and trailing
/// silence, cut files longer than `data.max_seconds` into equal pieces, and write
/// `audio/ID.wav` (16-bit PCM), `mel/ID.npy` (log-mel, (n_mels, frames) float32) and
/// `f0/ID.npy` (pYIN's F0 in Hz, 0 where unvoiced, and voiced probability on the mel's
/// frames, (2, frames) float32).
/// Then `manifest.jsonl`, `stats.json` (training-mel statistics), `prepare.json` (settings,
/// counts, skipped files) and spectrogram PNGs of a few validation utterances.
///
/// The directory is built beside the destination and moved into place at the end, so a
/// failed or interrupted run leaves no half-written data directory. A file that cannot be
/// used is reported and skipped, never fatal.
public struct Prepare {
    public struct Skipped: Codable, Equatable, Sendable {
        public var path: String
        public var reason: String
    }

    public struct Report: Codable, Sendable {
        public var utterances = 0
        public var train = 0
        public var validation = 0
        public var seconds = 0.0
        public var sourceFiles = 0
        /// Files whose peak exceeded full scale and were scaled down to fit.
        public var rescaledFiles = 0
        public var skipped: [Skipped] = []
        public var sources: [String] = []
        public var mel = MelSettings()
        /// The F0 tracker's settings.
        public var pitch: PitchSettings?
        /// Distinct speakers named (with `data.speaker_pattern`; 0 without).
        public var speakers = 0

        enum CodingKeys: String, CodingKey {
            case utterances, train, validation, seconds, sourceFiles = "source_files", rescaledFiles = "rescaled_files"
            case skipped, sources, mel, pitch, speakers
        }

        /// The one-paragraph summary printed at the end.
        public var summary: String {
            var text = String(format: "prepared %d utterances from %d files (%.2f h of audio; %d train, %d validation)",
                              utterances, sourceFiles, seconds / 3600, train, validation)
            if speakers > 0 { text += "; \(speakers) speakers" }
            if skipped.isEmpty {
                text += "; nothing skipped"
            } else {
                let reasons = Dictionary(grouping: skipped) { Prepare.reasonKind($0.reason) }
                    .map { "\($0.value.count) \($0.key)" }.sorted().joined(separator: ", ")
                text += "; skipped \(skipped.count) (\(reasons); listed in prepare.json)"
            }
            if rescaledFiles > 0 { text += "; \(rescaledFiles) files scaled down to full scale" }
            return text
        }
    }

    public var recipe: Recipe
    /// Corpus folders or files; empty means the recipe's `data.sources`.
    public var corpora: [String]
    public var output: String
    public var overwrite = false
    /// Where per-file notes (skips) go; standard error by default.
    public var log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    public var showProgress = true
    /// Asked before each file; true stops the preparation, which then leaves nothing behind.
    public var shouldStop: () -> Bool = { StopSignal.requested }

    public init(recipe: Recipe, corpora: [String], output: String) {
        self.recipe = recipe
        self.corpora = corpora
        self.output = output
    }

    /// Runs the preparation and returns its report.
    public func run() throws -> Report {
        let roots = corpora.isEmpty ? recipe.data.sources : corpora
        let (files, missing) = try Corpus.discover(roots)
        let destination = URL(fileURLWithPath: output).standardizedFileURL.path
        if FileManager.default.fileExists(atPath: destination) && !overwrite {
            throw ParawaveError(output, "already exists; pass --overwrite to replace it")
        }
        let parent = URL(fileURLWithPath: destination).deletingLastPathComponent().path
        try OutputPaths.createFolder(parent)
        let staging = destination + ".partial-\(getpid())"
        try? FileManager.default.removeItem(atPath: staging)
        Self.removeAbandonedStaging(of: destination)
        for folder in ["audio", "mel", "f0", "png"] {
            try OutputPaths.createFolder(staging + "/" + folder)
        }
        do {
            let report = try build(files: files, missing: missing, roots: roots, into: staging)
            if FileManager.default.fileExists(atPath: destination) { try FileManager.default.removeItem(atPath: destination) }
            try FileManager.default.moveItem(atPath: staging, toPath: destination)
            return report
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
    }

    private func build(files: [Corpus.File], missing: [String], roots: [String], into directory: String) throws -> Report {
        let audio = recipe.audio, data = recipe.data
        let front = try MelSpectrogram(settings: audio.mel)
        let tracker = try PitchTracker(settings: recipe.pitch.settings(audio: audio))
        var report = Report()
        report.sources = roots
        report.mel = audio.mel
        report.pitch = tracker.settings
        report.sourceFiles = files.count
        for path in missing { skip(path, "listed in metadata.csv but missing", &report) }
        let progress = ProgressReporter("prepare", total: files.count, unit: "files", isTerminal: showProgress ? nil : false,
                                        logInterval: showProgress ? 10 : .infinity)
        var entries: [ManifestEntry] = []
        var statistics = MelStatistics.Accumulator()
        let speakerExpression = try data.speakerExpression()
        for file in files {
            if shouldStop() {
                progress.finish()
                throw ParawaveError(output, "preparation interrupted after \(entries.count) utterances; nothing was written (run it again)")
            }
            defer { progress.advance() }
            var speaker: String?
            if let speakerExpression {
                speaker = DataSection.speaker(in: file.path, expression: speakerExpression)
                if speaker == nil {
                    skip(file.path, "no speaker: data.speaker_pattern '\(data.speakerPattern)' does not match its path", &report)
                    continue
                }
            }
            var samples: [Float]
            do {
                let source = try AudioFile.read(file.path)
                if let bad = source.samples.firstIndex(where: { !$0.isFinite }) {
                    skip(file.path, "contains a non-finite sample at index \(bad)", &report)
                    continue
                }
                let clipped = Double(source.samples.lazy.filter { abs($0) >= 0.999 }.count) / Double(source.samples.count)
                if clipped > data.maxClippedFraction {
                    skip(file.path, String(format: "clipped: %.2f%% of samples at full scale (max_clipped_fraction %.2f%%)",
                                           100 * clipped, 100 * data.maxClippedFraction), &report)
                    continue
                }
                samples = try Resampler.resample(source, to: audio.sampleRate).samples
            } catch let error as ParawaveError {
                skip(file.path, error.message, &report)
                continue
            }
            let peak = samples.lazy.map(abs).max() ?? 0
            if peak > 1 {
                let scale = 0.999 / peak
                for i in samples.indices { samples[i] *= scale }
                report.rescaledFiles += 1
            }
            if data.trimSilence {
                let keep = SilenceTrimmer.span(samples, topDB: data.trimDB, frameLength: audio.nFFT, hopLength: audio.hopLength)
                samples = Array(samples[keep])
            }
            let seconds = Double(samples.count) / Double(audio.sampleRate)
            if seconds < data.minSeconds {
                skip(file.path, String(format: "too short: %.2f s after trimming (min_seconds %.2f)", seconds, data.minSeconds), &report)
                continue
            }
            let pieces = Int((seconds / data.maxSeconds).rounded(.up))
            for piece in 0..<pieces {
                let lo = samples.count * piece / pieces, hi = samples.count * (piece + 1) / pieces
                let id = pieces == 1 ? file.id : file.id + String(format: "-part%02d", piece + 1)
                let segment = Array(samples[lo..<hi])
                let mel = front.logMel(segment)
                let track = tracker.track(segment)
                let split: ManifestEntry.Split = Corpus.isValidation(id, fraction: data.validationFraction) ? .validation : .train
                try AudioFile.write(Audio(samples: segment, sampleRate: audio.sampleRate), to: "\(directory)/audio/\(id).wav")
                try NPY.write(mel, to: "\(directory)/mel/\(id).npy")
                try NPY.write(track.stacked, shape: [2, track.frames], to: "\(directory)/f0/\(id).npy")
                entries.append(ManifestEntry(id: id, source: file.path, audio: "audio/\(id).wav", mel: "mel/\(id).npy",
                                             seconds: Double(segment.count) / Double(audio.sampleRate),
                                             samples: segment.count, frames: mel.columns, split: split, speaker: speaker,
                                             f0: "f0/\(id).npy"))
                if split == .train { statistics.add(mel) }
            }
        }
        progress.finish()
        guard !entries.isEmpty else {
            throw ParawaveError(roots.joined(separator: ", "), "no usable audio: all \(files.count) files were skipped (\(report.skipped.first?.reason ?? "?"))")
        }
        Self.ensureBothSplits(&entries, fraction: data.validationFraction)
        if statistics.frames == 0 {
            for entry in entries where entry.split == .train {
                statistics.add(try MelFile.read("\(directory)/\(entry.mel)", nMels: audio.nMels))
            }
        }
        report.utterances = entries.count
        report.train = entries.filter { $0.split == .train }.count
        report.validation = entries.count - report.train
        report.seconds = entries.map(\.seconds).reduce(0, +)
        report.speakers = Set(entries.compactMap(\.speaker)).count
        try DataDirectory.writeManifest(entries, in: directory)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(encoder.encode(statistics.statistics), to: directory + "/stats.json")
        try AtomicFile.write(encoder.encode(report), to: directory + "/prepare.json")
        // Previews spread evenly over the validation set, so they show several sources.
        let validation = entries.filter { $0.split == .validation }.sorted { $0.id < $1.id }
        let count = min(data.previewImages, validation.count)
        for entry in (0..<count).map({ validation[$0 * validation.count / count] }) {
            let mel = try MelFile.read("\(directory)/\(entry.mel)", nMels: audio.nMels)
            let f0 = try entry.f0.map { try NPY.read("\(directory)/\($0)").values.prefix(mel.columns).map { $0 } }
            try SpectrogramImage.write([.init(title: entry.id, logMel: mel, f0: f0)], settings: audio.mel, to: "\(directory)/png/\(entry.id).png")
        }
        return report
    }

    /// Removes the staging folders (DATA.partial-PID) that killed preparations of the same
    /// destination left behind: those whose process no longer exists.
    static func removeAbandonedStaging(of destination: String) {
        let url = URL(fileURLWithPath: destination)
        let parent = url.deletingLastPathComponent().path, prefix = url.lastPathComponent + ".partial-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count)), pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { try? FileManager.default.removeItem(atPath: parent + "/" + name) }
        }
    }

    /// Moves one utterance across when the hash split left a side empty (tiny corpora):
    /// validation needs at least one utterance when the fraction is positive, train always,
    /// except at fraction 1, an evaluation-only corpus, which is all validation.
    static func ensureBothSplits(_ entries: inout [ManifestEntry], fraction: Double) {
        if fraction >= 1 {
            for i in entries.indices { entries[i].split = .validation }
            return
        }
        guard entries.count >= 2 else {
            for i in entries.indices { entries[i].split = .train }
            return
        }
        let ranked = entries.indices.sorted { Corpus.hashFraction(entries[$0].id) < Corpus.hashFraction(entries[$1].id) }
        if fraction > 0 && !entries.contains(where: { $0.split == .validation }) { entries[ranked.first!].split = .validation }
        if !entries.contains(where: { $0.split == .train }) { entries[ranked.last!].split = .train }
    }

    /// Records a skipped file. Damaged or unreadable files are reported one line each as
    /// they occur; deliberate skips (too short, clipped) are only tallied in the summary
    /// and listed in prepare.json, so a large corpus does not flood the terminal.
    private func skip(_ path: String, _ reason: String, _ report: inout Report) {
        report.skipped.append(Skipped(path: path, reason: reason))
        if !["too short", "clipped", "no speaker"].contains(Self.reasonKind(reason)) { log("skipped \(path): \(reason)") }
    }

    /// A short name for a skip reason, for the summary's tally.
    static func reasonKind(_ reason: String) -> String {
        if reason.hasPrefix("too short") { return "too short" }
        if reason.hasPrefix("clipped") { return "clipped" }
        if reason.hasPrefix("no speaker") { return "no speaker" }
        if reason.contains("truncated") { return "truncated" }
        if reason.contains("missing") { return "missing" }
        if reason.contains("empty") || reason.contains("no audio") { return "empty" }
        return "unreadable"
    }
}
