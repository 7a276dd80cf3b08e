import Foundation
import ParawaveCore
import Synchronization
import ParawaveTestSupport
import Testing

struct AtomicFileTests {
    /// Outputs go only to regular files: a device node, a FIFO or a folder at the path is
    /// refused and left as it was.
    @Test func refusesToReplaceWhatIsNotAFile() throws {
        let dir = Fixtures.temporaryDirectory()
        let fifo = dir + "/pipe"
        #expect(mkfifo(fifo, 0o600) == 0)
        for (path, kind) in [("/dev/null", "a device"), (fifo, "a FIFO"), (dir, "a folder")] {
            #expect(throws: ParawaveError.self) { try AtomicFile.write(Data("x".utf8), to: path) }
            do { try AtomicFile.write(Data("x".utf8), to: path) } catch { #expect("\(error)".contains(kind), "\(error)") }
        }
        var info = stat()
        #expect(stat(fifo, &info) == 0 && (info.st_mode & S_IFMT) == S_IFIFO && stat("/dev/null", &info) == 0 && (info.st_mode & S_IFMT) == S_IFCHR)
        // A regular file is replaced as before.
        try AtomicFile.write(Data("old".utf8), to: dir + "/f")
        try AtomicFile.write(Data("new".utf8), to: dir + "/f")
        #expect(try String(contentsOfFile: dir + "/f", encoding: .utf8) == "new")
    }

    @Test func replacesContentAndLeavesNoTemporaryFiles() throws {
        let dir = Fixtures.temporaryDirectory()
        let path = dir + "/f.bin"
        try AtomicFile.write(Data([1, 2, 3]), to: path)
        try AtomicFile.write(Data([4, 5]), to: path)
        #expect(FileManager.default.contents(atPath: path) == Data([4, 5]))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["f.bin"])
    }

    @Test func failureKeepsTheOldFile() throws {
        let dir = Fixtures.temporaryDirectory()
        let path = dir + "/f.bin"
        try AtomicFile.write(Data([1]), to: path)
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try AtomicFile.write(to: path) { temporary in
                FileManager.default.createFile(atPath: temporary, contents: Data([9, 9]))
                throw Boom()
            }
        }
        #expect(FileManager.default.contents(atPath: path) == Data([1]))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["f.bin"])
        #expect(throws: ParawaveError.self) { try AtomicFile.write(Data(), to: dir + "/missing/f.bin") }
    }
}

struct SeededGeneratorTests {
    @Test func sameSeedSameStreamAndStateRestores() {
        var a = SeededGenerator(seed: 42), b = SeededGenerator(seed: 42)
        for _ in 0..<100 { #expect(a.next() == b.next()) }
        let saved = a
        let first = (0..<5).map { _ in a.next() }
        var restored = saved
        #expect((0..<5).map { _ in restored.next() } == first)
        #expect(SeededGenerator(seed: 1).state != SeededGenerator(seed: 2).state)
    }

    @Test func uniformIsOpenAndNormalHasUnitMoments() {
        var g = SeededGenerator(seed: 3)
        let u = (0..<100_000).map { _ in g.uniformOpen() }
        #expect(u.allSatisfy { $0 > 0 && $0 < 1 })
        #expect(abs(u.reduce(0, +) / Float(u.count) - 0.5) < 0.01)
        let n = (0..<100_000).map { _ in Double(g.normal()) }
        let mean = n.reduce(0, +) / Double(n.count)
        let variance = n.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n.count)
        #expect(abs(mean) < 0.02 && abs(variance - 1) < 0.02)
    }
}

struct ProgressTests {
    @Test func lineShowsCountsRateAndEta() {
        let progress = ProgressReporter("job", total: 10, unit: "files", isTerminal: false, logInterval: .infinity)
        progress.advance(by: 4)
        let line = progress.line(detail: "loss 1.5")
        #expect(line.hasPrefix("job [#########---------------] 4/10"))
        #expect(line.contains("files/s") && line.contains("ETA") && line.hasSuffix("loss 1.5"))
        #expect(ProgressReporter.clock(3725) == "1:02:05" && ProgressReporter.clock(65) == "1:05")
    }
}

struct ParallelTests {
    @Test func chunksCoverTheRangeOnce() {
        for count in [0, 1, 5, 1000] {
            let hits = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(count, 1))
            hits.initialize(repeating: 0)
            Parallel.forEachChunk(count) { range in for i in range { hits[i] += 1 } }
            #expect(hits.prefix(count).allSatisfy { $0 == 1 })
            hits.deallocate()
        }
    }

    /// The CPUs a process may use: kernel CPU lists and cgroup quotas (v2 and v1) parse, a
    /// missing or unlimited quota is none, and the count never exceeds the machine's.
    @Test func availableCPUsFollowAffinityAndQuota() throws {
        #expect(Parallel.cpuListCount("0-1") == 2 && Parallel.cpuListCount("0-3,8,10-11\n") == 7 && Parallel.cpuListCount("5") == 1)
        #expect(Parallel.cpuListCount("") == nil && Parallel.cpuListCount("3-1") == nil && Parallel.cpuListCount("a") == nil)
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cgroup-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/cpu", withIntermediateDirectories: true)
        #expect(Parallel.cgroupQuota(root: root) == nil)
        try "50000\n".write(toFile: root + "/cpu/cpu.cfs_quota_us", atomically: true, encoding: .utf8)
        try "100000\n".write(toFile: root + "/cpu/cpu.cfs_period_us", atomically: true, encoding: .utf8)
        #expect(Parallel.cgroupQuota(root: root) == 0.5)
        try "-1\n".write(toFile: root + "/cpu/cpu.cfs_quota_us", atomically: true, encoding: .utf8)
        #expect(Parallel.cgroupQuota(root: root) == nil)
        try "150000 100000\n".write(toFile: root + "/cpu.max", atomically: true, encoding: .utf8)
        #expect(Parallel.cgroupQuota(root: root) == 1.5)
        try "max 100000\n".write(toFile: root + "/cpu.max", atomically: true, encoding: .utf8)
        #expect(Parallel.cgroupQuota(root: root) == nil)
        #expect(Parallel.availableCPUs >= 1 && Parallel.availableCPUs <= ProcessInfo.processInfo.activeProcessorCount)
    }

    /// The barrier keeps two workers in step whether they spin or block (no spinning at all
    /// exercises the blocking path, where a lost wake-up would hang): each round one worker
    /// writes and the other reads after the barrier.
    @Test(arguments: [0, 20_000])
    func barrierKeepsWorkersInStep(spins: Int) {
        let barrier = SpinBarrier(parties: 2, spins: spins)
        let rounds = 20_000
        let slots = UnsafeMutablePointer<Int>.allocate(capacity: 2)
        slots.initialize(repeating: -1, count: 2)
        defer { slots.deallocate() }
        let mismatches = Atomic<Int>(0)
        nonisolated(unsafe) let shared = slots
        let done = DispatchSemaphore(value: 0)
        func work(_ worker: Int) {
            for r in 0..<rounds {
                if worker == 0 { shared[r % 2] = r }
                barrier.wait()
                if worker == 1 && shared[r % 2] != r { mismatches.add(1, ordering: .relaxed) }
                barrier.wait()
            }
        }
        let reader = Thread {
            work(1)
            done.signal()
        }
        reader.start()
        work(0)
        done.wait()
        #expect(mismatches.load(ordering: .relaxed) == 0)
    }
}
