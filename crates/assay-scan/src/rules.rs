//! Rules compiled from a [`ConfigFile`]: regexes built once, keywords lowercased, allowlists
//! ready to answer "is this finding allowed?".

use regex::Regex;

use crate::Error;
use crate::config::{AllowlistConfig, ConfigFile, RuleConfig};
use std::path::Path;

#[derive(Debug)]
pub struct Rules {
    pub title: Option<String>,
    pub rules: Vec<Rule>,
    /// Global allowlists (each may target some rules only).
    pub allowlists: Vec<Allowlist>,
}

#[derive(Debug)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub regex: Option<Regex>,
    pub secret_group: Option<usize>,
    pub entropy: Option<f64>,
    /// Lowercased; a fragment without any of them is not searched (none: always searched).
    pub keywords: Vec<String>,
    pub path: Option<Regex>,
    pub allowlists: Vec<Allowlist>,
    pub skip_report: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Secret,
    Match,
    Line,
}

#[derive(Debug)]
pub struct Allowlist {
    pub all_of: bool,
    pub target: Target,
    pub regexes: Vec<Regex>,
    pub paths: Vec<Regex>,
    /// Lowercased.
    pub stopwords: Vec<String>,
    pub commits: Vec<String>,
    pub target_rules: Vec<String>,
}

/// What an allowlist is asked about.
pub struct Candidate<'a> {
    pub secret: &'a str,
    pub matched: &'a str,
    pub line: &'a str,
    pub path: &'a str,
    pub commit: Option<&'a str>,
}

impl Rules {
    /// Compiles every rule and allowlist; `source` names the configuration in errors.
    pub fn compile(config: &ConfigFile, source: &Path) -> Result<Rules, Error> {
        let mut rules = Vec::new();
        for r in &config.rules {
            rules.push(Rule::compile(r, source)?);
        }
        let mut allowlists = Vec::new();
        for a in config.allowlist.iter().chain(&config.allowlists) {
            allowlists.push(Allowlist::compile(a, source, "global allowlist")?);
        }
        if rules.is_empty() {
            return Err(Error::Config {
                path: source.to_path_buf(),
                message: "no [[rules]] (add some, or `[extend] useDefault = true`)".into(),
            });
        }
        Ok(Rules {
            title: config.title.clone(),
            rules,
            allowlists,
        })
    }

    /// The default rules, compiled.
    pub fn default_rules() -> Rules {
        Rules::compile(
            &crate::config::default_config(),
            Path::new("<default rules>"),
        )
        .expect("the default rules compile")
    }

    /// Whether a global allowlist that applies to `rule` allows the candidate.
    pub fn globally_allowed(&self, rule: &str, c: &Candidate) -> bool {
        self.allowlists.iter().any(|a| {
            (a.target_rules.is_empty() || a.target_rules.iter().any(|t| t == rule)) && a.allows(c)
        })
    }

    /// Whether a global allowlist made only of paths excludes this file for every rule.
    pub fn path_excluded(&self, path: &str) -> bool {
        self.allowlists.iter().any(|a| {
            a.target_rules.is_empty()
                && !a.paths.is_empty()
                && (!a.all_of
                    || (a.regexes.is_empty() && a.stopwords.is_empty() && a.commits.is_empty()))
                && a.paths.iter().any(|p| p.is_match(path))
        })
    }
}

impl Rule {
    fn compile(r: &RuleConfig, source: &Path) -> Result<Rule, Error> {
        let err = |message: String| Error::Rule {
            path: source.to_path_buf(),
            rule: r.id.clone(),
            message,
        };
        if r.id.trim().is_empty() {
            return Err(err("a rule needs an `id`".into()));
        }
        if r.required.is_some() {
            return Err(err(
                "composite rules (`[[rules.required]]`) are not supported by Assay".into(),
            ));
        }
        if r.regex.is_none() && r.path.is_none() {
            return Err(err("a rule needs a `regex`, a `path` or both".into()));
        }
        let regex = r
            .regex
            .as_deref()
            .map(|s| Regex::new(s).map_err(|e| err(format!("regex: {e}"))))
            .transpose()?;
        if let (Some(re), Some(g)) = (&regex, r.secret_group)
            && g >= re.captures_len()
        {
            return Err(err(format!(
                "secretGroup {g} but the regex has {} capture groups",
                re.captures_len() - 1
            )));
        }
        let path = r
            .path
            .as_deref()
            .map(|s| Regex::new(s).map_err(|e| err(format!("path: {e}"))))
            .transpose()?;
        let mut allowlists = Vec::new();
        for a in r.allowlist.iter().chain(&r.allowlists) {
            allowlists.push(Allowlist::compile(a, source, &r.id)?);
        }
        Ok(Rule {
            id: r.id.clone(),
            description: r.description.clone().unwrap_or_else(|| r.id.clone()),
            regex,
            secret_group: r.secret_group,
            entropy: r.entropy,
            keywords: r.keywords.iter().map(|k| k.to_lowercase()).collect(),
            path,
            allowlists,
            skip_report: r.skip_report,
        })
    }

    /// Whether one of the rule's own allowlists allows the candidate.
    pub fn allowed(&self, c: &Candidate) -> bool {
        self.allowlists.iter().any(|a| a.allows(c))
    }
}

impl Allowlist {
    fn compile(a: &AllowlistConfig, source: &Path, owner: &str) -> Result<Allowlist, Error> {
        let err = |message: String| Error::Rule {
            path: source.to_path_buf(),
            rule: owner.to_string(),
            message,
        };
        let all_of = match a
            .condition
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("OR") => false,
            Some("AND") => true,
            Some(other) => {
                return Err(err(format!(
                    "allowlist condition `{other}`: expected OR or AND"
                )));
            }
        };
        let target = match a.regex_target.as_deref() {
            None | Some("secret") => Target::Secret,
            Some("match") => Target::Match,
            Some("line") => Target::Line,
            Some(other) => {
                return Err(err(format!(
                    "allowlist regexTarget `{other}`: expected secret, match or line"
                )));
            }
        };
        let compile_all = |list: &[String], what: &str| -> Result<Vec<Regex>, Error> {
            list.iter()
                .map(|s| Regex::new(s).map_err(|e| err(format!("allowlist {what}: {e}"))))
                .collect()
        };
        Ok(Allowlist {
            all_of,
            target,
            regexes: compile_all(&a.regexes, "regex")?,
            paths: compile_all(&a.paths, "path")?,
            stopwords: a.stopwords.iter().map(|s| s.to_lowercase()).collect(),
            commits: a.commits.clone(),
            target_rules: a.target_rules.clone(),
        })
    }

    /// gitleaks' semantics: with `OR` any criterion given allows the finding, with `AND` every
    /// criterion given must; an allowlist with no criteria allows nothing.
    pub fn allows(&self, c: &Candidate) -> bool {
        let mut checks = Vec::with_capacity(4);
        if !self.commits.is_empty() {
            checks.push(c.commit.is_some_and(|commit| {
                self.commits
                    .iter()
                    .any(|x| !x.is_empty() && commit.starts_with(x.as_str()))
            }));
        }
        if !self.paths.is_empty() {
            checks.push(self.paths.iter().any(|p| p.is_match(c.path)));
        }
        if !self.regexes.is_empty() {
            let target = match self.target {
                Target::Secret => c.secret,
                Target::Match => c.matched,
                Target::Line => c.line,
            };
            checks.push(self.regexes.iter().any(|r| r.is_match(target)));
        }
        if !self.stopwords.is_empty() {
            let secret = c.secret.to_lowercase();
            checks.push(self.stopwords.iter().any(|w| secret.contains(w.as_str())));
        }
        if checks.is_empty() {
            return false;
        }
        if self.all_of {
            checks.iter().all(|&b| b)
        } else {
            checks.iter().any(|&b| b)
        }
    }
}
