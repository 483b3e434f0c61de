//! Error types shared by parsing and validation.

use std::fmt;

/// One configuration problem.
///
/// `resource` names the resource (e.g. `router "api"`), `field` the path of the offending
/// field inside it (e.g. `rule` or `loadBalancer.servers[0].url`), and `message` says what is
/// wrong. Display joins the present parts with `": "`:
/// `router "api": rule: unknown matcher "Hots" at column 1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The resource, e.g. `router "api"`; `None` for document-level problems.
    pub resource: Option<String>,
    /// The field path inside the resource, e.g. `loadBalancer.servers[0].url`.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// A document-level error without resource or field.
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            resource: None,
            field: None,
            message: message.into(),
        }
    }

    /// An error about a whole resource, e.g. `resource("router", "api", "...")`.
    pub fn resource(kind: &str, name: &str, message: impl Into<String>) -> Self {
        ConfigError {
            resource: Some(resource_label(kind, name)),
            field: None,
            message: message.into(),
        }
    }

    /// An error about one field of a resource.
    pub fn field(
        kind: &str,
        name: &str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            resource: Some(resource_label(kind, name)),
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// An error about a field outside any named resource (e.g. `tls.certificates`).
    pub fn at(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            resource: None,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// The rendered form used by `Display`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for part in [&self.resource, &self.field].into_iter().flatten() {
            if !part.is_empty() {
                out.push_str(part);
                out.push_str(": ");
            }
        }
        out.push_str(&self.message);
        out
    }
}

/// `router "api"`: the kind followed by the name in double quotes (Rust/Go style escaping).
pub fn resource_label(kind: &str, name: &str) -> String {
    format!("{kind} {}", quote(name))
}

/// Quote a user-supplied string for an error message: `"text"`, escaping quotes, backslashes
/// and control characters.
pub fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// Every problem found in a configuration, sorted. Display joins them with `"; "`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The errors.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }

    /// Number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no errors.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            f.write_str(&e.render())?;
        }
        Ok(())
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
