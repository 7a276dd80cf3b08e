#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// An advisory lock on a folder, so that one process at a time writes it (a training run):
/// `flock` on FOLDER/.lock, which records the holder's process id. The kernel releases it
/// when the holder closes it or dies, however it dies, so a killed run never leaves a stale
/// lock behind. Within one process the lock is shared: objects of the same process that
/// lock the same folder (a trainer and the one that resumes it) hold it together, and it is
/// released when the last of them goes.
public final class FolderLock: @unchecked Sendable {
    public let path: String

    private static let table = NSLock()
    nonisolated(unsafe) private static var held: [String: (descriptor: Int32, holders: Int)] = [:]

    /// Takes the lock, creating the folder if needed; throws at once, naming the holder,
    /// when another process holds it. `what` names the folder in the message ("--run").
    public init(folder: String, what: String = "folder") throws {
        try OutputPaths.createFolder(folder)
        path = URL(fileURLWithPath: folder).resolvingSymlinksInPath().path + "/.lock"
        Self.table.lock()
        defer { Self.table.unlock() }
        if let entry = Self.held[path] {
            Self.held[path] = (entry.descriptor, entry.holders + 1)
            return
        }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ParawaveError(path, "cannot be opened to lock the \(what): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            var holder = ""
            var buffer = [UInt8](repeating: 0, count: 64)
            let count = pread(fd, &buffer, buffer.count, 0)
            if count > 0, let pid = Int(String(decoding: buffer.prefix(count), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) {
                holder = " (process \(pid))"
            }
            close(fd)
            if reason == EWOULDBLOCK {
                throw ParawaveError(folder, "is in use by another process\(holder); wait for it to finish or stop it, or choose another \(what)")
            }
            throw ParawaveError(path, "cannot be locked: \(String(cString: strerror(reason)))")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
        Self.held[path] = (fd, 1)
    }

    deinit {
        Self.table.lock()
        defer { Self.table.unlock() }
        guard let entry = Self.held[path] else { return }
        if entry.holders > 1 {
            Self.held[path] = (entry.descriptor, entry.holders - 1)
        } else {
            close(entry.descriptor)
            Self.held[path] = nil
        }
    }
}
