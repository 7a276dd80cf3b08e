import Foundation
import Synchronization

/// A barrier for a few workers that meet very often (the teacher generator's: per-sample generation meets L + 1 times per
/// sample), far too often for a sleeping primitive while every worker has a core, so a waiter
/// spins first; when another process holds the core a worker needs (or the process may use
/// fewer cores than it has workers), spinning would burn the very time slice the late
/// worker needs, so after `spins` polls the waiter blocks on a condition variable.
public final class SpinBarrier: @unchecked Sendable {
    public let parties: Int
    /// Polls before blocking: about 50 microseconds, a few samples' worth of work.
    public let spins: Int
    private let arrived = Atomic<Int>(0)
    private let phase = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let condition = NSCondition()

    public init(parties: Int, spins: Int = 20_000) {
        self.parties = parties
        self.spins = spins
    }

    public func wait() {
        guard parties > 1 else { return }
        let p = phase.load(ordering: .sequentiallyConsistent)
        if arrived.add(1, ordering: .sequentiallyConsistent).newValue == parties {
            arrived.store(0, ordering: .relaxed)
            phase.store(p &+ 1, ordering: .sequentiallyConsistent)
            // A waiter counts itself a sleeper before its last look at the phase, so one of
            // the two sees the other (both sequentially consistent): no wake-up is lost.
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                condition.lock()
                condition.broadcast()
                condition.unlock()
            }
            return
        }
        for _ in 0..<spins where phase.load(ordering: .acquiring) != p { return }
        condition.lock()
        sleepers.add(1, ordering: .sequentiallyConsistent)
        while phase.load(ordering: .sequentiallyConsistent) == p { condition.wait() }
        sleepers.subtract(1, ordering: .sequentiallyConsistent)
        condition.unlock()
    }
}
