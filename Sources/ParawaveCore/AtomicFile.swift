import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes files so that a reader sees either the old file or the complete new one.
///
/// The content goes to a temporary file in the destination's directory, is flushed
/// to disk with `fsync`, and is renamed over the destination; the directory is then
/// synced so the rename itself survives a crash. On any error the temporary file is
/// removed and the destination is untouched.
public enum AtomicFile {
    /// Writes `data` to `path` atomically.
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { temporary in
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            guard fd >= 0 else { throw ParawaveError(path, "cannot create file (\(String(cString: strerror(errno))))") }
            defer { close(fd) }
            try data.withUnsafeBytes { raw in
                var done = 0
                while done < raw.count {
                    let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else {
                        throw ParawaveError(path, "cannot be written completely (\(n < 0 ? String(cString: strerror(errno)) : "no progress") "
                                            + "after \(done) of \(raw.count) bytes); the previous file, if any, is unchanged")
                    }
                    done += n
                }
            }
        }
    }

    /// Calls `produce` with a temporary path beside `path`, then moves the file it
    /// wrote into place. `produce` must create the file at the path it is given.
    public static func write(to path: String, _ produce: (String) throws -> Void) throws {
        // Renaming over a device node, FIFO or folder would replace it: only files are outputs.
        try OutputPaths.check([path])
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            try produce(temporary)
            try syncFile(temporary)
            if rename(temporary, path) != 0 {
                throw ParawaveError(path, "cannot move the written file into place (\(String(cString: strerror(errno))))")
            }
        } catch {
            unlink(temporary)
            throw error
        }
        let fd = open(directory, O_RDONLY)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    private static func syncFile(_ path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw ParawaveError(path, "cannot reopen the written file to sync it") }
        defer { close(fd) }
        if fsync(fd) != 0 {
            throw ParawaveError(path, "fsync failed (\(String(cString: strerror(errno))))")
        }
    }
}
