import Foundation

/// Checks of output paths made before a command does any work, so that a run that cannot
/// write its results fails at once, with nothing written.
public enum OutputPaths {
    /// Throws for the first path that cannot be written: its folder is missing, is not a
    /// folder or is not writable, or the path itself exists and is not a regular file (a
    /// folder, a device or a FIFO, which an atomic write would replace).
    public static func check(_ paths: [String]) throws {
        let files = FileManager.default
        for path in paths {
            let url = URL(fileURLWithPath: path)
            let folder = url.deletingLastPathComponent().path
            var isFolder: ObjCBool = false
            guard files.fileExists(atPath: folder, isDirectory: &isFolder) else {
                throw ParawaveError(path, "cannot be written: its folder \(folder) does not exist")
            }
            guard isFolder.boolValue else { throw ParawaveError(path, "cannot be written: \(folder) is not a folder") }
            guard files.isWritableFile(atPath: folder) else { throw ParawaveError(path, "cannot be written: the folder \(folder) is not writable") }
            var existing = stat()
            if stat(path, &existing) == 0 && (existing.st_mode & S_IFMT) != S_IFREG {
                let kind: String
                switch existing.st_mode & S_IFMT {
                case S_IFDIR: kind = "a folder"
                case S_IFCHR, S_IFBLK: kind = "a device"
                case S_IFIFO: kind = "a FIFO"
                case S_IFSOCK: kind = "a socket"
                default: kind = "something else"
                }
                throw ParawaveError(path, "is \(kind), not a regular file; outputs are written only to regular files (as root, "
                                    + "writing over /dev/null would replace it), so give a file path")
            }
        }
    }
}

extension OutputPaths {
    /// Creates the folder `path` and any missing parents, with an error that names the path
    /// and the reason in words (a file in the way, permissions, a full disk) rather than
    /// Foundation's error codes.
    public static func createFolder(_ path: String) throws {
        try checkFolder(path)
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw ParawaveError(path, "cannot be created (\(String(cString: strerror(errno))))")
            }
        }
    }

    /// Throws when the folder `path` could not be made because a file stands at it or at
    /// one of its parents; commands check before their slow work.
    public static func checkFolder(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: prefix, isDirectory: &isFolder) else { return }
            if !isFolder.boolValue { throw ParawaveError(path, "cannot be created: \(prefix) is a file, not a folder") }
        }
    }
}
