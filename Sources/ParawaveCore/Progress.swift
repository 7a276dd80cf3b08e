import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reports the progress of a long job on standard error.
///
/// On a terminal it redraws one line (`label [#####-----] 45/100 12.3/s ETA 0:08 extra`);
/// otherwise it prints a plain log line at most every `logInterval` seconds and at the end,
/// so logs stay readable in CI and in files.
public final class ProgressReporter: @unchecked Sendable {
    public let label: String
    public let total: Int
    public let unit: String
    private let isTerminal: Bool
    private let logInterval: Double
    private let start = Date()
    private var lastPrint = Date.distantPast
    private let lock = NSLock()
    private(set) public var done = 0
    private var finished = false
    private var emittedDone = -1

    /// - Parameters:
    ///   - total: the number of items the job will process.
    ///   - unit: the items' name in the rate (`files`, `steps`, `samples`).
    ///   - isTerminal: defaults to whether standard error is a TTY.
    public init(_ label: String, total: Int, unit: String = "items", isTerminal: Bool? = nil, logInterval: Double = 10) {
        self.label = label
        self.total = max(total, 0)
        self.unit = unit
        self.isTerminal = isTerminal ?? (isatty(STDERR_FILENO) != 0)
        self.logInterval = logInterval
    }

    /// Records `count` more items done; `detail` is appended to the line (for example a loss).
    public func advance(by count: Int = 1, detail: String = "") {
        lock.lock()
        defer { lock.unlock() }
        done += count
        let now = Date()
        let interval = isTerminal ? 0.1 : logInterval
        if now.timeIntervalSince(lastPrint) >= interval || done >= total {
            lastPrint = now
            emit(detail: detail, final: false)
        }
    }

    /// Ends the line on a terminal and prints a last summary line elsewhere.
    public func finish(detail: String = "") {
        lock.lock()
        defer { lock.unlock() }
        guard !finished else { return }
        finished = true
        if isTerminal {
            emit(detail: detail, final: true)
        } else if emittedDone != done || !detail.isEmpty {
            emit(detail: detail, final: true)
        }
    }

    /// Elapsed seconds since the reporter was made.
    public var elapsed: Double { Date().timeIntervalSince(start) }

    /// The text of the current progress line (without terminal control characters).
    public func line(detail: String = "") -> String {
        let seconds = max(elapsed, 1e-9)
        let rate = Double(done) / seconds
        var text = "\(label) "
        if total > 0 {
            let width = 24
            let filled = min(width, done * width / total)
            text += "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "] "
            text += "\(done)/\(total)"
        } else {
            text += "\(done)"
        }
        text += String(format: " %.1f %@/s", rate, unit)
        if total > 0 && done > 0 && done < total {
            text += " ETA " + Self.clock(Double(total - done) / max(rate, 1e-9))
        } else {
            text += " elapsed " + Self.clock(seconds)
        }
        if !detail.isEmpty { text += " " + detail }
        return text
    }

    private func emit(detail: String, final: Bool) {
        emittedDone = done
        let text = line(detail: detail)
        if isTerminal {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + text + (final ? "\n" : "")).utf8))
        } else {
            FileHandle.standardError.write(Data((text + "\n").utf8))
        }
    }

    /// Formats seconds as `h:mm:ss` or `m:ss`.
    public static func clock(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
