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
}
