import Foundation

/// Splits work over the machine's cores.
///
/// `threads` is the number of workers used by the toolkit's own elementwise and
/// per-frame loops; BLAS keeps its own thread pool (see ParawaveEngine.BLAS), and
/// the two are never run concurrently, so they do not fight over cores.
public enum Parallel {
    nonisolated(unsafe) private static var configuredThreads: Int = availableCPUs

    /// The CPUs this process may use: the cores of its affinity mask (`taskset`, a container's
    /// cpuset), and no more than its cgroup CPU quota (rounded up), which containers and batch
    /// schedulers set; the machine's count where neither is readable.
    public static let availableCPUs: Int = {
        var count = ProcessInfo.processInfo.activeProcessorCount
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }),
           let allowed = cpuListCount(String(line.dropFirst("Cpus_allowed_list:".count))) {
            count = min(count, allowed)
        }
        if let quota = cgroupQuota() { count = min(count, max(1, Int(quota.rounded(.up)))) }
        return max(1, count)
    }()

    /// The number of CPUs in a kernel CPU list ("0-3,8,10-11"); nil if it is not one.
    public static func cpuListCount(_ list: String) -> Int? {
        var total = 0
        for part in list.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",") {
            let ends = part.split(separator: "-").map { Int($0) }
            switch ends.count {
            case 1: guard ends[0] != nil else { return nil }; total += 1
            case 2: guard let a = ends[0], let b = ends[1], b >= a else { return nil }; total += b - a + 1
            default: return nil
            }
        }
        return total > 0 ? total : nil
    }

    /// CPUs' worth of time per period the cgroup allows (v2 `cpu.max`, v1 `cpu.cfs_quota_us`
    /// over `cpu.cfs_period_us`); nil without a limit.
    public static func cgroupQuota(root: String = "/sys/fs/cgroup") -> Double? {
        func read(_ path: String) -> String? { try? String(contentsOfFile: root + path, encoding: .utf8) }
        if let max = read("/cpu.max") {
            let fields = max.split(whereSeparator: \.isWhitespace)
            guard fields.count == 2, let quota = Double(fields[0]), let period = Double(fields[1]), quota > 0, period > 0 else { return nil }
            return quota / period
        }
        if let quota = read("/cpu/cpu.cfs_quota_us").flatMap({ Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }),
           let period = read("/cpu/cpu.cfs_period_us").flatMap({ Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }),
           quota > 0, period > 0 {
            return quota / period
        }
        return nil
    }

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
