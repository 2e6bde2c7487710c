//! Why a spec cannot be planned. Messages stay short whatever the spec: a
//! value or a source line is quoted as an excerpt, so an error on a line of
//! thousands of seeds still fits in one line on screen and in a gRPC header.

/// A spec that cannot be planned. Each message names the field and the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// TOML syntax, an unknown field or a wrong type (the parser's message).
    #[error("invalid spec: {0}")]
    Syntax(String),
    #[error("invalid spec: {field} = {value}: {problem}")]
    Invalid {
        field: String,
        value: String,
        problem: String,
    },
}

/// The most characters of a value or of a source line an error quotes.
const EXCERPT: usize = 80;

impl SpecError {
    pub fn invalid(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        problem: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            field: field.into(),
            value: shortened(&value.to_string()),
            problem: problem.into(),
        }
    }

    /// A TOML error, with where it is and an excerpt of the text around it
    /// (the parser's own message quotes the whole line).
    pub fn syntax(text: &str, err: &toml::de::Error) -> Self {
        let Some(span) = err.span() else {
            return Self::Syntax(err.message().trim_end().replace('\n', " "));
        };
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[..start].matches('\n').count() + 1;
        let before: Vec<char> = text[line_start..start].chars().collect();
        let column = before.len() + 1;
        let head: String = before[before.len().saturating_sub(EXCERPT / 2)..]
            .iter()
            .collect();
        let tail: String = text[start..line_end].chars().take(EXCERPT / 2).collect();
        let open = if head.len() < start - line_start {
            "…"
        } else {
            ""
        };
        let close = if start + tail.len() < line_end {
            "…"
        } else {
            ""
        };
        Self::Syntax(format!(
            "line {line}, column {column}: {}, at `{open}{head}{tail}{close}`",
            err.message().trim_end().replace('\n', " ")
        ))
    }

    pub fn missing(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::invalid(field, "(missing)", problem)
    }
}

/// `text` cut to [`EXCERPT`] characters, with an ellipsis when cut.
fn shortened(text: &str) -> String {
    if text.chars().count() <= EXCERPT {
        return text.to_string();
    }
    let kept: String = text.chars().take(EXCERPT).collect();
    format!("{kept}…")
}

/// The largest char boundary of `text` at or before `index`.
fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_short() {
        let long = SpecError::invalid("grid.seed", "7".repeat(500), "bad");
        let text = long.to_string();
        assert!(text.starts_with("invalid spec: grid.seed = 777"), "{text}");
        assert!(text.len() < 200 && text.contains("…: bad"), "{text}");
    }

    #[test]
    fn syntax_errors_point_into_long_lines() {
        let seeds: Vec<String> = (0..3000).map(|s| s.to_string()).collect();
        let text = format!("name = \"x\"\nseeds = [{}, \"é\", 1]\n", seeds.join(", "));
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Seeds {
            name: String,
            seeds: Vec<i64>,
        }
        let err = toml::from_str::<Seeds>(&text).expect_err("a string among integers");
        let message = SpecError::syntax(&text, &err).to_string();
        assert!(message.len() < 300, "{message}");
        assert!(message.contains("line 2, column "), "{message}");
        assert!(message.contains("2998, 2999, \"é\""), "{message}");
    }
}
