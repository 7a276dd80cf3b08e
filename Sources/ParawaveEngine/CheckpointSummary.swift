import Foundation

/// What `parawave info` prints about a checkpoint: its metadata (model kind, format
/// version, step, config as indented JSON) and each tensor's name, dtype and shape, with
/// the total parameter count.
public struct CheckpointSummary: Sendable {
    public let file: SafeTensors

    public init(file: SafeTensors) { self.file = file }

    /// Total number of values over all tensors.
    public var parameterCount: Int { file.tensors.values.map(\.values.count).reduce(0, +) }

    public func text(path: String) -> String {
        var out = "checkpoint:      \(path)\n"
        out += "kind:            \(file.metadata["kind"] ?? "(not recorded)")\n"
        out += "format version:  \(file.metadata["format_version"] ?? "(not recorded)")\n"
        out += "step:            \(file.metadata["step"] ?? "(not recorded)")\n"
        for key in file.metadata.keys.sorted() where !["kind", "format_version", "step", "config"].contains(key) {
            out += "\(key + ":")".padding(toLength: 17, withPad: " ", startingAt: 0) + "\(file.metadata[key]!)\n"
        }
        if let config = file.metadata["config"] {
            out += "config:\n"
            if let data = config.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data),
               let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]) {
                out += String(decoding: pretty, as: UTF8.self).split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n"
            } else {
                out += "  \(config)\n"
            }
        }
        let names = file.tensors.keys.sorted()
        let width = max(6, names.map(\.count).max() ?? 0)
        out += "tensors (\(names.count)):\n"
        for name in names {
            let t = file.tensors[name]!
            out += "  " + name.padding(toLength: width, withPad: " ", startingAt: 0) + "  \(t.dtype.padding(toLength: 4, withPad: " ", startingAt: 0))  ("
                + t.shape.map(String.init).joined(separator: ", ") + ")\n"
        }
        out += "parameters:      \(parameterCount.formatted())\n"
        return out
    }
}
