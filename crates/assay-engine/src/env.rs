//! The one list of what steps inherit from the environment of the process running Assay, and
//! the one rule for the environment steps start from. Every way to run a plan (the CLI, the
//! server, an agent, `execute` children) goes through [`starting_env`], so no second list can
//! let more of the caller's environment (which may hold a server's secrets) reach a step.

use std::collections::BTreeMap;

/// Variables of the caller's own environment that steps start with (see [`inherited_env`]).
/// Nothing else of the caller's environment reaches a step: it may hold the server's secrets.
pub const INHERITED_ENV: [&str; 8] = [
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
];

/// The user's terminal settings: passed to steps exactly as the user has them, and never
/// invented. Test tools decide on colour from these (and from whether their output is a
/// terminal, which it never is here), so a run with `NO_COLOR` or in a pipe gets plain output,
/// and one with `FORCE_COLOR` gets colour. Logs are stored as the step wrote them.
pub const TERMINAL_ENV: [&str; 6] = [
    "NO_COLOR",
    "FORCE_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "TERM",
    "COLUMNS",
];

/// The variables of [`INHERITED_ENV`] and [`TERMINAL_ENV`] that this process has, and its
/// locale categories (`LC_*`): the environment steps start from when the caller gives none.
pub fn inherited_env() -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = INHERITED_ENV
        .iter()
        .chain(TERMINAL_ENV.iter())
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    env.extend(std::env::vars().filter(|(k, _)| k.starts_with("LC_")));
    env
}

/// `PATH` when neither the caller nor the inherited environment gives one (also the search
/// path of the namespace holder and of the program lookup of a step without `PATH`).
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

/// The environment steps start from: `given` when the caller gives one, else
/// [`inherited_env`] of this process.
pub fn starting_env(given: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    if given.is_empty() {
        inherited_env()
    } else {
        given.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_environment_wins_and_an_empty_one_inherits_the_list_only() {
        let given = BTreeMap::from([("A".to_string(), "1".to_string())]);
        assert_eq!(starting_env(&given), given);
        let inherited = starting_env(&BTreeMap::new());
        assert!(inherited.keys().all(|k| INHERITED_ENV.contains(&k.as_str())
            || TERMINAL_ENV.contains(&k.as_str())
            || k.starts_with("LC_")));
    }
}
