import ArgumentParser
import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveTraining

struct PitchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pitch",
        abstract: "Track the F0 of an audio file with pYIN and save it as .npy (2, frames).",
        discussion: """
            Row 0 is F0 in Hz (0 where unvoiced), row 1 the voiced probability, one column per \
            mel frame (frame i centred on sample i * hop_length, as `mel` computes them). The \
            search range is the recipe's pitch.fmin and pitch.fmax (50-550 Hz by default). Audio \
            at another rate is converted first with libsoxr. --png draws the log-mel spectrogram \
            with the track over it.
            """)

    @Argument(help: ArgumentHelp("Audio file (WAV, FLAC, OGG, AIFF, ...).", valueName: "IN"))
    var input: String

    @Option(name: .long, help: ArgumentHelp("Output .npy file.", valueName: "F0.npy"))
    var out: String

    @Option(name: .long, help: ArgumentHelp("Also draw the spectrogram with the F0 track as a PNG.", valueName: "P.png"))
    var png: String?

    @OptionGroup var recipeOptions: RecipeOptions

    func run() throws {
        let recipe = try recipeOptions.load()
        let settings = recipe.audio.mel
        let audio = try AudioFile.read(input, sampleRate: settings.sampleRate)
        let start = Date()
        let track = try PitchTracker(settings: recipe.pitch.settings(audio: recipe.audio)).track(audio.samples)
        let elapsed = Date().timeIntervalSince(start)
        let mel = try png.map { _ in try MelSpectrogram(settings: settings).logMel(audio.samples) }
        try OutputPaths.check([out] + (png.map { [$0] } ?? []))
        try NPY.write(track.stacked, shape: [2, track.frames], to: out)
        if let png, let mel {
            let name = URL(fileURLWithPath: input).deletingPathExtension().lastPathComponent
            do {
                try SpectrogramImage.write([.init(title: name, logMel: mel, f0: track.f0)], settings: settings, to: png)
            } catch {
                try? FileManager.default.removeItem(atPath: out)
                throw error
            }
        }
        let voiced = track.voiced.filter { $0 }.count
        let median = track.f0.filter { $0 > 0 }.sorted().dropFirst(voiced / 2).first
        print(String(format: "wrote %@: %d frames, %d voiced (%.0f%%)%@; %.0fx real time", out, track.frames, voiced,
                     100 * Double(voiced) / Double(max(track.frames, 1)), median.map { String(format: ", median F0 %.1f Hz", $0) } ?? "",
                     audio.duration / max(elapsed, 1e-9)))
    }
}
