import Foundation
import ParawaveCore
import Yams

/// A recipe: one YAML file with sections `audio`, `pitch`, `data`, `teacher`, `student`,
/// `train`, `distill` (DESIGN.md section 8). Every key is optional and has a documented default;
/// an unknown key, a value of the wrong type or out of range is an error naming the file
/// and the key.
public struct Recipe: Codable, Equatable, Sendable {
    public var audio = AudioSection()
    public var pitch = PitchSection()
    public var data = DataSection()
    public var teacher = TeacherSection()
    public var student = StudentSection()
    public var train = TrainSection()
    public var distill = DistillSection()
    public var waveglow = WaveGlowSection()

    enum CodingKeys: String, CodingKey, CaseIterable { case audio, pitch, data, teacher, student, train, distill, waveglow }

    public init() {}

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        try c.update(&audio, .audio)
        try c.update(&pitch, .pitch)
        try c.update(&data, .data)
        try c.update(&teacher, .teacher)
        try c.update(&student, .student)
        try c.update(&train, .train)
        try c.update(&distill, .distill)
        try c.update(&waveglow, .waveglow)
    }

    /// Loads `path`, applies `overrides` (`section.key=value`, the value in YAML syntax) and validates.
    /// A folder stands for the recipe.yaml inside it (`--recipe recipes/demo`).
    public static func load(_ path: String, overrides: [String] = []) throws -> Recipe {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
            let inside = (path.hasSuffix("/") ? path : path + "/") + "recipe.yaml"
            guard FileManager.default.fileExists(atPath: inside) else {
                throw ParawaveError(path, "is a folder without a recipe.yaml; give the recipe file")
            }
            return try load(inside, overrides: overrides)
        }
        let data = try InputFile.contents(of: path, what: "recipe")
        guard let text = String(data: data, encoding: .utf8) else { throw ParawaveError(path, "the recipe is not UTF-8 text") }
        return try parse(text, name: path, overrides: overrides)
    }

    /// Parses recipe YAML text; `name` labels errors.
    public static func parse(_ text: String, name: String = "recipe", overrides: [String] = []) throws -> Recipe {
        var node: Node
        do {
            node = try Yams.compose(yaml: text) ?? Node.mapping(Node.Mapping([]))
        } catch let error as YamlError {
            throw ParawaveError(name, "invalid YAML: \(Self.describe(error))")
        }
        guard case .mapping = node else { throw ParawaveError(name, "a recipe must be a mapping of sections (audio, data, teacher, ...)") }
        for override in overrides { node = try apply(override, to: node, name: name) }
        // A problem with a key that an override set is the override's, not the file's.
        func source(of problem: String) -> String {
            let key = problem.prefix { $0 != ":" }
            return overrides.last { $0.prefix { $0 != "=" } == key }.map { "--set \($0)" } ?? name
        }
        let recipe: Recipe
        do {
            recipe = try YAMLDecoder().decode(Recipe.self, from: node)
        } catch let issue as RecipeKeyIssue {
            throw ParawaveError(source(of: issue.description), issue.description)
        } catch let error as DecodingError {
            let problem = Self.describe(error)
            throw ParawaveError(source(of: problem), problem)
        }
        var validator = RecipeValidator()
        recipe.validate(&validator)
        if let first = validator.problems.first {
            let more = validator.problems.count > 1 ? " (and \(validator.problems.count - 1) more: \(validator.problems.dropFirst().joined(separator: "; ")))" : ""
            throw ParawaveError(source(of: first), first + more)
        }
        return recipe
    }

    /// The recipe as YAML, every value resolved (defaults written out), with numbers written
    /// as people write them (0.9999, 10.0, 8000.0 rather than Yams's 9.999e-1, 1e+1, 8e+3).
    public func yaml() throws -> String {
        let text = try YAMLEncoder().encode(self)
        guard let node = try Yams.compose(yaml: text) else { return text }
        return try Yams.serialize(node: Self.decimalNumbers(node))
    }

    /// `node` with every plain scalar in exponent notation that is a number from 1e-4 up
    /// rewritten in decimal notation.
    static func decimalNumbers(_ node: Node) -> Node {
        switch node {
        case .scalar(var scalar):
            if scalar.style == .plain || scalar.style == .any, scalar.string.lowercased().contains("e"),
               let value = Double(scalar.string), value.isFinite, value == 0 || abs(value) >= 1e-4 {
                scalar.string = "\(value)"
            }
            return .scalar(scalar)
        case .mapping(let mapping):
            return .mapping(Node.Mapping(mapping.map { ($0.key, decimalNumbers($0.value)) }, mapping.tag, mapping.style))
        case .sequence(let sequence):
            return .sequence(Node.Sequence(sequence.map(decimalNumbers), sequence.tag, sequence.style))
        case .alias:
            return node
        }
    }

    func validate(_ v: inout RecipeValidator) {
        v.section("audio") { audio.check(&$0) }
        v.section("pitch") { pitch.check(&$0, audio: audio) }
        v.section("data") { data.check(&$0) }
        v.section("teacher") { teacher.check(&$0, audio: audio) }
        v.section("student") { student.check(&$0) }
        v.section("train") { train.check(&$0) }
        v.section("distill") { distill.check(&$0) }
        v.section("waveglow") { waveglow.check(&$0, audio: audio) }
    }

    /// Sets `section.key[.key...]=value` in the parsed document.
    static func apply(_ override: String, to node: Node, name: String) throws -> Node {
        guard let equals = override.firstIndex(of: "="), equals != override.startIndex else {
            throw ParawaveError("--set \(override)", "expected section.key=value, for example train.steps=100")
        }
        let path = override[..<equals].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let valueText = String(override[override.index(after: equals)...])
        guard path.count >= 2, !path.contains(where: \.isEmpty) else {
            throw ParawaveError("--set \(override)", "expected section.key=value, for example train.steps=100")
        }
        let value: Node
        do {
            value = try Yams.compose(yaml: valueText) ?? Node("")
        } catch {
            throw ParawaveError("--set \(override)", "the value is not valid YAML")
        }
        func set(_ node: Node, _ keys: ArraySlice<String>) -> Node {
            guard let key = keys.first else { return value }
            var mapping = node.mapping ?? Node.Mapping([])
            let child = mapping[key] ?? Node.mapping(Node.Mapping([]))
            mapping[key] = set(child, keys.dropFirst())
            return .mapping(mapping)
        }
        return set(node, path[...])
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
                .replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .typeMismatch(let type, let context):
            if "\(type)".contains("Mapping") { return "\(path(context)): expected a mapping of keys (a section of key: value lines)" }
            return "\(path(context)): expected \(typeName(type)) (\(context.debugDescription))"
        case .valueNotFound(let type, let context):
            return "\(path(context)): expected \(typeName(type)) but the value is empty"
        case .keyNotFound(let key, let context):
            return "\(path(context)): missing key \(key.stringValue)"
        case .dataCorrupted(let context):
            return "\(path(context)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: "an integer"
        case is Double.Type: "a number"
        case is Bool.Type: "true or false"
        case is String.Type: "a string"
        case is [Int].Type: "a list of integers"
        case is [String].Type: "a list of strings"
        default: "\(type)"
        }
    }

    static func describe(_ error: YamlError) -> String {
        "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
    }
}

/// Collects range problems with the key path each belongs to.
struct RecipeValidator {
    private(set) var problems: [String] = []
    private var prefix = ""

    mutating func section(_ name: String, _ body: (inout RecipeValidator) -> Void) {
        let saved = prefix
        prefix = name + "."
        body(&self)
        prefix = saved
    }

    mutating func fail(_ key: String, _ message: String) { problems.append("\(prefix)\(key): \(message)") }

    /// The settings every training run has: steps, batch size, crop and learning rate.
    mutating func requireRun(steps: Int, batchSize: Int, crop: Int, learningRate: Double) {
        require(steps, in: 0...100_000_000, "steps")
        require(batchSize, in: 1...4096, "batch_size")
        require(crop, in: 1...10_000_000, "crop")
        require(learningRate, in: 1e-8...1, "learning_rate")
    }

    mutating func require<T: Comparable>(_ value: T, in range: ClosedRange<T>, _ key: String) {
        if !range.contains(value) { fail(key, "\(value) is outside the allowed range \(range.lowerBound)...\(range.upperBound)") }
    }
}

/// An unknown key in a recipe section, with the nearest known key as a suggestion.
struct RecipeKeyIssue: Error, CustomStringConvertible {
    var path: String
    var key: String
    var known: [String]

    var description: String {
        let best = known.min { editDistance($0, key) < editDistance($1, key) }
        let hint = best.map { editDistance($0, key) <= max(2, key.count / 3) ? " (did you mean '\($0)'?)" : "" } ?? ""
        let full = path.isEmpty ? key : path + "." + key
        return "\(full): unknown key\(hint); known keys here: \(known.joined(separator: ", "))"
    }
}

/// Levenshtein distance between two short strings.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var current = [i] + [Int](repeating: 0, count: b.count)
        for j in 1...max(b.count, 1) where !b.isEmpty {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return a.isEmpty ? b.count : previous[b.count]
}

private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Decoder {
    /// A keyed container that rejects keys outside `K` with a `RecipeKeyIssue`.
    func strictContainer<K: CodingKey & CaseIterable>(keyedBy type: K.Type, also: [String] = []) throws -> KeyedDecodingContainer<K> {
        let known = K.allCases.map(\.stringValue) + also
        let any = try container(keyedBy: AnyKey.self)
        for key in any.allKeys where !known.contains(key.stringValue) {
            throw RecipeKeyIssue(path: codingPath.map(\.stringValue).joined(separator: "."), key: key.stringValue, known: known)
        }
        return try container(keyedBy: K.self)
    }
}

extension KeyedDecodingContainer {
    /// Replaces `value` with the decoded one when `key` is present.
    func update<T: Decodable>(_ value: inout T, _ key: Key) throws {
        if let decoded = try decodeIfPresent(T.self, forKey: key) { value = decoded }
    }
}
