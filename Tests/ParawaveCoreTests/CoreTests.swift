import Foundation
import ParawaveCore
import ParawaveTestSupport
import Testing

struct AtomicFileTests {
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
}
