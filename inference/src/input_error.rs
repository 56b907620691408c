//! Why a request's input is refused: the one error type every decoder of untrusted input (tensors, encoded
//! images, the wire-cost walk, the budget) returns, kept apart so that those modules need not import each other.

/// Why a request's input cannot be used; the message goes back to the client: INVALID_ARGUMENT for input that is
/// wrong, RESOURCE_EXHAUSTED for input that would cost more than a call may (see [`crate::budget`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct InputError {
    message: String,
    too_costly: bool,
}

impl InputError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), too_costly: false }
    }

    pub(crate) fn too_costly(message: impl Into<String>) -> Self {
        Self { message: message.into(), too_costly: true }
    }

    /// Whether the input was refused for what it would cost rather than for what it is.
    pub fn is_too_costly(&self) -> bool {
        self.too_costly
    }
}

pub(crate) fn invalid<T>(message: impl Into<String>) -> Result<T, InputError> {
    Err(InputError::new(message))
}
