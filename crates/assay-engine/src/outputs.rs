//! What a step leaves behind: its `/testkube/outputs` files as `step.<id>.outputs`, and its
//! `artifacts`.

use std::time::SystemTime;

use crate::event::Event;
use crate::layout;
use crate::runner::{Attempt, Frame, RenderError, Runner};

impl Runner {
    /// Empties `/testkube/outputs` before an attempt of a step with an id.
    pub(crate) fn clear_outputs(&mut self, id: &str) {
        if let Ok(entries) = std::fs::read_dir(&self.layout.outputs) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
        if let Some(f) = self.facts.get_mut(id) {
            f.outputs.clear();
        }
    }

    /// Reads `/testkube/outputs/<key>` files into `step.<id>.outputs` (Testkube: regular files,
    /// not hidden, at most 4096 bytes, trimmed).
    pub(crate) async fn scan_outputs(&mut self, id: &str, full: &str) {
        let Ok(entries) = std::fs::read_dir(&self.layout.outputs) else {
            return;
        };
        let mut found = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(meta) = e.metadata() else { continue };
            if name.starts_with('.') || !meta.is_file() {
                continue;
            }
            if meta.len() > 4096 {
                let text = format!(
                    "warn: step output {name:?} exceeds 4096 bytes, skipping (use step.results for large files)\n"
                );
                self.emit(Event::Log(crate::event::LogChunk {
                    reference: full.to_string(),
                    at: SystemTime::now(),
                    text,
                }))
                .await;
                continue;
            }
            if let Ok(content) = std::fs::read(e.path()) {
                found.push((name, String::from_utf8_lossy(&content).trim().to_string()));
            }
        }
        found.sort();
        for (key, value) in found {
            self.facts
                .entry(id.to_string())
                .or_default()
                .outputs
                .insert(key.clone(), value.clone());
            let value = self.mask(&value);
            self.emit(Event::Output {
                reference: full.to_string(),
                key,
                value,
            })
            .await;
        }
    }

    pub(crate) async fn artifacts(
        &mut self,
        artifacts: &assay_spec::plan::PlanArtifacts,
        full: &str,
        frame: &Frame,
        a: &mut Attempt,
    ) {
        let env = self.base_env();
        let rendered: Result<(String, Vec<String>), RenderError> =
            self.with_machine(frame.passed, None, &env, None, |m| {
                let wd = match &artifacts.working_dir {
                    Some(w) => layout::join(&frame.cwd, &self.render(w, m)?),
                    None => frame.cwd.clone(),
                };
                let paths = artifacts
                    .paths
                    .iter()
                    .map(|p| self.render(p, m))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((wd, paths))
            });
        let (wd, paths) = match rendered {
            Ok(v) => v,
            Err(e) => return a.fail(format!("artifacts: {e}")),
        };
        let host_wd = self.layout.to_host(&wd);
        let layout = &self.layout;
        match crate::artifacts::collect(&paths, &host_wd, &|p| layout.to_host(p)) {
            Ok(files) => {
                if artifacts.compress.is_some() {
                    let text = "note: artifacts.compress is not supported by the local runtime yet; files are kept one by one\n".to_string();
                    self.emit(Event::Log(crate::event::LogChunk {
                        reference: full.to_string(),
                        at: SystemTime::now(),
                        text,
                    }))
                    .await;
                }
                for f in files {
                    a.collected.push(f.source.clone());
                    self.emit(Event::Artifact {
                        reference: full.to_string(),
                        path: f.path,
                        size: f.size,
                        source: f.source,
                    })
                    .await;
                }
            }
            Err(e) => a.fail(e.to_string()),
        }
    }
}
