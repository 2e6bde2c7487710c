//! Typed ids. They are `u64` on the wire and `BIGINT` in the database; an id
//! that does not fit a `BIGINT` cannot name anything, so it is refused here.

use std::fmt;

use crate::error::WireError;

macro_rules! id_type {
    ($name:ident, $what:literal) => {
        #[doc = concat!("The id of a ", $what, ".")]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub i64);

        impl $name {
            /// Checks an id that came over the wire.
            pub fn from_wire(raw: u64) -> Result<Self, WireError> {
                i64::try_from(raw)
                    .ok()
                    .filter(|id| *id > 0)
                    .map(Self)
                    .ok_or_else(|| WireError::not_found(format!("{} {raw}", $what)))
            }

            pub fn to_wire(self) -> u64 {
                // Ids come from database sequences, which start at 1.
                self.0.unsigned_abs()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(SweepId, "sweep");
id_type!(TaskId, "task");
id_type!(WorkerId, "worker");

/// A sweep as people name it: by id, or by name for the newest sweep of
/// that name. Text of digits only is an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SweepRef {
    Id(SweepId),
    Name(String),
}

impl std::str::FromStr for SweepRef {
    type Err = WireError;

    fn from_str(text: &str) -> Result<Self, WireError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(WireError::invalid("name a sweep by its id or its name"));
        }
        match text.parse::<u64>() {
            Ok(raw) => SweepId::from_wire(raw).map(Self::Id),
            Err(_) if text.bytes().all(|b| b.is_ascii_digit()) => {
                Err(WireError::not_found(format!("sweep {text}")))
            }
            Err(_) => Ok(Self::Name(text.to_string())),
        }
    }
}

impl From<SweepId> for SweepRef {
    fn from(id: SweepId) -> Self {
        Self::Id(id)
    }
}

impl fmt::Display for SweepRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "sweep {id}"),
            Self::Name(name) => write!(f, "sweep {name:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn ids_round_trip_and_out_of_range_ids_are_not_found() {
        assert_eq!(TaskId::from_wire(42).unwrap(), TaskId(42));
        assert_eq!(TaskId(42).to_wire(), 42);
        for raw in [0, u64::MAX, i64::MAX as u64 + 1] {
            let err = SweepId::from_wire(raw).unwrap_err();
            assert_eq!(err.kind, ErrorKind::NotFound);
            assert_eq!(err.message, format!("sweep {raw} not found"));
        }
    }

    #[test]
    fn sweeps_are_named_by_id_or_by_name() {
        assert_eq!("12".parse(), Ok(SweepRef::Id(SweepId(12))));
        let name: SweepRef = "3.2-params-vs-generalization-quick".parse().unwrap();
        assert_eq!(
            name,
            SweepRef::Name("3.2-params-vs-generalization-quick".into())
        );
        assert_eq!(
            name.to_string(),
            "sweep \"3.2-params-vs-generalization-quick\""
        );
        assert_eq!(
            "0".parse::<SweepRef>().unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert!("  ".parse::<SweepRef>().is_err());
    }
}
