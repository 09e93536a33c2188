//! Validation findings: a [`Problem`] is a key path and a message; a [`Check`] collects them
//! (never stopping at the first) for the core configuration and for each connector's own
//! section, which validates itself (`connector::*::config`).

/// One problem found in a configuration, with the key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Collects problems; the environment is passed in so tests can give their own.
pub struct Check<'a> {
    pub problems: Vec<Problem>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Check<'a> {
    pub fn new(env: &'a dyn Fn(&str) -> Option<String>) -> Check<'a> {
        Check {
            problems: Vec::new(),
            env,
        }
    }
    pub fn bad(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
    pub fn range<T: PartialOrd + std::fmt::Display + Copy>(&mut self, path: &str, v: T, lo: T, hi: T) {
        if v < lo || v > hi {
            self.bad(path, format!("must be {lo}..={hi}, got {v}"));
        }
    }
    pub fn share(&mut self, path: &str, v: f64) {
        if !(0.0..=1.0).contains(&v) {
            self.bad(path, format!("must be a share between 0 and 1, got {v}"));
        }
    }
    /// The variable `name` (if given) must be set.
    pub fn env_var(&mut self, path: &str, name: &Option<String>) {
        if let Some(n) = name {
            if (self.env)(n).is_none() {
                self.bad(path, format!("environment variable {n} is not set"));
            }
        }
    }
    /// `path` must be a readable file.
    pub fn readable(&mut self, path: &str, file: &std::path::Path) {
        if std::fs::metadata(file).is_err() {
            self.bad(path, format!("cannot read {}", file.display()));
        }
    }
    /// `v` must be `IP:PORT`.
    pub fn socket_addr(&mut self, path: &str, v: &str) -> Option<std::net::SocketAddr> {
        match v.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.bad(path, format!("must be IP:PORT, got {v:?}"));
                None
            }
        }
    }
}
