import ArgumentParser
import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels
import ParawaveTraining

struct RenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Synthesise a WAV from a log-mel spectrogram (or from the mel of a WAV) with a trained model.",
        discussion: """
            --model takes a run directory or a checkpoint of a teacher or a student. A \
            teacher generates sample by sample (Fast WaveNet, per-layer queues); a student \
            in one parallel pass per flow, in chunks of --chunk-frames frames so memory \
            stays bounded. --mel takes a natural-log Slaney mel \
            .npy of shape (n_mels, frames) made with the model's audio settings (see \
            `parawave mel`, or Tacotron 2 / WaveGlow / HiFi-GAN mels of the same \
            settings); --wav computes it from audio (copy synthesis). A teacher reads its \
            weights in Float16 by default (--precision half); a student multiplies in \
            bfloat16 with float32 accumulation where the CPU has it (--precision bfloat16); \
            --precision single keeps Float32 throughout. A speaker-conditioned \
            model (trained on data prepared with data.speaker_pattern) needs --speaker, one of \
            the speakers `parawave info` lists for it. A source-conditioned model (trained \
            with teacher.source sine) needs the utterance's F0: with --wav it is tracked from \
            the audio with pYIN, with --mel it is predicted from the mel by the model's pitch \
            predictor; --f0 predicted, --f0 tracked (with --wav) or --f0 F0.npy (a track from \
            `parawave pitch`) choose. The real-time factor (render time / audio duration) is \
            printed.
            """)

    @Option(name: .long, help: ArgumentHelp("Run directory or checkpoint.", valueName: "RUN_OR_CHECKPOINT"))
    var model: String

    @Option(name: .long, help: ArgumentHelp("Log-mel .npy to render.", valueName: "X.npy"))
    var mel: String?

    @Option(name: .long, help: ArgumentHelp("Audio whose log-mel to render (copy synthesis).", valueName: "X.wav"))
    var wav: String?

    @Option(name: .long, help: ArgumentHelp("Output WAV.", valueName: "Y.wav"))
    var out: String

    @Flag(name: .long, help: "The .npy is (frames, n_mels) rather than (n_mels, frames).")
    var framesFirst = false

    @Option(name: .long, help: "Sampling temperature: scales a teacher's logistic or Gaussian scales, or a student's input noise (1 samples the model as trained).")
    var temperature: Float = 1

    @Option(name: .long, help: "A student renders in chunks of this many frames (with enough overlap that the output equals one pass).")
    var chunkFrames: Int = Student.defaultChunkFrames

    @Option(name: .long, help: "Random seed for sampling.")
    var seed: Int = 1

    @Option(name: .long, help: ArgumentHelp("WaveGlow's sampling standard deviation of z (default 0.6, NVIDIA's).", valueName: "S"))
    var sigma: Float?

    @Option(name: .long, help: ArgumentHelp(
        "A teacher: half (Float16 weights, the default; about 1.5x faster) or single (Float32, equal to the parallel pass to 1e-5). "
            + "A student: bfloat16 (bfloat16 operands, float32 accumulation; the default where the CPU has AVX512_BF16 or AMX) or "
            + "single. auto picks the default.", valueName: "auto|half|single|bfloat16"))
    var precision: RenderPrecision = .auto

    @Option(name: .long, help: ArgumentHelp("The speaker to render as (speaker-conditioned models only).", valueName: "NAME"))
    var speaker: String?

    @Option(name: .long, help: ArgumentHelp("Also draw the spectrograms (input and rendered) as a PNG.", valueName: "OUT.png"))
    var png: String?

    @Option(name: .long, help: ArgumentHelp(
        "A source-conditioned model's F0: an F0 track (2, frames) from `parawave pitch`, `predicted` (its pitch predictor on the mel; "
            + "the default with --mel) or `tracked` (pYIN on the --wav audio; the default with --wav).", valueName: "F0.npy|predicted|tracked"))
    var f0: String?

    func validate() throws {
        if (mel == nil) == (wav == nil) { throw ValidationError("give exactly one of --mel and --wav") }
        if !(temperature > 0 && temperature <= 2) { throw ValidationError("--temperature must be in (0, 2], got \(temperature)") }
        if seed < 0 { throw ValidationError("--seed must be non-negative") }
        if chunkFrames < 1 { throw ValidationError("--chunk-frames must be at least 1") }
        if let sigma, !(sigma > 0 && sigma <= 2) { throw ValidationError("--sigma must be in (0, 2], got \(sigma)") }
    }

    func run() throws {
        let loaded = try TrainedModel.load(model)
        let settings: MelSettings, mean: [Float]
        switch loaded {
        case .teacher(let t): (settings, mean) = (t.config.mel, t.melMean)
        case .student(let s): (settings, mean) = (s.config.mel, s.melMean)
        case .waveglow(let w): (settings, mean) = (w.config.mel, w.melMean)
        }
        if sigma != nil, case .waveglow = loaded {} else if sigma != nil {
            throw ParawaveError("--sigma", "is WaveGlow's sampling standard deviation; \(model) is a \(loaded.role) (use --temperature)")
        }
        let renderer = try ModelRenderer(loaded, precision: precision, chunkFrames: chunkFrames, sigma: sigma ?? ModelRenderer.defaultSigma)
        let what = renderer.description
        let speakerRow = try SpeakerNames.choose(speaker, in: loaded.speakers, model: loaded.role)
        try OutputPaths.check([out] + (png.map { [$0] } ?? []))
        let (input, reference, recording) = try inputMel(settings: settings)
        if input.values.contains(where: { !$0.isFinite }) {
            throw ParawaveError(mel ?? wav!, "the mel holds NaN or infinite values")
        }
        let track = try pitchTrack(for: loaded, mel: input, recording: recording, settings: settings)
        warnIfUnusual(input, mean: mean)
        let samples = input.columns * settings.hopLength
        let seconds = Double(samples) / Double(settings.sampleRate)
        let progress = ProgressReporter("render", total: samples, unit: "samples")
        let start = Date()
        var last = 0
        let report = { (done: Int) in
            progress.advance(by: done - last)
            last = done
        }
        let audio = renderer.render(mel: input, f0: track, speaker: speakerRow, temperature: temperature, seed: UInt64(seed), progress: report)
        let elapsed = Date().timeIntervalSince(start)
        progress.finish()
        let clipped = audio.map { max(-1, min(1, $0)) }
        try AudioFile.write(Audio(samples: clipped, sampleRate: settings.sampleRate), to: out)
        let voice = speaker.map { "; speaker \($0)" } ?? ""
        print(String(format: "wrote %@: %.2f s at %d Hz in %.2f s (real-time factor %.3f, %.0f samples/s; %@%@)",
                     out, seconds, settings.sampleRate, elapsed, elapsed / max(seconds, 1e-9), Double(audio.count) / max(elapsed, 1e-9), what,
                     voice))
        if let png {
            let rendered = try MelSpectrogram(settings: settings).logMel(clipped)
            var panels = [SpectrogramImage.Panel(title: (wav != nil ? "real: " : "input: ") + ((wav ?? mel!) as NSString).lastPathComponent,
                                                 logMel: reference ?? input)]
            panels.append(SpectrogramImage.Panel(title: "rendered (\(what.prefix { $0 != "," })): " + (out as NSString).lastPathComponent,
                                                 logMel: rendered))
            try SpectrogramImage.write(panels, settings: settings, to: png)
            print("wrote \(png)")
        }
    }

    /// The mel to render and, for --wav, the same mel as the real audio's reference and the audio.
    func inputMel(settings: MelSettings) throws -> (Matrix, Matrix?, [Float]?) {
        if let mel {
            return (try MelFile.read(mel, nMels: settings.nMels, framesFirst: framesFirst), nil, nil)
        }
        let audio = try AudioFile.read(wav!, sampleRate: settings.sampleRate)
        if audio.samples.isEmpty { throw ParawaveError(wav!, "holds no audio") }
        let m = try MelSpectrogram(settings: settings).logMel(audio.samples)
        return (m, m, audio.samples)
    }

    /// The F0 track (Hz per frame) a source-conditioned model renders with: --f0's file, its
    /// pitch predictor on the mel, or pYIN on the --wav audio; nil for a model without a source
    /// (which refuses --f0).
    func pitchTrack(for loaded: TrainedModel, mel: Matrix, recording: [Float]?, settings: MelSettings) throws -> [Float]? {
        guard loaded.source != nil else {
            if let f0 { throw ParawaveError(f0, "the \(loaded.role) has no source conditioning, so it takes no F0; leave out --f0") }
            return nil
        }
        switch f0 ?? (recording == nil ? "predicted" : "tracked") {
        case "predicted":
            guard let track = loaded.predictF0(mel: mel) else {
                throw ParawaveError(model, "is source-conditioned but has no pitch predictor (trained before teachers had one, or with "
                                    + "pitch.predictor_layers 0), so it needs the utterance's F0: give --f0 F0.npy (made by `parawave pitch`) "
                                    + "or render --wav")
            }
            return track
        case "tracked":
            guard let recording else {
                throw ParawaveError("--f0 tracked", "tracks F0 from the recording, so it needs --wav; with --mel use --f0 predicted or a file")
            }
            let tracker = try PitchTracker(settings: PitchSettings(sampleRate: settings.sampleRate, frameLength: settings.nFFT, hopLength: settings.hopLength))
            return Array(tracker.track(recording).f0.prefix(mel.columns))
        case let path:
            return try TrainingData.readF0(path, frames: mel.columns)
        }
    }

    /// A natural-log mel of speech sits near the training mean; log10 or dB mels do not.
    func warnIfUnusual(_ mel: Matrix, mean: [Float]) {
        guard !mel.values.isEmpty else { return }
        let ours = mel.values.reduce(0, +) / Float(mel.values.count)
        let trained = mean.reduce(0, +) / Float(max(mean.count, 1))
        if abs(ours - trained) > 4 {
            let message = String(format: "warning: the mel's mean is %.2f but the training mels' was %.2f; is it a natural-log "
                                 + "Slaney mel with the model's settings (not log10, dB or normalised)?\n", ours, trained)
            FileHandle.standardError.write(Data(message.utf8))
        }
    }
}

extension RenderPrecision: ExpressibleByArgument {}
