//! The optional LLM of `explain`, `ask` and `init` (`assay-llm`), as configured by
//! `ASSAY_LLM_URL`, `ASSAY_LLM_MODEL` and `ASSAY_LLM_API_KEY`. A misconfigured endpoint is a
//! warning, never an error: every command answers without it.

use assay_llm::Llm;

/// The configured LLM, or `None` (unset, or misconfigured: said once on stderr).
pub fn configured() -> Option<Llm> {
    match Llm::from_env() {
        Ok(llm) => llm,
        Err(e) => {
            eprintln!("warning: the LLM is off: {e}");
            None
        }
    }
}
