import Foundation

/// A user-facing failure: one line that names the input and says what was wrong
/// and, where it helps, what to do about it.
///
/// Every module throws this (or a type whose `description` reads the same way),
/// so the command-line tool can print `error: <description>` and exit non-zero.
public struct ParawaveError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file or object the problem is about (a path, a key), or empty.
    public var subject: String
    /// What was wrong, and what to do about it.
    public var message: String

    public init(_ subject: String, _ message: String) {
        self.subject = subject
        self.message = message
    }

    public var description: String { subject.isEmpty ? message : "\(subject): \(message)" }
}

extension ParawaveError: LocalizedError {
    public var errorDescription: String? { description }
}
