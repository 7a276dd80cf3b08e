import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine
import ParawaveModels

/// What `evaluate` writes: example WAVs and spectrograms, the JSON report and the text table.
extension Evaluator {
    /// DIR/ID/real.wav, one WAV per system, and DIR/ID/spectrograms.png stacking them all.
    func writeExamples(entry: ManifestEntry, real: [Float], rendered: [(String, [Float])], mels: MelSpectrogram, in dir: String) throws {
        let folder = dir + "/" + entry.id
        try OutputPaths.createFolder(folder)
        try AudioFile.write(Audio(samples: real, sampleRate: settings.sampleRate), to: folder + "/real.wav")
        var panels = [SpectrogramImage.Panel(title: "real: \(entry.id)", logMel: mels.logMel(real))]
        for (name, audio) in rendered {
            try AudioFile.write(Audio(samples: audio, sampleRate: settings.sampleRate), to: folder + "/\(name).wav")
            panels.append(SpectrogramImage.Panel(title: name, logMel: mels.logMel(audio)))
        }
        try SpectrogramImage.write(panels, settings: settings, to: folder + "/spectrograms.png")
    }

    public static func writeJSON(_ report: Report, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(try encoder.encode(report), to: path)
    }

    /// The summary as a text table, one row per system.
    public static func table(_ report: Report) -> String {
        let header = ["system", "log-mel dB", "SC", "log-mag", "MR-STFT", "MCD dB", "F0 RMSE c", "F0 <50c", "V/UV err", "STOI",
                      "burst dB", "NLL bits", "KL nats", "RTF"]
        var rows = [header]
        for s in report.systems {
            let m = s.mean, q = m.quality
            rows.append([s.name, String(format: "%.2f", q.logMelDB), String(format: "%.3f", q.spectralConvergence),
                         String(format: "%.3f", q.logMagnitude), String(format: "%.3f", q.stftDistance), String(format: "%.2f", q.mcd),
                         m.pitch?.rmseCents.map { String(format: "%.1f", $0) } ?? "-",
                         m.pitch?.within50.map { String(format: "%.1f%%", 100 * $0) } ?? "-",
                         m.pitch.map { String(format: "%.1f%%", 100 * $0.voicingError) } ?? "-",
                         m.stoi.map { String(format: "%.3f", $0) } ?? "-", m.burstDB.map { String(format: "%.1f", $0) } ?? "-",
                         m.nllBits.map { String(format: "%.3f", $0) } ?? "-", m.klNats.map { String(format: "%.4f", $0) } ?? "-",
                         String(format: "%.3f", m.rtf)])
        }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max()! }
        let lines = rows.map { row in
            row.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                return c == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        let seconds = report.systems.first?.seconds ?? 0
        let title = "\(report.utterances.count) \(report.split) utterances (\(String(format: "%.1f", seconds)) s) of \(report.data); \(report.mel)"
        var notes: [String] = []
        // Whether STOI is defined depends on the recording alone, so one count serves every system.
        if let first = report.systems.first?.name {
            let defined = report.utterances.filter { $0.scores[first]?.stoi != nil }.count
            if defined < report.utterances.count {
                notes.append("STOI over the \(defined) of \(report.utterances.count) utterances with at least 0.4 s of speech (30 frames within 40 dB of the loudest); undefined on the rest")
            }
        }
        return ([title] + lines + notes).joined(separator: "\n") + "\n"
    }
}
