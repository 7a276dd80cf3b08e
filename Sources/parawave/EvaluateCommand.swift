import ArgumentParser
import Foundation
import ParawaveCore
import ParawaveEngine
import ParawaveModels
import ParawaveTraining

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Render a split's utterances from their mels and compare them with the real recordings.",
        discussion: """
            Every utterance of the split is rendered by a Griffin-Lim baseline (32 iterations) \
            and by each --model (a teacher autoregressively, a student in one parallel pass), \
            and each rendering is compared with the real recording:
              log-mel dB     RMSE between the mels in dB (20 log10, floor 1e-5)
              SC, log-mag    multi-resolution STFT distance at FFT sizes 512/1024/2048 (hop N/4):
                             spectral convergence and mean |log magnitude difference|;
                             MR-STFT is their sum
              MCD dB         mel-cepstral distortion over c1..c24 of the orthonormal DCT of the
                             natural-log mel (mel-filterbank cepstra: larger than SPTK figures)
              F0 RMSE c      F0 error in cents over frames pYIN calls voiced in both recordings
              F0 <50c        the share of those frames within 50 cents
              V/UV err       the share of frames whose voicing decisions differ
              STOI           short-time objective intelligibility (higher is better), over the
                             utterances with 0.4 s of speech (undefined on shorter ones)
              burst dB       the worst 100 ms window's loudness over the recording's (floor -60 dBFS;
                             the split's worst utterance)
              NLL bits       a teacher's negative log-likelihood of the real audio per sample
              KL nats        a student's KL to its teacher per sample (16 draws per step)
              RTF            render time / audio duration
            Lower is better elsewhere. A source-conditioned model renders with F0 from pYIN on the \
            real recording, or with --f0 predicted from its pitch predictor. A student's teacher is the one recorded in its \
            checkpoint at distillation (or --teacher). The table goes to stdout; --report DIR \
            also writes report.json, report.txt and, per utterance, the WAVs (real, \
            griffin-lim, teacher, student) and a PNG stacking their spectrograms.
            """)

    @Option(name: .long, help: ArgumentHelp("A teacher or student run directory or checkpoint (repeatable).", valueName: "RUN_OR_CHECKPOINT"))
    var model: [String] = []

    @Option(name: .long, help: ArgumentHelp("The name of a --model in the table and the example files, in --model order (repeatable; "
                                            + "default: its role, numbered).", valueName: "NAME"))
    var label: [String] = []

    @Option(name: .long, help: ArgumentHelp("Prepared data directory (from `parawave prepare`).", valueName: "DATA"))
    var data: String

    @Option(name: .long, help: "The split to evaluate: validation or train.")
    var split: String = "validation"

    @Option(name: .long, help: "Evaluate at most this many utterances (in manifest order).")
    var limit: Int?

    @Option(name: .long, help: ArgumentHelp("Write report.json, report.txt, WAVs and PNGs here.", valueName: "DIR"))
    var report: String?

    @Option(name: .long, help: ArgumentHelp("Write the report JSON here (default: DIR/report.json with --report, else not written).", valueName: "FILE"))
    var json: String?

    @Option(name: .long, help: ArgumentHelp("The teacher a student's KL is measured against (default: recorded at distillation).", valueName: "TEACHER_RUN"))
    var teacher: String?

    @Option(name: .long, help: "A student renders in chunks of this many frames.")
    var chunkFrames: Int = Student.defaultChunkFrames

    @Option(name: .long, help: "Sampling temperature: scales a teacher's logistic scales, or a student's input noise.")
    var temperature: Float = 1

    @Option(name: .long, help: "Random seed for sampling (utterance i uses seed + i).")
    var seed: Int = 1

    @Option(name: .long, help: ArgumentHelp(
        "Where a source-conditioned model's F0 comes from: tracked (pYIN on the real recording), predicted (the model's pitch predictor "
            + "on the mel, as for mels without audio) or both (each such model scored twice, the second as NAME-predicted-f0).",
        valueName: "tracked|predicted|both"))
    var f0: Evaluator.F0Choice = .tracked

    @Option(name: .long, help: ArgumentHelp(
        "auto (the default): a teacher reads Float16 weights (half), a student multiplies in bfloat16 where the CPU has it; single: "
            + "Float32 throughout. Applied to every model; see `parawave render --help`.", valueName: "auto|single"))
    var precision: RenderPrecision = .auto

    @Option(name: .long, help: ArgumentHelp("WaveGlow's sampling standard deviation of z (default 0.6).", valueName: "S"))
    var sigma: Float = ModelRenderer.defaultSigma

    func validate() throws {
        if ManifestEntry.Split(rawValue: split) == nil { throw ValidationError("--split must be validation or train, got '\(split)'") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if chunkFrames < 1 { throw ValidationError("--chunk-frames must be at least 1") }
        if seed < 0 { throw ValidationError("--seed must be non-negative") }
        if !(temperature > 0 && temperature <= 2) { throw ValidationError("--temperature must be in (0, 2], got \(temperature)") }
        if !(sigma > 0 && sigma <= 2) { throw ValidationError("--sigma must be in (0, 2], got \(sigma)") }
        if label.count > model.count { throw ValidationError("--label names \(label.count) models, but only \(model.count) --model given") }
        for name in label where name.isEmpty || name.contains("/") || Set(label).count != label.count || name == "griffin-lim" || name == "real" {
            throw ValidationError("--label '\(name)' must be a distinct, non-empty name without '/' (and not griffin-lim or real)")
        }
    }

    func run() throws {
        // Every output is checked before any work, so a run that cannot write leaves nothing.
        try OutputPaths.check(json.map { [$0] } ?? [])
        if let report { try OutputPaths.checkFolder(report) }
        var options = Evaluator.Options()
        options.split = ManifestEntry.Split(rawValue: split)!
        options.limit = limit
        options.reportDirectory = report
        options.teacher = teacher
        options.labels = label
        options.chunkFrames = chunkFrames
        options.seed = UInt64(seed)
        options.temperature = temperature
        options.precision = precision
        options.sigma = sigma
        options.f0 = f0
        let evaluator = try Evaluator(models: model, data: data, options: options)
        let result = try evaluator.run()
        print(Evaluator.table(result), terminator: "")
        if let json {
            try Evaluator.writeJSON(result, to: json)
            print("wrote \(json)")
        }
        if let report { print("wrote \(report)/report.json, report.txt and \(result.utterances.count) folders of WAVs and spectrograms") }
    }
}

extension Evaluator.F0Choice: ExpressibleByArgument {}
