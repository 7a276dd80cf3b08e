import ArgumentParser
import Foundation
import ParawaveTraining

struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Turn a speech corpus into a data directory of audio, log-mels and a manifest.",
        discussion: """
            Finds audio recursively under each CORPUS_DIR (or reads an LJSpeech-style \
            metadata.csv + wavs/ layout), converts it to the recipe's rate, trims silence, \
            computes log-mels and writes OUT/manifest.jsonl, OUT/audio/*.wav, OUT/mel/*.npy, \
            OUT/stats.json, OUT/prepare.json and preview spectrograms in OUT/png/. With no \
            CORPUS_DIR the recipe's data.sources are used. Unreadable files are reported \
            and skipped. With data.speaker_pattern (a regular expression searched in each \
            file's path; its first group names the speaker, e.g. 'wav48[^/]*/([^/]+)/' for \
            VCTK) every utterance records its speaker, for speaker-conditioned models; files \
            it does not match are skipped.
            """)

    @Argument(help: ArgumentHelp("Corpus folders or audio files (default: the recipe's data.sources).", valueName: "CORPUS_DIR"))
    var corpora: [String] = []

    @OptionGroup var recipeOptions: RecipeOptions

    @Option(name: .long, help: ArgumentHelp("The data directory to create.", valueName: "DATA"))
    var out: String

    @Flag(name: .long, help: "Replace OUT if it exists.")
    var overwrite = false

    func run() throws {
        let recipe = try recipeOptions.load(requireFile: true)
        var prepare = Prepare(recipe: recipe, corpora: corpora, output: out)
        prepare.overwrite = overwrite
        StopSignal.install()
        let report: Prepare.Report
        do {
            report = try prepare.run()
        } catch where StopSignal.requested {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            throw ExitCode(130)
        }
        print(report.summary)
        print("data directory: \(out) (manifest.jsonl, audio/, mel/, f0/, png/, stats.json, prepare.json)")
    }
}

extension RecipeOptions {
    /// The recipe named by --recipe (or the defaults when none is given and none is required), with --set applied.
    func load(requireFile: Bool = false) throws -> Recipe {
        if let recipe { return try Recipe.load(recipe, overrides: overrides) }
        if requireFile { throw ValidationError("--recipe is required") }
        return try Recipe.parse("", name: "default recipe", overrides: overrides)
    }
}
