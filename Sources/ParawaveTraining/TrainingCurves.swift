import Foundation
import ParawaveAudio
import ParawaveCore

/// The panels `plot-metrics` draws from a run's `metrics.jsonl`: the training loss (with a
/// teacher's validation NLL beside it), a student's KL (training and validation), the spectral
/// term, the learning rate and the gradient norm, each where the run logged it.
public enum TrainingCurves {
    /// The panels for the metrics lines `lines` (skipped steps left out).
    public static func panels(_ lines: [[String: Any]]) -> [LineChart.Panel] {
        let rows = lines.filter { ($0["skipped"] as? Bool) != true }
        func series(_ key: String, _ label: String, _ color: Int, markers: Bool = false) -> LineChart.Series? {
            let points = rows.compactMap { row -> (Double, Double)? in
                guard let step = (row["step"] as? NSNumber)?.doubleValue, let value = (row[key] as? NSNumber)?.doubleValue else { return nil }
                return (step, value)
            }
            return points.isEmpty ? nil : LineChart.Series(label: label, color: LineChart.palette[color], points: points, markers: markers)
        }
        let isStudent = rows.contains { $0["kl"] != nil || $0["validation_kl"] != nil }
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
    /// Returns the number of metrics lines drawn.
    @discardableResult
    public static func plot(_ path: String, png: String) throws -> Int {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ParawaveError(path, "no such run directory or metrics file")
        }
        let file = isDirectory.boolValue ? RunDirectory(path).metrics : path
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ParawaveError(file, "no metrics.jsonl here; has the run logged a step yet?")
        }
        var lines: [[String: Any]] = []
        for (number, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() where !line.isEmpty {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw ParawaveError(file, "line \(number + 1) is not a JSON object")
            }
            lines.append(object)
        }
        let panels = panels(lines)
        if panels.isEmpty { throw ParawaveError(file, "holds no training metrics to plot") }
        try LineChart.write(panels, to: png)
        return lines.count
    }
}
