/// The toolkit's version, printed by `parawave --version` and stored in checkpoints.
public enum ParawaveVersion {
    public static let string = "0.1.0"
}
