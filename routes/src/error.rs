//! Validation errors that say what is wrong and where.

use std::fmt;

/// Where a problem was found: the source (file path, or `namespace/name/key` of a ConfigMap), the field path
/// inside the document (e.g. `http.routers.video-router.rule`) and, when the parser knows it, the line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub source: String,
    pub line: Option<usize>,
    pub field: String,
}

impl Location {
    pub fn new(source: &str, field: impl Into<String>) -> Self {
        Location { source: source.to_owned(), line: None, field: field.into() }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        Ok(())
    }
}

/// One problem in a routes document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct RouteError {
    pub location: Location,
    pub message: String,
}

impl RouteError {
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        RouteError { location, message: message.into() }
    }
}

/// Why one value (a duration, a network, a host, a server URL, a Service reference) or one cluster lookup is not
/// usable, in a sentence the user can act on. It carries no location: the caller knows where the value was written
/// and makes a [`RouteError`] of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<String> for Invalid {
    fn from(message: String) -> Self {
        Invalid(message)
    }
}

impl From<&str> for Invalid {
    fn from(message: &str) -> Self {
        Invalid(message.to_owned())
    }
}

impl From<Invalid> for String {
    fn from(invalid: Invalid) -> Self {
        invalid.0
    }
}

/// Every problem found in a set of documents. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RouteErrors(pub Vec<RouteError>);

impl RouteErrors {
    pub fn iter(&self) -> impl Iterator<Item = &RouteError> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for RouteErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Collects errors while a document is checked, so that one run reports all of them.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    pub errors: Vec<RouteError>,
}

impl Collector {
    pub fn push(&mut self, location: Location, message: impl Into<String>) {
        self.errors.push(RouteError::new(location, message));
    }
    /// Orders the errors by line within each source, the sources staying in the order they were first met.
    pub fn sort_by_place(&mut self) {
        let mut sources: Vec<String> = Vec::new();
        for e in &self.errors {
            if !sources.contains(&e.location.source) {
                sources.push(e.location.source.clone());
            }
        }
        let rank = |e: &RouteError| sources.iter().position(|s| *s == e.location.source);
        self.errors.sort_by_cached_key(|e| (rank(e), e.location.line.unwrap_or(usize::MAX)));
    }

    pub fn finish<T>(self, value: T) -> Result<T, RouteErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(RouteErrors(self.errors))
        }
    }
}
