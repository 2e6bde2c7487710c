//! Why a spec cannot be planned.

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

impl SpecError {
    pub fn invalid(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        problem: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            field: field.into(),
            value: value.to_string(),
            problem: problem.into(),
        }
    }

    pub fn missing(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::invalid(field, "(missing)", problem)
    }
}
