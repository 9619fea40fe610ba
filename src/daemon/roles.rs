//! Who may do what over the API: three roles, each optionally scoped to plans, and
//! what every route needs.
//!
//! A subject holds one or more grants such as `viewer` or `operator:ml-platform`. A
//! grant without a plan covers every plan; one with a plan covers only that plan, so
//! a team can run its own backups without seeing anyone else's. Roles are ordered:
//! an operator may do what a viewer may, an admin what an operator may.

use std::fmt;

/// A role, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Reads status, jobs and metrics of its plans.
    Viewer,
    /// Also triggers backups, verifications and drills of its plans.
    Operator,
    /// Also starts real failovers.
    Admin,
}

impl Level {
    fn parse(word: &str) -> Option<Level> {
        match word {
            "viewer" => Some(Level::Viewer),
            "operator" => Some(Level::Operator),
            "admin" => Some(Level::Admin),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Viewer => "viewer",
            Level::Operator => "operator",
            Level::Admin => "admin",
        }
    }
}

/// One role, over every plan (`plan: None`) or one plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub level: Level,
    pub plan: Option<String>,
}

impl Grant {
    /// `viewer`, `operator:ml-platform`, ...; the plan part must be a plan name.
    pub fn parse(text: &str) -> Result<Grant, String> {
        let (role, plan) = match text.split_once(':') {
            Some((role, plan)) => (role, Some(plan)),
            None => (text, None),
        };
        let level = Level::parse(role).ok_or_else(|| format!("unknown role {role:?} (viewer, operator or admin)"))?;
        if let Some(p) = plan
            && crate::format::names::DatasetName::new(p).is_err()
        {
            return Err(format!("{p:?} is not a plan name"));
        }
        Ok(Grant {
            level,
            plan: plan.map(str::to_string),
        })
    }

    fn covers(&self, level: Level, plan: Option<&str>) -> bool {
        self.level >= level
            && match (&self.plan, plan) {
                (None, _) => true,
                (Some(mine), Some(wanted)) => mine == wanted,
                (Some(_), None) => true,
            }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.plan {
            Some(p) => write!(f, "{}:{p}", self.level.as_str()),
            None => f.write_str(self.level.as_str()),
        }
    }
}

/// Grants from a list such as `viewer,operator:ml-platform` (a role claim's values
/// may also arrive one by one).
pub fn parse_grants<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<Vec<Grant>, String> {
    words
        .into_iter()
        .flat_map(|w| w.split(','))
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(Grant::parse)
        .collect()
}

/// An authenticated caller: a name for logs, audit events and rate limits, and grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub grants: Vec<Grant>,
}

impl Caller {
    /// May the caller act at `level` on `plan` (or, for a route naming no plan, on
    /// some plan)?
    pub fn may(&self, level: Level, plan: Option<&str>) -> bool {
        self.grants.iter().any(|g| g.covers(level, plan))
    }

    /// Does the caller see plan `name` in status, jobs and metrics?
    pub fn sees(&self, name: &str) -> bool {
        self.may(Level::Viewer, Some(name))
    }

    /// The grants as one word for the access log: `viewer,operator:ml`.
    pub fn roles(&self) -> String {
        let words: Vec<String> = self.grants.iter().map(Grant::to_string).collect();
        words.join(",")
    }
}

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone, without a rate limit: health probes must answer under any load.
    Open,
    /// `/metrics`: anyone when the daemon listens on loopback or `--metrics-public`
    /// is given, else a viewer.
    Metrics,
    /// This role on some plan; the answer shows only the caller's plans.
    Any(Level),
    /// This role on the plan named by the route's `{plan}`.
    Plan(Level),
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Open => f.write_str("none"),
            Need::Metrics => f.write_str("none on loopback, else viewer"),
            Need::Any(level) => write!(f, "{}", level.as_str()),
            Need::Plan(level) => write!(f, "{} of the plan", level.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(grants: &str) -> Caller {
        Caller {
            subject: "t".into(),
            grants: parse_grants([grants]).unwrap(),
        }
    }

    #[test]
    fn scoped_grants_cover_only_their_plan() {
        let c = caller("viewer,operator:ml");
        assert!(c.may(Level::Operator, Some("ml")));
        assert!(!c.may(Level::Operator, Some("web")));
        assert!(c.may(Level::Viewer, Some("web")));
        assert!(!c.may(Level::Admin, Some("ml")));
        let scoped = caller("viewer:ml");
        assert!(scoped.sees("ml") && !scoped.sees("web"));
        assert!(scoped.may(Level::Viewer, None), "a route naming no plan shows its own");
        assert_eq!(c.roles(), "viewer,operator:ml");
    }

    #[test]
    fn admins_may_everything() {
        let c = caller("admin");
        assert!(c.may(Level::Viewer, Some("x")) && c.may(Level::Operator, None) && c.may(Level::Admin, Some("y")));
    }

    #[test]
    fn bad_grants_say_why() {
        assert!(parse_grants(["root"]).unwrap_err().contains("unknown role"));
        assert!(parse_grants(["viewer:../x"]).unwrap_err().contains("not a plan name"));
        assert!(parse_grants([""]).unwrap().is_empty());
    }
}
