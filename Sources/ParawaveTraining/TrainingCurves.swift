import Foundation
import ParawaveAudio
import ParawaveCore

/// The panels `plot-metrics` draws from a run's `metrics.jsonl`: the training loss (with a
/// teacher's validation NLL beside it), a student's KL (training and validation), the spectral
/// term, the learning rate and the gradient norm, each where the run logged it.
public enum TrainingCurves {
    /// Adds a metrics line's drawn values to `points`, per key (step, value); skipped steps
    /// are left out.
    static func collect(_ row: [String: Any], into points: inout [String: [(Double, Double)]]) {
        guard (row["skipped"] as? Bool) != true, let step = (row["step"] as? NSNumber)?.doubleValue else { return }
        for key in drawn where key != "step" && key != "skipped" {
            if let value = (row[key] as? NSNumber)?.doubleValue { points[key, default: []].append((step, value)) }
        }
    }

    /// The panels for the collected series.
    static func panels(points: [String: [(Double, Double)]]) -> [LineChart.Panel] {
        func series(_ key: String, _ label: String, _ color: Int, markers: Bool = false) -> LineChart.Series? {
            guard let values = points[key], !values.isEmpty else { return nil }
            return LineChart.Series(label: label, color: LineChart.palette[color], points: values, markers: markers)
        }
        let isStudent = points["kl"] != nil || points["validation_kl"] != nil
        var panels: [LineChart.Panel] = []
        if isStudent {
            let kl = [series("kl", "training", 0), series("validation_kl", "validation", 1, markers: true)].compactMap { $0 }
            if !kl.isEmpty { panels.append(LineChart.Panel(title: "KL(student || teacher), nats per sample", series: kl, logarithmic: true)) }
            if let loss = series("loss", "training", 0) { panels.append(LineChart.Panel(title: "distillation loss", series: [loss])) }
            let spectral = [series("spectral", "training", 0), series("validation_spectral", "validation", 1, markers: true)].compactMap { $0 }
            if !spectral.isEmpty { panels.append(LineChart.Panel(title: "spectral term", series: spectral)) }
        } else {
            let loss = [series("loss", "training", 0), series("validation_nll", "validation", 1, markers: true)].compactMap { $0 }
            if !loss.isEmpty { panels.append(LineChart.Panel(title: "negative log-likelihood, nats per sample", series: loss)) }
        }
        if let lr = series("learning_rate", "learning rate", 2) { panels.append(LineChart.Panel(title: "learning rate", series: [lr])) }
        if let norm = series("grad_norm", "before clipping", 3) {
            panels.append(LineChart.Panel(title: "gradient norm", series: [norm], logarithmic: true))
        }
        return panels
    }

    /// Reads `path` (a run directory or a metrics.jsonl file) and writes the chart to `png`.
    /// Returns the number of metrics lines drawn. The file is streamed a block at a time and
    /// each line leaves only the numbers the chart draws (16 bytes a point), so a metrics file
    /// of hundreds of megabytes plots in a fraction of its size.
    @discardableResult
    public static func plot(_ path: String, png: String, blockSize: Int = 1 << 20) throws -> Int {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ParawaveError(path, "no such run directory or metrics file")
        }
        let file = isDirectory.boolValue ? RunDirectory(path).metrics : path
        try OutputPaths.check([png])
        guard let handle = FileHandle(forReadingAtPath: file) else {
            throw ParawaveError(file, "no metrics.jsonl here; has the run logged a step yet?")
        }
        defer { try? handle.close() }
        var points: [String: [(Double, Double)]] = [:], pending = Data(), number = 0, count = 0
        func take(_ line: Data) throws {
            number += 1
            guard !line.isEmpty else { return }
            guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any] else {
                throw ParawaveError(file, "line \(number) is not a JSON object")
            }
            collect(object, into: &points)
            count += 1
        }
        while let block = try handle.read(upToCount: blockSize), !block.isEmpty {
            pending.append(block)
            var start = pending.startIndex
            while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                try take(pending[start..<newline])
                start = newline + 1
            }
            pending = Data(pending[start...])
        }
        if !pending.isEmpty { try take(pending) }
        let panels = panels(points: points)
        if panels.isEmpty { throw ParawaveError(file, "holds no training metrics to plot") }
        try LineChart.write(panels, to: png)
        return count
    }

    /// The keys `panels` reads.
    static let drawn: Set<String> = ["step", "skipped", "kl", "validation_kl", "loss", "spectral", "validation_spectral", "validation_nll",
                                     "learning_rate", "grad_norm"]
}
