import Foundation
import ParawaveAudio
import ParawaveTestSupport
import Testing

/// The built `parawave` binary: help, version, the happy paths, and bad inputs that must
/// each exit non-zero with one line naming the file and the problem, and write nothing.
struct CLITests {
    @Test func versionAndHelpForEveryCommand() throws {
        let version = try CommandRunner.parawave(["--version"])
        #expect(version.status == 0 && version.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0.1.0")
        for command in ["prepare", "mel", "spectrogram", "griffin-lim", "info"] {
            let help = try CommandRunner.parawave([command, "--help"])
            #expect(help.status == 0, "\(command) --help")
            #expect(help.stdout.contains("USAGE: parawave \(command)"), "\(command) --help")
        }
        let top = try CommandRunner.parawave(["--help"])
        #expect(top.stdout.contains("prepare") && top.stdout.contains("spectrogram"))
    }

    @Test func melSpectrogramAndGriffinLimFromAudio() throws {
        let dir = Fixtures.temporaryDirectory()
        TestWAV.write(TestWAV.speechLike(seconds: 1.0, sampleRate: 44100), sampleRate: 44100, to: dir + "/in.wav")
        let mel = try CommandRunner.parawave(["mel", dir + "/in.wav", "--out", dir + "/in.npy"])
        #expect(mel.status == 0, "\(mel.stderr)")
        let array = try NPY.read(dir + "/in.npy")
        #expect(array.shape == [80, 1 + 16000 / 256])
        let image = try CommandRunner.parawave(["spectrogram", dir + "/in.npy", "--png", dir + "/in.png"])
        #expect(image.status == 0, "\(image.stderr)")
        #expect(try RGBImage.readPNG(dir + "/in.png").height > 100)
        let fromWav = try CommandRunner.parawave(["spectrogram", dir + "/in.wav", "--png", dir + "/wav.png"])
        #expect(fromWav.status == 0)
        let gl = try CommandRunner.parawave(["griffin-lim", dir + "/in.npy", "--out", dir + "/gl.wav", "--iterations", "8"])
        #expect(gl.status == 0, "\(gl.stderr)")
        #expect(try AudioFile.read(dir + "/gl.wav").samples.count == 256 * 62)
        // --recipe settings are used: 40 bands.
        try "audio: {n_mels: 40, fmax: 7600}\n".write(toFile: dir + "/r.yaml", atomically: true, encoding: .utf8)
        _ = try CommandRunner.parawave(["mel", dir + "/in.wav", "--out", dir + "/r.npy", "--recipe", dir + "/r.yaml"])
        #expect(try NPY.read(dir + "/r.npy").shape == [40, 63])
        // (frames, n_mels) files only with the flag.
        try NPY.write(try MelFile.read(dir + "/in.npy", nMels: 80).transposed(), to: dir + "/t.npy")
        #expect(try CommandRunner.parawave(["spectrogram", dir + "/t.npy", "--png", dir + "/t.png", "--frames-first"]).status == 0)
    }

    @Test func prepareRunsOnACorpus() throws {
        let dir = Fixtures.temporaryDirectory()
        for i in 0..<4 {
            TestWAV.write(TestWAV.speechLike(seconds: 0.7, sampleRate: 22050, pitch: 120 + 10 * Double(i)), sampleRate: 22050, to: "\(dir)/corpus/a\(i).wav")
        }
        try "data: {validation_fraction: 0.25}\n".write(toFile: dir + "/r.yaml", atomically: true, encoding: .utf8)
        let run = try CommandRunner.parawave(["prepare", dir + "/corpus", "--recipe", dir + "/r.yaml", "--out", dir + "/data"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("prepared 4 utterances"))
        #expect(FileManager.default.fileExists(atPath: dir + "/data/manifest.jsonl"))
        let again = try CommandRunner.parawave(["prepare", dir + "/corpus", "--recipe", dir + "/r.yaml", "--out", dir + "/data"])
        #expect(again.status != 0 && again.stderr.contains("--overwrite"))
    }

    @Test func infoDescribesACheckpointAndRejectsDamage() throws {
        let good = Fixtures.path("engine/st_f32_meta.safetensors")
        let run = try CommandRunner.parawave(["info", good])
        #expect(run.status == 0, "\(run.stderr)")
        for text in ["kind:            teacher", "format version:  1", "step:            42", "layers.0.weight  F32   (2, 3, 4)", "parameters:      31"] {
            #expect(run.stdout.contains(text), "\(text)")
        }
        let dir = Fixtures.temporaryDirectory()
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        FileManager.default.createFile(atPath: dir + "/cut.safetensors", contents: bytes.prefix(bytes.count - 10))
        try expectClearFailure(["info", dir + "/cut.safetensors"], subject: dir + "/cut.safetensors", problem: "truncated?", output: dir + "/none")
        try expectClearFailure(["info", dir + "/none.safetensors"], subject: dir + "/none.safetensors", problem: "no such checkpoint", output: dir + "/none")
    }

    /// Runs a failing command and checks: non-zero exit, one line naming `subject` and
    /// containing `problem`, and no file at `output`.
    func expectClearFailure(_ arguments: [String], subject: String, problem: String, output: String) throws {
        let run = try CommandRunner.parawave(arguments)
        #expect(run.status != 0, "\(arguments) succeeded")
        let lines = run.stderr.split(separator: "\n")
        #expect(lines.count == 1, "expected one line, got: \(run.stderr)")
        #expect(run.stderr.contains(subject) && run.stderr.lowercased().contains(problem.lowercased()), "\(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: output), "\(output) was written")
    }

    @Test func badInputsFailCleanly() throws {
        let dir = Fixtures.temporaryDirectory()
        FileManager.default.createFile(atPath: dir + "/empty.wav", contents: Data())
        FileManager.default.createFile(atPath: dir + "/text.wav", contents: Data("hello\n".utf8))
        let good = TestWAV.data(samples: TestWAV.speechLike(seconds: 1, sampleRate: 16000), sampleRate: 16000)
        FileManager.default.createFile(atPath: dir + "/truncated.wav", contents: good.prefix(good.count / 3))
        try FileManager.default.createDirectory(atPath: dir + "/noaudio", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/noaudio/readme.txt", contents: Data("x".utf8))
        try FileManager.default.copyItem(atPath: Fixtures.path("npy/mel_nan.npy"), toPath: dir + "/nan.npy")
        try NPY.write([Float](repeating: -3, count: 100 * 20), shape: [100, 20], to: dir + "/wide.npy")
        try "audio:\n  sample_rate: 16000\n  hop_lenght: 256\n".write(toFile: dir + "/typo.yaml", atomically: true, encoding: .utf8)
        let out = dir + "/out.npy", png = dir + "/out.png"

        try expectClearFailure(["mel", dir + "/empty.wav", "--out", out], subject: dir + "/empty.wav", problem: "empty", output: out)
        try expectClearFailure(["mel", dir + "/text.wav", "--out", out], subject: dir + "/text.wav", problem: "not recognised", output: out)
        try expectClearFailure(["mel", dir + "/truncated.wav", "--out", out], subject: dir + "/truncated.wav", problem: "truncated", output: out)
        try expectClearFailure(["prepare", dir + "/noaudio", "--recipe", Fixtures.root.path + "/recipes/demo/recipe.yaml", "--out", dir + "/data"],
                               subject: dir + "/noaudio", problem: "no audio files", output: dir + "/data")
        try expectClearFailure(["spectrogram", dir + "/nan.npy", "--png", png], subject: dir + "/nan.npy", problem: "NaN at band 5, frame 9", output: png)
        try expectClearFailure(["spectrogram", dir + "/wide.npy", "--png", png], subject: dir + "/wide.npy", problem: "100 bands but the model expects 80", output: png)
        try expectClearFailure(["mel", Fixtures.path("audio/mono_pcm16.wav"), "--out", out, "--recipe", dir + "/typo.yaml"],
                               subject: dir + "/typo.yaml", problem: "audio.hop_lenght: unknown key (did you mean 'hop_length'?)", output: out)
        try expectClearFailure(["mel", dir + "/missing.wav", "--out", out], subject: dir + "/missing.wav", problem: "no such file", output: out)
    }
}
