//! Bearer tokens, as the edge (admin, control token) and control (its API) read and check them: one home for the
//! token-file format and the comparison.

use subtle::ConstantTimeEq;

/// Shortest token accepted: shorter ones are guessable.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no token in the file")]
    Empty,
    #[error("line {line}: tokens must be at least {MIN_TOKEN_LEN} characters")]
    TooShort { line: usize },
}

/// The tokens of a token file's text: one per line, surrounding blanks trimmed, empty lines and `#` comments
/// skipped. At least one, each at least [`MIN_TOKEN_LEN`] characters.
pub fn parse_tokens(text: &str) -> Result<Vec<String>, TokenError> {
    let mut tokens = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let token = line.trim();
        if token.is_empty() || token.starts_with('#') {
            continue;
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort { line: i + 1 });
        }
        tokens.push(token.to_owned());
    }
    if tokens.is_empty() {
        return Err(TokenError::Empty);
    }
    Ok(tokens)
}

/// A token file that cannot be used: which file, and why.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("{path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: {error}")]
    Format { path: String, error: TokenError },
}

/// Reads and parses a token file ([`parse_tokens`]). Called once at start-up by the binaries that take one.
pub fn read_token_file(path: &std::path::Path) -> Result<Vec<String>, TokenFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| TokenFileError::Read { path: path.display().to_string(), error })?;
    parse_tokens(&text).map_err(|error| TokenFileError::Format { path: path.display().to_string(), error })
}

/// Whether `presented` is one of `accepted`, compared in constant time (the time taken says nothing about how
/// much of a token matched).
pub fn token_accepted(accepted: &[String], presented: &str) -> bool {
    accepted.iter().fold(false, |found, t| found | bool::from(t.as_bytes().ct_eq(presented.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_skip_comments_and_refuse_short_or_no_tokens() {
        let text = "# rotation: new first\n  new-token-0123456789  \n\nold-token-0123456789\n";
        assert_eq!(parse_tokens(text).unwrap(), vec!["new-token-0123456789", "old-token-0123456789"]);
        assert_eq!(parse_tokens("# nothing\n\n"), Err(TokenError::Empty));
        assert_eq!(parse_tokens("ok-token-0123456789\nshort\n"), Err(TokenError::TooShort { line: 2 }));
    }

    #[test]
    fn only_a_whole_token_is_accepted() {
        let accepted = vec!["new-token-0123456789".to_owned(), "old-token-0123456789".to_owned()];
        assert!(token_accepted(&accepted, "old-token-0123456789"));
        for wrong in ["", "old-token-012345678", "old-token-01234567890", "new-token-0123456780"] {
            assert!(!token_accepted(&accepted, wrong), "{wrong}");
        }
    }
}
