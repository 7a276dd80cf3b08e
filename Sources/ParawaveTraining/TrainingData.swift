import Foundation
import ParawaveAudio
import ParawaveCore

/// A prepared data directory's utterances loaded for training: audio and log-mel in memory,
/// checked against the recipe's audio settings.
public struct TrainingData: Sendable {
    public struct Utterance: Sendable {
        public var id: String
        public var audio: [Float]
        /// (n_mels, frames).
        public var mel: Matrix
        /// The speaker named in the manifest, if any.
        public var speaker: String?
        /// F0 in Hz per mel frame (0 where unvoiced), when the data has F0 tracks.
        public var f0: [Float]?

        public init(id: String, audio: [Float], mel: Matrix, speaker: String? = nil, f0: [Float]? = nil) {
            self.id = id
            self.audio = audio
            self.mel = mel
            self.speaker = speaker
            self.f0 = f0
        }
    }

    /// The data directory, when loaded from one.
    public let directory: DataDirectory?
    public let settings: MelSettings
    public let train: [Utterance]
    public let validation: [Utterance]
    /// Per-band mean and standard deviation of the training mels (from stats.json).
    public let melMean: [Float]
    public let melStd: [Float]
    /// The speakers the utterances name, sorted; empty when they name none.
    public var speakers: [String] { Array(Set((train + validation).compactMap(\.speaker))).sorted() }

    /// Utterances already in memory (tests, tools); the normalisation comes from their mels.
    public init(train: [Utterance], validation: [Utterance], audio: MelSettings) {
        directory = nil
        settings = audio
        self.train = train
        self.validation = validation
        var accumulator = MelStatistics.Accumulator()
        for u in train { accumulator.add(u.mel) }
        let stats = accumulator.statistics
        melMean = stats.mean.map { Float($0) }
        melStd = stats.std.map { Float(max($0, 1e-3)) }
    }

    /// Loads `path`; the data must have been prepared with `audio` (sample rate, hop, mel bands...).
    public init(_ path: String, audio: MelSettings, progress: Bool = true) throws {
        let directory = try DataDirectory(path)
        self.directory = directory
        settings = audio
        if let prepared = directory.preparedSettings {
            try prepared.requireSame(as: audio, mine: "the data", theirs: "the recipe", path: path, remedy: "prepare it again with this recipe")
        }
        let reporter = progress ? ProgressReporter("loading \(path)", total: directory.entries.count, unit: "files") : nil
        func load(_ entries: [ManifestEntry]) throws -> [Utterance] {
            try entries.map { entry in
                let audioFile = try AudioFile.read(directory.file(entry.audio))
                if audioFile.sampleRate != audio.sampleRate {
                    throw ParawaveError(directory.file(entry.audio), "is at \(audioFile.sampleRate) Hz, the recipe at \(audio.sampleRate) Hz")
                }
                let mel = try MelFile.read(directory.file(entry.mel), nMels: audio.nMels)
                let f0 = try entry.f0.map { try Self.readF0(directory.file($0), frames: mel.columns) }
                reporter?.advance()
                return Utterance(id: entry.id, audio: audioFile.samples, mel: mel, speaker: entry.speaker, f0: f0)
            }
        }
        let train = try load(directory.entries(.train))
        self.train = train
        validation = try load(directory.entries(.validation))
        reporter?.finish()
        if train.isEmpty { throw ParawaveError(path, "has no training utterances") }
        guard let data = FileManager.default.contents(atPath: path + "/stats.json"),
              let stats = try? JSONDecoder().decode(MelStatistics.self, from: data), stats.mean.count == audio.nMels else {
            throw ParawaveError(path + "/stats.json", "missing or unreadable mel statistics; prepare the data again")
        }
        melMean = stats.mean.map { Float($0) }
        melStd = stats.std.map { Float(max($0, 1e-3)) }
    }

    /// Row 0 (F0 in Hz) of an F0 track file (2, frames) whose frames must be the mel's.
    public static func readF0(_ path: String, frames: Int) throws -> [Float] {
        let array = try NPY.read(path)
        guard array.shape.count == 2, array.shape[0] == 2, array.shape[1] == frames else {
            throw ParawaveError(path, "an F0 track must have shape (2, \(frames)) to match its mel, not \(array.shape)")
        }
        let f0 = Array(array.values[0..<frames])
        if let bad = f0.firstIndex(where: { !$0.isFinite || $0 < 0 }) {
            throw ParawaveError(path, "F0 at frame \(bad) is \(f0[bad]); F0 must be finite and non-negative (0 where unvoiced)")
        }
        return f0
    }

    /// Throws unless every utterance has an F0 track (a source-conditioned model needs them).
    public func requireF0(for model: String) throws {
        if let missing = (train + validation).first(where: { $0.f0 == nil }) {
            throw ParawaveError(directory?.path ?? missing.id,
                                "has no F0 track for '\(missing.id)', which the \(model)'s source needs; prepare the data again with this version")
        }
    }
}

/// A batch of crops: audio (B, T), mask (B, T) (1 where a real sample is), mel (B, Cc, F),
/// each row's speaker (nil for rows without one, such as padding), F0 (B, F) (0 where
/// unvoiced or unknown) and, when the sampler makes one, each row's source (B, T).
/// A row that `continues` starts inside its utterance after a masked lead
/// (`CropSampler.lead`): the audio before the row is unknown to the model, where a row that
/// starts at its utterance's first sample has the true history, silence.
public struct CropBatch: Sendable {
    public var audio: [Float]
    public var mask: [Float]
    public var mel: [Float]
    public var speakers: [String?]
    public var f0: [Float]
    public var continues: [Bool]
    /// The sources (B, T), empty when the model takes none.
    public var source: [Float] = []
    public var batch: Int, frames: Int, hop: Int
    public var length: Int { frames * hop }

    init(batch: Int, frames: Int, hop: Int, bands: Int) {
        self.batch = batch
        self.frames = frames
        self.hop = hop
        audio = [Float](repeating: 0, count: batch * frames * hop)
        mask = audio
        mel = [Float](repeating: 0, count: batch * bands * frames)
        speakers = [String?](repeating: nil, count: batch)
        f0 = [Float](repeating: 0, count: batch * frames)
        continues = [Bool](repeating: false, count: batch)
    }

    /// Rows `rows` of the batch: one rank's part of a data-parallel step.
    public func rows(_ rows: Range<Int>) -> CropBatch {
        if rows == 0..<batch { return self }
        let T = length, bands = mel.count / max(batch, 1) / frames
        var out = CropBatch(batch: rows.count, frames: frames, hop: hop, bands: bands)
        out.audio = Array(audio[(rows.lowerBound * T)..<(rows.upperBound * T)])
        out.mask = Array(mask[(rows.lowerBound * T)..<(rows.upperBound * T)])
        out.mel = Array(mel[(rows.lowerBound * bands * frames)..<(rows.upperBound * bands * frames)])
        out.speakers = Array(speakers[rows])
        out.f0 = Array(f0[(rows.lowerBound * frames)..<(rows.upperBound * frames)])
        out.continues = Array(continues[rows])
        out.source = source.isEmpty ? [] : Array(source[(rows.lowerBound * T)..<(rows.upperBound * T)])
        return out
    }

    /// (B, F): 1 where a frame holds real audio (its first sample is real), 0 for padding.
    public var frameMask: [Float] {
        (0..<(batch * frames)).map { i in mask[(i / frames) * length + (i % frames) * hop] }
    }

    /// Each row's raw log-mel (magnitude) moved by a level L and a tilt S drawn uniformly from
    /// [-A, A] dB: band c of C gains L + S (c / (C - 1) - 1/2) dB. Values at the log floor
    /// (silence, padding) stay there, and none goes below it.
    public mutating func augmentLevelAndTilt(decibels A: Double, logFloor: Float, generator: inout SeededGenerator) {
        let B = batch, F = frames, C = mel.count / max(B * F, 1)
        let perDecibel = Float(log(10.0) / 20)
        for b in 0..<B {
            let level = Float((2 * generator.uniform() - 1) * A)
            let tilt = Float((2 * generator.uniform() - 1) * A)
            for c in 0..<C {
                let shift = (level + tilt * (C > 1 ? Float(c) / Float(C - 1) - 0.5 : 0)) * perDecibel
                for f in 0..<F {
                    let i = (b * C + c) * F + f
                    if mel[i] > logFloor + 1e-6 { mel[i] = max(mel[i] + shift, logFloor) }
                }
            }
        }
    }

    /// Each row's source from its F0, starting at `phases[b]` (or aligned to its audio, as the
    /// source's `trainingPhase` says).
    mutating func makeSource(_ sine: SineSource, sampleRate: Int, phases: [Double]) {
        let T = length
        source = [Float](repeating: 0, count: batch * T)
        for b in 0..<batch {
            let row = sine.trainingSignal(f0: Array(f0[(b * frames)..<((b + 1) * frames)]), hop: hop, sampleRate: sampleRate,
                                          audio: Array(audio[(b * T)..<((b + 1) * T)]), initialPhase: phases[b])
            source.replaceSubrange((b * T)..<((b + 1) * T), with: row)
        }
    }

    /// Copies `frames` frames of `u` from `startFrame` into row `b`; past the end of the
    /// utterance audio is zero, masked out, and the mel is the log floor (silence).
    mutating func fill(_ b: Int, from u: TrainingData.Utterance, startFrame: Int, floor: Float) {
        let T = length, C = u.mel.rows
        let first = startFrame * hop
        speakers[b] = u.speaker
        for t in 0..<T {
            let i = first + t
            let real = i < u.audio.count
            audio[b * T + t] = real ? u.audio[i] : 0
            mask[b * T + t] = real ? 1 : 0
        }
        for c in 0..<C {
            for f in 0..<frames {
                let source = startFrame + f
                mel[(b * C + c) * frames + f] = source < u.mel.columns ? u.mel[c, source] : floor
            }
        }
        if let track = u.f0 {
            for f in 0..<frames where startFrame + f < track.count { f0[b * frames + f] = track[startFrame + f] }
        }
    }
}

/// Random crops aligned to mel frames: an utterance with probability proportional to its
/// length, then a uniform start frame. With a `source`, each crop's source is made from its
/// F0 with an initial phase drawn uniformly from [0, 2 pi) (fixed at 0 for `fixedBatches`).
///
/// With a `lead`, a crop that starts inside its utterance gives its first `lead` frames as
/// history only: their samples are masked from the loss, and the row `continues`. An
/// autoregressive model then learns every scored sample from real past samples, as it
/// generates, instead of from a crop's zero padding; a crop at the utterance's start keeps
/// them, since silence is the true history there.
public struct CropSampler: Sendable {
    let utterances: [TrainingData.Utterance]
    let cumulative: [Int]
    /// Frames per crop, the lead included.
    public let frames: Int
    /// Leading frames that are history only in a crop that starts inside its utterance.
    public let lead: Int
    let hop: Int
    let floor: Float
    let source: SineSource?, sampleRate: Int

    /// Crops of `frames` mel frames (`MelSettings.frames(forCrop:)` of a recipe's crop).
    public init(_ utterances: [TrainingData.Utterance], frames: Int, hop: Int, logFloor: Double, source: SineSource? = nil,
                sampleRate: Int = 16000, lead: Int = 0) {
        precondition(!utterances.isEmpty, "no utterances")
        precondition(lead >= 0 && lead < frames, "a crop's lead must leave frames to score")
        self.lead = lead
        self.utterances = utterances
        var total = 0
        cumulative = utterances.map { total += max($0.mel.columns, 1); return total }
        precondition(frames >= 1, "a crop needs a frame")
        self.frames = frames
        self.hop = hop
        floor = Float(log(logFloor))
        self.source = source
        self.sampleRate = sampleRate
    }

    public func next(batch: Int, generator: inout SeededGenerator) -> CropBatch {
        var out = CropBatch(batch: batch, frames: frames, hop: hop, bands: utterances[0].mel.rows)
        for b in 0..<batch {
            let pick = Int(generator.next() % UInt64(cumulative.last!))
            var lo = 0, hi = cumulative.count - 1
            while lo < hi {
                let mid = (lo + hi) / 2
                if cumulative[mid] > pick { hi = mid } else { lo = mid + 1 }
            }
            let u = utterances[lo]
            let room = max(0, u.mel.columns - frames)
            let start = room > 0 ? Int(generator.next() % UInt64(room + 1)) : 0
            out.fill(b, from: u, startFrame: start, floor: floor)
            if start > 0 && lead > 0 {
                out.continues[b] = true
                for t in 0..<(lead * hop) { out.mask[b * out.length + t] = 0 }
            }
        }
        if let source {
            let phases = (0..<batch).map { _ in 2 * Double.pi * generator.uniform() }
            out.makeSource(source, sampleRate: sampleRate, phases: phases)
        }
        return out
    }

    /// Fixed crops (each utterance's first `frames` frames) in batches, the last one padded
    /// with masked rows: the validation set.
    public func fixedBatches(batch: Int) -> [CropBatch] {
        stride(from: 0, to: utterances.count, by: batch).map { start in
            var out = CropBatch(batch: batch, frames: frames, hop: hop, bands: utterances[0].mel.rows)
            for b in 0..<min(batch, utterances.count - start) { out.fill(b, from: utterances[start + b], startFrame: 0, floor: floor) }
            if let source { out.makeSource(source, sampleRate: sampleRate, phases: [Double](repeating: 0, count: batch)) }
            return out
        }
    }
}
