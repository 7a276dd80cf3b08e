import Foundation

/// Splits work over the machine's cores.
///
/// `threads` is the number of workers used by the toolkit's own elementwise and
/// per-frame loops; BLAS keeps its own thread pool (see ParawaveEngine.BLAS), and
/// the two are never run concurrently, so they do not fight over cores.
public enum Parallel {
    nonisolated(unsafe) private static var configuredThreads: Int = ProcessInfo.processInfo.activeProcessorCount

    /// Worker count for the toolkit's own loops (at least 1).
    public static var threads: Int {
        get { configuredThreads }
        set { configuredThreads = max(1, newValue) }
    }

    /// Calls `body(range)` over `0..<count` split into at most `threads` contiguous chunks,
    /// in parallel when there is more than one chunk and at least `minimumChunk` items each.
    public static func forEachChunk(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let workers = max(1, min(threads, count / max(minimumChunk, 1)))
        if workers == 1 {
            body(0..<count)
            return
        }
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let lo = count * w / workers
            let hi = count * (w + 1) / workers
            if lo < hi { body(lo..<hi) }
        }
    }
}
