//! Object keys: arbitrary UTF-8 up to 1024 bytes. Keys never become file-system paths.

use serde::{Deserialize, Serialize};

use crate::InvalidInput;

/// Maximum key length in bytes (S3 limit).
pub const MAX_KEY_LEN: usize = 1024;

/// An object key that is non-empty UTF-8 of at most 1024 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Validates a key.
    pub fn parse(key: &str) -> Result<Self, InvalidInput> {
        if key.is_empty() {
            return Err(InvalidInput::new("InvalidArgument", "object key must not be empty"));
        }
        if key.len() > MAX_KEY_LEN {
            return Err(InvalidInput::new("KeyTooLongError", "Your key is too long"));
        }
        Ok(Self(key.to_owned()))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
