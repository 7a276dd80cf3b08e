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
            guard FileManager.default.createFile(atPath: temporary, contents: data) else {
                throw ParawaveError(path, "cannot create file (\(String(cString: strerror(errno))))")
            }
        }
    }

    /// Calls `produce` with a temporary path beside `path`, then moves the file it
    /// wrote into place. `produce` must create the file at the path it is given.
    public static func write(to path: String, _ produce: (String) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        if !FileManager.default.fileExists(atPath: directory) {
            throw ParawaveError(path, "the folder \(directory) does not exist")
        }
        // Renaming over a device node, FIFO, socket or directory would replace it (as root,
        // `--out /dev/null` would leave a regular file there): only files are outputs.
        var existing = stat()
        if stat(path, &existing) == 0 && (existing.st_mode & S_IFMT) != S_IFREG {
            let kind: String
            switch existing.st_mode & S_IFMT {
            case S_IFDIR: kind = "a folder"
            case S_IFCHR, S_IFBLK: kind = "a device"
            case S_IFIFO: kind = "a FIFO"
            case S_IFSOCK: kind = "a socket"
            default: kind = "not a regular file"
            }
            throw ParawaveError(path, "is \(kind); outputs are written only to regular files (give a file path)")
        }
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
