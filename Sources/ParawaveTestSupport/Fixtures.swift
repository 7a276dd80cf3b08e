import Foundation

/// Locates the committed golden fixtures (Tests/Fixtures) and scratch folders for tests.
public enum Fixtures {
    /// The repository root, found from this file's location.
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Absolute path of `Tests/Fixtures/<relative>`.
    public static func path(_ relative: String) -> String {
        root.appendingPathComponent("Tests/Fixtures").appendingPathComponent(relative).path
    }

    /// A new empty temporary folder, unique to this call.
    public static func temporaryDirectory(_ label: String = "parawave-test") -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }
}

/// Runs the built command-line tools in tests.
public enum CommandRunner {
    public struct Result {
        public var status: Int32
        public var stdout: String
        public var stderr: String

        public init(status: Int32, stdout: String, stderr: String) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
        }
    }

    /// The built executable `name`, found beside the running test bundle (the same build
    /// configuration) or else in `.build/release` or `.build/debug`.
    public static func executable(_ name: String) -> String {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name).path
        let candidates = [beside] + ["release", "debug"].map { Fixtures.root.appendingPathComponent(".build/\($0)/\(name)").path }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? beside
    }

    /// Runs `parawave` with `arguments`, capturing its output; `environment` is added to the
    /// test's own.
    public static func parawave(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        try collect(start(executable("parawave"), arguments, environment: environment))
    }

    /// Open MPI's launcher.
    public static let mpirunPath = "/usr/bin/mpirun"

    /// The `mpirun` arguments that start `parawave` as `ranks` processes on this machine:
    /// oversubscribed if need be, as root where the tests run as root, with `environment`
    /// passed to every rank, and without the single-copy shared-memory path that containers
    /// often forbid (ptrace).
    public static func mpirunArguments(ranks: Int, environment: [String: String] = [:]) -> [String] {
        var arguments = ["--oversubscribe", "-np", String(ranks), "--mca", "btl_vader_single_copy_mechanism", "none"]
        if getuid() == 0 { arguments.append("--allow-run-as-root") }
        for key in environment.keys.sorted() { arguments += ["-x", key] }
        return arguments + [executable("parawave")]
    }

    /// Runs `parawave` as `ranks` MPI processes (`mpirun`), capturing the job's output.
    public static func mpirun(ranks: Int, _ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        try collect(start(mpirunPath, mpirunArguments(ranks: ranks, environment: environment) + arguments, environment: environment))
    }

    /// A started process with its output pipes.
    public struct Started {
        public let process: Process
        public let out: Pipe, err: Pipe
    }

    /// Starts `path` with `arguments`; `environment` is added to the test's own.
    public static func start(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Started {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        return Started(process: process, out: out, err: err)
    }

    /// Waits for a started process and returns its status and output.
    public static func collect(_ started: Started) -> Result {
        // Read both pipes while the child runs, so that neither can fill and block it.
        final class Box: @unchecked Sendable { var data = Data() }
        let out = Box(), done = DispatchSemaphore(value: 0)
        let handle = started.out.fileHandleForReading
        DispatchQueue.global().async {
            out.data = handle.readDataToEndOfFile()
            done.signal()
        }
        let stderr = started.err.fileHandleForReading.readDataToEndOfFile()
        done.wait()
        let stdout = out.data
        started.process.waitUntilExit()
        return Result(status: started.process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }
}
