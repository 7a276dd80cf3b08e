import CMPI
import Foundation
import ParawaveCore

/// The processes of a data-parallel training run and the collective operations it needs:
/// rank, size, elementwise sums, gather and barrier. MPI stays behind this type.
///
/// `world` is MPI's world when the process was launched by `mpirun` (or a scheduler's launcher
/// speaking PMIx), and otherwise one process that makes no MPI call at all.
///
/// Sums are formed in rank order 0, 1, ..., N-1 whatever the messages' timing: the vector is
/// cut into N chunks, chunk r of every rank goes to rank r (an all-to-all), which adds them in
/// rank order, and the sums go back to everyone (an all-gather). Each rank sends and receives
/// 2 (N-1)/N of the vector, as a ring all-reduce does.
///
/// Every collective waits at most `timeout` seconds: a rank that died or hangs ends the whole
/// job with a message (`MPI_Abort`) rather than leaving the others waiting forever.
public final class Communicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// Seconds a collective may wait for the other ranks (`PARAWAVE_COLLECTIVE_TIMEOUT`, default 600).
    public let timeout: Double
    private let mpi: Bool

    public var isRoot: Bool { rank == 0 }

    /// One process, no MPI.
    public static let single = Communicator(rank: 0, size: 1, mpi: false, timeout: 0)

    /// The job's processes, MPI started on first use when a launcher started this process.
    public static let world: Communicator = {
        guard launchedByMPI else { return single }
        var provided: Int32 = 0
        var status = MPI_Init_thread(nil, nil, parawave_mpi_thread_funneled(), &provided)
        guard status == 0 else { fail("MPI_Init_thread failed (\(status))") }
        MPI_Comm_set_errhandler(parawave_mpi_comm_world(), parawave_mpi_errors_return())
        var rank: Int32 = 0, size: Int32 = 1
        MPI_Comm_rank(parawave_mpi_comm_world(), &rank)
        status = MPI_Comm_size(parawave_mpi_comm_world(), &size)
        let timeout = ProcessInfo.processInfo.environment["PARAWAVE_COLLECTIVE_TIMEOUT"].flatMap(Double.init) ?? 600
        return Communicator(rank: Int(rank), size: Int(size), mpi: true, timeout: timeout > 0 ? timeout : 600)
    }()

    /// True when `mpirun` (Open MPI), or a PMI/PMIx launcher such as Slurm's `srun`, started this process.
    public static var launchedByMPI: Bool {
        let environment = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"].contains { environment[$0] != nil }
    }

    private init(rank: Int, size: Int, mpi: Bool, timeout: Double) {
        self.rank = rank
        self.size = size
        self.mpi = mpi
        self.timeout = timeout
    }

    // MARK: collectives

    /// Replaces `values` on every rank by their elementwise sums over the ranks, formed in rank order.
    public func sum(_ values: UnsafeMutableBufferPointer<Float>, what: String = "gradient sum") {
        guard size > 1 else { return }
        orderedSum(values, type: parawave_mpi_float(), what: what)
    }

    /// The elementwise sums of `values` over the ranks, formed in rank order.
    public func sum(_ values: [Double], what: String = "sum") -> [Double] {
        guard size > 1 else { return values }
        var out = values
        out.withUnsafeMutableBufferPointer { orderedSum($0, type: parawave_mpi_double(), what: what) }
        return out
    }

    /// Every rank's `value`, in rank order, on every rank.
    public func gather(_ value: Int64, what: String = "gather") -> [Int64] {
        guard size > 1 else { return [value] }
        var send = [value], out = [Int64](repeating: 0, count: size)
        send.withUnsafeMutableBytes { s in
            out.withUnsafeMutableBytes { r in
                var request = parawave_mpi_request_null()
                check(MPI_Iallgather(s.baseAddress, 1, parawave_mpi_int64(), r.baseAddress, 1, parawave_mpi_int64(),
                                     parawave_mpi_comm_world(), &request), what)
                wait(&request, what)
            }
        }
        return out
    }

    /// Every rank's `text` (up to 255 bytes of it), in rank order, on every rank.
    public func gather(text: String, what: String = "gather") -> [String] {
        guard size > 1 else { return [text] }
        let width = 256
        var send = [UInt8](repeating: 0, count: width), out = [UInt8](repeating: 0, count: width * size)
        let bytes = Array(text.utf8.prefix(width - 1))
        send.replaceSubrange(0..<bytes.count, with: bytes)
        send.withUnsafeMutableBytes { s in
            out.withUnsafeMutableBytes { r in
                var request = parawave_mpi_request_null()
                check(MPI_Iallgather(s.baseAddress, Int32(width), parawave_mpi_byte(), r.baseAddress, Int32(width), parawave_mpi_byte(),
                                     parawave_mpi_comm_world(), &request), what)
                wait(&request, what)
            }
        }
        return (0..<size).map { r in String(decoding: out[(r * width)..<(r * width + width)].prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// Returns when every rank has called it.
    public func barrier(what: String = "barrier") {
        guard size > 1 else { return }
        var request = parawave_mpi_request_null()
        check(MPI_Ibarrier(parawave_mpi_comm_world(), &request), what)
        wait(&request, what)
    }

    /// The host's name (MPI's processor name under MPI).
    public var hostName: String {
        guard mpi else { return ProcessInfo.processInfo.hostName }
        var buffer = [CChar](repeating: 0, count: Int(parawave_mpi_max_processor_name()) + 1)
        var length: Int32 = 0
        MPI_Get_processor_name(&buffer, &length)
        return String(cString: buffer)
    }

    /// Ends MPI cleanly (a no-op without it); call once, when the command has succeeded.
    public func finish() {
        guard mpi else { return }
        MPI_Finalize()
    }

    /// Ends the whole job: prints `message` (prefixed with the rank) and aborts every rank.
    public func abort(_ message: String, code: Int32 = 1) -> Never {
        FileHandle.standardError.write(Data("parawave: rank \(rank) of \(size): \(message)\n".utf8))
        guard mpi else { exit(code) }
        MPI_Abort(parawave_mpi_comm_world(), code)
        exit(code)
    }

    // MARK: implementation

    private func orderedSum<T: BinaryFloatingPoint>(_ values: UnsafeMutableBufferPointer<T>, type: MPI_Datatype, what: String) {
        let n = values.count, chunk = max(1, (n + size - 1) / size)
        let send = UnsafeMutableBufferPointer<T>.allocate(capacity: chunk * size)
        let received = UnsafeMutableBufferPointer<T>.allocate(capacity: chunk * size)
        defer { send.deallocate(); received.deallocate() }
        send.initialize(repeating: 0)
        _ = send.update(fromContentsOf: values)
        var request = parawave_mpi_request_null()
        // Chunk r of every rank to rank r; `received` holds this rank's chunk from ranks 0, 1, ...
        check(MPI_Ialltoall(send.baseAddress, Int32(chunk), type, received.baseAddress, Int32(chunk), type,
                            parawave_mpi_comm_world(), &request), what)
        wait(&request, what)
        let mine = send.baseAddress!   // reused for this rank's summed chunk
        for i in 0..<chunk {
            var total = received[i]
            for r in 1..<size { total += received[r * chunk + i] }
            mine[i] = total
        }
        check(MPI_Iallgather(mine, Int32(chunk), type, received.baseAddress, Int32(chunk), type, parawave_mpi_comm_world(), &request), what)
        wait(&request, what)
        _ = values.update(fromContentsOf: UnsafeMutableBufferPointer(rebasing: received[0..<n]))
    }

    private func check(_ status: Int32, _ what: String) {
        guard status != 0 else { return }
        var buffer = [CChar](repeating: 0, count: Int(parawave_mpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(status, &buffer, &length)
        abort("MPI failed in the \(what): \(String(cString: buffer)). Ending the job; continue it with --resume from the last checkpoint.")
    }

    /// Polls `request` to completion, sleeping between polls once it has waited a while, and
    /// ends the job after `timeout` seconds of waiting. Only time this process ran counts: a
    /// gap between two polls longer than a tenth of a second means the process was stopped
    /// (Ctrl-Z, a scheduler suspending the job), and the job goes on when all ranks continue.
    private func wait(_ request: inout MPI_Request?, _ what: String) {
        var last = ProcessClock.wallSeconds(), waited = 0.0
        var done: Int32 = 0, polls = 0
        while true {
            check(MPI_Test(&request, &done, parawave_mpi_status_ignore()), what)
            if done != 0 { return }
            polls += 1
            if polls > 2000 { usleep(polls > 20000 ? 1000 : 50) }
            guard polls % 16 == 0 else { continue }
            let now = ProcessClock.wallSeconds()
            waited += min(now - last, 0.1)
            last = now
            if waited > timeout {
                abort(String(format: "the other ranks did not take part in the %@ for %.0f s: one has died or hangs. Ending the job; "
                             + "continue it with --resume from the last checkpoint (PARAWAVE_COLLECTIVE_TIMEOUT sets the wait)", what, timeout))
            }
        }
    }

    private static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("parawave: \(message)\n".utf8))
        exit(1)
    }
}
