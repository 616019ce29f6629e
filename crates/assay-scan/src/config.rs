//! gitleaks' configuration format (TOML): `[[rules]]` with `id`, `description`, `regex`,
//! `secretGroup`, `entropy`, `keywords`, `path` and `[[rules.allowlists]]` (or the older single
//! `[rules.allowlist]`); global `[[allowlists]]` (or `[allowlist]`) with `targetRules`; and
//! `[extend]` with `useDefault`, `path` and `disabledRules`. Read into plain structs here, compiled
//! into regexes by [`crate::rules`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Error;

/// The rules Assay ships, written for Assay (not gitleaks' rules).
pub const DEFAULT_RULES: &str = include_str!("../rules/default.toml");

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub min_version: Option<String>,
    #[serde(default)]
    pub extend: Option<Extend>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// The older single global allowlist.
    #[serde(default)]
    pub allowlist: Option<AllowlistConfig>,
    #[serde(default)]
    pub allowlists: Vec<AllowlistConfig>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Extend {
    #[serde(default)]
    pub use_default: bool,
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub disabled_rules: Vec<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleConfig {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub secret_group: Option<usize>,
    #[serde(default)]
    pub entropy: Option<f64>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// gitleaks' `skipReport` (the rule only feeds composite rules): its findings are dropped.
    #[serde(default)]
    pub skip_report: bool,
    /// Composite rules (`[[rules.required]]`): read so that the error can name them.
    #[serde(default)]
    pub required: Option<toml::Value>,
    #[serde(default)]
    pub allowlist: Option<AllowlistConfig>,
    #[serde(default)]
    pub allowlists: Vec<AllowlistConfig>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowlistConfig {
    #[serde(default)]
    pub description: Option<String>,
    /// `OR` (default): any criterion allows the finding; `AND`: every criterion given must.
    #[serde(default)]
    pub condition: Option<String>,
    /// What `regexes` are matched against: `secret` (default), `match` or `line`.
    #[serde(default)]
    pub regex_target: Option<String>,
    #[serde(default)]
    pub regexes: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub stopwords: Vec<String>,
    #[serde(default)]
    pub commits: Vec<String>,
    /// Global allowlists only: the rules it applies to (all when empty).
    #[serde(default)]
    pub target_rules: Vec<String>,
}

/// Parses one configuration file's text; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, Error> {
    toml::from_str(text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// Reads a configuration file and everything it extends into one list of rules and global
/// allowlists: the extending file's new rules, then the extended (base) rules, a rule of the
/// same id in the extending file overriding the fields it sets and adding its keywords and
/// allowlists.
pub fn load(path: &Path) -> Result<ConfigFile, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    resolve(parse(&text, path)?, path, 0)
}

/// The default rules alone.
pub fn default_config() -> ConfigFile {
    parse(DEFAULT_RULES, Path::new("<default rules>")).expect("the default rules parse")
}

fn resolve(file: ConfigFile, path: &Path, depth: usize) -> Result<ConfigFile, Error> {
    let Some(extend) = file.extend.clone() else {
        return Ok(file);
    };
    if depth > 2 {
        return Err(Error::Config {
            path: path.to_path_buf(),
            message: "[extend] nests deeper than 3 files".into(),
        });
    }
    if extend.url.is_some() {
        return Err(Error::Config {
            path: path.to_path_buf(),
            message: "[extend] url is not supported (Assay does not fetch configuration)".into(),
        });
    }
    let mut base = if extend.use_default {
        default_config()
    } else if let Some(p) = &extend.path {
        let p = path.parent().unwrap_or(Path::new(".")).join(p);
        let text = std::fs::read_to_string(&p).map_err(|e| Error::Read {
            path: p.clone(),
            source: e,
        })?;
        resolve(parse(&text, &p)?, &p, depth + 1)?
    } else {
        ConfigFile::default()
    };
    base.rules
        .retain(|r| !extend.disabled_rules.contains(&r.id));
    // The extending file's new rules come first: where two rules match the same text, the first
    // reports it, and a team's own rule says more than a default (generic) one.
    let mut added = Vec::new();
    for rule in file.rules {
        match base.rules.iter_mut().find(|r| r.id == rule.id) {
            Some(old) => merge(old, rule),
            None => added.push(rule),
        }
    }
    added.append(&mut base.rules);
    base.rules = added;
    base.allowlists.extend(base.allowlist.take());
    base.allowlists.extend(file.allowlist);
    base.allowlists.extend(file.allowlists);
    base.title = file.title.or(base.title);
    Ok(base)
}

fn merge(old: &mut RuleConfig, new: RuleConfig) {
    if new.description.is_some() {
        old.description = new.description;
    }
    if new.regex.is_some() {
        old.regex = new.regex;
    }
    if new.secret_group.is_some() {
        old.secret_group = new.secret_group;
    }
    if new.entropy.is_some() {
        old.entropy = new.entropy;
    }
    if new.path.is_some() {
        old.path = new.path;
    }
    old.keywords.extend(new.keywords);
    old.tags.extend(new.tags);
    old.allowlists.extend(new.allowlist);
    old.allowlists.extend(new.allowlists);
    old.skip_report |= new.skip_report;
    if new.required.is_some() {
        old.required = new.required;
    }
}
