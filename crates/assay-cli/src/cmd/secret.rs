//! `assay secret set|list|delete`: named secrets, what workflows read where Kubernetes would
//! read a Secret or a ConfigMap (`valueFrom.secretKeyRef`, `envFrom.secretRef`, `contentFrom`,
//! git `tokenFrom`). Kept sealed in the store; values are never printed.

use std::io::Read;

use super::history::store_err;
use crate::error::UserError;
use crate::store_args::StoreArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Set keys of a secret (made if new): KEY=VALUE, --from-file KEY=PATH, --from-stdin KEY
    Set {
        /// The secret's name, as a workflow's `secretKeyRef.name` gives it
        name: String,
        /// KEY=VALUE pairs (visible in the shell's history and `ps`: prefer --from-file)
        #[arg(value_name = "KEY=VALUE")]
        literals: Vec<String>,
        /// KEY=PATH: the file's content is the value (repeatable)
        #[arg(long = "from-file", value_name = "KEY=PATH")]
        files: Vec<String>,
        /// KEY: the value is read from stdin
        #[arg(long = "from-stdin", value_name = "KEY")]
        stdin: Option<String>,
        /// Remove the keys not given, so the secret holds exactly these
        #[arg(long)]
        replace: bool,
    },
    /// List secrets and their keys (never the values)
    List,
    /// Delete a secret, or one key of it
    Delete { name: String, key: Option<String> },
}

fn split(pair: &str, what: &str) -> anyhow::Result<(String, String)> {
    match pair.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(UserError::invalid(format!("`{pair}` is not {what}"))
            .with_hint("write KEY=VALUE, e.g. `assay secret set db password=s3cret`")
            .into()),
    }
}

fn entries(
    literals: Vec<String>,
    files: Vec<String>,
    stdin: Option<String>,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for l in &literals {
        out.push(split(l, "KEY=VALUE")?);
    }
    for f in &files {
        let (key, path) = split(f, "KEY=PATH")?;
        let value = std::fs::read_to_string(&path).map_err(|e| {
            UserError::invalid(format!("cannot read `{path}` for key `{key}`: {e}"))
                .with_hint("--from-file takes KEY=PATH of a readable UTF-8 text file")
        })?;
        out.push((key, value));
    }
    if let Some(key) = stdin {
        let mut value = String::new();
        std::io::stdin()
            .read_to_string(&mut value)
            .map_err(|e| UserError::invalid(format!("cannot read key `{key}` from stdin: {e}")))?;
        out.push((key, value));
    }
    if out.is_empty() {
        return Err(UserError::invalid("no keys given")
            .with_hint("give KEY=VALUE, --from-file KEY=PATH or --from-stdin KEY")
            .into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for (k, _) in &out {
        if !seen.insert(k.as_str()) {
            return Err(UserError::invalid(format!("key `{k}` is given twice")).into());
        }
    }
    Ok(out)
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    // Read and check everything before opening the store: a bad argument changes nothing.
    let given = match &args.command {
        Command::Set {
            name,
            literals,
            files,
            stdin,
            ..
        } => {
            assay_store::check_secret_name(name).map_err(store_err)?;
            let given = entries(literals.clone(), files.clone(), stdin.clone())?;
            for (k, _) in &given {
                assay_store::check_secret_key(k).map_err(store_err)?;
            }
            given
        }
        _ => Vec::new(),
    };
    tokio::runtime::Runtime::new()?.block_on(async move {
        let store = args.store.open().await?;
        match args.command {
            Command::Set { name, replace, .. } => {
                store
                    .set_named_secret(&name, &given, replace)
                    .await
                    .map_err(store_err)?;
                let keys: Vec<&str> = given.iter().map(|(k, _)| k.as_str()).collect();
                eprintln!("set secret `{name}`: {}", keys.join(", "));
            }
            Command::List => {
                for s in store.list_named_secrets().await.map_err(store_err)? {
                    println!("{}\t{}", s.name, s.keys.join(","));
                }
            }
            Command::Delete { name, key } => {
                if !store
                    .delete_named_secret(&name, key.as_deref())
                    .await
                    .map_err(store_err)?
                {
                    let what = match &key {
                        Some(k) => format!("secret `{name}` has no key `{k}`"),
                        None => format!("no secret named `{name}`"),
                    };
                    return Err(UserError::invalid(what)
                        .with_hint("see `assay secret list`")
                        .into());
                }
                match key {
                    Some(k) => eprintln!("deleted key `{k}` of secret `{name}`"),
                    None => eprintln!("deleted secret `{name}`"),
                }
            }
        }
        store.close().await;
        Ok(crate::exit::SUCCESS)
    })
}
