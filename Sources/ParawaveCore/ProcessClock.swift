#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The CPU time this process has used, all threads together (user and system), in seconds:
/// what a CPU budget counts. Unlike the wall clock it does not run while other programs
/// hold the cores, so runs timed by it get the same work whatever else the machine does.
public enum ProcessClock {
    public static func cpuSeconds() -> Double {
        var t = timespec()
        guard clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) == 0 else { return 0 }
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// A monotonic clock in seconds (for timeouts; its origin is arbitrary).
    public static func wallSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}
