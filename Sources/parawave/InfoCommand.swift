import ArgumentParser
import Foundation
import ParawaveEngine
import ParawaveModels

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Describe a checkpoint: model kind, format version, step, config and every tensor.")

    @Argument(help: ArgumentHelp("A .safetensors checkpoint, or a run directory (its model.safetensors).", valueName: "CHECKPOINT"))
    var checkpoint: String

    func run() throws {
        var isDirectory: ObjCBool = false
        let file = FileManager.default.fileExists(atPath: checkpoint, isDirectory: &isDirectory) && isDirectory.boolValue
            ? try TrainedModel.checkpointFile(checkpoint) : checkpoint
        print(try CheckpointSummary(file: try SafeTensors.read(file)).text(path: file), terminator: "")
    }
}
