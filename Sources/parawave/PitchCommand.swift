import ArgumentParser
import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveModels
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

            With --model (a run directory or checkpoint of a model with a pitch predictor) the F0 \
            is instead the one that model's predictor reads off the audio's log-mel, in the \
            model's front end: the F0 that `render --mel` uses when given no --f0.
            """)

    @Argument(help: ArgumentHelp("Audio file (WAV, FLAC, OGG, AIFF, ...).", valueName: "IN"))
    var input: String

    @Option(name: .long, help: ArgumentHelp("Output .npy file.", valueName: "F0.npy"))
    var out: String

    @Option(name: .long, help: ArgumentHelp("Also draw the spectrogram with the F0 track as a PNG.", valueName: "P.png"))
    var png: String?

    @Option(name: .long, help: ArgumentHelp("Predict the F0 from the log-mel with this model's pitch predictor instead of tracking it.",
                                            valueName: "RUN_OR_CHECKPOINT"))
    var model: String?

    @OptionGroup var recipeOptions: RecipeOptions

    func run() throws {
        let loaded = try model.map { path in
            let loaded = try TrainedModel.load(path)
            guard loaded.hasPitchPredictor else {
                throw ParawaveError(path, "the \(loaded.role) has no pitch predictor to predict an F0 with")
            }
            return loaded
        }
        let recipe = try recipeOptions.load()
        let settings = loaded?.mel ?? recipe.audio.mel
        let audio = try AudioFile.read(input, sampleRate: settings.sampleRate)
        let start = Date()
        let mel = try (png != nil || loaded != nil) ? MelSpectrogram(settings: settings).logMel(audio.samples) : nil
        let f0: [Float], probability: [Float]
        if let loaded, let mel {
            (f0, probability) = loaded.predictPitch(mel: mel)!
        } else {
            let track = try PitchTracker(settings: recipe.pitch.settings(audio: recipe.audio)).track(audio.samples)
            (f0, probability) = (track.f0, track.voicedProbability)
        }
        let elapsed = Date().timeIntervalSince(start)
        try OutputPaths.check([out] + (png.map { [$0] } ?? []))
        try NPY.write(f0 + probability, shape: [2, f0.count], to: out)
        if let png, let mel {
            let name = URL(fileURLWithPath: input).deletingPathExtension().lastPathComponent
            do {
                try SpectrogramImage.write([.init(title: name, logMel: mel, f0: f0)], settings: settings, to: png)
            } catch {
                try? FileManager.default.removeItem(atPath: out)
                throw error
            }
        }
        let voiced = f0.filter { $0 > 0 }.count
        let median = f0.filter { $0 > 0 }.sorted().dropFirst(voiced / 2).first
        let by = loaded.map { " (the \($0.role)'s pitch predictor)" } ?? ""
        print(String(format: "wrote %@: %d frames, %d voiced (%.0f%%)%@%@; %.0fx real time", out, f0.count, voiced,
                     100 * Double(voiced) / Double(max(f0.count, 1)), median.map { String(format: ", median F0 %.1f Hz", $0) } ?? "", by,
                     audio.duration / max(elapsed, 1e-9)))
    }
}
