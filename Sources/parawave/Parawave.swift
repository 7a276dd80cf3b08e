import ArgumentParser
import Foundation
import ParawaveCore
import ParawaveEngine
import ParawaveTraining

@main
struct Parawave: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parawave",
        abstract: "Neural waveform synthesis on the CPU: WaveNet teacher, IAF student, mel-to-WAV rendering.",
        discussion: """
            The flow: `prepare` a corpus into a data directory, train a teacher, distill a \
            student, render WAV from mel spectrograms. Mels are natural-log Slaney mels, \
            shape (n_mels, frames), as in Tacotron 2, WaveGlow and HiFi-GAN.
            """,
        version: ParawaveVersion.string,
        subcommands: [PrepareCommand.self, TrainTeacherCommand.self, DistillCommand.self, TrainWaveGlowCommand.self, RenderCommand.self, EvaluateCommand.self, PlotMetricsCommand.self, MelCommand.self, PitchCommand.self, SpectrogramCommand.self,
                      GriffinLimCommand.self, InfoCommand.self])

    /// OpenBLAS sizes its pool by the affinity mask alone; a container's or batch scheduler's
    /// CPU quota limits it too, as it does the toolkit's own workers (`Parallel.availableCPUs`).
    static func main() {
        // Past a file-size limit (ulimit -f) a write should fail with EFBIG, which every
        // writer reports with the path, rather than kill the process with SIGXFSZ.
        signal(SIGXFSZ, SIG_IGN)
        BLAS.setThreads(min(BLAS.threads, Parallel.availableCPUs))
        // Under mpirun: MPI starts before any thread does, and only rank 0 prints (every rank's
        // errors still reach stderr).
        let world = Communicator.launchedByMPI ? Communicator.world : Communicator.single
        if !world.isRoot { _ = freopen("/dev/null", "w", stdout) }
        do {
            var command = try parseAsRoot(nil)
            try command.run()
        } catch {
            if world.size > 1 && !(error is ExitCode) && !(error is CleanExit) {
                // One rank's failure ends the job at once rather than leaving the others waiting.
                world.abort(fullMessage(for: error))
            }
            world.finish()
            exit(withError: error)
        }
        world.finish()
    }
}

/// `--recipe` and `--set`, shared by every command that reads a recipe.
struct RecipeOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Recipe YAML file.", valueName: "recipe.yaml"))
    var recipe: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a recipe value, e.g. --set audio.fmax=7600 (repeatable).", valueName: "section.key=value"))
    var overrides: [String] = []
}
