import ArgumentParser
import Foundation
import ParawaveTraining

struct PlotMetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot-metrics",
        abstract: "Draw a run's training curves from its metrics.jsonl as a PNG (or several runs' on one chart).",
        discussion: """
            For a teacher: the training loss and validation NLL (nats per sample); for a \
            student: the training and validation KL to the teacher (log scale), the \
            distillation loss and the spectral term. Both: the learning rate and the gradient \
            norm before clipping (log scale). The x axis is the step. Given several runs \
            (for example the same recipe in two precisions), each panel draws every run in \
            its own colour, named by --label or by the run's folder.
            """)

    @Argument(help: ArgumentHelp("Run directories or metrics.jsonl files.", valueName: "RUN"))
    var runPaths: [String]

    @Option(name: .long, help: ArgumentHelp("The name of each run in the legend, in order (default: the run's folder name).", valueName: "NAME"))
    var label: [String] = []

    @Option(name: .long, help: ArgumentHelp("Output image.", valueName: "OUT.png"))
    var png: String

    func validate() throws {
        if runPaths.isEmpty { throw ValidationError("give at least one run") }
        if label.count > runPaths.count { throw ValidationError("--label names \(label.count) runs, but only \(runPaths.count) given") }
    }

    func run() throws {
        let count: Int
        if runPaths.count == 1 && label.isEmpty {
            count = try TrainingCurves.plot(runPaths[0], png: png)
        } else {
            let names = runPaths.enumerated().map { i, path in
                i < label.count ? label[i] : (path.hasSuffix(".jsonl") ? (path as NSString).deletingLastPathComponent : path)
                    .split(separator: "/").last.map(String.init) ?? path
            }
            count = try TrainingCurves.plot(runPaths, names: names, png: png)
        }
        print("wrote \(png) (\(count) metrics lines)")
    }
}
