import ArgumentParser
import Foundation
import ParawaveTraining

struct PlotMetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot-metrics",
        abstract: "Draw a run's training curves from its metrics.jsonl as a PNG.",
        discussion: """
            For a teacher: the training loss and validation NLL (nats per sample); for a \
            student: the training and validation KL to the teacher (log scale), the \
            distillation loss and the spectral term. Both: the learning rate and the gradient \
            norm before clipping (log scale). The x axis is the step.
            """)

    @Argument(help: ArgumentHelp("A run directory or its metrics.jsonl.", valueName: "RUN"))
    var runPath: String

    @Option(name: .long, help: ArgumentHelp("Output image.", valueName: "OUT.png"))
    var png: String

    func run() throws {
        let count = try TrainingCurves.plot(runPath, png: png)
        print("wrote \(png) (\(count) metrics lines)")
    }
}
