import Foundation
#if canImport(Glibc)
import Glibc
#endif
import ParawaveCore
import ParawaveEngine

/// A training run's directory (DESIGN.md section 8): `model.safetensors` (EMA weights),
/// `train-state.safetensors` (everything `--resume` needs), `recipe.yaml` (as resolved),
/// `metrics.jsonl` and `samples/`.
public struct RunDirectory: Sendable {
    public let path: String

    public init(_ path: String) { self.path = path }

    public var model: String { path + "/model.safetensors" }
    public var trainState: String { path + "/train-state.safetensors" }
    public var recipe: String { path + "/recipe.yaml" }
    public var metrics: String { path + "/metrics.jsonl" }
    public var samples: String { path + "/samples" }

    public var hasState: Bool { FileManager.default.fileExists(atPath: trainState) }

    /// Throws unless the directory suits the start: a state to resume from with `resume`,
    /// none to overwrite without it.
    public func checkStart(resume: Bool) throws {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) && !isFolder.boolValue {
            throw ParawaveError(path, "is a file, not a run directory; choose another --run")
        }
        try OutputPaths.checkFolder(path)
        if resume && !hasState {
            throw ParawaveError(path, "has no train-state.safetensors to resume from; start the run without --resume")
        }
        if !resume && hasState {
            throw ParawaveError(path, "already holds a training run; pass --resume to continue it, or choose another --run")
        }
    }

    /// Creates the directory (and `samples/`).
    public func create() throws {
        try OutputPaths.createFolder(samples)
    }

    /// Appends one JSON object per line to `metrics.jsonl` (keys sorted, numbers as given).
    public func appendMetrics(_ fields: [(String, MetricValue)]) throws {
        let line = "{" + fields.sorted { $0.0 < $1.0 }.map { "\"\($0.0)\":\($0.1.json)" }.joined(separator: ",") + "}\n"
        let fd = open(metrics, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw ParawaveError(metrics, "cannot be opened to append metrics (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        let bytes = Array(line.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, $0.count) }
        if n != bytes.count {
            let reason = n < 0 ? String(cString: strerror(errno)) : "only \(n) of \(bytes.count) bytes written"
            throw ParawaveError(metrics, "cannot append metrics (\(reason)); the last checkpoint is intact, continue with --resume")
        }
    }

    /// Drops metric lines past `step` (written after the checkpoint a resumed run restarts from).
    public func truncateMetrics(after step: Int) throws {
        guard let data = FileManager.default.contents(atPath: metrics) else { return }
        let kept = String(decoding: data, as: UTF8.self).split(separator: "\n").filter { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let s = object["step"] as? Int else { return false }
            return s <= step
        }
        try AtomicFile.write(Data(kept.map { $0 + "\n" }.joined().utf8), to: metrics)
    }

    /// Reads every metrics line.
    public func readMetrics() throws -> [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: metrics) else { throw ParawaveError(metrics, "no metrics in this run") }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }
}

/// A value in a metrics line.
public enum MetricValue: Sendable {
    case int(Int), double(Double), string(String), bool(Bool)

    var json: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return v.isFinite ? String(format: "%.6g", v) : "null"
        case .string(let v): return "\"" + v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        case .bool(let v): return v ? "true" : "false"
        }
    }
}

/// Set by SIGINT, SIGTERM or SIGUSR1; training loops check it between steps. SIGUSR1 is the
/// one `mpirun` forwards to every rank as it is (a Ctrl-C to `mpirun` becomes a SIGTERM and,
/// a second later, a SIGKILL), so `kill -USR1` to `mpirun` stops a data-parallel run at the
/// next step with a checkpoint however long the step takes.
public enum StopSignal {
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0

    public static var requested: Bool { flag != 0 }

    /// Installs handlers for SIGINT, SIGTERM and SIGUSR1 that only set the flag, and unblocks
    /// them on the calling thread: a process started with them blocked (a parent's signal mask
    /// is inherited) would otherwise never see a Ctrl-C.
    public static func install() {
        signal(SIGINT) { _ in StopSignal.flag = 1 }
        signal(SIGTERM) { _ in StopSignal.flag = 1 }
        signal(SIGUSR1) { _ in StopSignal.flag = 1 }
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGUSR1)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    public static func reset() { flag = 0 }
}
