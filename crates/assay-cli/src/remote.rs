//! Where a command's data comes from: the embedded store on this machine, or a server's API
//! (a context, `assay context`). Commands take [`ConnArgs`], open a [`Backend`] and print the
//! same way whichever it is; this module also turns the client's errors into messages that
//! name the context, the URL and what to do (exit codes of design.md §5).

use assay_client::{Client, ClientError};

use crate::backend::{Backend, Embedded, Server};

use crate::context;
use crate::error::UserError;
use crate::exit;
use crate::store_args::StoreArgs;

/// The flags of a command that works on the embedded store or through a server.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnArgs {
    /// Work through this context's server for this command (`embedded`: the store on this
    /// machine) [default: the context in use, see `assay context`]
    #[arg(long, env = "ASSAY_CONTEXT", value_name = "NAME", global = true)]
    pub context: Option<String>,

    #[command(flatten)]
    pub store: StoreArgs,
}

/// A server reached through a context.
pub struct Remote {
    pub client: Client,
    /// The context's name, for messages.
    pub name: String,
}

impl ConnArgs {
    /// The selected context's server, or `None` for the embedded store.
    pub fn remote(&self) -> anyhow::Result<Option<Remote>> {
        let Some((name, ctx)) = context::selected(self.context.as_deref())? else {
            return Ok(None);
        };
        let client = Client::new(&ctx.server, ctx.token.clone()).map_err(|e| {
            UserError::invalid(format!("context `{name}`: failed to {e}")).with_hint(format!(
                "fix it with `assay context add {name} --server URL`"
            ))
        })?;
        Ok(Some(Remote { client, name }))
    }

    /// The selected context's server, or the embedded store when none is selected.
    pub async fn backend(&self) -> anyhow::Result<Box<dyn Backend>> {
        Ok(match self.remote()? {
            Some(remote) => Box::new(Server { remote }),
            None => Box::new(Embedded {
                store: self.store.open().await?,
            }),
        })
    }
}

impl Remote {
    /// A client error as the user should read it: unreachable and 5xx exit 3, refusals and
    /// other 4xx exit 2, each naming the context and saying what to do.
    pub fn err(&self, e: ClientError) -> anyhow::Error {
        let url = self.client.base_url();
        let name = &self.name;
        let user = match e {
            ClientError::Unreachable { reason, .. } => UserError {
                code: exit::INTERNAL,
                message: format!(
                    "failed to reach the server of context `{name}` at {url}: {reason}"
                ),
                hint: Some(
                    "is `assay server` running there? `assay context list` shows the contexts; `--context embedded` works on this machine"
                        .to_string(),
                ),
            },
            ClientError::Api { body } => match body.status {
                401 => UserError {
                    code: exit::INVALID,
                    message: format!(
                        "the server of context `{name}` ({url}) refused the token: {}",
                        body.detail
                    ),
                    hint: Some(format!(
                        "give the context a valid token: `assay context add {name} --server {url} --token TOKEN` (`assay token create` on the server makes one)"
                    )),
                },
                403 => {
                    let role = body.required_role.as_deref().unwrap_or("a stronger role");
                    UserError {
                        code: exit::INVALID,
                        message: format!(
                            "the server of context `{name}` ({url}) refused: {}",
                            body.detail
                        ),
                        hint: Some(format!(
                            "this needs a token with role `{role}`: `assay token create --role {role}` on the server, then `assay context add {name} --server {url} --token TOKEN`"
                        )),
                    }
                }
                status if status >= 500 => UserError {
                    code: exit::INTERNAL,
                    message: format!(
                        "the server of context `{name}` ({url}) failed: {} ({status})",
                        body.detail
                    ),
                    hint: None,
                },
                _ => {
                    let mut message = body.detail.clone();
                    for p in &body.problems {
                        message.push_str(&format!("\n  {}", problem_line(p)));
                    }
                    UserError {
                        code: exit::INVALID,
                        message,
                        hint: None,
                    }
                }
            },
            other => UserError {
                code: exit::INTERNAL,
                message: format!("failed to {other} (context `{name}`)"),
                hint: None,
            },
        };
        user.into()
    }
}

fn problem_line(p: &assay_api::Problem) -> String {
    let at = match (&p.path, p.line) {
        (_, l) if l > 0 => format!("{l}:{}: ", p.column),
        (Some(path), _) => format!("{path}: "),
        _ => String::new(),
    };
    match &p.hint {
        Some(h) => format!("{at}{} (hint: {h})", p.message),
        None => format!("{at}{}", p.message),
    }
}

/// A command or flag that has no API yet: refused with a hint, exit 2.
pub fn local_only(what: &str, remote: &Remote) -> anyhow::Error {
    UserError::invalid(format!(
        "{what} works on the embedded store only, and context `{}` is in use",
        remote.name
    ))
    .with_hint("add `--context embedded` to use the store on this machine")
    .into()
}
