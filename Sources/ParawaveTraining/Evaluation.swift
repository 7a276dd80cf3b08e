import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels

/// `parawave evaluate`: every utterance of a split rendered from its mel by each system (the
/// Griffin-Lim baseline and the given teachers and students) and compared with the real
/// recording by `QualityMetrics`, plus each system's real-time factor, a teacher's negative
/// log-likelihood of the real audio (bits per sample) and a student's KL to its teacher
/// (nats per sample, Monte-Carlo with fixed noise). Pitch is compared by running the same
/// F0 tracker (pYIN) on the real and the rendered audio (`PitchMetrics`), intelligibility by
/// STOI.
///
/// Means over utterances weight each utterance equally for the spectral measures and STOI
/// (STOI over the utterances that hold 30 frames, about 0.4 s, of speech: it is undefined on
/// the others, whichever system rendered them),
/// each frame equally for the pitch measures, and each sample equally for the NLL and the KL;
/// the real-time factor is total render time over total audio time.
public final class Evaluator {
    public struct Options: Sendable {
        public var split: ManifestEntry.Split = .validation
        /// At most this many utterances of the split, in manifest order.
        public var limit: Int?
        /// Seeds the teacher's sampling and the student's noise (utterance i uses seed + i).
        public var seed: UInt64 = 1
        /// A student renders in chunks of this many frames.
        public var chunkFrames = Student.defaultChunkFrames
        public var griffinLimIterations = 32
        /// Sampling temperature: scales a teacher's logistic scales and a student's noise.
        public var temperature: Float = 1
        /// Monte-Carlo draws per time step for a student's cross-entropy.
        public var mcSamples = 16
        /// Writes WAVs, spectrogram PNGs and the report here.
        public var reportDirectory: String?
        /// The teacher a student's KL is measured against (default: its checkpoint's record).
        public var teacher: String?
        /// Names of the models in the table, in order (default: their role, numbered).
        public var labels: [String] = []
        /// How a teacher's generator stores the weights every sample reads.
        public var precision = RenderPrecision.auto
        /// WaveGlow's sampling standard deviation.
        public var sigma = ModelRenderer.defaultSigma
        /// Where a source-conditioned model's F0 comes from: pYIN on the real recording, the
        /// model's pitch predictor on the mel, or both (then each such model is scored twice,
        /// the second time as `NAME-predicted-f0`).
        public var f0: F0Choice = .tracked
        public var showProgress = true
        public init() {}
    }

    /// One system's scores on one utterance, or their means.
    public struct Score: Codable, Sendable {
        public var quality: QualityMetrics
        public var rtf: Double
        public var nllBits: Double?
        public var klNats: Double?
        /// F0 against the real recording's (nil in reports written before pitch was measured).
        public var pitch: PitchMetrics?
        public var stoi: Double?
        /// `LoudnessExcess.worstDB`: per utterance its worst 100 ms window, in the means the
        /// worst over the split.
        public var burstDB: Double?

        enum CodingKeys: String, CodingKey {
            case logMelDB = "log_mel_db", spectralConvergence = "spectral_convergence", logMagnitude = "log_magnitude"
            case stftDistance = "stft_distance", mcd = "mcd_db", rtf, nllBits = "nll_bits", klNats = "kl_nats", pitch, stoi
            case burstDB = "burst_db"
        }

        public init(quality: QualityMetrics, rtf: Double, nllBits: Double? = nil, klNats: Double? = nil, pitch: PitchMetrics? = nil,
                    stoi: Double? = nil) {
            self.quality = quality
            self.rtf = rtf
            self.nllBits = nllBits
            self.klNats = klNats
            self.pitch = pitch
            self.stoi = stoi
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            quality = QualityMetrics(logMelDB: try c.decode(Double.self, forKey: .logMelDB),
                                     spectralConvergence: try c.decode(Double.self, forKey: .spectralConvergence),
                                     logMagnitude: try c.decode(Double.self, forKey: .logMagnitude), mcd: try c.decode(Double.self, forKey: .mcd))
            rtf = try c.decode(Double.self, forKey: .rtf)
            nllBits = try c.decodeIfPresent(Double.self, forKey: .nllBits)
            klNats = try c.decodeIfPresent(Double.self, forKey: .klNats)
            pitch = try c.decodeIfPresent(PitchMetrics.self, forKey: .pitch)
            stoi = try c.decodeIfPresent(Double.self, forKey: .stoi)
            burstDB = try c.decodeIfPresent(Double.self, forKey: .burstDB)
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(quality.logMelDB, forKey: .logMelDB)
            try c.encode(quality.spectralConvergence, forKey: .spectralConvergence)
            try c.encode(quality.logMagnitude, forKey: .logMagnitude)
            try c.encode(quality.stftDistance, forKey: .stftDistance)
            try c.encode(quality.mcd, forKey: .mcd)
            try c.encode(rtf, forKey: .rtf)
            try c.encodeIfPresent(nllBits, forKey: .nllBits)
            try c.encodeIfPresent(klNats, forKey: .klNats)
            try c.encodeIfPresent(pitch, forKey: .pitch)
            try c.encodeIfPresent(stoi, forKey: .stoi)
            try c.encodeIfPresent(burstDB, forKey: .burstDB)
        }
    }

    public struct SystemSummary: Codable, Sendable {
        public var name: String
        /// "griffin-lim", "teacher" or "student".
        public var kind: String
        public var model: String?
        /// For a student: the teacher its KL was measured against.
        public var teacher: String?
        /// Where a model's F0 came from: "tracked" (pYIN on the recording) or "predicted" (its
        /// pitch predictor on the mel).
        public var f0: String?
        public var utterances: Int
        public var seconds: Double
        public var mean: Score
    }

    public struct UtteranceScores: Codable, Sendable {
        public var id: String
        public var seconds: Double
        public var scores: [String: Score]
    }

    public struct Report: Codable, Sendable {
        public var date: String
        public var version: String
        public var data: String
        public var split: String
        public var mel: String
        public var systems: [SystemSummary]
        public var utterances: [UtteranceScores]
    }

    /// The F0 a source-conditioned model renders with.
    public enum F0Choice: String, CaseIterable, Sendable {
        case tracked, predicted, both
    }

    enum Renderer {
        case griffinLim(GriffinLim)
        /// A model, and for a student the teacher its KL is measured against.
        case model(ModelRenderer, klTeacher: Teacher?)
    }

    struct System {
        var name: String, kind: String, path: String?, teacherPath: String?
        var renderer: Renderer
        /// The model's pitch predictor makes its F0 (rather than pYIN on the recording).
        var predictedF0 = false
    }

    public let data: DataDirectory
    public let settings: MelSettings
    public let options: Options
    let systems: [System]
    let meter: QualityMeter
    let tracker: PitchTracker
    let entries: [ManifestEntry]

    /// Opens the data and the models; every model's audio settings must be the data's.
    public init(models: [String], data path: String, options: Options = Options()) throws {
        data = try DataDirectory(path)
        guard let prepared = data.preparedSettings else {
            throw ParawaveError(path, "has no readable prepare.json, so its audio settings are unknown; prepare it again with `parawave prepare`")
        }
        settings = prepared
        self.options = options
        var entries = data.entries(options.split)
        if let limit = options.limit { entries = Array(entries.prefix(limit)) }
        if entries.isEmpty { throw ParawaveError(path, "has no \(options.split.rawValue) utterances to evaluate") }
        self.entries = entries

        var systems = [System(name: "griffin-lim", kind: "griffin-lim", path: nil, teacherPath: nil,
                              renderer: .griffinLim(GriffinLim(settings: prepared, iterations: options.griffinLimIterations, seed: 0)))]
        for (index, modelPath) in models.enumerated() {
            let (model, metadata) = try TrainedModel.loadWithMetadata(modelPath)
            try Self.checkSettings(model.mel, data: prepared, model: modelPath, dataPath: path)
            var name = index < options.labels.count ? options.labels[index] : model.role
            var suffix = 2
            while systems.contains(where: { $0.name == name }) { name = "\(model.role)-\(suffix)"; suffix += 1 }
            let system: System
            switch model {
            case .teacher(let teacher):
                system = System(name: name, kind: "teacher", path: modelPath, teacherPath: nil,
                                renderer: .model(try ModelRenderer(.teacher(teacher), precision: options.precision), klTeacher: nil))
            case .student(let student):
                let (teacher, teacherPath) = try Self.teacherForKL(of: student, studentPath: modelPath, recorded: metadata["teacher"],
                                                                   override: options.teacher)
                if teacher == nil {
                    FileHandle.standardError.write(Data("warning: \(name): its teacher was not found (give --teacher), so its KL is not reported\n".utf8))
                }
                system = System(name: name, kind: "student", path: modelPath, teacherPath: teacherPath, renderer: .model(try ModelRenderer(.student(student), precision: options.precision,
                                                                                                                               chunkFrames: options.chunkFrames), klTeacher: teacher))
            case .waveglow(let waveglow):
                system = System(name: name, kind: "waveglow", path: modelPath, teacherPath: nil,
                                renderer: .model(try ModelRenderer(.waveglow(waveglow), precision: options.precision, sigma: options.sigma),
                                                 klTeacher: nil))
            }
            guard model.source != nil && options.f0 != .tracked else {
                systems.append(system)
                continue
            }
            guard model.hasPitchPredictor else {
                throw ParawaveError(modelPath, "has no pitch predictor (it was trained before teachers had one, or with pitch.predictor_layers 0), "
                                    + "so --f0 \(options.f0.rawValue) cannot score it; use --f0 tracked")
            }
            if options.f0 == .both { systems.append(system) }
            var predicted = system
            predicted.predictedF0 = true
            if options.f0 == .both { predicted.name += "-predicted-f0" }
            systems.append(predicted)
        }
        self.systems = systems
        meter = try QualityMeter(settings: prepared)
        tracker = try PitchTracker(settings: data.pitchSettings)
    }

    static func checkSettings(_ model: MelSettings, data: MelSettings, model modelPath: String, dataPath: String) throws {
        try model.requireSame(as: data, mine: "the model", theirs: "the data", path: modelPath,
                              remedy: "evaluate on data prepared with the model's recipe (\(dataPath) is not)")
    }

    /// The teacher a student is scored against: `override`, else the path recorded at
    /// distillation, as given or relative to the student's directory (or its parent). Nil
    /// when nothing is recorded or found.
    static func teacherForKL(of student: Student, studentPath: String, recorded: String?,
                             override: String?) throws -> (Teacher?, String?) {
        let path: String
        if let override {
            path = override
        } else if let recorded {
            let base = ((try? TrainedModel.checkpointFile(studentPath)) ?? studentPath) as NSString
            let directory = base.deletingLastPathComponent as NSString
            let candidates = [recorded, directory.appendingPathComponent(recorded),
                              (directory.appendingPathComponent("..") as NSString).appendingPathComponent(recorded)]
            guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else { return (nil, nil) }
            path = recorded == found ? found : URL(fileURLWithPath: found).standardizedFileURL.path
        } else {
            return (nil, nil)
        }
        guard case .teacher(let teacher) = try TrainedModel.load(path) else {
            throw ParawaveError(path, "is not a teacher; --teacher takes the student's teacher run or checkpoint")
        }
        try teacher.config.mel.requireSame(as: student.config.mel, mine: "the teacher", theirs: "the student", path: path,
                                           remedy: "give the teacher it was distilled from")
        if teacher.config.source != student.config.source {
            throw ParawaveError(path, "the teacher's source differs from the student's; give the teacher it was distilled from")
        }
        if teacher.config.linearPrediction != student.config.linearPrediction || teacher.linearPredictionGain != student.config.linearPredictionGain {
            throw ParawaveError(path, "the teacher's linear prediction differs from the student's; give the teacher it was distilled from")
        }
        if teacher.config.speakers != student.config.speakers {
            throw ParawaveError(path, "the teacher's speakers differ from the student's; give the teacher it was distilled from")
        }
        return (teacher, path)
    }

    /// Renders and scores every utterance with every system; writes the report directory when
    /// asked to.
    public func run() throws -> Report {
        if let dir = options.reportDirectory {
            try OutputPaths.createFolder(dir)
        }
        let totalSamples = entries.map(\.samples).reduce(0, +) * systems.count
        let progress = options.showProgress ? ProgressReporter("evaluate", total: totalSamples, unit: "samples") : nil
        let mels = try MelSpectrogram(settings: settings)
        var results: [UtteranceScores] = []
        var renderSeconds = [Double](repeating: 0, count: systems.count)
        var nll = [(sum: Double, count: Int)](repeating: (0, 0), count: systems.count)
        var kl = nll
        var pitch = [PitchMetrics.Accumulator](repeating: PitchMetrics.Accumulator(), count: systems.count)
        for (index, entry) in entries.enumerated() {
            let audioFile = try AudioFile.read(data.file(entry.audio))
            if audioFile.sampleRate != settings.sampleRate {
                throw ParawaveError(data.file(entry.audio), "is at \(audioFile.sampleRate) Hz, the data's settings at \(settings.sampleRate) Hz")
            }
            let real = audioFile.samples
            if real.isEmpty { throw ParawaveError(data.file(entry.audio), "holds no audio") }
            let mel = try MelFile.read(data.file(entry.mel), nMels: settings.nMels)
            let seconds = Double(real.count) / Double(settings.sampleRate)
            let realF0 = tracker.track(real).f0
            var scores: [String: Score] = [:]
            var rendered: [(String, [Float])] = []
            for (s, system) in systems.enumerated() {
                let seed = options.seed &+ UInt64(index)
                let start = Date()
                let f0 = system.predictedF0 ? Self.predictedF0(system.renderer, mel: mel) : realF0
                let audio = try render(system.renderer, mel: mel, f0: f0, length: real.count, seed: seed, entry: entry)
                    .map { max(-1, min(1, $0)) }
                let elapsed = Date().timeIntervalSince(start)
                renderSeconds[s] += elapsed
                var score = Score(quality: try meter.compare(reference: real, generated: audio), rtf: elapsed / seconds)
                var utterancePitch = PitchMetrics.Accumulator()
                utterancePitch.add(reference: realF0, generated: tracker.track(audio).f0)
                pitch[s].add(utterancePitch)
                score.pitch = utterancePitch.metrics
                let common = min(real.count, audio.count)
                score.stoi = try STOI.definedScore(reference: Array(real.prefix(common)), degraded: Array(audio.prefix(common)), sampleRate: settings.sampleRate)
                score.burstDB = LoudnessExcess.worstDB(reference: real, generated: audio, sampleRate: settings.sampleRate)
                // A teacher's likelihood of the real audio; a student's KL to its teacher.
                if case .model(let renderer, let klTeacher) = system.renderer {
                    switch (renderer.model, klTeacher) {
                    case (.teacher(let teacher), _):
                        let speaker = try Self.speakerRow(entry, speakers: teacher.config.speakers, model: system.name)
                        let (value, count) = Self.negativeLogLikelihood(teacher, audio: real, mel: mel, speaker: speaker, f0: f0)
                        score.nllBits = value / M_LN2
                        nll[s].sum += value * Double(count)
                        nll[s].count += count
                    case (.student(let student), let teacher?):
                        let speaker = try Self.speakerRow(entry, speakers: teacher.config.speakers, model: system.name)
                        let (value, count) = Self.kl(student, teacher: teacher, audio: real, mel: mel, speaker: speaker, f0: f0,
                                                     mcSamples: options.mcSamples, seed: seed)
                        score.klNats = value
                        kl[s].sum += value * Double(count)
                        kl[s].count += count
                    default:
                        break
                    }
                }
                scores[system.name] = score
                rendered.append((system.name, audio))
                progress?.advance(by: entry.samples)
            }
            results.append(UtteranceScores(id: entry.id, seconds: seconds, scores: scores))
            if let dir = options.reportDirectory {
                try writeExamples(entry: entry, real: real, rendered: rendered, mels: mels, in: dir)
            }
        }
        progress?.finish()

        let totalSeconds = results.map(\.seconds).reduce(0, +)
        let summaries = systems.enumerated().map { s, system in
            let scores = results.compactMap { $0.scores[system.name] }
            var mean = Score(quality: QualityMetrics.mean(scores.map(\.quality)), rtf: renderSeconds[s] / max(totalSeconds, 1e-9))
            if nll[s].count > 0 { mean.nllBits = nll[s].sum / Double(nll[s].count) / M_LN2 }
            if kl[s].count > 0 { mean.klNats = kl[s].sum / Double(kl[s].count) }
            mean.pitch = pitch[s].metrics
            let stoi = scores.compactMap(\.stoi)
            mean.stoi = stoi.isEmpty ? nil : stoi.reduce(0, +) / Double(stoi.count)
            mean.burstDB = scores.compactMap(\.burstDB).max()
            return SystemSummary(name: system.name, kind: system.kind, model: system.path, teacher: system.teacherPath,
                                 f0: system.kind == "griffin-lim" ? nil : system.predictedF0 ? "predicted" : "tracked", utterances: results.count, seconds: totalSeconds, mean: mean)
        }
        let report = Report(date: ISO8601DateFormatter().string(from: Date()), version: ParawaveVersion.string, data: data.path,
                            split: options.split.rawValue, mel: settings.summary, systems: summaries, utterances: results)
        if let dir = options.reportDirectory {
            try Self.writeJSON(report, to: dir + "/report.json")
            try AtomicFile.write(Data(Self.table(report).utf8), to: dir + "/report.txt")
        }
        return report
    }

    /// The F0 track a model's pitch predictor gives `mel` (the system was checked to have one).
    static func predictedF0(_ renderer: Renderer, mel: Matrix) -> [Float] {
        guard case .model(let model, _) = renderer else { preconditionFailure("Griffin-Lim takes no F0") }
        return model.model.predictF0(mel: mel)!
    }

    /// One system's rendering of an utterance from its mel; a source-conditioned model makes
    /// its source from `f0` (the real recording's track, on the mel's frames).
    func render(_ renderer: Renderer, mel: Matrix, f0: [Float], length: Int, seed: UInt64, entry: ManifestEntry) throws -> [Float] {
        switch renderer {
        case .griffinLim(let griffinLim):
            return try griffinLim.audio(fromLogMel: mel, length: length)
        case .model(let model, _):
            let speaker = try Self.speakerRow(entry, speakers: model.model.speakers, model: model.model.role)
            return model.render(mel: mel, f0: model.model.source == nil ? nil : f0, speaker: speaker, temperature: options.temperature, seed: seed)
        }
    }

    /// The row of an utterance's speaker in a model's table; nil for a model without speakers
    /// (which renders every utterance alike), an error when the model needs one it lacks.
    static func speakerRow(_ entry: ManifestEntry, speakers: [String], model: String) throws -> Int? {
        guard !speakers.isEmpty else { return nil }
        guard let name = entry.speaker else {
            throw ParawaveError(entry.id, "names no speaker, but the \(model) is speaker-conditioned; evaluate on data prepared with its recipe's data.speaker_pattern")
        }
        return try SpeakerNames.index(of: name, in: speakers, model: model)
    }

    /// The real audio padded to the mel's frames, and the mask of its real samples.
    static func padded(_ audio: [Float], frames: Int, hop: Int) -> (audio: [Float], mask: [Float]) {
        let T = frames * hop, n = min(audio.count, T)
        var x = [Float](repeating: 0, count: T), mask = x
        for t in 0..<n { x[t] = audio[t]; mask[t] = 1 }
        return (x, mask)
    }

    /// The teacher's mean NLL (nats per sample) of the real audio, teacher-forced, in one pass;
    /// a source-conditioned teacher's source is made from `f0` as in its training (aligned to
    /// the real audio when it trained so, which makes the NLL conditional on that source).
    static func negativeLogLikelihood(_ teacher: Teacher, audio: [Float], mel: Matrix, speaker: Int? = nil, f0: [Float]? = nil) -> (Double, Int) {
        let (x, mask) = padded(audio, frames: mel.columns, hop: teacher.config.stack.hop)
        let a = teacher.makeActivations(batch: 1, frames: mel.columns, training: false)
        let source = f0.flatMap { track in
            teacher.config.source.map {
                $0.trainingSignal(f0: track, hop: teacher.config.stack.hop, sampleRate: teacher.config.mel.sampleRate, audio: x, initialPhase: 0)
            }
        }
        teacher.forward(a, audio: x, mel: mel.values, speakers: speaker.map { [$0] }, source: source)
        let (value, count) = teacher.loss(a, audio: x, mask: mask)
        return (value, count)
    }

    /// KL(student || teacher) per sample on one utterance's mel, with fixed noise; sources are
    /// made from `f0` for source-conditioned models.
    static func kl(_ student: Student, teacher: Teacher, audio: [Float], mel: Matrix, speaker: Int? = nil, f0: [Float]? = nil, mcSamples: Int,
                   seed: UInt64) -> (Double, Int) {
        let (x, mask) = padded(audio, frames: mel.columns, hop: teacher.config.stack.hop)
        let d = Distillation(student: student, teacher: teacher, batch: 1, frames: mel.columns,
                             settings: Distillation.Settings(mcSamples: mcSamples), training: false)
        var generator = SeededGenerator(seed: 0x4B4C_0000 &+ seed)
        let z = student.noise(count: x.count, generator: &generator)
        let eps = d.closedForm ? [] : Student.noise(count: mcSamples * x.count, generator: &generator)
        let source = f0.flatMap { student.sourceSignal(f0: $0, samples: x.count) }
        let terms = d.evaluate(mel: mel.values, audio: x, mask: mask, noise: z, samples: eps, speakers: speaker.map { [$0] }, source: source,
                               gradients: false)
        return (terms.kl, mask.filter { $0 != 0 }.count)
    }
}
