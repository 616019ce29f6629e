//! The optional LLM: an OpenAI-compatible chat endpoint (`POST {ASSAY_LLM_URL}/chat/completions`)
//! that adds prose on top of Assay's deterministic answers. Every feature works without it; with
//! it, `assay explain` adds a narrative, `assay ask` turns a question its grammar does not know
//! into the same structured [`Query`] (checked like any input), and `assay init` drafts a workflow
//! for a repository whose tools it does not recognise in a generate → validate → fix loop.
//!
//! What is sent is only what Assay already computed: the analysis text (from stored logs,
//! which are masked when written), the question and the stored workflows' names, or a
//! repository's file names (never file contents). Replies are bounded in size and time, and
//! checked before use: a reply is data, never an instruction to Assay.

use std::fmt;
use std::time::Duration;

use assay_assist::ask::{Query, Vocabulary};
use serde::Serialize;
use serde_json::Value;

/// The endpoint's base URL (`https://api.openai.com/v1`, `http://127.0.0.1:11434/v1`…).
pub const URL_ENV: &str = "ASSAY_LLM_URL";
/// The model to ask (`gpt-4o-mini`, `llama3.1`…).
pub const MODEL_ENV: &str = "ASSAY_LLM_MODEL";
/// The API key, sent as `Authorization: Bearer`; optional for local endpoints.
pub const KEY_ENV: &str = "ASSAY_LLM_API_KEY";

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The largest reply read, in bytes.
const MAX_REPLY: usize = 256 * 1024;
/// The largest text of facts sent, in bytes.
const MAX_FACTS: usize = 16 * 1024;
/// The longest narrative kept, in characters.
const MAX_NARRATIVE: usize = 2000;
/// File names sent to draft a workflow.
const MAX_LISTED: usize = 300;
/// Tries of the generate → validate → fix loop.
pub const DRAFT_TRIES: u32 = 3;

/// Why the LLM could not help. Callers fall back to the deterministic answer and say this once.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{URL_ENV} is set but {MODEL_ENV} is not: name the model to ask")]
    NoModel,
    #[error("{URL_ENV} `{0}` is not an http(s) URL")]
    BadUrl(String),
    #[error("the LLM at {endpoint} did not answer: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("the LLM at {endpoint} answered HTTP {status}: {body}")]
    Status {
        endpoint: String,
        status: u16,
        body: String,
    },
    #[error("the LLM's reply is not an OpenAI chat completion: {0}")]
    BadReply(String),
    #[error("the LLM's query is not usable: {0}")]
    BadQuery(String),
    #[error("the LLM's workflow still does not validate after {tries} tries:\n{last}")]
    NoValidDraft { tries: u32, last: String },
}

/// A chat message of the OpenAI API.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

impl Message {
    fn system(content: &str) -> Self {
        Message {
            role: "system",
            content: content.to_string(),
        }
    }
    fn user(content: String) -> Self {
        Message {
            role: "user",
            content,
        }
    }
    fn assistant(content: String) -> Self {
        Message {
            role: "assistant",
            content,
        }
    }
}

/// A configured endpoint.
pub struct Llm {
    endpoint: url::Url,
    model: String,
    key: Option<String>,
    http: reqwest::Client,
}

impl fmt::Debug for Llm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Llm")
            .field("endpoint", &self.endpoint.as_str())
            .field("model", &self.model)
            .field("key", &self.key.as_ref().map(|_| "••••••"))
            .finish()
    }
}

impl Llm {
    /// The endpoint named by [`URL_ENV`], [`MODEL_ENV`] and [`KEY_ENV`]; `None` when
    /// [`URL_ENV`] is unset or empty (the LLM is off).
    pub fn from_env() -> Result<Option<Llm>, LlmError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let Some(url) = var(URL_ENV) else {
            return Ok(None);
        };
        let model = var(MODEL_ENV).ok_or(LlmError::NoModel)?;
        Llm::new(&url, &model, var(KEY_ENV)).map(Some)
    }

    /// An endpoint at `url` (its base, or the full `/chat/completions` address).
    pub fn new(url: &str, model: &str, key: Option<String>) -> Result<Llm, LlmError> {
        let mut endpoint =
            url::Url::parse(url.trim()).map_err(|_| LlmError::BadUrl(url.to_string()))?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host().is_none() {
            return Err(LlmError::BadUrl(url.to_string()));
        }
        if !endpoint.path().ends_with("/chat/completions") {
            let path = format!("{}/chat/completions", endpoint.path().trim_end_matches('/'));
            endpoint.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| LlmError::BadUrl(format!("{url}: {e}")))?;
        Ok(Llm {
            endpoint,
            model: model.to_string(),
            key,
            http,
        })
    }

    /// `MODEL at HOST`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} at {}",
            self.model,
            self.endpoint.host_str().unwrap_or_default()
        )
    }

    /// One chat completion: the first choice's text.
    pub async fn chat(&self, messages: &[Message]) -> Result<String, LlmError> {
        let body = serde_json::json!({
            "model": self.model,
            "messages": messages,
            "temperature": 0,
        });
        let mut request = self.http.post(self.endpoint.clone()).json(&body);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        let endpoint = self.endpoint.to_string();
        let unreachable = |e: reqwest::Error| LlmError::Unreachable {
            endpoint: endpoint.clone(),
            reason: self.mask(&e.to_string()),
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if bytes.len() + chunk.len() > MAX_REPLY {
                return Err(LlmError::BadReply(format!("longer than {MAX_REPLY} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&bytes);
        if !status.is_success() {
            return Err(LlmError::Status {
                endpoint,
                status: status.as_u16(),
                body: self.mask(&clip(text.trim(), 300)),
            });
        }
        let reply: Value = serde_json::from_str(&text)
            .map_err(|e| LlmError::BadReply(format!("{e}: {}", self.mask(&clip(&text, 200)))))?;
        reply["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                LlmError::BadReply(format!(
                    "no choices[0].message.content in {}",
                    self.mask(&clip(&text, 200))
                ))
            })
    }

    /// `text` with the API key replaced, for error messages.
    fn mask(&self, text: &str) -> String {
        match &self.key {
            Some(k) if !k.is_empty() => text.replace(k.as_str(), "••••••"),
            _ => text.to_string(),
        }
    }

    /// A short narrative of an analysis (the text `assay explain` prints): what happened and
    /// what to look at first, in plain words, from the facts only.
    pub async fn narrate(&self, facts: &str) -> Result<String, LlmError> {
        let reply = self
            .chat(&[
                Message::system(NARRATE),
                Message::user(clip(facts, MAX_FACTS)),
            ])
            .await?;
        let reply = reply.trim();
        if reply.is_empty() {
            return Err(LlmError::BadReply("an empty narrative".into()));
        }
        Ok(clip(reply, MAX_NARRATIVE))
    }

    /// The structured query a question means, when the grammar of `assay ask` did not know
    /// its words. The reply is checked like input: its shape, [`Query::problems`], and that a
    /// workflow it names exists.
    pub async fn query(
        &self,
        question: &str,
        vocab: &Vocabulary,
        now_ms: i64,
    ) -> Result<Query, LlmError> {
        let mut workflows = vocab.workflows.clone();
        workflows.truncate(200);
        let user = format!(
            "now (unix milliseconds): {now_ms}\nstored workflows: {}\nquestion: {}",
            serde_json::to_string(&workflows).unwrap_or_default(),
            clip(question, 500)
        );
        let reply = self
            .chat(&[Message::system(QUERY), Message::user(user)])
            .await?;
        let json = json_object(&reply).ok_or_else(|| {
            LlmError::BadQuery(format!("no JSON object in `{}`", clip(&reply, 200)))
        })?;
        let query: Query = serde_json::from_str(json)
            .map_err(|e| LlmError::BadQuery(format!("{e} in `{}`", clip(json, 200))))?;
        let mut problems = query.problems();
        if let Some(w) = &query.workflow
            && !vocab.workflows.contains(w)
        {
            problems.push(format!("no stored workflow `{w}`"));
        }
        if !problems.is_empty() {
            return Err(LlmError::BadQuery(problems.join("; ")));
        }
        Ok(query)
    }

    /// A TestWorkflow for a repository described by its file names, checked by `check` (the
    /// errors `assay validate` would print; none when valid) and sent back to be fixed, at
    /// most [`DRAFT_TRIES`] times. The valid YAML and the tries it took.
    pub async fn draft(
        &self,
        name: &str,
        files: &[String],
        check: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<(String, u32), LlmError> {
        let mut listing = String::new();
        for f in files.iter().take(MAX_LISTED) {
            listing.push_str(f);
            listing.push('\n');
        }
        if files.len() > MAX_LISTED {
            listing.push_str(&format!("… and {} more\n", files.len() - MAX_LISTED));
        }
        let mut messages = vec![
            Message::system(DRAFT),
            Message::user(format!(
                "workflow name: {name}\nrepository files:\n{}",
                clip(&listing, MAX_FACTS)
            )),
        ];
        let mut last = String::new();
        for tries in 1..=DRAFT_TRIES {
            let reply = self.chat(&messages).await?;
            let yaml = yaml_block(&reply);
            let errors = check(&yaml);
            if errors.is_empty() {
                return Ok((yaml, tries));
            }
            last = errors.join("\n");
            messages.push(Message::assistant(reply));
            messages.push(Message::user(format!(
                "`assay validate` reports:\n{}\nAnswer the whole corrected YAML only.",
                clip(&last, 4000)
            )));
        }
        Err(LlmError::NoValidDraft {
            tries: DRAFT_TRIES,
            last,
        })
    }
}

const NARRATE: &str = "TASK: narrate. You explain a failed test run to a developer in 2 to 5 \
sentences of plain prose: what failed, the likely cause, and what to look at first. Use only the \
facts given by Assay (class, rule, evidence, log lines, test history, changes since the last \
pass); do not invent file names, commits or numbers. No headings, no lists, no code blocks.";

const QUERY: &str = "TASK: query. Turn the developer's question about test history into one JSON \
object, and answer only that object. Fields (all optional): \"subject\": \"executions\" | \"tests\" \
| \"flaky\"; \"statuses\": array of \"passed\" | \"failed\" | \"skipped\" | \"aborted\" | \
\"canceled\" | \"running\" | \"queued\"; \"workflow\": one of the stored workflows; \"tool\": \
\"pytest\" | \"node-test\" | \"jest\" | \"vitest\" | \"go\" | \"nextest\" | \"playwright\" | \"cypress\" \
| \"k6\" | \"postman\" | \"jmeter\"; \"labels\": array of [key, value] (workflow labels, e.g. \
[\"team\", \"payments\"]); \"tags\": array of [key, value] (execution tags, e.g. [\"commit\", \
\"abc\"]); \"test\": part of a test name; \"since\" and \"until\": unix milliseconds; \"range\": \
the time range in words; \"limit\": a positive number of rows.";

const DRAFT: &str = "TASK: draft. Write one Testkube TestWorkflow (apiVersion \
testworkflows.testkube.io/v1, kind TestWorkflow) that runs the tests of the repository whose \
files are listed, in the folder the workflow runs in. Prefer `shell:` steps; write JUnit XML \
reports to /data/reports and keep them with `artifacts: {workingDir: /data/reports, paths: \
[\"*.xml\"]}` when the tool can write JUnit. Answer the YAML only.";

/// `text` cut to at most `max` bytes on a character boundary, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The outermost `{…}` of a reply (models wrap JSON in prose or code fences).
fn json_object(reply: &str) -> Option<&str> {
    let start = reply.find('{')?;
    let end = reply.rfind('}')?;
    (end > start).then(|| &reply[start..=end])
}

/// The YAML of a reply: the first fenced block when there is one, else the whole text.
fn yaml_block(reply: &str) -> String {
    if let Some(start) = reply.find("```") {
        let after = &reply[start + 3..];
        let body = after.split_once('\n').map_or("", |(_, b)| b);
        if let Some(end) = body.find("```") {
            return body[..end].to_string();
        }
    }
    reply.trim().to_string() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_the_chat_completions_address() {
        let l = Llm::new("http://127.0.0.1:9/v1", "m", None).unwrap();
        assert_eq!(
            l.endpoint.as_str(),
            "http://127.0.0.1:9/v1/chat/completions"
        );
        let l = Llm::new("https://x.example/v1/chat/completions", "m", None).unwrap();
        assert_eq!(l.endpoint.as_str(), "https://x.example/v1/chat/completions");
        for bad in ["file:///etc/passwd", "not a url", "ftp://x/v1"] {
            assert!(
                matches!(Llm::new(bad, "m", None), Err(LlmError::BadUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_key_is_never_shown() {
        let l = Llm::new("http://127.0.0.1:9/v1", "m", Some("sk-secret".into())).unwrap();
        assert!(!format!("{l:?}").contains("sk-secret"));
        assert_eq!(l.mask("bad key sk-secret"), "bad key ••••••");
    }

    #[test]
    fn replies_are_unwrapped() {
        assert_eq!(
            json_object("sure: ```json\n{\"a\": {}}\n```"),
            Some("{\"a\": {}}")
        );
        assert_eq!(json_object("no"), None);
        assert_eq!(yaml_block("here:\n```yaml\nkind: X\n```\nbye"), "kind: X\n");
        assert_eq!(yaml_block("kind: X"), "kind: X\n");
        assert_eq!(clip("ééé", 4), "…");
        assert_eq!(clip("abc", 3), "abc");
    }
}
