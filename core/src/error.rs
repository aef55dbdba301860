//! One public error type with semantic kinds (after arrow-rs `object_store`): callers
//! branch on [`ErrorKind`] and [`Error::is_temporary`], never on a backend's own types,
//! which stay behind [`Error::source`].

use std::fmt;
use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the caller can do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Unknown type, region, image or a malformed request; carries suggestions.
    InvalidSpec,
    /// The zone/region has no capacity for this type now: try another zone, type or region.
    InsufficientCapacity,
    /// An account limit (vCPUs, instances) would be exceeded: ask for a quota increase.
    QuotaExceeded,
    /// The API throttled us; temporary.
    RateLimited,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    /// Same idempotency key with a different spec, or a state conflict.
    Conflict,
    /// The launch would exceed a budget; nothing was launched.
    BudgetExceeded,
    /// The backend lacks a capability the request needs; no API call was made.
    Unsupported,
    /// Configuration is missing or malformed.
    ConfigInvalid,
    Timeout,
    /// A transient failure of the service (5xx, connection reset); temporary.
    Unavailable,
    Unexpected,
}

impl ErrorKind {
    /// Whether an error of this kind is worth retrying by default.
    pub fn is_temporary_by_default(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited | ErrorKind::Unavailable | ErrorKind::Timeout
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidSpec => "invalid spec",
            ErrorKind::InsufficientCapacity => "insufficient capacity",
            ErrorKind::QuotaExceeded => "quota exceeded",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::BudgetExceeded => "budget exceeded",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::ConfigInvalid => "invalid config",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "service unavailable",
            ErrorKind::Unexpected => "unexpected",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operation an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    Launch,
    Terminate,
    List,
    Cost,
    Leftovers,
    Reap,
    Exec,
    Config,
    Ledger,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Launch => "launch",
            Operation::Terminate => "terminate",
            Operation::List => "list",
            Operation::Cost => "cost",
            Operation::Leftovers => "leftovers",
            Operation::Reap => "reap",
            Operation::Exec => "exec",
            Operation::Config => "config",
            Operation::Ledger => "ledger",
        })
    }
}

/// herd's error: a kind, whether it is temporary, where it happened, what to do. Boxed,
/// so a `Result<T, Error>` stays one pointer wide on the happy path.
pub struct Error(Box<Inner>);

struct Inner {
    kind: ErrorKind,
    temporary: bool,
    operation: Option<Operation>,
    context: Vec<(&'static str, String)>,
    message: String,
    hint: Option<String>,
    suggestions: Vec<String>,
    retry_after: Option<Duration>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(Inner {
            kind,
            temporary: kind.is_temporary_by_default(),
            operation: None,
            context: Vec::new(),
            message: message.into(),
            hint: None,
            suggestions: Vec::new(),
            retry_after: None,
            source: None,
        }))
    }

    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }
    pub fn is_temporary(&self) -> bool {
        self.0.temporary
    }
    pub fn operation(&self) -> Option<Operation> {
        self.0.operation
    }
    pub fn message(&self) -> &str {
        &self.0.message
    }
    pub fn hint(&self) -> Option<&str> {
        self.0.hint.as_deref()
    }
    pub fn suggestions(&self) -> &[String] {
        &self.0.suggestions
    }
    pub fn context(&self) -> &[(&'static str, String)] {
        &self.0.context
    }
    /// A context value by key (`cloud`, `region`, `instance_type`, `launch_id`, `request_id`).
    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.0
            .context
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
    /// How long the service asked us to wait, when it said so.
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }

    pub fn temporary(mut self, temporary: bool) -> Self {
        self.0.temporary = temporary;
        self
    }
    pub fn with_operation(mut self, op: Operation) -> Self {
        self.0.operation.get_or_insert(op);
        self
    }
    /// Adds a context pair unless that key is already present (inner context wins).
    pub fn with_context(mut self, key: &'static str, value: impl Into<String>) -> Self {
        if !self.0.context.iter().any(|(k, _)| *k == key) {
            self.0.context.push((key, value.into()));
        }
        self
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.0.hint = Some(hint.into());
        self
    }
    pub fn with_suggestions(mut self, suggestions: Vec<String>) -> Self {
        self.0.suggestions = suggestions;
        self
    }
    pub fn with_retry_after(mut self, d: Duration) -> Self {
        self.0.retry_after = Some(d);
        self
    }
    /// The same error with its message rewritten (to say where it happened, say).
    pub fn map_message(mut self, f: impl FnOnce(&str) -> String) -> Self {
        self.0.message = f(&self.0.message);
        self
    }
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.0.source = Some(Box::new(source));
        self
    }

    pub fn invalid_spec(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidSpec, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unsupported, message)
    }
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::ConfigInvalid, message)
    }
    pub fn unexpected(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unexpected, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(op) = self.0.operation {
            write!(f, "{op} failed: ")?;
        }
        f.write_str(&self.0.message)?;
        if !self.0.suggestions.is_empty() {
            write!(f, " (did you mean {}?)", quote_list(&self.0.suggestions))?;
        }
        // Context is for logs and `{:#}`; a person reading `error:` wants the sentence.
        if f.alternate() && !self.0.context.is_empty() {
            f.write_str(" [")?;
            for (i, (k, v)) in self.0.context.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}={v}")?;
            }
            f.write_str("]")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.0.kind)
            .field("temporary", &self.0.temporary)
            .field("operation", &self.0.operation)
            .field("context", &self.0.context)
            .field("message", &self.0.message)
            .field("hint", &self.0.hint)
            .field("suggestions", &self.0.suggestions)
            .field("source", &self.0.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_carries_operation_suggestions_and_context() {
        let e = Error::invalid_spec("unknown instance type `l1.larg`")
            .with_suggestions(vec!["l1.large".into(), "l1.xlarge".into()])
            .with_operation(Operation::Launch)
            .with_context("cloud", "local")
            .with_context("region", "local-east-1");
        assert_eq!(
            e.to_string(),
            "launch failed: unknown instance type `l1.larg` (did you mean `l1.large` or `l1.xlarge`?)"
        );
        assert_eq!(
            format!("{e:#}"),
            "launch failed: unknown instance type `l1.larg` (did you mean `l1.large` or `l1.xlarge`?) [cloud=local, region=local-east-1]"
        );
    }

    #[test]
    fn inner_context_and_operation_win() {
        let e = Error::new(ErrorKind::RateLimited, "slow down")
            .with_operation(Operation::List)
            .with_context("region", "a")
            .with_operation(Operation::Launch)
            .with_context("region", "b");
        assert_eq!(e.operation(), Some(Operation::List));
        assert_eq!(e.context_value("region"), Some("a"));
        assert!(e.is_temporary());
    }
}
