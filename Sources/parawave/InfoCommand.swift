import ArgumentParser
import Foundation
import ParawaveEngine

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Describe a checkpoint: model kind, format version, step, config and every tensor.")

    @Argument(help: ArgumentHelp("A .safetensors checkpoint.", valueName: "CHECKPOINT"))
    var checkpoint: String

    func run() throws {
        print(try CheckpointSummary(file: try SafeTensors.read(checkpoint)).text(path: checkpoint), terminator: "")
    }
}
