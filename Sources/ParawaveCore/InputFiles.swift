import Foundation

/// Reading a file someone named on the command line or in a recipe, with the reason in
/// words when it cannot be read: missing, a folder, or refused by the system.
public enum InputFile {
    /// The bytes of `path`; `what` names the kind of file in messages ("recipe", "checkpoint").
    public static func contents(of path: String, what: String = "input") throws -> Data {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw ParawaveError(path, "no such \(what) file")
        }
        if isFolder.boolValue { throw ParawaveError(path, "is a folder, not a \(what) file") }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ParawaveError(path, "cannot be read (\(String(cString: strerror(errno))))")
        }
        defer { try? handle.close() }
        do {
            return try handle.readToEnd() ?? Data()
        } catch {
            throw ParawaveError(path, "cannot be read (\((error as NSError).localizedDescription))")
        }
    }
}
