//! Text that arrives over the wire, checked before anything stores it:
//! names are refused when they are not plain text of a sane length (see
//! `sweep_spec::text`), and free text a worker reports (an error, a reason)
//! is kept but cleaned of control characters and cut to a length.

use sweep_spec::text::{MAX_NAME, problem};

use crate::error::WireError;

/// The longest free text (an error message, a reason) kept, in characters.
pub const MAX_TEXT: usize = 4096;

/// `value` when it is a plain name; otherwise an error that names `field`.
pub fn name<'a>(field: &str, value: &'a str) -> Result<&'a str, WireError> {
    match problem(value, MAX_NAME, false) {
        None => Ok(value),
        Some(problem) => Err(WireError::invalid(format!("{field} {value:?}: {problem}"))),
    }
}

/// Free text with its control characters (but line breaks and tabs)
/// replaced and its length cut to [`MAX_TEXT`].
pub fn cleaned(value: &str) -> String {
    value
        .chars()
        .take(MAX_TEXT)
        .map(|c| match c {
            '\n' | '\t' => c,
            c if c.is_control() => char::REPLACEMENT_CHARACTER,
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn names_must_be_plain_and_free_text_is_cleaned() {
        assert_eq!(name("worker name", "gpu-node-3"), Ok("gpu-node-3"));
        let err = name("worker name", "gpu\0node").unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
        assert!(
            err.message
                .starts_with("worker name \"gpu\\0node\": control"),
            "{err}"
        );
        assert_eq!(
            cleaned("bad\0 value\nat step 3"),
            "bad\u{fffd} value\nat step 3"
        );
        assert_eq!(cleaned(&"x".repeat(5000)).len(), MAX_TEXT);
    }
}
