import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveTestSupport
import Testing

import ParawaveTraining

struct TrainingCurvesTests {
    /// `plot-metrics` streams the file: read in blocks of 7 bytes (so nearly every line
    /// crosses a block boundary) it draws the same PNG as in one block, counts every line, and
    /// names the line number of a damaged one.
    @Test func streamsTheMetricsFile() throws {
        let dir = Fixtures.temporaryDirectory()
        var text = ""
        for step in 1...300 {
            text += "{\"grad_norm\":\(1 + Double(step % 7)),\"learning_rate\":0.001,\"loss\":\(8 - Double(step) / 100),\"step\":\(step),\"unused\":\"x\"}\n"
            if step % 50 == 0 { text += "{\"step\":\(step),\"validation_nll\":\(7.5 - Double(step) / 120)}\n" }
        }
        let file = dir + "/metrics.jsonl"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try TrainingCurves.plot(file, png: dir + "/whole.png") == 306)
        #expect(try TrainingCurves.plot(file, png: dir + "/blocks.png", blockSize: 7) == 306)
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/whole.png")) == Data(contentsOf: URL(fileURLWithPath: dir + "/blocks.png")))
        // No final newline: the last line still counts.
        try String(text.dropLast()).write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try TrainingCurves.plot(file, png: dir + "/last.png", blockSize: 5) == 306)
        try (text + "{\"step\": 301, \"loss\": \n").write(toFile: file, atomically: true, encoding: .utf8)
        do {
            try TrainingCurves.plot(file, png: dir + "/bad.png", blockSize: 11)
            Issue.record("a damaged line was accepted")
        } catch {
            #expect("\(error)".contains("line 307 is not a JSON object"), "\(error)")
        }
    }

    /// Several runs on one chart (`plot-metrics A B --label ...`): every panel draws each
    /// run that logged its values, in the run's own colour and under its name, and the lines
    /// of all runs are counted.
    @Test func comparesRunsOnOneChart() throws {
        let dir = Fixtures.temporaryDirectory()
        func write(_ name: String, offset: Double, validation: Bool) throws -> String {
            var text = ""
            for step in stride(from: 10, through: 200, by: 10) {
                text += "{\"grad_norm\":2,\"learning_rate\":0.001,\"loss\":\(8 - Double(step) / 100 + offset),\"step\":\(step)}\n"
                if validation && step % 50 == 0 { text += "{\"step\":\(step),\"validation_nll\":\(7.5 - Double(step) / 120 + offset)}\n" }
            }
            let file = dir + "/\(name).jsonl"
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            return file
        }
        let a = try write("single", offset: 0, validation: true), b = try write("bf16", offset: 0.01, validation: false)
        let runs = [("float32", try TrainingCurves.read(a).0), ("bfloat16", try TrainingCurves.read(b).0)]
        let panels = TrainingCurves.panels(runs: runs)
        let nll = try #require(panels.first)
        #expect(nll.series.map(\.label) == ["float32 training", "bfloat16 training", "float32 validation"])
        #expect(nll.series[0].color != nll.series[1].color && nll.series[0].color == nll.series[2].color)
        #expect(nll.series[1].points.first?.1 == 8 - 0.1 + 0.01)
        #expect(panels.map(\.title).contains("gradient norm") && panels.first { $0.title == "gradient norm" }?.series.count == 2)
        #expect(try TrainingCurves.plot([a, b], names: ["float32", "bfloat16"], png: dir + "/both.png") == 44)
        #expect(FileManager.default.fileExists(atPath: dir + "/both.png"))
        // One run plotted alone keeps the usual labels.
        #expect(TrainingCurves.panels(runs: [("", runs[0].1)]).first?.series.map(\.label) == ["training", "validation"])
    }
}
