import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveTestSupport
import ParawaveTraining
import Testing

/// `prepare`: discovery, conversion, skipping bad files, the split, and the data directory.
struct PrepareTests {
    /// A corpus with good files at several rates and channel counts, and bad ones.
    static func makeCorpus() -> String {
        let root = Fixtures.temporaryDirectory("corpus")
        for (i, rate) in [16000, 22050, 44100, 8000, 16000, 48000, 16000, 24000].enumerated() {
            let silence = [Float](repeating: 0, count: rate / 4)
            TestWAV.write(silence + TestWAV.speechLike(seconds: 0.8 + 0.1 * Double(i), sampleRate: rate, pitch: 100 + 20 * Double(i)) + silence,
                          sampleRate: rate, to: "\(root)/speaker\(i % 2)/utt\(i).wav")
        }
        let stereo = TestWAV.speechLike(seconds: 1, sampleRate: 16000).flatMap { [$0, $0 * 0.5] }
        TestWAV.write(stereo, sampleRate: 16000, channels: 2, to: "\(root)/stereo.wav")
        TestWAV.write(TestWAV.speechLike(seconds: 2.5, sampleRate: 16000), sampleRate: 16000, to: "\(root)/long.wav")
        TestWAV.write(TestWAV.speechLike(seconds: 0.1, sampleRate: 16000), sampleRate: 16000, to: "\(root)/short.wav")
        FileManager.default.createFile(atPath: "\(root)/empty.wav", contents: Data())
        FileManager.default.createFile(atPath: "\(root)/notes.wav", contents: Data("not audio".utf8))
        let good = TestWAV.data(samples: TestWAV.speechLike(seconds: 1, sampleRate: 16000), sampleRate: 16000)
        FileManager.default.createFile(atPath: "\(root)/cut.wav", contents: good.prefix(good.count / 2))
        FileManager.default.createFile(atPath: "\(root)/readme.txt", contents: Data("ignored".utf8))
        // A float file overshooting full scale on a few samples: kept, scaled down.
        var loud = TestWAV.speechLike(seconds: 0.8, sampleRate: 16000)
        for i in stride(from: 1000, to: 1010, by: 1) { loud[i] = 1.2 }
        try? AudioFile.write(Audio(samples: loud, sampleRate: 16000), to: "\(root)/loud.wav", encoding: .float32)
        // A saturated recording (5% of samples at full scale): skipped.
        TestWAV.write(TestWAV.speechLike(seconds: 0.8, sampleRate: 16000).map { max(-1, min(1, $0 * 2.2)) }, sampleRate: 16000, to: "\(root)/saturated.wav")
        return root
    }

    static func recipe() throws -> Recipe {
        try Recipe.parse("data: {validation_fraction: 0.2, max_seconds: 2, preview_images: 2}")
    }

    func prepare(_ corpus: String, into out: String, recipe: Recipe) throws -> (Prepare.Report, [String]) {
        var prepare = Prepare(recipe: recipe, corpora: [corpus], output: out)
        prepare.showProgress = false
        nonisolated(unsafe) var lines: [String] = []
        prepare.log = { lines.append($0) }
        return (try prepare.run(), lines)
    }

    @Test func buildsADataDirectoryAndSkipsBadFiles() throws {
        let corpus = Self.makeCorpus()
        let out = Fixtures.temporaryDirectory() + "/data"
        let recipe = try Self.recipe()
        let (report, log) = try prepare(corpus, into: out, recipe: recipe)
        // 8 + stereo + loud + long (cut in two pieces of 1.25 s) = 12 utterances;
        // short, empty, notes, cut and saturated skipped.
        #expect(report.utterances == 12)
        #expect(report.sourceFiles == 16)
        #expect(Set(report.skipped.map { URL(fileURLWithPath: $0.path).lastPathComponent }) == ["short.wav", "empty.wav", "notes.wav", "cut.wav", "saturated.wav"])
        #expect(report.skipped.first { $0.path.hasSuffix("saturated.wav") }!.reason.hasPrefix("clipped"))
        // Damaged files are reported as they occur; the short and the saturated one are tallied.
        #expect(log.count == 3 && log.allSatisfy { $0.hasPrefix("skipped ") })
        #expect(report.summary.contains("skipped 5") && report.summary.contains("1 clipped"))
        #expect(report.rescaledFiles == 1)
        #expect(report.train + report.validation == 12 && report.validation >= 1 && report.train >= 1)

        let data = try DataDirectory(out)
        #expect(data.entries.count == 12)
        let loud = try AudioFile.read(data.file(data.entries.first { $0.id.hasSuffix("loud") }!.audio))
        #expect(abs((loud.samples.map(abs).max() ?? 0) - 0.999) < 0.002)
        #expect(data.entries.map(\.id) == data.entries.map(\.id).sorted())
        #expect(data.entries.contains { $0.id.hasSuffix("long-part02") })
        for entry in data.entries {
            let audio = try AudioFile.read(data.file(entry.audio))
            #expect(audio.sampleRate == 16000 && audio.samples.count == entry.samples)
            let mel = try MelFile.read(data.file(entry.mel), nMels: 80)
            #expect(mel.columns == 1 + entry.samples / 256 && mel.columns == entry.frames)
            // Trimming removed the quarter second of silence on each side.
            #expect(entry.seconds < 1.0 + 0.1 * 7 + 0.1)
        }
        let statsData = try Data(contentsOf: URL(fileURLWithPath: out + "/stats.json"))
        let stats = try JSONDecoder().decode(MelStatistics.self, from: statsData)
        #expect(stats.mean.count == 80 && stats.frames > 0 && stats.maximum > stats.minimum)
        let previews = try FileManager.default.contentsOfDirectory(atPath: out + "/png")
        #expect(previews.count == min(2, report.validation))
        for name in previews { #expect(try RGBImage.readPNG(out + "/png/" + name).width > 100) }
    }

    @Test func splitIsDeterministicAndOverwriteIsExplicit() throws {
        let corpus = Self.makeCorpus()
        let dir = Fixtures.temporaryDirectory()
        let recipe = try Self.recipe()
        _ = try prepare(corpus, into: dir + "/a", recipe: recipe)
        _ = try prepare(corpus, into: dir + "/b", recipe: recipe)
        let a = try String(contentsOfFile: dir + "/a/manifest.jsonl", encoding: .utf8)
        let b = try String(contentsOfFile: dir + "/b/manifest.jsonl", encoding: .utf8)
        #expect(a.replacingOccurrences(of: dir + "/a", with: "") == b.replacingOccurrences(of: dir + "/b", with: ""))
        #expect(throws: ParawaveError.self) { _ = try prepare(corpus, into: dir + "/a", recipe: recipe) }
        var again = Prepare(recipe: recipe, corpora: [corpus], output: dir + "/a")
        again.overwrite = true
        again.showProgress = false
        again.log = { _ in }
        #expect(try again.run().utterances == 12)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["a", "b"], "no staging folder left behind")
    }

    /// The split is a fair draw whatever the names look like: ids that share a long prefix
    /// and differ in their last characters (one speaker's numbered recordings, as corpora
    /// name them) each fall into validation with the given chance, independently. A hash
    /// whose top bits barely feel the last bytes sends whole speakers to one side.
    @Test func splitSpreadsNumberedRecordings() {
        var total = 0
        for prefix in ["klettres_he_alpha_a-", "klettres_de_syllab_", "p225_", "LJ001-", "wav_vk2tpm_004-part"] {
            let ids = (1...400).map { prefix + String(format: "%03d", $0) }
            let validation = ids.filter { Corpus.isValidation($0, fraction: 0.05) }.count
            // Binomial(400, 0.05): mean 20, sd 4.4; 8...36 is beyond 2.7 sd either way.
            #expect((8...36).contains(validation), "\(prefix): \(validation) of 400 in validation")
            total += validation
        }
        #expect((60...140).contains(total))
        // Neighbours are independent: of 400 consecutive pairs, few are both validation.
        let ids = (1...401).map { "speaker_\($0)" }
        let both = zip(ids, ids.dropFirst()).filter { Corpus.isValidation($0.0, fraction: 0.5) && Corpus.isValidation($0.1, fraction: 0.5) }.count
        #expect((70...130).contains(both), "\(both) of 400 neighbouring pairs both in validation at fraction 0.5")
    }

    @Test func folderWithoutAudioIsAnErrorAndWritesNothing() throws {
        let corpus = Fixtures.temporaryDirectory("empty-corpus")
        FileManager.default.createFile(atPath: corpus + "/notes.txt", contents: Data("x".utf8))
        let dir = Fixtures.temporaryDirectory()
        #expect {
            _ = try prepare(corpus, into: dir + "/data", recipe: try Self.recipe())
        } throws: { error in
            "\(error)".contains("no audio files found") && "\(error)".contains(corpus)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
        // Only unreadable files: also an error, also nothing written.
        FileManager.default.createFile(atPath: corpus + "/bad.wav", contents: Data("nope".utf8))
        #expect(throws: ParawaveError.self) { _ = try prepare(corpus, into: dir + "/data", recipe: try Self.recipe()) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }

    @Test func readsLJSpeechLayout() throws {
        let root = Fixtures.temporaryDirectory("ljs")
        var metadata = ""
        for i in 1...3 {
            let id = String(format: "LJ001-%04d", i)
            TestWAV.write(TestWAV.speechLike(seconds: 0.6, sampleRate: 22050), sampleRate: 22050, to: "\(root)/wavs/\(id).wav")
            metadata += "\(id)|Text \(i).|Text \(i).\n"
        }
        metadata += "LJ001-0099|Missing.|Missing.\n"
        try metadata.write(toFile: root + "/metadata.csv", atomically: true, encoding: .utf8)
        TestWAV.write(TestWAV.speechLike(seconds: 0.6, sampleRate: 22050), sampleRate: 22050, to: "\(root)/wavs/unlisted.wav")
        let (files, missing) = try Corpus.discover([root])
        #expect(files.map(\.id) == ["LJ001-0001", "LJ001-0002", "LJ001-0003"])
        #expect(missing.count == 1 && missing[0].hasSuffix("LJ001-0099.wav"))
    }

    @Test func trimmerKeepsTheSoundAndDropsSilence() {
        let tone = TestWAV.speechLike(seconds: 0.5, sampleRate: 16000)
        let signal = [Float](repeating: 0, count: 8000) + tone + [Float](repeating: 1e-5, count: 8000)
        let span = SilenceTrimmer.span(signal, topDB: 40)
        #expect(span.lowerBound > 7000 && span.lowerBound <= 8000)
        #expect(span.upperBound >= 16000 && span.upperBound < 17000)
        #expect(SilenceTrimmer.span([Float](repeating: 0, count: 1000), topDB: 40).isEmpty)
    }
}
