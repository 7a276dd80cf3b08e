import Foundation

/// Locates the committed golden fixtures (Tests/Fixtures) and scratch folders for tests.
public enum Fixtures {
    /// The repository root, found from this file's location.
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Absolute path of `Tests/Fixtures/<relative>`.
    public static func path(_ relative: String) -> String {
        root.appendingPathComponent("Tests/Fixtures").appendingPathComponent(relative).path
    }

    /// A new empty temporary folder, unique to this call.
    public static func temporaryDirectory(_ label: String = "parawave-test") -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }
}
