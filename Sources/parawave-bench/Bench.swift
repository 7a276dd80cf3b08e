import Foundation
import ParawaveAudio
import ParawaveCore
import ParawaveEngine

/// `make bench`: speed figures for BENCHMARKS.md. Each figure is the median of several
/// timed runs after a warm-up. Usage: `parawave-bench [NAME ...]` (default: all).
@main
struct Bench {
    static func main() throws {
        let selected = Set(CommandLine.arguments.dropFirst())
        let all: [(String, () throws -> Void)] = [("sgemm", sgemm), ("mel", mel)]
        print("parawave-bench \(ParawaveVersion.string) on \(ProcessInfo.processInfo.activeProcessorCount) cores")
        for (name, run) in all where selected.isEmpty || selected.contains(name) { try run() }
    }

    /// Median wall time of `body` in seconds over `runs` runs after one warm-up.
    static func time(runs: Int = 7, _ body: () throws -> Void) rethrows -> Double {
        try body()
        var times: [Double] = []
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return times.sorted()[runs / 2]
    }

    /// SGEMM GFLOP/s on square products: the machine's peak that the kernels are compared with.
    static func sgemm() {
        for threads in [1, ProcessInfo.processInfo.activeProcessorCount] {
            BLAS.setThreads(threads)
            for n in [512, 1024, 2048] {
                var rng = SeededGenerator(seed: 1)
                let a = (0..<(n * n)).map { _ in rng.normal() }, b = (0..<(n * n)).map { _ in rng.normal() }
                var c = [Float](repeating: 0, count: n * n)
                let seconds = time(runs: n >= 2048 ? 3 : 7) {
                    BLAS.sgemm(m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: &c, ldc: n)
                }
                let gflops = 2 * Double(n) * Double(n) * Double(n) / seconds / 1e9
                print(String(format: "sgemm  %4d^3  threads %d  %8.1f GFLOP/s", n, threads, gflops))
            }
        }
        BLAS.setThreads(ProcessInfo.processInfo.activeProcessorCount)
    }

    /// Log-mel extraction (DESIGN.md defaults) of 60 s of 16 kHz audio.
    static func mel() throws {
        var rng = SeededGenerator(seed: 2)
        let samples = (0..<(60 * 16000)).map { i in 0.3 * Float(sin(Double(i) * 0.07)) + 0.05 * rng.normal() }
        for threads in [1, ProcessInfo.processInfo.activeProcessorCount] {
            Parallel.threads = threads
            let threaded = try MelSpectrogram(settings: MelSettings())
            let seconds = time(runs: 11) { _ = threaded.logMel(samples) }
            print(String(format: "mel    60 s @ 16 kHz  threads %d  %7.2f ms  %8.0fx real time", threads, seconds * 1000, 60 / seconds))
        }
        Parallel.threads = ProcessInfo.processInfo.activeProcessorCount
    }
}
