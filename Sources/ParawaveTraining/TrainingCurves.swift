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

    /// The panels for the collected series of one run.
    static func panels(points: [String: [(Double, Double)]]) -> [LineChart.Panel] { panels(runs: [("", points)]) }

    /// The panels for several runs' series, each run in its own colours and named in the
    /// legend (a single run with an empty name is drawn as `plot-metrics RUN` draws it).
    /// Runs are compared panel by panel: a panel is drawn when any run has its values.
    public static func panels(runs: [(name: String, points: [String: [(Double, Double)]])]) -> [LineChart.Panel] {
        let single = runs.count == 1
        func series(_ key: String, _ label: String, _ color: Int, markers: Bool = false) -> [LineChart.Series] {
            runs.enumerated().compactMap { r, run in
                guard let values = run.points[key], !values.isEmpty else { return nil }
                // One run: the series' own colours. Several: a colour per run (validation
                // drawn with markers in the same colour).
                let colour = single ? LineChart.palette[color % LineChart.palette.count] : LineChart.palette[r % LineChart.palette.count]
                let name = run.name.isEmpty ? label : (label.isEmpty ? run.name : "\(run.name) \(label)")
                return LineChart.Series(label: name, color: colour, points: values, markers: markers)
            }
        }
        let isStudent = runs.contains { $0.points["kl"] != nil || $0.points["validation_kl"] != nil }
        var panels: [LineChart.Panel] = []
        if isStudent {
            let kl = series("kl", "training", 0) + series("validation_kl", "validation", 1, markers: true)
            if !kl.isEmpty { panels.append(LineChart.Panel(title: "KL(student || teacher), nats per sample", series: kl, logarithmic: true)) }
            let loss = series("loss", single ? "training" : "", 0)
            if !loss.isEmpty { panels.append(LineChart.Panel(title: "distillation loss", series: loss)) }
            let spectral = series("spectral", "training", 0) + series("validation_spectral", "validation", 1, markers: true)
            if !spectral.isEmpty { panels.append(LineChart.Panel(title: "spectral term", series: spectral)) }
        } else {
            let loss = series("loss", "training", 0) + series("validation_nll", "validation", 1, markers: true)
            if !loss.isEmpty { panels.append(LineChart.Panel(title: "negative log-likelihood, nats per sample", series: loss)) }
        }
        let lr = series("learning_rate", single ? "learning rate" : "", 2)
        if !lr.isEmpty { panels.append(LineChart.Panel(title: "learning rate", series: lr)) }
        let norm = series("grad_norm", single ? "before clipping" : "", 3)
        if !norm.isEmpty { panels.append(LineChart.Panel(title: "gradient norm", series: norm, logarithmic: true)) }
        return panels
    }

    /// Reads `path` (a run directory or a metrics.jsonl file) and writes the chart to `png`.
    /// Returns the number of metrics lines drawn. The file is streamed a block at a time and
    /// each line leaves only the numbers the chart draws (16 bytes a point), so a metrics file
    /// of hundreds of megabytes plots in a fraction of its size.
    @discardableResult
    public static func plot(_ path: String, png: String, blockSize: Int = 1 << 20) throws -> Int {
        try plot([path], names: [""], png: png, blockSize: blockSize)
    }

    /// Several runs on one chart, run `i` named `names[i]` in the legend; returns the metrics
    /// lines drawn in all.
    @discardableResult
    public static func plot(_ paths: [String], names: [String], png: String, blockSize: Int = 1 << 20) throws -> Int {
        precondition(paths.count == names.count && !paths.isEmpty, "one name per run")
        try OutputPaths.check([png])
        var runs: [(name: String, points: [String: [(Double, Double)]])] = [], count = 0
        for (path, name) in zip(paths, names) {
            let (points, lines) = try read(path, blockSize: blockSize)
            runs.append((name, points))
            count += lines
        }
        let panels = panels(runs: runs)
        if panels.isEmpty { throw ParawaveError(paths.count == 1 ? metricsFile(paths[0]) : paths.joined(separator: ", "), "holds no training metrics to plot") }
        try LineChart.write(panels, to: png)
        return count
    }

    /// The metrics file of a run directory, or the path itself.
    static func metricsFile(_ path: String) -> String {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue ? RunDirectory(path).metrics : path
    }

    /// The drawn series of one run's metrics, streamed, and the number of lines read.
    public static func read(_ path: String, blockSize: Int = 1 << 20) throws -> ([String: [(Double, Double)]], Int) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ParawaveError(path, "no such run directory or metrics file")
        }
        let file = isDirectory.boolValue ? RunDirectory(path).metrics : path
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
        return (points, count)
    }

    /// The keys `panels` reads.
    static let drawn: Set<String> = ["step", "skipped", "kl", "validation_kl", "loss", "spectral", "validation_spectral", "validation_nll",
                                     "learning_rate", "grad_norm"]
}
