//! `--acl`: which named peers may serve and request which services.
//!
//! 7/MDP lets any peer register for any service and then receive its
//! requests; with names from `--curve-clients` (each key file's name, which
//! the ZAP handler returns as the connection's User-Id), this file says
//! who may do what. It is TOML:
//!
//! ```toml
//! default = "deny"             # services no rule matches: "allow" or "deny"
//! [[rule]]
//! service = "billing.*"        # an exact name, or a prefix ending in "*"
//! workers = ["billing-worker"] # names that may register; "*": any admitted peer
//! clients = ["*"]              # names that may send requests
//! ```
//!
//! The first rule whose `service` matches decides; a rule's missing list
//! is empty (nobody). A file without `default` denies what no rule names:
//! a forgotten line must not open every service. Unknown keys are errors,
//! so that a misspelt `worker =` is not silently a rule that lets nobody
//! in.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why an ACL file could not be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum AclError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML of the expected shape.
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said (with line and column).
        message: String,
    },
    /// A rule's `service` is empty or has a `*` other than at its end.
    Pattern {
        /// The file.
        path: PathBuf,
        /// The pattern.
        service: String,
    },
}

impl fmt::Display for AclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AclError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            // toml's messages span lines (a snippet of the file): one line
            // is kept for the log.
            AclError::Syntax { path, message } => {
                write!(
                    f,
                    "{}: {}",
                    path.display(),
                    message.split_whitespace().collect::<Vec<_>>().join(" ")
                )
            }
            AclError::Pattern { path, service } => write!(
                f,
                "{}: service {service:?} must be a name, or a prefix ending in one \"*\"",
                path.display()
            ),
        }
    }
}

impl std::error::Error for AclError {}

/// What a peer wants to do with a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Register as its worker (READY).
    Worker,
    /// Send it a request.
    Client,
}

impl Role {
    /// The word for logs.
    pub fn verb(self) -> &'static str {
        match self {
            Role::Worker => "serve",
            Role::Client => "request",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Default {
    Allow,
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AclFile {
    default: Option<Default>,
    #[serde(default)]
    rule: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    service: String,
    #[serde(default)]
    workers: Vec<String>,
    #[serde(default)]
    clients: Vec<String>,
}

/// Which services a rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
}

impl Pattern {
    fn parse(text: &str) -> Option<Pattern> {
        match text.strip_suffix('*') {
            _ if text.is_empty() => None,
            Some(prefix) if !prefix.contains('*') => Some(Pattern::Prefix(prefix.as_bytes().into())),
            Some(_) => None,
            None if text.contains('*') => None,
            None => Some(Pattern::Exact(text.as_bytes().into())),
        }
    }

    fn matches(&self, service: &[u8]) -> bool {
        match self {
            Pattern::Exact(name) => **name == *service,
            Pattern::Prefix(prefix) => service.starts_with(prefix),
        }
    }
}

/// Names allowed one role: everyone admitted, or these.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Names {
    Anyone,
    Only(Vec<String>),
}

impl Names {
    fn new(names: Vec<String>) -> Names {
        if names.iter().any(|n| n == "*") {
            Names::Anyone
        } else {
            Names::Only(names)
        }
    }

    fn include(&self, name: Option<&str>) -> bool {
        match self {
            Names::Anyone => true,
            Names::Only(names) => name.is_some_and(|name| names.iter().any(|n| n == name)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    service: Pattern,
    workers: Names,
    clients: Names,
}

/// The rules of an ACL file, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    allow_by_default: bool,
    rules: Vec<Rule>,
}

impl Acl {
    /// Reads and checks an ACL file.
    pub fn load(path: impl AsRef<Path>) -> Result<Acl, AclError> {
        let path = path.as_ref();
        let text = crate::small_file::read(path).map_err(|source| AclError::Io {
            path: path.to_owned(),
            source,
        })?;
        Acl::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Acl, AclError> {
        let file: AclFile = toml::from_str(text).map_err(|e| AclError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let rules = file
            .rule
            .into_iter()
            .map(|rule| {
                let service = Pattern::parse(&rule.service).ok_or_else(|| AclError::Pattern {
                    path: path.to_owned(),
                    service: rule.service.clone(),
                })?;
                Ok(Rule {
                    service,
                    workers: Names::new(rule.workers),
                    clients: Names::new(rule.clients),
                })
            })
            .collect::<Result<_, AclError>>()?;
        Ok(Acl {
            allow_by_default: file.default == Some(Default::Allow),
            rules,
        })
    }

    /// Whether the peer named `name` (its User-Id; `None` if it has none)
    /// may act as `role` for `service`: the first rule matching the
    /// service decides, else the default.
    pub fn allows(&self, service: &[u8], role: Role, name: Option<&str>) -> bool {
        let Some(rule) = self.rules.iter().find(|rule| rule.service.matches(service)) else {
            return self.allow_by_default;
        };
        match role {
            Role::Worker => rule.workers.include(name),
            Role::Client => rule.clients.include(name),
        }
    }

    /// How many rules there are.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The names the rules mention that are not in `known` (a misspelt
    /// name lets its peer do nothing, which is worth a warning).
    pub fn unknown_names<'a>(&'a self, known: &[&str]) -> Vec<&'a str> {
        let mut unknown: Vec<&str> = self
            .rules
            .iter()
            .flat_map(|rule| [&rule.workers, &rule.clients])
            .filter_map(|names| match names {
                Names::Only(names) => Some(names),
                Names::Anyone => None,
            })
            .flatten()
            .map(String::as_str)
            .filter(|name| !known.contains(name))
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(text: &str) -> Acl {
        Acl::parse(Path::new("acl.toml"), text).expect("valid ACL")
    }

    const BILLING: &str = r#"
        default = "allow"            # or "deny": services that match no rule
        [[rule]]
        service = "billing.*"        # an exact name, or a prefix ending in "*"
        workers = ["billing-worker"] # names that may register; "*" = any admitted peer
        clients = ["*"]              # names that may send requests
        [[rule]]
        service = "echo"
        workers = ["echo-worker"]
        clients = ["alice"]
    "#;

    #[test]
    fn the_issues_example_reads_and_prefixes_match() {
        let acl = acl(BILLING);
        let billing = b"billing.invoices";
        assert!(acl.allows(billing, Role::Worker, Some("billing-worker")));
        assert!(!acl.allows(billing, Role::Worker, Some("mallory")));
        assert!(!acl.allows(billing, Role::Worker, None));
        assert!(acl.allows(billing, Role::Client, Some("anyone")));
        assert!(acl.allows(b"billing.", Role::Client, None));
        // "billing" is not under "billing.*": the default applies.
        assert!(acl.allows(b"billing", Role::Worker, Some("mallory")));
    }

    #[test]
    fn an_exact_rule_names_its_peers_and_other_services_get_the_default() {
        let acl = acl(BILLING);
        assert!(acl.allows(b"echo", Role::Worker, Some("echo-worker")));
        assert!(!acl.allows(b"echo", Role::Worker, Some("alice")));
        assert!(acl.allows(b"echo", Role::Client, Some("alice")));
        assert!(!acl.allows(b"echo", Role::Client, Some("echo-worker")));
        assert!(acl.allows(b"other", Role::Worker, Some("mallory")));
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let acl = acl(r#"
            default = "allow"
            [[rule]]
            service = "a.secret"
            workers = ["vault"]
            [[rule]]
            service = "a.*"
            workers = ["*"]
        "#);
        assert!(!acl.allows(b"a.secret", Role::Worker, Some("other")));
        assert!(acl.allows(b"a.public", Role::Worker, Some("other")));
        assert!(
            !acl.allows(b"a.secret", Role::Client, Some("vault")),
            "no clients list: nobody"
        );
    }

    #[test]
    fn deny_by_default_and_without_a_default() {
        for text in ["default = \"deny\"", ""] {
            let acl = acl(text);
            assert!(!acl.allows(b"echo", Role::Worker, Some("alice")), "{text:?}");
            assert!(!acl.allows(b"echo", Role::Client, Some("alice")), "{text:?}");
        }
        let star = acl("[[rule]]\nservice = \"*\"\nclients = [\"*\"]");
        assert!(star.allows(b"anything", Role::Client, None));
        assert!(!star.allows(b"anything", Role::Worker, Some("alice")));
    }

    #[test]
    fn malformed_files_say_what_and_where() {
        let path = Path::new("acl.toml");
        for bad in [
            "default = \"maybe\"",
            "default = allow",
            "[[rule]]\nworkers = [\"a\"]",
            "[[rule]]\nservice = \"x\"\nworker = [\"a\"]",
            "[[rule]]\nservice = \"x\"\nclients = \"alice\"",
        ] {
            let error = Acl::parse(path, bad).expect_err(bad);
            let line = error.to_string();
            assert!(matches!(error, AclError::Syntax { .. }), "{bad}: {line}");
            assert!(line.starts_with("acl.toml: ") && !line.contains('\n'), "{line}");
        }
        for pattern in ["", "a*b", "**", "*a"] {
            let text = format!("[[rule]]\nservice = {pattern:?}");
            assert!(
                matches!(Acl::parse(path, &text), Err(AclError::Pattern { .. })),
                "{pattern}"
            );
        }
    }

    #[test]
    fn names_the_rules_mention_but_nobody_has_are_listed() {
        let acl = acl(BILLING);
        assert_eq!(acl.unknown_names(&["billing-worker", "alice"]), ["echo-worker"]);
    }
}
