//! `assay context add|use|list|remove`: the servers the CLI can work through.
//!
//! With a context in use, `run`, `get`, `logs`, `artifacts`, `abort`, `rerun`, `apply` and
//! `delete` go through that server's API; `assay context use embedded` (or `--context
//! embedded` for one command) goes back to the store on this machine.

use std::path::PathBuf;

use crate::context::{self, Context, Contexts, EMBEDDED};
use crate::error::UserError;
use crate::store_args::StoreArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Add (or replace) a context: a server URL and a token
    Add(Add),
    /// Use this context from now on (`embedded`: the store on this machine)
    Use {
        /// Context name, or `embedded`
        name: String,
    },
    /// List the contexts (tokens are shown as fingerprints, never in full)
    List,
    /// Remove a context
    Remove {
        /// Context name
        name: String,
    },
}

#[derive(Debug, clap::Args)]
struct Add {
    /// Context name
    name: String,
    /// The server's URL, e.g. `http://assay.internal:8088`
    #[arg(long, value_name = "URL")]
    server: String,
    /// The API token (`assay token create` on the server). Without it and on a loopback
    /// server, the admin token the server saved in its data dir is used
    #[arg(long, value_name = "TOKEN", conflicts_with = "token_file")]
    token: Option<String>,
    /// Read the token from this file
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Also make it the context in use
    #[arg(long = "use")]
    use_it: bool,
    /// Where a loopback server keeps its data (for its `admin.token`)
    #[command(flatten)]
    store: StoreArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let path = context::path()?;
    let mut contexts = Contexts::load(&path)?;
    match args.what {
        What::Add(add) => {
            if add.name == EMBEDDED || add.name.is_empty() {
                return Err(UserError::invalid(format!(
                    "`{}` cannot name a context: `embedded` means the store on this machine",
                    add.name
                ))
                .into());
            }
            // Checked now, so that a typo is found here rather than by the next command.
            assay_client::Client::new(&add.server, None).map_err(|e| {
                UserError::invalid(format!("failed to {e}"))
                    .with_hint("for example --server http://127.0.0.1:8088")
            })?;
            let token = match (&add.token, &add.token_file) {
                (Some(t), _) => Some(t.trim().to_string()),
                (None, Some(file)) => Some(read_token(file)?),
                (None, None) => local_admin_token(&add.server, &add.store)?,
            };
            let replaced = contexts
                .contexts
                .insert(
                    add.name.clone(),
                    Context {
                        server: add.server.trim_end_matches('/').to_string(),
                        token,
                    },
                )
                .is_some();
            if add.use_it {
                contexts.current = Some(add.name.clone());
            }
            contexts.save(&path)?;
            eprintln!(
                "context {} {} ({})",
                add.name,
                if replaced { "replaced" } else { "added" },
                path.display()
            );
            if !add.use_it && contexts.current.as_deref() != Some(&add.name) {
                eprintln!(
                    "\nhint: `assay context use {}` makes it the default; `--context {}` uses it for one command",
                    add.name, add.name
                );
            }
        }
        What::Use { name } => {
            if name == EMBEDDED {
                contexts.current = None;
            } else if contexts.contexts.contains_key(&name) {
                contexts.current = Some(name.clone());
            } else {
                return Err(unknown(&name, &contexts).into());
            }
            contexts.save(&path)?;
            match contexts
                .current
                .as_ref()
                .and_then(|n| contexts.contexts.get(n))
            {
                Some(c) => eprintln!("using context {name} ({})", c.server),
                None => eprintln!("using the embedded store on this machine"),
            }
        }
        What::List => {
            let mut t = super::history::table(&["NAME", "SERVER", "TOKEN", "CURRENT"]);
            let mark = |on: bool| if on { "*" } else { "" }.to_string();
            t.add_row(vec![
                EMBEDDED.to_string(),
                "(this machine)".to_string(),
                "-".to_string(),
                mark(contexts.current.is_none()),
            ]);
            for (name, c) in &contexts.contexts {
                t.add_row(vec![
                    name.clone(),
                    c.server.clone(),
                    c.token
                        .as_deref()
                        .map(context::fingerprint)
                        .unwrap_or_else(|| "(none)".into()),
                    mark(contexts.current.as_deref() == Some(name)),
                ]);
            }
            super::history::print_table(&t);
        }
        What::Remove { name } => {
            if contexts.contexts.remove(&name).is_none() {
                return Err(unknown(&name, &contexts).into());
            }
            let was_current = contexts.current.as_deref() == Some(name.as_str());
            if was_current {
                contexts.current = None;
            }
            contexts.save(&path)?;
            eprintln!("context {name} removed");
            if was_current {
                eprintln!("using the embedded store on this machine");
            }
        }
    }
    Ok(crate::exit::SUCCESS)
}

fn unknown(name: &str, contexts: &Contexts) -> UserError {
    let known: Vec<&str> = contexts.contexts.keys().map(String::as_str).collect();
    UserError::invalid(format!("no context named `{name}`")).with_hint(if known.is_empty() {
        "add one with `assay context add NAME --server URL`".to_string()
    } else {
        format!("known contexts: {}, and `embedded`", known.join(", "))
    })
}

fn read_token(file: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        UserError::invalid(format!(
            "failed to read the token file {}: {}",
            file.display(),
            crate::files::io_reason(&e)
        ))
    })?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(
            UserError::invalid(format!("the token file {} is empty", file.display())).into(),
        );
    }
    Ok(token)
}

/// Without `--token`: a server on loopback is this machine's, so its first admin token is in
/// its data dir (`assay server` saved it there). Said on stderr, since it grants everything.
fn local_admin_token(server: &str, store: &StoreArgs) -> anyhow::Result<Option<String>> {
    let loopback = reqwest_host(server).is_some_and(|h| {
        h == "localhost"
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    let hint = "pass --token TOKEN or --token-file FILE (`assay token create --role runner` on the server makes one)";
    if !loopback {
        return Err(UserError::invalid(format!("no token for {server}"))
            .with_hint(hint)
            .into());
    }
    let data_dir = store.config()?.data_dir;
    let file = data_dir.join(assay_server::ADMIN_TOKEN_FILE);
    match std::fs::read_to_string(&file) {
        Ok(text) if !text.trim().is_empty() => {
            eprintln!(
                "using the admin token the server saved in {} (the server is on loopback)",
                file.display()
            );
            Ok(Some(text.trim().to_string()))
        }
        Ok(_) | Err(_) => Err(UserError::invalid(format!(
            "no token given, and no admin token in {}",
            file.display()
        ))
        .with_hint(format!(
            "{hint}; or give the server's data dir with --data-dir DIR"
        ))
        .into()),
    }
}

/// The host of a URL, lowercased.
fn reqwest_host(server: &str) -> Option<String> {
    let rest = server.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.split_once(']').map(|(h, _)| format!("{h}]"))?
    } else {
        host_port.split(':').next()?.to_string()
    };
    Some(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::reqwest_host;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(
            reqwest_host("http://127.0.0.1:8088").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(reqwest_host("http://[::1]:80/x").as_deref(), Some("[::1]"));
        assert_eq!(
            reqwest_host("https://Assay.internal").as_deref(),
            Some("assay.internal")
        );
    }
}
