//! What a name or other text from outside must look like before it is
//! stored: no control characters (a NUL byte cannot even be stored in
//! PostgreSQL) and a length cap. The planner and the wire both check with it.

/// The longest name (of a sweep, a model, a worker, a metric) in characters.
pub const MAX_NAME: usize = 200;

/// What is wrong with `value`, if anything: longer than `max` characters,
/// or a control character (a line break or tab too unless `multiline`).
pub fn problem(value: &str, max: usize, multiline: bool) -> Option<String> {
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if let Some(bad) = value.chars().find(|c| c.is_control() && !allowed(*c)) {
        return Some(format!(
            "control characters ({:?}) are not allowed",
            bad.escape_default().to_string()
        ));
    }
    let length = value.chars().count();
    (length > max).then(|| format!("{length} characters; the most is {max}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_long_text_are_refused() {
        assert_eq!(problem("params-vs-generalization", MAX_NAME, false), None);
        let nul = problem("a\0b", MAX_NAME, false).unwrap();
        assert!(nul.contains("\\\\u{0}"), "{nul}");
        assert!(problem("two\nlines", MAX_NAME, false).is_some());
        assert_eq!(problem("two\nlines", MAX_NAME, true), None);
        assert!(
            problem(&"x".repeat(201), MAX_NAME, false)
                .unwrap()
                .contains("201")
        );
        assert_eq!(problem(&"é".repeat(200), MAX_NAME, false), None);
    }
}
