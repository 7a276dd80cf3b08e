import ArgumentParser
import Foundation
import ParawaveCore
import ParawaveAudio
import ParawaveTraining

struct MelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mel",
        abstract: "Compute the log-mel feature of an audio file and save it as .npy (n_mels, frames).",
        discussion: """
            Settings are DESIGN.md's defaults (16 kHz, n_fft 1024, hop 256, 80 Slaney bands \
            0-8000 Hz, ln(max(mel, 1e-5))) or those of --recipe. Audio at another rate is \
            converted first with libsoxr.
            """)

    @Argument(help: ArgumentHelp("Audio file (WAV, FLAC, OGG, AIFF, ...).", valueName: "IN"))
    var input: String

    @Option(name: .long, help: ArgumentHelp("Output .npy file.", valueName: "OUT.npy"))
    var out: String

    @OptionGroup var recipeOptions: RecipeOptions

    func run() throws {
        let settings = try recipeOptions.load().audio.mel
        let audio = try AudioFile.read(input, sampleRate: settings.sampleRate)
        let mel = try MelSpectrogram(settings: settings).logMel(audio.samples)
        try NPY.write(mel, to: out)
        print("wrote \(out): shape (\(mel.rows), \(mel.columns)), \(String(format: "%.2f", audio.duration)) s at \(settings.sampleRate) Hz")
    }
}

struct SpectrogramCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spectrogram",
        abstract: "Draw the log-mel spectrogram of an audio file or a mel .npy as a PNG.")

    @Argument(help: ArgumentHelp("Audio file or mel .npy (n_mels, frames).", valueName: "IN"))
    var input: String

    @Option(name: .long, help: ArgumentHelp("Output PNG file.", valueName: "OUT.png"))
    var png: String

    @Option(name: .long, help: "Title drawn above the spectrogram (default: the input's name).")
    var title: String?

    @Flag(name: .long, help: "The .npy is (frames, n_mels) rather than (n_mels, frames).")
    var framesFirst = false

    @OptionGroup var recipeOptions: RecipeOptions

    func run() throws {
        let settings = try recipeOptions.load().audio.mel
        let mel: Matrix
        if input.lowercased().hasSuffix(".npy") {
            mel = try MelFile.read(input, nMels: settings.nMels, framesFirst: framesFirst)
        } else {
            let audio = try AudioFile.read(input, sampleRate: settings.sampleRate)
            mel = try MelSpectrogram(settings: settings).logMel(audio.samples)
        }
        let name = title ?? URL(fileURLWithPath: input).deletingPathExtension().lastPathComponent
        try SpectrogramImage.write([.init(title: name, logMel: mel)], settings: settings, to: png)
        print("wrote \(png): \(mel.rows) bands x \(mel.columns) frames")
    }
}

struct GriffinLimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "griffin-lim",
        abstract: "Render a mel .npy to WAV with Griffin-Lim (no model: a baseline and quick preview).")

    @Argument(help: ArgumentHelp("Mel .npy (n_mels, frames), natural-log.", valueName: "MEL.npy"))
    var input: String

    @Option(name: .long, help: ArgumentHelp("Output WAV file.", valueName: "OUT.wav"))
    var out: String

    @Option(name: .long, help: "Griffin-Lim iterations.")
    var iterations = 32

    @Flag(name: .long, help: "The .npy is (frames, n_mels) rather than (n_mels, frames).")
    var framesFirst = false

    @OptionGroup var recipeOptions: RecipeOptions

    func validate() throws {
        guard (1...1000).contains(iterations) else { throw ValidationError("--iterations must be in 1...1000") }
    }

    func run() throws {
        let settings = try recipeOptions.load().audio.mel
        try OutputPaths.check([out])
        let mel = try MelFile.read(input, nMels: settings.nMels, framesFirst: framesFirst)
        if mel.columns < 2 {
            throw ParawaveError(input, "has \(mel.columns) frame; Griffin-Lim needs at least 2 (its output is (frames - 1) x hop_length samples)")
        }
        let start = Date()
        let samples = try GriffinLim(settings: settings, iterations: iterations).audio(fromLogMel: mel)
        let seconds = Double(samples.count) / Double(settings.sampleRate)
        try AudioFile.write(Audio(samples: samples, sampleRate: settings.sampleRate), to: out)
        print(String(format: "wrote %@: %.2f s; real-time factor %.3f", out, seconds, Date().timeIntervalSince(start) / max(seconds, 1e-9)))
    }
}
