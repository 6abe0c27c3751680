//! Credentials: the InfluxDB token and password, the API's bearer token. A [`Secret`] goes
//! into an `Authorization` header or a comparison and nowhere else: never into a URL, a log
//! line, an error or any output.

use std::fmt;

/// A credential. Its `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this secret, in time that depends on the lengths only, so a
    /// client cannot find the secret byte by byte by timing its guesses.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let secret = self.0.as_bytes();
        if secret.len() != presented.len() {
            return false;
        }
        let difference = secret
            .iter()
            .zip(presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        // Keeps the optimiser from turning the fold into an early-exit comparison.
        std::hint::black_box(difference) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn a_secret_matches_itself_only_and_never_prints() {
        let s = Secret::new("s3cret-token");
        assert!(s.matches(b"s3cret-token"));
        for wrong in [&b""[..], b"s3cret-tokem", b"s3cret-token ", b"S3cret-token"] {
            assert!(!s.matches(wrong), "{wrong:?}");
        }
        assert_eq!(format!("{s} {s:?}"), "*** ***");
    }
}
